//! Cityscapes: `leftImg8bit/<split>/<city>/<stem>_leftImg8bit.png` with
//! `gtFine/<split>/<city>/<stem>_gtFine_labelIds.png`; labelIds map to the 19 standard trainIds,
//! the other labelIds of cityscapesScripts' `labels.py` (0..33) to ignore. Any other value is
//! unknown, as in the other layouts: a label file holding one is not Cityscapes' own.
//! `convert --to cityscapes` writes this layout when every class is one of the 19 (by name).

use std::path::Path;
use std::sync::Arc;

use super::{file_name, list_dirs, list_images};
use crate::core::dataset::convert::{ConvertError, Job, Written, bad_file};
use crate::core::dataset::{
    ClassTable, DatasetError, DatasetIndex, Format, IGNORE, LabelEncoding, Problem, Sample, Split,
    image_io,
};

/// The 19 train classes: (name, colour, labelId), in trainId order.
pub const CLASSES: [(&str, [u8; 3], u8); 19] = [
    ("road", [128, 64, 128], 7),
    ("sidewalk", [244, 35, 232], 8),
    ("building", [70, 70, 70], 11),
    ("wall", [102, 102, 156], 12),
    ("fence", [190, 153, 153], 13),
    ("pole", [153, 153, 153], 17),
    ("traffic light", [250, 170, 30], 19),
    ("traffic sign", [220, 220, 0], 20),
    ("vegetation", [107, 142, 35], 21),
    ("terrain", [152, 251, 152], 22),
    ("sky", [70, 130, 180], 23),
    ("person", [220, 20, 60], 24),
    ("rider", [255, 0, 0], 25),
    ("car", [0, 0, 142], 26),
    ("truck", [0, 0, 70], 27),
    ("bus", [0, 60, 100], 28),
    ("train", [0, 80, 100], 31),
    ("motorcycle", [0, 0, 230], 32),
    ("bicycle", [119, 11, 32], 33),
];

const IMAGE_SUFFIX: &str = "_leftImg8bit.png";
const LABEL_SUFFIX: &str = "_gtFine_labelIds.png";

/// The largest labelId in `labels.py` (bicycle).
const MAX_LABEL_ID: usize = 33;

/// labelId -> trainId; the other labelIds -> IGNORE; values that are no labelId -> `None`.
///
/// `labels.py`'s license plate has id -1, which its tools never draw; 255 is that -1 as a byte,
/// so a file written by other tools that do draw it still reads (as ignore).
pub fn label_lut() -> [Option<u8>; 256] {
    let mut lut = [None; 256];
    for entry in lut.iter_mut().take(MAX_LABEL_ID + 1) {
        *entry = Some(IGNORE);
    }
    lut[IGNORE as usize] = Some(IGNORE);
    for (train_id, (_, _, label_id)) in CLASSES.iter().enumerate() {
        lut[*label_id as usize] = Some(train_id as u8);
    }
    lut
}

fn split_of(folder: &str) -> Split {
    match folder {
        "val" => Split::Val,
        "test" => Split::Test,
        // train and train_extra
        _ => Split::Train,
    }
}

pub fn scan(root: &Path) -> Result<DatasetIndex, DatasetError> {
    let classes = ClassTable::from_pairs(CLASSES.iter().map(|(n, c, _)| (*n, *c)));
    let mut samples = Vec::new();
    let mut problems = Vec::new();
    for split_dir in list_dirs(&root.join("leftImg8bit"))? {
        let split_name = file_name(&split_dir);
        for city_dir in list_dirs(&split_dir)? {
            let city = file_name(&city_dir);
            let gt_dir = root.join("gtFine").join(&split_name).join(&city);
            for image in list_images(&city_dir)? {
                let file = file_name(&image);
                let Some(stem) = file.strip_suffix(IMAGE_SUFFIX) else {
                    problems.push(Problem::new(
                        &image,
                        format!("not a Cityscapes image name (expected *{IMAGE_SUFFIX})"),
                    ));
                    continue;
                };
                let label = gt_dir.join(format!("{stem}{LABEL_SUFFIX}"));
                let label = if label.is_file() {
                    Some(label)
                } else {
                    problems.push(Problem::new(
                        &image,
                        format!("no label (expected {})", label.display()),
                    ));
                    None
                };
                samples.push(Sample {
                    name: stem.to_string(),
                    image,
                    label,
                    split: split_of(&split_name),
                });
            }
        }
    }
    Ok(DatasetIndex {
        root: root.to_path_buf(),
        format: Format::Cityscapes,
        classes,
        encoding: LabelEncoding::Index {
            lut: Arc::new(label_lut()),
        },
        samples,
        problems,
    })
}

/// Each class's labelId, found by name among the 19 train classes (case and `_`/`-`/space
/// spellings aside); an error lists the classes Cityscapes has not.
pub fn label_ids_of(classes: &ClassTable) -> Result<Vec<u8>, ConvertError> {
    let norm = |s: &str| s.to_lowercase().replace(['_', '-'], " ");
    let mut ids = Vec::with_capacity(classes.len());
    let mut missing = Vec::new();
    for class in classes.iter() {
        match CLASSES
            .iter()
            .find(|(name, _, _)| norm(name) == norm(&class.name))
        {
            Some((_, _, label_id)) => ids.push(*label_id),
            None => missing.push(format!("{:?}", class.name)),
        }
    }
    if !missing.is_empty() {
        let names: Vec<&str> = CLASSES.iter().map(|c| c.0).collect();
        return Err(ConvertError::Unsupported {
            format: Format::Cityscapes,
            reason: format!(
                "class(es) {} are not among Cityscapes' train classes ({}); rename them or \
                 choose another layout",
                missing.join(", "),
                names.join(", ")
            ),
        });
    }
    Ok(ids)
}

/// The city folder roadseg writes its images under.
const CITY: &str = "roadseg";

/// Writes the job as Cityscapes: `leftImg8bit/<split>/roadseg/<name>_leftImg8bit.png` (PNG as
/// Cityscapes has them: other images are re-encoded, losslessly from their decoded pixels) and
/// `gtFine/<split>/roadseg/<name>_gtFine_labelIds.png`, ignore as labelId 0 (unlabeled).
pub fn write(job: &Job) -> Result<Written, ConvertError> {
    let label_ids = label_ids_of(&job.index.classes)?;
    let written = job.each(|sample, mask| {
        let split = sample.split.as_str();
        let images = job.out.join("leftImg8bit").join(split).join(CITY);
        let file = images.join(format!("{}{IMAGE_SUFFIX}", sample.name));
        let is_png = sample
            .image
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("png"));
        if is_png {
            let bytes =
                std::fs::read(&sample.image).map_err(|e| DatasetError::io(&sample.image, e))?;
            image_io::write_atomic(&file, &bytes)?;
        } else {
            let rgb = image_io::read_rgb(&sample.image).map_err(bad_file)?;
            image_io::write_rgb_png(&file, &rgb)?;
        }
        let Some(mut mask) = mask else { return Ok(0) };
        for v in mask.data.iter_mut() {
            *v = label_ids.get(*v as usize).copied().unwrap_or(0);
        }
        let gt = job.out.join("gtFine").join(split).join(CITY);
        image_io::write_gray_png(
            &gt.join(format!("{}{LABEL_SUFFIX}", sample.name)),
            &mask.to_gray_image(),
        )?;
        Ok(1)
    })?;
    Ok(Written::masks(&written))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_ids_beyond_labels_py_are_unknown() {
        let lut = label_lut();
        assert_eq!(lut[7], Some(0), "road");
        assert_eq!(lut[33], Some(18), "bicycle");
        for void in [0, 4, 9, 16, 29, 30] {
            assert_eq!(lut[void], Some(IGNORE), "labelId {void} is ignore");
        }
        assert_eq!(lut[255], Some(IGNORE), "license plate (-1)");
        for unknown in [34, 100, 250, 254] {
            assert_eq!(lut[unknown], None, "{unknown} is no labelId");
        }
    }
}
