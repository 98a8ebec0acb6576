//! The bundled sample: a procedural road dataset drawn in the native layout, so the first run
//! needs no download. Deterministic for a seed.
//!
//! Each image is a pinhole-camera view of a road (lanes, dashed and edge markings, curvature,
//! camera height and pitch) drawn far-to-near in depth slices: sky with clouds, a distant tree
//! line, sidewalks, building facades with windows or trees and grass, vehicles with shadows,
//! building shadows on the road, haze, varied lighting and sensor noise. The label of every
//! pixel is the class of the surface drawn there last, so masks are exact.

mod render;

use std::path::Path;

use rayon::prelude::*;

pub use render::render;

use super::image_io::{MAX_PIXELS, MAX_SIDE};
use super::split::SplitsFile;
use super::{ClassTable, DatasetError, Sample, Split, image_io, split};
use crate::core::rng::derive_seed;

pub const ROAD: u8 = 0;
pub const SIDEWALK: u8 = 1;
pub const BUILDING: u8 = 2;
pub const VEGETATION: u8 = 3;
pub const SKY: u8 = 4;
pub const VEHICLE: u8 = 5;
pub const LANE_MARKING: u8 = 6;

/// The sample's classes (colours follow Cityscapes where it has the class).
pub fn classes() -> ClassTable {
    ClassTable::from_pairs([
        ("road", [128, 64, 128]),
        ("sidewalk", [244, 35, 232]),
        ("building", [70, 70, 70]),
        ("vegetation", [107, 142, 35]),
        ("sky", [70, 130, 180]),
        ("vehicle", [0, 0, 142]),
        ("lane marking", [255, 215, 0]),
    ])
}

#[derive(Clone, Debug)]
pub struct SampleConfig {
    pub count: usize,
    pub seed: u64,
    pub width: u32,
    pub height: u32,
}

/// The smallest side the renderer draws a recognisable scene at.
pub const MIN_SIDE: u32 = 16;

impl SampleConfig {
    /// Whether roadseg could read and train on what this would write: at least one image, each
    /// within what the image reader accepts.
    pub fn check(&self) -> Result<(), String> {
        let (w, h) = (self.width, self.height);
        if self.count == 0 {
            return Err("count is 0: the sample needs at least one image".into());
        }
        if w < MIN_SIDE || h < MIN_SIDE {
            return Err(format!(
                "size {w}x{h} is too small ({MIN_SIDE}x{MIN_SIDE} at least)"
            ));
        }
        if w > MAX_SIDE || h > MAX_SIDE || w as u64 * h as u64 > MAX_PIXELS {
            return Err(format!(
                "size {w}x{h} is larger than roadseg reads (at most {MAX_SIDE} pixels a side \
                 and {} megapixels)",
                MAX_PIXELS >> 20
            ));
        }
        Ok(())
    }
}

impl Default for SampleConfig {
    fn default() -> Self {
        Self {
            count: 100,
            seed: 1,
            width: 480,
            height: 360,
        }
    }
}

/// Writes the sample dataset into `out` (native layout) and returns its samples. A config that
/// fails [`SampleConfig::check`] is refused before anything is written.
pub fn generate(out: &Path, cfg: &SampleConfig) -> Result<Vec<Sample>, DatasetError> {
    cfg.check().map_err(|reason| DatasetError::BadFile {
        file: out.to_path_buf(),
        reason: format!("sample not written: {reason}"),
    })?;
    classes().write_json(&out.join("classes.json"))?;
    let mut samples: Vec<Sample> = (0..cfg.count)
        .map(|i| {
            let name = format!("road_{i:04}");
            Sample {
                image: out.join("images").join(format!("{name}.png")),
                label: Some(out.join("masks").join(format!("{name}.png"))),
                name,
                split: Split::Train,
            }
        })
        .collect();
    split::assign_by_ratio(&mut samples, cfg.seed, split::DEFAULT_TRAIN_FRACTION);
    // The ratio can put every image of a tiny sample in val, which `train` refuses.
    if !samples.iter().any(|s| s.split == Split::Train) {
        samples[0].split = Split::Train;
    }
    samples
        .par_iter()
        .enumerate()
        .try_for_each(|(i, sample)| -> Result<(), DatasetError> {
            let (image, mask) = render(derive_seed(&[cfg.seed, i as u64]), cfg.width, cfg.height);
            image_io::write_rgb_png(&sample.image, &image)?;
            let label = sample.label.as_ref().expect("sample images are labelled");
            image_io::write_gray_png(label, &mask.to_gray_image())
        })?;
    SplitsFile::from_samples(&samples).write(&out.join("splits.json"))?;
    Ok(samples)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generate_writes_a_native_dataset() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = SampleConfig {
            count: 6,
            seed: 3,
            width: 64,
            height: 48,
        };
        let samples = generate(dir.path(), &cfg).unwrap();
        assert_eq!(samples.len(), 6);
        let index = crate::core::dataset::DatasetIndex::open(dir.path(), None).unwrap();
        assert_eq!(index.format, crate::core::dataset::Format::Native);
        assert_eq!(index.labelled().count(), 6);
        assert!(index.problems.is_empty(), "{:?}", index.problems);
        assert!(index.samples.iter().any(|s| s.split == Split::Val));
    }

    #[test]
    fn what_roadseg_cannot_read_is_refused_before_writing() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        for (count, width, height, says) in [
            (0, 64, 48, "at least one image"),
            (2, 20_000, 20, "larger than roadseg reads"),
            (2, 8_000, 8_000, "larger than roadseg reads"),
            (2, 15, 48, "too small"),
        ] {
            let cfg = SampleConfig {
                count,
                seed: 1,
                width,
                height,
            };
            let err = generate(&out, &cfg).unwrap_err().to_string();
            assert!(err.contains(says), "{count} at {width}x{height}: {err}");
            assert!(
                !out.exists(),
                "{count} at {width}x{height} wrote {}",
                out.display()
            );
        }
    }

    #[test]
    fn a_tiny_sample_always_has_a_training_image() {
        for seed in 0..24 {
            let dir = tempfile::tempdir().unwrap();
            let cfg = SampleConfig {
                count: 1,
                seed,
                width: 16,
                height: 16,
            };
            let samples = generate(dir.path(), &cfg).unwrap();
            assert_eq!(samples[0].split, Split::Train, "seed {seed}");
            let index = crate::core::dataset::DatasetIndex::open(dir.path(), None).unwrap();
            assert_eq!(index.labelled_in(Split::Train).len(), 1, "seed {seed}");
        }
    }
}
