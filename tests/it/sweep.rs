//! `advlab sweep`: the local executor (parallel points, failures, SIGKILL and Ctrl-C, resume),
//! collect, the refusals, the SLURM batch script, and a real SLURM cluster where one answers
//! (`.ci/slurm-up.sh` starts one; the test skips, and says so, where none does).

use crate::common::{advlab, script};
use predicates::prelude::*;
use predicates::str::contains;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A toy point: `acc = 0.1 k + 0.01 seed`; k = 3 fails while the file `fail` exists; k >= 5
/// spins while the file `slow` exists (so a test can kill it mid-run).
const POINT: &str = r#"
let flags = args.flags;
if args.k == 3 && file_exists(`${flags}/fail`) { throw "k=3 fails while the flag exists"; }
if args.k >= 5 { while file_exists(`${flags}/slow`) { } }
write_json("out/result.json", #{ acc: args.k * 0.1 + args.seed * 0.01, sq: args.k * args.k });
"#;

fn read(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn point_dir(sweep: &Path, i: usize) -> PathBuf {
    sweep.join("points").join(format!("p{i:05}"))
}

/// The done.json of every point (None where there is none).
fn dones(sweep: &Path, n: usize) -> Vec<Option<String>> {
    (0..n)
        .map(|i| std::fs::read_to_string(point_dir(sweep, i).join("done.json")).ok())
        .collect()
}

/// Wait (up to a minute) until `cond` holds.
fn wait_for(what: &str, cond: impl Fn() -> bool) {
    let t0 = Instant::now();
    while !cond() {
        assert!(t0.elapsed() < Duration::from_secs(60), "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The pid of a point's running `advlab run`, once it has started.
fn child_pid(sweep: &Path, i: usize) -> u32 {
    let path = point_dir(sweep, i).join("started.json");
    wait_for(&format!("point {i} to start"), || path.is_file());
    read(&path)["pid"].as_u64().unwrap() as u32
}

fn kill(pid: u32, signal: &str) {
    assert!(Command::new("kill")
        .args([signal, &pid.to_string()])
        .status()
        .unwrap()
        .success());
}

/// `advlab sweep status DIR` succeeds and prints each of `what`.
fn status_says(dir: &Path, what: &[&str]) {
    let o = advlab().args(["sweep", "status"]).arg(dir).output().unwrap();
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    for w in what {
        assert!(text.contains(w), "status does not say `{w}`:\n{text}");
    }
}

/// A folder with the toy point script and its flag folder.
fn setup() -> (tempfile::TempDir, PathBuf, String) {
    let tmp = tempfile::tempdir().unwrap();
    let s = script(tmp.path(), "point.rhai", POINT);
    let flags = tmp.path().join("flags");
    std::fs::create_dir_all(&flags).unwrap();
    let flags_arg = format!("flags=\"{}\"", flags.display());
    (tmp, s, flags_arg)
}

#[test]
fn a_local_sweep_runs_every_point_and_collect_gives_mean_and_std_over_seeds() {
    let (tmp, s, flags) = setup();
    let out = tmp.path().join("sw");
    advlab()
        .args(["sweep"])
        .arg(&s)
        .args([
            "--grid", "k=1..4", "--grid", "seed=1,2", "--grid", "algo=a,b", "--grid", &flags, "--out",
        ])
        .arg(&out)
        .assert()
        .success()
        .stderr(contains("16/16 points done"));
    // every point's values reached its script, and `seed` its --seed
    let p = read(&point_dir(&out, 5).join("point.json"));
    assert_eq!(
        (p["k"].as_i64(), p["seed"].as_i64(), p["algo"].as_str()),
        (Some(2), Some(1), Some("b"))
    );
    let r = read(&point_dir(&out, 5).join("result.json"));
    assert!((r["acc"].as_f64().unwrap() - 0.21).abs() < 1e-12);
    let meta = read(&point_dir(&out, 5).join("result.json.meta.json"));
    assert_eq!(meta["seed"], 1);
    status_says(
        &out,
        &["16 points (16 done, 0 running, 0 pending, 0 failed, 0 killed, 0 not started)"],
    );
    let csv = tmp.path().join("t.csv");
    let json = tmp.path().join("t.json");
    advlab()
        .args(["sweep", "collect"])
        .arg(&out)
        .args(["--by", "algo,k", "--csv"])
        .arg(&csv)
        .arg("--json")
        .arg(&json)
        .args(["--chart", "k:acc"])
        .assert()
        .success()
        .stdout(contains("mean and std over seed"));
    let table = read(&json);
    let rows = table.as_array().unwrap();
    assert_eq!(rows.len(), 8, "one row per (algo, k)");
    for row in rows {
        let k = row["k"].as_f64().unwrap();
        // mean over seeds 1 and 2, and their sample standard deviation
        assert!(
            (row["acc_mean"].as_f64().unwrap() - (0.1 * k + 0.015)).abs() < 1e-9,
            "{row}"
        );
        assert!(
            (row["acc_std"].as_f64().unwrap() - 0.01 / 2f64.sqrt()).abs() < 1e-9,
            "{row}"
        );
        assert_eq!(row["n"], 2);
    }
    let text = std::fs::read_to_string(&csv).unwrap();
    assert!(text.starts_with("algo,k,acc_mean,acc_std,sq_mean,sq_std,n\n"), "{text}");
    assert_eq!(read(&out.join("rows.json")).as_array().unwrap().len(), 16);
    for ext in ["png", "svg"] {
        assert!(std::fs::metadata(out.join(format!("chart_k_acc.{ext}"))).unwrap().len() > 1000);
    }
}

#[test]
fn failed_points_are_reported_the_others_finish_and_only_retry_failed_reruns_them() {
    let (tmp, s, flags) = setup();
    std::fs::write(tmp.path().join("flags/fail"), "").unwrap();
    let out = tmp.path().join("sw");
    let sweep = |extra: &[&str]| {
        advlab()
            .arg("sweep")
            .arg(&s)
            .args(["--grid", "k=1..4", "--grid", "seed=1,2", "--grid", &flags, "--out"])
            .arg(&out)
            .args(extra)
            .assert()
    };
    sweep(&[])
        .code(1)
        .stderr(contains("6/8 points done"))
        .stderr(contains("p00004 failed"))
        .stderr(contains("k=3 fails while the flag exists"));
    let before = dones(&out, 8);
    // the failure is deterministic: a plain re-run leaves it alone, and recomputes nothing
    sweep(&[])
        .code(1)
        .stderr(contains("0 to run"))
        .stderr(contains("2 failed (--retry-failed re-runs them)"));
    assert_eq!(dones(&out, 8), before);
    std::fs::remove_file(tmp.path().join("flags/fail")).unwrap();
    sweep(&["--retry-failed"]).success().stderr(contains("8/8 points done"));
    let after = dones(&out, 8);
    for i in 0..8 {
        if i == 4 || i == 5 {
            assert!(before[i].is_none() && after[i].is_some());
        } else {
            assert_eq!(before[i], after[i], "point {i} was recomputed");
        }
    }
}

#[test]
fn a_sigkilled_point_and_a_ctrl_c_rerun_and_finished_points_are_never_recomputed() {
    let (tmp, s, flags) = setup();
    std::fs::write(tmp.path().join("flags/slow"), "").unwrap();
    let out = tmp.path().join("sw");
    let args = |cmd: &mut Command| {
        cmd.arg("sweep")
            .arg(&s)
            .args([
                "--grid", "k=1..6", "--grid", "seed=7", "--grid", &flags, "--jobs", "2", "--out",
            ])
            .arg(&out);
    };
    let mut cmd = Command::new(assert_cmd::cargo::cargo_bin("advlab"));
    args(&mut cmd);
    let sweep = cmd.stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    // points k=5 and k=6 spin; k=5's process is killed outright, then the sweep gets Ctrl-C
    let k5 = child_pid(&out, 4);
    let k6 = child_pid(&out, 5);
    wait_for("k=1..4 to finish", || dones(&out, 4).iter().all(Option::is_some));
    kill(k5, "-KILL");
    wait_for("k=5 to be marked killed", || {
        point_dir(&out, 4).join("killed.json").is_file()
    });
    kill(sweep.id(), "-INT");
    let end = sweep.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&end.stderr);
    assert_eq!(end.status.code(), Some(130), "{stderr}");
    assert!(stderr.contains("interrupted: finished points are kept"), "{stderr}");
    assert!(
        !Path::new(&format!("/proc/{k6}")).exists(),
        "the interrupt reached the running point"
    );
    status_says(
        &out,
        &[
            "6 points (4 done, 0 running, 0 pending, 0 failed, 2 killed, 0 not started)",
            "killed by signal 9",
        ],
    );
    let before = dones(&out, 6);
    std::fs::remove_file(tmp.path().join("flags/slow")).unwrap();
    let mut again = Command::new(assert_cmd::cargo::cargo_bin("advlab"));
    args(&mut again);
    let o = again.output().unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{stderr}");
    assert!(stderr.contains("4 done, 2 to run"), "{stderr}");
    let after = dones(&out, 6);
    assert_eq!(before[..4], after[..4], "finished points were recomputed");
    assert!(after.iter().all(Option::is_some));
}

#[test]
fn bad_grids_other_sweeps_and_a_missing_sbatch_are_clear_errors() {
    let (tmp, s, flags) = setup();
    let out = tmp.path().join("sw");
    let sweep = |grid: &[&str]| {
        let mut c = advlab();
        c.arg("sweep").arg(&s);
        for g in grid {
            c.args(["--grid", g]);
        }
        c.arg("--out").arg(&out);
        c
    };
    for (grid, what) in [
        (vec!["k"], "expected NAME=VALUES"),
        (vec!["k=1,,2"], "an empty value"),
        (vec!["k=5..1"], "is empty"),
        (vec!["1k=2"], "is not a name"),
        (vec!["k=[1,2"], "brackets do not match"),
        (vec!["k=1", "k=2"], "given twice"),
        (vec!["point=1"], "reserved"),
        (vec!["k=0:1:0"], "the step positive"),
    ] {
        sweep(&grid)
            .assert()
            .code(1)
            .stderr(contains(what))
            .stderr(contains("panicked").not());
    }
    sweep(&[]).assert().code(1).stderr(contains("the sweep has no grid"));
    sweep(&["k=1"])
        .args(["--executor", "pbs"])
        .assert()
        .code(2)
        .stderr(contains("invalid value 'pbs'"));
    let bad_file = tmp.path().join("grid.json");
    std::fs::write(&bad_file, r#"[{"k": 1}, {"k": null}]"#).unwrap();
    sweep(&[])
        .arg("--grid-file")
        .arg(&bad_file)
        .assert()
        .code(1)
        .stderr(contains("point 1, key `k`"));
    // no sbatch on PATH
    sweep(&["k=1", &flags])
        .args(["--executor", "slurm"])
        .env("PATH", tmp.path())
        .assert()
        .code(1)
        .stderr(contains("`sbatch` is not on PATH"));
    // a directory of another grid is refused, and kept; --force moves it aside
    sweep(&["k=1,2", "seed=0", &flags]).assert().success();
    sweep(&["k=1,2,4", "seed=0", &flags]).assert().code(1).stderr(contains(
        "holds another sweep: another grid (2 points over flags, k, seed, now 3 points",
    ));
    assert!(point_dir(&out, 1).join("done.json").is_file());
    std::fs::write(&s, format!("{POINT}\n// changed\n")).unwrap();
    sweep(&["k=1,2", "seed=0", &flags])
        .assert()
        .code(1)
        .stderr(contains("another script"));
    sweep(&["k=1,2", "seed=0", &flags]).arg("--force").assert().success();
    let aside: Vec<_> = std::fs::read_dir(tmp.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with("sw.replaced-"))
        .collect();
    assert_eq!(aside.len(), 1, "the old sweep is kept beside");
    assert!(aside[0].path().join("points/p00001/done.json").is_file());
    // collect before any result, and with unknown keys
    advlab()
        .args(["sweep", "collect"])
        .arg(&out)
        .args(["--by", "nope"])
        .assert()
        .code(1)
        .stderr(contains("--by nope: no such key"));
    advlab()
        .args(["sweep", "status"])
        .arg(tmp.path())
        .assert()
        .code(1)
        .stderr(contains("is not a sweep directory"));
}

#[test]
fn the_slurm_batch_script_carries_the_resources_and_one_task_per_batch_of_points() {
    let (tmp, s, flags) = setup();
    let out = tmp.path().join("sw");
    advlab()
        .arg("sweep")
        .arg(&s)
        .args(["--grid", "k=1..5", "--grid", "seed=0", "--grid", &flags, "--out"])
        .arg(&out)
        .args([
            "--executor",
            "slurm",
            "--dry-run",
            "--partition",
            "gpu",
            "--gpus-per-task",
            "1",
        ])
        .args([
            "--cpus-per-task",
            "8",
            "--time",
            "02:00:00",
            "--max-parallel",
            "2",
            "--points-per-task",
            "2",
        ])
        .args(["--sbatch-extra=--account=abc", "--setup"])
        .env("PATH", tmp.path())
        .assert()
        .success()
        .stderr(contains("3 array task(s) over 5 point(s)"));
    let batch = std::fs::read_to_string(out.join("slurm/submit-0.sbatch")).unwrap();
    for line in [
        "#SBATCH --array=0-2%2",
        "#SBATCH --partition=gpu",
        "#SBATCH --gpus-per-task=1",
        "#SBATCH --cpus-per-task=8",
        "#SBATCH --time=02:00:00",
        "#SBATCH --account=abc",
        "export ADVLAB_SWEEP_THREADS=8",
        " sweep exec ",
        "--submission 0",
    ] {
        assert!(batch.contains(line), "{line} missing from:\n{batch}");
    }
    let map = read(&out.join("slurm/submit-0.json"));
    assert_eq!(map["tasks"], serde_json::json!([[0, 1], [2, 3], [4]]));
    assert!(std::fs::read_to_string(out.join("slurm/setup-0.sbatch"))
        .unwrap()
        .contains("--setup"));
    // what an array task runs: its points, one after the other
    advlab()
        .args(["sweep", "exec"])
        .arg(&out)
        .args(["--submission", "0"])
        .env("SLURM_ARRAY_TASK_ID", "1")
        .assert()
        .success();
    let done = dones(&out, 5);
    assert!(done[2].is_some() && done[3].is_some());
    assert!(done[0].is_none() && done[1].is_none() && done[4].is_none());
}

/// Whether a SLURM cluster answers here.
fn slurm_answers() -> bool {
    Command::new("squeue")
        .arg("-h")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// The squeue state of every task of `job` (`123_4 R`).
fn queued(job: &str) -> String {
    let o = Command::new("squeue")
        .args(["-h", "-r", "-o", "%i %t", "-j", job])
        .output()
        .unwrap();
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn on_a_real_slurm_cluster_scancel_and_sigkill_rerun_only_those_points_and_collect_matches_local() {
    if !slurm_answers() {
        eprintln!("skipped: no SLURM cluster answers here (`bash .ci/slurm-up.sh` starts one; .ci/run does)");
        return;
    }
    let (tmp, s, flags) = setup();
    std::fs::write(tmp.path().join("flags/slow"), "").unwrap();
    let out = tmp.path().join("slurm");
    let grid = ["--grid", "k=1..6", "--grid", "seed=3", "--grid", &flags];
    advlab()
        .arg("sweep")
        .arg(&s)
        .args(grid)
        .arg("--out")
        .arg(&out)
        .args(["--executor", "slurm"])
        .assert()
        .success()
        .stderr(contains("6 array task(s) over 6 point(s)"));
    let job = read(&out.join("slurm/submit-0.json"))["job"]
        .as_str()
        .unwrap()
        .to_string();
    // k=5 and k=6 spin: one is cancelled through SLURM, the other's process is killed outright
    let k6 = child_pid(&out, 5);
    let _k5 = child_pid(&out, 4);
    wait_for("k=1..4 to finish", || dones(&out, 4).iter().all(Option::is_some));
    status_says(&out, &["4 done, 2 running"]);
    assert!(Command::new("scancel")
        .arg(format!("{job}_4"))
        .status()
        .unwrap()
        .success());
    kill(k6, "-KILL");
    wait_for("the array to leave the queue", || queued(&job).trim().is_empty());
    status_says(
        &out,
        &["6 points (4 done, 0 running, 0 pending, 0 failed, 2 killed, 0 not started)"],
    );
    let before = dones(&out, 6);
    std::fs::remove_file(tmp.path().join("flags/slow")).unwrap();
    advlab()
        .arg("sweep")
        .arg(&s)
        .args(grid)
        .arg("--out")
        .arg(&out)
        .args(["--executor", "slurm", "--wait"])
        .assert()
        .success()
        .stderr(contains("2 array task(s) over 2 point(s)"))
        .stderr(contains("6/6 points done"));
    let after = dones(&out, 6);
    assert_eq!(before[..4], after[..4], "finished points were recomputed");
    assert_eq!(
        read(&out.join("slurm/submit-1.json"))["tasks"],
        serde_json::json!([[4], [5]])
    );
    // the same grid locally: the same collected table
    let local = tmp.path().join("local");
    advlab()
        .arg("sweep")
        .arg(&s)
        .args(grid)
        .arg("--out")
        .arg(&local)
        .assert()
        .success();
    let table = |dir: &Path| {
        let o = advlab()
            .args(["sweep", "collect"])
            .arg(dir)
            .args(["--by", "k"])
            .output()
            .unwrap();
        assert!(o.status.success());
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    assert_eq!(table(&out), table(&local));
}
