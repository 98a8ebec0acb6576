//! Training: losses, optimisers and schedules, the step, the loop, run directories.
pub mod budget;
pub mod config;
pub mod control;
mod init;
pub mod loss;
pub mod optim;
mod prepare;
pub use prepare::prepare_run;
mod probe;
pub mod resolution;
pub mod run_check;
pub mod run_dir;
pub mod step;
pub mod trainer;
pub mod worker;
