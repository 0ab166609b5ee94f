//! The line editor's helper: Tab completion (functions, methods of the variable before the
//! dot, variables, commands, file paths inside strings) and hints (the signature of the
//! function being typed). Everything comes from the registry of `FnDoc`s.

use crate::script::FnDoc;
use rustyline::completion::{Completer, Pair};
use rustyline::highlight::{CmdKind, Highlighter};
use rustyline::hint::{Hint, Hinter};
use rustyline::validate::Validator;
use rustyline::{Context, Helper};
use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::BTreeSet;
use std::rc::Rc;

/// The REPL's commands, with a one-line description each.
pub const COMMANDS: [(&str, &str); 9] = [
    (
        ":help",
        "all functions by domain; :help NAME for one function, type or command",
    ),
    (":vars", "the variables: name, type, shape or size"),
    (":load", ":load FILE runs a script into the current variables"),
    (
        ":save",
        ":save FILE writes the inputs that succeeded as a script for `advlab run`",
    ),
    (":time", ":time EXPR evaluates EXPR and prints how long it took"),
    (":device", "the device tensors live on, and the default seed"),
    (":history", "where the history is kept"),
    (":clear", "forget every variable and function"),
    (":quit", "leave (Ctrl-D does too)"),
];

/// The variables in scope as the editor sees them: name and type.
pub type Vars = Rc<RefCell<Vec<(String, String)>>>;

/// Completion and hints for the REPL.
pub struct ReplHelper {
    docs: Rc<Vec<FnDoc>>,
    vars: Vars,
}

/// A hint that is only shown: the right arrow does not insert it.
pub struct SigHint(String);

impl Hint for SigHint {
    fn display(&self) -> &str {
        &self.0
    }
    fn completion(&self) -> Option<&str> {
        None
    }
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// Byte index where the identifier ending at `end` starts.
fn ident_start(line: &str, end: usize) -> usize {
    line[..end]
        .char_indices()
        .rev()
        .take_while(|(_, c)| is_ident(*c))
        .last()
        .map_or(end, |(i, _)| i)
}

/// The start of the string literal the cursor is in (after its quote), if any.
fn open_string(before: &str) -> Option<usize> {
    let mut open: Option<(char, usize)> = None;
    let mut escaped = false;
    for (i, c) in before.char_indices() {
        match open {
            Some((q, _)) => {
                if escaped {
                    escaped = false;
                } else if c == '\\' && q == '"' {
                    escaped = true;
                } else if c == q {
                    open = None;
                }
            }
            None if c == '"' || c == '`' => open = Some((c, i + 1)),
            None => {}
        }
    }
    open.map(|(_, s)| s)
}

/// The chain of names ending right before `dot` (`a`, `f(…)`, `.b`, `.c(…)`), each with
/// whether it is called, first to last; `None` when something else comes before the dot.
fn chain_before(line: &str, dot: usize) -> Option<Vec<(&str, bool)>> {
    let bytes = line.as_bytes();
    let mut end = dot;
    let mut chain = Vec::new();
    loop {
        let called = end > 0 && bytes[end - 1] == b')';
        if called {
            // back to the matching `(`
            let mut depth = 0usize;
            let mut i = end;
            loop {
                i = i.checked_sub(1)?;
                match bytes[i] {
                    b')' => depth += 1,
                    b'(' => {
                        depth -= 1;
                        if depth == 0 {
                            break;
                        }
                    }
                    _ => {}
                }
            }
            end = i;
        }
        let start = ident_start(line, end);
        if start == end {
            return None;
        }
        chain.push((&line[start..end], called));
        if start > 0 && bytes[start - 1] == b'.' {
            end = start - 1;
        } else {
            break;
        }
    }
    chain.reverse();
    Some(chain)
}

/// The return type the signatures agree on (`-> T`), if they do.
fn same_return<'a>(docs: impl Iterator<Item = &'a FnDoc>) -> Option<String> {
    let mut types = docs.map(|d| d.sig.rsplit_once("->").map(|(_, t)| t.trim().to_string()));
    let first = types.next()??;
    types.all(|t| t.as_deref() == Some(first.as_str())).then_some(first)
}

/// The type part of a signature (`Model` of `Model.fit(...)`), if it is a method.
fn receiver(sig: &str) -> Option<&str> {
    let head = sig.split('(').next().unwrap_or(sig);
    head.split_once('.').map(|(t, _)| t.trim())
}

fn is_property(sig: &str) -> bool {
    !sig.contains('(') && !sig.contains('[')
}

impl ReplHelper {
    pub fn new(docs: Rc<Vec<FnDoc>>, vars: Vars) -> Self {
        Self { docs, vars }
    }

    fn var_type(&self, name: &str) -> Option<String> {
        self.vars
            .borrow()
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, t)| t.clone())
    }

    /// The type of the expression right before the `.` at `dot`, if known: a variable, a
    /// function call, and any chain of properties and method calls after them
    /// (`mnist().train.`, `m.fit(d.train).`), each step's type from its signature.
    fn type_before_dot(&self, line: &str, dot: usize) -> Option<String> {
        let chain = chain_before(line, dot)?;
        let ((first, called), rest) = chain.split_first()?;
        let mut ty = if *called {
            same_return(self.functions().filter(|d| d.name() == *first))?
        } else {
            self.var_type(first)?
        };
        for (name, _) in rest {
            ty = same_return(self.methods(Some(&ty)).into_iter().filter(|d| d.name() == *name))?;
        }
        Some(ty)
    }

    /// Methods (and properties) callable on `ty` (on any type when unknown), by name.
    fn methods(&self, ty: Option<&str>) -> Vec<&FnDoc> {
        self.docs
            .iter()
            .filter(|d| match (receiver(d.sig), ty) {
                (Some(r), Some(t)) => r == t,
                (Some(_), None) => true,
                (None, _) => false,
            })
            .collect()
    }

    fn functions(&self) -> impl Iterator<Item = &FnDoc> {
        self.docs
            .iter()
            .filter(|d| receiver(d.sig).is_none() && !d.sig.contains('['))
    }

    fn complete_path(&self, text: &str, start: usize) -> (usize, Vec<Pair>) {
        let (dir, prefix) = match text.rfind('/') {
            Some(i) => (&text[..=i], &text[i + 1..]),
            None => ("", text),
        };
        let read = if dir.is_empty() { "." } else { dir };
        let mut out: Vec<Pair> = std::fs::read_dir(read)
            .map(|rd| {
                rd.filter_map(|e| e.ok())
                    .filter_map(|e| {
                        let name = e.file_name().to_string_lossy().into_owned();
                        if !name.starts_with(prefix) || (name.starts_with('.') && !prefix.starts_with('.')) {
                            return None;
                        }
                        let slash = if e.path().is_dir() { "/" } else { "" };
                        Some(Pair {
                            display: format!("{name}{slash}"),
                            replacement: format!("{dir}{name}{slash}"),
                        })
                    })
                    .collect()
            })
            .unwrap_or_default();
        out.sort_by(|a, b| a.display.cmp(&b.display));
        (start, out)
    }

    /// Candidates for the text before the cursor: where the replaced word starts, and them.
    pub fn candidates(&self, line: &str, pos: usize) -> (usize, Vec<Pair>) {
        let before = &line[..pos];
        if let Some(s) = open_string(before) {
            return self.complete_path(&before[s..], s);
        }
        if before.starts_with(':') {
            return match before.split_once(' ') {
                None => {
                    let pairs = COMMANDS
                        .iter()
                        .filter(|(c, _)| c.starts_with(before))
                        .map(|(c, _)| Pair {
                            display: c.to_string(),
                            replacement: format!("{c} "),
                        })
                        .collect();
                    (0, pairs)
                }
                Some((":load" | ":save", arg)) => {
                    let arg = arg.trim_start();
                    self.complete_path(arg, pos - arg.len())
                }
                Some((":help", arg)) => {
                    let arg = arg.trim_start();
                    let names: BTreeSet<&str> = self
                        .docs
                        .iter()
                        .map(|d| d.name())
                        .chain(self.docs.iter().filter_map(|d| receiver(d.sig)))
                        .filter(|n| n.starts_with(arg))
                        .collect();
                    let pairs = names.into_iter().map(|n| Pair {
                        display: n.to_string(),
                        replacement: n.to_string(),
                    });
                    (pos - arg.len(), pairs.collect())
                }
                Some(_) => (pos, Vec::new()),
            };
        }
        let start = ident_start(line, pos);
        let word = &line[start..pos];
        let mut seen: BTreeSet<String> = BTreeSet::new();
        let mut out = Vec::new();
        if start > 0 && line[..start].ends_with('.') {
            let ty = self.type_before_dot(line, start - 1);
            for d in self.methods(ty.as_deref()) {
                let name = d.name();
                if name.starts_with(word) && seen.insert(name.to_string()) {
                    let replacement = if is_property(d.sig) {
                        name.to_string()
                    } else {
                        format!("{name}(")
                    };
                    out.push(Pair {
                        display: name.to_string(),
                        replacement,
                    });
                }
            }
        } else if !word.is_empty() {
            for (v, _) in self.vars.borrow().iter() {
                if v.starts_with(word) && seen.insert(v.clone()) {
                    out.push(Pair {
                        display: v.clone(),
                        replacement: v.clone(),
                    });
                }
            }
            for d in self.functions() {
                let name = d.name();
                if name.starts_with(word) && seen.insert(name.to_string()) {
                    out.push(Pair {
                        display: name.to_string(),
                        replacement: format!("{name}("),
                    });
                }
            }
        }
        out.sort_by(|a, b| a.display.cmp(&b.display));
        (start, out)
    }

    /// The signatures of the call the cursor is in (or of the one function whose name the
    /// word before the cursor begins), for the hint.
    pub fn signature_hint(&self, line: &str) -> Option<String> {
        if line.starts_with(':') || open_string(line).is_some() {
            return None;
        }
        // The innermost unclosed `(`.
        let mut depth = 0i32;
        let mut open = None;
        for (i, c) in line.char_indices().rev() {
            match c {
                ')' => depth += 1,
                '(' if depth == 0 => {
                    open = Some(i);
                    break;
                }
                '(' => depth -= 1,
                _ => {}
            }
        }
        let (name_end, typed) = match open {
            Some(i) => (i, None),
            None => (line.len(), Some(line.len())),
        };
        let start = ident_start(line, name_end);
        let name = &line[start..name_end];
        if name.is_empty() {
            return None;
        }
        let method = start > 0 && line[..start].ends_with('.');
        let ty = if method {
            self.type_before_dot(line, start - 1)
        } else {
            None
        };
        let pool: Vec<&FnDoc> = if method {
            self.methods(ty.as_deref())
        } else {
            self.functions().collect()
        };
        let sigs: Vec<&str> = match typed {
            None => pool.iter().filter(|d| d.name() == name).map(|d| d.sig).collect(),
            Some(_) if name.len() < 3 => return None,
            Some(_) => {
                let names: BTreeSet<&str> = pool
                    .iter()
                    .map(|d| d.name())
                    .filter(|n| n.starts_with(name) && *n != name)
                    .collect();
                if names.len() != 1 || (!method && self.var_type(name).is_some()) {
                    return None;
                }
                let only = names.into_iter().next()?;
                pool.iter().filter(|d| d.name() == only).map(|d| d.sig).collect()
            }
        };
        if sigs.is_empty() {
            return None;
        }
        let shown: Vec<&str> = sigs.iter().take(3).copied().collect();
        let more = if sigs.len() > 3 { " | …" } else { "" };
        Some(format!("    {}{more}", shown.join(" | ")))
    }
}

impl Completer for ReplHelper {
    type Candidate = Pair;

    fn complete(&self, line: &str, pos: usize, _ctx: &Context<'_>) -> rustyline::Result<(usize, Vec<Pair>)> {
        Ok(self.candidates(line, pos))
    }
}

impl Hinter for ReplHelper {
    type Hint = SigHint;

    fn hint(&self, line: &str, pos: usize, _ctx: &Context<'_>) -> Option<SigHint> {
        if pos < line.len() {
            return None;
        }
        self.signature_hint(line).map(SigHint)
    }
}

impl Highlighter for ReplHelper {
    fn highlight_hint<'h>(&self, hint: &'h str) -> Cow<'h, str> {
        Cow::Owned(format!("\x1b[2m{hint}\x1b[0m"))
    }

    fn highlight_char(&self, _line: &str, _pos: usize, _kind: CmdKind) -> bool {
        false
    }
}

impl Validator for ReplHelper {}

impl Helper for ReplHelper {}

#[cfg(test)]
mod tests {
    use super::*;

    fn helper() -> ReplHelper {
        let docs = Rc::new(crate::script::function_docs());
        let vars = Rc::new(RefCell::new(vec![
            ("clusters".to_string(), "Clustering".to_string()),
            ("data".to_string(), "Splits".to_string()),
        ]));
        ReplHelper::new(docs, vars)
    }

    fn names(line: &str) -> Vec<String> {
        helper()
            .candidates(line, line.len())
            .1
            .into_iter()
            .map(|p| p.replacement)
            .collect()
    }

    #[test]
    fn completes_functions_variables_and_methods_of_the_type() {
        assert_eq!(names("let c = kmea"), ["kmeans("]);
        // variables and functions share the prefix (`cluster_training(` is a function)
        assert_eq!(names("clu"), ["cluster_training(", "clusters"]);
        let m = names("clusters.");
        assert!(m.contains(&"summary(".to_string()) && m.contains(&"purity(".to_string()));
        assert!(!m.contains(&"fit(".to_string()), "{m:?}");
        assert_eq!(names("data.tr"), ["train"]);
        // chains: a property of a variable, a call's result, a method call's result
        let d = names("data.train.");
        assert!(
            d.contains(&"take(".to_string()) && d.contains(&"len(".to_string()),
            "{d:?}"
        );
        assert!(!d.contains(&"train".to_string()), "{d:?}");
        assert!(names("mnist().test.ta").contains(&"take(".to_string()));
        assert!(names("data.train.take(10).sk").contains(&"skip(".to_string()));
        let c = names("kmeans(#{ k: 3 }).");
        assert!(c.contains(&"fit(".to_string()), "{c:?}");
        assert_eq!(names(":he"), [":help "]);
        assert_eq!(names(":help kme"), ["kmeans"]);
    }

    #[test]
    fn completes_paths_inside_strings() {
        let dir = env!("CARGO_MANIFEST_DIR");
        let line = format!("load_model(\"{dir}/Cargo.t");
        assert_eq!(names(&line), [format!("{dir}/Cargo.toml")]);
        assert!(names("let a = \"x\"; kmea") == ["kmeans("]);
    }

    #[test]
    fn hints_show_the_signature_being_typed() {
        let h = helper();
        assert_eq!(
            h.signature_hint("let c = kmeans(#{ k: 3").as_deref(),
            Some("    kmeans(opts: Map) -> Clusterer")
        );
        assert!(h
            .signature_hint("clusters.purity(")
            .unwrap()
            .contains("Clustering.purity(labels: Tensor)"));
        assert!(h
            .signature_hint("inertia_ch")
            .unwrap()
            .contains("inertia_chart(points: Tensor"));
        assert_eq!(h.signature_hint("x = 1"), None);
    }
}
