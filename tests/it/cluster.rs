//! Reduction and clustering: known answers, reproducibility, errors, and the cluster-based
//! training pipeline from a script.

use crate::common::{advlab, script};
use advlab::cluster::{
    adjusted_rand, agglomerative, dbscan, kmeans, AgglomerativeParams, Clusterer, Clustering, DbscanParams,
    KMeansParams, Linkage,
};
use advlab::reduce::{Pca, PcaParams, PcaReducer, Reducer, TsneParams, TsneReducer};
use advlab::ParamError;
use ndarray::Array2;
use predicates::str::contains;
use rand::{rngs::StdRng, Rng, SeedableRng};

/// Three well-separated Gaussian blobs in 2-D, 200 points each, and their labels.
fn blobs(seed: u64) -> (Array2<f64>, Vec<Option<usize>>) {
    let mut rng = StdRng::seed_from_u64(seed);
    let centers = [(0.0, 0.0), (10.0, 0.0), (0.0, 10.0)];
    let mut pts = Vec::new();
    let mut labels = Vec::new();
    for (c, (cx, cy)) in centers.iter().enumerate() {
        for _ in 0..200 {
            // Box–Muller normal noise of standard deviation 0.5
            let (u, v): (f64, f64) = (rng.random_range(1e-12..1.0), rng.random_range(0.0..1.0));
            let r = (-2.0 * u.ln()).sqrt() * 0.5;
            pts.extend([
                cx + r * (std::f64::consts::TAU * v).cos(),
                cy + r * (std::f64::consts::TAU * v).sin(),
            ]);
            labels.push(Some(c));
        }
    }
    (Array2::from_shape_vec((600, 2), pts).unwrap(), labels)
}

#[test]
fn kmeans_and_dbscan_recover_separated_blobs() {
    let (x, truth) = blobs(1);
    let km = kmeans(
        &x,
        &KMeansParams {
            seed: 3,
            ..KMeansParams::new(3)
        },
    )
    .unwrap();
    assert!(adjusted_rand(km.labels(), &truth) >= 0.95, "{km}");
    assert_eq!(km.n_clusters(), 3);
    assert!(km.inertia().unwrap() > 0.0);
    let db = dbscan(
        &x,
        &DbscanParams {
            eps: 1.0,
            min_points: 5,
        },
    )
    .unwrap();
    assert!(adjusted_rand(db.labels(), &truth) >= 0.95, "{db}");
    assert_eq!(db.n_clusters(), 3);
    // a far outlier is noise
    let mut with_outlier = x.clone().into_raw_vec_and_offset().0;
    with_outlier.extend([100.0, 100.0]);
    let x2 = Array2::from_shape_vec((601, 2), with_outlier).unwrap();
    let db = dbscan(
        &x2,
        &DbscanParams {
            eps: 1.0,
            min_points: 5,
        },
    )
    .unwrap();
    assert_eq!(db.labels()[600], None);
    assert_eq!(db.noise(), 1);
}

#[test]
fn adjusted_rand_is_one_for_relabelled_partitions_and_near_zero_for_chance() {
    let a: Vec<Option<usize>> = (0..300).map(|i| Some(i % 3)).collect();
    let b: Vec<Option<usize>> = (0..300).map(|i| Some((i + 1) % 3)).collect();
    assert!((adjusted_rand(&a, &b) - 1.0).abs() < 1e-12);
    let mut rng = StdRng::seed_from_u64(0);
    let c: Vec<Option<usize>> = (0..300).map(|_| Some(rng.random_range(0..3))).collect();
    assert!(adjusted_rand(&a, &c).abs() < 0.05);
}

#[test]
fn pca_finds_the_principal_axes_and_variance_ratios() {
    // z ~ N(0, diag(9, 1, 0.01)), rotated: the axes are the rotation's columns
    let mut rng = StdRng::seed_from_u64(2);
    let (c, s) = (0.6f64, 0.8f64);
    let rot = [[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]];
    let sd = [3.0, 1.0, 0.1];
    let n = 20000;
    let mut data = Vec::with_capacity(n * 3);
    for _ in 0..n {
        let z: Vec<f64> = sd
            .iter()
            .map(|s| {
                let (u, v): (f64, f64) = (rng.random_range(1e-12..1.0), rng.random_range(0.0..1.0));
                s * (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
            })
            .collect();
        for row in &rot {
            data.push(5.0 + row.iter().zip(&z).map(|(a, b)| a * b).sum::<f64>());
        }
    }
    let x = Array2::from_shape_vec((n, 3), data).unwrap();
    let pca = Pca::fit(&x, &PcaParams { dims: 2 }).unwrap();
    for (k, axis) in [[c, s, 0.0], [-s, c, 0.0]].iter().enumerate() {
        let dot: f64 = pca.components().row(k).iter().zip(axis).map(|(a, b)| a * b).sum();
        assert!(dot.abs() > 0.999, "component {k} is off its axis: {dot}");
    }
    let ratio = pca.explained_variance_ratio();
    assert!(
        (ratio[0] - 9.0 / 10.01).abs() < 0.02 && (ratio[1] - 1.0 / 10.01).abs() < 0.01,
        "{ratio:?}"
    );
    let y = pca.transform(&x).unwrap();
    assert_eq!(y.dim(), (n, 2));
    assert!(y.column(0).var(0.0) > 8.0 && y.column(1).var(0.0) < 1.2);
}

#[test]
fn clustering_and_picking_are_reproducible() {
    let (x, _) = blobs(4);
    let p = KMeansParams {
        seed: 11,
        n_init: 3,
        ..KMeansParams::new(5)
    };
    let (a, b) = (kmeans(&x, &p).unwrap(), kmeans(&x, &p).unwrap());
    assert_eq!(a, b);
    assert_eq!(a.pick_random(7).unwrap(), b.pick_random(7).unwrap());
    let picks: std::collections::HashSet<usize> = (0..50).map(|s| a.pick_random(s).unwrap()).collect();
    assert!(picks.len() > 1, "different seeds should pick different clusters");
    assert_eq!(
        a.members(a.largest().unwrap()).unwrap().len(),
        *a.sizes().iter().max().unwrap()
    );
}

#[test]
fn clustering_rules_each_have_their_error() {
    assert_eq!(KMeansParams::new(0).check_for(10).unwrap_err(), ParamError::KZero);
    assert_eq!(
        KMeansParams::new(11).check_for(10).unwrap_err(),
        ParamError::KTooLarge { k: 11, points: 10 }
    );
    assert_eq!(
        DbscanParams {
            eps: 0.0,
            min_points: 3
        }
        .check()
        .unwrap_err(),
        ParamError::DbscanEps(0.0)
    );
    assert_eq!(
        DbscanParams {
            eps: 1.0,
            min_points: 1
        }
        .check()
        .unwrap_err(),
        ParamError::MinPoints(1)
    );
    assert_eq!(
        PcaParams { dims: 4 }.check_for(3).unwrap_err(),
        ParamError::DimsOutOfRange { dims: 4, features: 3 }
    );
    // the rules that need no points hold when the algorithm is made, k and dims when it meets them
    assert!(KMeansParams::new(11).check().is_ok());
    assert_eq!(AgglomerativeParams::new(0).check().unwrap_err(), ParamError::KZero);
    assert_eq!(
        AgglomerativeParams::new(11).check_for(10).unwrap_err(),
        ParamError::KTooLarge { k: 11, points: 10 }
    );
    assert_eq!(PcaParams { dims: 0 }.check().unwrap_err(), ParamError::PcaDimsZero);
    assert_eq!(
        TsneParams {
            perplexity: -1.0,
            ..TsneParams::default()
        }
        .check()
        .unwrap_err(),
        ParamError::PerplexityNotPositive(-1.0)
    );
    assert!(TsneReducer::new(TsneParams::default()).is_ok());
    let all_noise = Clustering::new(vec![None; 5], None, "dbscan");
    assert!(all_noise
        .pick_random(0)
        .unwrap_err()
        .to_string()
        .contains("every point is noise"));
    assert!(Clustering::new(vec![Some(0); 3], None, "x")
        .members(1)
        .unwrap_err()
        .to_string()
        .contains("does not exist"));
}

#[test]
fn the_cluster_based_training_pipeline_runs_from_a_script() {
    let tmp = tempfile::tempdir().unwrap();
    let s = script(
        tmp.path(),
        "c.rhai",
        r#"let data = synthetic(#{ train: 2000, test: 300, seed: 1 });
let base = mlp([784, 64, 10]);
base.fit(data.train, #{ epochs: 1, seed: 1 });
let attack = fgsm(#{ eps: 0.2 });
let adv = attack.perturb(base, data.train);
let reducer = pca(#{ dims: 2 });
let points = reducer.fit_transform(adv);
let clusters = kmeans(#{ k: 4, seed: 1 }).fit(points);
let chosen = clusters.pick_random(1);
let model = base.clone();
model.fit(adv.subset(clusters.members(chosen)), #{ epochs: 1, seed: 1 });
let r = evaluate(model, data.test, [attack]);
print(`${clusters.n_clusters()} ${clusters.sizes().len()} ${points.shape()} ${reducer.explained_variance_ratio().len()}`);
print(`${adv.subset(clusters.members(chosen)).len() == clusters.size(chosen)} ${r.keys()}`);
let noisy = dbscan(#{ eps: 0.05, min_points: 10 }).fit(points);
print(noisy.labels().len());"#,
    );
    advlab()
        .arg("run")
        .arg(&s)
        .assert()
        .success()
        .stdout(contains("4 4 [2000, 2] 2\ntrue [\"clean\", \"fgsm\"]\n2000\n"));
    let bad = script(
        tmp.path(),
        "bad.rhai",
        "let p = synthetic(#{ train: 20, test: 5 }).test.flatten();\nlet c = kmeans(#{ k: 9 }).fit(p);",
    );
    advlab()
        .arg("run")
        .arg(&bad)
        .assert()
        .failure()
        .stderr(contains("k = 9 is larger than the number of points (5)"))
        .stderr(contains("bad.rhai:2:27"));
    let bad = script(
        tmp.path(),
        "bad2.rhai",
        "let r = pca(#{ dims: 3000 }).fit_transform(synthetic(#{ train: 20, test: 5 }).test);",
    );
    advlab().arg("run").arg(&bad).assert().failure().stderr(contains(
        "dims must be between 1 and the number of input features (784), got 3000",
    ));
    let bad = script(tmp.path(), "bad3.rhai", "let c = dbscan(#{ eps: -1.0 });");
    advlab()
        .arg("run")
        .arg(&bad)
        .assert()
        .failure()
        .stderr(contains("eps (the neighbourhood radius) must be a finite number > 0"))
        .stderr(contains("bad3.rhai:1:9"));
}

const LINKAGES: [advlab::cluster::Linkage; 4] = [
    advlab::cluster::Linkage::Ward,
    advlab::cluster::Linkage::Average,
    advlab::cluster::Linkage::Complete,
    advlab::cluster::Linkage::Single,
];

/// Average and complete linkage recompute distances from the members (and complete linkage
/// keeps convex hulls in 2-D): check them where that is most fragile, on collinear points, in
/// 1, 3 and 5 dimensions, and on clusters big enough for the parallel exact distance.
#[test]
fn member_linkages_equal_brute_force_in_other_shapes() {
    use advlab::cluster::{agglomerative, agglomerative_brute_force, AgglomerativeParams, Linkage};
    let mut rng = StdRng::seed_from_u64(11);
    let line: Vec<f64> = (0..40).map(|_| rng.random_range(0.0..1.0)).collect();
    let collinear = Array2::from_shape_fn((40, 2), |(i, j)| if j == 0 { line[i] } else { 2.0 * line[i] + 1.0 });
    let mut inputs = vec![collinear];
    for d in [1, 3, 5] {
        inputs.push(Array2::from_shape_fn((30, d), |_| rng.random_range(-1.0..1.0)));
    }
    // two far groups of 150 points each: the last merges take the parallel exact distance
    inputs.push(Array2::from_shape_fn((300, 2), |(i, _)| {
        rng.random_range(0.0..1.0) + if i < 150 { 0.0 } else { 5.0 }
    }));
    for x in &inputs {
        for linkage in [Linkage::Average, Linkage::Complete] {
            let ks: &[usize] = if x.nrows() > 100 { &[2, 3] } else { &[1, 2, 4, 7] };
            for &k in ks {
                let ours = agglomerative(x, &AgglomerativeParams { k, linkage }).unwrap();
                let reference = agglomerative_brute_force(x, k, linkage);
                let ari = adjusted_rand(ours.labels(), &reference);
                assert!(
                    (ari - 1.0).abs() < 1e-12,
                    "{linkage:?} k {k} shape {:?}: ARI {ari}",
                    x.dim()
                );
            }
        }
    }
}

#[test]
fn o_n_memory_agglomerative_equals_brute_force() {
    use advlab::cluster::{agglomerative, agglomerative_brute_force, AgglomerativeParams};
    for seed in 0..6u64 {
        let mut rng = StdRng::seed_from_u64(seed);
        let n = 12 + (seed as usize) * 7;
        let x = Array2::from_shape_fn((n, 2), |_| rng.random_range(0.0..1.0));
        for linkage in LINKAGES {
            for k in [1, 2, 3, 5, n] {
                let ours = agglomerative(&x, &AgglomerativeParams { k, linkage }).unwrap();
                let reference = agglomerative_brute_force(&x, k, linkage);
                assert_eq!(ours.n_clusters(), k);
                let ari = adjusted_rand(ours.labels(), &reference);
                assert!((ari - 1.0).abs() < 1e-12, "{linkage:?} k {k} seed {seed}: ARI {ari}");
            }
        }
    }
}

#[test]
fn agglomerative_recovers_separated_blobs() {
    use advlab::cluster::{agglomerative, AgglomerativeParams, Linkage};
    let (x, truth) = blobs(5);
    for linkage in LINKAGES {
        let c = agglomerative(&x, &AgglomerativeParams { k: 3, linkage }).unwrap();
        assert!(adjusted_rand(c.labels(), &truth) >= 0.95, "{linkage:?}: {c}");
    }
    assert_eq!(
        Linkage::parse("centroid").unwrap_err(),
        ParamError::UnknownLinkage("centroid".into())
    );
}

#[test]
fn tsne_keeps_separated_blobs_apart_and_is_seeded() {
    use advlab::reduce::{tsne, TsneParams};
    // three blobs in 10-D, 80 points each
    let mut rng = StdRng::seed_from_u64(8);
    let mut data = Vec::new();
    let mut truth = Vec::new();
    for c in 0..3 {
        for _ in 0..80 {
            for j in 0..10 {
                let center = if j == c { 20.0 } else { 0.0 };
                data.push(center + rng.random_range(-1.0..1.0));
            }
            truth.push(Some(c));
        }
    }
    let x = Array2::from_shape_vec((240, 10), data).unwrap();
    let p = TsneParams {
        perplexity: 20.0,
        iterations: 400,
        seed: 3,
        ..TsneParams::default()
    };
    let y = tsne(&x, &p, |_| {}).unwrap();
    assert_eq!(y.dim(), (240, 2));
    let c = kmeans(
        &y,
        &KMeansParams {
            seed: 1,
            ..KMeansParams::new(3)
        },
    )
    .unwrap();
    assert!(adjusted_rand(c.labels(), &truth) >= 0.95, "{c}");
    assert_eq!(y, tsne(&x, &p, |_| {}).unwrap(), "same seed, same embedding");
    assert_ne!(y, tsne(&x, &TsneParams { seed: 4, ..p.clone() }, |_| {}).unwrap());
    assert_eq!(
        TsneParams {
            perplexity: 240.0,
            ..p.clone()
        }
        .check_for(240)
        .unwrap_err(),
        ParamError::Perplexity {
            perplexity: 240.0,
            points: 240
        }
    );
    assert_eq!(
        TsneParams { iterations: 10, ..p }.check_for(240).unwrap_err(),
        ParamError::TsneIterations(10)
    );
}

/// The configurations of a run of the reproduction whose JSON rows are finished, with their
/// contents.
fn finished_rows(dir: &std::path::Path) -> std::collections::BTreeMap<String, String> {
    let Ok(entries) = std::fs::read_dir(dir.join("runs")) else {
        return Default::default();
    };
    entries
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json") && !p.to_string_lossy().ends_with(".meta.json"))
        .map(|p| {
            let text = std::fs::read_to_string(&p).unwrap();
            (p.file_name().unwrap().to_string_lossy().into_owned(), text)
        })
        .collect()
}

/// The quick reproduction writes every table and figure; killed with SIGKILL in the middle and
/// run again, it recomputes none of the configurations finished before the kill (their rows are
/// untouched and it does not announce them) and ends with the tables of an uninterrupted run;
/// a third run trains nothing.
#[test]
fn the_reproduction_runs_quick_and_resumes_after_a_sigkill() {
    let tmp = tempfile::tempdir().unwrap();
    crate::common::small_mnist(&tmp.path().join("mnist"), 2000, 300);
    let script = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("scripts/reproduce/cluster_adversarial_training.rhai");
    let run = |out: &str| {
        let out = advlab()
            .env("ADVLAB_DATA", tmp.path())
            .arg("run")
            .arg(&script)
            .arg("quick=true")
            .arg("--out")
            .arg(tmp.path().join(out))
            .assert()
            .success()
            .get_output()
            .clone();
        (
            String::from_utf8(out.stdout).unwrap(),
            String::from_utf8(out.stderr).unwrap(),
        )
    };
    let (first, _) = run("out");
    assert!(
        first.contains("Table 1") && first.contains("Table 2") && first.contains("Table 3"),
        "{first}"
    );
    let dir = tmp.path().join("out/cluster_at/quick");
    for f in [
        "table1_fgsm.csv",
        "table2_pgd.csv",
        "table3.csv",
        "figure1_fgsm_avg.svg",
        "figure2_pgd_adv.png",
        "figure3_reduction.png",
        "scatter_clusters.png",
        "scatter_labels.png",
    ] {
        assert!(dir.join(f).is_file(), "missing {f}");
    }
    let table: Vec<csv::StringRecord> = csv::Reader::from_path(dir.join("table1_fgsm.csv"))
        .unwrap()
        .records()
        .map(|r| r.unwrap())
        .collect();
    assert_eq!(table.len(), 3, "k = 1..3 in quick mode");
    // k = 1 is the whole adversarial set: it must equal classic adversarial training
    let t3 = std::fs::read_to_string(dir.join("table3.csv")).unwrap();
    assert!(
        t3.contains("classic adversarial training") && t3.contains("kmeans k="),
        "{t3}"
    );
    let all = finished_rows(&dir).len();

    // the same run in another folder, killed (SIGKILL: no handler runs) once two rows are done
    let killed_dir = tmp.path().join("killed/cluster_at/quick");
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("advlab"))
        .env("ADVLAB_OFFLINE", "1")
        .env("ADVLAB_DATA", tmp.path())
        .arg("run")
        .arg(&script)
        .arg("quick=true")
        .arg("--out")
        .arg(tmp.path().join("killed"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(600);
    while finished_rows(&killed_dir).len() < 2 {
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run ended before it could be killed"
        );
        assert!(std::time::Instant::now() < deadline, "no row finished in 10 minutes");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let before = finished_rows(&killed_dir);
    assert!(
        before.len() < all,
        "{} of {all} rows were finished at the kill",
        before.len()
    );
    for (name, text) in &before {
        assert!(
            serde_json::from_str::<serde_json::Value>(text).is_ok(),
            "{name} is not whole: {text}"
        );
    }
    let (resumed, _) = run("killed");
    for name in before.keys() {
        assert!(
            !resumed.contains(name.as_str()),
            "the rerun computed {name} again:\n{resumed}"
        );
    }
    let after = finished_rows(&killed_dir);
    for (name, text) in &before {
        assert_eq!(after.get(name), Some(text), "{name} changed");
    }
    assert_eq!(after.len(), all);
    for table in ["table1_fgsm.csv", "table2_pgd.csv", "table3.csv"] {
        assert_eq!(
            std::fs::read_to_string(killed_dir.join(table)).unwrap(),
            std::fs::read_to_string(dir.join(table)).unwrap(),
            "{table} of the killed and resumed run differs from the uninterrupted run's"
        );
    }

    // a third run reuses every finished configuration: no training, identical tables
    let (third, stderr) = run("out");
    assert!(!stderr.contains("fit cnn"), "the rerun trained again:\n{stderr}");
    let table_of = |s: &str| s[s.find("Table 1").unwrap()..].to_string();
    assert_eq!(table_of(&first), table_of(&third));

    // the same experiment as a sweep of its point script (a setup run, then one process per
    // configuration, two at a time), collected and drawn: the same tables to the last digit
    let reproduce = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/reproduce");
    let sweep = tmp.path().join("sweep");
    advlab()
        .env("ADVLAB_DATA", tmp.path())
        .arg("sweep")
        .arg(reproduce.join("cluster_point.rhai"))
        .arg("--grid-file")
        .arg(reproduce.join("cluster_grid_quick.json"))
        .args(["--setup", "--jobs", "2", "--out"])
        .arg(&sweep)
        .assert()
        .success()
        .stderr(predicates::str::contains("21/21 points done"));
    advlab()
        .args(["sweep", "collect"])
        .arg(&sweep)
        .args(["--by", "attack,method,k,reduction"])
        .assert()
        .success();
    let report = advlab()
        .arg("run")
        .arg(reproduce.join("cluster_sweep_report.rhai"))
        .arg(format!("dir={:?}", sweep.display().to_string()))
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let report = String::from_utf8(report).unwrap();
    let printed = |s: &str| {
        table_of(s)
            .lines()
            .filter(|l| !l.starts_with("wrote"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert_eq!(printed(&first), printed(&report));
    for table in ["table1_fgsm.csv", "table2_pgd.csv", "table3.csv"] {
        assert_eq!(
            std::fs::read_to_string(sweep.join("report").join(table)).unwrap(),
            std::fs::read_to_string(dir.join(table)).unwrap(),
            "{table} of the sweep differs from the serial run's"
        );
    }
}

#[test]
fn pca_of_many_features_takes_the_top_axes_by_subspace_iteration() {
    // 100 features with standard deviations 5, 3, then 1: the axes are e0 and e1
    let mut rng = StdRng::seed_from_u64(9);
    let (n, d) = (5000, 100);
    let x = Array2::from_shape_fn((n, d), |(_, j)| {
        let s = match j {
            0 => 5.0,
            1 => 3.0,
            _ => 1.0,
        };
        s * rng.random_range(-1.0..1.0) * 3f64.sqrt()
    });
    let pca = Pca::fit(&x, &PcaParams { dims: 2 }).unwrap();
    assert!(
        pca.components()[[0, 0]].abs() > 0.99 && pca.components()[[1, 1]].abs() > 0.99,
        "{:?}",
        pca.components().row(0)
    );
    let ratio = pca.explained_variance_ratio();
    let total = 25.0 + 9.0 + 98.0;
    assert!(
        (ratio[0] - 25.0 / total).abs() < 0.02 && (ratio[1] - 9.0 / total).abs() < 0.02,
        "{ratio:?}"
    );
}

#[test]
fn clusterers_and_reducers_are_traits_and_the_merge_tree_is_reused_only_for_the_same_points() {
    let (x, truth) = blobs(5);
    let algorithms: Vec<Box<dyn Clusterer>> = vec![
        Box::new(KMeansParams::new(3)),
        Box::new(DbscanParams::new(1.0)),
        Box::new(AgglomerativeParams::new(3)),
    ];
    for a in &algorithms {
        let c = a.fit(&x).unwrap();
        assert!(adjusted_rand(c.labels(), &truth) > 0.95, "{a}: {c}");
        assert_eq!(a.params()["algorithm"], a.name());
    }
    assert_eq!(
        AgglomerativeParams::new(3).to_string(),
        "agglomerative(k=3, linkage=ward)"
    );
    // a sweep over k through the trait (one tree, cut k times) equals building the tree each time
    for linkage in [Linkage::Ward, Linkage::Single] {
        for k in 1..6 {
            let p = AgglomerativeParams { k, linkage };
            assert_eq!(p.fit(&x).unwrap().labels(), agglomerative(&x, &p).unwrap().labels());
        }
    }
    // other points do not reuse the tree: one far outlier is a cluster of its own at k = 2
    let mut y = x.clone();
    y[[0, 0]] = 1e4;
    let c = AgglomerativeParams::new(2).fit(&y).unwrap();
    assert_eq!(c.sizes().iter().min(), Some(&1), "{c}");
    assert_eq!(
        c.labels(),
        agglomerative(&y, &AgglomerativeParams::new(2)).unwrap().labels()
    );

    // PCA through the trait: fitted once, then projecting; its record names what it found
    let t = candle_core::Tensor::from_vec(
        x.iter().map(|v| *v as f32).collect::<Vec<_>>(),
        (600, 2),
        &candle_core::Device::Cpu,
    )
    .unwrap();
    let mut pca = PcaReducer::new(PcaParams { dims: 1 }).unwrap();
    assert!(pca.transform(&t).unwrap_err().to_string().contains("call fit"));
    let record = pca.fit(&t).unwrap();
    assert_eq!(record["points"], 600);
    let direct = Pca::fit(&x, &PcaParams { dims: 1 }).unwrap().transform(&x).unwrap();
    let through = pca.transform(&t).unwrap();
    let diff = direct
        .iter()
        .zip(through.iter())
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f64::max);
    assert!(diff < 1e-3, "{diff}");
    let mut tsne = TsneReducer::new(TsneParams::default()).unwrap();
    assert!(tsne.fit(&t).unwrap_err().to_string().contains("use fit_transform"));
}

#[test]
fn centroids_are_the_members_means_and_noise_has_none() {
    let pts = Array2::from_shape_vec((5, 2), vec![0.0, 0.0, 2.0, 0.0, 10.0, 10.0, 12.0, 14.0, 99.0, 99.0]).unwrap();
    let c = Clustering::new(vec![Some(0), Some(0), Some(1), Some(1), None], None, "test")
        .with_centroids(&pts)
        .unwrap();
    let m = c.centroids().unwrap();
    assert_eq!(m.dim(), (2, 2));
    assert_eq!(m.row(0).to_vec(), vec![1.0, 0.0]);
    assert_eq!(
        m.row(1).to_vec(),
        vec![11.0, 12.0],
        "the noise point (99, 99) is in no centroid"
    );
    let json = c.to_json();
    assert_eq!(json["labels"], serde_json::json!([0, 0, 1, 1, -1]));
    assert_eq!(json["centroids"], serde_json::json!([[1.0, 0.0], [11.0, 12.0]]));
    assert!(Clustering::new(vec![Some(0)], None, "test")
        .with_centroids(&pts)
        .is_err());
}

#[test]
fn a_clustering_leaves_a_script_as_json_and_tensors() {
    let tmp = tempfile::tempdir().unwrap();
    let s = script(
        tmp.path(),
        "save.rhai",
        r#"let data = synthetic(#{ train: 300, test: 10, seed: 1 });
let points = pca(#{ dims: 2 }).fit_transform(data.train);
let c = kmeans(#{ k: 3, seed: 1 }).fit(points);
c.save("out/clusters.json");
print(`labels ${c.labels()}`);
print(`tensor ${c.labels_tensor().to_array()}`);
print(`centroids ${c.centroids().shape()}`);"#,
    );
    let out = advlab()
        .current_dir(tmp.path())
        .arg("run")
        .arg(&s)
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let out = String::from_utf8(out).unwrap();
    let line = |p: &str| out.lines().find_map(|l| l.strip_prefix(p)).unwrap().to_string();
    let labels: Vec<i64> = serde_json::from_str(&line("labels ")).unwrap();
    // to_array gives floats
    let tensor: Vec<f64> = serde_json::from_str(&line("tensor ")).unwrap();
    assert_eq!(labels.len(), 300);
    let as_float: Vec<f64> = labels.iter().map(|&l| l as f64).collect();
    assert_eq!(tensor, as_float, "labels_tensor holds the labels");
    assert_eq!(line("centroids "), "[3, 2]");
    let saved: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(tmp.path().join("out/clusters.json")).unwrap()).unwrap();
    assert_eq!(
        saved["labels"],
        serde_json::json!(labels),
        "the file holds the same labels"
    );
    assert_eq!(saved["n_clusters"], 3);
    let sizes: Vec<usize> = serde_json::from_value(saved["sizes"].clone()).unwrap();
    assert_eq!(sizes.iter().sum::<usize>(), 300);
    assert_eq!(saved["centroids"].as_array().unwrap().len(), 3);
    assert!(
        saved["algorithm"].as_str().unwrap().contains("k=3"),
        "{}",
        saved["algorithm"]
    );
    assert!(saved["inertia"].as_f64().unwrap() > 0.0);
    let meta = std::fs::read_to_string(tmp.path().join("out/clusters.json.meta.json")).unwrap();
    assert!(meta.contains("\"seed\"") && meta.contains("\"device\""), "{meta}");
}
