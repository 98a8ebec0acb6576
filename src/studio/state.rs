//! What the studio remembers across restarts (eframe storage, serde).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::canvas::Tool;
use super::compare::blend::{ANY_CLASS, ViewMode};
use crate::core::paint::Locks;
use crate::studio::panels::run_on::RunOnPrefs;

/// What the studio remembers for one dataset (by its folder).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct DatasetPrefs {
    /// Classes no tool may overwrite, ascending.
    pub locked_classes: Vec<u8>,
    /// Tools change only unlabelled pixels.
    pub unlabelled_only: bool,
    /// Where the training panel's Train sends runs, with each engine's options.
    pub run_on: RunOnPrefs,
}

impl DatasetPrefs {
    /// The locks every mask document of the dataset gets.
    pub fn locks(&self) -> Locks {
        Locks::new(self.locked_classes.iter().copied(), self.unlabelled_only)
    }

    pub fn is_locked(&self, class: u8) -> bool {
        self.locked_classes.contains(&class)
    }

    pub fn set_locked(&mut self, class: u8, locked: bool) {
        self.locked_classes.retain(|&c| c != class);
        if locked {
            self.locked_classes.push(class);
            self.locked_classes.sort_unstable();
        }
    }
}

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
    /// The magic wand takes pixels within this colour distance of the clicked one (largest
    /// channel difference, 0..=255).
    pub wand_tolerance: u8,
    /// Per dataset folder: locked classes, "paint only unlabelled pixels".
    pub dataset_prefs: BTreeMap<PathBuf, DatasetPrefs>,
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
            wand_tolerance: 24,
            dataset_prefs: BTreeMap::new(),
        }
    }
}

impl PersistedState {
    /// The threshold as the canvas uses it (confidence bytes).
    pub fn accept_threshold_byte(&self) -> u8 {
        (self.accept_threshold.clamp(0.0, 1.0) * 255.0).round() as u8
    }

    /// The preferences of the dataset at `root` (the defaults when it has none).
    pub fn prefs(&self, root: &Path) -> DatasetPrefs {
        self.dataset_prefs.get(root).cloned().unwrap_or_default()
    }

    /// Sets the preferences of the dataset at `root`; the defaults are stored as no entry.
    pub fn set_prefs(&mut self, root: &Path, prefs: DatasetPrefs) {
        match prefs == DatasetPrefs::default() {
            true => self.dataset_prefs.remove(root),
            false => self.dataset_prefs.insert(root.to_path_buf(), prefs),
        };
    }
}
