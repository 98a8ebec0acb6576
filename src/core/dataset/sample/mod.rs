//! The bundled sample: a procedural road dataset drawn in the native layout, so the first run
//! needs no download. Deterministic for a seed.
//!
//! Each image is a pinhole-camera view of a road (lanes, dashed and edge markings, curvature,
//! camera height and pitch) drawn far-to-near in depth slices: sky with clouds, a distant tree
//! line, sidewalks, building facades with windows or trees and grass, vehicles with shadows,
//! building shadows on the road, haze, varied lighting and sensor noise. The label of every
//! pixel is the class of the surface drawn there last, so masks are exact.
//!
//! [`Look::Hard`] draws the same scenes (the same masks for a seed) harder to segment, for
//! measuring labelling assists: asphalt textured at several scales with wheel tracks, shadows
//! cast across road and sidewalk alike, sidewalks close to the road's grey, stronger sensor
//! noise and vignetting, and images saved as JPEG (quality [`HARD_JPEG_QUALITY`]) with its
//! blocking around every edge.

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
    pub look: Look,
}

/// How the sample's scenes are drawn; the geometry and masks are the same in both.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Look {
    /// Clean surfaces, light noise, PNG images: the bundled sample, easy to learn from.
    #[default]
    Plain,
    /// Textured asphalt, shadows across road and sidewalk, low road/sidewalk contrast, heavy
    /// noise and vignetting, JPEG images: scenes on which labelling assists are measured.
    Hard,
}

/// The JPEG quality of [`Look::Hard`] images: what phone and dash cameras commonly save.
pub const HARD_JPEG_QUALITY: u8 = 75;

impl Look {
    pub const ALL: [Look; 2] = [Look::Plain, Look::Hard];

    pub fn as_str(self) -> &'static str {
        match self {
            Look::Plain => "plain",
            Look::Hard => "hard",
        }
    }
}

impl std::fmt::Display for Look {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Look {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|l| l.as_str().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| format!("unknown look {s:?} (plain, hard)"))
    }
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
            look: Look::Plain,
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
    let extension = match cfg.look {
        Look::Plain => "png",
        Look::Hard => "jpg",
    };
    let mut samples: Vec<Sample> = (0..cfg.count)
        .map(|i| {
            let name = format!("road_{i:04}");
            Sample {
                image: out.join("images").join(format!("{name}.{extension}")),
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
            let seed = derive_seed(&[cfg.seed, i as u64]);
            let (image, mask) = render(seed, cfg.width, cfg.height, cfg.look);
            match cfg.look {
                Look::Plain => image_io::write_rgb_png(&sample.image, &image)?,
                Look::Hard => image_io::write_rgb_jpeg(&sample.image, &image, HARD_JPEG_QUALITY)?,
            }
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
            look: Look::Plain,
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
                look: Look::Plain,
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
    fn the_hard_look_draws_the_same_masks_differently() {
        for seed in 0..6 {
            let (plain, plain_mask) = render(seed, 128, 64, Look::Plain);
            let (hard, hard_mask) = render(seed, 128, 64, Look::Hard);
            assert_eq!(plain_mask, hard_mask, "seed {seed}");
            assert_ne!(plain, hard, "seed {seed}");
        }
    }

    /// The plain look as it was before the hard one existed (FNV-1a of the first image and mask
    /// of `roadseg sample --seed 5 --size 96x72`, written before), so that the bundled sample
    /// and every figure measured on it stay the same.
    #[test]
    fn the_plain_look_is_unchanged() {
        let (image, mask) = render(derive_seed(&[5, 0]), 96, 72, Look::Plain);
        let digest = |bytes: &[u8]| {
            bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
                (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
            })
        };
        assert_eq!(
            (digest(image.as_raw()), digest(&mask.data)),
            (PLAIN_IMAGE_DIGEST, PLAIN_MASK_DIGEST)
        );
    }
    const PLAIN_IMAGE_DIGEST: u64 = 0x03e5_f6d3_4717_a3ef;
    const PLAIN_MASK_DIGEST: u64 = 0x5a43_4c7e_ad05_1e46;

    #[test]
    fn a_hard_sample_is_written_as_jpeg_and_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = SampleConfig {
            count: 3,
            seed: 4,
            width: 96,
            height: 48,
            look: Look::Hard,
        };
        let samples = generate(dir.path(), &cfg).unwrap();
        let index = crate::core::dataset::DatasetIndex::open(dir.path(), None).unwrap();
        assert_eq!(index.format, crate::core::dataset::Format::Native);
        assert!(index.problems.is_empty(), "{:?}", index.problems);
        assert_eq!(index.labelled().count(), 3);
        for (i, sample) in samples.iter().enumerate() {
            assert_eq!(sample.image.extension().unwrap(), "jpg");
            let bytes = std::fs::read(&sample.image).unwrap();
            assert_eq!(bytes[..3], [0xFF, 0xD8, 0xFF], "a JPEG's start of image");
            let listed = index
                .samples
                .iter()
                .find(|s| s.name == sample.name)
                .unwrap();
            let (image, mask) = crate::core::dataset::info::load_pair(&index, listed).unwrap();
            let (drawn, drawn_mask) =
                render(derive_seed(&[cfg.seed, i as u64]), 96, 48, Look::Hard);
            assert_eq!(mask.unwrap(), drawn_mask, "masks are exact, not compressed");
            // Lossy, but the same picture: JPEG smooths much of the sensor noise (10-18 levels
            // per pixel), which leaves a mean error of about a dozen levels.
            let error: u64 = image
                .as_raw()
                .iter()
                .zip(drawn.as_raw())
                .map(|(&a, &b)| (a as i64 - b as i64).unsigned_abs())
                .sum();
            let mean = error as f64 / drawn.as_raw().len() as f64;
            assert!(mean > 0.0 && mean < 24.0, "mean error {mean}");
        }
    }

    #[test]
    fn looks_parse_by_name() {
        assert_eq!("hard".parse::<Look>(), Ok(Look::Hard));
        assert_eq!("Plain".parse::<Look>(), Ok(Look::Plain));
        assert!("photo".parse::<Look>().unwrap_err().contains("plain, hard"));
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
                look: Look::Plain,
            };
            let samples = generate(dir.path(), &cfg).unwrap();
            assert_eq!(samples[0].split, Split::Train, "seed {seed}");
            let index = crate::core::dataset::DatasetIndex::open(dir.path(), None).unwrap();
            assert_eq!(index.labelled_in(Split::Train).len(), 1, "seed {seed}");
        }
    }
}
