//! Pascal VOC segmentation, and CVAT's / datumaro's "Segmentation mask 1.1" (the same layout
//! with a `labelmap.txt`):
//!
//! ```text
//! JPEGImages/<name>.jpg
//! SegmentationClass/<name>.png        palette PNG: the index is the class, 255 = void
//!                                     (or RGB in the labelmap's colours, (224, 224, 192) = void)
//! ImageSets/Segmentation/train.txt    one name per line (also val.txt, test.txt; trainval.txt
//!                                     and CVAT's default.txt name images of no fixed split)
//! labelmap.txt                        # label:color_rgb:parts:actions
//!                                     road:128,64,128::
//! ```
//!
//! Without a labelmap the classes are VOC's 21, in VOC's bit-interleaved colour map. When split
//! lists exist, the samples are the images they name plus any image with a mask (VOC's
//! JPEGImages also holds the detection-only images, which are not part of the segmentation
//! set); without lists every image is a sample. Images no list places get the seeded ratio.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::{list_files, list_images, stem};
use crate::core::dataset::convert::{ConvertError, Job, Written};
use crate::core::dataset::split::{self, SplitsFile};
use crate::core::dataset::{
    ClassTable, DatasetError, DatasetIndex, Format, IGNORE, LabelEncoding, Problem, Sample, Split,
    image_io,
};

/// VOC's 21 classes, in index order.
pub const VOC_CLASSES: [&str; 21] = [
    "background",
    "aeroplane",
    "bicycle",
    "bird",
    "boat",
    "bottle",
    "bus",
    "car",
    "cat",
    "chair",
    "cow",
    "diningtable",
    "dog",
    "horse",
    "motorbike",
    "person",
    "pottedplant",
    "sheep",
    "sofa",
    "train",
    "tvmonitor",
];

/// The colour VOC draws void (index 255) in.
pub const VOID_COLOR: [u8; 3] = [224, 224, 192];

const LABELMAP: &str = "labelmap.txt";
const LABELMAP_HEADER: &str = "# label:color_rgb:parts:actions";

/// VOC's colour map: the bits of the index interleaved into the high bits of R, G and B.
pub fn voc_color(index: u8) -> [u8; 3] {
    let mut rgb = [0u8; 3];
    let mut c = index;
    for shift in (0..8).rev() {
        for (channel, value) in rgb.iter_mut().enumerate() {
            *value |= ((c >> channel) & 1) << shift;
        }
        c >>= 3;
    }
    rgb
}

/// Reads a `labelmap.txt`: `name:r,g,b:parts:actions` per class, `#` comments.
pub fn read_labelmap(file: &Path) -> Result<ClassTable, DatasetError> {
    let text = std::fs::read_to_string(file).map_err(|e| DatasetError::io(file, e))?;
    let bad = |reason: String| DatasetError::BadClassTable {
        file: file.to_path_buf(),
        reason,
    };
    let mut classes = ClassTable::default();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut fields = line.split(':');
        let name = fields.next().unwrap_or_default().trim();
        let color = fields.next().unwrap_or_default().trim();
        let rgb: Vec<&str> = color.split(',').map(str::trim).collect();
        let color = match rgb.as_slice() {
            [r, g, b] => match (r.parse::<u8>(), g.parse::<u8>(), b.parse::<u8>()) {
                (Ok(r), Ok(g), Ok(b)) => [r, g, b],
                _ => {
                    return Err(bad(format!(
                        "line {}: colour {color:?} is not r,g,b (0..255)",
                        n + 1
                    )));
                }
            },
            // datumaro allows a label without a colour: VOC's colour map gives it one.
            [""] => voc_color(classes.len().min(255) as u8),
            _ => {
                return Err(bad(format!(
                    "line {}: colour {color:?} is not r,g,b",
                    n + 1
                )));
            }
        };
        if let Some(same) = classes.iter().find(|c| c.color == color) {
            return Err(bad(format!(
                "line {}: {name:?} has the colour of {:?}; each class needs its own colour",
                n + 1,
                same.name
            )));
        }
        classes.0.push(crate::core::dataset::ClassInfo {
            id: classes.len().min(255) as u8,
            name: name.to_string(),
            color,
        });
    }
    if classes.len() >= IGNORE as usize {
        return Err(bad(format!(
            "{} classes; at most {} (index {IGNORE} is void)",
            classes.len(),
            IGNORE - 1
        )));
    }
    classes.validate(file)?;
    Ok(classes)
}

/// `labelmap.txt` as CVAT imports it ("Segmentation mask 1.1"), classes in id order.
pub fn labelmap_text(classes: &ClassTable) -> String {
    let mut text = format!("{LABELMAP_HEADER}\n");
    for class in classes.iter() {
        let [r, g, b] = class.color;
        text.push_str(&format!("{}:{r},{g},{b}::\n", class.name));
    }
    text
}

/// The encoding of a palette mask whose indices are `classes`' ids (255 = void); RGB masks in
/// the classes' colours read too.
pub fn palette_encoding(classes: &ClassTable) -> LabelEncoding {
    let mut lut = [None; 256];
    for (id, entry) in lut.iter_mut().enumerate().take(classes.len()) {
        *entry = Some(id as u8);
    }
    lut[IGNORE as usize] = Some(IGNORE);
    let mut colors: Vec<([u8; 3], u8)> = classes.iter().map(|c| (c.color, c.id)).collect();
    colors.push((VOID_COLOR, IGNORE));
    LabelEncoding::Palette {
        lut: Arc::new(lut),
        colors: Some(Arc::new(colors)),
    }
}

/// The split lists under `ImageSets/Segmentation/`: train, val and test as such; every other
/// list (trainval, CVAT's default) only says the image belongs to the dataset.
fn read_lists(dir: &Path) -> Result<(SplitsFile, Vec<(PathBuf, String)>), DatasetError> {
    let mut splits = SplitsFile::default();
    let mut unplaced = Vec::new();
    for file in list_files(dir, |p| p.extension().is_some_and(|e| e == "txt"))? {
        let text = std::fs::read_to_string(&file).map_err(|e| DatasetError::io(&file, e))?;
        // VOC's main lists carry a second column ("2008_000002  1"): the name comes first.
        let names = text.lines().filter_map(|l| l.split_whitespace().next());
        let names: Vec<String> = names.map(str::to_string).collect();
        match stem(&file).as_str() {
            "train" => splits.train.extend(names),
            "val" => splits.val.extend(names),
            "test" => splits.test.extend(names),
            _ => unplaced.extend(names.into_iter().map(|n| (file.clone(), n))),
        }
    }
    Ok((splits, unplaced))
}

pub fn scan(root: &Path) -> Result<DatasetIndex, DatasetError> {
    let labelmap = root.join(LABELMAP);
    let classes = if labelmap.is_file() {
        read_labelmap(&labelmap)?
    } else {
        ClassTable::from_pairs(
            VOC_CLASSES
                .iter()
                .enumerate()
                .map(|(i, n)| (*n, voc_color(i as u8))),
        )
    };
    let mut problems = Vec::new();
    let images: HashMap<String, PathBuf> = list_images(&root.join("JPEGImages"))?
        .into_iter()
        .map(|p| (stem(&p), p))
        .collect();
    let masks: HashMap<String, PathBuf> =
        list_files(&root.join("SegmentationClass"), image_io::is_image)?
            .into_iter()
            .map(|p| (stem(&p), p))
            .collect();
    let lists_dir = root.join("ImageSets/Segmentation");
    let (splits, unplaced) = read_lists(&lists_dir)?;
    let has_lists = !splits.train.is_empty()
        || !splits.val.is_empty()
        || !splits.test.is_empty()
        || !unplaced.is_empty();

    let mut names: Vec<String> = if has_lists {
        let listed = splits.lists().into_iter();
        let listed = listed.flat_map(|(_, names)| names.iter().cloned());
        let listed = listed.chain(unplaced.iter().map(|(_, n)| n.clone()));
        listed.chain(masks.keys().cloned()).collect()
    } else {
        images.keys().cloned().collect()
    };
    names.sort();
    names.dedup();
    for (file, name) in unplaced.iter() {
        if !images.contains_key(name) {
            problems.push(Problem::new(
                file,
                format!("lists {name:?}, which has no image in JPEGImages/"),
            ));
        }
    }
    for (split, listed) in splits.lists() {
        for name in listed.iter().filter(|n| !images.contains_key(*n)) {
            problems.push(Problem::new(
                lists_dir.join(format!("{split}.txt")),
                format!("lists {name:?}, which has no image in JPEGImages/"),
            ));
        }
    }
    let conflicts = splits.conflicts();
    for (name, in_splits) in &conflicts {
        let in_splits: Vec<&str> = in_splits.iter().map(|s| s.as_str()).collect();
        problems.push(Problem::new(
            &lists_dir,
            format!(
                "{name:?} is listed in {}: an image belongs to one split; it is left out",
                in_splits.join(" and ")
            ),
        ));
    }
    let lookup = splits.lookup();
    let mut samples = Vec::new();
    for name in names {
        if conflicts.contains_key(name.as_str()) {
            continue;
        }
        let Some(image) = images.get(&name) else {
            if let Some(mask) = masks.get(&name) {
                problems.push(Problem::new(mask, "mask has no image in JPEGImages/"));
            }
            continue;
        };
        samples.push(Sample {
            label: masks.get(&name).cloned(),
            split: lookup.get(name.as_str()).copied().unwrap_or(Split::Train),
            image: image.clone(),
            name,
        });
    }
    split::assign_rest_by_ratio(&mut samples, |s| lookup.contains_key(s.name.as_str()));
    Ok(DatasetIndex {
        root: root.to_path_buf(),
        format: Format::Voc,
        encoding: palette_encoding(&classes),
        classes,
        samples,
        problems,
    })
}

/// Writes the job as VOC: images copied into `JPEGImages/`, palette masks (index = class id,
/// the class colours as the palette, 255 = void), `labelmap.txt` in id order so that CVAT imports
/// the folder as "Segmentation mask 1.1", and the split lists.
pub fn write(job: &Job) -> Result<Written, ConvertError> {
    let out = job.out;
    let classes = &job.index.classes;
    let mut palette: Vec<[u8; 3]> = (0..=255u8).map(voc_color).collect();
    for class in classes.iter() {
        palette[class.id as usize] = class.color;
    }
    palette[IGNORE as usize] = VOID_COLOR;
    image_io::write_atomic(&out.join(LABELMAP), labelmap_text(classes).as_bytes())?;
    let images = out.join("JPEGImages");
    let masks_dir = out.join("SegmentationClass");
    let written = job.each(|sample, mask| {
        job.copy_image(sample, &images)?;
        let Some(mask) = mask else { return Ok(0) };
        let file = masks_dir.join(format!("{}.png", sample.name));
        image_io::write_palette_png(&file, &mask.to_gray_image(), &palette)?;
        Ok(1)
    })?;
    let lists = out.join("ImageSets/Segmentation");
    let mut by_split: HashMap<Split, Vec<&str>> = HashMap::new();
    for sample in &job.samples {
        by_split.entry(sample.split).or_default().push(&sample.name);
    }
    let text = |names: &[&str]| names.iter().map(|n| format!("{n}\n")).collect::<String>();
    for split in Split::ALL {
        let names = by_split.get(&split).map(Vec::as_slice).unwrap_or_default();
        image_io::write_atomic(&lists.join(format!("{split}.txt")), text(names).as_bytes())?;
    }
    let mut trainval: Vec<&str> = by_split.get(&Split::Train).cloned().unwrap_or_default();
    trainval.extend(by_split.get(&Split::Val).cloned().unwrap_or_default());
    image_io::write_atomic(&lists.join("trainval.txt"), text(&trainval).as_bytes())?;
    Ok(Written::masks(&written))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn voc_colour_map_matches_the_devkit() {
        // VOCdevkit's labelcolormap: background, aeroplane, bicycle, ..., person (15).
        assert_eq!(voc_color(0), [0, 0, 0]);
        assert_eq!(voc_color(1), [128, 0, 0]);
        assert_eq!(voc_color(2), [0, 128, 0]);
        assert_eq!(voc_color(3), [128, 128, 0]);
        assert_eq!(voc_color(15), [192, 128, 128]);
        assert_eq!(voc_color(20), [0, 64, 128]);
        assert_eq!(voc_color(255), VOID_COLOR);
    }

    #[test]
    fn labelmap_round_trips_and_names_bad_lines() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join(LABELMAP);
        let classes =
            ClassTable::from_pairs([("road", [128, 64, 128]), ("lane marking", [255, 255, 255])]);
        std::fs::write(&file, labelmap_text(&classes)).unwrap();
        assert_eq!(read_labelmap(&file).unwrap(), classes);
        std::fs::write(&file, "# label:color_rgb:parts:actions\nroad:1,2::\n").unwrap();
        let err = read_labelmap(&file).unwrap_err().to_string();
        assert!(
            err.contains("labelmap.txt") && err.contains("line 2"),
            "{err}"
        );
        std::fs::write(&file, "a:1,2,3::\nb:1,2,3::\n").unwrap();
        let err = read_labelmap(&file).unwrap_err().to_string();
        assert!(err.contains("own colour"), "{err}");
    }

    #[test]
    fn palette_masks_read_as_indices_and_rgb_masks_as_colours() {
        let dir = tempfile::tempdir().unwrap();
        let classes = ClassTable::from_pairs([("a", [10, 0, 0]), ("b", [0, 20, 0])]);
        let enc = palette_encoding(&classes);
        let file = dir.path().join("m.png");
        let indices = image::GrayImage::from_raw(3, 1, vec![1, 255, 0]).unwrap();
        image_io::write_palette_png(&file, &indices, &[[10, 0, 0], [0, 20, 0]]).unwrap();
        assert_eq!(enc.decode(&file).unwrap().data, vec![1, IGNORE, 0]);
        let mut rgb = image::RgbImage::new(2, 1);
        rgb.put_pixel(0, 0, image::Rgb([0, 20, 0]));
        rgb.put_pixel(1, 0, image::Rgb(VOID_COLOR));
        image_io::write_rgb_png(&file, &rgb).unwrap();
        assert_eq!(enc.decode(&file).unwrap().data, vec![1, IGNORE]);
        rgb.put_pixel(1, 0, image::Rgb([9, 9, 9]));
        image_io::write_rgb_png(&file, &rgb).unwrap();
        let err = enc.decode(&file).unwrap_err().to_string();
        assert!(err.contains("m.png") && err.contains("9, 9, 9"), "{err}");
        let bad = image::GrayImage::from_raw(1, 1, vec![7]).unwrap();
        image_io::write_palette_png(&file, &bad, &[[0, 0, 0]]).unwrap();
        let err = enc.decode(&file).unwrap_err().to_string();
        assert!(
            err.contains("unknown class id") && err.contains('7'),
            "{err}"
        );
    }

    #[test]
    fn sub_byte_palettes_unpack() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("p.png");
        let mut encoder = png::Encoder::new(std::fs::File::create(&file).unwrap(), 5, 1);
        encoder.set_color(png::ColorType::Indexed);
        encoder.set_depth(png::BitDepth::Two);
        encoder.set_palette(vec![0u8; 12]);
        let mut writer = encoder.write_header().unwrap();
        // 0,1,2,3 then 1: 00 01 10 11 | 01 000000
        writer
            .write_image_data(&[0b0001_1011, 0b0100_0000])
            .unwrap();
        drop(writer);
        let image_io::LabelImage::Indexed(img) = image_io::read_label_image(&file).unwrap() else {
            panic!("palette read as colour");
        };
        assert_eq!(img.into_raw(), vec![0, 1, 2, 3, 1]);
    }
}
