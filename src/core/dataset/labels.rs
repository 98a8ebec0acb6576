//! Label encodings: how each layout stores classes in its label files, decoded to train ids.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

pub use crate::core::mask::Mask;

use super::{ClassTable, IGNORE, Problem, formats, image_io};

/// Colours and the train id (or IGNORE) each maps to.
pub type ColorTable = Arc<Vec<([u8; 3], u8)>>;

/// How label files encode classes.
#[derive(Clone, Debug, PartialEq)]
pub enum LabelEncoding {
    /// 8-bit single-channel index PNG; each value maps through the table to a train id or
    /// IGNORE; `None` marks values that must not occur.
    Index { lut: Arc<[Option<u8>; 256]> },
    /// RGB colour PNG; each colour maps to a train id or IGNORE; other colours are errors.
    Color { table: ColorTable },
    /// Palette PNG (or 8-bit index PNG) whose index maps through `lut`, as VOC, CVAT and
    /// Mapillary Vistas write them; an RGB file of the same layout maps through `colors`.
    Palette {
        lut: Arc<[Option<u8>; 256]>,
        colors: Option<ColorTable>,
    },
    /// COCO annotations (panoptic PNGs, RLE, polygons); the label path is a key into them.
    Coco(Arc<formats::coco::CocoLabels>),
    /// labelme shapes: the label path is the image's json.
    Labelme(Arc<formats::labelme::LabelmeClasses>),
}

impl LabelEncoding {
    /// Native masks: ids `0..classes` as they are, 255 = ignore, anything else is unknown.
    pub fn native(classes: &ClassTable) -> Self {
        let mut lut = [None; 256];
        for (id, entry) in lut.iter_mut().enumerate().take(classes.len()) {
            *entry = Some(id as u8);
        }
        lut[IGNORE as usize] = Some(IGNORE);
        Self::Index { lut: Arc::new(lut) }
    }

    /// Colour labels where each class is drawn in its table colour, plus extra colours
    /// (e.g. CamVid's Void) that map to ignore.
    pub fn colors(classes: &ClassTable, ignored: &[[u8; 3]]) -> Self {
        let mut table: Vec<([u8; 3], u8)> = classes.iter().map(|c| (c.color, c.id)).collect();
        table.extend(ignored.iter().map(|&c| (c, IGNORE)));
        Self::Color {
            table: Arc::new(table),
        }
    }

    /// Decodes a label file into train ids.
    pub fn decode(&self, path: &Path) -> Result<Mask, Problem> {
        self.decode_against(path, "the class table")
    }

    /// Whether a training run's label snapshot holds decoded masks (native index PNGs) rather
    /// than copies of the label files: labels kept inside one big annotation file (COCO) or as
    /// shapes (labelme) are rasterised once, when the run starts.
    pub fn snapshot_decodes(&self) -> bool {
        matches!(self, Self::Coco(_) | Self::Labelme(_))
    }

    /// [`LabelEncoding::decode`] for values that are not classes (a drivable-area map): an
    /// unknown value is reported as not in `known` (e.g. "the class table").
    pub fn decode_against(&self, path: &Path, known: &str) -> Result<Mask, Problem> {
        match self {
            Self::Index { lut } => map_indices(path, image_io::read_index(path)?, lut, known),
            Self::Color { table } => map_colors(path, &image_io::read_rgb(path)?, table, known),
            Self::Palette { lut, colors } => match image_io::read_label_image(path)? {
                image_io::LabelImage::Indexed(img) => map_indices(path, img, lut, known),
                image_io::LabelImage::Rgb(img) => match colors {
                    Some(table) => map_colors(path, &img, table, known),
                    None => Err(Problem::new(
                        path,
                        "expected a palette (indexed-colour) or 8-bit index PNG, found an RGB \
                         image, and no colour table (labelmap.txt) says what its colours mean",
                    )),
                },
            },
            Self::Coco(labels) => formats::coco::decode(labels, path),
            Self::Labelme(labels) => formats::labelme::decode(labels, path),
        }
    }
}

fn map_indices(
    path: &Path,
    img: image::GrayImage,
    lut: &[Option<u8>; 256],
    known: &str,
) -> Result<Mask, Problem> {
    let (width, height) = img.dimensions();
    let mut unknown: BTreeMap<u8, u64> = BTreeMap::new();
    let data = img
        .into_raw()
        .into_iter()
        .map(|v| match lut[v as usize] {
            Some(id) => id,
            None => {
                *unknown.entry(v).or_default() += 1;
                IGNORE
            }
        })
        .collect();
    mapped(path, (width, height, data), unknown, "class id", known)
}

fn map_colors(
    path: &Path,
    img: &image::RgbImage,
    table: &[([u8; 3], u8)],
    known: &str,
) -> Result<Mask, Problem> {
    let (width, height) = img.dimensions();
    let mut unknown: BTreeMap<[u8; 3], u64> = BTreeMap::new();
    // Labels are piecewise constant: remembering the last hit skips most searches.
    let mut last = table.first().copied().unwrap_or(([0; 3], IGNORE));
    let data = img
        .pixels()
        .map(|p| {
            let rgb = p.0;
            if rgb == last.0 {
                return last.1;
            }
            match table.iter().find(|(c, _)| *c == rgb) {
                Some(&hit) => {
                    last = hit;
                    hit.1
                }
                None => {
                    *unknown.entry(rgb).or_default() += 1;
                    IGNORE
                }
            }
        })
        .collect();
    mapped(path, (width, height, data), unknown, "colour", known)
}

/// The mapped mask, or the problem listing the values (`what`) that are not in `known`.
fn mapped<K: std::fmt::Debug>(
    path: &Path,
    (width, height, data): (u32, u32, Vec<u8>),
    unknown: BTreeMap<K, u64>,
    what: &str,
    known: &str,
) -> Result<Mask, Problem> {
    if !unknown.is_empty() {
        return Err(Problem::new(path, describe_unknown(what, unknown, known)));
    }
    Ok(Mask {
        width,
        height,
        data,
    })
}

/// "unknown colour (1, 2, 3) in 40 pixels, (9, 9, 9) in 2 pixels" — most frequent first, at most 5.
fn describe_unknown<K: std::fmt::Debug>(
    what: &str,
    counts: BTreeMap<K, u64>,
    known: &str,
) -> String {
    let total_kinds = counts.len();
    let mut counts: Vec<(K, u64)> = counts.into_iter().collect();
    counts.sort_by_key(|c| std::cmp::Reverse(c.1));
    let shown: Vec<String> = counts
        .iter()
        .take(5)
        .map(|(k, n)| format!("{} in {n} pixels", format!("{k:?}").replace(['[', ']'], "")))
        .collect();
    let more = if total_kinds > 5 {
        format!(" (and {} more)", total_kinds - 5)
    } else {
        String::new()
    };
    format!(
        "unknown {what}{} not in {known}: {}{more}",
        if total_kinds > 1 { "s" } else { "" },
        shown.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{GrayImage, Luma, Rgb, RgbImage};

    #[test]
    fn colour_labels_map_and_report_unknown_colours() {
        let dir = tempfile::tempdir().unwrap();
        let classes = ClassTable::from_pairs([("a", [10, 0, 0]), ("b", [0, 20, 0])]);
        let enc = LabelEncoding::colors(&classes, &[[0, 0, 0]]);
        let file = dir.path().join("l.png");
        let mut img = RgbImage::from_pixel(4, 1, Rgb([10, 0, 0]));
        img.put_pixel(1, 0, Rgb([0, 20, 0]));
        img.put_pixel(2, 0, Rgb([0, 0, 0]));
        image_io::write_rgb_png(&file, &img).unwrap();
        assert_eq!(enc.decode(&file).unwrap().data, vec![0, 1, IGNORE, 0]);

        img.put_pixel(3, 0, Rgb([1, 2, 3]));
        img.put_pixel(0, 0, Rgb([1, 2, 3]));
        image_io::write_rgb_png(&file, &img).unwrap();
        let problem = enc.decode(&file).unwrap_err();
        assert_eq!(problem.file, file);
        assert!(problem.error.contains("1, 2, 3 in 2 pixels"), "{problem}");
    }

    #[test]
    fn native_index_rejects_unknown_ids() {
        let dir = tempfile::tempdir().unwrap();
        let classes = ClassTable::from_pairs([("a", [1, 1, 1]), ("b", [2, 2, 2])]);
        let enc = LabelEncoding::native(&classes);
        let file = dir.path().join("m.png");
        let mut img = GrayImage::from_pixel(3, 1, Luma([1]));
        img.put_pixel(0, 0, Luma([255]));
        image_io::write_gray_png(&file, &img).unwrap();
        assert_eq!(enc.decode(&file).unwrap().data, vec![IGNORE, 1, 1]);
        img.put_pixel(2, 0, Luma([7]));
        image_io::write_gray_png(&file, &img).unwrap();
        let err = enc.decode(&file).unwrap_err().error;
        assert!(
            err.contains("unknown class id") && err.contains("7 in 1 pixels"),
            "{err}"
        );
    }
}
