//! Segmentation networks.
pub mod unet;
