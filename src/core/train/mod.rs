//! Training: losses, optimisers and schedules, the loop, run directories.
pub mod loss;
pub mod optim;
