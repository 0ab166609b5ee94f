//! The command line: `advlab run`, `check`, `repl`, `inspect`, `functions`, `sweep`, `bench`.

use crate::script::{self, report, Session};
use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use std::path::PathBuf;
use std::process::ExitCode;
use std::rc::Rc;

/// advlab: a scriptable workbench for adversarial machine-learning research.
#[derive(Debug, Parser)]
#[command(name = "advlab", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// Where tensors live.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum DeviceArg {
    #[default]
    Cpu,
    Cuda,
}

/// The options every script session takes (`run` and `repl`).
#[derive(Debug, clap::Args)]
pub struct SessionArgs {
    /// Default seed for every call not given one.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Device to run on.
    #[arg(long, value_enum, default_value_t)]
    pub device: DeviceArg,
    /// Directory that paths starting with out/ are written to.
    #[arg(long, default_value = "out")]
    pub out: PathBuf,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a .rhai script. NAME=VALUE arguments reach the script in the constant map `args`.
    Run {
        /// The script to run.
        script: PathBuf,
        /// Script arguments, each NAME=VALUE with VALUE a Rhai literal (quick=true, n=1000, name="x").
        #[arg(value_name = "NAME=VALUE")]
        args: Vec<String>,
        #[command(flatten)]
        session: SessionArgs,
        /// Script operations allowed before the run stops (a native call such as fit counts as
        /// one; 2e9 is about a minute of pure script work); 0 lifts the limit. Strings, arrays,
        /// maps and call depth have the REPL's limits.
        #[arg(long, default_value_t = crate::repl::MAX_OPERATIONS)]
        max_operations: u64,
        /// Skip the check that runs before the script (unknown functions and methods, wrong
        /// numbers of arguments; see `advlab check`).
        #[arg(long)]
        no_check: bool,
    },
    /// Check a .rhai script without running it: syntax, and every function and method call
    /// against the registered, built-in and script-defined functions (name and number of
    /// arguments), each problem at its line and column. Exit 0 when nothing is found, 1 otherwise.
    Check {
        /// The script to check.
        script: PathBuf,
        /// Script arguments as `run` takes them (checked for form only).
        #[arg(value_name = "NAME=VALUE")]
        args: Vec<String>,
    },
    /// An interactive prompt: variables survive every input, Tab completes, :help lists the functions.
    Repl {
        /// A script to run into the session before the first prompt.
        #[arg(long, value_name = "SCRIPT")]
        load: Option<PathBuf>,
        #[command(flatten)]
        session: SessionArgs,
    },
    /// What a safetensors file holds (an advlab checkpoint, data set or reducer, or a PyTorch
    /// state_dict), from its header: metadata, every tensor's name, type and shape, and the
    /// PyTorch module and advlab call that load it. Exit 1 when the file is not what it says.
    Inspect {
        /// The file to inspect.
        file: PathBuf,
    },
    /// List every script function with its signature and a one-line doc.
    Functions {
        /// Print a Markdown table (for README.md).
        #[arg(long)]
        markdown: bool,
    },
    /// Run a script over a grid of arguments, one `advlab run` per point: locally in parallel, or
    /// as a SLURM job array; resumable. `advlab sweep status DIR` and `advlab sweep collect DIR` follow it.
    Sweep(Box<crate::sweep::SweepArgs>),
    /// Time training, every attack and the clustering workloads on MNIST (ratios against the PyTorch / scikit-learn references).
    Bench(crate::bench::BenchArgs),
}

fn device_name(d: DeviceArg) -> &'static str {
    match d {
        DeviceArg::Cpu => "cpu",
        DeviceArg::Cuda => "cuda",
    }
}

/// Run the command; the exit code is 0 on success and 1 on a script or runtime error.
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    configure_threads();
    match cli.command {
        Command::Run {
            script,
            args,
            session,
            max_operations,
            no_check,
        } => on_deep_stack(move || run_script(&script, &args, session, max_operations, !no_check)),
        Command::Check { script, args } => check_script(&script, &args),
        Command::Repl { load, session } => {
            let args = crate::repl::ReplArgs {
                load,
                seed: session.seed,
                device: device_name(session.device).to_string(),
                out: session.out,
            };
            on_deep_stack(move || crate::repl::run(args))
        }
        Command::Inspect { file } => {
            let found = crate::inspect::inspect(&file)?;
            print!("{}", found.text);
            for p in &found.problems {
                eprintln!("error: {}: {p}", file.display());
            }
            Ok(if found.problems.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        Command::Functions { markdown } => {
            print!("{}", script::functions_text(markdown));
            Ok(ExitCode::SUCCESS)
        }
        Command::Sweep(args) => crate::sweep::run(*args),
        Command::Bench(args) => {
            crate::bench::run(&args)?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The stack of the thread a script runs on.
const SCRIPT_STACK: usize = 1 << 30;

/// Run `f` on a thread with a deep stack: the interpreter recurses over nested values
/// (printing, comparing, dropping an array of arrays), so scripts and the REPL run on 1 GiB of
/// address space, committed only as it is used. A panic there goes on in the caller.
fn on_deep_stack(f: impl FnOnce() -> anyhow::Result<ExitCode> + Send + 'static) -> anyhow::Result<ExitCode> {
    let worker = std::thread::Builder::new()
        .name("advlab-script".into())
        .stack_size(SCRIPT_STACK)
        .spawn(f)?;
    match worker.join() {
        Ok(r) => r,
        Err(panic) => std::panic::resume_unwind(panic),
    }
}

/// Thread configuration, measured on 2 cores (values the user set win):
/// - candle asks `num_cpus` for the thread count on every parallel operation, which reads
///   /proc and cgroup files each time (about 2% of an attack's time): answer it once through
///   `RAYON_NUM_THREADS`, which candle and rayon read first;
/// - candle's own spinning thread pool for element-wise ops competes with rayon, which runs
///   our kernels; the hot element-wise work is in our kernels now, so `CANDLE_NUM_THREADS=1`
///   (measured: CNN training 3000 → 3700 samples/s).
fn configure_threads() {
    // Called at start-up, before any thread exists.
    if std::env::var_os("RAYON_NUM_THREADS").is_none() {
        let n = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
        std::env::set_var("RAYON_NUM_THREADS", n.to_string());
    }
    if std::env::var_os("CANDLE_NUM_THREADS").is_none() {
        std::env::set_var("CANDLE_NUM_THREADS", "1");
    }
}

/// A script's text, without an editor's UTF-8 byte-order mark.
fn read_script(path: &PathBuf) -> anyhow::Result<String> {
    let source = std::fs::read_to_string(path).with_context(|| format!("cannot read script {}", path.display()))?;
    Ok(source.strip_prefix('\u{feff}').map(str::to_string).unwrap_or(source))
}

/// The NAME=VALUE arguments, or the usage error (exit code 2, as clap's own) for a malformed one.
fn script_args(raw_args: &[String], command: &str) -> Result<Vec<(String, rhai::Dynamic)>, ExitCode> {
    raw_args.iter().map(|a| script::parse_arg(a)).collect::<Result<Vec<_>, _>>().map_err(|e| {
        eprintln!("error: {e}\n\nUsage: advlab {command} SCRIPT [NAME=VALUE]... (e.g. advlab {command} s.rhai quick=true n=100)");
        ExitCode::from(2)
    })
}

/// Parse `source` and check its calls (see [`script::check`]); the rendered errors when
/// something is wrong. The check reads a tree compiled without optimisation, where an option
/// map written as literals is still a map whose keys keep their positions.
fn parse_and_check(engine: &mut rhai::Engine, source: &str, shown: &str, check: bool) -> Result<rhai::AST, String> {
    let ast = engine
        .compile(source)
        .map_err(|e| report::render_parse(source, shown, &e))?;
    if check {
        let level = engine.optimization_level();
        engine.set_optimization_level(rhai::OptimizationLevel::None);
        let plain = engine.compile(source);
        engine.set_optimization_level(level);
        let plain = plain.map_err(|e| report::render_parse(source, shown, &e))?;
        let findings = script::check::check(engine, &plain);
        if !findings.is_empty() {
            return Err(report::render_findings(source, shown, &findings));
        }
    }
    Ok(ast)
}

fn check_script(path: &PathBuf, raw_args: &[String]) -> anyhow::Result<ExitCode> {
    let source = read_script(path)?;
    if let Err(code) = script_args(raw_args, "check") {
        return Ok(code);
    }
    let session = Rc::new(Session::new(candle_core::Device::Cpu, 0, PathBuf::from("out")));
    let (mut engine, _) = script::new_engine(session);
    script::import_beside(&mut engine, path);
    match parse_and_check(&mut engine, &source, &path.display().to_string(), true) {
        Ok(_) => {
            println!("{}: ok", path.display());
            Ok(ExitCode::SUCCESS)
        }
        Err(text) => {
            eprint!("{text}");
            Ok(ExitCode::from(1))
        }
    }
}

fn run_script(
    path: &PathBuf,
    raw_args: &[String],
    s: SessionArgs,
    max_operations: u64,
    check: bool,
) -> anyhow::Result<ExitCode> {
    let SessionArgs { seed, device, out } = s;
    let source = read_script(path)?;
    let args = match script_args(raw_args, "run") {
        Ok(a) => a,
        Err(code) => return Ok(code),
    };
    let device = crate::device::select(device_name(device))?;
    let session = Rc::new(Session::new(device, seed, out));
    {
        let mut p = session.provenance.borrow_mut();
        p.script = Some(path.display().to_string());
        let args_json: serde_json::Map<String, serde_json::Value> = args
            .iter()
            .map(|(k, v)| {
                (
                    k.clone(),
                    rhai::serde::from_dynamic(v).unwrap_or(serde_json::Value::Null),
                )
            })
            .collect();
        p.args = serde_json::Value::Object(args_json);
    }
    let (mut engine, docs) = script::new_engine(session.clone());
    crate::repl::limit(&mut engine, max_operations);
    script::import_beside(&mut engine, path);
    let shown = path.display().to_string();
    let ast = match parse_and_check(&mut engine, &source, &shown, check) {
        Ok(ast) => ast,
        Err(text) => {
            eprint!("{text}");
            return Ok(ExitCode::from(1));
        }
    };
    let engine = Rc::new(engine);
    session.set_host(&engine, &ast);
    let mut scope = script::scope_with_args(args);
    crate::interrupt::clear();
    match engine.run_ast_with_scope(&mut scope, &ast) {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(e) => {
            eprint!("{}", report::render(&source, &shown, &e, &docs));
            // a bug inside a call: exit code 101, as a panic anywhere else
            Ok(ExitCode::from(if report::is_internal(&e) { 101 } else { 1 }))
        }
    }
}
