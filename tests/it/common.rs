//! Shared helpers: a trained model on synthetic data, the local MNIST copy, the CLI, script
//! runs that must fail, checkpoint round trips and the data resolution order.

use advlab::data::{synthetic, Splits, SyntheticParams};
use advlab::nn::{load_model, save_model, Arch, Model};
use advlab::train::{fit, FitParams};
use candle_core::{Device, Tensor};
use predicates::prelude::*;
use predicates::str::contains;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// An MLP trained for one epoch on a small synthetic set, shared by the attack tests.
pub fn trained() -> &'static (Model, Splits) {
    static CELL: OnceLock<(Model, Splits)> = OnceLock::new();
    CELL.get_or_init(|| {
        let data = synthetic(
            &SyntheticParams {
                train: 3000,
                test: 500,
                seed: 3,
            },
            &Device::Cpu,
        )
        .unwrap();
        let model = Model::new(Arch::mlp(vec![784, 64, 10]).unwrap(), &Device::Cpu, 3).unwrap();
        let p = FitParams {
            epochs: 2,
            seed: 3,
            ..FitParams::default()
        }
        .check()
        .unwrap();
        fit(&model, &data.train, &p).unwrap();
        (model, data)
    })
}

/// The directory of the real MNIST files, or None (and a note on stderr) when absent.
pub fn mnist_dir() -> Option<PathBuf> {
    let root = std::env::var_os("ADVLAB_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/data"));
    let dir = root.join("mnist");
    if dir.join("train-images-idx3-ubyte.gz").is_file() {
        Some(dir)
    } else {
        eprintln!("skipped: no MNIST files in {} (set ADVLAB_DATA)", dir.display());
        None
    }
}

/// All elements as f32.
pub fn values(t: &Tensor) -> Vec<f32> {
    t.flatten_all().unwrap().to_vec1::<f32>().unwrap()
}

/// max |a - b|.
pub fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
    values(a)
        .iter()
        .zip(values(b))
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// The advlab binary.
pub fn advlab() -> assert_cmd::Command {
    let mut cmd = assert_cmd::Command::cargo_bin("advlab").unwrap();
    cmd.env("ADVLAB_OFFLINE", "1");
    cmd
}

/// Write a script into `dir` and return its path.
pub fn script(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

/// `advlab run SCRIPT --out DIR/out` inside DIR.
pub fn run_in(dir: &Path, script: &Path) -> assert_cmd::assert::Assert {
    advlab()
        .current_dir(dir)
        .arg("run")
        .arg(script)
        .arg("--out")
        .arg(dir.join("out"))
        .assert()
}

/// Run `text` as the script `bad.rhai` in a fresh folder; it must fail (exit code 1) with
/// `what` in stderr and no panic. Returns the assertion for further checks.
pub fn script_fails(text: &str, what: &str) -> assert_cmd::assert::Assert {
    let tmp = tempfile::tempdir().unwrap();
    let s = script(tmp.path(), "bad.rhai", text);
    run_in(tmp.path(), &s)
        .code(1)
        .stderr(contains(what))
        .stderr(contains("panicked").not())
}

/// Run `text` as a script; it must fail with `what` in stderr at `line:col`, and no panic.
pub fn fails(text: &str, what: &str, line_col: &str) {
    script_fails(text, what).stderr(contains(format!("bad.rhai:{line_col}")));
}

/// `model` saved to `path` and loaded back: the same architecture and, both reseeded to
/// `seed`, the same outputs on `x` (a stochastic model draws the same noise). Returns the
/// loaded model.
pub fn round_trip(model: &Model, path: &Path, x: &Tensor, seed: u64) -> Model {
    save_model(model, path, &serde_json::json!({})).unwrap();
    let back = load_model(path, &Device::Cpu).unwrap();
    assert_eq!(back.arch(), model.arch());
    model.reseed(seed);
    back.reseed(seed);
    assert_eq!(values(&model.forward(x).unwrap()), values(&back.forward(x).unwrap()));
    back
}

/// The error of a loader given an explicit folder `name` that does not exist: it says so
/// and names the folder.
pub fn assert_missing_folder<T>(loaded: advlab::Result<T>, name: &str) {
    let Err(e) = loaded else {
        panic!("the folder {name} does not exist, yet it loaded");
    };
    let e = e.to_string();
    assert!(e.contains("does not exist") && e.contains(name), "{e}");
}

/// Run `scripts/<path>` with quick=true and `args` on the real MNIST (None, skipped, without
/// it); returns the temporary directory (outputs under `out/`) and stdout.
pub fn run_quick(path: &str, args: &[&str]) -> Option<(tempfile::TempDir, String)> {
    mnist_dir()?;
    let tmp = tempfile::tempdir().unwrap();
    let out = run_quick_in(tmp.path(), path, args);
    Some((tmp, out))
}

/// Run `scripts/<path>` with quick=true and `args` on the real MNIST, its outputs under
/// `dir/out` (where an earlier run may have left some); returns stdout. Needs MNIST.
pub fn run_quick_in(dir: &Path, path: &str, args: &[&str]) -> String {
    let mnist = mnist_dir().expect("the real MNIST files");
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts").join(path);
    let out = advlab()
        .env("ADVLAB_DATA", mnist.parent().unwrap())
        .arg("run")
        .arg(script)
        .arg("quick=true")
        .args(args)
        .arg("--out")
        .arg(dir.join("out"))
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    String::from_utf8(out).unwrap()
}

/// The resolution order of a data set's loader, run on the script `s` (which loads it with no
/// path and prints something) inside `dir`: with nothing anywhere the run fails and stderr
/// holds each of `not_found`; `local(dir/data)` writes a copy into `./data` and returns what
/// the script prints then, with `$ADVLAB_DATA` unset; `env(dir/env)` writes another copy and
/// returns what the script prints with `$ADVLAB_DATA=dir/env`, which comes first.
pub fn assert_resolution_order(
    dir: &Path,
    s: &Path,
    not_found: &[&str],
    local: impl FnOnce(&Path) -> &'static str,
    env: impl FnOnce(&Path) -> &'static str,
) {
    let mut nowhere = advlab()
        .current_dir(dir)
        .env("ADVLAB_DATA", dir.join("empty"))
        .arg("run")
        .arg(s)
        .assert()
        .failure();
    for what in not_found {
        nowhere = nowhere.stderr(contains(*what));
    }
    let out = local(&dir.join("data"));
    advlab()
        .current_dir(dir)
        .env_remove("ADVLAB_DATA")
        .arg("run")
        .arg(s)
        .assert()
        .success()
        .stdout(out);
    let out = env(&dir.join("env"));
    advlab()
        .current_dir(dir)
        .env("ADVLAB_DATA", dir.join("env"))
        .arg("run")
        .arg(s)
        .assert()
        .success()
        .stdout(out);
}

/// An MNIST directory with the first `n` train and `m` test samples of the real data when
/// present, else of the synthetic set, as gzip IDX files.
pub fn small_mnist(dir: &Path, n: usize, m: usize) {
    use advlab::data::{read_idx, write_idx};
    let Some(real) = mnist_dir() else {
        crate::data::write_fixture(dir, n, m);
        return;
    };
    for (stem, count) in [("train", n), ("t10k", m)] {
        let (d, px) = read_idx(&real.join(format!("{stem}-images-idx3-ubyte.gz"))).unwrap();
        write_idx(
            &dir.join(format!("{stem}-images-idx3-ubyte.gz")),
            &[count, d[1], d[2]],
            &px[..count * d[1] * d[2]],
        )
        .unwrap();
        let (_, lb) = read_idx(&real.join(format!("{stem}-labels-idx1-ubyte.gz"))).unwrap();
        write_idx(
            &dir.join(format!("{stem}-labels-idx1-ubyte.gz")),
            &[count],
            &lb[..count],
        )
        .unwrap();
    }
}

/// Per sample, the norm of `adv − clean` (L∞ or L2).
pub fn distances(adv: &advlab::data::Dataset, clean: &advlab::data::Dataset, norm: advlab::attack::Norm) -> Vec<f64> {
    let (a, c) = (values(adv.images()), values(clean.images()));
    let per = a.len() / clean.len();
    a.chunks(per)
        .zip(c.chunks(per))
        .map(|(x, x0)| match norm {
            advlab::attack::Norm::Linf => x.iter().zip(x0).map(|(p, q)| (p - q).abs()).fold(0f32, f32::max) as f64,
            advlab::attack::Norm::L2 => x
                .iter()
                .zip(x0)
                .map(|(p, q)| ((p - q) as f64).powi(2))
                .sum::<f64>()
                .sqrt(),
        })
        .collect()
}
