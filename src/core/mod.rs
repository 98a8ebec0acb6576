//! GUI-free engine: datasets, masks, model, training, metrics. Knows nothing of egui.
pub mod analysis;
pub mod assist;
pub mod boundary;
pub mod dataset;
pub mod device;
pub mod export;
pub mod fault;
pub mod flood;
pub mod kernels;
pub mod mask;
pub mod memory;
pub mod metrics;
pub mod model;
pub mod paint;
pub mod predict;
pub mod rng;
pub mod train;
