//! Mask painting without any GUI: brush, eraser, flood fill and polygon fill on a [`Mask`],
//! each reporting the rectangle it changed; an undo history that stores only changed tiles;
//! the document that ties a mask to its file with atomic saves; and the locks (classes, or
//! every labelled pixel) that the document holds against every edit.
//!
//! The studio's canvas calls these and uploads just the returned [`DirtyRect`] to the GPU.
//!
//! [`Mask`]: crate::core::mask::Mask

pub mod accept;
pub mod document;
pub mod history;
pub mod locks;
pub mod ops;
pub mod rect;
pub mod unsaved;

pub use document::{AutosavePolicy, MaskDocument};
pub use history::History;
pub use locks::Locks;
pub use rect::DirtyRect;
pub use unsaved::Unsaved;
