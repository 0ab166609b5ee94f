//! `advlab check` and the check `advlab run` does first (README, "Checking a script before it
//! runs"): unknown functions and methods and wrong numbers of arguments at their line:column,
//! with the nearest name; nothing runs; every shipped script passes.

use crate::common::{advlab, script};
use predicates::prelude::*;
use predicates::str::contains;
use std::time::Instant;

/// A script that would train for a long time before reaching its typo.
const LONG: &str = "let d = synthetic(#{ train: 60000, test: 100, seed: 1 });\nlet m = cnn();\nm.fit(d.train, #{ epochs: 50 });\nlet r = evaluate(m, d.test, [pgd(#{ eps: 0.3 })]);\nprnt(r);\n";

/// `advlab check FILE`, in the file's folder.
fn check(file: &std::path::Path) -> assert_cmd::assert::Assert {
    advlab()
        .current_dir(file.parent().unwrap())
        .arg("check")
        .arg(file)
        .assert()
}

#[test]
fn check_finds_an_unknown_function_at_its_place_and_runs_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let s = script(tmp.path(), "long.rhai", LONG);
    let t = Instant::now();
    check(&s)
        .code(1)
        .stderr(contains("unknown function `prnt`"))
        .stderr(contains("long.rhai:5:1"))
        .stderr(contains("did you mean `print`?"));
    // `run` checks first: it fails at once, before a single training step
    advlab()
        .current_dir(tmp.path())
        .args(["run", s.to_str().unwrap(), "--out"])
        .arg(tmp.path().join("out"))
        .assert()
        .code(1)
        .stderr(contains("unknown function `prnt`"))
        .stderr(contains("epoch").not());
    // both commands together: far less than the first epoch of that training would take
    assert!(t.elapsed().as_secs() < 30, "{:?}", t.elapsed());
    assert!(!tmp.path().join("out").exists(), "the run wrote something");
}

#[test]
fn check_finds_unknown_methods_wrong_arity_and_suggests() {
    let tmp = tempfile::tempdir().unwrap();
    let s = script(
        tmp.path(),
        "bad.rhai",
        "let d = synthetic(#{ train: 100, test: 20, seed: 1 });\nlet m = mlp([784, 10]);\nm.fitt(d.train);\nlet a = fgsm(#{ eps: 0.1 }, 3);\nlet acc = m.accuracy(d.test, 1, 2);\n",
    );
    check(&s)
        .code(1)
        .stderr(contains("unknown method `fitt`"))
        .stderr(contains("did you mean `fit`?"))
        .stderr(contains("bad.rhai:3:"))
        .stderr(contains("`fgsm` takes 1 argument, this call gives 2"))
        .stderr(contains("bad.rhai:4:9"))
        .stderr(contains(
            "`accuracy` takes 1 argument besides its object, this call gives 3",
        ))
        .stderr(contains("bad.rhai:5:"));
}

#[test]
fn check_accepts_closures_script_functions_and_builtins_and_no_check_skips_it() {
    let tmp = tempfile::tempdir().unwrap();
    let ok = script(
        tmp.path(),
        "ok.rhai",
        "fn twice(x) { x * 2 }\nfn inc() { this + 1 }\nlet f = |x| x + 1;\nlet g = Fn(\"twice\");\nprint(f.call(2) + g.call(3) + twice(4) + 5.inc());\nlet t = timestamp();\nfor (v, i) in [1, 2] { debug(v + i); }\nprint(type_of(args));\n",
    );
    check(&ok).success().stdout(contains("ok"));
    // calling a closure variable like a function is refused, as Rhai refuses it when it runs
    let f = script(tmp.path(), "f.rhai", "let f = |x| x + 1;\nprint(f(2));\n");
    check(&f)
        .code(1)
        .stderr(contains("unknown function `f`"))
        .stderr(contains("f.rhai:2:7"));
    // --no-check: the run itself meets the typo, after the lines before it ran
    let bad = script(tmp.path(), "bad.rhai", "print(\"before\");\nprnt(1);\n");
    advlab()
        .current_dir(tmp.path())
        .args(["run", bad.to_str().unwrap(), "--no-check", "--out"])
        .arg(tmp.path().join("out"))
        .assert()
        .code(1)
        .stdout(contains("before"))
        .stderr(contains("unknown function: prnt"));
    // a syntax error is reported as one
    let syntax = script(tmp.path(), "syntax.rhai", "let x = ;\n");
    check(&syntax)
        .code(1)
        .stderr(contains("syntax error"))
        .stderr(contains("syntax.rhai:1:"));
}

/// No false alarms: every script advlab ships passes the check.
#[test]
fn every_shipped_script_passes_the_check() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts");
    let mut scripts = Vec::new();
    let mut dirs = vec![root];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                dirs.push(p);
            } else if p.extension().is_some_and(|x| x == "rhai") {
                scripts.push(p);
            }
        }
    }
    assert!(scripts.len() >= 15, "{} scripts", scripts.len());
    for s in scripts {
        check(&s).success();
    }
}

/// Option keys: a misspelt key in a map written in the call is found at the key, with the
/// function's keys listed; keys of any function sharing the name are taken (`fit` of a model and
/// of an autoencoder), a map held in a variable is left to the run, `attack`'s own keys are the
/// script's, and a function the script defines takes any map.
#[test]
fn check_finds_misspelt_option_keys_at_the_key() {
    let tmp = tempfile::tempdir().unwrap();
    let s = script(
        tmp.path(),
        "keys.rhai",
        "let d = synthetic(#{ train: 60000, test: 100, seed: 1 });\nlet m = cnn();\nm.fit(d.train, #{ epochs: 50, defence: pgd_training(#{ epsilon: 0.3 }) });\nlet a = pgd(#{ eps: 0.3, step: 10 });\n",
    );
    let t = Instant::now();
    check(&s)
        .code(1)
        .stderr(contains("pgd_training: unknown option `epsilon`"))
        .stderr(contains("keys.rhai:3:"))
        .stderr(contains("valid options are: alpha, eps, seed, steps"))
        .stderr(contains("pgd: unknown option `step` (did you mean `steps`?)"))
        .stderr(contains("keys.rhai:4:26"));
    assert!(t.elapsed().as_secs() < 10, "{:?}", t.elapsed());
    let ok = script(
        tmp.path(),
        "ok.rhai",
        "fn fgsm(o) { o.width }\nlet d = synthetic(#{ train: 100, test: 20, seed: 1 });\nlet ae = denoising_autoencoder(#{ hidden: [32] });\nae.fit(d.train, #{ epochs: 1, noise_std: 0.1 });\nlet o = #{ epsilon: 1 };\nlet w = fgsm(#{ width: 3 });\nlet s = attack(#{ name: \"mine\", step: |x, x0, y, model, state| x, my_rate: 0.1 });\n",
    );
    check(&ok).success();
}
