//! Error analysis of a trained run, for `roadseg eval --per-image` and the studio's Errors
//! panel: a score per image (worst first), the confusion of a set of images, and the ranking of
//! unlabelled images by the model's uncertainty (active learning). [`worker`] runs all of it, and
//! the canvas' predictions, on a thread of its own.

pub mod scores;
pub mod uncertainty;
pub mod worker;

pub use scores::{ImageScore, SortKey, sort_scores};
pub use uncertainty::{Uncertainty, rank_by_uncertainty};
