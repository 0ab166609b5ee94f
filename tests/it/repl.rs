//! `advlab repl` driven through a pseudo-terminal, as a person types: load data, attack,
//! cluster, look at a summary, ask for help, complete with Tab, survive an error, interrupt
//! a loop and a long call with Ctrl-C, save the session and re-run it with `advlab run`.

use crate::common::advlab;
use rexpect::reader::Options;
use rexpect::session::{spawn_with_options, PtySession};
use std::path::Path;
use std::time::{Duration, Instant};

const PROMPT: &str = "advlab> ";
const MORE: &str = "...> ";
/// The editor redraws the prompt and the line at every key (hints, wrapping), so the echo
/// cannot mark where an input ends. The editor's terminal modes can: it leaves bracketed-paste
/// mode when it hands a line over and enters it again when it reads the next one.
const ACCEPTED: &str = "\x1b[?2004l";
const READING: &str = "\x1b[?2004h";

/// Without terminal escape sequences and carriage returns.
fn plain(s: &str) -> String {
    let mut out = String::new();
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            if chars.peek() == Some(&'[') {
                chars.next();
                for c in chars.by_ref() {
                    if c.is_ascii_alphabetic() {
                        break;
                    }
                }
            }
        } else if c != '\r' {
            out.push(c);
        }
    }
    out
}

/// Wait until the editor reads again and shows `prompt`; what was printed before.
fn next_prompt(p: &mut PtySession, prompt: &str) -> String {
    let out = p.exp_string(READING).expect("the editor reads again");
    p.exp_string(prompt).unwrap_or_else(|e| panic!("no `{prompt}`: {e}"));
    plain(&out)
}

/// Wait until the line just typed is accepted, then for the next `prompt`; what was printed
/// in between.
fn entered(p: &mut PtySession, prompt: &str) -> String {
    p.exp_string(ACCEPTED).expect("the line is accepted");
    next_prompt(p, prompt)
}

/// Type a line and press Enter.
fn enter(p: &mut PtySession, text: &str) {
    p.send_line(text).unwrap();
    p.exp_string(ACCEPTED).expect("the line is accepted");
}

/// Type one line and wait for the next prompt; what was printed in between.
fn line(p: &mut PtySession, text: &str) -> String {
    p.send_line(text).unwrap();
    entered(p, PROMPT)
}

/// Wait for the next prompt after Ctrl-C.
fn prompt(p: &mut PtySession) -> String {
    next_prompt(p, PROMPT)
}

/// Type keys without Enter.
fn keys(p: &mut PtySession, text: &str) {
    p.send(text).unwrap();
    p.flush().unwrap();
}

fn start(dir: &Path) -> PtySession {
    start_with(dir, &[])
}

fn start_with(dir: &Path, args: &[&str]) -> PtySession {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_advlab"));
    cmd.arg("repl")
        .args(args)
        .args(["--seed", "3", "--out"])
        .arg(dir.join("out"))
        .current_dir(dir)
        .env("ADVLAB_OFFLINE", "1")
        .env("ADVLAB_HISTORY", dir.join("history.txt"))
        .env("TERM", "xterm")
        .env("RAYON_NUM_THREADS", "2");
    let mut p = spawn_with_options(
        cmd,
        Options::new().timeout_ms(Some(60_000)).strip_ansi_escape_codes(false),
    )
    .expect("start advlab repl in a pty");
    next_prompt(&mut p, PROMPT);
    p
}

#[test]
fn a_session_explores_a_clustering_and_its_saved_script_reruns_the_same() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let mut p = start(dir);
    line(&mut p, "let d = synthetic(#{ train: 600, test: 100, seed: 1 });");
    line(&mut p, "let m = mlp([784, 32, 10]);");
    line(&mut p, "m.fit(d.train, #{ epochs: 2, seed: 1 });");
    line(&mut p, "let adv = fgsm(#{ eps: 0.3 }).perturb(m, d.test);");
    let shown = line(&mut p, "adv");
    assert!(
        shown.contains("fgsm(synthetic-test)\": 100 samples") && shown.contains("labels 0:"),
        "{shown}"
    );
    // A multi-line input: the parser sees the open call and asks for more on `...>`.
    p.send_line("let points = pca(#{ dims: 2 }).fit_transform(").unwrap();
    entered(&mut p, MORE);
    line(&mut p, "    adv);");
    line(&mut p, "let c = kmeans(#{ k: 4, seed: 1 }).fit(points);");
    let table = line(&mut p, "c.summary(adv)");
    let header = table
        .lines()
        .find(|l| l.contains("majority"))
        .unwrap_or_else(|| panic!("{table}"));
    let cols: Vec<&str> = header.split_whitespace().collect();
    assert_eq!(
        cols,
        ["cluster", "size", "share", "majority", "purity", "histogram"],
        "{table}"
    );
    let sizes: usize = table
        .lines()
        .skip_while(|l| !l.contains("majority"))
        .skip(1)
        .filter_map(|l| l.split_whitespace().nth(1)?.parse::<usize>().ok())
        .sum();
    assert_eq!(sizes, 100, "{table}");

    let help = line(&mut p, ":help kmeans");
    assert!(help.contains("kmeans(opts: Map) -> Clusterer"), "{help}");
    assert!(help.contains("k-means++"), "{help}");
    let unknown = line(&mut p, ":hepl");
    assert!(unknown.contains("did you mean :help?"), "{unknown}");

    // Tab completes a partial function name; the rest of the line only works if it did.
    keys(&mut p, "let k = inertia_ch");
    keys(&mut p, "\t");
    let out = line(&mut p, "points, #{ k_max: 3, seed: 1 }); type_of(k)");
    assert!(out.contains("\"Chart\""), "completion failed: {out}");

    // An error does not lose what came before it.
    line(&mut p, "let before = 42;");
    let err = line(&mut p, "let bad = nosuch_function(before);");
    assert!(err.contains("unknown function") && err.contains("input:1:11"), "{err}");
    let syntax = line(&mut p, "let = 3;");
    assert!(syntax.contains("syntax error"), "{syntax}");
    assert!(line(&mut p, "before + 1").contains("43"));

    // Ctrl-C stops an endless loop, then a long native call, and returns to the prompt.
    enter(&mut p, "let spins = 0; loop { spins += 1; }");
    std::thread::sleep(Duration::from_millis(700));
    let t = Instant::now();
    p.send_control('c').unwrap();
    let stopped = prompt(&mut p);
    assert!(stopped.contains("interrupted"), "{stopped}");
    assert!(
        t.elapsed() < Duration::from_secs(3),
        "loop took {:?} to stop",
        t.elapsed()
    );
    enter(
        &mut p,
        "let long = pgd(#{ eps: 0.3, steps: 1000000 }).perturb(m, d.test);",
    );
    std::thread::sleep(Duration::from_millis(1500));
    let t = Instant::now();
    p.send_control('c').unwrap();
    let stopped = prompt(&mut p);
    let took = t.elapsed();
    assert!(stopped.contains("interrupted"), "{stopped}");
    assert!(took < Duration::from_secs(3), "pgd took {took:?} to stop");
    eprintln!("Ctrl-C to prompt: {took:?} during PGD");
    assert!(line(&mut p, "before").contains("42"));
    let vars = line(&mut p, ":vars");
    assert!(
        vars.contains("Clustering") && vars.contains("4 clusters of 100 points"),
        "{vars}"
    );

    line(&mut p, "write_csv(\"out/summary.csv\", c.summary(adv));");
    let purity = line(&mut p, "print(`purity ${c.purity(adv.labels())}`);");
    let purity = purity
        .lines()
        .find(|l| l.starts_with("purity "))
        .unwrap_or_else(|| panic!("{purity}"))
        .trim()
        .to_string();
    let saved = line(&mut p, ":save session.rhai");
    assert!(saved.contains("saved"), "{saved}");
    p.send_line(":quit").unwrap();
    p.exp_eof().unwrap();

    let script = std::fs::read_to_string(dir.join("session.rhai")).unwrap();
    assert!(
        !script.contains("nosuch_function") && !script.contains("loop"),
        "{script}"
    );
    assert!(script.contains("--seed 3"), "{script}");
    let run = advlab()
        .current_dir(dir)
        .args(["run", "session.rhai", "--seed", "3", "--out", "out2"])
        .assert()
        .success();
    let stdout = String::from_utf8_lossy(&run.get_output().stdout).to_string();
    assert!(stdout.lines().any(|l| l.trim() == purity), "{stdout} vs {purity}");
    assert_eq!(
        std::fs::read_to_string(dir.join("out/summary.csv")).unwrap(),
        std::fs::read_to_string(dir.join("out2/summary.csv")).unwrap()
    );
    let history = std::fs::read_to_string(dir.join("history.txt")).unwrap();
    assert!(history.contains("c.summary(adv)"), "{history}");
}

#[test]
fn history_persists_and_ctrl_c_clears_the_line_and_ctrl_d_quits() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let mut p = start(dir);
    line(&mut p, "let kept = 5 * 5;");
    // Ctrl-C at the prompt drops what was typed; the next line runs alone. (A name that no
    // function starts with: a hint redraws the line and splits its echo.)
    keys(&mut p, "let abandoned = ");
    p.exp_string("abandoned = ").unwrap();
    p.send_control('c').unwrap();
    entered(&mut p, PROMPT);
    let out = line(&mut p, "kept");
    assert!(out.contains("25"), "{out}");
    // Ctrl-C also leaves an unfinished multi-line input.
    p.send_line("let x = [1,").unwrap();
    entered(&mut p, MORE);
    p.send_control('c').unwrap();
    prompt(&mut p);
    let undefined = line(&mut p, "abandoned");
    assert!(undefined.contains("error"), "{undefined}");
    line(&mut p, "print(`answer ${6 * 7}`);");
    p.send_control('d').unwrap();
    p.exp_eof().unwrap();
    // The next session finds the history: Up recalls the last input.
    let mut p = start(dir);
    keys(&mut p, "\x1b[A");
    p.exp_string("answer ${6 * 7}").unwrap();
    p.send_line("").unwrap();
    let out = entered(&mut p, PROMPT);
    assert!(out.contains("answer 42"), "history not recalled: {out}");
    p.send_line(":quit").unwrap();
    p.exp_eof().unwrap();
}

#[test]
fn load_help_time_and_method_completion() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::write(
        dir.join("setup.rhai"),
        "let d = synthetic(#{ train: 20, test: 10 }).test;\nfn twice(x) { x * 2 }\nlet loaded = twice(21);\n",
    )
    .unwrap();
    std::fs::write(dir.join("bad.rhai"), "let fine = 1;\nlet broken = d.take(-1);\n").unwrap();
    let mut p = start_with(dir, &["--load", "setup.rhai"]);
    // --load ran the script into the session, functions included
    assert!(line(&mut p, "twice(loaded)").contains("84"));
    // an error inside a loaded file names the file, line and column
    let err = line(&mut p, ":load bad.rhai");
    assert!(err.contains("bad.rhai:2:"), "{err}");
    assert!(err.contains("take: n must be >= 0, got -1"), "{err}");
    // a method of the variable's type, completed with Tab
    keys(&mut p, "d.label_c");
    keys(&mut p, "\t");
    let counts = line(&mut p, ")");
    assert!(counts.contains("[1, 1, 1, 1, 1, 1, 1, 1, 1, 1]"), "{counts}");
    let help = line(&mut p, ":help");
    for part in [
        "[data]",
        "[explore]",
        "Clustering.summary(data: Dataset) -> Array",
        "[commands]",
        ":save",
    ] {
        assert!(help.contains(part), "{part} missing from :help");
    }
    // completion after a chain: the type of `d.take(3)` is a Dataset
    keys(&mut p, "d.take(3).le");
    keys(&mut p, "\t");
    let len = line(&mut p, ")");
    assert!(len.contains('3'), "{len}");
    // keys typed while a call runs are kept: they are the start of the next input
    enter(&mut p, "let s = 0; for i in 0..2000000 { s += i; } s");
    keys(&mut p, "print(4");
    let busy = next_prompt(&mut p, PROMPT);
    assert!(busy.contains("1999999000000"), "{busy}");
    let typed = line(&mut p, "2)");
    assert!(typed.contains("42"), "{typed}");
    let timed = line(&mut p, ":time d.len()");
    assert!(timed.contains("10") && timed.contains("time: "), "{timed}");
    assert!(line(&mut p, ":device").contains("device cpu, default seed 3"));
    p.send_line(":quit").unwrap();
    p.exp_eof().unwrap();
}
