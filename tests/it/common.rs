//! Shared helpers: a trained model on synthetic data, the local MNIST copy, the CLI.

use advlab::data::{synthetic, Splits, SyntheticParams};
use advlab::nn::{Arch, Model};
use advlab::train::{fit, FitParams};
use candle_core::{Device, Tensor};
use std::path::PathBuf;
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
pub fn script(dir: &std::path::Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

/// An MNIST directory with the first `n` train and `m` test samples of the real data when
/// present, else of the synthetic set, as gzip IDX files.
pub fn small_mnist(dir: &std::path::Path, n: usize, m: usize) {
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
