//! Segmentation networks.
pub mod prune;
pub mod unet;
