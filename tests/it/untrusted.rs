//! Input from a user never crashes advlab and never gives meaningless numbers (README,
//! "Errors"): labels are checked wherever a model meets a data set, `advlab run` has the REPL's
//! limits with a flag to lift the operation count, a byte-order mark is not a syntax error, and
//! a malformed argument is a usage error.

use crate::common::{advlab, fails, script};
use predicates::prelude::*;
use predicates::str::contains;

const SMALL: &str = "let d = synthetic(#{ train: 100, test: 40, seed: 1 });\nlet m = mlp([784, 5]);\n";

#[test]
fn labels_beyond_the_models_outputs_are_an_error_at_every_entry_point() {
    for (call, col) in [
        ("fgsm(#{ eps: 0.1 }).perturb(m, d.test)", "29"),
        ("pgd(#{ eps: 0.1 }).perturb(m, d.test)", "28"),
        ("cw_l2(#{ steps: 2 }).perturb(m, d.test)", "30"),
        ("deepfool(#{}).perturb(m, d.test)", "23"),
        ("apgd(#{ eps: 0.1 }).perturb(m, d.test)", "29"),
        ("evaluate(m, d.test, [fgsm(#{ eps: 0.1 })])", "9"),
        ("m.accuracy(d.test)", "11"),
        ("report(m, d.test, [fgsm(#{ eps: 0.1 })])", "9"),
    ] {
        fails(
            &format!("{SMALL}let r = {call};"),
            "has label 9, but",
            &format!("3:{col}"),
        );
    }
}

#[test]
fn a_byte_order_mark_is_not_a_syntax_error() {
    let tmp = tempfile::tempdir().unwrap();
    let s = script(tmp.path(), "bom.rhai", "\u{feff}print(\"with a BOM\");");
    advlab()
        .current_dir(tmp.path())
        .arg("run")
        .arg(&s)
        .assert()
        .success()
        .stdout(contains("with a BOM"));
}

#[test]
fn a_malformed_argument_is_a_usage_error_with_exit_code_2() {
    let tmp = tempfile::tempdir().unwrap();
    let s = script(tmp.path(), "ok.rhai", "print(args);");
    advlab()
        .current_dir(tmp.path())
        .args(["run", s.to_str().unwrap(), "not-an-assignment"])
        .assert()
        .code(2)
        .stderr(contains("NAME=VALUE"))
        .stderr(contains("Usage"));
}

#[test]
fn run_stops_a_runaway_loop_at_its_operation_limit_and_the_flag_lifts_it() {
    let tmp = tempfile::tempdir().unwrap();
    let s = script(
        tmp.path(),
        "loop.rhai",
        "let x = 0;\nwhile x < 100000 { x += 1; }\nprint(`done ${x}`);",
    );
    advlab()
        .current_dir(tmp.path())
        .args(["run", s.to_str().unwrap(), "--max-operations", "1000"])
        .assert()
        .code(1)
        .stderr(contains("operations"))
        .stderr(contains("loop.rhai:2"))
        .stderr(contains("panicked").not());
    advlab()
        .current_dir(tmp.path())
        .args(["run", s.to_str().unwrap(), "--max-operations", "0"])
        .assert()
        .success()
        .stdout(contains("done 100000"));
    // strings have the REPL's size limit under run too
    let big = script(tmp.path(), "big.rhai", "let s = \"x\";\nfor i in 0..40 { s += s; }");
    advlab()
        .current_dir(tmp.path())
        .arg("run")
        .arg(&big)
        .assert()
        .code(1)
        .stderr(contains("panicked").not());
}

/// A deeply nested value (printed, then dropped) does not overflow the stack: scripts run on a
/// thread with a deep stack (the main thread's 8 MiB overflowed at 50,000 levels).
#[test]
fn printing_a_deeply_nested_value_does_not_overflow_the_stack() {
    let tmp = tempfile::tempdir().unwrap();
    let s = script(
        tmp.path(),
        "nest.rhai",
        "let a = [];\nfor i in 0..15000 { a = [a]; }\nlet s = `${a}`;\nprint(`nested ${s.len()}`);",
    );
    advlab()
        .current_dir(tmp.path())
        .arg("run")
        .arg(&s)
        .assert()
        .success()
        .stdout(contains("nested 30002"));
}

/// The same in the REPL, which also evaluates on the deep-stack thread.
#[test]
fn the_repl_prints_a_deeply_nested_value_without_overflowing() {
    advlab()
        .arg("repl")
        .write_stdin("let a = [];\nfor i in 0..15000 { a = [a]; }\nlet s = `${a}`; s.len()\n")
        .assert()
        .success()
        .stdout(contains("30002"));
}
