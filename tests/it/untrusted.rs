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

/// Numbers a tensor cannot hold, sizes that cannot be allocated and columns no row has are
/// errors that name them (each was accepted, aborted or panicked before).
#[test]
fn values_beyond_f32_huge_sizes_and_missing_columns_are_errors() {
    for (call, what) in [
        (
            "pgd(#{ eps: 1e300, steps: 2 }).perturb(m, d.test)",
            "pgd: option `eps` is 1e300, beyond the ±3.4e38",
        ),
        (
            "noise(#{ eps: 1e300 }).perturb(m, d.test)",
            "noise: option `eps` is 1e300",
        ),
        (
            "deepfool(#{ steps: 2, overshoot: 1e300 }).perturb(m, d.test)",
            "option `overshoot` is 1e300",
        ),
        (
            "confidence_histogram(m, d.test, #{ bins: 1000000000000 })",
            "bins must be from 1 to 10000",
        ),
        (
            "tensor([0, 3], \"u32\").one_hot(4000000000)",
            "one_hot of 2 labels into 4000000000 classes",
        ),
        (
            "write_csv(\"a.csv\", [#{ a: 1 }], [\"a\", \"zz\"])",
            "write_csv: no row has a column `zz`; columns are: a",
        ),
        (
            "aggregate([#{ a: 1 }], #{ by: [\"zz\"], values: [\"a\"] })",
            "aggregate: no row has a column `zz`",
        ),
        (
            "print_table([#{ a: 1 }], [\"zz\"])",
            "print_table: no row has a column `zz`",
        ),
        (
            "bar_chart([#{ a: 1, b: \"x\" }], #{ x: \"b\", y: [\"q\"] })",
            "bar_chart: row 0 has no column `q`",
        ),
        ("rand_uniform([3], -1e308, 1e308, 1)", "difference fits a 32-bit float"),
        ("tensor([4294967296], \"u32\")", "from 0 to 16777216"),
    ] {
        script_fails(&format!("{SMALL}let r = {call};"), what);
    }
}

/// A checkpoint whose weights hold NaN is refused by load_model and load_weights, naming the tensor.
#[test]
fn a_checkpoint_with_nan_weights_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let s = script(tmp.path(), "save.rhai", "mlp([784, 10]).save(\"out/m.safetensors\");\n");
    run_in(tmp.path(), &s).success();
    let path = tmp.path().join("out/m.safetensors");
    let bytes = std::fs::read(&path).unwrap();
    let file = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let mut nan = Vec::new();
    let views: Vec<(String, Vec<u8>, Vec<usize>)> = file
        .tensors()
        .into_iter()
        .map(|(name, v)| {
            let mut data = v.data().to_vec();
            if name == "1.bias" {
                data[..4].copy_from_slice(&f32::NAN.to_le_bytes());
                nan.push(name.clone());
            }
            (name, data, v.shape().to_vec())
        })
        .collect();
    assert_eq!(nan, ["1.bias"]);
    let tensors: Vec<(String, safetensors::tensor::TensorView)> = views
        .iter()
        .map(|(n, d, s)| {
            (
                n.clone(),
                safetensors::tensor::TensorView::new(safetensors::Dtype::F32, s.clone(), d).unwrap(),
            )
        })
        .collect();
    std::fs::write(&path, safetensors::serialize(tensors, meta.metadata().clone()).unwrap()).unwrap();
    for call in [
        "load_model(\"out/m.safetensors\")",
        "mlp([784, 10]).load_weights(\"out/m.safetensors\")",
    ] {
        let s = script(tmp.path(), "load.rhai", &format!("let m = {call};\n"));
        run_in(tmp.path(), &s).code(1).stderr(contains(
            "tensor 1.bias holds NaN: a checkpoint's weights must all be finite numbers",
        ));
    }
}
