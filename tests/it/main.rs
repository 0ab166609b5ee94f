//! The integration tests: one binary, so the crate links once.

mod attacks;
mod batchnorm;
mod cifar;
mod cli;
mod cluster;
mod common;
mod data;
mod defaults;
mod defences;
mod errors;
mod explore;
mod fixtures;
mod ibp;
mod layers;
mod loaders;
mod lwta;
mod model;
mod ops;
mod pni;
mod presets;
mod recipes;
mod repl;
mod resnet;
mod sequential;
mod suite;
mod training_kit;
