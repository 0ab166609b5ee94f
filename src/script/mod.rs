//! The Rhai bindings: one file per domain, each with a `register` function, and no algorithm
//! code. Every registered function carries a signature and a one-line doc, kept in one list
//! that `advlab functions`, README's API reference and the REPL's help all come from.

// What a script or a file gives is not trusted: no indexing that can panic on it (the
// loaders and the bindings use `get`, iterators or a checked shape instead).
#![cfg_attr(not(test), deny(clippy::indexing_slicing))]

mod algebra;
mod attack;
pub mod check;
mod cluster;
mod data;
mod defence;
mod error;
mod eval;
mod explore;
mod figures;
mod guard;
mod io;
mod keys;
mod layers;
mod model;
mod opts;
mod recipes;
mod reduce;
pub mod report;
mod scripted;
mod tensor;

pub use error::to_rhai;
pub use explore::SUMMARY_COLUMNS;
pub(crate) use guard::Guarded;
pub use guard::{INTERNAL_ERROR, TEST_PANIC_VAR};
pub(crate) use io::table;

use crate::output::Provenance;
use candle_core::Device;
use rhai::{Dynamic, Engine, Map, Scope, AST};
use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::rc::Rc;

/// What a script run shares between calls: the device, the default seed, where `out/` goes,
/// and the provenance of everything done so far.
pub struct Session {
    pub device: Device,
    pub seed: u64,
    pub out_dir: PathBuf,
    pub provenance: RefCell<Provenance>,
    /// The engine and the script's functions, for calling a script's closures later (a
    /// scripted attack's step, run inside `evaluate`); set by whoever runs the script.
    host: RefCell<Option<(std::rc::Weak<Engine>, Rc<AST>)>>,
}

impl Session {
    /// A session on `device` with default seed `seed`, writing `out/…` paths under `out_dir`.
    pub fn new(device: Device, seed: u64, out_dir: PathBuf) -> Self {
        let provenance = RefCell::new(Provenance::new(seed, crate::device::name(&device)));
        Self {
            device,
            seed,
            out_dir,
            provenance,
            host: RefCell::new(None),
        }
    }

    /// Let closures of `ast` be called later through `engine` (which must be the engine this
    /// session was registered into).
    pub fn set_host(&self, engine: &Rc<Engine>, ast: &AST) {
        let mut functions = ast.clone_functions_only();
        functions.clear_statements();
        *self.host.borrow_mut() = Some((Rc::downgrade(engine), Rc::new(functions)));
    }

    /// Call a script's closure `f` with `args`, through the engine the script runs in.
    pub(crate) fn call(&self, f: &rhai::FnPtr, args: impl rhai::FuncArgs) -> Result<Dynamic, Box<rhai::EvalAltResult>> {
        let host = self.host.borrow().clone();
        let Some((engine, ast)) = host.and_then(|(e, a)| e.upgrade().map(|e| (e, a))) else {
            return Err(to_rhai(
                "a script closure was called outside a script run (no engine to run it in)",
            ));
        };
        f.call::<Dynamic>(&engine, &ast, args)
    }

    /// Where an output path really goes: a relative path whose first component is `out` is
    /// placed under the session's output directory (`--out`); any other path is used as is.
    pub fn resolve_out(&self, path: &str) -> PathBuf {
        let p = Path::new(path);
        let mut comps = p.components();
        match comps.next() {
            Some(std::path::Component::Normal(first)) if first == "out" && p.is_relative() => {
                self.out_dir.join(comps.as_path())
            }
            _ => p.to_path_buf(),
        }
    }

    /// Record one operation in the provenance.
    pub fn record(&self, op: serde_json::Value) {
        self.provenance.borrow_mut().record(op);
    }
}

/// One registered script function: its domain, signature and one-line doc.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FnDoc {
    pub domain: &'static str,
    pub sig: &'static str,
    pub doc: &'static str,
}

impl FnDoc {
    /// The name a script calls: `fit` for `Model.fit(...)`, `mnist` for `mnist()`.
    pub fn name(&self) -> &'static str {
        fn_name(self.sig)
    }
}

/// The function or method name in a signature such as `Model.fit(data: Dataset) -> Map`.
pub fn fn_name(sig: &str) -> &str {
    // `Type.method(…) -> R`, `function(…) -> R`, or a property's `Type.name -> R`
    let head = sig.split('(').next().unwrap_or(sig);
    let head = head.split("->").next().unwrap_or(head).trim();
    head.rsplit('.').next().unwrap_or(head)
}

/// Registration context for one domain file.
pub(crate) struct Reg<'a> {
    pub engine: &'a mut Engine,
    pub docs: &'a mut Vec<FnDoc>,
    pub domain: &'static str,
    pub session: Rc<Session>,
}

/// Register a function (or method: the first parameter is `&mut Type`) and its doc.
macro_rules! def {
    ($reg:expr, $sig:literal, $doc:literal, $f:expr) => {{
        let reg: &mut $crate::script::Reg = $reg;
        rhai::FuncRegistration::new($crate::script::fn_name($sig))
            .with_comments([concat!("/// ", $doc)])
            .register_into_engine(
                reg.engine,
                $crate::script::Guarded::new($crate::script::fn_name($sig), $f),
            );
        reg.docs.push($crate::script::FnDoc {
            domain: reg.domain,
            sig: $sig,
            doc: $doc,
        });
    }};
}

/// Register a property getter (`Type.prop`) and its doc.
macro_rules! def_get {
    ($reg:expr, $sig:literal, $doc:literal, $f:expr) => {{
        let reg: &mut $crate::script::Reg = $reg;
        reg.engine.register_get(
            $crate::script::fn_name($sig),
            $crate::script::Guarded::new($crate::script::fn_name($sig), $f),
        );
        reg.docs.push($crate::script::FnDoc {
            domain: reg.domain,
            sig: $sig,
            doc: $doc,
        });
    }};
}
pub(crate) use {def, def_get};

/// A Rhai engine with every advlab type and function registered, and the docs of them all.
pub fn new_engine(session: Rc<Session>) -> (Engine, Vec<FnDoc>) {
    let mut engine = Engine::new();
    engine.set_max_expr_depths(256, 256);
    let mut docs = Vec::new();
    for (domain, register) in [
        ("data", data::register as fn(&mut Reg)),
        ("tensor", tensor::register),
        ("tensor", algebra::register),
        ("model", model::register),
        ("layers", layers::register),
        ("attack", attack::register),
        ("attack", scripted::register),
        ("recipe", recipes::register),
        ("eval", eval::register),
        ("defence", defence::register),
        ("figures", figures::register),
        ("reduce", reduce::register),
        ("cluster", cluster::register),
        ("explore", explore::register),
        ("output", io::register),
    ] {
        let mut reg = Reg {
            engine: &mut engine,
            docs: &mut docs,
            domain,
            session: session.clone(),
        };
        register(&mut reg);
    }
    (engine, docs)
}

/// Evaluate `source`, an expression giving an attack (e.g. a scripted one), in a fresh engine on
/// `device` with default seed `seed`. The engine comes back with the attack: a scripted attack
/// calls its closures through it, so it must live as long as the attack is used.
pub fn attack_from_source(
    source: &str,
    device: Device,
    seed: u64,
) -> anyhow::Result<(Rc<Engine>, Rc<dyn crate::attack::Attack>)> {
    let session = Rc::new(Session::new(device, seed, PathBuf::from("out")));
    let engine = Rc::new(new_engine(session.clone()).0);
    let ast = engine.compile(source)?;
    session.set_host(&engine, &ast);
    let v: Dynamic = engine.eval_ast(&ast).map_err(|e| anyhow::anyhow!("{e}"))?;
    let ty = v.type_name();
    let a = v
        .try_cast::<attack::AttackRef>()
        .ok_or_else(|| anyhow::anyhow!("the source gives a {ty}, not an Attack"))?;
    Ok((engine, a.0))
}

/// The docs of every registered function, in registration order.
pub fn function_docs() -> Vec<FnDoc> {
    let session = Rc::new(Session::new(Device::Cpu, 0, PathBuf::from("out")));
    new_engine(session).1
}

/// Parse a `NAME=VALUE` command-line argument: the value is a Rhai literal (number, string in
/// quotes, bool, array, map); a bare word such as `fast` is taken as a string.
pub fn parse_arg(arg: &str) -> Result<(String, Dynamic), String> {
    let (name, value) = arg
        .split_once('=')
        .ok_or_else(|| format!("argument `{arg}` is not NAME=VALUE (e.g. quick=true)"))?;
    let valid_name = !name.is_empty()
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !name.starts_with(|c: char| c.is_ascii_digit());
    if !valid_name {
        return Err(format!(
            "argument name `{name}` must be an identifier (letters, digits, _)"
        ));
    }
    let engine = Engine::new_raw();
    match engine.eval_expression::<Dynamic>(value) {
        Ok(v) => Ok((name.to_string(), v)),
        Err(_) if !value.is_empty() && value.chars().all(|c| c.is_ascii_alphanumeric() || "_-./".contains(c)) => {
            Ok((name.to_string(), Dynamic::from(value.to_string())))
        }
        Err(e) => Err(format!(
            "argument {name}: `{value}` is not a Rhai literal ({e}); quote strings, e.g. {name}='\"text\"'"
        )),
    }
}

/// Resolve a script's `import "name" as m;` against the directory of the script itself (then
/// `name.rhai` beside it is found whatever the working directory), not the working directory.
pub fn import_beside(engine: &mut Engine, script: &Path) {
    let dir = script
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    engine.set_module_resolver(rhai::module_resolvers::FileModuleResolver::new_with_path(dir));
}

/// A scope holding the constant map `args`.
pub fn scope_with_args(args: Vec<(String, Dynamic)>) -> Scope<'static> {
    let mut map = Map::new();
    for (k, v) in args {
        map.insert(k.into(), v);
    }
    let mut scope = Scope::new();
    scope.push_constant("args", map);
    scope
}

/// The function list, as plain text grouped by domain or as a Markdown table.
pub fn functions_text(markdown: bool) -> String {
    let docs = function_docs();
    let mut out = String::new();
    if markdown {
        out.push_str("| domain | function | what it does |\n|---|---|---|\n");
        for d in &docs {
            out.push_str(&format!(
                "| {} | `{}` | {} |\n",
                d.domain,
                d.sig.replace('|', "\\|"),
                d.doc
            ));
        }
        return out;
    }
    let mut domain = "";
    for d in &docs {
        if d.domain != domain {
            domain = d.domain;
            out.push_str(&format!("\n[{domain}]\n"));
        }
        out.push_str(&format!("  {}\n      {}\n", d.sig, d.doc));
    }
    out
}
