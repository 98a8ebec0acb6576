//! Datasets on disk: every common road layout read into one index of samples and a class table,
//! the bundled procedural sample, paired augmentation and the training loader.
//!
//! Reading never writes to the user's folder. Per-file problems are collected (see [`Problem`])
//! so that `roadseg info` can list them all; fatal problems (nothing to read, no class table)
//! are [`DatasetError`]s.

pub mod augment;
pub mod classes;
pub mod convert;
pub mod decoded;
pub mod detect;
pub mod drivable;
pub mod error;
pub mod formats;
pub mod image_io;
pub mod info;
pub mod labels;
pub mod loader;
pub mod sample;
pub mod shapes;
pub mod split;
pub mod workspace;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use classes::{ClassInfo, ClassTable};
pub use detect::Format;
pub use error::DatasetError;
pub use labels::LabelEncoding;
pub use split::Split;

/// Mask value for "ignore / unlabelled": excluded from losses and metrics.
pub const IGNORE: u8 = 255;

/// One image of a dataset and, when it has one, its label file.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    /// Stable name used in splits.json and for output files (the image stem, made unique).
    pub name: String,
    pub image: PathBuf,
    /// Label file in the layout's own encoding; `None` for unlabelled images.
    pub label: Option<PathBuf>,
    pub split: Split,
}

/// A problem with one file; the rest of the dataset stays usable.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Problem {
    pub file: PathBuf,
    pub error: String,
}

impl Problem {
    pub fn new(file: impl Into<PathBuf>, error: impl Into<String>) -> Self {
        Self {
            file: file.into(),
            error: error.into(),
        }
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.file.display(), self.error)
    }
}

/// A scanned dataset: what is where, how labels are encoded, and what is wrong with it.
///
/// Scanning lists files only; decoding happens in `info`, in the loader, or on demand.
#[derive(Clone, Debug)]
pub struct DatasetIndex {
    pub root: PathBuf,
    pub format: Format,
    pub classes: ClassTable,
    pub encoding: LabelEncoding,
    pub samples: Vec<Sample>,
    /// Problems found while scanning (missing labels, orphan labels, ...).
    pub problems: Vec<Problem>,
}

impl DatasetIndex {
    /// Scans `root`, detecting its layout unless `format` forces one.
    pub fn open(root: &Path, format: Option<Format>) -> Result<Self, DatasetError> {
        // Also with a forced layout: otherwise a missing folder reads as a missing class table.
        detect::check_folder(root)?;
        let format = match format {
            Some(format) => format,
            None => detect::detect(root)?,
        };
        let mut index = match format {
            Format::Native => formats::native::scan(root)?,
            Format::Camvid => formats::camvid::scan(root)?,
            Format::Camvid11 => formats::camvid11::scan(root)?,
            Format::KittiRoad => formats::kitti::scan(root)?,
            Format::Cityscapes => formats::cityscapes::scan(root)?,
            Format::Bdd100k => formats::bdd100k::scan(root)?,
            Format::Voc => formats::voc::scan(root)?,
            Format::Coco => formats::coco::scan(root)?,
            Format::Vistas => formats::vistas::scan(root)?,
            Format::Labelme => formats::labelme::scan(root)?,
        };
        index.skip_duplicate_names();
        if index.samples.is_empty() {
            return Err(DatasetError::Empty {
                dir: root.to_path_buf(),
                format,
                problems: index.problems,
            });
        }
        Ok(index)
    }

    /// Keeps the first sample of each name: names key splits.json and the files `convert` and
    /// `predict` write, so two images of one name (the same stem in two split folders or two
    /// cities, `a.png` beside `a.jpg`) would overwrite each other. The others become problems.
    fn skip_duplicate_names(&mut self) {
        let mut first: std::collections::HashMap<String, PathBuf> = Default::default();
        let mut problems = Vec::new();
        self.samples.retain(|s| match first.get(&s.name) {
            Some(kept) => {
                problems.push(Problem::new(
                    &s.image,
                    format!(
                        "another image is also named {:?} ({}); this one is skipped",
                        s.name,
                        kept.display()
                    ),
                ));
                false
            }
            None => {
                first.insert(s.name.clone(), s.image.clone());
                true
            }
        });
        self.problems.extend(problems);
    }

    pub fn labelled(&self) -> impl Iterator<Item = &Sample> {
        self.samples.iter().filter(|s| s.label.is_some())
    }

    /// Labelled samples of one split, in a stable order.
    pub fn labelled_in(&self, split: Split) -> Vec<&Sample> {
        self.labelled().filter(|s| s.split == split).collect()
    }

    /// Where `sample`'s drivable-area map is (BDD100K's drivable release, or native
    /// `drivable/`), if it has one.
    pub fn drivable_label(&self, sample: &Sample) -> Option<PathBuf> {
        match self.format {
            Format::Bdd100k => formats::bdd100k::drivable_label(&self.root, sample),
            Format::Native => formats::native::drivable_label(&self.root, sample),
            _ => None,
        }
    }

    /// Whether the dataset has drivable-area maps (the `drivable` auxiliary task).
    pub fn has_drivable(&self) -> bool {
        match self.format {
            Format::Bdd100k => formats::bdd100k::has_drivable(&self.root),
            Format::Native => formats::native::has_drivable(&self.root),
            _ => false,
        }
    }

    /// Decodes the label of `sample` into train ids (IGNORE for ignored pixels).
    pub fn load_mask(&self, sample: &Sample) -> Result<Option<labels::Mask>, Problem> {
        let Some(label) = &sample.label else {
            return Ok(None);
        };
        self.encoding.decode(label).map(Some)
    }
}
