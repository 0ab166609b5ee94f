//! The local executor: at most `--jobs` points at once as child processes, each with its share
//! of the cores; Ctrl-C stops cleanly (running points are stopped and re-run next time,
//! finished ones stay finished).

use super::{Outcome, RunArgs, State, Sweep, Which};
use anyhow::{bail, Context, Result};
use std::collections::VecDeque;
use std::process::ExitCode;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// (points at once, threads per point) on `cores` cores: each derived from the other so the
/// machine is not oversubscribed.
pub fn shares(cores: usize, jobs: Option<usize>, threads: Option<usize>) -> (usize, usize) {
    let cores = cores.max(1);
    match (jobs, threads) {
        (Some(j), Some(t)) => (j, t),
        (Some(j), None) => (j, (cores / j).max(1)),
        (None, Some(t)) => ((cores / t).max(1), t),
        (None, None) => (cores, 1),
    }
}

/// Send SIGINT to `pid`.
fn interrupt(pid: u32) {
    // SAFETY: kill(2) with a pid of our own child and a valid signal number has no memory effects.
    unsafe {
        libc::kill(pid as libc::pid_t, libc::SIGINT);
    }
}

/// Run what is missing (and failed, with --retry-failed), `jobs` at a time.
pub fn run(sweep: &Sweep, a: &RunArgs) -> Result<ExitCode> {
    let lock_path = sweep.dir.join(".lock");
    let lock = std::fs::File::create(&lock_path).with_context(|| format!("cannot create {}", lock_path.display()))?;
    if lock.try_lock().is_err() {
        bail!(
            "another advlab sweep is running in {} (it holds {})",
            sweep.dir.display(),
            lock_path.display()
        );
    }
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let (jobs, threads) = shares(cores, a.jobs, a.threads);
    if let Err(e) = ctrlc::set_handler(crate::interrupt::request) {
        eprintln!("warning: Ctrl-C will end the sweep without stopping its points cleanly ({e})");
    }
    crate::interrupt::clear();
    let t0 = Instant::now();
    let queue = super::slurm::queue(sweep);
    if let State::Failed { .. } | State::Killed { .. } | State::NotStarted = sweep.setup_state(&queue) {
        eprintln!("setup: running {} with setup=true", sweep.manifest.script.display());
        match sweep.run_one(Which::Setup, jobs * threads, &|_| {})? {
            Outcome::Done(s) => eprintln!("setup: done in {s:.1} s"),
            Outcome::Failed(why) | Outcome::Killed(why) => {
                eprint!(
                    "{}",
                    super::tail(&sweep.run_dir(Which::Setup).join("log.txt"), 12).join("\n")
                );
                bail!(
                    "the setup run failed ({why}); no point was started. Its log: {}",
                    sweep.run_dir(Which::Setup).join("log.txt").display()
                );
            }
        }
    }
    let states = sweep.states(&queue);
    let todo: VecDeque<usize> = states
        .iter()
        .enumerate()
        .filter(|(_, s)| s.to_run(a.retry_failed))
        .map(|(i, _)| i)
        .collect();
    let skipped_failed = states.iter().filter(|s| matches!(s, State::Failed { .. })).count();
    let busy = states
        .iter()
        .filter(|s| matches!(s, State::Running | State::Pending))
        .count();
    let done = states.iter().filter(|s| matches!(s, State::Done { .. })).count();
    eprintln!(
        "{}: {} points, {done} done, {} to run ({jobs} at a time, {threads} thread(s) each){}{}",
        sweep.dir.display(),
        states.len(),
        todo.len(),
        if busy > 0 {
            format!(", {busy} running or queued elsewhere (left alone)")
        } else {
            String::new()
        },
        if skipped_failed > 0 && !a.retry_failed {
            format!(", {skipped_failed} failed (--retry-failed re-runs them)")
        } else {
            String::new()
        }
    );
    let bar = crate::progress::bar(todo.len() as u64, "sweep".into());
    let todo = Mutex::new(todo);
    let children: Mutex<Vec<u32>> = Mutex::new(Vec::new());
    let running = Mutex::new(jobs);
    let errors: Mutex<Vec<String>> = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        // forward an interrupt to the running points (a terminal's Ctrl-C reaches them too;
        // a `kill -INT` of this process alone does not)
        s.spawn(|| loop {
            if crate::interrupt::check().is_err() {
                for pid in children.lock().map(|c| c.clone()).unwrap_or_default() {
                    interrupt(pid);
                }
                return;
            }
            if running.lock().map(|r| *r == 0).unwrap_or(true) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        });
        for _ in 0..jobs {
            s.spawn(|| {
                loop {
                    if crate::interrupt::check().is_err() {
                        break;
                    }
                    let Some(i) = todo.lock().ok().and_then(|mut t| t.pop_front()) else {
                        break;
                    };
                    let which = Which::Point(i);
                    let record = |pid: u32| {
                        if let Ok(mut c) = children.lock() {
                            c.push(pid);
                        }
                    };
                    let outcome = sweep.run_one(which, threads, &record);
                    let line = match outcome {
                        Ok(Outcome::Done(secs)) => format!("p{i:05} done in {secs:.1} s: {}", sweep.describe(which)),
                        Ok(Outcome::Failed(why)) => format!("p{i:05} FAILED ({why}): {}", sweep.describe(which)),
                        Ok(Outcome::Killed(why)) if crate::interrupt::check().is_err() => {
                            format!(
                                "p{i:05} stopped ({why}), it re-runs next time: {}",
                                sweep.describe(which)
                            )
                        }
                        Ok(Outcome::Killed(why)) => format!("p{i:05} KILLED ({why}): {}", sweep.describe(which)),
                        Err(e) => {
                            let msg = format!("p{i:05}: {e:#}");
                            if let Ok(mut errs) = errors.lock() {
                                errs.push(msg.clone());
                            }
                            msg
                        }
                    };
                    // a line per point also when stderr is a log file (the bar is hidden then)
                    if bar.is_hidden() {
                        eprintln!("{line}");
                    } else {
                        bar.println(line);
                    }
                    bar.inc(1);
                }
                if let Ok(mut r) = running.lock() {
                    *r -= 1;
                }
            });
        }
    });
    bar.finish_and_clear();
    if let Some(e) = errors.into_inner().ok().and_then(|e| e.into_iter().next()) {
        bail!("{e}");
    }
    if crate::interrupt::check().is_err() {
        eprintln!("interrupted: finished points are kept; the same command runs the rest");
        return Ok(ExitCode::from(130));
    }
    Ok(super::finish(sweep, t0.elapsed().as_secs_f64()))
}

#[cfg(test)]
mod tests {
    use super::shares;

    #[test]
    fn shares_fill_the_cores_without_oversubscribing() {
        assert_eq!(shares(8, None, None), (8, 1));
        assert_eq!(shares(8, Some(2), None), (2, 4));
        assert_eq!(shares(8, None, Some(4)), (2, 4));
        assert_eq!(shares(2, None, Some(4)), (1, 4));
        assert_eq!(shares(8, Some(3), Some(3)), (3, 3));
    }
}
