//! `advlab sweep`: a script run over a grid of arguments, one `advlab run` per point, locally
//! in parallel processes or as a SLURM job array; resumable from the sweep directory, whose
//! results `collect` gathers into tables and charts.
//!
//! The sweep directory holds everything: `sweep.json` (the grid's points, the script and its
//! SHA-256, the advlab version), `points/pNNNNN/` (each point's `--out`, its `log.txt` and the
//! markers `started.json`, `done.json`, `failed.json`, `killed.json`), `setup/` (the optional
//! setup run), and `slurm/` (each submission's batch script, task map and logs). A point is
//! finished when its `done.json` exists, written atomically after the script exited with 0;
//! nothing else ever marks it, so a killed point is never mistaken for a finished one.
//!
//! Nothing here schedules on a cluster: SLURM does; the sweep only writes and submits its
//! batch script and reads `squeue`.

mod collect;
pub mod grid;
mod local;
mod slurm;

use crate::output::write_atomic;
use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand, ValueEnum};
use grid::Point;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sha2::Digest;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// `advlab sweep`: run, or one of its actions.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct SweepArgs {
    #[command(subcommand)]
    pub action: Option<Action>,
    #[command(flatten)]
    pub run: RunArgs,
}

/// Where the points run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Executor {
    /// Parallel processes on this machine.
    #[default]
    Local,
    /// A SLURM job array, submitted with sbatch.
    Slurm,
}

/// Running a sweep.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The point script: it reads its grid values as `args.<key>` and writes its results under out/ (collect reads out/result.json).
    #[arg(required = true)]
    pub script: Option<PathBuf>,
    /// A grid axis NAME=VALUES: a list a,b,c of Rhai literals (bare words are strings), integer ranges 1..10 (inclusive), float ranges 0.1:0.5:0.1. Repeat for a product.
    #[arg(long = "grid", value_name = "NAME=VALUES")]
    pub grid: Vec<String>,
    /// A JSON file of points: an array of {NAME: VALUE} objects, or an object of NAME: [VALUES] (a product); combined with --grid as a product.
    #[arg(long, value_name = "FILE")]
    pub grid_file: Option<PathBuf>,
    /// The sweep directory (each point's --out is a directory under it).
    #[arg(long, required = true)]
    pub out: Option<PathBuf>,
    /// Where the points run.
    #[arg(long, value_enum, default_value_t)]
    pub executor: Executor,
    /// Local: points run at once (default: cores / --threads).
    #[arg(long)]
    pub jobs: Option<usize>,
    /// Threads per point (RAYON_NUM_THREADS; default: cores / --jobs locally, --cpus-per-task on SLURM).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Run the script once with args.setup = true (and the grid values every point shares) into <out>/setup/ before any point: a base model, data the points share.
    #[arg(long)]
    pub setup: bool,
    /// Also re-run the points whose script failed (killed points always re-run).
    #[arg(long)]
    pub retry_failed: bool,
    /// Start over when the directory holds another grid, script or advlab version (the old directory is kept, renamed).
    #[arg(long)]
    pub force: bool,
    /// --seed of every point whose grid has no `seed` key.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// --device of every point.
    #[arg(long, default_value = "cpu", value_parser = ["cpu", "cuda"])]
    pub device: String,
    /// SLURM: the partition.
    #[arg(long)]
    pub partition: Option<String>,
    /// SLURM: GPUs per task.
    #[arg(long)]
    pub gpus_per_task: Option<u32>,
    /// SLURM: CPUs per task (also each point's thread count).
    #[arg(long)]
    pub cpus_per_task: Option<u32>,
    /// SLURM: the time limit of one task (e.g. 02:00:00).
    #[arg(long)]
    pub time: Option<String>,
    /// SLURM: memory per task (e.g. 8G).
    #[arg(long)]
    pub mem: Option<String>,
    /// SLURM: the most array tasks running at once (the %M of --array).
    #[arg(long)]
    pub max_parallel: Option<u32>,
    /// SLURM: points one array task runs, one after the other (batches short points).
    #[arg(long, default_value_t = 1)]
    pub points_per_task: usize,
    /// SLURM: an extra sbatch option, written as an #SBATCH line (e.g. --sbatch-extra=--account=abc). Repeatable.
    #[arg(long, value_name = "OPTION", allow_hyphen_values = true)]
    pub sbatch_extra: Vec<String>,
    /// SLURM: write the batch script without submitting it.
    #[arg(long)]
    pub dry_run: bool,
    /// SLURM: wait until the submitted tasks have left the queue, then report as a local run does.
    #[arg(long)]
    pub wait: bool,
}

/// `advlab sweep status|collect`.
#[derive(Debug, Subcommand)]
pub enum Action {
    /// Done / running / pending / failed per point, with the failed points' last lines.
    Status {
        /// The sweep directory.
        dir: PathBuf,
    },
    /// Gather every finished point's out/result.json into one table: mean ± std over the keys not in --by.
    Collect(collect::CollectArgs),
    /// Run points of a sweep in this process (what a SLURM array task runs).
    #[command(hide = true)]
    Exec {
        dir: PathBuf,
        /// The submission whose task map to read.
        #[arg(long)]
        submission: Option<usize>,
        /// The array task (default: $SLURM_ARRAY_TASK_ID).
        #[arg(long)]
        task: Option<usize>,
        /// Run the setup instead of points.
        #[arg(long)]
        setup: bool,
    },
}

/// Run the command.
pub fn run(args: SweepArgs) -> Result<ExitCode> {
    match args.action {
        None => start(args.run),
        Some(Action::Status { dir }) => {
            let sweep = Sweep::open(&dir)?;
            let states = sweep.states(&slurm::queue(&sweep));
            print!("{}", status_text(&sweep, &states));
            Ok(ExitCode::SUCCESS)
        }
        Some(Action::Collect(c)) => collect::run(&c),
        Some(Action::Exec {
            dir,
            submission,
            task,
            setup,
        }) => slurm::exec(&dir, submission, task, setup),
    }
}

/// What `sweep.json` records: the experiment a directory belongs to.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub advlab: String,
    /// The script's absolute path.
    pub script: PathBuf,
    pub script_sha256: String,
    pub setup: bool,
    pub seed: u64,
    pub device: String,
    pub keys: Vec<String>,
    pub points: Vec<Point>,
}

/// An open sweep directory.
#[derive(Debug)]
pub struct Sweep {
    pub dir: PathBuf,
    pub manifest: Manifest,
}

/// Which run of a sweep.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Which {
    Setup,
    Point(usize),
}

/// Where a point stands.
#[derive(Clone, Debug, PartialEq)]
pub enum State {
    Done {
        seconds: f64,
    },
    /// The script exited with an error (re-run with --retry-failed).
    Failed {
        reason: String,
        tail: Vec<String>,
    },
    /// Started, and its process is alive (or SLURM says its task runs).
    Running,
    /// Queued in SLURM.
    Pending,
    /// Started but killed (a signal, a node failure, a time limit): re-runs as if never started.
    Killed {
        reason: String,
        tail: Vec<String>,
    },
    NotStarted,
}

impl State {
    fn word(&self) -> &'static str {
        match self {
            State::Done { .. } => "done",
            State::Failed { .. } => "failed",
            State::Running => "running",
            State::Pending => "pending",
            State::Killed { .. } => "killed",
            State::NotStarted => "not started",
        }
    }

    /// Whether a (re)run takes this point.
    fn to_run(&self, retry_failed: bool) -> bool {
        match self {
            State::Killed { .. } | State::NotStarted => true,
            State::Failed { .. } => retry_failed,
            State::Done { .. } | State::Running | State::Pending => false,
        }
    }
}

/// The outcome of one run of a point.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    Done(f64),
    Failed(String),
    Killed(String),
}

/// Seconds since the Unix epoch.
fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// This machine's host name.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".into())
}

fn write_json(path: &Path, value: &Value) -> Result<()> {
    let text = serde_json::to_string_pretty(value)?;
    write_atomic(path, text.as_bytes())?;
    Ok(())
}

fn read_json(path: &Path) -> Option<Value> {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
}

/// The last `n` lines of a file.
fn tail(path: &Path, n: usize) -> Vec<String> {
    let text = std::fs::read(path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    let lines: Vec<String> = text.lines().map(str::to_string).collect();
    lines[lines.len().saturating_sub(n)..].to_vec()
}

/// The hex SHA-256 of a file.
fn sha256(path: &Path) -> Result<String> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read script {}", path.display()))?;
    Ok(sha2::Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

/// Whether process `pid` is alive and is the run of `dir` (its command line names it).
fn alive(pid: u64, dir: &Path) -> bool {
    let Ok(cmd) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
        return false;
    };
    let cmd = String::from_utf8_lossy(&cmd);
    cmd.contains(dir.to_string_lossy().as_ref())
}

impl Sweep {
    /// Open an existing sweep directory.
    pub fn open(dir: &Path) -> Result<Self> {
        let path = dir.join("sweep.json");
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("{} is not a sweep directory (no readable sweep.json)", dir.display()))?;
        let manifest: Manifest =
            serde_json::from_str(&text).with_context(|| format!("{}: not a sweep manifest", path.display()))?;
        let dir = std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf());
        Ok(Self { dir, manifest })
    }

    /// The directory of one run (its --out).
    pub fn run_dir(&self, which: Which) -> PathBuf {
        match which {
            Which::Setup => self.dir.join("setup"),
            Which::Point(i) => self.dir.join("points").join(format!("p{i:05}")),
        }
    }

    /// The grid values every point shares (the setup run gets them: `quick=true` in every point
    /// means a quick setup).
    pub fn shared_values(&self) -> Vec<(String, Value)> {
        let Some((first, rest)) = self.manifest.points.split_first() else {
            return Vec::new();
        };
        first
            .iter()
            .filter(|(k, v)| rest.iter().all(|p| p.get(k.as_str()) == Some(v)))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// `k=v k=v` of a point.
    pub fn describe(&self, which: Which) -> String {
        match which {
            Which::Setup => "setup".into(),
            Which::Point(i) => self
                .manifest
                .points
                .get(i)
                .map(|p| {
                    p.iter()
                        .map(|(k, v)| format!("{k}={}", grid::label(v)))
                        .collect::<Vec<_>>()
                        .join(" ")
                })
                .unwrap_or_default(),
        }
    }

    /// Where one run stands, from its markers (and `queued`, SLURM's view: task → running).
    fn state(&self, which: Which, queued: Option<bool>) -> State {
        let d = self.run_dir(which);
        if let Some(v) = read_json(&d.join("done.json")) {
            return State::Done {
                seconds: v["seconds"].as_f64().unwrap_or(0.0),
            };
        }
        if let Some(v) = read_json(&d.join("failed.json")) {
            return State::Failed {
                reason: v["reason"].as_str().unwrap_or("failed").to_string(),
                tail: tail(&d.join("log.txt"), 8),
            };
        }
        let started = read_json(&d.join("started.json"));
        if let Some(s) = &started {
            let here = s["host"].as_str() == Some(hostname().as_str());
            if here && s["pid"].as_u64().is_some_and(|p| alive(p, &d)) {
                return State::Running;
            }
        }
        match queued {
            Some(true) => return State::Running,
            Some(false) if started.is_none() => return State::Pending,
            _ => {}
        }
        if let Some(v) = read_json(&d.join("killed.json")) {
            return State::Killed {
                reason: v["reason"].as_str().unwrap_or("killed").to_string(),
                tail: tail(&d.join("log.txt"), 8),
            };
        }
        if started.is_some() {
            return State::Killed {
                reason: "started, but its process is gone (killed, a node failure or a time limit)".into(),
                tail: tail(&d.join("log.txt"), 8),
            };
        }
        State::NotStarted
    }

    /// Every point's state; `queue` maps points to SLURM's running (true) or pending (false).
    pub fn states(&self, queue: &std::collections::HashMap<Which, bool>) -> Vec<State> {
        (0..self.manifest.points.len())
            .map(|i| self.state(Which::Point(i), queue.get(&Which::Point(i)).copied()))
            .collect()
    }

    /// The setup's state (Done when the sweep has none).
    pub fn setup_state(&self, queue: &std::collections::HashMap<Which, bool>) -> State {
        if !self.manifest.setup {
            return State::Done { seconds: 0.0 };
        }
        self.state(Which::Setup, queue.get(&Which::Setup).copied())
    }

    /// Run one point (or the setup) to its end with `threads` threads: `advlab run` in a child
    /// process, its output in `log.txt`, then the marker of its outcome. `on_spawn` sees the
    /// child's pid (to forward an interrupt).
    pub fn run_one(&self, which: Which, threads: usize, on_spawn: &dyn Fn(u32)) -> Result<Outcome> {
        let m = &self.manifest;
        let d = self.run_dir(which);
        std::fs::create_dir_all(&d).with_context(|| format!("cannot create {}", d.display()))?;
        for marker in ["done.json", "failed.json", "killed.json"] {
            let _ = std::fs::remove_file(d.join(marker));
        }
        let exe = std::env::current_exe().context("cannot find the advlab binary to run points with")?;
        let mut cmd = std::process::Command::new(exe);
        cmd.arg("run").arg(&m.script);
        let mut seed = m.seed;
        match which {
            Which::Setup => {
                for (k, v) in self.shared_values() {
                    cmd.arg(format!("{k}={}", grid::rhai_literal(&v)));
                }
                cmd.arg("setup=true");
            }
            Which::Point(i) => {
                let p = m.points.get(i).with_context(|| format!("the sweep has no point {i}"))?;
                write_json(&d.join("point.json"), &Value::Object(p.clone()))?;
                for (k, v) in p {
                    cmd.arg(format!("{k}={}", grid::rhai_literal(v)));
                    if k == "seed" {
                        if let Some(s) = v.as_u64() {
                            seed = s;
                        }
                    }
                }
                cmd.arg(format!("point={i}"));
            }
        }
        let sweep_dir = serde_json::to_string(&self.dir.to_string_lossy())?;
        cmd.arg(format!("sweep_dir={sweep_dir}"));
        cmd.arg("--out").arg(&d).arg("--seed").arg(seed.to_string());
        cmd.arg("--device").arg(&m.device);
        cmd.env("RAYON_NUM_THREADS", threads.max(1).to_string());
        let log_path = d.join("log.txt");
        let log = std::fs::File::create(&log_path).with_context(|| format!("cannot write {}", log_path.display()))?;
        cmd.stdout(log.try_clone()?)
            .stderr(log)
            .stdin(std::process::Stdio::null());
        let t0 = Instant::now();
        let mut child = cmd.spawn().context("cannot start advlab run")?;
        on_spawn(child.id());
        let started = json!({
            "pid": child.id(),
            "host": hostname(),
            "started": now(),
            "threads": threads,
            "slurm_job": std::env::var("SLURM_ARRAY_JOB_ID").or_else(|_| std::env::var("SLURM_JOB_ID")).ok(),
            "slurm_task": std::env::var("SLURM_ARRAY_TASK_ID").ok(),
        });
        write_json(&d.join("started.json"), &started)?;
        let status = child.wait().context("cannot wait for a point")?;
        let seconds = t0.elapsed().as_secs_f64();
        if status.success() {
            write_json(
                &d.join("done.json"),
                &json!({ "seconds": seconds, "finished": now(), "host": hostname(), "threads": threads }),
            )?;
            return Ok(Outcome::Done(seconds));
        }
        let reason = match status.code() {
            Some(c) => format!("the script exited with code {c}"),
            None => {
                use std::os::unix::process::ExitStatusExt;
                format!("killed by signal {}", status.signal().unwrap_or(0))
            }
        };
        let record = json!({ "reason": reason, "seconds": seconds, "host": hostname(), "tail": tail(&log_path, 8) });
        if status.code().is_some() {
            write_json(&d.join("failed.json"), &record)?;
            Ok(Outcome::Failed(reason))
        } else {
            write_json(&d.join("killed.json"), &record)?;
            Ok(Outcome::Killed(reason))
        }
    }
}

/// Create the sweep directory for `manifest`, or open the one there when it holds the same
/// experiment; another experiment is refused unless `force` (then it is renamed aside).
fn create_or_open(dir: &Path, manifest: Manifest, force: bool) -> Result<Sweep> {
    let path = dir.join("sweep.json");
    if path.exists() {
        let old = Sweep::open(dir);
        let differs = match &old {
            Ok(old) => difference(&old.manifest, &manifest),
            Err(e) => Some(format!("its sweep.json cannot be read ({e:#})")),
        };
        match (differs, force) {
            (None, _) => return old,
            (Some(why), false) => bail!(
                "{} holds another sweep: {why}. Its results are kept; choose another --out, or pass --force to start over (the old directory is renamed aside, not deleted)",
                dir.display()
            ),
            (Some(why), true) => {
                let aside = PathBuf::from(format!("{}.replaced-{}", dir.display(), now()));
                std::fs::rename(dir, &aside)
                    .with_context(|| format!("cannot move {} aside to {}", dir.display(), aside.display()))?;
                eprintln!("{} held another sweep ({why}); moved it to {}", dir.display(), aside.display());
            }
        }
    } else if dir.exists() && std::fs::read_dir(dir).map(|mut d| d.next().is_some()).unwrap_or(false) {
        if !force {
            bail!(
                "{} exists and is not a sweep directory (no sweep.json): choose another --out, or pass --force to move it aside",
                dir.display()
            );
        }
        let aside = PathBuf::from(format!("{}.replaced-{}", dir.display(), now()));
        std::fs::rename(dir, &aside).with_context(|| format!("cannot move {} aside", dir.display()))?;
    }
    std::fs::create_dir_all(dir.join("points")).with_context(|| format!("cannot create {}", dir.display()))?;
    write_json(&path, &serde_json::to_value(&manifest)?)?;
    let dir = std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf());
    Ok(Sweep { dir, manifest })
}

/// Why `old` and `new` are not the same experiment, if they are not.
fn difference(old: &Manifest, new: &Manifest) -> Option<String> {
    if old.script_sha256 != new.script_sha256 {
        return Some(format!(
            "another script ({} sha256 {}…, now {} sha256 {}…)",
            old.script.display(),
            &old.script_sha256[..12.min(old.script_sha256.len())],
            new.script.display(),
            &new.script_sha256[..12.min(new.script_sha256.len())]
        ));
    }
    if old.points != new.points {
        return Some(format!(
            "another grid ({} points over {}, now {} points over {})",
            old.points.len(),
            old.keys.join(", "),
            new.points.len(),
            new.keys.join(", ")
        ));
    }
    if old.advlab != new.advlab {
        return Some(format!("advlab {} made it, this is advlab {}", old.advlab, new.advlab));
    }
    if (old.setup, old.seed, &old.device) != (new.setup, new.seed, &new.device) {
        return Some(format!(
            "other settings (setup {}, seed {}, device {}; now setup {}, seed {}, device {})",
            old.setup, old.seed, old.device, new.setup, new.seed, new.device
        ));
    }
    None
}

/// Start (or resume) a sweep.
fn start(a: RunArgs) -> Result<ExitCode> {
    let (Some(script), Some(out)) = (a.script.clone(), a.out.clone()) else {
        bail!("advlab sweep needs a script and --out");
    };
    if !script.is_file() {
        bail!("script {} does not exist", script.display());
    }
    if a.grid.is_empty() && a.grid_file.is_none() {
        bail!("the sweep has no grid: give --grid NAME=VALUES (repeatable) or --grid-file FILE");
    }
    if a.points_per_task == 0 || a.jobs == Some(0) || a.threads == Some(0) {
        bail!("--jobs, --threads and --points-per-task must be at least 1");
    }
    let axes = a.grid.iter().map(|g| grid::parse_axis(g)).collect::<Result<Vec<_>>>()?;
    let base = match &a.grid_file {
        Some(f) => grid::read_grid_file(f)?,
        None => Vec::new(),
    };
    let points = grid::product(&base, &axes)?;
    if points.is_empty() {
        bail!("the grid has no points");
    }
    let mut keys: Vec<String> = Vec::new();
    for p in &points {
        for k in p.keys() {
            if !keys.contains(k) {
                keys.push(k.clone());
            }
        }
    }
    let script = std::path::absolute(&script).unwrap_or(script);
    let manifest = Manifest {
        advlab: env!("CARGO_PKG_VERSION").to_string(),
        script_sha256: sha256(&script)?,
        script,
        setup: a.setup,
        seed: a.seed,
        device: a.device.clone(),
        keys,
        points,
    };
    if a.executor == Executor::Slurm && !a.dry_run {
        slurm::require("sbatch")?;
    }
    let sweep = create_or_open(&out, manifest, a.force)?;
    match a.executor {
        Executor::Local => local::run(&sweep, &a),
        Executor::Slurm => slurm::submit(&sweep, &a),
    }
}

/// The states of a sweep as text: the counts, then every point not done.
pub fn status_text(sweep: &Sweep, states: &[State]) -> String {
    let mut counts: Vec<(&str, usize)> = Vec::new();
    for word in ["done", "running", "pending", "failed", "killed", "not started"] {
        counts.push((word, states.iter().filter(|s| s.word() == word).count()));
    }
    let mut out = format!(
        "{}: {} points ({})\n",
        sweep.dir.display(),
        states.len(),
        counts
            .iter()
            .map(|(w, n)| format!("{n} {w}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let setup = sweep.setup_state(&Default::default());
    if sweep.manifest.setup && !matches!(setup, State::Done { .. }) {
        out.push_str(&format!("  setup: {}\n", setup.word()));
    }
    for (i, s) in states.iter().enumerate() {
        if matches!(s, State::Done { .. }) {
            continue;
        }
        out.push_str(&format!(
            "  p{i:05} {:<11} {}\n",
            s.word(),
            sweep.describe(Which::Point(i))
        ));
        if let State::Failed { reason, tail } | State::Killed { reason, tail } = s {
            out.push_str(&format!(
                "      {reason}; {}\n",
                sweep.run_dir(Which::Point(i)).join("log.txt").display()
            ));
            for line in tail {
                out.push_str(&format!("      | {line}\n"));
            }
        }
    }
    out
}

/// The exit code and closing lines once a sweep's runs are over: 0 when every point is done,
/// 1 (and the failed points) otherwise.
fn finish(sweep: &Sweep, wall: f64) -> ExitCode {
    let states = sweep.states(&slurm::queue(sweep));
    let done = states.iter().filter(|s| matches!(s, State::Done { .. })).count();
    eprintln!(
        "{done}/{} points done in {wall:.1} s ({})",
        states.len(),
        sweep.dir.display()
    );
    if done == states.len() {
        return ExitCode::SUCCESS;
    }
    eprint!("{}", status_text(sweep, &states));
    eprintln!(
        "re-run the same command to run what is missing (--retry-failed also re-runs the failed points); `advlab sweep status {}` shows this again",
        sweep.dir.display()
    );
    ExitCode::from(1)
}
