//! Full check of a dataset: decodes every image, label and drivable-area map, counts pixels per
//! class, and lists every problem instead of stopping at the first.

use std::collections::BTreeMap;

use rayon::prelude::*;
use serde::Serialize;

use image::RgbImage;

use super::{DatasetIndex, IGNORE, Problem, Sample, drivable, image_io};
use crate::core::mask::Mask;

#[derive(Clone, Debug, Serialize)]
pub struct ClassReport {
    pub id: u8,
    pub name: String,
    pub color: [u8; 3],
    /// Pixels of this class over all labelled masks (ignore excluded).
    pub pixels: u64,
}

/// What `roadseg info --json` prints.
#[derive(Clone, Debug, Serialize)]
pub struct InfoReport {
    pub format: String,
    pub images: usize,
    pub labelled: usize,
    pub splits: BTreeMap<String, usize>,
    /// Images with a drivable-area map (`--aux drivable`).
    pub drivable_maps: usize,
    pub classes: Vec<ClassReport>,
    pub problems: Vec<Problem>,
}

/// Decodes a sample's image and label (`None` when unlabelled), checking they are the same size.
pub fn load_pair(
    index: &DatasetIndex,
    sample: &Sample,
) -> Result<(RgbImage, Option<Mask>), Problem> {
    let image = image_io::read_rgb(&sample.image)?;
    let Some(mask) = index.load_mask(sample)? else {
        return Ok((image, None));
    };
    if image.dimensions() != (mask.width, mask.height) {
        return Err(Problem::new(
            sample.label.as_deref().unwrap_or(&sample.image),
            format!(
                "mask is {}x{} but its image {} is {}x{}",
                mask.width,
                mask.height,
                sample.image.display(),
                image.width(),
                image.height()
            ),
        ));
    }
    Ok((image, Some(mask)))
}

/// Decodes one sample fully (its drivable-area map too, where it has one) and returns its
/// per-class pixel counts (empty when unlabelled).
pub fn check_sample(index: &DatasetIndex, sample: &Sample) -> Result<Vec<u64>, Problem> {
    check_sized(index, sample).map(|(counts, _)| counts)
}

/// [`check_sample`], with the image's size.
fn check_sized(index: &DatasetIndex, sample: &Sample) -> Result<(Vec<u64>, (u32, u32)), Problem> {
    let (image, mask) = load_pair(index, sample)?;
    // Checked here, with the mask, so that `--skip-bad` leaves out a sample whose map the
    // loader would fail on halfway through a run.
    if let Some(map) = index.drivable_label(sample) {
        drivable::load(&map, image.dimensions())?;
    }
    let Some(mask) = mask else {
        return Ok((Vec::new(), image.dimensions()));
    };
    let mut counts = vec![0u64; index.classes.len()];
    for &v in &mask.data {
        if v != IGNORE {
            counts[v as usize] += 1;
        }
    }
    Ok((counts, image.dimensions()))
}

/// The outcome of [`validate`].
pub struct Validated<'a> {
    /// Samples that decoded cleanly, in input order.
    pub good: Vec<&'a Sample>,
    /// One problem per sample that did not.
    pub problems: Vec<Problem>,
    /// Pixels per class over the good samples' masks (ignore excluded).
    pub pixels: Vec<u64>,
    /// The good samples' image sizes (width, height), in the order of `good`.
    pub sizes: Vec<(u32, u32)>,
}

/// Checks `samples` in parallel; returns the samples that passed, the problems of the rest and
/// the class pixel counts of the good ones.
pub fn validate<'a>(index: &DatasetIndex, samples: &[&'a Sample]) -> Validated<'a> {
    let results: Vec<_> = samples
        .par_iter()
        .map(|s| (*s, check_sized(index, s)))
        .collect();
    let mut out = Validated {
        good: Vec::new(),
        problems: Vec::new(),
        pixels: vec![0; index.classes.len()],
        sizes: Vec::new(),
    };
    for (sample, result) in results {
        match result {
            Ok((counts, size)) => {
                out.pixels.iter_mut().zip(counts).for_each(|(p, c)| *p += c);
                out.good.push(sample);
                out.sizes.push(size);
            }
            Err(p) => out.problems.push(p),
        }
    }
    out
}

pub fn inspect(index: &DatasetIndex) -> InfoReport {
    let results: Vec<Result<Vec<u64>, Problem>> = index
        .samples
        .par_iter()
        .map(|s| check_sample(index, s))
        .collect();
    let mut pixels = vec![0u64; index.classes.len()];
    let mut problems = index.problems.clone();
    for result in results {
        match result {
            Ok(counts) => pixels.iter_mut().zip(counts).for_each(|(p, c)| *p += c),
            Err(problem) => problems.push(problem),
        }
    }
    let mut splits = BTreeMap::new();
    for sample in &index.samples {
        *splits.entry(sample.split.to_string()).or_insert(0) += 1;
    }
    InfoReport {
        format: index.format.to_string(),
        images: index.samples.len(),
        labelled: index.labelled().count(),
        splits,
        drivable_maps: index
            .samples
            .iter()
            .filter(|s| index.drivable_label(s).is_some())
            .count(),
        classes: index
            .classes
            .iter()
            .zip(pixels)
            .map(|(c, pixels)| ClassReport {
                id: c.id,
                name: c.name.clone(),
                color: c.color,
                pixels,
            })
            .collect(),
        problems,
    }
}
