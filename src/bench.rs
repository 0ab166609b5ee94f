//! `advlab bench`: the workloads that dominate every experiment, timed on MNIST, and compared
//! with the PyTorch reference (`benches/reference/torch_bench.py`) when its JSON is given.

use crate::attack::{perturb, ApgdParams, Attack, CwL2Params, DeepFoolParams, FgsmParams, Norm, PgdParams};
use crate::data::{load_mnist_like, Splits, Which};
use crate::error::Result;
use crate::eval::{accuracy, autoattack, AutoAttackParams};
use crate::nn::{Arch, Model};
use crate::train::{
    fit_with, FastFgsmParams, FitParams, GuardParams, PgdTrainingParams, Recipe, TradesParams, TrainingPlan,
};
use std::path::PathBuf;
use std::rc::Rc;
use std::time::Instant;

/// Options of `advlab bench`.
#[derive(Clone, Debug, clap::Args)]
pub struct BenchArgs {
    /// MNIST directory (default: the usual resolution order, $ADVLAB_DATA/mnist first).
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Comma-separated workloads (default: all): {mlp,cnn}_{epoch,fgsm,pgd20,pgd20_scripted,apgd_ce100,autoattack,bim20,pgdl2,cw,deepfool,
    /// pgd_training,fast_fgsm_training,trades}, pca_60k, kmeans_1_10, dbscan_60k_raw, ward_10k,
    /// ward_60k, average_10k, average_60k, complete_10k, complete_60k, tsne_5k.
    #[arg(long, value_delimiter = ',')]
    pub only: Vec<String>,
    /// Use only the first N train and test samples (a quick run).
    #[arg(long)]
    pub limit: Option<usize>,
    /// JSON written by benches/reference/torch_bench.py, for the ratio column.
    #[arg(long)]
    pub reference: Option<PathBuf>,
    /// Write the results as JSON here.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// L∞ budget of the attacks.
    #[arg(long, default_value_t = 0.3)]
    pub eps: f64,
    /// Where the training and attack workloads run: cpu, or cuda (a build with `--features cuda`).
    /// Reduction and clustering always run on the CPU.
    #[arg(long, default_value = "cpu")]
    pub device: String,
}

const WORKLOADS: [&str; 36] = [
    "mlp_epoch",
    "cnn_epoch",
    "mlp_fgsm",
    "mlp_pgd20",
    "mlp_bim20",
    "mlp_pgdl2",
    "mlp_cw",
    "mlp_deepfool",
    "cnn_fgsm",
    "cnn_pgd20",
    "cnn_bim20",
    "cnn_pgdl2",
    "cnn_cw",
    "cnn_deepfool",
    "mlp_pgd20_scripted",
    "cnn_pgd20_scripted",
    "mlp_apgd_ce100",
    "cnn_apgd_ce100",
    "mlp_autoattack",
    "cnn_autoattack",
    "mlp_pgd_training",
    "mlp_fast_fgsm_training",
    "mlp_trades",
    "cnn_pgd_training",
    "cnn_fast_fgsm_training",
    "cnn_trades",
    "pca_60k",
    "kmeans_1_10",
    "dbscan_60k_raw",
    "ward_10k",
    "ward_60k",
    "average_10k",
    "average_60k",
    "complete_10k",
    "complete_60k",
    "tsne_5k",
];

/// Peak resident memory of this process so far, in MB (Linux; 0 elsewhere).
fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("VmHWM:")).map(str::to_string))
        .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse::<f64>().ok()))
        .map_or(0.0, |kb| kb / 1024.0)
}

/// The reduction and clustering workloads (scikit-learn's `benches/reference/sklearn_bench.py`).
fn cluster_rows(data: &Splits, wanted: &dyn Fn(&str) -> bool) -> anyhow::Result<Vec<BenchRow>> {
    use crate::cluster::{agglomerative, dbscan, kmeans, AgglomerativeParams, DbscanParams, KMeansParams, Linkage};
    use crate::reduce::{rows_f32, to_matrix, tsne, Pca, PcaParams, TsneParams};
    // the reduction and clustering part of WORKLOADS
    let first = WORKLOADS
        .iter()
        .position(|w| *w == "pca_60k")
        .unwrap_or(WORKLOADS.len());
    let names = &WORKLOADS[first..];
    let mut rows = Vec::new();
    if !names.iter().any(|n| wanted(n)) {
        return Ok(rows);
    }
    let images = data.train.images();
    let t = Instant::now();
    let (values, n, d) = rows_f32(images)?;
    let pca = Pca::fit_rows(values, n, d, &PcaParams { dims: 2 })?;
    let (values, _, _) = rows_f32(images)?;
    let points = pca.transform_rows(&values, n, d)?;
    if wanted("pca_60k") {
        rows.push(BenchRow {
            name: "pca_60k".into(),
            seconds: t.elapsed().as_secs_f64(),
            samples: n,
            accuracy: f64::NAN,
        });
        eprintln!("pca_60k: peak memory {:.0} MB", peak_rss_mb());
    }
    let mut timed = |name: &str, n: usize, f: &mut dyn FnMut() -> anyhow::Result<()>| -> anyhow::Result<()> {
        let t = Instant::now();
        f()?;
        rows.push(BenchRow {
            name: name.into(),
            seconds: t.elapsed().as_secs_f64(),
            samples: n,
            accuracy: f64::NAN,
        });
        eprintln!("{name}: peak memory {:.0} MB", peak_rss_mb());
        Ok(())
    };
    if wanted("kmeans_1_10") {
        timed("kmeans_1_10", n, &mut || {
            for k in 1..=10 {
                kmeans(
                    &points,
                    &KMeansParams {
                        seed: 1,
                        ..KMeansParams::new(k)
                    },
                )?;
            }
            Ok(())
        })?;
    }
    if wanted("dbscan_60k_raw") {
        timed("dbscan_60k_raw", n, &mut || {
            Ok(dbscan(
                &points,
                &DbscanParams {
                    eps: 0.1,
                    min_points: 50,
                },
            )
            .map(|_| ())?)
        })?;
    }
    let ward = AgglomerativeParams {
        k: 8,
        linkage: Linkage::Ward,
    };
    if wanted("ward_10k") {
        let small = points.slice(ndarray::s![..10000.min(n), ..]).to_owned();
        timed("ward_10k", small.nrows(), &mut || {
            Ok(agglomerative(&small, &ward).map(|_| ())?)
        })?;
    }
    if wanted("ward_60k") {
        timed("ward_60k", n, &mut || Ok(agglomerative(&points, &ward).map(|_| ())?))?;
    }
    for (linkage, small, full) in [
        (Linkage::Average, "average_10k", "average_60k"),
        (Linkage::Complete, "complete_10k", "complete_60k"),
    ] {
        let p = AgglomerativeParams { k: 8, linkage };
        if wanted(small) {
            let x = points.slice(ndarray::s![..10000.min(n), ..]).to_owned();
            timed(small, x.nrows(), &mut || Ok(agglomerative(&x, &p).map(|_| ())?))?;
        }
        if wanted(full) {
            timed(full, n, &mut || Ok(agglomerative(&points, &p).map(|_| ())?))?;
        }
    }
    if wanted("tsne_5k") {
        let small = to_matrix(&images.narrow(0, 0, 5000.min(n))?)?;
        let p = TsneParams {
            seed: 1,
            ..TsneParams::default()
        };
        timed("tsne_5k", small.nrows(), &mut || {
            Ok(tsne(&small, &p, |_| {}).map(|_| ())?)
        })?;
    }
    Ok(rows)
}

/// The Rhai source of PGD-L∞ with `p`'s budget, steps, seed and batch size, written as a
/// scripted attack (the step is the built-in one's arithmetic, term for term).
fn scripted_pgd_source(p: &PgdParams) -> String {
    format!(
        r#"let eps = {eps:?};
attack(#{{ name: "pgd20_scripted", eps: eps, steps: {steps}, seed: {seed}, batch_size: {bs}, alpha: 2.5 * eps / {steps}.0,
    init: |x, y, state| random_start(x, #{{ eps: state.eps, seed: state.seed }}),
    step: |x, x0, y, model, state| {{
        let g = model.input_gradient(x, y).grad;
        (x0 + (x + state.alpha * g.sign() - x0).clamp(-state.eps, state.eps)).clamp(0.0, 1.0)
    }} }})"#,
        eps = p.eps,
        steps = p.steps,
        seed = p.seed,
        bs = p.batch_size
    )
}

/// One timed workload.
#[derive(Clone, Debug, serde::Serialize)]
pub struct BenchRow {
    pub name: String,
    pub seconds: f64,
    pub samples: usize,
    pub accuracy: f64,
}

/// One epoch (Adam, batch 128, seed 1) of a fresh model under `defence`; the model and seconds.
fn train(arch: Arch, data: &Splits, defence: &TrainingPlan) -> Result<(Model, f64)> {
    let device = data.train.device().clone();
    let model = Model::new(arch, &device, 1)?;
    let p = FitParams {
        seed: 1,
        ..FitParams::default()
    }
    .check()?;
    let t = Instant::now();
    fit_with(&model, &data.train, &p, defence)?;
    device.synchronize()?;
    Ok((model, t.elapsed().as_secs_f64()))
}

/// The training recipes of the benchmark, with `torch_bench.py`'s settings: ε, 10 steps,
/// α = 2.5·ε/10 (PGD training, TRADES with β = 1), fast FGSM with α = 1.25·ε and no guard.
fn recipes(eps: f64) -> Result<Vec<(&'static str, TrainingPlan)>> {
    fn one<R: Recipe + 'static>(r: std::result::Result<R, crate::error::ParamError>) -> Result<TrainingPlan> {
        Ok(TrainingPlan::new(vec![std::rc::Rc::new(r?)])?)
    }
    Ok(vec![
        ("pgd_training", one(PgdTrainingParams::new(eps).check())?),
        (
            "fast_fgsm_training",
            one(FastFgsmParams {
                guard: GuardParams {
                    samples: 0,
                    ..GuardParams::default()
                },
                ..FastFgsmParams::new(eps)
            }
            .check())?,
        ),
        ("trades", one(TradesParams::new(eps).check())?),
    ])
}

/// Samples the CW workloads attack (the first of the test set): CW runs up to 250 steps.
const CW_SAMPLES: usize = 1000;
/// APGD-CE-100 and AutoAttack run on the first APGD_SAMPLES test images (as `torch_bench.py`
/// with torchattacks).
const APGD_SAMPLES: usize = 1000;
/// AutoAttack's budget in the bench: at the bench's ε = 0.3 APGD-CE alone fools every image of an
/// undefended network, so the later stages would have nothing to do (as `torch_bench.py`).
const AUTOATTACK_EPS: f64 = 0.1;

fn time_attack(name: &str, attack: &dyn Attack, model: &Model, data: &crate::data::Dataset) -> Result<BenchRow> {
    let t = Instant::now();
    let adv = perturb(attack, model, data)?;
    model.device().synchronize()?;
    let seconds = t.elapsed().as_secs_f64();
    Ok(BenchRow {
        name: name.into(),
        seconds,
        samples: data.len(),
        accuracy: accuracy(model, &adv)?,
    })
}

/// Run the selected workloads and print a table (with PyTorch ratios when a reference is given).
pub fn run(args: &BenchArgs) -> anyhow::Result<Vec<BenchRow>> {
    for w in &args.only {
        if !WORKLOADS.contains(&w.as_str()) {
            anyhow::bail!("unknown workload `{w}`; choose from {}", WORKLOADS.join(", "));
        }
    }
    let wanted = |w: &str| args.only.is_empty() || args.only.iter().any(|o| o == w);
    let device = crate::device::select(&args.device)?;
    let mut data = load_mnist_like(Which::Mnist, args.data.as_deref(), &device)?;
    if let Some(n) = args.limit {
        data = Splits {
            train: data.train.take(n)?,
            test: data.test.take(n)?,
        };
    }
    let reference: Option<serde_json::Value> = match &args.reference {
        Some(p) => Some(serde_json::from_str(&std::fs::read_to_string(p)?)?),
        None => None,
    };
    // the settings of benches/reference/torch_bench.py, batch 128 as there
    // keep_best off: torch_bench.py returns the last iterate, as Madry et al.
    let pgd = PgdParams {
        steps: 20,
        seed: 1,
        batch_size: 128,
        keep_best: false,
        ..PgdParams::new(args.eps)
    };
    let mut attacks: Vec<(&str, Rc<dyn Attack>)> = vec![
        (
            "fgsm",
            Rc::new(
                FgsmParams {
                    batch_size: 128,
                    ..FgsmParams::new(args.eps)
                }
                .check()?,
            ),
        ),
        ("pgd20", Rc::new(pgd.check()?)),
        (
            "bim20",
            Rc::new(
                PgdParams {
                    random_start: false,
                    ..pgd.clone()
                }
                .check()?,
            ),
        ),
        (
            "pgdl2",
            Rc::new(
                PgdParams {
                    norm: Norm::L2,
                    ..PgdParams {
                        eps: 2.0,
                        ..pgd.clone()
                    }
                }
                .check()?,
            ),
        ),
        (
            "cw",
            Rc::new(
                CwL2Params {
                    batch_size: 128,
                    ..CwL2Params::default()
                }
                .check()?,
            ),
        ),
        (
            "deepfool",
            Rc::new(
                DeepFoolParams {
                    batch_size: 128,
                    ..DeepFoolParams::default()
                }
                .check()?,
            ),
        ),
    ];
    // PGD-20 with the same settings written as a script (README, "Attacks written in a script"):
    // the same adversarial images, so the row's accuracy equals pgd20's; the engine must live
    // while the attack runs
    let (_engine, scripted) = crate::script::attack_from_source(&scripted_pgd_source(&pgd), device.clone(), 1)?;
    attacks.push(("pgd20_scripted", scripted));
    let apgd = ApgdParams {
        seed: 1,
        batch_size: 128,
        ..ApgdParams::new(args.eps)
    };
    attacks.push(("apgd_ce100", Rc::new(apgd.check()?)));
    let cw_data = data.test.take(CW_SAMPLES)?;
    let apgd_data = data.test.take(APGD_SAMPLES)?;
    let recipes = recipes(args.eps)?;
    let mut rows = Vec::new();
    for (prefix, arch) in [("mlp", Arch::mlp(vec![784, 256, 256, 10])?), ("cnn", Arch::cnn())] {
        let epoch = format!("{prefix}_epoch");
        for (r, defence) in &recipes {
            let name = format!("{prefix}_{r}");
            if wanted(&name) {
                let (model, seconds) = train(arch.clone(), &data, defence)?;
                rows.push(BenchRow {
                    name,
                    seconds,
                    samples: data.train.len(),
                    accuracy: accuracy(&model, &data.test)?,
                });
            }
        }
        let needed = wanted(&epoch) || attacks.iter().any(|(a, _)| wanted(&format!("{prefix}_{a}")));
        if !needed {
            continue;
        }
        let (model, secs) = train(arch, &data, &TrainingPlan::none())?;
        if wanted(&epoch) {
            let acc = accuracy(&model, &data.test)?;
            rows.push(BenchRow {
                name: epoch,
                seconds: secs,
                samples: data.train.len(),
                accuracy: acc,
            });
        }
        for (a, attack) in &attacks {
            let name = format!("{prefix}_{a}");
            if wanted(&name) {
                let set = match *a {
                    "cw" => &cw_data,
                    "apgd_ce100" => &apgd_data,
                    _ => &data.test,
                };
                rows.push(time_attack(&name, attack.as_ref(), &model, set)?);
            }
        }
        let name = format!("{prefix}_autoattack");
        if wanted(&name) {
            let p = AutoAttackParams {
                seed: 1,
                batch_size: 128,
                ..AutoAttackParams::new(AUTOATTACK_EPS)
            };
            let t = Instant::now();
            let r = autoattack(&model, &apgd_data, &p)?;
            model.device().synchronize()?;
            rows.push(BenchRow {
                name,
                seconds: t.elapsed().as_secs_f64(),
                samples: apgd_data.len(),
                accuracy: r.robust_accuracy,
            });
        }
    }
    rows.extend(cluster_rows(&data, &wanted)?);
    println!(
        "advlab {} bench on {} ({} CPU threads), train {} / test {} samples, eps {}",
        env!("CARGO_PKG_VERSION"),
        crate::device::name(&device),
        candle_core::utils::get_num_threads(),
        data.train.len(),
        data.test.len(),
        args.eps
    );
    println!(
        "{:<11} {:>9} {:>11} {:>9} {:>10} {:>7}",
        "workload", "seconds", "samples/s", "accuracy", "ref s", "ratio"
    );
    for r in &rows {
        let torch = reference
            .as_ref()
            .and_then(|j| j["results"][&r.name]["seconds"].as_f64());
        let (ts, ratio) = match torch {
            Some(t) => (format!("{t:.3}"), format!("{:.2}", r.seconds / t)),
            None => ("-".into(), "-".into()),
        };
        println!(
            "{:<14} {:>9.3} {:>11.0} {:>9} {:>10} {:>7}",
            r.name,
            r.seconds,
            r.samples as f64 / r.seconds.max(1e-9),
            if r.accuracy.is_nan() {
                "-".to_string()
            } else {
                format!("{:.4}", r.accuracy)
            },
            ts,
            ratio
        );
    }
    if let Some(p) = &args.json {
        let j = serde_json::json!({ "advlab": env!("CARGO_PKG_VERSION"), "device": crate::device::name(&device), "eps": args.eps, "results": rows });
        crate::output::write_atomic(p, serde_json::to_string_pretty(&j)?.as_bytes())?;
    }
    Ok(rows)
}
