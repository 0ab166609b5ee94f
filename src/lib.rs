//! advlab: a scriptable workbench for adversarial machine-learning research.
//!
//! The library holds the algorithms (data, models, training, attacks, evaluation, charts);
//! `script` exposes them to Rhai, `cli` is the command line on top, and `repl` its
//! interactive prompt.

pub mod attack;
pub mod bench;
pub mod cli;
pub mod cluster;
pub mod data;
pub mod defence;
pub mod device;
pub mod error;
pub mod eval;
pub mod interrupt;
pub mod nn;
pub mod output;
pub mod plot;
pub mod progress;
pub mod reduce;
pub mod repl;
pub mod script;
pub mod train;

pub use error::{Error, ParamError, Result};
