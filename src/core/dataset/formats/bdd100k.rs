//! BDD100K's semantic-segmentation release: `images/10k/{train,val,test}/<name>.jpg` with
//! `labels/sem_seg/masks/{train,val}/<name>.png` (8-bit Cityscapes train ids 0..18, 255 =
//! ignore). Test images are unlabelled.
//!
//! Where the drivable-area release sits beside it (`labels/drivable/masks/{train,val}/
//! <name>.png`: 0 = direct, 1 = alternative, 2 = background), [`drivable_label`] finds each
//! image's map for the multi-task head (`--aux drivable`); `info` and training check them like
//! masks.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::cityscapes::CLASSES;
use super::{list_images, stem};
use crate::core::dataset::{
    ClassTable, DatasetError, DatasetIndex, Format, IGNORE, LabelEncoding, Problem, Sample, Split,
};

/// Whether `root` looks like the release: its images or its semantic masks folder.
pub fn detect(root: &Path) -> bool {
    root.join("images/10k").is_dir() || root.join("labels/sem_seg/masks").is_dir()
}

fn masks_dir(root: &Path, split: Split) -> PathBuf {
    root.join("labels/sem_seg/masks").join(split.as_str())
}

/// Train ids 0..18 and 255 as they are; any other value is an error.
fn label_lut() -> [Option<u8>; 256] {
    let mut lut = [None; 256];
    for (id, entry) in lut.iter_mut().enumerate().take(CLASSES.len()) {
        *entry = Some(id as u8);
    }
    lut[IGNORE as usize] = Some(IGNORE);
    lut
}

/// The drivable-area map of `sample`, when the release has one (what it holds:
/// [`crate::core::dataset::drivable`]).
///
/// Maps without an image in `images/10k` are not problems: the drivable release covers all
/// 100k images, the semantic one only 10k of them. The two releases split their images on
/// their own, so a map is looked for in the image's split first, then in the others (image
/// names are unique across the release).
pub fn drivable_label(root: &Path, sample: &Sample) -> Option<PathBuf> {
    let others = Split::ALL.into_iter().filter(|s| *s != sample.split);
    std::iter::once(sample.split)
        .chain(others)
        .map(|split| {
            root.join("labels/drivable/masks")
                .join(split.as_str())
                .join(format!("{}.png", sample.name))
        })
        .find(|path| path.is_file())
}

/// Whether any drivable-area maps are present.
pub fn has_drivable(root: &Path) -> bool {
    root.join("labels/drivable/masks").is_dir()
}

pub fn scan(root: &Path) -> Result<DatasetIndex, DatasetError> {
    let classes = ClassTable::from_pairs(CLASSES.iter().map(|(n, c, _)| (*n, *c)));
    let mut samples = Vec::new();
    let mut problems = Vec::new();
    for split in Split::ALL {
        let images = list_images(&root.join("images/10k").join(split.as_str()))?;
        let labels_dir = masks_dir(root, split);
        let mut names = HashSet::new();
        for image in images {
            let name = stem(&image);
            let label = labels_dir.join(format!("{name}.png"));
            let label = match (split, label.is_file()) {
                (_, true) => Some(label),
                (Split::Test, false) => None,
                (_, false) => {
                    problems.push(Problem::new(
                        &image,
                        format!("no label (expected {})", label.display()),
                    ));
                    None
                }
            };
            names.insert(name.clone());
            samples.push(Sample {
                name,
                image,
                label,
                split,
            });
        }
        for label in list_images(&labels_dir)? {
            if !names.contains(&stem(&label)) {
                problems.push(Problem::new(
                    &label,
                    format!(
                        "label has no image in {}",
                        root.join("images/10k").join(split.as_str()).display()
                    ),
                ));
            }
        }
    }
    Ok(DatasetIndex {
        root: root.to_path_buf(),
        format: Format::Bdd100k,
        classes,
        encoding: LabelEncoding::Index {
            lut: Arc::new(label_lut()),
        },
        samples,
        problems,
    })
}
