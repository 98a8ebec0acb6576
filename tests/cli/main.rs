//! The command-line interface end to end, driving the built `roadseg` binary.
//!
//! One test binary for all of them (and likewise `tests/flows` and `tests/studio`): each test
//! binary links the whole engine (~150 MB), so fewer binaries build faster and use less disk.

#[path = "../common/mod.rs"]
mod common;

mod assist_bench;
mod budget;
mod config;
mod dataset;
mod export;
mod formats;
mod kubernetes;
mod reliability;
mod signals;
mod slurm;
mod ssh;
mod train;
mod transfer;
