//! One module per panel; each turns clicks into [`super::app::Command`]s.

pub mod dataset;
pub mod hyper;
pub mod iou_classes;
pub mod run_on;
pub mod status;
pub mod tools;
pub mod training;
