//! labelme: one json of shapes per image, beside it or in a folder of its own:
//!
//! ```text
//! <name>.jpg
//! <name>.json     {"shapes": [{"label": "road", "points": [[x, y], ...],
//!                   "shape_type": "polygon"}, ...],
//!                  "imagePath": "<name>.jpg", "imageHeight": h, "imageWidth": w}
//! labels.txt      optional: __ignore__, then one class per line (_background_ is class 0)
//! ```
//!
//! Jsons are looked for in the folder and its immediate sub-folders; `imagePath` is resolved
//! beside the json and must stay inside the dataset. Shapes are rasterised in file order, later
//! ones overwriting earlier (as labelme's own converter does): polygon, rectangle, circle
//! (centre and a point on the edge) and mask (a base64 PNG crop at its top-left point); lines,
//! line strips and points are not regions and are skipped. A pixel is inside a shape when its
//! centre is (COCO's convention; labelme's own converter also draws the outline, so its masks
//! are up to a pixel larger along each edge). Label `__ignore__` paints ignore. Classes come
//! from `labels.txt` when there is one, otherwise from the labels met, in file order. Images
//! without a json are unlabelled; a `splits.json` (as native) places images in splits,
//! others get the seeded ratio.
//!
//! `convert --to labelme` traces each mask into polygons along pixel edges
//! ([`crate::core::dataset::shapes::trace`]), outer regions before what lies in their holes, so
//! that reading the folder back gives the mask exactly.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use base64::Engine;
use serde::{Deserialize, Serialize};

use super::{list_dirs, list_files, list_images, read_json, stem};
use crate::core::dataset::convert::{ConvertError, Job, Written};
use crate::core::dataset::image_io::{self, MAX_PIXELS};
use crate::core::dataset::labels::Mask;
use crate::core::dataset::shapes::polygon::{fill_circle, fill_polygon, fill_rectangle};
use crate::core::dataset::shapes::trace::trace;
use crate::core::dataset::split::{self, SplitsFile};
use crate::core::dataset::{
    ClassTable, DatasetError, DatasetIndex, Format, IGNORE, LabelEncoding, Problem, Sample, Split,
};

/// A labelme json is one image's shapes; an embedded image (`imageData`) may make it large.
pub const MAX_LABELME_BYTES: u64 = 256 << 20;

const IGNORE_LABEL: &str = "__ignore__";
const LABELS_TXT: &str = "labels.txt";

#[derive(Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
struct LabelmeFile {
    #[serde(default)]
    version: String,
    #[serde(default)]
    flags: serde_json::Map<String, serde_json::Value>,
    shapes: Vec<Shape>,
    #[serde(default)]
    image_path: Option<String>,
    /// Read past, never kept: the whole image again, in base64.
    #[serde(default, skip_deserializing)]
    image_data: Option<String>,
    #[serde(default)]
    image_height: Option<u32>,
    #[serde(default)]
    image_width: Option<u32>,
}

#[derive(Deserialize, Serialize)]
struct Shape {
    label: String,
    points: Vec<[f64; 2]>,
    #[serde(default)]
    shape_type: Option<String>,
    #[serde(default)]
    group_id: Option<i64>,
    #[serde(default)]
    flags: serde_json::Map<String, serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    mask: Option<String>,
}

/// Only what finding the image needs: the rest waits for the decode.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Head {
    shapes: Vec<HeadShape>,
    #[serde(default)]
    image_path: Option<String>,
}

#[derive(Deserialize)]
struct HeadShape {
    label: String,
}

/// The class of each label.
#[derive(Debug, PartialEq)]
pub struct LabelmeClasses {
    by_label: HashMap<String, u8>,
    /// Where the classes came from, for "unknown label" problems.
    source: String,
}

/// A folder holding a labelme json, or with sub-folders holding them.
pub fn detect(root: &Path) -> bool {
    let looks_like = |dir: &Path| {
        list_files(dir, is_json)
            .unwrap_or_default()
            .iter()
            .take(3)
            .any(|f| read_json::<Head>(f, MAX_LABELME_BYTES).is_ok())
    };
    looks_like(root)
        || list_dirs(root)
            .unwrap_or_default()
            .iter()
            .any(|d| looks_like(d))
}

fn is_json(path: &Path) -> bool {
    path.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("json"))
}

/// `labels.txt`: `__ignore__` is ignore, every other line a class in order.
fn read_labels_txt(file: &Path) -> Result<ClassTable, DatasetError> {
    let text = std::fs::read_to_string(file).map_err(|e| DatasetError::io(file, e))?;
    let names: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && *l != IGNORE_LABEL)
        .collect();
    let classes = table(&names);
    classes.validate(file)?;
    Ok(classes)
}

fn table(names: &[&str]) -> ClassTable {
    ClassTable::from_pairs(
        names
            .iter()
            .enumerate()
            .map(|(i, n)| (*n, super::voc::voc_color((i % 254 + 1) as u8))),
    )
}

pub fn scan(root: &Path) -> Result<DatasetIndex, DatasetError> {
    let mut problems = Vec::new();
    let mut dirs = vec![root.to_path_buf()];
    dirs.extend(list_dirs(root)?);
    let canonical_root = root.canonicalize().map_err(|e| DatasetError::io(root, e))?;
    // image -> json
    let mut labelled: HashMap<PathBuf, PathBuf> = HashMap::new();
    let mut met: Vec<String> = Vec::new();
    let mut images: BTreeSet<PathBuf> = BTreeSet::new();
    for dir in &dirs {
        images.extend(list_images(dir)?);
        for json in list_files(dir, is_json)? {
            if json.file_name().is_some_and(|n| n == "splits.json") {
                continue;
            }
            let head = match read_json::<Head>(&json, MAX_LABELME_BYTES) {
                Ok(head) => head,
                Err(problem) => {
                    problems.push(problem);
                    continue;
                }
            };
            let Some(image) = image_of(&json, head.image_path.as_deref(), &canonical_root)
                .map_err(|e| problems.push(Problem::new(&json, e)))
                .ok()
            else {
                continue;
            };
            if let Some(first) = labelled.get(&image) {
                problems.push(Problem::new(
                    &json,
                    format!(
                        "{} is labelled by {} already; this json is skipped",
                        image.display(),
                        first.display()
                    ),
                ));
                continue;
            }
            for shape in head.shapes {
                if shape.label != IGNORE_LABEL && !met.contains(&shape.label) {
                    met.push(shape.label);
                }
            }
            images.insert(image.clone());
            labelled.insert(image, json);
        }
    }
    let labels_txt = root.join(LABELS_TXT);
    let (classes, source) = if labels_txt.is_file() {
        (
            read_labels_txt(&labels_txt)?,
            labels_txt.display().to_string(),
        )
    } else {
        let names: Vec<&str> = met.iter().map(String::as_str).collect();
        let classes = table(&names);
        if classes.is_empty() {
            return Err(DatasetError::MissingClassTable { file: labels_txt });
        }
        classes.validate(root)?;
        (classes, "the labels of the dataset's jsons".to_string())
    };
    let by_label = classes.iter().map(|c| (c.name.clone(), c.id)).collect();

    let mut samples: Vec<Sample> = images
        .into_iter()
        .map(|image| Sample {
            name: stem(&image),
            label: labelled.get(&image).cloned(),
            image,
            split: Split::Train,
        })
        .collect();
    let splits_file = root.join("splits.json");
    let lookup = if splits_file.is_file() {
        SplitsFile::read(&splits_file)?
    } else {
        SplitsFile::default()
    };
    let lookup = lookup.lookup();
    for sample in &mut samples {
        if let Some(&split) = lookup.get(sample.name.as_str()) {
            sample.split = split;
        }
    }
    split::assign_rest_by_ratio(&mut samples, |s| lookup.contains_key(s.name.as_str()));
    Ok(DatasetIndex {
        root: root.to_path_buf(),
        format: Format::Labelme,
        encoding: LabelEncoding::Labelme(Arc::new(LabelmeClasses { by_label, source })),
        classes,
        samples,
        problems,
    })
}

/// The image a json labels: its `imagePath` beside it, else the image of the same stem.
fn image_of(json: &Path, image_path: Option<&str>, root: &Path) -> Result<PathBuf, String> {
    let dir = json.parent().unwrap_or(Path::new("."));
    let image = match image_path.filter(|p| !p.is_empty()) {
        // labelme on Windows writes backslashes.
        Some(path) => dir.join(path.replace('\\', "/")),
        None => ["png", "jpg", "jpeg"]
            .iter()
            .map(|ext| json.with_extension(ext))
            .find(|p| p.is_file())
            .ok_or("no imagePath and no image of the same name beside it")?,
    };
    let resolved = image
        .canonicalize()
        .map_err(|e| format!("imagePath {}: {e}", image.display()))?;
    if !resolved.starts_with(root) {
        return Err(format!(
            "imagePath {} is outside the dataset folder",
            image.display()
        ));
    }
    if !image_io::is_image(&image) {
        return Err(format!("imagePath {} is not a png or jpg", image.display()));
    }
    Ok(normalise(&image))
}

/// `a/b/../c.jpg` -> `a/c.jpg`, so an image found by listing and by `imagePath` is one image.
fn normalise(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for part in path.components() {
        match part {
            std::path::Component::ParentDir if out.file_name().is_some() => {
                out.pop();
            }
            std::path::Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

/// Rasterises one json's shapes.
pub fn decode(classes: &LabelmeClasses, json: &Path) -> Result<Mask, Problem> {
    let file: LabelmeFile = read_json(json, MAX_LABELME_BYTES)?;
    let (Some(width), Some(height)) = (file.image_width, file.image_height) else {
        return Err(Problem::new(json, "imageWidth or imageHeight is missing"));
    };
    if width == 0 || height == 0 || width as u64 * height as u64 > MAX_PIXELS {
        return Err(Problem::new(
            json,
            format!("image size {width}x{height} is empty or larger than roadseg reads"),
        ));
    }
    let mut mask = Mask::unlabelled(width, height);
    for (n, shape) in file.shapes.iter().enumerate() {
        let problem = |e: String| Problem::new(json, format!("shape {n} ({:?}): {e}", shape.label));
        let class = if shape.label == IGNORE_LABEL {
            IGNORE
        } else {
            *classes
                .by_label
                .get(&shape.label)
                .ok_or_else(|| problem(format!("unknown label, not in {}", classes.source)))?
        };
        let near = |v: f64, side: u32| (-1.0..=side as f64 + 1.0).contains(&v);
        if !shape
            .points
            .iter()
            .all(|p| near(p[0], width) && near(p[1], height))
        {
            return Err(problem(format!(
                "a point lies outside the {width}x{height} image"
            )));
        }
        let set = |x: u32, y: u32| mask.set(x, y, class);
        let kind = shape.shape_type.as_deref().unwrap_or("polygon");
        let filled = match (kind, shape.points.as_slice()) {
            ("polygon", points) if points.len() >= 3 => fill_polygon(points, width, height, set),
            ("rectangle", [a, b]) => fill_rectangle(*a, *b, width, height, set),
            ("circle", [centre, edge]) => fill_circle(*centre, *edge, width, height, set),
            ("mask", [a, _]) => {
                paste_mask(shape.mask.as_deref(), *a, &mut mask, class, json).map_err(&problem)?;
                Ok(())
            }
            ("line" | "linestrip" | "point" | "points", _) => Ok(()),
            ("polygon" | "rectangle" | "circle" | "mask", points) => {
                return Err(problem(format!("a {kind} with {} points", points.len())));
            }
            (other, _) => return Err(problem(format!("unknown shape_type {other:?}"))),
        };
        filled.map_err(|e| problem(e.to_string()))?;
    }
    Ok(mask)
}

/// labelme's mask shape: a binary PNG crop whose top-left pixel is the first point.
fn paste_mask(
    base64: Option<&str>,
    at: [f64; 2],
    mask: &mut Mask,
    class: u8,
    json: &Path,
) -> Result<(), String> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(base64.ok_or("a mask shape without its mask")?)
        .map_err(|e| format!("the mask is not base64: {e}"))?;
    let crop = image_io::read_gray_bytes(&bytes, json).map_err(|p| p.error)?;
    let (x0, y0) = (at[0].round().max(0.0) as u32, at[1].round().max(0.0) as u32);
    for (x, y, v) in crop.enumerate_pixels() {
        let (x, y) = (x0 + x, y0 + y);
        if v.0[0] != 0 && x < mask.width && y < mask.height {
            mask.set(x, y, class);
        }
    }
    Ok(())
}

/// Writes the job as labelme: each image copied to the folder with its json of traced
/// polygons beside it, `labels.txt`, and `splits.json` so that a round trip keeps the splits.
pub fn write(job: &Job) -> Result<Written, ConvertError> {
    let out = job.out;
    let classes = &job.index.classes;
    let mut labels = format!("{IGNORE_LABEL}\n");
    for class in classes.iter() {
        labels.push_str(&class.name);
        labels.push('\n');
    }
    image_io::write_atomic(&out.join(LABELS_TXT), labels.as_bytes())?;
    let kept: Vec<Sample> = job.samples.iter().map(|s| (*s).clone()).collect();
    SplitsFile::from_samples(&kept).write(&out.join("splits.json"))?;
    let written = job.each(|sample, mask| {
        let image = job.copy_image(sample, out)?;
        let Some(mask) = mask else { return Ok(0) };
        let shapes = trace(&mask)
            .into_iter()
            .map(|outline| Shape {
                label: match outline.class {
                    IGNORE => IGNORE_LABEL.to_string(),
                    id => classes.0[id as usize].name.clone(),
                },
                points: outline.points,
                shape_type: Some("polygon".into()),
                group_id: None,
                flags: Default::default(),
                mask: None,
            })
            .collect();
        let file = LabelmeFile {
            version: "5.5.0".into(),
            flags: Default::default(),
            shapes,
            image_path: Some(image),
            image_data: None,
            image_height: Some(mask.height),
            image_width: Some(mask.width),
        };
        let json = serde_json::to_vec_pretty(&file).expect("labelme json serialises");
        image_io::write_atomic(&out.join(format!("{}.json", sample.name)), &json)?;
        Ok(1)
    })?;
    Ok(Written::masks(&written))
}
