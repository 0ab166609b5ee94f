//! Rendering a script error for a person: the message, `file:line:col`, the source line and a
//! caret under the column (as rhai-repl and just do).

use super::FnDoc;
use rhai::{EvalAltResult, ParseError, Position};

/// The message of an error without Rhai's decorations, plus a hint where one helps.
fn message(err: &EvalAltResult, docs: &[FnDoc]) -> (String, Option<String>) {
    match err {
        EvalAltResult::ErrorFunctionNotFound(sig, _) => {
            let name = sig.split(|c: char| c == '(' || c.is_whitespace()).next().unwrap_or(sig);
            let known: Vec<&str> = docs.iter().filter(|d| d.name() == name).map(|d| d.sig).collect();
            if known.is_empty() {
                (
                    format!("unknown function: {sig}"),
                    Some("`advlab functions` lists every function".into()),
                )
            } else {
                (
                    format!("wrong argument types in call to {sig}"),
                    Some(format!("{name} is called as: {}", known.join(" | "))),
                )
            }
        }
        EvalAltResult::ErrorRuntime(d, _) => (d.to_string(), None),
        other => {
            let text = other.to_string();
            let suffix = format!(" ({})", other.position());
            let text = if other.position().is_none() {
                text
            } else {
                text.trim_end_matches(&suffix).to_string()
            };
            (text, None)
        }
    }
}

/// The innermost error and the names of the script functions it passed through.
fn innermost(err: &EvalAltResult) -> (&EvalAltResult, Vec<String>) {
    let mut chain = Vec::new();
    let mut cur = err;
    while let EvalAltResult::ErrorInFunctionCall(name, _, inner, _) = cur {
        chain.push(name.clone());
        cur = inner;
    }
    (cur, chain)
}

fn snippet(source: &str, path: &str, pos: Position) -> String {
    let (Some(line), col) = (pos.line(), pos.position()) else {
        return format!(" --> {path}\n");
    };
    let col = col.unwrap_or(1);
    let text = source.lines().nth(line - 1).unwrap_or("");
    let num = line.to_string();
    let pad = " ".repeat(num.len());
    format!(
        " --> {path}:{line}:{col}\n{pad} |\n{num} | {text}\n{pad} | {}^\n",
        " ".repeat(col.saturating_sub(1))
    )
}

/// `error: message`, then where it happened in `source`.
pub fn render(source: &str, path: &str, err: &EvalAltResult, docs: &[FnDoc]) -> String {
    let (inner, chain) = innermost(err);
    let (msg, hint) = message(inner, docs);
    let mut out = format!("error: {msg}\n");
    out.push_str(&snippet(source, path, inner.position()));
    if !chain.is_empty() {
        out.push_str(&format!("  = in function {}\n", chain.join(" → ")));
        if inner.position().is_none() {
            out.push_str(&snippet(source, path, err.position()));
        }
    }
    if let Some(h) = hint {
        out.push_str(&format!("  = help: {h}\n"));
    }
    out
}

/// Whether `err` is an internal error (a panic caught inside a call, see `guard.rs`), which
/// `advlab run` ends with exit code 101, not 1.
pub fn is_internal(err: &EvalAltResult) -> bool {
    matches!(innermost(err).0, EvalAltResult::ErrorRuntime(v, _) if v.to_string().contains(super::INTERNAL_ERROR))
}

/// A syntax error, rendered the same way.
pub fn render_parse(source: &str, path: &str, err: &ParseError) -> String {
    format!(
        "error: syntax error: {}\n{}",
        err.err_type(),
        snippet(source, path, err.position())
    )
}

/// The findings of a static check, each rendered as an error with its place in `source`.
pub fn render_findings(source: &str, path: &str, findings: &[super::check::Finding]) -> String {
    let mut out = String::new();
    for f in findings {
        out.push_str(&format!("error: {}\n", f.message));
        out.push_str(&snippet(source, path, f.pos));
        if let Some(h) = &f.help {
            out.push_str(&format!("  = help: {h}\n"));
        }
    }
    out
}
