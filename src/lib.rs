//! advlab: a scriptable workbench for adversarial machine-learning research.
//!
//! The library is a stack of layers whose imports point only downwards (the order is declared,
//! and checked, in `tests/it/layers.rs`): infrastructure (`error`, `util`, `device`,
//! `interrupt`, `progress`, `output`); `kernels`, `algebra` (tensor algebra for scripts), `optim` and `data`; `nn`; `attack`, `reduce`
//! and `cluster`; `defence` and `train`; `eval`; and the user's side: `plot`, `script` (the Rhai
//! bindings), `repl`, `bench`, `inspect`, `sweep` and `cli`.

// Input from users and files must end in an error, never a panic: no unwrap or expect outside
// the tests (a value that cannot fail says why, in an `allow` with a reason).
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod algebra;
pub mod attack;
pub mod bench;
pub mod cli;
pub mod cluster;
pub mod data;
pub mod defence;
pub mod device;
pub mod error;
pub mod eval;
pub mod inspect;
pub mod interrupt;
pub mod kernels;
pub mod nn;
pub mod optim;
pub mod output;
pub mod plot;
pub mod progress;
pub mod reduce;
pub mod repl;
pub mod script;
pub mod sweep;
pub mod table;
pub mod train;
pub mod util;

pub use error::{Error, ParamError, Result};
