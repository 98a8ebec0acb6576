//! KITTI road: `training/image_2/<cat>_<n>.png` with `training/gt_image_2/<cat>_road_<n>.png`.
//! Magenta = road, red = non-road, black = ignore. `*_lane_*` files are lane labels, not road
//! labels, and are skipped. `testing/image_2` images are unlabelled.

use std::path::Path;

use super::{list_images, stem};
use crate::core::dataset::split::{self, DEFAULT_SPLIT_SEED, DEFAULT_TRAIN_FRACTION};
use crate::core::dataset::{
    ClassTable, DatasetError, DatasetIndex, Format, LabelEncoding, Problem, Sample, Split,
};

pub const NON_ROAD: [u8; 3] = [255, 0, 0];
pub const ROAD: [u8; 3] = [255, 0, 255];
pub const VOID: [u8; 3] = [0, 0, 0];

/// `um_000012` -> `um_road_000012`.
fn road_label_stem(image_stem: &str) -> Option<String> {
    let (category, number) = image_stem.rsplit_once('_')?;
    Some(format!("{category}_road_{number}"))
}

pub fn scan(root: &Path) -> Result<DatasetIndex, DatasetError> {
    let classes = ClassTable::from_pairs([("non-road", NON_ROAD), ("road", ROAD)]);
    let gt_dir = root.join("training/gt_image_2");
    let mut samples = Vec::new();
    let mut problems = Vec::new();
    for image in list_images(&root.join("training/image_2"))? {
        let name = stem(&image);
        let label = road_label_stem(&name)
            .map(|s| gt_dir.join(format!("{s}.png")))
            .filter(|p| p.is_file());
        if label.is_none() {
            problems.push(Problem::new(
                &image,
                format!(
                    "no road label (expected {}/{}.png)",
                    gt_dir.display(),
                    road_label_stem(&name).unwrap_or_else(|| "<category>_road_<n>".into())
                ),
            ));
        }
        samples.push(Sample {
            name,
            image,
            label,
            split: Split::Train,
        });
    }
    for label in list_images(&gt_dir)? {
        let label_stem = stem(&label);
        if label_stem.contains("_lane_") {
            continue;
        }
        let image_stem = label_stem.replacen("_road_", "_", 1);
        if !samples.iter().any(|s| s.name == image_stem) {
            problems.push(Problem::new(
                &label,
                "road label has no image in training/image_2",
            ));
        }
    }
    split::assign_by_ratio(&mut samples, DEFAULT_SPLIT_SEED, DEFAULT_TRAIN_FRACTION);
    // Testing and training both count from 000000: prefix to keep names unique.
    for image in list_images(&root.join("testing/image_2"))? {
        samples.push(Sample {
            name: format!("testing_{}", stem(&image)),
            image,
            label: None,
            split: Split::Test,
        });
    }
    Ok(DatasetIndex {
        root: root.to_path_buf(),
        format: Format::KittiRoad,
        encoding: LabelEncoding::colors(&classes, &[VOID]),
        classes,
        samples,
        problems,
    })
}
