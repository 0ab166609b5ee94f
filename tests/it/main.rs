//! The integration tests: one binary, so the crate links once.

mod attacks;
mod cli;
mod cluster;
mod common;
mod data;
mod defences;
mod errors;
mod explore;
mod model;
mod ops;
mod repl;
mod suite;
