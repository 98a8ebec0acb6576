//! Comparing predictions with ground truth: the canvas' renderers (our wgpu overlay shader and
//! its CPU twin for OpenGL windows), the view modes, and the Errors panel.

pub mod blend;
pub mod cpu;
pub mod errors;
pub mod gpu;
mod textures;

pub use blend::ViewMode;
