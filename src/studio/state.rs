//! What the studio remembers across restarts (eframe storage, serde).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::canvas::Tool;

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct PersistedState {
    /// The dataset folder open at exit.
    pub last_folder: Option<PathBuf>,
    pub brush_radius: f32,
    /// Mask opacity, 0..=1.
    pub opacity: f32,
    pub show_mask: bool,
    /// Draw class boundaries only.
    pub outline: bool,
    /// Show the model's prediction instead of the mask.
    pub show_prediction: bool,
    pub show_training: bool,
    pub tool: Tool,
    pub left_panel_width: f32,
    pub right_panel_width: f32,
}

impl Default for PersistedState {
    fn default() -> Self {
        Self {
            last_folder: None,
            brush_radius: 8.0,
            opacity: 0.55,
            show_mask: true,
            outline: false,
            show_prediction: false,
            show_training: true,
            tool: Tool::Brush,
            left_panel_width: 240.0,
            right_panel_width: 210.0,
        }
    }
}
