//! Segmentation networks.
pub mod pretrained;
pub mod prune;
pub mod resnet;
pub mod segmenter;
pub mod unet;
