//! roadseg's own layout: `images/<name>.<png|jpg>`, `masks/<name>.png` (8-bit class ids,
//! 255 = ignore), `classes.json`, optional `splits.json`, optional `drivable/<name>.png`
//! (drivable-area maps, see [`crate::core::dataset::drivable`]; `convert` carries BDD100K's
//! here). Images without a mask are unlabelled.
//!
//! `splits.json` puts each image in one split: an image listed in two is left out (and
//! reported), since using it would put a validation image in training.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::{list_images, stem};
use crate::core::dataset::convert::{ConvertError, Job, Written, bad_file};
use crate::core::dataset::split::{self, SplitsFile};
use crate::core::dataset::{
    ClassTable, DatasetError, DatasetIndex, Format, LabelEncoding, Problem, Sample, Split,
    drivable, image_io,
};

fn drivable_dir(root: &Path) -> PathBuf {
    root.join("drivable")
}

/// The drivable-area map of `sample`, if `drivable/` has one.
pub fn drivable_label(root: &Path, sample: &Sample) -> Option<PathBuf> {
    let path = drivable_dir(root).join(format!("{}.png", sample.name));
    path.is_file().then_some(path)
}

/// Whether the dataset has drivable-area maps.
pub fn has_drivable(root: &Path) -> bool {
    drivable_dir(root).is_dir()
}

pub fn scan(root: &Path) -> Result<DatasetIndex, DatasetError> {
    let classes = ClassTable::read_json(&root.join("classes.json"))?;
    let mut problems = Vec::new();
    let mut samples: Vec<Sample> = Vec::new();
    let mut seen: HashMap<String, usize> = HashMap::new();
    for image in list_images(&root.join("images"))? {
        let name = stem(&image);
        if let Some(&first) = seen.get(&name) {
            problems.push(Problem::new(
                &image,
                format!(
                    "another image is also named {name:?} ({}); this one is skipped",
                    samples[first].image.display()
                ),
            ));
            continue;
        }
        let mask = root.join("masks").join(format!("{name}.png"));
        seen.insert(name.clone(), samples.len());
        samples.push(Sample {
            name,
            image,
            label: mask.is_file().then_some(mask),
            split: Split::Train,
        });
    }
    for mask in super::list_files(&root.join("masks"), image_io::is_image)? {
        if !seen.contains_key(&stem(&mask)) {
            problems.push(Problem::new(&mask, "mask has no image in images/"));
        }
    }
    for map in super::list_files(&drivable_dir(root), image_io::is_image)? {
        if !seen.contains_key(&stem(&map)) {
            problems.push(Problem::new(
                &map,
                "drivable-area map has no image in images/",
            ));
        }
    }

    let splits_file = root.join("splits.json");
    let listed = if splits_file.is_file() {
        Some(SplitsFile::read(&splits_file)?)
    } else {
        None
    };
    let lookup = listed.as_ref().map(SplitsFile::lookup).unwrap_or_default();
    // Names that match no image are listed rather than dropped silently (a typo, a path
    // where a name belongs, an image deleted since).
    if let Some(listed) = &listed {
        for (split, names) in [
            (Split::Train, &listed.train),
            (Split::Val, &listed.val),
            (Split::Test, &listed.test),
        ] {
            for name in names.iter().filter(|n| !seen.contains_key(n.as_str())) {
                let why = if name.contains(['/', '\\']) || name.contains("..") {
                    "entries are image names without folders or extensions"
                } else {
                    "no image in images/ has that name"
                };
                problems.push(Problem::new(
                    &splits_file,
                    format!("{split} lists {name:?}, which matches no image ({why})"),
                ));
            }
        }
    }
    if let Some(listed) = &listed {
        let conflicts = listed.conflicts();
        for (name, splits) in &conflicts {
            if seen.contains_key(*name) {
                let splits: Vec<&str> = splits.iter().map(|s| s.as_str()).collect();
                problems.push(Problem::new(
                    &splits_file,
                    format!(
                        "{name:?} is listed in {}: an image belongs to one split (in two, \
                         validation would see a training image); it is left out until \
                         splits.json lists it once",
                        splits.join(" and ")
                    ),
                ));
            }
        }
        samples.retain(|s| !conflicts.contains_key(s.name.as_str()));
    }
    // Images that splits.json does not name get the seeded ratio, like a dataset without one.
    let mut unlisted: Vec<Sample> = Vec::new();
    for sample in &mut samples {
        match lookup.get(sample.name.as_str()) {
            Some(&s) => sample.split = s,
            None => unlisted.push(sample.clone()),
        }
    }
    if !unlisted.is_empty() {
        split::assign_by_ratio(
            &mut unlisted,
            split::DEFAULT_SPLIT_SEED,
            split::DEFAULT_TRAIN_FRACTION,
        );
        let by_name: HashMap<String, Split> =
            unlisted.into_iter().map(|s| (s.name, s.split)).collect();
        for sample in &mut samples {
            if let Some(&s) = by_name.get(&sample.name) {
                sample.split = s;
            }
        }
    }

    Ok(DatasetIndex {
        root: root.to_path_buf(),
        format: Format::Native,
        encoding: LabelEncoding::native(&classes),
        classes,
        samples,
        problems,
    })
}

/// Writes the job's samples as native: images copied, masks as index PNGs, `classes.json`,
/// `splits.json`, and drivable-area maps where the source has them.
pub fn write(job: &Job) -> Result<Written, ConvertError> {
    let out = job.out;
    let index = job.index;
    std::fs::create_dir_all(out.join("images")).map_err(|e| DatasetError::io(out, e))?;
    std::fs::create_dir_all(out.join("masks")).map_err(|e| DatasetError::io(out, e))?;
    index.classes.write_json(&out.join("classes.json"))?;
    let kept: Vec<Sample> = job.samples.iter().map(|s| (*s).clone()).collect();
    SplitsFile::from_samples(&kept).write(&out.join("splits.json"))?;
    let written = job.each(|sample, mask| {
        job.copy_image(sample, &out.join("images"))?;
        let masks = match mask {
            Some(mask) => {
                image_io::write_gray_png(
                    &out.join("masks").join(format!("{}.png", sample.name)),
                    &mask.to_gray_image(),
                )?;
                1
            }
            None => 0,
        };
        // Validated with its image; decoded again here for the values alone.
        let maps = match index.drivable_label(sample) {
            Some(path) => {
                let map = drivable::encoding().decode(&path).map_err(bad_file)?;
                image_io::write_gray_png(
                    &out.join("drivable").join(format!("{}.png", sample.name)),
                    &map.to_gray_image(),
                )?;
                1
            }
            None => 0,
        };
        Ok((masks, maps))
    })?;
    Ok(Written {
        masks: written.iter().map(|w| w.0).sum(),
        drivable: written.iter().map(|w| w.1).sum(),
    })
}
