//! Before the first step: open the dataset, check every sample (all problems listed), take
//! the label snapshot, and create or reopen the run directory with its config.

use std::path::Path;

use super::config::{ConfigError, RunConfig, TrainConfig, differences};
use super::loss::class_weights_from_pixel_counts;
use super::run_check::{Broken, check};
use super::run_dir::{CheckpointKind, RunDir, RunDirError};
use super::trainer::{DataSpec, TrainError, TrainOptions, TrainStart};
use crate::core::boundary::road_class;
use crate::core::dataset::augment::Normalize;
use crate::core::dataset::info::validate;
use crate::core::dataset::{DatasetIndex, LabelEncoding, Sample, Split};
use crate::core::model::segmenter::AuxTask;
use crate::core::model::unet::UNetConfig;

/// Everything resolved before the first step.
pub(super) struct Prepared {
    pub(super) run: RunDir,
    pub(super) run_config: RunConfig,
    pub(super) train: Vec<Sample>,
    pub(super) val: Vec<Sample>,
    pub(super) index: DatasetIndex,
    pub(super) resumed: bool,
    /// The training images' sizes (width, height), in the order of `train`.
    pub(super) sizes: Vec<(u32, u32)>,
    /// What the budget picked and why ([`super::probe::pick_at_start`]).
    pub(super) choice: Option<String>,
}

/// Opens the dataset, checks every sample, and creates (or reopens) the run directory.
pub(super) fn prepare(
    start: TrainStart,
    options: &TrainOptions,
    log: &mut dyn FnMut(String),
) -> Result<Prepared, TrainError> {
    let (run, data, mut config, saved, resumed) = match start {
        TrainStart::New { data, config, out } => {
            let run = RunDir::new(out);
            if run.exists() {
                return Err(TrainError::RunExists(run.root().to_path_buf()));
            }
            (run, data, absolute_paths(*config), None, false)
        }
        TrainStart::Resume {
            run,
            epochs,
            config: asked,
        } => {
            let run = RunDir::new(run);
            match check(&run) {
                // Killed before its first checkpoint: the run starts over (the loop says so).
                Ok(_) | Err(Broken::Unusable(RunDirError::NoCheckpoint(_))) => {}
                Err(broken) => return Err(TrainError::CannotResume(broken)),
            }
            let saved = run.read_config()?;
            let done = match run.existing_checkpoint(CheckpointKind::Last) {
                Some(dir) => run.read_state(&dir)?.epoch,
                None => 0,
            };
            let config = resumed_config(&saved.train, asked.map(|c| *c), epochs, done, log)?;
            let format = saved.format.parse().ok();
            let data = DataSpec {
                root: saved.data.clone(),
                format,
            };
            (run, data, config, Some(saved), true)
        }
    };

    let mut index = DatasetIndex::open(&data.root, data.format)?;
    let num_classes = index.classes.len();
    if saved.is_none() {
        adopt_starting_points(&mut config, log)?;
    }
    config.validate(num_classes)?;
    check_aux(&config, &index)?;

    let snapshot = match &saved {
        Some(saved) => saved.labels_snapshot,
        None => options.snapshot_labels,
    };
    let labels = run.root().join("labels");
    // Labels inside one annotation file (COCO) or drawn as shapes (labelme) are snapshot as
    // decoded native masks: the run then reads those, new or resumed.
    let decoded = snapshot && index.encoding.snapshot_decodes();
    let dataset_encoding = index.encoding.clone();
    if decoded && saved.is_some() {
        index.encoding = LabelEncoding::native(&index.classes);
    }
    // A resumed snapshot run reads its own copies, whatever the dataset's masks are now.
    let candidates = |split: Split| -> Result<Vec<Sample>, TrainError> {
        match (snapshot, saved.is_some()) {
            (true, true) => {
                let all = index.samples.iter().filter(|s| s.split == split).cloned();
                use_snapshot(all.collect(), &labels, Snapshot::Keep { decoded })
            }
            _ => Ok(index.labelled_in(split).into_iter().cloned().collect()),
        }
    };
    let train_all = candidates(Split::Train)?;
    let val_all = candidates(Split::Val)?;
    let checked_train = validate(&index, &train_all.iter().collect::<Vec<_>>());
    let checked_val = validate(&index, &val_all.iter().collect::<Vec<_>>());
    let mut problems = match saved.is_some() && snapshot {
        true => Vec::new(),
        false => index.problems.clone(),
    };
    problems.extend(checked_train.problems.iter().cloned());
    problems.extend(checked_val.problems.iter().cloned());
    if !problems.is_empty() {
        if !options.skip_bad {
            return Err(TrainError::BadFiles(problems));
        }
        log(format!(
            "skipped {} bad file(s) (--skip-bad)",
            problems.len()
        ));
    }
    let mut train: Vec<Sample> = checked_train.good.into_iter().cloned().collect();
    let mut val: Vec<Sample> = checked_val.good.into_iter().cloned().collect();
    if snapshot && saved.is_none() {
        let how = match decoded {
            true => Snapshot::Decode(&dataset_encoding),
            false => Snapshot::Copy,
        };
        train = use_snapshot(train, &labels, how)?;
        val = use_snapshot(val, &labels, how)?;
        if decoded {
            index.encoding = LabelEncoding::native(&index.classes);
        }
    }
    if train.is_empty() {
        return Err(TrainError::NoTrainingImages(index.root.clone()));
    }
    if val.is_empty() {
        log("no labelled validation images: validating on the training images".into());
        val = train.clone();
    }

    let sizes = checked_train.sizes;
    let run_config = match saved {
        Some(saved) => RunConfig {
            train: config,
            ..saved
        },
        None => {
            if let Some(augment) = config.augment.as_mut()
                && augment.focus > 0.0
                && augment.focus_classes.is_empty()
            {
                augment.focus_classes = rare_classes(&checked_train.pixels);
                log(format!(
                    "class-aware crops centre on the rare classes {:?}",
                    augment.focus_classes
                ));
            }
            if config.class_weights_auto {
                let weights = class_weights_from_pixel_counts(&checked_train.pixels);
                log(format!("class weights from pixel counts: {weights:.3?}"));
                config.loss.class_weights = Some(weights);
            }
            RunConfig {
                data: std::path::absolute(&index.root).unwrap_or(index.root.clone()),
                format: index.format.to_string(),
                classes: index.classes.0.clone(),
                model: UNetConfig {
                    num_classes,
                    ..config.model.clone()
                },
                train: config,
                device: options.device.to_string(),
                roadseg_version: env!("CARGO_PKG_VERSION").to_string(),
                labels_snapshot: snapshot,
            }
        }
    };
    run.create()?;
    run.write_config(&run_config)?;
    Ok(Prepared {
        run,
        run_config,
        train,
        val,
        index,
        resumed,
        sizes,
        choice: None,
    })
}

/// Classes under [`RARE_SHARE`] of the labelled training pixels, and present.
pub(super) fn rare_classes(pixels: &[u64]) -> Vec<u8> {
    let total = pixels.iter().sum::<u64>().max(1) as f64;
    (0..pixels.len())
        .filter(|&k| pixels[k] > 0 && (pixels[k] as f64 / total) < RARE_SHARE)
        .map(|k| k as u8)
        .collect()
}

/// A class holding less than this share of the training pixels is rare (the sample's lane
/// markings hold 3%, its vehicles 2.6%).
pub const RARE_SHARE: f64 = 0.05;

/// Settings a resumed run may change: more epochs, and the loader's threads. Every other one
/// shaped the weights, the optimiser's state or the schedule so far.
const CHANGEABLE_ON_RESUME: [&str; 2] = ["epochs", "num_workers"];

/// The config a resumed run goes on with: `asked` (default: the run's own, `saved`) with
/// `epochs`, when it differs from `saved` only where a run may change, and it leaves epochs to
/// train after the `done` ones. Changes are logged (and recorded in config.json by the caller).
fn resumed_config(
    saved: &TrainConfig,
    asked: Option<TrainConfig>,
    epochs: Option<usize>,
    done: usize,
    log: &mut dyn FnMut(String),
) -> Result<TrainConfig, TrainError> {
    let mut config = asked.unwrap_or_else(|| saved.clone());
    if let Some(epochs) = epochs {
        config.epochs = epochs;
    }
    let (allowed, fixed): (Vec<_>, Vec<_>) = differences(saved, &config)
        .into_iter()
        .partition(|(key, ..)| CHANGEABLE_ON_RESUME.contains(&key.as_str()));
    if !fixed.is_empty() {
        let list: Vec<String> = fixed
            .iter()
            .map(|(key, was, now)| format!("{key} (the run's {was}, asked {now})"))
            .collect();
        return Err(TrainError::ResumeChanges(list.join(", ")));
    }
    if config.epochs <= done {
        return Err(TrainError::NothingToResume {
            done,
            epochs: config.epochs,
        });
    }
    for (key, was, now) in allowed {
        log(format!("{key}: {was} -> {now} (recorded in config.json)"));
    }
    Ok(config)
}

/// The starting points a config names, as absolute paths (like the dataset's), so that the
/// run's config.json means the same from any working directory.
fn absolute_paths(mut config: TrainConfig) -> TrainConfig {
    let absolute = |p: &mut std::path::PathBuf| {
        if let Ok(a) = std::path::absolute(&*p) {
            *p = a;
        }
    };
    if let Some(p) = config.init_from.as_mut() {
        absolute(p);
    }
    if let Some(p) = config.pretrained.as_mut() {
        absolute(p);
    }
    if let Some(d) = config.distill.as_mut() {
        absolute(&mut d.teacher);
    }
    config
}

/// A new run takes `--init-from`'s architecture and normalisation, and ImageNet's
/// normalisation with a pretrained encoder.
fn adopt_starting_points(
    config: &mut TrainConfig,
    log: &mut dyn FnMut(String),
) -> Result<(), TrainError> {
    if let Some(source) = &config.init_from {
        let saved = RunDir::new(source).read_config()?;
        if config.pretrained.is_some() {
            return Err(ConfigError::Invalid(
                "start either from a pretrained encoder or from an earlier run, not both".into(),
            )
            .into());
        }
        let model = UNetConfig {
            num_classes: 0,
            ..saved.model.clone()
        };
        let wanted = (config.encoder, &config.model);
        if wanted != (saved.train.encoder, &model) {
            log(format!(
                "the model is {}'s: {} encoder, width {}, depth {}",
                source.display(),
                saved.train.encoder,
                model.base_width,
                model.depth
            ));
        }
        config.model = model;
        config.encoder = saved.train.encoder;
        config.normalize = saved.train.normalize;
    }
    if config.pretrained.is_some() && config.normalize != Normalize::default() {
        log("a pretrained encoder normalises with ImageNet's mean and std".into());
        config.normalize = Normalize::default();
    }
    Ok(())
}

/// The second head's target must exist in this dataset.
fn check_aux(config: &TrainConfig, index: &DatasetIndex) -> Result<(), TrainError> {
    let problem = match config.aux {
        Some(AuxTask::Boundary)
            if road_class(index.classes.iter().map(|c| c.name.as_str())).is_none() =>
        {
            "the boundary head follows the edges of a class named \"road\", which this dataset has not"
        }
        Some(AuxTask::Drivable) if !index.has_drivable() => {
            "the drivable head needs drivable-area maps (BDD100K's labels/drivable/masks, or drivable/ in the native layout)"
        }
        _ => return Ok(()),
    };
    Err(ConfigError::Invalid(format!("{}: {problem}", index.root.display())).into())
}

/// How [`use_snapshot`] treats the label files.
#[derive(Clone, Copy)]
enum Snapshot<'a> {
    /// A new run: copy each label file as it is.
    Copy,
    /// A new run: write each label decoded (as a native index PNG).
    Decode(&'a LabelEncoding),
    /// A resumed run: keep the samples that have a copy (`decoded`: as `<name>.png`).
    Keep { decoded: bool },
}

/// Points each sample's label at its copy under `labels/<split>/<name>.<ext>`: writing it
/// there first (a new run), or keeping only samples that have a copy (a resumed run: what was
/// labelled when the run started, as it was then).
fn use_snapshot(
    samples: Vec<Sample>,
    labels: &Path,
    how: Snapshot,
) -> Result<Vec<Sample>, TrainError> {
    let io = |path: &Path, e: std::io::Error| {
        TrainError::RunDir(RunDirError::Io {
            path: path.to_path_buf(),
            source: e,
        })
    };
    let mut kept = Vec::with_capacity(samples.len());
    for mut sample in samples {
        let Some(label) = sample.label.clone() else {
            continue;
        };
        let ext = match how {
            Snapshot::Decode(_) | Snapshot::Keep { decoded: true } => "png".into(),
            _ => label
                .extension()
                .map_or_else(|| "png".into(), |e| e.to_string_lossy().into_owned()),
        };
        let dir = labels.join(sample.split.as_str());
        let target = dir.join(format!("{}.{ext}", sample.name));
        match how {
            Snapshot::Copy => {
                std::fs::create_dir_all(&dir).map_err(|e| io(&dir, e))?;
                std::fs::copy(&label, &target).map_err(|e| io(&label, e))?;
            }
            Snapshot::Decode(encoding) => {
                // Validated before the snapshot: a failure here is a file changed meanwhile.
                let mask = encoding.decode(&label).map_err(|p| {
                    TrainError::Dataset(crate::core::dataset::DatasetError::BadFile {
                        file: p.file,
                        reason: p.error,
                    })
                })?;
                crate::core::dataset::image_io::write_gray_png(&target, &mask.to_gray_image())?;
            }
            Snapshot::Keep { .. } if !target.is_file() => continue,
            Snapshot::Keep { .. } => {}
        }
        sample.label = Some(target);
        kept.push(sample);
    }
    Ok(kept)
}

/// Prepares a run folder exactly as a run would before its first step (dataset opened and
/// checked, config validated and written, labels snapshot taken), and trains nothing: what a
/// job engine does before it hands the run to `roadseg train --resume` elsewhere. Returns the
/// run folder.
pub fn prepare_run(
    start: TrainStart,
    options: &TrainOptions,
    log: &mut dyn FnMut(String),
) -> Result<std::path::PathBuf, TrainError> {
    let prepared = prepare(start, options, log)?;
    let root = prepared.run.root();
    Ok(std::path::absolute(root).unwrap_or_else(|_| root.to_path_buf()))
}
