//! COCO annotations as semantic masks, in the three forms people use:
//!
//! ```text
//! annotations/panoptic_<split>.json       images, categories, annotations[] with file_name and
//! annotations/panoptic_<split>/<x>.png    segments_info; PNG id = R + 256·G + 256²·B, 0 = void
//! annotations/instances_<split>.json      images, categories, annotations[] with segmentation:
//! annotations/stuff_<split>.json            RLE {"size": [h, w], "counts": "..." or [runs]}
//!                                           (column-major, starting with background) or
//!                                           polygons [[x0, y0, x1, y1, ...], ...]
//! <split>/<file_name>, images/<split>/<file_name>, images/<file_name> or <file_name>
//! ```
//!
//! The split comes from the json's name (`*train*`, `*val*`, `*test*`; others get the seeded
//! ratio). Where a split has a panoptic json it alone is read; otherwise its instances and stuff
//! jsons are merged (COCO-Stuff's things and stuff). Categories from every json read make one
//! class table, in the order they are met (COCO lists them by id); one id under two names is an
//! error. Masks are rasterised in file order, later annotations overwriting earlier ones (so a
//! crowd region listed last wins, as in COCO-Stuff's own conversion); pixels no annotation
//! covers are ignore, and an image without annotations is unlabelled. Polygons use COCO's
//! convention: a pixel is inside when its centre is (see [`crate::core::dataset::shapes`]).
//!
//! Every annotation is held in memory after the scan (a road dataset's few thousand images are
//! a few MB; COCO's 118k train images about 1 GB): labels are rasterised on demand, and a label
//! "path" is the key `<json>#<image id>` (the panoptic PNG's own path for panoptic).
//!
//! `convert --to coco` writes both forms: `annotations/panoptic_<split>.json` with its PNGs (one
//! segment per class and image, segment id = class id + 1) and `annotations/instances_<split>.json`
//! with the same masks as compressed RLE (`iscrowd` 0), images under `images/<split>/`.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::{MAX_JSON_BYTES, list_files, read_json, stem};
use crate::core::dataset::convert::{ConvertError, Job, Written};
use crate::core::dataset::image_io::{self, MAX_PIXELS};
use crate::core::dataset::labels::Mask;
use crate::core::dataset::shapes::polygon::fill_polygon;
use crate::core::dataset::shapes::rle::Rle;
use crate::core::dataset::split::{self, Split};
use crate::core::dataset::{
    ClassInfo, ClassTable, DatasetError, DatasetIndex, Format, IGNORE, Problem, Sample,
};

// ---- The json, as far as masks need it -------------------------------------------------------

#[derive(Deserialize, Serialize)]
struct CocoFile {
    #[serde(default)]
    images: Vec<ImageEntry>,
    #[serde(default)]
    categories: Vec<Category>,
    #[serde(default)]
    annotations: Vec<Annotation>,
}

#[derive(Clone, Deserialize, Serialize)]
struct ImageEntry {
    id: u64,
    file_name: String,
    width: u32,
    height: u32,
}

#[derive(Clone, Deserialize, Serialize)]
struct Category {
    id: u64,
    name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    color: Option<[u8; 3]>,
    #[serde(default)]
    supercategory: String,
    #[serde(default)]
    isthing: u8,
}

#[derive(Deserialize, Serialize)]
struct Annotation {
    #[serde(default)]
    id: u64,
    image_id: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    category_id: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    segmentation: Option<Segmentation>,
    /// Panoptic: the PNG under `annotations/panoptic_<split>/`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    file_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    segments_info: Option<Vec<SegmentInfo>>,
    // COCO's own files hold fractional areas and boxes (from polygons).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    area: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    bbox: Option<[f64; 4]>,
    #[serde(default)]
    iscrowd: u8,
}

#[derive(Clone, Deserialize, Serialize)]
#[serde(untagged)]
enum Segmentation {
    Rle { size: [u32; 2], counts: Counts },
    Polygons(Vec<Vec<f64>>),
}

#[derive(Clone, Deserialize, Serialize)]
#[serde(untagged)]
enum Counts {
    Compressed(String),
    Runs(Vec<u64>),
}

#[derive(Clone, Deserialize, Serialize)]
struct SegmentInfo {
    id: u64,
    category_id: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    area: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    bbox: Option<[f64; 4]>,
    #[serde(default)]
    iscrowd: u8,
}

// ---- What the scan keeps ---------------------------------------------------------------------

/// Every labelled image's annotations, by label key.
#[derive(Debug, Default, PartialEq)]
pub struct CocoLabels {
    images: HashMap<PathBuf, ImageLabels>,
}

#[derive(Debug, PartialEq)]
struct ImageLabels {
    /// The json the annotations come from (named in problems).
    json: PathBuf,
    id: u64,
    file_name: String,
    width: u32,
    height: u32,
    kind: Kind,
}

#[derive(Debug, PartialEq)]
enum Kind {
    /// Panoptic: segment id -> train id, or `Err(category id)` for a category no json lists.
    Panoptic(HashMap<u64, Result<u8, u64>>),
    /// (annotation id, train id or the unknown category id, shape), in file order.
    Shapes(Vec<(u64, Result<u8, u64>, Shape)>),
}

#[derive(Debug, PartialEq)]
enum Shape {
    Polygons(Vec<Vec<f64>>),
    Rle { size: [u32; 2], counts: RleCounts },
}

#[derive(Debug, PartialEq)]
enum RleCounts {
    Compressed(String),
    Runs(Vec<u64>),
}

impl From<Segmentation> for Shape {
    fn from(s: Segmentation) -> Self {
        match s {
            Segmentation::Polygons(p) => Shape::Polygons(p),
            Segmentation::Rle { size, counts } => Shape::Rle {
                size,
                counts: match counts {
                    Counts::Compressed(s) => RleCounts::Compressed(s),
                    Counts::Runs(r) => RleCounts::Runs(r),
                },
            },
        }
    }
}

/// `annotations/` holds a json that starts like COCO's (`"images"` or `"categories"` within
/// its first MiB: labelme jsons kept in a folder of that name have neither).
pub fn detect(root: &Path) -> bool {
    use std::io::Read;
    let looks_like = |file: &PathBuf| {
        let mut head = Vec::new();
        let read = std::fs::File::open(file).and_then(|f| f.take(1 << 20).read_to_end(&mut head));
        read.is_ok() && {
            let head = String::from_utf8_lossy(&head);
            head.contains("\"images\"") || head.contains("\"categories\"")
        }
    };
    list_files(&root.join("annotations"), is_json)
        .map(|files| files.iter().any(looks_like))
        .unwrap_or(false)
}

fn is_json(path: &Path) -> bool {
    path.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("json"))
}

fn split_of(json_stem: &str) -> Option<Split> {
    let name = json_stem.to_ascii_lowercase();
    if name.contains("train") {
        Some(Split::Train)
    } else if name.contains("val") {
        Some(Split::Val)
    } else if name.contains("test") {
        Some(Split::Test)
    } else {
        None
    }
}

/// `instances_train2017` -> `train2017`: the image folder COCO names after the split.
fn split_folder(json_stem: &str) -> &str {
    json_stem.rsplit_once('_').map_or(json_stem, |(_, s)| s)
}

/// A distinct colour for categories the json gives none: VOC's colour map past black.
fn default_color(index: usize) -> [u8; 3] {
    super::voc::voc_color((index % 254 + 1) as u8)
}

pub fn scan(root: &Path) -> Result<DatasetIndex, DatasetError> {
    let annotations = root.join("annotations");
    let mut problems = Vec::new();
    let mut files: Vec<(PathBuf, CocoFile)> = Vec::new();
    for json in list_files(&annotations, is_json)? {
        match read_json::<CocoFile>(&json, MAX_JSON_BYTES) {
            Ok(file) => files.push((json, file)),
            Err(problem) => problems.push(problem),
        }
    }
    let is_panoptic = |file: &CocoFile| {
        file.annotations.iter().any(|a| a.segments_info.is_some())
            || (file.annotations.is_empty() && file.categories.iter().any(|c| c.color.is_some()))
    };
    // A split with a panoptic json reads that one alone.
    let panoptic_splits: Vec<Option<Split>> = files
        .iter()
        .filter(|(_, f)| is_panoptic(f) && !f.annotations.is_empty())
        .map(|(p, _)| split_of(&stem(p)))
        .collect();
    files.retain(|(path, file)| {
        is_panoptic(file) || !panoptic_splits.contains(&split_of(&stem(path)))
    });

    // Categories, in the order met; one id names one class.
    let mut classes = ClassTable::default();
    let mut by_category: HashMap<u64, (u8, PathBuf)> = HashMap::new();
    for (path, file) in &files {
        for category in &file.categories {
            match by_category.get(&category.id) {
                Some((id, first)) if classes.0[*id as usize].name != category.name => {
                    return Err(DatasetError::BadClassTable {
                        file: path.clone(),
                        reason: format!(
                            "category id {} is {:?} here but {:?} in {}",
                            category.id,
                            category.name,
                            classes.0[*id as usize].name,
                            first.display()
                        ),
                    });
                }
                Some(_) => {}
                None => {
                    if classes.len() >= IGNORE as usize - 1 {
                        return Err(DatasetError::BadClassTable {
                            file: path.clone(),
                            reason: format!("more than {} categories", IGNORE - 1),
                        });
                    }
                    let id = classes.len() as u8;
                    let color = category.color.unwrap_or_else(|| default_color(id as usize));
                    classes.0.push(ClassInfo {
                        id,
                        name: category.name.clone(),
                        color,
                    });
                    by_category.insert(category.id, (id, path.clone()));
                }
            }
        }
    }
    if classes.is_empty() && !problems.is_empty() {
        // Every json was unreadable: say why rather than "no categories".
        return Err(DatasetError::Empty {
            dir: root.to_path_buf(),
            format: Format::Coco,
            problems,
        });
    }
    if classes.is_empty() {
        return Err(DatasetError::MissingClassTable {
            file: annotations.join("*.json (categories)"),
        });
    }
    classes.validate(&annotations)?;
    let class_of = |category: u64| {
        by_category
            .get(&category)
            .map(|(id, _)| *id)
            .ok_or(category)
    };

    let mut labels = CocoLabels::default();
    // Samples by image path: merged jsons name one image in several files.
    let mut samples: BTreeMap<PathBuf, (Sample, bool)> = BTreeMap::new();
    for (json, file) in files {
        let json_stem = stem(&json);
        let split = split_of(&json_stem);
        let folder = split_folder(&json_stem);
        let candidates = |name: &str| {
            [
                root.join(folder).join(name),
                root.join("images").join(folder).join(name),
                root.join("images").join(name),
                root.join(name),
            ]
        };
        let mut by_id: HashMap<u64, Vec<Annotation>> = HashMap::new();
        for annotation in file.annotations {
            by_id
                .entry(annotation.image_id)
                .or_default()
                .push(annotation);
        }
        let listed: std::collections::HashSet<u64> = file.images.iter().map(|i| i.id).collect();
        let mut unlisted: Vec<&u64> = by_id.keys().filter(|id| !listed.contains(id)).collect();
        unlisted.sort();
        for id in unlisted {
            problems.push(Problem::new(
                &json,
                format!("annotations for image id {id}, which images[] does not list"),
            ));
        }
        for entry in file.images {
            let what = format!("image {} ({})", entry.id, entry.file_name);
            if entry.file_name.contains("..") || Path::new(&entry.file_name).is_absolute() {
                problems.push(Problem::new(
                    &json,
                    format!("{what}: file_name must be relative, inside the dataset"),
                ));
                continue;
            }
            let Some(image) = candidates(&entry.file_name)
                .into_iter()
                .find(|p| p.is_file())
            else {
                problems.push(Problem::new(
                    &json,
                    format!(
                        "{what}: no such image (looked in {folder}/, images/{folder}/, images/ \
                         and the dataset folder)"
                    ),
                ));
                continue;
            };
            if entry.width == 0
                || entry.height == 0
                || entry.width as u64 * entry.height as u64 > MAX_PIXELS
            {
                problems.push(Problem::new(
                    &json,
                    format!(
                        "{what}: size {}x{} is empty or larger than roadseg reads",
                        entry.width, entry.height
                    ),
                ));
                continue;
            }
            let annotations = by_id.remove(&entry.id).unwrap_or_default();
            let labelled = !annotations.is_empty();
            let annotations_png = panoptic_png(&annotations);
            let sample = &mut samples
                .entry(image.clone())
                .or_insert_with(|| (new_sample(&image, split), split.is_some()))
                .0;
            if !labelled {
                continue;
            }
            let kind = image_kind(annotations, &class_of);
            // A second json for the same image (COCO-Stuff's things and stuff): its shapes
            // follow the first json's, under the first json's key.
            if let Some(key) = &sample.label {
                if let (
                    Some(ImageLabels {
                        kind: Kind::Shapes(shapes),
                        ..
                    }),
                    Kind::Shapes(more),
                ) = (labels.images.get_mut(key), kind)
                {
                    shapes.extend(more);
                }
                continue;
            }
            let key = image_key(&json, annotations_png.as_deref(), &entry, root, &json_stem);
            labels.images.insert(
                key.clone(),
                ImageLabels {
                    json: json.clone(),
                    id: entry.id,
                    file_name: entry.file_name.clone(),
                    width: entry.width,
                    height: entry.height,
                    kind,
                },
            );
            sample.label = Some(key);
        }
    }
    // Merged jsons share the key of the first json that labelled the image.
    let mut samples: Vec<(Sample, bool)> = samples.into_values().collect();
    samples.sort_by(|a, b| a.0.name.cmp(&b.0.name));
    let placed: std::collections::HashSet<String> = samples
        .iter()
        .filter(|(_, placed)| *placed)
        .map(|(s, _)| s.name.clone())
        .collect();
    let mut samples: Vec<Sample> = samples.into_iter().map(|(s, _)| s).collect();
    split::assign_rest_by_ratio(&mut samples, |s| placed.contains(&s.name));
    Ok(DatasetIndex {
        root: root.to_path_buf(),
        format: Format::Coco,
        encoding: crate::core::dataset::LabelEncoding::Coco(Arc::new(labels)),
        classes,
        samples,
        problems,
    })
}

fn new_sample(image: &Path, split: Option<Split>) -> Sample {
    Sample {
        name: stem(image),
        image: image.to_path_buf(),
        label: None,
        split: split.unwrap_or(Split::Train),
    }
}

/// The PNG a panoptic annotation names, if it is one (and names a file inside the dataset).
fn panoptic_png(annotations: &[Annotation]) -> Option<String> {
    annotations
        .iter()
        .find(|a| a.segments_info.is_some())
        .and_then(|a| a.file_name.clone())
        .filter(|f| !f.contains("..") && !Path::new(f).is_absolute())
}

/// The panoptic PNG for panoptic annotations, `<json>#<image id>` otherwise.
fn image_key(
    json: &Path,
    png: Option<&str>,
    entry: &ImageEntry,
    root: &Path,
    json_stem: &str,
) -> PathBuf {
    match png {
        Some(png) => root.join("annotations").join(json_stem).join(png),
        None => PathBuf::from(format!("{}#{}", json.display(), entry.id)),
    }
}

fn image_kind(annotations: Vec<Annotation>, class_of: &impl Fn(u64) -> Result<u8, u64>) -> Kind {
    if annotations.iter().any(|a| a.segments_info.is_some()) {
        let segments = annotations
            .into_iter()
            .flat_map(|a| a.segments_info.unwrap_or_default())
            .map(|s| (s.id, class_of(s.category_id)))
            .collect();
        return Kind::Panoptic(segments);
    }
    Kind::Shapes(
        annotations
            .into_iter()
            .filter_map(|a| {
                let class = class_of(a.category_id.unwrap_or(u64::MAX));
                a.segmentation.map(|s| (a.id, class, Shape::from(s)))
            })
            .collect(),
    )
}

// ---- Decoding --------------------------------------------------------------------------------

/// Rasterises the image whose label key is `key`.
pub fn decode(labels: &CocoLabels, key: &Path) -> Result<Mask, Problem> {
    let Some(image) = labels.images.get(key) else {
        return Err(Problem::new(key, "no COCO annotations under this key"));
    };
    let what = format!("image {} ({})", image.id, image.file_name);
    match &image.kind {
        Kind::Panoptic(segments) => decode_panoptic(key, image, segments),
        Kind::Shapes(shapes) => {
            let mut mask = Mask::unlabelled(image.width, image.height);
            for (annotation, class, shape) in shapes {
                let problem = |error: String| {
                    Problem::new(
                        &image.json,
                        format!("{what}, annotation {annotation}: {error}"),
                    )
                };
                let class = class.map_err(|c| problem(format!("unknown category id {c}")))?;
                rasterise(shape, &mut mask, class).map_err(problem)?;
            }
            Ok(mask)
        }
    }
}

fn rasterise(shape: &Shape, mask: &mut Mask, class: u8) -> Result<(), String> {
    let (width, height) = (mask.width, mask.height);
    match shape {
        Shape::Polygons(polygons) => {
            for polygon in polygons {
                if polygon.len() % 2 != 0 {
                    return Err(format!(
                        "a polygon has an odd number of coordinates ({})",
                        polygon.len()
                    ));
                }
                let points: Vec<[f64; 2]> = polygon.chunks(2).map(|p| [p[0], p[1]]).collect();
                // COCO's own polygons reach up to half a pixel past the border.
                let near = |v: f64, side: u32| (-1.0..=side as f64 + 1.0).contains(&v);
                if !points
                    .iter()
                    .all(|p| near(p[0], width) && near(p[1], height))
                {
                    return Err(format!("a polygon lies outside the {width}x{height} image"));
                }
                fill_polygon(&points, width, height, |x, y| mask.set(x, y, class))
                    .map_err(|e| format!("bad polygon: {e}"))?;
            }
        }
        Shape::Rle { size, counts } => {
            if *size != [height, width] {
                return Err(format!(
                    "RLE size [{}, {}] is not the image's [{height}, {width}]",
                    size[0], size[1]
                ));
            }
            let rle = match counts {
                RleCounts::Compressed(s) => Rle::from_compressed(s, height, width),
                RleCounts::Runs(runs) => {
                    let runs: Result<Vec<u32>, _> =
                        runs.iter().map(|&r| u32::try_from(r)).collect();
                    let runs =
                        runs.map_err(|_| "an RLE run is longer than any image".to_string())?;
                    Rle::from_counts(runs, height, width)
                }
            }
            .map_err(|e| format!("bad RLE: {e}"))?;
            rle.for_each_on(|x, y| mask.set(x, y, class));
        }
    }
    Ok(())
}

fn decode_panoptic(
    png: &Path,
    image: &ImageLabels,
    segments: &HashMap<u64, Result<u8, u64>>,
) -> Result<Mask, Problem> {
    let rgb = image_io::read_rgb(png)?;
    let (width, height) = rgb.dimensions();
    let mut unknown: BTreeMap<u64, u64> = BTreeMap::new();
    let mut bad_category = None;
    let mut last = (u64::MAX, IGNORE);
    let data = rgb
        .pixels()
        .map(|p| {
            let [r, g, b] = p.0;
            let id = r as u64 + 256 * g as u64 + 65_536 * b as u64;
            if id == last.0 {
                return last.1;
            }
            let class = match segments.get(&id) {
                _ if id == 0 => IGNORE,
                Some(Ok(class)) => *class,
                Some(Err(category)) => {
                    bad_category = Some(*category);
                    IGNORE
                }
                None => {
                    *unknown.entry(id).or_default() += 1;
                    IGNORE
                }
            };
            last = (id, class);
            class
        })
        .collect();
    if let Some(category) = bad_category {
        return Err(Problem::new(
            &image.json,
            format!(
                "image {} ({}): a segment has unknown category id {category}",
                image.id, image.file_name
            ),
        ));
    }
    if let Some((id, pixels)) = unknown.iter().next() {
        return Err(Problem::new(
            png,
            format!(
                "segment id {id} ({pixels} pixels{}) is not in the segments_info of image {} in {}",
                if unknown.len() > 1 {
                    format!(", and {} more ids", unknown.len() - 1)
                } else {
                    String::new()
                },
                image.id,
                image.json.display()
            ),
        ));
    }
    Ok(Mask {
        width,
        height,
        data,
    })
}

// ---- Writing ---------------------------------------------------------------------------------

/// Per image and class: area and bounding box `[x, y, w, h]`.
fn class_regions(mask: &Mask) -> BTreeMap<u8, (f64, [f64; 4])> {
    let mut boxes: BTreeMap<u8, (u64, [u32; 4])> = BTreeMap::new();
    for y in 0..mask.height {
        for x in 0..mask.width {
            let v = mask.get(x, y);
            if v == IGNORE {
                continue;
            }
            let entry = boxes.entry(v).or_insert((0, [x, y, x, y]));
            entry.0 += 1;
            let b = &mut entry.1;
            b[0] = b[0].min(x);
            b[1] = b[1].min(y);
            b[2] = b[2].max(x);
            b[3] = b[3].max(y);
        }
    }
    let as_box = |b: [u32; 4]| [b[0], b[1], b[2] - b[0] + 1, b[3] - b[1] + 1].map(|v| v as f64);
    boxes
        .into_iter()
        .map(|(class, (area, b))| (class, (area as f64, as_box(b))))
        .collect()
}

/// Writes the job as COCO (see the module header).
pub fn write(job: &Job) -> Result<Written, ConvertError> {
    let out = job.out;
    let categories: Vec<Category> = job
        .index
        .classes
        .iter()
        .map(|c| Category {
            id: c.id as u64 + 1,
            name: c.name.clone(),
            color: Some(c.color),
            supercategory: String::new(),
            isthing: 0,
        })
        .collect();
    // (split, image entry, instances annotations, panoptic annotation)
    let written = job.each(|sample, mask| {
        let split = sample.split.as_str();
        let file_name = job.copy_image(sample, &out.join("images").join(split))?;
        let (width, height) = match &mask {
            Some(mask) => (mask.width, mask.height),
            None => image_io::dimensions(&sample.image)
                .map_err(crate::core::dataset::convert::bad_file)?,
        };
        let entry = ImageEntry {
            id: 0,
            file_name,
            width,
            height,
        };
        let Some(mask) = mask else {
            return Ok((sample.split, entry, Vec::new(), None));
        };
        let regions = class_regions(&mask);
        let mut instances = Vec::new();
        let mut segments = Vec::new();
        for (&class, &(area, bbox)) in &regions {
            let on: Vec<bool> = mask.data.iter().map(|&v| v == class).collect();
            let rle = Rle::encode(&on, width, height);
            instances.push(Annotation {
                id: 0,
                image_id: 0,
                category_id: Some(class as u64 + 1),
                segmentation: Some(Segmentation::Rle {
                    size: [height, width],
                    counts: Counts::Compressed(rle.to_compressed()),
                }),
                file_name: None,
                segments_info: None,
                area: Some(area),
                bbox: Some(bbox),
                iscrowd: 0,
            });
            segments.push(SegmentInfo {
                id: class as u64 + 1,
                category_id: class as u64 + 1,
                area: Some(area),
                bbox: Some(bbox),
                iscrowd: 0,
            });
        }
        let png_name = format!("{}.png", sample.name);
        let mut png = image::RgbImage::new(width, height);
        for (pixel, &v) in png.pixels_mut().zip(&mask.data) {
            // Segment id = class id + 1 < 256: the red channel alone.
            *pixel = image::Rgb([if v == IGNORE { 0 } else { v + 1 }, 0, 0]);
        }
        let dir = out.join("annotations").join(format!("panoptic_{split}"));
        image_io::write_rgb_png(&dir.join(&png_name), &png)?;
        let panoptic = Annotation {
            id: 0,
            image_id: 0,
            category_id: None,
            segmentation: None,
            file_name: Some(png_name),
            segments_info: Some(segments),
            area: None,
            bbox: None,
            iscrowd: 0,
        };
        Ok((sample.split, entry, instances, Some(panoptic)))
    })?;
    let mut masks = 0;
    // Each split's images are numbered from 1, their annotations too: ids are set here, on the
    // annotations each sample made, which move into the split's json.
    let mut by_split: BTreeMap<Split, Vec<_>> = BTreeMap::new();
    for (split, entry, anns, pan) in written {
        by_split.entry(split).or_default().push((entry, anns, pan));
    }
    for (split, written) in by_split {
        let mut images = Vec::new();
        let mut instances = Vec::new();
        let mut panoptic = Vec::new();
        for (mut entry, anns, pan) in written {
            let image_id = images.len() as u64 + 1;
            entry.id = image_id;
            images.push(entry);
            for mut ann in anns {
                ann.id = instances.len() as u64 + 1;
                ann.image_id = image_id;
                instances.push(ann);
            }
            if let Some(mut pan) = pan {
                masks += 1;
                (pan.id, pan.image_id) = (image_id, image_id);
                panoptic.push(pan);
            }
        }
        let annotations = out.join("annotations");
        for (name, annotations_of) in [("instances", instances), ("panoptic", panoptic)] {
            let file = CocoFile {
                images: images.clone(),
                categories: categories.clone(),
                annotations: annotations_of,
            };
            let json = serde_json::to_vec(&file).expect("COCO json serialises");
            image_io::write_atomic(&annotations.join(format!("{name}_{split}.json")), &json)?;
        }
    }
    Ok(Written { masks, drivable: 0 })
}
