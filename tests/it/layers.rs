//! The library's layers point one way: each top-level module may import (`crate::…`) only the
//! modules before it in [`ORDER`]. A new module must be placed in the order; an import of a
//! later module (a cycle in the making) fails here with the file and line.

use std::path::Path;

/// The declared order, bottom first (README, Development).
const ORDER: &[&str] = &[
    "error",
    "util",
    "device",
    "interrupt",
    "progress",
    "output",
    "table", // infrastructure
    "kernels",
    "algebra",
    "optim",
    "data", // kernels, optimizers, data sets
    "nn",   // models, the input pipeline, inference
    "attack",
    "reduce",
    "cluster", // algorithms on models and points
    "defence",
    "train", // input transforms, training recipes
    "eval",  // evaluation, reports, checks
    "plot",
    "script",
    "repl",
    "bench",
    "inspect",
    "sweep",
    "cli", // the user's side
];

/// The top-level modules named after `crate::` in `text`, with the line of each, in both
/// `crate::nn::Model` and `crate::{nn::Model, data}` forms.
fn imports(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let mut rest = line;
        while let Some(at) = rest.find("crate::") {
            rest = &rest[at + "crate::".len()..];
            let names: Vec<&str> = match rest.strip_prefix('{') {
                Some(group) => {
                    let end = group.find('}').unwrap_or(group.len());
                    group[..end].split(',').map(str::trim).collect()
                }
                None => vec![rest],
            };
            for n in names {
                let name: String = n.chars().take_while(|c| c.is_ascii_lowercase() || *c == '_').collect();
                if !name.is_empty() {
                    out.push((i + 1, name));
                }
            }
        }
    }
    out
}

/// Every `(file, line, from, to)` where a module imports one at or above its own place.
fn violations(src: &Path) -> Vec<String> {
    let rank = |m: &str| ORDER.iter().position(|o| *o == m);
    let mut found = Vec::new();
    let mut stack = vec![src.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let rel = path.strip_prefix(src).unwrap();
            let top = rel.components().next().unwrap().as_os_str().to_string_lossy();
            let from = top.trim_end_matches(".rs").to_string();
            if from == "lib" || from == "main" {
                continue;
            }
            let Some(r) = rank(&from) else {
                found.push(format!(
                    "{}: module `{from}` is not in the declared order",
                    rel.display()
                ));
                continue;
            };
            let text = std::fs::read_to_string(&path).unwrap();
            for (line, to) in imports(&text) {
                if to == from {
                    continue;
                }
                match rank(&to) {
                    Some(t) if t < r => {}
                    _ => found.push(format!(
                        "{}:{line}: `{from}` imports `{to}`, which is not below it",
                        rel.display()
                    )),
                }
            }
        }
    }
    found.sort();
    found
}

#[test]
fn modules_import_only_the_layers_below() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let found = violations(&src);
    assert!(found.is_empty(), "layering broken:\n{}", found.join("\n"));
}

#[test]
fn an_upward_import_is_caught() {
    let dir = tempfile::tempdir().unwrap();
    let nn = dir.path().join("nn");
    std::fs::create_dir_all(&nn).unwrap();
    std::fs::write(
        nn.join("mod.rs"),
        "use crate::error::Result;\nuse crate::{data::Dataset, defence::Pipeline};\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("error.rs"),
        "pub type Result<T> = std::result::Result<T, ()>;\n",
    )
    .unwrap();
    let found = violations(dir.path());
    assert_eq!(
        found,
        vec!["nn/mod.rs:2: `nn` imports `defence`, which is not below it".to_string()]
    );
}
