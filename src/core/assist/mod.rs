//! Labelling assists: pure functions from an image (and, when a run is open, the model's
//! probabilities) plus the user's clicks to a region, each with the precomputation it needs.
//! The studio's tools and `roadseg assist` / `roadseg bench --assist` call the same functions.
//!
//! A region is a [`Mask`] of the image's size holding 1 inside and 0 outside.

pub mod band;
pub mod brush;
pub mod clicks;
pub mod distance;
pub mod gmm;
pub mod maxflow;
pub mod objects;
pub mod prior;
pub mod protocol;
pub mod region;
pub mod smart;
pub mod superpixels;
pub mod wand;
pub mod worker;

use serde::{Deserialize, Serialize};
use thiserror::Error;

pub use region::Prepared;
pub use smart::{ClassPrior, Params, Session, fills_holes, smart_region, smart_region_with};

/// One click of click-to-segment, in image pixels: positive adds where it is, negative takes it
/// away.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Click {
    pub x: u32,
    pub y: u32,
    pub positive: bool,
}

#[derive(Debug, Error, PartialEq)]
pub enum AssistError {
    #[error("click {index} at ({x}, {y}) is outside the {width}x{height} image")]
    ClickOutside {
        index: usize,
        x: u32,
        y: u32,
        width: u32,
        height: u32,
    },
    #[error("no positive click: the region starts from one")]
    NoPositiveClick,
    #[error("the model's probabilities hold {got} values for a {width}x{height} image")]
    PriorSize { got: usize, width: u32, height: u32 },
}
