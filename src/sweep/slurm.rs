//! The SLURM executor: one `sbatch --array` script per submission (one array task per point,
//! or per `--points-per-task` points), submitted with `sbatch`; `squeue` tells which tasks are
//! queued or running. Accounting (`sacct`) is not needed: everything else is read from the
//! sweep directory.

use super::{Outcome, RunArgs, State, Sweep, Which};
use anyhow::{bail, Context, Result};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

/// The environment variable that carries a point's thread count into an array task.
const THREADS_VAR: &str = "ADVLAB_SWEEP_THREADS";

/// Fail with a clear message when a SLURM command is not on PATH.
pub fn require(program: &str) -> Result<()> {
    let found = std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).any(|p| p.join(program).is_file()))
        .unwrap_or(false);
    if !found {
        bail!(
            "`{program}` is not on PATH: the slurm executor submits with SLURM's sbatch and reads squeue. Run on a cluster's login node, use --dry-run to only write the batch script, or --executor local"
        );
    }
    Ok(())
}

fn slurm_dir(sweep: &Sweep) -> PathBuf {
    sweep.dir.join("slurm")
}

/// Every submission's record, in order.
fn submissions(sweep: &Sweep) -> Vec<(usize, Value)> {
    let mut out = Vec::new();
    for n in 0.. {
        let path = slurm_dir(sweep).join(format!("submit-{n}.json"));
        match super::read_json(&path) {
            Some(v) => out.push((n, v)),
            None if path.exists() => continue,
            None => break,
        }
    }
    out
}

/// Array task ids in squeue's `%i` field: `123_4`, or `123_[4-6,9%2]` for a pending range.
fn parse_task_ids(field: &str) -> Option<(String, Vec<usize>)> {
    let (job, rest) = field.split_once('_')?;
    let Some(inner) = rest.strip_prefix('[').and_then(|r| r.strip_suffix(']')) else {
        return Some((job.to_string(), vec![rest.parse().ok()?]));
    };
    let inner = inner.split('%').next().unwrap_or(inner);
    let mut ids = Vec::new();
    for part in inner.split(',') {
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b): (usize, usize) = (a.parse().ok()?, b.parse().ok()?);
                if b >= a && b - a < super::grid::MAX_POINTS {
                    ids.extend(a..=b);
                }
            }
            None => ids.push(part.parse().ok()?),
        }
    }
    Some((job.to_string(), ids))
}

/// SLURM's view of this sweep's runs: running (true) or pending (false), from `squeue` (empty
/// when there were no submissions or squeue is not here).
pub fn queue(sweep: &Sweep) -> HashMap<Which, bool> {
    let mut map = HashMap::new();
    let subs = submissions(sweep);
    let jobs: Vec<String> = subs
        .iter()
        .flat_map(|(_, v)| [v["job"].as_str(), v["setup_job"].as_str()])
        .flatten()
        .map(str::to_string)
        .collect();
    if jobs.is_empty() {
        return map;
    }
    // one squeue per job: a job SLURM has forgotten (MinJobAge after its end) makes squeue
    // refuse the whole list ("Invalid job id specified")
    let mut text = String::new();
    for job in &jobs {
        if let Ok(out) = Command::new("squeue")
            .args(["-h", "-r", "-o", "%i %t", "-j", job])
            .output()
        {
            text.push_str(&String::from_utf8_lossy(&out.stdout));
        }
    }
    for line in text.lines() {
        let mut f = line.split_whitespace();
        let (Some(id), Some(st)) = (f.next(), f.next()) else {
            continue;
        };
        let running = match st {
            "R" | "CG" | "CF" | "S" => true,
            "PD" | "RQ" | "RH" | "RF" => false,
            _ => continue,
        };
        for (_, v) in &subs {
            if v["setup_job"].as_str() == Some(id) {
                map.insert(Which::Setup, running);
            }
        }
        let Some((job, tasks)) = parse_task_ids(id) else {
            continue;
        };
        for (_, v) in subs.iter().filter(|(_, v)| v["job"].as_str() == Some(job.as_str())) {
            for t in &tasks {
                for p in v["tasks"][*t]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_u64)
                {
                    map.insert(Which::Point(p as usize), running);
                }
            }
        }
    }
    map
}

/// A path as a single-quoted shell word.
fn quote(p: &Path) -> String {
    format!("'{}'", p.display().to_string().replace('\'', r"'\''"))
}

/// The batch script of one submission (`tasks` array tasks, or the setup when `tasks` is None).
fn batch_script(sweep: &Sweep, a: &RunArgs, n: usize, tasks: Option<usize>, threads: usize) -> Result<String> {
    let exe = std::env::current_exe().context("cannot find the advlab binary")?;
    let name = sweep
        .dir
        .file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "sweep".into());
    let logs = slurm_dir(sweep).join("logs");
    let mut s = String::from("#!/bin/bash\n");
    let mut opt = |line: String| s.push_str(&format!("#SBATCH {line}\n"));
    match tasks {
        Some(t) => {
            opt(format!("--job-name=advlab-{name}"));
            let limit = a.max_parallel.map(|m| format!("%{m}")).unwrap_or_default();
            opt(format!("--array=0-{}{limit}", t - 1));
            opt(format!(
                "--output={}",
                logs.join(format!("submit-{n}_%a.out")).display()
            ));
        }
        None => {
            opt(format!("--job-name=advlab-{name}-setup"));
            opt(format!("--output={}", logs.join(format!("setup-{n}.out")).display()));
        }
    }
    opt("--ntasks=1".into());
    opt(format!(
        "--cpus-per-task={}",
        a.cpus_per_task.map(|c| c as usize).unwrap_or(threads)
    ));
    if let Some(p) = &a.partition {
        opt(format!("--partition={p}"));
    }
    if let Some(g) = a.gpus_per_task {
        opt(format!("--gpus-per-task={g}"));
    }
    if let Some(t) = &a.time {
        opt(format!("--time={t}"));
    }
    if let Some(m) = &a.mem {
        opt(format!("--mem={m}"));
    }
    for extra in &a.sbatch_extra {
        if extra.contains('\n') || !extra.starts_with('-') {
            bail!("--sbatch-extra `{extra}`: expected one sbatch option such as --account=abc");
        }
        opt(extra.clone());
    }
    s.push_str(&format!(
        "# advlab sweep {}: submission {n} (task map in slurm/submit-{n}.json)\nexport {THREADS_VAR}={threads}\n",
        sweep.dir.display()
    ));
    let what = if tasks.is_some() {
        format!("--submission {n}")
    } else {
        "--setup".into()
    };
    s.push_str(&format!(
        "exec {} sweep exec {} {what}\n",
        quote(&exe),
        quote(&sweep.dir)
    ));
    Ok(s)
}

/// `sbatch --parsable` a batch script; the job id.
fn sbatch(script: &Path, dependency: Option<&str>) -> Result<String> {
    let mut cmd = Command::new("sbatch");
    cmd.arg("--parsable");
    if let Some(d) = dependency {
        cmd.arg(format!("--dependency=afterok:{d}"));
    }
    let out = cmd.arg(script).output().context("cannot run sbatch")?;
    if !out.status.success() {
        bail!(
            "sbatch refused {}: {}",
            script.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let id = text.trim().split(';').next().unwrap_or("").to_string();
    if id.is_empty() || !id.chars().all(|c| c.is_ascii_digit()) {
        bail!("sbatch answered `{}`, not a job id", text.trim());
    }
    Ok(id)
}

/// Submit what is missing (and failed, with --retry-failed) as one job array.
pub fn submit(sweep: &Sweep, a: &RunArgs) -> Result<ExitCode> {
    let t0 = Instant::now();
    let queue = queue(sweep);
    let states = sweep.states(&queue);
    let todo: Vec<u64> = states
        .iter()
        .enumerate()
        .filter(|(_, s)| s.to_run(a.retry_failed))
        .map(|(i, _)| i as u64)
        .collect();
    let threads = a.threads.or(a.cpus_per_task.map(|c| c as usize)).unwrap_or(1);
    let n = submissions(sweep).len();
    let dir = slurm_dir(sweep);
    std::fs::create_dir_all(dir.join("logs")).with_context(|| format!("cannot create {}", dir.display()))?;
    let setup_needed = matches!(
        sweep.setup_state(&queue),
        State::Failed { .. } | State::Killed { .. } | State::NotStarted
    );
    if todo.is_empty() {
        eprintln!("nothing to submit: every point is done, running or queued (see `advlab sweep status`)");
        return Ok(if a.wait { wait(sweep, t0) } else { ExitCode::SUCCESS });
    }
    let tasks: Vec<Vec<u64>> = todo.chunks(a.points_per_task).map(<[u64]>::to_vec).collect();
    let array_path = dir.join(format!("submit-{n}.sbatch"));
    crate::output::write_atomic(
        &array_path,
        batch_script(sweep, a, n, Some(tasks.len()), threads)?.as_bytes(),
    )?;
    let setup_path = dir.join(format!("setup-{n}.sbatch"));
    if setup_needed {
        crate::output::write_atomic(&setup_path, batch_script(sweep, a, n, None, threads)?.as_bytes())?;
    }
    let mut record = json!({
        "tasks": tasks,
        "points": todo.len(),
        "submitted": super::now(),
        "dry_run": a.dry_run,
        "threads": threads,
        "job": null,
        "setup_job": null,
    });
    if a.dry_run {
        super::write_json(&dir.join(format!("submit-{n}.json")), &record)?;
        if setup_needed {
            println!("{}", setup_path.display());
        }
        println!("{}", array_path.display());
        eprintln!(
            "dry run: wrote the batch script for {} array task(s) over {} point(s); submit it with `sbatch {}`{}",
            tasks.len(),
            todo.len(),
            array_path.display(),
            if setup_needed { " after the setup's" } else { "" }
        );
        return Ok(ExitCode::SUCCESS);
    }
    let setup_job = if setup_needed {
        Some(sbatch(&setup_path, None)?)
    } else {
        None
    };
    record["setup_job"] = json!(setup_job);
    let job = sbatch(&array_path, setup_job.as_deref())?;
    record["job"] = json!(job);
    super::write_json(&dir.join(format!("submit-{n}.json")), &record)?;
    eprintln!(
        "submitted job {job}: {} array task(s) over {} point(s){}; `advlab sweep status {}` follows it",
        tasks.len(),
        todo.len(),
        setup_job
            .map(|s| format!(" after the setup job {s}"))
            .unwrap_or_default(),
        sweep.dir.display()
    );
    Ok(if a.wait { wait(sweep, t0) } else { ExitCode::SUCCESS })
}

/// Wait until no run of the sweep is queued or running in SLURM, then report.
fn wait(sweep: &Sweep, t0: Instant) -> ExitCode {
    let mut last = String::new();
    loop {
        let q = queue(sweep);
        if q.is_empty() {
            break;
        }
        let states = sweep.states(&q);
        let done = states.iter().filter(|s| matches!(s, State::Done { .. })).count();
        let running = q.values().filter(|r| **r).count();
        let line = format!(
            "{done}/{} done, {running} running, {} queued",
            states.len(),
            q.len() - running
        );
        if line != last {
            eprintln!("{line}");
            last = line;
        }
        std::thread::sleep(Duration::from_secs(2));
    }
    super::finish(sweep, t0.elapsed().as_secs_f64())
}

/// An array task (or the setup job): run its points one after the other.
pub fn exec(dir: &Path, submission: Option<usize>, task: Option<usize>, setup: bool) -> Result<ExitCode> {
    let sweep = Sweep::open(dir)?;
    let threads = std::env::var(THREADS_VAR)
        .ok()
        .or_else(|| std::env::var("SLURM_CPUS_PER_TASK").ok())
        .and_then(|t| t.parse::<usize>().ok())
        .unwrap_or(1);
    let whiches: Vec<Which> = if setup {
        vec![Which::Setup]
    } else {
        let n = submission.context("exec needs --submission N (or --setup)")?;
        let task = match task {
            Some(t) => t,
            None => std::env::var("SLURM_ARRAY_TASK_ID")
                .ok()
                .and_then(|t| t.parse().ok())
                .context("exec needs --task T or SLURM_ARRAY_TASK_ID")?,
        };
        let path = slurm_dir(&sweep).join(format!("submit-{n}.json"));
        let record = super::read_json(&path).with_context(|| format!("cannot read {}", path.display()))?;
        let points = record["tasks"][task]
            .as_array()
            .with_context(|| format!("{}: no task {task}", path.display()))?;
        points
            .iter()
            .filter_map(Value::as_u64)
            .map(|p| Which::Point(p as usize))
            .collect()
    };
    let mut failed = 0;
    for which in whiches {
        if let Which::Point(_) = which {
            if matches!(sweep.state(which, None), State::Done { .. }) {
                eprintln!("{}: done already", sweep.describe(which));
                continue;
            }
        }
        let outcome = sweep.run_one(which, threads, &|_| {})?;
        eprintln!("{}: {outcome:?}", sweep.describe(which));
        if !matches!(outcome, Outcome::Done(_)) {
            failed += 1;
        }
    }
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

#[cfg(test)]
mod tests {
    use super::parse_task_ids;

    #[test]
    fn squeue_task_ids_expand() {
        assert_eq!(parse_task_ids("12_3"), Some(("12".into(), vec![3])));
        assert_eq!(parse_task_ids("12_[0-2,5%2]"), Some(("12".into(), vec![0, 1, 2, 5])));
        assert_eq!(parse_task_ids("12"), None);
    }
}
