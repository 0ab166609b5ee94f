//! `advlab repl`: an interactive prompt on the same engine as `advlab run`. One scope keeps
//! every variable (and every function defined at the prompt) from one input to the next, also
//! after an error; Rhai's parser decides when an input is unfinished (`...>`); Ctrl-C stops
//! a running call or loop and returns to the prompt.

mod helper;
mod show;

pub use helper::{ReplHelper, COMMANDS};

use crate::script::{self, report, FnDoc, Session};
use anyhow::Context as _;
use rhai::{Dynamic, Engine, EvalAltResult, LexError, ParseErrorType, Position, Scope, AST};
use rustyline::error::ReadlineError;
use rustyline::history::DefaultHistory;
use rustyline::{CompletionType, Config, Editor};
use show::Shower;
use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

/// Ctrl-C presses since the last input started: the first asks the running call to stop, the
/// third ends advlab (for a call that never polls the flag).
static PRESSES: AtomicUsize = AtomicUsize::new(0);

fn on_ctrl_c() {
    crate::interrupt::request();
    if PRESSES.fetch_add(1, Ordering::SeqCst) + 1 >= 3 {
        eprintln!("\nadvlab: Ctrl-C three times, quitting");
        std::process::exit(130);
    }
}

/// How `advlab repl` was started.
#[derive(Clone, Debug)]
pub struct ReplArgs {
    /// A script run into the scope before the first prompt.
    pub load: Option<PathBuf>,
    pub seed: u64,
    /// `cpu` or `cuda`.
    pub device: String,
    pub out: PathBuf,
}

/// Operations one input may run before it is stopped (a native call such as `fit` counts as
/// one): about a minute of pure script work (measured: 8 million loop iterations a second),
/// far more than any loop over configurations needs.
pub const MAX_OPERATIONS: u64 = 2_000_000_000;
/// Nesting of script function calls (deep recursion stops here rather than overflowing).
pub const MAX_CALL_LEVELS: usize = 64;

/// The limits of a script run or an input (`max_operations` 0: no limit on operations), and the
/// `on_progress` callback that stops a script loop when Ctrl-C sets the interrupt flag.
pub fn limit(engine: &mut Engine, max_operations: u64) {
    engine.set_max_operations(max_operations);
    engine.set_max_call_levels(MAX_CALL_LEVELS);
    engine.set_max_string_size(64 << 20);
    engine.set_max_array_size(50_000_000);
    engine.set_max_map_size(1_000_000);
    engine.on_progress(|_| crate::interrupt::check().err().map(|_| Dynamic::from("interrupted")));
}

/// Whether `input` is an unfinished statement or block that more lines can complete: the
/// parser ran out of input (an open bracket, block or string, a dangling operator).
pub fn is_incomplete(engine: &Engine, input: &str) -> bool {
    let Err(e) = engine.compile(input) else {
        return false;
    };
    match e.err_type() {
        ParseErrorType::UnexpectedEOF => true,
        // a back-tick string spans lines, a "…" string only after a `\` at the end of a line
        ParseErrorType::BadInput(LexError::UnterminatedString) => {
            let opening = e.position().line().and_then(|l| {
                let col = e.position().position()?;
                input.lines().nth(l - 1)?.chars().nth(col - 1)
            });
            opening == Some('`') || input.trim_end().ends_with('\\')
        }
        ParseErrorType::MissingToken(..) | ParseErrorType::MissingSymbol(..) | ParseErrorType::BadInput(_) => {
            at_end(input, e.position())
        }
        _ => false,
    }
}

/// Whether `pos` is at or after the last non-blank character of `input`.
fn at_end(input: &str, pos: Position) -> bool {
    let Some(line) = pos.line() else {
        return true;
    };
    let trimmed = input.trim_end();
    let last_line = trimmed.lines().count().max(1);
    let last_len = trimmed.lines().last().map_or(0, |l| l.chars().count());
    line > last_line || (line == last_line && pos.position().unwrap_or(usize::MAX) > last_len)
}

/// Where the history is kept: `$ADVLAB_HISTORY`, else `advlab/history.txt` in the user's
/// data directory (`~/.local/share` on Linux).
pub fn history_path() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("ADVLAB_HISTORY") {
        return Some(PathBuf::from(p));
    }
    dirs::data_dir().map(|d| d.join("advlab").join("history.txt"))
}

/// What to do after a command.
#[derive(PartialEq, Eq)]
enum Flow {
    Go,
    Quit,
}

/// The state of a session: the engine, the scope, the functions defined so far and the
/// inputs that succeeded (for `:save`).
pub struct Repl {
    engine: Rc<Engine>,
    docs: Rc<Vec<FnDoc>>,
    scope: Scope<'static>,
    fns: AST,
    log: Vec<String>,
    session: Rc<Session>,
    vars: helper::Vars,
    shower: Shower,
}

fn fresh_scope() -> Scope<'static> {
    script::scope_with_args(Vec::new())
}

/// Put `;` after an input that does not end a statement, so that inputs can be joined.
fn terminated(input: &str) -> String {
    let t = input.trim_end();
    if t.ends_with(';') {
        t.to_string()
    } else if t.lines().last().is_some_and(|l| l.contains("//")) {
        format!("{t}\n;")
    } else {
        format!("{t};")
    }
}

impl Repl {
    /// A session with `session`'s device, seed and output directory.
    pub fn new(session: Rc<Session>) -> Self {
        let (mut engine, docs) = script::new_engine(session.clone());
        limit(&mut engine, MAX_OPERATIONS);
        let shower = Shower::new(&engine);
        Self {
            engine: Rc::new(engine),
            docs: Rc::new(docs),
            scope: fresh_scope(),
            fns: AST::empty(),
            log: Vec::new(),
            session,
            vars: Rc::new(RefCell::new(Vec::new())),
            shower,
        }
    }

    fn refresh_vars(&self) {
        let mut vars = self.vars.borrow_mut();
        vars.clear();
        for (name, _, v) in self.scope.iter_raw() {
            if !vars.iter().any(|(n, _)| n == name) {
                vars.push((name.to_string(), self.engine.map_type_name(v.type_name()).to_string()));
            }
        }
    }

    /// Compile and run `src` in the scope; print an error with its position in `src` and
    /// return None when it fails.
    fn eval(&mut self, src: &str, origin: &str) -> Option<Dynamic> {
        crate::interrupt::clear();
        PRESSES.store(0, Ordering::SeqCst);
        let ast = match self.engine.compile_with_scope(&self.scope, src) {
            Ok(a) => a,
            Err(e) => {
                eprint!("{}", report::render_parse(src, origin, &e));
                return None;
            }
        };
        let merged = self.fns.merge(&ast);
        self.session.set_host(&self.engine, &merged);
        let result = self.engine.eval_ast_with_scope::<Dynamic>(&mut self.scope, &merged);
        let interrupted = crate::interrupt::check().is_err();
        crate::interrupt::clear();
        self.refresh_vars();
        match result {
            Ok(v) => {
                self.fns = merged;
                self.fns.clear_statements();
                Some(v)
            }
            Err(e) => {
                let e = if interrupted {
                    let pos = match *e {
                        EvalAltResult::ErrorTerminated(_, p) => p,
                        ref other => other.position(),
                    };
                    EvalAltResult::ErrorRuntime("interrupted (Ctrl-C); the variables keep their values".into(), pos)
                } else {
                    *e
                };
                eprint!("{}", report::render(src, origin, &e, &self.docs));
                None
            }
        }
    }

    /// Run one input typed at the prompt and show its value.
    pub fn input(&mut self, src: &str) -> bool {
        match self.eval(src, "input") {
            Some(v) => {
                let text = self.shower.show(&self.engine, &v);
                if !text.is_empty() {
                    println!("{text}");
                }
                // A bare name only showed a value: the script does not need it.
                let bare = src.trim().trim_end_matches(';').trim();
                if !(bare.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') && self.scope.contains(bare)) {
                    self.log.push(src.to_string());
                }
                true
            }
            None => false,
        }
    }

    /// Run a script file into the scope.
    pub fn load(&mut self, path: &str) -> bool {
        let resolved = self.session.resolve_out(path);
        let src = match std::fs::read_to_string(&resolved) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("error: cannot read {}: {e}", resolved.display());
                return false;
            }
        };
        let ok = self.eval(&src, &resolved.display().to_string()).is_some();
        if ok {
            self.log.push(format!("// :load {path}\n{}", src.trim_end()));
            println!("loaded {}", resolved.display());
        }
        ok
    }

    /// The inputs that succeeded, as a script for `advlab run` to be saved at `path`.
    pub fn script(&self, path: &str) -> String {
        let s = &self.session;
        let mut out = format!(
            "// An advlab REPL session: the inputs that succeeded, in order.\n\
             // Re-run with: advlab run {path} --seed {} --device {}{}\n",
            s.seed,
            crate::device::name(&s.device),
            if s.out_dir == Path::new("out") {
                String::new()
            } else {
                format!(" --out {}", s.out_dir.display())
            }
        );
        for input in &self.log {
            out.push('\n');
            out.push_str(&terminated(input));
            out.push('\n');
        }
        out
    }

    fn save(&self, path: &str) {
        let resolved = self.session.resolve_out(path);
        match crate::output::write_atomic(&resolved, self.script(&resolved.display().to_string()).as_bytes()) {
            Ok(()) => println!(
                "saved {} inputs to {} (run it with `advlab run {}`)",
                self.log.len(),
                resolved.display(),
                resolved.display()
            ),
            Err(e) => eprintln!("error: {e}"),
        }
    }

    fn help(&self, arg: &str) {
        if arg.is_empty() {
            print!("{}", script::functions_text(false));
            println!("\n[commands]");
            for (c, what) in COMMANDS {
                println!("  {c:<9} {what}");
            }
            println!(
                "\nTab completes names, methods of a variable and paths in strings; an unfinished input \
                 continues on `...>` (an empty line ends it); Ctrl-C stops a running call; Ctrl-D quits."
            );
            return;
        }
        let name = arg.trim_start_matches(':');
        let mut found = false;
        if let Some((c, what)) = COMMANDS.iter().find(|(c, _)| c[1..] == *name) {
            println!("{c}: {what}");
            found = true;
        }
        for d in self.docs.iter() {
            let ty = d
                .sig
                .split('(')
                .next()
                .and_then(|h| h.split_once('.'))
                .map(|(t, _)| t.trim());
            if d.name() == name || ty == Some(name) {
                println!("  {}\n      {}   [{}]", d.sig, d.doc, d.domain);
                found = true;
            }
        }
        if !found {
            let names: Vec<&str> = self.docs.iter().map(|d| d.name()).collect();
            match closest(name, names.into_iter()) {
                Some(s) => println!("no function, type or command named `{name}`; did you mean `{s}`?"),
                None => println!("no function, type or command named `{name}`; `:help` lists them all"),
            }
        }
    }

    fn show_vars(&self) {
        let mut rows: Vec<(String, String, String)> = Vec::new();
        for (name, _, v) in self.scope.iter_raw() {
            if name == "args" || rows.iter().any(|r| r.0 == name) {
                continue;
            }
            let (ty, detail) = self.shower.brief(&self.engine, v);
            rows.push((name.to_string(), ty, detail));
        }
        // The scope lists the newest first; show them in the order they were defined.
        rows.reverse();
        if rows.is_empty() {
            println!("no variables yet");
            return;
        }
        let w0 = rows.iter().map(|r| r.0.len()).max().unwrap_or(0).max(4);
        let w1 = rows.iter().map(|r| r.1.len()).max().unwrap_or(0).max(4);
        println!("{:<w0$}  {:<w1$}  shape / size", "name", "type");
        for (n, t, d) in rows {
            println!("{n:<w0$}  {t:<w1$}  {d}");
        }
    }

    /// Run a `:command`.
    fn command(&mut self, line: &str) -> Flow {
        let (cmd, arg) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
        let arg = arg.trim();
        let need_arg = |what: &str| {
            if arg.is_empty() {
                eprintln!(
                    "error: {cmd} needs {what}, e.g. {cmd} {}",
                    if cmd == ":time" {
                        "m.accuracy(d.test)"
                    } else {
                        "session.rhai"
                    }
                );
                false
            } else {
                true
            }
        };
        match cmd {
            ":help" | ":h" | ":?" => self.help(arg),
            ":vars" => self.show_vars(),
            ":load" => {
                if need_arg("a file") {
                    self.load(arg);
                }
            }
            ":save" => {
                if need_arg("a file") {
                    self.save(arg);
                }
            }
            ":time" => {
                if need_arg("an expression") {
                    let t = Instant::now();
                    let ok = self.input(arg);
                    let secs = t.elapsed().as_secs_f64();
                    println!("time: {secs:.3} s{}", if ok { "" } else { " (failed)" });
                }
            }
            ":device" => {
                let s = &self.session;
                println!(
                    "device {}, default seed {}, out/ is {}",
                    crate::device::name(&s.device),
                    s.seed,
                    s.out_dir.display()
                );
            }
            ":history" => match history_path() {
                Some(p) => println!("history: {}", p.display()),
                None => println!("history: not kept (no data directory)"),
            },
            ":clear" => {
                self.scope = fresh_scope();
                self.fns = AST::empty();
                self.log.clear();
                self.refresh_vars();
                println!("cleared every variable and function");
            }
            ":quit" | ":q" | ":exit" => return Flow::Quit,
            other => {
                let hint = closest(other, COMMANDS.iter().map(|(c, _)| *c))
                    .map(|c| format!("; did you mean {c}?"))
                    .unwrap_or_default();
                eprintln!("unknown command {other}{hint} (:help lists the commands)");
            }
        }
        Flow::Go
    }
}

/// The candidate nearest to `word` by edit distance, if it is near enough to be a typo.
fn closest<'a>(word: &str, candidates: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    candidates
        .map(|c| (strsim::damerau_levenshtein(word, c), c))
        .filter(|(d, c)| *d <= 2.max(c.len() / 3))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// Run the REPL until `:quit` or Ctrl-D.
pub fn run(args: ReplArgs) -> anyhow::Result<ExitCode> {
    let device = crate::device::select(&args.device)?;
    let session = Rc::new(Session::new(device, args.seed, args.out));
    session.provenance.borrow_mut().script = Some("<repl>".into());
    let mut repl = Repl::new(session.clone());
    if let Err(e) = ctrlc::set_handler(on_ctrl_c) {
        eprintln!("warning: Ctrl-C will end advlab instead of stopping a call ({e})");
    }
    let config = Config::builder()
        .auto_add_history(false)
        .completion_type(CompletionType::List)
        .max_history_size(2000)
        .context("history size")?
        .history_ignore_dups(true)
        .context("history")?
        .build();
    let mut rl: Editor<ReplHelper, DefaultHistory> = Editor::with_config(config)?;
    rl.set_helper(Some(ReplHelper::new(repl.docs.clone(), repl.vars.clone())));
    let history = history_path();
    if let Some(h) = &history {
        if h.is_file() {
            if let Err(e) = rl.load_history(h) {
                eprintln!("warning: cannot read the history {}: {e}", h.display());
            }
        }
    }
    println!(
        "advlab {} REPL on {}, seed {}, out/ = {}. :help lists functions and commands; Tab completes; \
         Ctrl-C stops a call; Ctrl-D quits.",
        env!("CARGO_PKG_VERSION"),
        crate::device::name(&session.device),
        session.seed,
        session.out_dir.display()
    );
    if let Some(path) = &args.load {
        repl.load(&path.display().to_string());
    }
    repl.refresh_vars();
    let mut buf = String::new();
    loop {
        let prompt = if buf.is_empty() { "advlab> " } else { "...> " };
        match rl.readline(prompt) {
            Ok(line) => {
                if buf.is_empty() && line.trim_start().starts_with(':') {
                    let cmd = line.trim();
                    let _ = rl.add_history_entry(cmd);
                    save_history(&mut rl, history.as_deref());
                    if repl.command(cmd) == Flow::Quit {
                        break;
                    }
                    continue;
                }
                let ends = !buf.is_empty() && line.trim().is_empty();
                if !buf.is_empty() {
                    buf.push('\n');
                }
                buf.push_str(&line);
                if buf.trim().is_empty() {
                    buf.clear();
                    continue;
                }
                if !ends && is_incomplete(&repl.engine, &buf) {
                    continue;
                }
                let input = std::mem::take(&mut buf);
                let input = input.trim_end();
                let _ = rl.add_history_entry(input);
                save_history(&mut rl, history.as_deref());
                repl.input(input);
            }
            Err(ReadlineError::Interrupted) => {
                if !buf.is_empty() {
                    println!("(unfinished input discarded)");
                }
                buf.clear();
            }
            Err(ReadlineError::Eof) => break,
            Err(e) => return Err(e.into()),
        }
    }
    save_history(&mut rl, history.as_deref());
    Ok(ExitCode::SUCCESS)
}

fn save_history(rl: &mut Editor<ReplHelper, DefaultHistory>, path: Option<&Path>) {
    let Some(path) = path else { return };
    if let Some(dir) = path.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    if let Err(e) = rl.save_history(path) {
        eprintln!("warning: cannot write the history {}: {e}", path.display());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    fn repl() -> Repl {
        Repl::new(Rc::new(Session::new(Device::Cpu, 0, PathBuf::from("out"))))
    }

    #[test]
    fn the_parser_decides_when_an_input_is_unfinished() {
        let e = Engine::new();
        for s in [
            "let x = [1,",
            "fn f(a) {",
            "if true {",
            "kmeans(#{ k: 3",
            "let s = `abc",
            "let s = \"abc\\",
            "let y = 1 +",
            "let m = #{ a: 1,",
        ] {
            assert!(is_incomplete(&e, s), "{s}");
        }
        for s in [
            "let x = [1, 2];",
            "1 +* 2",
            "let = 3;",
            "x)",
            "let y = 1",
            "let s = \"abc",
        ] {
            assert!(!is_incomplete(&e, s), "{s}");
        }
    }

    #[test]
    fn variables_and_functions_survive_errors() {
        let mut r = repl();
        assert!(r.input("let a = 41; fn inc(x) { x + 1 }"));
        assert!(!r.input("let b = a + ;"));
        assert!(!r.input("undefined_fn(1)"));
        // endless recursion stops at the call-depth limit instead of overflowing the stack
        assert!(!r.input("fn deeper(x) { deeper(x + 1) } deeper(0)"));
        assert_eq!(r.eval("inc(a)", "input").unwrap().as_int().unwrap(), 42);
        assert_eq!(r.log.len(), 1);
    }

    #[test]
    fn saved_inputs_join_into_a_script_that_compiles() {
        let mut r = repl();
        for s in [
            "let a = 1",
            "let m = #{ x: a }",
            "if a > 0 { a += 1 }",
            "fn twice(x) { x * 2 }",
            "a // the value",
            "let b = twice(a);",
        ] {
            assert!(r.input(s), "{s}");
        }
        let text = r.script("s.rhai");
        let mut e = Engine::new();
        e.set_max_expr_depths(64, 64);
        let mut scope = script::scope_with_args(Vec::new());
        e.run_with_scope(&mut scope, &text).unwrap();
        assert_eq!(scope.get_value::<rhai::INT>("b"), Some(4));
    }

    #[test]
    fn commands_get_suggestions() {
        assert_eq!(closest(":hepl", COMMANDS.iter().map(|(c, _)| *c)), Some(":help"));
        assert_eq!(closest(":zzzzzz", COMMANDS.iter().map(|(c, _)| *c)), None);
    }
}
