//! CamVid with RGB colour labels named `<stem>_L.png`.
//!
//! - The common Kaggle copy: `train/ val/ test/` images, `train_labels/ val_labels/ test_labels/`
//!   and `class_dict.csv` (`name,r,g,b`).
//! - The original release: `label_colors.txt` (`R G B<TAB>Name`), labels anywhere below the
//!   root, no split folders (seeded ratio split).
//!
//! Train classes are the table rows in order, except a row named `Void` (any case): ignore.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::{list_dirs, list_images, stem};
use crate::core::dataset::split::{self, DEFAULT_SPLIT_SEED, DEFAULT_TRAIN_FRACTION};
use crate::core::dataset::{
    ClassTable, DatasetError, DatasetIndex, Format, IGNORE, LabelEncoding, Problem, Sample, Split,
};

pub fn scan(root: &Path) -> Result<DatasetIndex, DatasetError> {
    let split_folders = Split::ALL.iter().any(|s| root.join(s.as_str()).is_dir());
    if split_folders || root.join("class_dict.csv").exists() {
        scan_kaggle(root)
    } else {
        scan_original(root)
    }
}

/// Colour table rows: `(name, colour)`, in file order.
type Rows = Vec<(String, [u8; 3])>;

/// Splits rows into train classes and the colours that mean ignore (`Void`); the classes must
/// make a valid table (named, unique, fewer than 255).
fn classes_from_rows(file: &Path, rows: Rows) -> Result<(ClassTable, Vec<[u8; 3]>), DatasetError> {
    let (void, train): (Rows, Rows) = rows
        .into_iter()
        .partition(|(name, _)| name.eq_ignore_ascii_case("void"));
    if train.len() >= IGNORE as usize {
        return Err(DatasetError::BadClassTable {
            file: file.to_path_buf(),
            reason: format!("{} classes; at most {}", train.len(), IGNORE - 1),
        });
    }
    let classes = ClassTable::from_pairs(train.iter().map(|(n, c)| (n.as_str(), *c)));
    classes.validate(file)?;
    Ok((classes, void.into_iter().map(|(_, c)| c).collect()))
}

fn read_table(file: &Path) -> Result<String, DatasetError> {
    match std::fs::read_to_string(file) {
        Ok(text) => Ok(text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            Err(DatasetError::MissingClassTable {
                file: file.to_path_buf(),
            })
        }
        Err(e) => Err(DatasetError::io(file, e)),
    }
}

fn parse_channel(file: &Path, line: usize, text: &str) -> Result<u8, DatasetError> {
    text.trim()
        .parse()
        .map_err(|_| DatasetError::BadClassTable {
            file: file.to_path_buf(),
            reason: format!("line {line}: {text:?} is not a colour value 0..255"),
        })
}

/// `class_dict.csv`: header `name,r,g,b`, then one row per class.
pub fn read_class_dict(file: &Path) -> Result<Rows, DatasetError> {
    let text = read_table(file)?;
    let mut rows = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || (i == 0 && line.to_ascii_lowercase().starts_with("name")) {
            continue;
        }
        let fields: Vec<&str> = line.split(',').collect();
        let [name, r, g, b] = fields.as_slice() else {
            return Err(DatasetError::BadClassTable {
                file: file.to_path_buf(),
                reason: format!("line {}: expected name,r,g,b, found {line:?}", i + 1),
            });
        };
        let color = [
            parse_channel(file, i + 1, r)?,
            parse_channel(file, i + 1, g)?,
            parse_channel(file, i + 1, b)?,
        ];
        rows.push((name.trim().to_string(), color));
    }
    if rows.is_empty() {
        return Err(DatasetError::BadClassTable {
            file: file.to_path_buf(),
            reason: "no classes".into(),
        });
    }
    Ok(rows)
}

/// `label_colors.txt`: `R G B<TAB>Name` per line.
pub fn read_label_colors(file: &Path) -> Result<Rows, DatasetError> {
    let text = read_table(file)?;
    let mut rows = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let mut parts = line.split_whitespace();
        let (Some(r), Some(g), Some(b)) = (parts.next(), parts.next(), parts.next()) else {
            if line.trim().is_empty() {
                continue;
            }
            return Err(DatasetError::BadClassTable {
                file: file.to_path_buf(),
                reason: format!("line {}: expected R G B Name, found {line:?}", i + 1),
            });
        };
        let name = parts.collect::<Vec<_>>().join(" ");
        let color = [
            parse_channel(file, i + 1, r)?,
            parse_channel(file, i + 1, g)?,
            parse_channel(file, i + 1, b)?,
        ];
        rows.push((name, color));
    }
    Ok(rows)
}

fn label_name(image: &Path) -> String {
    format!("{}_L.png", stem(image))
}

fn scan_kaggle(root: &Path) -> Result<DatasetIndex, DatasetError> {
    let file = root.join("class_dict.csv");
    let (classes, void) = classes_from_rows(&file, read_class_dict(&file)?)?;
    let mut samples = Vec::new();
    let mut problems = Vec::new();
    for split in Split::ALL {
        let images_dir = root.join(split.as_str());
        let labels_dir = root.join(format!("{}_labels", split.as_str()));
        for image in list_images(&images_dir)? {
            let label = labels_dir.join(label_name(&image));
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
                name: stem(&image),
                image,
                label,
                split,
            });
        }
        for label in list_images(&labels_dir)? {
            let image_stem = stem(&label).trim_end_matches("_L").to_string();
            let has_image = samples
                .iter()
                .any(|s| s.split == split && s.name == image_stem);
            if !has_image {
                problems.push(Problem::new(
                    &label,
                    format!("label has no image in {}", images_dir.display()),
                ));
            }
        }
    }
    Ok(DatasetIndex {
        root: root.to_path_buf(),
        format: Format::Camvid,
        encoding: LabelEncoding::colors(&classes, &void),
        classes,
        samples,
        problems,
    })
}

/// All image files up to three levels below `root`.
fn walk_images(root: &Path, depth: usize, out: &mut Vec<PathBuf>) -> Result<(), DatasetError> {
    out.extend(list_images(root)?);
    if depth > 0 {
        for dir in list_dirs(root)? {
            walk_images(&dir, depth - 1, out)?;
        }
    }
    Ok(())
}

fn scan_original(root: &Path) -> Result<DatasetIndex, DatasetError> {
    let file = root.join("label_colors.txt");
    let (classes, void) = classes_from_rows(&file, read_label_colors(&file)?)?;
    let mut files = Vec::new();
    walk_images(root, 3, &mut files)?;
    let (labels, images): (Vec<PathBuf>, Vec<PathBuf>) =
        files.into_iter().partition(|p| stem(p).ends_with("_L"));
    let mut by_stem: HashMap<String, PathBuf> = labels
        .into_iter()
        .map(|l| (stem(&l).trim_end_matches("_L").to_string(), l))
        .collect();
    let mut samples = Vec::new();
    let mut problems = Vec::new();
    for image in images {
        let name = stem(&image);
        let label = by_stem.remove(&name);
        if label.is_none() {
            problems.push(Problem::new(
                &image,
                format!("no colour label {} found", label_name(&image)),
            ));
        }
        samples.push(Sample {
            name,
            image,
            label,
            split: Split::Train,
        });
    }
    let mut orphans: Vec<_> = by_stem.into_values().collect();
    orphans.sort();
    problems.extend(
        orphans
            .into_iter()
            .map(|l| Problem::new(l, "label has no image")),
    );
    split::assign_by_ratio(&mut samples, DEFAULT_SPLIT_SEED, DEFAULT_TRAIN_FRACTION);
    Ok(DatasetIndex {
        root: root.to_path_buf(),
        format: Format::Camvid,
        encoding: LabelEncoding::colors(&classes, &void),
        classes,
        samples,
        problems,
    })
}
