//! The command line end to end: the quickstart, the MNIST baseline, functions, arguments.

use crate::common::{advlab, script};
use predicates::str::contains;
use std::path::PathBuf;

fn repo(p: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(p)
}

#[test]
fn quickstart_runs_and_writes_csv_chart_and_provenance() {
    let tmp = tempfile::tempdir().unwrap();
    let out = advlab()
        .arg("run")
        .arg(repo("scripts/quickstart.rhai"))
        .arg("--out")
        .arg(tmp.path())
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let stdout = String::from_utf8(out).unwrap();
    let clean: f64 = stdout
        .lines()
        .find_map(|l| l.strip_prefix("clean accuracy: "))
        .expect("prints the clean accuracy")
        .trim()
        .parse()
        .unwrap();
    assert!(clean > 0.95, "clean accuracy {clean}");
    let mut rdr = csv::Reader::from_path(tmp.path().join("quickstart.csv")).unwrap();
    assert_eq!(
        rdr.headers().unwrap().iter().collect::<Vec<_>>(),
        ["eps", "fgsm", "pgd"]
    );
    let rows: Vec<Vec<f64>> = rdr
        .records()
        .map(|r| r.unwrap().iter().map(|v| v.parse().unwrap()).collect())
        .collect();
    assert_eq!(rows.len(), 5);
    assert_eq!(
        (rows[0][1], rows[0][2]),
        (clean, clean),
        "eps 0 must leave accuracy unchanged"
    );
    for r in &rows {
        assert!(r[2] <= r[1], "pgd weaker than fgsm at eps {}", r[0]);
    }
    assert!(
        rows[4][2] < 0.5 * clean,
        "pgd at eps 0.3 should break the model: {:?}",
        rows[4]
    );
    let png = std::fs::read(tmp.path().join("quickstart.png")).unwrap();
    assert_eq!(&png[1..4], b"PNG");
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(tmp.path().join("quickstart.csv.meta.json")).unwrap()).unwrap();
    assert_eq!(meta["device"], "cpu");
    let ops = meta["operations"].as_array().unwrap();
    let pgd = ops
        .iter()
        .find(|o| o["attack"]["attack"] == "pgd" && o["attack"]["eps"] == 0.3)
        .unwrap();
    assert_eq!(pgd["attack"]["seed"], 7);
    assert_eq!(pgd["attack"]["steps"], 20);
    assert!((pgd["attack"]["alpha"].as_f64().unwrap() - 0.0375).abs() < 1e-12);
    let fit = ops.iter().find(|o| o["op"] == "fit").unwrap();
    assert_eq!(fit["params"]["seed"], 7);
    assert!(tmp.path().join("quickstart.png.meta.json").is_file());
}

#[test]
fn quickstart_is_deterministic() {
    let runs: Vec<String> = (0..2)
        .map(|_| {
            let tmp = tempfile::tempdir().unwrap();
            advlab()
                .arg("run")
                .arg(repo("scripts/quickstart.rhai"))
                .arg("--out")
                .arg(tmp.path())
                .assert()
                .success();
            std::fs::read_to_string(tmp.path().join("quickstart.csv")).unwrap()
        })
        .collect();
    assert_eq!(runs[0], runs[1]);
}

#[test]
fn mnist_baseline_script_runs_as_written_on_a_small_mnist() {
    // The script as written, on the first 1500/300 real MNIST samples when present (else
    // on a synthetic IDX fixture), found through $ADVLAB_DATA.
    let tmp = tempfile::tempdir().unwrap();
    crate::common::small_mnist(&tmp.path().join("mnist"), 1500, 300);
    let out = tmp.path().join("out");
    advlab()
        .env("ADVLAB_DATA", tmp.path())
        .arg("run")
        .arg(repo("scripts/mnist_baseline.rhai"))
        .arg("--out")
        .arg(&out)
        .assert()
        .success()
        .stdout(contains("\"clean\":"))
        .stdout(contains("\"fgsm\":"))
        .stdout(contains("\"pgd\":"));
    let ckpt = out.join("mnist_at.safetensors");
    let m = advlab::nn::load_model(&ckpt, &candle_core::Device::Cpu).unwrap();
    assert_eq!(m.arch(), &advlab::nn::Arch::cnn());
    let bytes = std::fs::read(&ckpt).unwrap();
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let prov = &meta.metadata().as_ref().unwrap()["advlab.provenance"];
    assert!(prov.contains("\"pgd\"") && prov.contains("\"fit\""), "{prov}");
}

#[test]
fn functions_lists_every_registered_function_with_a_doc() {
    let out = advlab().arg("functions").assert().success().get_output().stdout.clone();
    let text = String::from_utf8(out).unwrap();
    for name in [
        "synthetic(",
        "mnist(",
        "mlp(",
        "cnn(",
        "Model.fit(",
        "fgsm(",
        "pgd(",
        "evaluate(",
        "write_csv(",
        "line_chart(",
        "load_model(",
    ] {
        assert!(text.contains(name), "functions misses {name}");
    }
    for d in advlab::script::function_docs() {
        assert!(
            !d.doc.is_empty() && d.doc.ends_with('.') || d.doc.ends_with('…'),
            "doc of {} should be a sentence",
            d.sig
        );
    }
    advlab()
        .args(["functions", "--markdown"])
        .assert()
        .success()
        .stdout(contains("| attack | `pgd(opts: Map) -> Attack` |"));
}

#[test]
fn version_help_and_args() {
    advlab()
        .arg("--version")
        .assert()
        .success()
        .stdout(contains(env!("CARGO_PKG_VERSION")));
    advlab().arg("--help").assert().success().stdout(contains("run"));
    let tmp = tempfile::tempdir().unwrap();
    let s = script(
        tmp.path(),
        "a.rhai",
        "let quick = args.quick ?? false; print(`${quick} ${args.n ?? 0} ${args.name ?? \"-\"}`);",
    );
    advlab().arg("run").arg(&s).assert().success().stdout("false 0 -\n");
    advlab()
        .arg("run")
        .arg(&s)
        .args(["quick=true", "n=1000", "name=fast"])
        .assert()
        .success()
        .stdout("true 1000 fast\n");
    advlab()
        .arg("run")
        .arg(&s)
        .arg("n")
        .assert()
        .failure()
        .stderr(contains("is not NAME=VALUE"));
    advlab()
        .arg("run")
        .arg(&s)
        .arg("n=[1,")
        .assert()
        .failure()
        .stderr(contains("not a Rhai literal"));
}

#[test]
fn cuda_without_the_feature_is_a_clear_error() {
    if cfg!(feature = "cuda") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let s = script(tmp.path(), "a.rhai", "print(1);");
    advlab()
        .arg("run")
        .arg(&s)
        .args(["--device", "cuda"])
        .assert()
        .failure()
        .stderr(contains("--features cuda"));
}

#[test]
fn charts_save_as_svg_and_write_json() {
    let tmp = tempfile::tempdir().unwrap();
    let s = script(
        tmp.path(),
        "c.rhai",
        r#"let rows = [#{ k: 1, a: 0.5, b: 0.25 }, #{ k: 2, a: 0.75, b: 0.5 }];
line_chart(rows, #{ x: "k", title: "T", y_label: "acc" }).save("out/c.svg");
write_json("out/r.json", #{ rows: rows, name: "x" });"#,
    );
    advlab()
        .arg("run")
        .arg(&s)
        .arg("--out")
        .arg(tmp.path())
        .assert()
        .success();
    let svg = std::fs::read_to_string(tmp.path().join("c.svg")).unwrap();
    assert!(
        svg.starts_with("<svg") && svg.contains("\na\n</text>") && svg.contains("\nb\n</text>"),
        "legend names missing"
    );
    let j: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(tmp.path().join("r.json")).unwrap()).unwrap();
    assert_eq!(j["rows"][1]["a"], 0.75);
}

#[test]
fn readme_names_every_function_and_the_two_commands() {
    let readme = std::fs::read_to_string(repo("README.md")).unwrap();
    for d in advlab::script::function_docs() {
        let cell = format!("`{}`", d.sig.replace('|', "\\|"));
        assert!(
            readme.contains(&cell),
            "README.md misses {}: run `advlab functions --markdown`",
            d.sig
        );
    }
    assert!(readme.contains("cargo run --release -- run scripts/quickstart.rhai"));
    assert!(readme.contains("cargo test --release"));
    let ci = std::fs::read_to_string(repo(".ci/run")).unwrap();
    assert!(ci.contains("cargo test --release"));
}
