//! `roadseg bench --assist [--data DIR] [--model RUN] [--images N] [--json]`: click-to-segment
//! ([`smart_region`]) measured with the field's protocol ([`protocol`]: a simulated user clicks
//! the centre of the largest error until IoU 0.90 or 20 clicks), per class, on the objects a
//! labeller selects one at a time:
//!
//! - road: the image's road, its largest connected component (lane markings inside it joined
//!   to it and ignored, see [`road_object`]);
//! - sidewalk: each 4-connected component of at least [`MIN_SURFACE_FRACTION`] of the image;
//! - vehicle (or car): each 8-connected component of at least [`MIN_VEHICLE_PIXELS`] at
//!   2048x1024, scaled with the image's area.
//!
//! Without `--data` the scenes are drawn for the run ([`Look::Hard`], [`SCENE_SIZE`], seed
//! [`SCENE_SEED`] unless `--scene-seed`) into a temporary folder, removed afterwards. With `--model` the prior is the
//! one the studio and `roadseg assist` use ([`prior::class_prior`]: the run's prediction, its
//! arg-max and confidence, for the object's class).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use roadseg::core::assist::objects::{Connectivity, class_objects, road_object};
use roadseg::core::assist::protocol::{MAX_CLICKS, STOP_IOU, noc, run_object};
use roadseg::core::assist::{ClassPrior, Params, Prepared, Session, prior};
use roadseg::core::dataset::info::load_pair;
use roadseg::core::dataset::sample::{Look, SampleConfig, generate};
use roadseg::core::dataset::{ClassTable, DatasetIndex, Sample};
use roadseg::core::device::{DeviceChoice, resolve};
use roadseg::core::mask::Mask;
use roadseg::core::predict::Predictor;
use roadseg::core::train::run_dir::CheckpointKind;
use serde::Serialize;

/// The scenes drawn when no `--data` is given: 2048x1024 (Cityscapes' size), fixed seed.
pub const SCENE_SIZE: [u32; 2] = [2048, 1024];
pub const SCENE_SEED: u64 = 17;
pub const DEFAULT_IMAGES: usize = 6;
/// A sidewalk piece smaller than this share of the image is not one a labeller selects alone.
pub const MIN_SURFACE_FRACTION: f64 = 0.005;
/// The smallest vehicle measured, in pixels of a 2048x1024 image (about 40x40: a car some 60 m
/// away); scaled with the image's area.
pub const MIN_VEHICLE_PIXELS: f64 = 1500.0;
/// NoC thresholds reported, as RITM does.
const NOC_LOW: f64 = 0.85;

pub struct Options<'a> {
    pub data: Option<&'a Path>,
    pub model: Option<&'a Path>,
    pub images: Option<usize>,
    /// The seed the scenes are drawn with when there is no `data` ([`SCENE_SEED`] if `None`).
    pub seed: Option<u64>,
    pub device: DeviceChoice,
    pub json: bool,
}

/// The scenes drawn for the run.
#[derive(Serialize)]
struct Scenes {
    count: usize,
    seed: u64,
    size: [u32; 2],
    look: String,
}

/// Mean and largest of some timings, in milliseconds.
#[derive(Serialize, Clone, Copy)]
struct Millis {
    mean: f64,
    max: f64,
}

impl Millis {
    fn of(times: &[Duration]) -> Option<Self> {
        let ms: Vec<f64> = times.iter().map(|t| t.as_secs_f64() * 1000.0).collect();
        (!ms.is_empty()).then(|| Self {
            mean: ms.iter().sum::<f64>() / ms.len() as f64,
            max: ms.iter().copied().fold(0.0, f64::max),
        })
    }
}

/// One class's figures; `None` where it had no object.
#[derive(Serialize)]
struct ClassFigures {
    class: String,
    objects: usize,
    /// Mean over objects of NoC@85 and NoC@90, a failure counted as the click limit.
    noc85: Option<f64>,
    noc90: Option<f64>,
    /// Mean IoU after the first click.
    iou_1: Option<f64>,
    /// Objects that never reached IoU 0.90.
    failures: usize,
    clicks: usize,
    /// The segmenter's time per click.
    click_ms: Option<Millis>,
}

#[derive(Serialize)]
struct AssistBench {
    /// The dataset measured; `None` when the scenes were drawn for the run.
    data: Option<PathBuf>,
    scenes: Option<Scenes>,
    model: Option<PathBuf>,
    images: usize,
    max_clicks: usize,
    stop_iou: f64,
    /// [`Prepared::new`] per image.
    prepare_ms: Option<Millis>,
    /// The model's forward pass and probabilities per image, with `--model`.
    prior_ms: Option<Millis>,
    classes: Vec<ClassFigures>,
    seconds: f64,
}

/// One class measured: its id in the dataset and in the model, how its objects are cut.
struct Class {
    name: String,
    id: u8,
    model_id: Option<u8>,
    objects: usize,
    noc85: Vec<usize>,
    noc90: Vec<usize>,
    iou_1: Vec<f64>,
    failures: usize,
    times: Vec<Duration>,
}

/// Removes the drawn scenes when the bench ends, however it ends.
struct TempScenes(PathBuf);

impl Drop for TempScenes {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub fn run(opts: Options) -> anyhow::Result<()> {
    let start = Instant::now();
    let images = opts.images.unwrap_or(DEFAULT_IMAGES);
    let seed = opts.seed.unwrap_or(SCENE_SEED);
    // Holds the drawn scenes until the end of the run (removed on drop).
    let mut _temp = None;
    let (root, scenes) = match opts.data {
        Some(dir) => (dir.to_path_buf(), None),
        None => {
            let dir = std::env::temp_dir().join(format!("roadseg-assist-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            _temp = Some(TempScenes(dir.clone()));
            let cfg = SampleConfig {
                count: images,
                seed,
                width: SCENE_SIZE[0],
                height: SCENE_SIZE[1],
                look: Look::Hard,
            };
            eprintln!(
                "drawing {images} hard scenes at {}x{} (seed {seed}) into {}; --data DIR \
                 measures a dataset instead",
                cfg.width,
                cfg.height,
                dir.display()
            );
            generate(&dir, &cfg).context("drawing the scenes")?;
            let scenes = Scenes {
                count: images,
                seed,
                size: SCENE_SIZE,
                look: Look::Hard.to_string(),
            };
            (dir, Some(scenes))
        }
    };
    let index = DatasetIndex::open(&root, None)?;
    let samples: Vec<&Sample> = index.labelled().take(images).collect();
    if samples.is_empty() {
        bail!("{}: no labelled images to measure on", root.display());
    }
    let predictor = match opts.model {
        Some(run) => {
            let (device, _) = resolve(opts.device)?;
            Some(Predictor::load(run, CheckpointKind::Best, device)?)
        }
        None => None,
    };
    let mut classes = measured_classes(&index.classes, predictor.as_ref(), opts.model)?;
    let marking = index.classes.by_name("lane marking").map(|c| c.id);

    let mut prepare_times = Vec::new();
    let mut prior_times = Vec::new();
    for (n, sample) in samples.iter().enumerate() {
        let image_start = Instant::now();
        let (image, labels) = load_pair(&index, sample)?;
        let labels = labels.expect("labelled samples have a label");
        let started = Instant::now();
        let prepared = Prepared::new(&image);
        prepare_times.push(started.elapsed());
        let priors = match &predictor {
            Some(predictor) => {
                let started = Instant::now();
                let prediction = predictor.predict_full(&image)?;
                let mut planes = Vec::new();
                for class in &classes {
                    let id = class
                        .model_id
                        .expect("a predictor gives every class a model id");
                    let values = prior::class_prior(&prediction.mask, &prediction.confidence, id);
                    planes.push(ClassPrior::new(&prepared, values)?);
                }
                prior_times.push(started.elapsed());
                Some(planes)
            }
            None => None,
        };
        let pixels = labels.data.len() as f64;
        let mut objects = 0;
        for (k, class) in classes.iter_mut().enumerate() {
            let targets = targets(class, &labels, marking, pixels);
            let prior = priors.as_ref().map(|p| &p[k]);
            // The weights the studio uses for this class.
            let params = Params::for_class(&class.name);
            for target in &targets {
                // One session per object: each click is one step, as in the studio.
                let mut session = Session::new();
                let run = run_object(target, MAX_CLICKS, STOP_IOU, |clicks| {
                    session.region(&prepared, clicks, prior, &params)
                })
                .with_context(|| format!("{}: smart_region on a {}", sample.name, class.name))?;
                class.record(&run.ious, &run.times);
            }
            objects += targets.len();
        }
        eprintln!(
            "image {}/{} {}: {objects} objects in {:.1} s",
            n + 1,
            samples.len(),
            sample.name,
            image_start.elapsed().as_secs_f64()
        );
    }

    let bench = AssistBench {
        data: scenes.is_none().then(|| root.clone()),
        scenes,
        model: opts.model.map(Path::to_path_buf),
        images: samples.len(),
        max_clicks: MAX_CLICKS,
        stop_iou: STOP_IOU,
        prepare_ms: Millis::of(&prepare_times),
        prior_ms: Millis::of(&prior_times),
        classes: classes.iter().map(Class::figures).collect(),
        seconds: start.elapsed().as_secs_f64(),
    };
    if opts.json {
        let out = serde_json::json!({ "assist": bench });
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        print_table(&bench);
    }
    Ok(())
}

/// Road, sidewalk and vehicle (or car) as the dataset names them, with the model's ids.
fn measured_classes(
    table: &ClassTable,
    predictor: Option<&Predictor>,
    run: Option<&Path>,
) -> anyhow::Result<Vec<Class>> {
    let mut classes = Vec::new();
    for names in [&["road"][..], &["sidewalk"], &["vehicle", "car"]] {
        let Some(info) = names.iter().find_map(|n| table.by_name(n)) else {
            continue;
        };
        let model_id = match predictor {
            Some(p) => {
                let found = p
                    .classes()
                    .iter()
                    .find(|c| c.name.eq_ignore_ascii_case(&info.name));
                let Some(found) = found else {
                    bail!(
                        "{}: the run has no class {:?} (it has {}); a prior needs the run to \
                         know the class measured",
                        run.expect("a predictor comes from --model").display(),
                        info.name,
                        p.classes()
                            .iter()
                            .map(|c| c.name.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    );
                };
                Some(found.id)
            }
            None => None,
        };
        classes.push(Class {
            name: info.name.clone(),
            id: info.id,
            model_id,
            objects: 0,
            noc85: Vec::new(),
            noc90: Vec::new(),
            iou_1: Vec::new(),
            failures: 0,
            times: Vec::new(),
        });
    }
    if classes.is_empty() {
        bail!(
            "the dataset has none of the classes measured (road, sidewalk, vehicle or car); it \
             has {}",
            table.names().join(", ")
        );
    }
    Ok(classes)
}

/// The objects of `class` in one label mask of `pixels` pixels.
fn targets(class: &Class, labels: &Mask, marking: Option<u8>, pixels: f64) -> Vec<Mask> {
    let full = (SCENE_SIZE[0] as f64) * (SCENE_SIZE[1] as f64);
    match class.name.to_ascii_lowercase().as_str() {
        "road" => road_object(labels, class.id, marking).into_iter().collect(),
        "sidewalk" => {
            let min = (MIN_SURFACE_FRACTION * pixels).ceil() as usize;
            class_objects(labels, class.id, Connectivity::Four, min)
        }
        _ => {
            let min = (MIN_VEHICLE_PIXELS * pixels / full).ceil() as usize;
            class_objects(labels, class.id, Connectivity::Eight, min)
        }
    }
}

impl Class {
    fn record(&mut self, ious: &[f64], times: &[Duration]) {
        self.objects += 1;
        self.noc85.push(noc(ious, NOC_LOW).unwrap_or(MAX_CLICKS));
        let reached = noc(ious, STOP_IOU);
        self.noc90.push(reached.unwrap_or(MAX_CLICKS));
        self.failures += usize::from(reached.is_none());
        if let Some(&first) = ious.first() {
            self.iou_1.push(first);
        }
        self.times.extend_from_slice(times);
    }

    fn figures(&self) -> ClassFigures {
        let mean = |v: &[f64]| (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64);
        let as_f64 = |v: &[usize]| v.iter().map(|&n| n as f64).collect::<Vec<_>>();
        ClassFigures {
            class: self.name.clone(),
            objects: self.objects,
            noc85: mean(&as_f64(&self.noc85)),
            noc90: mean(&as_f64(&self.noc90)),
            iou_1: mean(&self.iou_1),
            failures: self.failures,
            clicks: self.times.len(),
            click_ms: Millis::of(&self.times),
        }
    }
}

fn print_table(bench: &AssistBench) {
    println!(
        "click-to-segment, RITM's protocol (clicks at the largest error until IoU {:.2}, at most \
         {}), {}",
        bench.stop_iou,
        bench.max_clicks,
        match &bench.model {
            Some(run) => format!("the prior from {}", run.display()),
            None => "no prior (--model RUN adds one)".into(),
        }
    );
    match (&bench.scenes, &bench.data) {
        (Some(s), _) => println!(
            "data: {} {} scenes at {}x{} drawn for this run (seed {}; `roadseg sample --look {} \
             --seed {} --size {}x{} --count {}` draws them; --data DIR measures a dataset)",
            s.count,
            s.look,
            s.size[0],
            s.size[1],
            s.seed,
            s.look,
            s.seed,
            s.size[0],
            s.size[1],
            s.count
        ),
        (None, Some(dir)) => println!("data: {} images of {}", bench.images, dir.display()),
        (None, None) => {}
    }
    let ms = |m: Option<Millis>| {
        m.map_or("-".to_string(), |m| {
            format!("{:.1} ms mean, {:.1} ms max", m.mean, m.max)
        })
    };
    println!("prepare per image: {}", ms(bench.prepare_ms));
    if bench.prior_ms.is_some() {
        println!(
            "prior per image (forward pass + probabilities): {}",
            ms(bench.prior_ms)
        );
    }
    println!(
        "{:<12} {:>7} {:>7} {:>7} {:>6} {:>8} {:>12} {:>9}",
        "class", "objects", "NoC@85", "NoC@90", "IoU@1", "failures", "ms/click", "max ms"
    );
    let num =
        |v: Option<f64>, digits: usize| v.map_or("-".to_string(), |v| format!("{v:.digits$}"));
    for c in &bench.classes {
        println!(
            "{:<12} {:>7} {:>7} {:>7} {:>6} {:>8} {:>12} {:>9}",
            c.class,
            c.objects,
            num(c.noc85, 2),
            num(c.noc90, 2),
            num(c.iou_1, 3),
            c.failures,
            num(c.click_ms.map(|m| m.mean), 2),
            num(c.click_ms.map(|m| m.max), 1),
        );
    }
    println!(
        "NoC: mean clicks to reach the IoU, a failure (never reached) counted as {}; took {:.1} s",
        bench.max_clicks, bench.seconds
    );
}
