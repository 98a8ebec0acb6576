//! roadseg: road segmentation engine (GUI-free core) and studio.
pub mod core;
#[cfg(feature = "gui")]
pub mod studio;
