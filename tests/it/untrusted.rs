//! Input from a user never crashes advlab and never gives meaningless numbers (README,
//! "Errors"): labels are checked wherever a model meets a data set, `advlab run` has the REPL's
//! limits with a flag to lift the operation count, a byte-order mark is not a syntax error, and
//! a malformed argument is a usage error.

use crate::common::{advlab, fails, run_in, script, script_fails};
use predicates::prelude::*;
use predicates::str::contains;

/// A data set and a model of its 10 classes.
const TEN: &str = "let d = synthetic(#{ train: 200, test: 40, seed: 1 });\nlet m = mlp([784, 8, 10]);\n";
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
    run_in(tmp.path(), &s).success().stdout(contains("with a BOM"));
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

/// A bug ends with a report, not a crash: "internal error, please report", the message, the
/// script position of the call that panicked, exit code 101 and no "thread panicked"; what the
/// script wrote before is complete; the REPL reports it and goes on. (No input should reach a
/// panic, so the test provokes one: ADVLAB_TEST_PANIC makes every call of the function it
/// names panic.)
#[test]
fn an_internal_error_names_the_script_position_and_exits_101() {
    let tmp = tempfile::tempdir().unwrap();
    let s = script(
        tmp.path(),
        "bug.rhai",
        &format!("write_json(\"before.json\", #{{ a: 1 }});\n{SMALL}let r = m.accuracy(d.test);\n"),
    );
    advlab()
        .current_dir(tmp.path())
        .env(advlab::script::TEST_PANIC_VAR, "accuracy")
        .arg("run")
        .arg(&s)
        .arg("--out")
        .arg(tmp.path().join("out"))
        .assert()
        .code(101)
        .stderr(contains("internal error, please report"))
        .stderr(contains("asked every call of `accuracy` to panic"))
        .stderr(contains("bug.rhai:4:11"))
        .stderr(contains("panicked").not());
    let before = std::fs::read_to_string(tmp.path().join("before.json")).unwrap();
    assert!(before.contains("\"a\": 1"), "{before}");
    advlab()
        .env(advlab::script::TEST_PANIC_VAR, "mlp")
        .arg("repl")
        .write_stdin("let m = mlp([784, 5]);\n40 + 2\n")
        .assert()
        .success()
        .stderr(contains("internal error, please report"))
        .stdout(contains("42"));
}

/// A learning rate that turns the loss into NaN stops `fit` with an error that names the epoch,
/// the batch and the rate, before the step that would have broken the weights.
#[test]
fn a_loss_that_becomes_nan_stops_training_with_a_clear_error() {
    fails(
        &format!("{TEN}let h = m.fit(d.train, #{{ lr: 1e30, epochs: 3 }});"),
        "the loss became NaN at epoch 1",
        "3:11",
    );
    script_fails(
        &format!("{TEN}let h = m.fit(d.train, #{{ lr: 1e30 }});"),
        "(learning rate 1e30); the weights before this batch are kept. Lower `lr`",
    );
}

/// JSON has no NaN: write_json writes non-finite numbers as null and says so, naming the first.
#[test]
fn non_finite_numbers_in_json_are_null_with_a_warning() {
    let tmp = tempfile::tempdir().unwrap();
    let s = script(
        tmp.path(),
        "nan.rhai",
        "write_json(\"n.json\", #{ a: 1.5, b: [1.0, 0.0 / 0.0, 1.0 / 0.0] });\nlet r = read_json(\"n.json\");\nprint(`${r.a} ${r.b[1] == ()}`);",
    );
    run_in(tmp.path(), &s)
        .success()
        .stdout(contains("1.5 true"))
        .stderr(contains(
            "2 number(s) that are not finite written as null (the first is NaN at `.b[1]`)",
        ));
}
