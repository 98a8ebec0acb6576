//! Mapillary Vistas v1.2 and v2.0:
//!
//! ```text
//! config_v1.2.json / config_v2.0.json     {"labels": [{"name": "construction--flat--road",
//!                                           "color": [128, 64, 128], ...}, ...]}
//! {training,validation,testing}/images/<name>.jpg
//! {split}/labels/<name>.png               v1.2
//! {split}/v2.0/labels/<name>.png          v2.0
//! ```
//!
//! Label PNGs are palette images whose index is the label's position in the config (RGB copies
//! in the config's colours read too). Classes are the config's labels under their own names,
//! except the unlabeled one (`void--unlabeled`, v1.2's "unlabeled"), which is ignore. v2.0 is read
//! when its config and labels are there, v1.2 otherwise.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;

use super::{MAX_JSON_BYTES, list_images, read_json, stem};
use crate::core::dataset::{
    ClassInfo, ClassTable, DatasetError, DatasetIndex, Format, IGNORE, LabelEncoding, Problem,
    Sample, Split,
};

#[derive(Deserialize)]
struct Config {
    labels: Vec<Label>,
}

#[derive(Deserialize)]
struct Label {
    name: String,
    color: [u8; 3],
}

const SPLITS: [(&str, Split); 3] = [
    ("training", Split::Train),
    ("validation", Split::Val),
    ("testing", Split::Test),
];

/// The version present: its config file and where its labels live under a split folder.
fn version(root: &Path) -> (PathBuf, &'static str) {
    let v2 = root.join("config_v2.0.json");
    let v2_labels = SPLITS
        .iter()
        .any(|(split, _)| root.join(split).join("v2.0/labels").is_dir());
    if v2.is_file() && (v2_labels || !root.join("config_v1.2.json").is_file()) {
        (v2, "v2.0/labels")
    } else {
        (root.join("config_v1.2.json"), "labels")
    }
}

fn is_unlabeled(name: &str) -> bool {
    name.rsplit("--")
        .next()
        .is_some_and(|n| n.eq_ignore_ascii_case("unlabeled"))
}

pub fn scan(root: &Path) -> Result<DatasetIndex, DatasetError> {
    let (config_file, labels_dir) = version(root);
    if !config_file.is_file() {
        return Err(DatasetError::MissingClassTable { file: config_file });
    }
    let config: Config =
        read_json(&config_file, MAX_JSON_BYTES).map_err(|p| DatasetError::BadClassTable {
            file: config_file.clone(),
            reason: p.error,
        })?;
    if config.labels.len() > 256 {
        return Err(DatasetError::BadClassTable {
            file: config_file,
            reason: format!(
                "{} labels; a palette PNG holds at most 256",
                config.labels.len()
            ),
        });
    }
    let mut classes = ClassTable::default();
    let mut lut = [None; 256];
    let mut colors = Vec::new();
    for (position, label) in config.labels.iter().enumerate() {
        let id = if is_unlabeled(&label.name) {
            IGNORE
        } else {
            let id = classes.len().min(IGNORE as usize - 1) as u8;
            classes.0.push(ClassInfo {
                id,
                name: label.name.clone(),
                color: label.color,
            });
            id
        };
        lut[position] = Some(id);
        colors.push((label.color, id));
    }
    classes.validate(&config_file)?;

    let mut samples = Vec::new();
    let mut problems = Vec::new();
    for (folder, split) in SPLITS {
        let labels = root.join(folder).join(labels_dir);
        for image in list_images(&root.join(folder).join("images"))? {
            let name = stem(&image);
            let label = labels.join(format!("{name}.png"));
            let label = if label.is_file() {
                Some(label)
            } else {
                // Vistas' testing split is published without labels.
                if split != Split::Test {
                    problems.push(Problem::new(
                        &image,
                        format!("no label (expected {})", label.display()),
                    ));
                }
                None
            };
            samples.push(Sample {
                name,
                image,
                label,
                split,
            });
        }
    }
    Ok(DatasetIndex {
        root: root.to_path_buf(),
        format: Format::Vistas,
        encoding: LabelEncoding::Palette {
            lut: Arc::new(lut),
            colors: Some(Arc::new(colors)),
        },
        classes,
        samples,
        problems,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unlabeled_is_ignore_and_positions_map_past_it() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::write(
            root.join("config_v2.0.json"),
            r#"{"labels": [
                {"name": "construction--flat--road", "color": [128, 64, 128], "readable": "Road"},
                {"name": "void--unlabeled", "color": [0, 0, 0]},
                {"name": "marking--continuous--solid", "color": [255, 255, 255]}]}"#,
        )
        .unwrap();
        std::fs::create_dir_all(root.join("training/images")).unwrap();
        std::fs::create_dir_all(root.join("training/v2.0/labels")).unwrap();
        image::RgbImage::new(3, 1)
            .save(root.join("training/images/a.jpg"))
            .unwrap();
        let label = root.join("training/v2.0/labels/a.png");
        let indices = image::GrayImage::from_raw(3, 1, vec![0, 1, 2]).unwrap();
        crate::core::dataset::image_io::write_palette_png(&label, &indices, &[[0; 3]; 3]).unwrap();
        let index = DatasetIndex::open(root, None).unwrap();
        assert_eq!(index.format, Format::Vistas);
        assert_eq!(
            index.classes.names(),
            ["construction--flat--road", "marking--continuous--solid"]
        );
        let mask = index.load_mask(&index.samples[0]).unwrap().unwrap();
        assert_eq!(mask.data, vec![0, IGNORE, 1]);
        let indices = image::GrayImage::from_raw(1, 1, vec![3]).unwrap();
        crate::core::dataset::image_io::write_palette_png(&label, &indices, &[[0; 3]; 4]).unwrap();
        let err = index.load_mask(&index.samples[0]).unwrap_err().to_string();
        assert!(
            err.contains("a.png") && err.contains("unknown class id"),
            "{err}"
        );
    }
}
