//! Looking inside clusterings: summary, purity, label histogram, silhouette, and the charts
//! (mean images, sample grids, the inertia curve), from Rust and from a script.

use crate::common::{advlab, script};
use advlab::cluster::{
    inertia_curve, kmeans, label_histogram, purity, silhouette, summary, Clustering, InertiaParams, KMeansParams,
};
use ndarray::Array2;
use predicates::str::contains;
use rand::{rngs::StdRng, Rng, SeedableRng};

/// `k` tight blobs of `per` points each, 20 apart on a line, and their labels.
fn blobs(k: usize, per: usize, seed: u64) -> (Array2<f64>, Vec<usize>) {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut pts = Vec::new();
    let mut labels = Vec::new();
    for c in 0..k {
        for _ in 0..per {
            pts.push(20.0 * c as f64 + rng.random_range(-0.5..0.5));
            pts.push(rng.random_range(-0.5..0.5));
            labels.push(c);
        }
    }
    (Array2::from_shape_vec((k * per, 2), pts).unwrap(), labels)
}

fn partition(labels: &[i64]) -> Clustering {
    Clustering::new(labels.iter().map(|&l| usize::try_from(l).ok()).collect(), None, "given")
}

#[test]
fn purity_and_summary_of_a_known_partition() {
    // clusters {0,0,1 | 1,1,1,2 | noise 2,2}
    let c = partition(&[0, 0, 0, 1, 1, 1, 1, -1, -1]);
    let labels = [0, 0, 1, 1, 1, 1, 2, 2, 2];
    // majorities: 2 of 3, 3 of 4, noise 2 of 2 → 7 / 9
    assert!((purity(&c, &labels).unwrap() - 7.0 / 9.0).abs() < 1e-12);
    let rows = summary(&c, &labels, 3).unwrap();
    assert_eq!(rows.iter().map(|r| r.size).sum::<usize>(), 9);
    assert_eq!(
        rows.iter().map(|r| (r.cluster, r.majority)).collect::<Vec<_>>(),
        [(Some(0), Some(0)), (Some(1), Some(1)), (None, Some(2))]
    );
    assert!((rows[1].share - 4.0 / 9.0).abs() < 1e-12);
    assert_eq!(rows[1].histogram_text(), "1:3 2:1");
    assert_eq!(label_histogram(&c, &labels, 3).unwrap(), [vec![2, 1, 0], vec![0, 3, 1]]);
    // a perfect partition has purity 1
    assert_eq!(purity(&partition(&[0, 0, 1, 1]), &[5, 5, 7, 7]).unwrap(), 1.0);
    assert!(purity(&c, &[0, 1])
        .unwrap_err()
        .to_string()
        .contains("2 labels for a clustering of 9 points"));
}

#[test]
fn silhouette_is_near_one_on_separated_blobs_and_seeded_when_sampled() {
    let (x, truth) = blobs(3, 300, 1);
    let c = partition(&truth.iter().map(|&l| l as i64).collect::<Vec<_>>());
    let full = silhouette(&c, &x, 5000, 0).unwrap();
    assert!(!full.sampled && full.points == 900 && full.total == 900);
    assert!(full.score > 0.9, "{full:?}");
    // a random partition of the same points scores about 0
    let random: Vec<i64> = (0..900).map(|i| (i * 7 % 3) as i64).collect();
    let bad = silhouette(&partition(&random), &x, 5000, 0).unwrap();
    assert!(bad.score.abs() < 0.1, "{bad:?}");
    // sampled: the same seed gives the same score, the size is as asked
    let a = silhouette(&c, &x, 200, 7).unwrap();
    let b = silhouette(&c, &x, 200, 7).unwrap();
    assert!(a.sampled && a.points == 200 && a.total == 900);
    assert_eq!(a, b);
    assert!((a.score - full.score).abs() < 0.02);
    // one cluster has no silhouette
    let err = silhouette(&partition(&[0; 900]), &x, 5000, 0).unwrap_err();
    assert!(err.to_string().contains("at least 2 clusters"), "{err}");
}

#[test]
fn the_inertia_curve_falls_to_an_elbow_at_the_true_k() {
    let (x, _) = blobs(3, 100, 2);
    let curve = inertia_curve(
        &x,
        &InertiaParams {
            k_min: 1,
            k_max: 5,
            n_init: 3,
            seed: 1,
        },
    )
    .unwrap();
    assert_eq!(curve.iter().map(|c| c.0).collect::<Vec<_>>(), [1, 2, 3, 4, 5]);
    for w in curve.windows(2) {
        assert!(w[1].1 <= w[0].1 + 1e-9, "{curve:?}");
    }
    // the drop from 2 to 3 is large, from 3 to 4 small: the elbow
    assert!(curve[1].1 - curve[2].1 > 10.0 * (curve[2].1 - curve[3].1), "{curve:?}");
    let km = kmeans(
        &x,
        &KMeansParams {
            seed: 1,
            n_init: 3,
            ..KMeansParams::new(3)
        },
    )
    .unwrap();
    assert!((km.inertia().unwrap() - curve[2].1).abs() < 1e-9);
}

#[test]
fn exploration_functions_work_from_a_script_and_write_charts() {
    let tmp = tempfile::tempdir().unwrap();
    let s = script(
        tmp.path(),
        "explore.rhai",
        r#"
let d = synthetic(#{ train: 300, test: 200, seed: 2 }).test;
let points = pca(#{ dims: 2 }).fit_transform(d);
let c = kmeans(#{ k: 5, seed: 1 }).fit(points);
let rows = c.summary(d);
let total = 0;
for r in rows { total += r.size; }
print(`rows ${rows.len()} total ${total}`);
print(`purity ${c.purity(d.labels()) == c.purity(d)}`);
let h = c.label_histogram(d.labels());
print(`histogram ${h.len()}x${h[0].len()}`);
let s = silhouette(c, points, #{ max_points: 100, seed: 4 });
print(`silhouette sampled ${s.sampled} points ${s.points} of ${s.of}`);
write_csv("out/summary.csv", rows);
c.mean_images(d).save("out/means.png");
c.mean_images(d, #{ title: "means", cols: 5 }).save("out/means.svg");
samples_grid(d.subset(c.members(0)), #{ n: 16, seed: 3 }).save("out/c0.png");
inertia_chart(points, #{ k_max: 4, n_init: 2, seed: 1 }).save("out/elbow.svg");
scatter_chart(points, c, #{ highlight: 1 }).save("out/scatter.png");
"#,
    );
    advlab()
        .arg("run")
        .arg(&s)
        .arg("--out")
        .arg(tmp.path())
        .assert()
        .success()
        .stdout(contains("rows 5 total 200"))
        .stdout(contains("purity true"))
        .stdout(contains("histogram 5x10"))
        .stdout(contains("silhouette sampled true points 100 of 200"));
    let csv = std::fs::read_to_string(tmp.path().join("summary.csv")).unwrap();
    assert_eq!(
        csv.lines().next().unwrap(),
        "cluster,size,share,majority,purity,histogram"
    );
    assert_eq!(csv.lines().count(), 6, "{csv}");
    for f in ["means.png", "c0.png", "scatter.png"] {
        let png = std::fs::read(tmp.path().join(f)).unwrap();
        assert_eq!(&png[1..4], b"PNG", "{f}");
        assert!(tmp.path().join(format!("{f}.meta.json")).is_file());
    }
    // 5 mean images in one row of 5, captioned with their sizes
    let svg = std::fs::read_to_string(tmp.path().join("means.svg")).unwrap();
    assert!(svg.contains("means") && svg.contains("0 (n="), "caption missing");
    let png = std::fs::read(tmp.path().join("c0.png")).unwrap();
    let (w, h) = (
        u32::from_be_bytes(png[16..20].try_into().unwrap()),
        u32::from_be_bytes(png[20..24].try_into().unwrap()),
    );
    assert!(w >= 4 * 28 && h >= 4 * 28, "{w}×{h}");
    let elbow = std::fs::read_to_string(tmp.path().join("elbow.svg")).unwrap();
    assert!(elbow.contains("inertia"));
}

#[test]
fn exploration_errors_name_the_problem_and_the_line() {
    let tmp = tempfile::tempdir().unwrap();
    for (text, msg) in [
        (
            "let d = synthetic(#{ train: 10, test: 10 }).train;\nlet c = kmeans(#{ k: 2 }).fit(d.flatten());\nc.summary(d.take(5));",
            "summary: 5 labels for a clustering of 10 points",
        ),
        (
            "let d = synthetic(#{ train: 10, test: 10 }).train;\nlet c = kmeans(#{ k: 1 }).fit(d.flatten());\nsilhouette(c, d.flatten());",
            "silhouette needs at least 2 clusters",
        ),
        (
            "let d = synthetic(#{ train: 10, test: 10 }).train;\nsamples_grid(d, #{ n: 4, sede: 1 });",
            "samples_grid: unknown option `sede` (did you mean `seed`?)",
        ),
        (
            "let d = synthetic(#{ train: 10, test: 10 }).train;\ninertia_chart(d.flatten(), #{ k_max: 50 });",
            "k_max = 50 is larger than the number of points (10)",
        ),
    ] {
        let s = script(tmp.path(), "bad.rhai", text);
        advlab()
            .arg("run")
            .arg(&s)
            .assert()
            .code(1)
            .stderr(contains(msg))
            .stderr(contains("bad.rhai:"));
    }
}
