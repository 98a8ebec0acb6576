//! What the studio remembers across restarts (eframe storage, serde).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::canvas::Tool;
use super::compare::blend::{ANY_CLASS, ViewMode};

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct PersistedState {
    /// The dataset folder open at exit.
    pub last_folder: Option<PathBuf>,
    /// Folders opened, most recent first (File > Open dataset…).
    pub recent_folders: Vec<PathBuf>,
    pub brush_radius: f32,
    /// Overlay opacity, 0..=1.
    pub opacity: f32,
    /// What the canvas shows over the image.
    pub view: ViewMode,
    /// Difference view: this class's false positives and negatives, or `ANY_CLASS`.
    pub diff_class: u8,
    /// Split view: divider position across the canvas, 0..=1.
    pub divider: f32,
    /// Draw class boundaries only.
    pub outline: bool,
    /// Draw the second head's map (road boundary, drivable area) when the model has one.
    pub show_aux: bool,
    /// Model-assisted labelling: pixels below this confidence (0..=1) keep their label.
    pub accept_threshold: f32,
    pub show_training: bool,
    pub tool: Tool,
    pub left_panel_width: f32,
    pub right_panel_width: f32,
    /// The training and errors panel under the canvas.
    pub bottom_panel_height: f32,
    /// The superpixel brush's granularity: superpixels about this many pixels across.
    pub superpixel_size: u32,
    /// Draw the superpixels' edges over the image.
    pub show_superpixels: bool,
}

impl Default for PersistedState {
    fn default() -> Self {
        Self {
            last_folder: None,
            recent_folders: Vec::new(),
            brush_radius: 8.0,
            opacity: 0.55,
            view: ViewMode::Truth,
            diff_class: ANY_CLASS,
            divider: 0.5,
            outline: false,
            show_aux: true,
            accept_threshold: 0.5,
            show_training: true,
            tool: Tool::Brush,
            left_panel_width: 240.0,
            right_panel_width: 210.0,
            bottom_panel_height: 240.0,
            superpixel_size: 16,
            show_superpixels: false,
        }
    }
}

impl PersistedState {
    /// The threshold as the canvas uses it (confidence bytes).
    pub fn accept_threshold_byte(&self) -> u8 {
        (self.accept_threshold.clamp(0.0, 1.0) * 255.0).round() as u8
    }
}
