//! What can be known about a script without running it (`advlab check`, and `advlab run` before
//! it starts): every call of a function or method that no registered, built-in or script-defined
//! function answers, by name or by number of arguments, at its line and column, with the
//! nearest known name, and every key of an options map written in a call that the function
//! does not take (see [`keys`](super::keys)). A typo then fails in milliseconds instead of after an hour of training.
//!
//! The check reads the parsed script only. It cannot know types, so a call that names a known
//! function with the right number of arguments of the wrong types is left to the run (whose
//! error names it the same way). A closure held in a variable is called as `f.call(x)`: Rhai
//! itself refuses `f(x)`, and so does the check.

use rhai::{ASTNode, Engine, Expr, FnCallExpr, Position, Stmt, AST};
use std::collections::{BTreeSet, HashMap};

/// Functions the interpreter itself answers; they are not among the engine's signatures.
const KEYWORDS: &[&str] = &[
    "print",
    "debug",
    "type_of",
    "eval",
    "Fn",
    "call",
    "curry",
    "is_shared",
    "is_def_var",
    "is_def_fn",
];

/// One problem, at a position of the script.
#[derive(Debug)]
pub struct Finding {
    pub pos: Position,
    pub message: String,
    pub help: Option<String>,
}

/// How a name is called: as a function or a method (whose object is one more argument).
#[derive(Clone, Copy)]
enum Call {
    Function,
    Method,
}

/// How many arguments a name takes, called as a function and called as a method (the object
/// not counted).
#[derive(Default)]
struct Takes {
    function: BTreeSet<usize>,
    method: BTreeSet<usize>,
}

/// Every callable name of `engine` with the arities it accepts, from its signatures (operators,
/// getters and setters left out). A native function called as a method takes its object as the
/// first argument.
fn known(engine: &Engine) -> HashMap<String, Takes> {
    let mut out: HashMap<String, Takes> = HashMap::new();
    for sig in engine.gen_fn_signatures(true) {
        let Some((name, rest)) = sig.split_once('(') else {
            continue;
        };
        let name = name.trim().trim_start_matches("fn ");
        if name.is_empty() || !name.chars().all(|c| c.is_alphanumeric() || c == '_') {
            continue;
        }
        let a = arity(rest);
        let takes = out.entry(name.to_string()).or_default();
        takes.function.insert(a);
        if a > 0 {
            takes.method.insert(a - 1);
        }
    }
    out
}

/// The number of parameters in `a: T, b: U) -> R`: commas at the top level before the
/// closing parenthesis, plus one unless the list is empty.
fn arity(rest: &str) -> usize {
    let (mut depth, mut commas) = (0i32, 0usize);
    for (i, c) in rest.char_indices() {
        match c {
            '(' | '<' | '[' => depth += 1,
            ')' if depth == 0 => {
                return if rest[..i].trim().is_empty() { 0 } else { commas + 1 };
            }
            ')' | '>' | ']' => depth -= 1,
            ',' if depth == 0 => commas += 1,
            _ => {}
        }
    }
    commas + 1
}

/// The known name nearest to `name` (by edit distance), when it is near enough to be a typo.
fn nearest<'a>(name: &str, known: impl Iterator<Item = &'a String>) -> Option<&'a String> {
    known
        .map(|k| (strsim::levenshtein(name, k), k))
        .filter(|(d, _)| *d <= (name.len() / 3).max(1))
        .min()
        .map(|(_, k)| k)
}

/// The keys of `arg` when it is a map written in the script, each with its position (a map of
/// constants the optimiser folded has only the map's position).
fn literal_keys(arg: &Expr) -> Vec<(String, Position)> {
    match arg {
        Expr::Map(m, _) => m.0.iter().map(|(k, _)| (k.name.to_string(), k.pos)).collect(),
        Expr::DynamicConstant(v, pos) => v
            .read_lock::<rhai::Map>()
            .map(|m| m.keys().map(|k| (k.to_string(), *pos)).collect())
            .unwrap_or_default(),
        _ => Vec::new(),
    }
}

/// Check `ast` (compiled from a script) against the functions of `engine`.
pub fn check(engine: &Engine, ast: &AST) -> Vec<Finding> {
    let mut known = known(engine);
    let own: BTreeSet<String> = ast.iter_functions().map(|f| f.name.to_string()).collect();
    for f in ast.iter_functions() {
        // called as a method, a script function takes its object as `this`, not a parameter
        let takes = known.entry(f.name.to_string()).or_default();
        takes.function.insert(f.params.len());
        takes.method.insert(f.params.len());
    }
    let mut findings = Vec::new();
    let mut visit = |call: &FnCallExpr, pos: Position, kind: Call| {
        if call.op_token.is_some() || call.is_qualified() {
            return;
        }
        let name = call.name.as_str();
        if KEYWORDS.contains(&name) || name.contains('$') {
            return;
        }
        let given = call.args.len();
        let what = match kind {
            Call::Function => "function",
            Call::Method => "method",
        };
        let takes = known.get(name).map(|t| match kind {
            Call::Function => &t.function,
            Call::Method => &t.method,
        });
        match takes {
            None => findings.push(Finding {
                pos,
                message: format!("unknown {what} `{name}`"),
                help: Some(match nearest(name, known.keys()) {
                    Some(k) => format!("did you mean `{k}`? (`advlab functions` lists every function)"),
                    None => "`advlab functions` lists every function".into(),
                }),
            }),
            Some(arities) if !arities.contains(&given) => {
                let takes: Vec<String> = arities.iter().map(|a| a.to_string()).collect();
                findings.push(Finding {
                    pos,
                    message: if takes.is_empty() {
                        format!("`{name}` is a function, not a method: call it as {name}(…)")
                    } else {
                        format!(
                            "`{name}` takes {} argument{}{}, this call gives {given}",
                            takes.join(" or "),
                            if takes == ["1"] { "" } else { "s" },
                            if matches!(kind, Call::Method) {
                                " besides its object"
                            } else {
                                ""
                            }
                        )
                    },
                    help: Some(format!("`advlab functions` shows how {name} is called")),
                });
            }
            Some(_) => {}
        }
        // a function the script defines takes whatever map it likes
        if let Some(allowed) = super::keys::known(name).filter(|_| !own.contains(name)) {
            for arg in call.args.iter() {
                for (key, pos) in literal_keys(arg) {
                    if !allowed.contains(&key.as_str()) {
                        findings.push(Finding {
                            pos,
                            message: format!("{name}: {}", super::keys::unknown(&key, &allowed)),
                            help: Some(format!("`advlab functions` shows what each of {name}'s options means")),
                        });
                    }
                }
            }
        }
    };
    ast.walk(&mut |path: &[ASTNode]| {
        match path.last() {
            Some(ASTNode::Expr(Expr::FnCall(c, pos))) => visit(c, *pos, Call::Function),
            Some(ASTNode::Stmt(Stmt::FnCall(c, pos))) => visit(c, *pos, Call::Function),
            Some(ASTNode::Expr(Expr::MethodCall(c, pos))) => visit(c, *pos, Call::Method),
            _ => {}
        }
        true
    });
    findings.sort_by_key(|f| (f.pos.line(), f.pos.position()));
    findings
}

#[cfg(test)]
mod tests {
    use super::arity;

    #[test]
    fn arity_counts_top_level_parameters() {
        assert_eq!(arity(") -> i64"), 0);
        assert_eq!(arity("x: i64) -> i64"), 1);
        assert_eq!(arity("m: Model, d: Dataset, opts: Map) -> Map"), 3);
        assert_eq!(arity("f: HashMap<K, V>, g: i64)"), 2);
    }
}
