//! The training loop: epochs of optimiser steps, validation, checkpoints, early stopping,
//! resume. Used by `roadseg train` and by the studio's training worker.
//!
//! The loop reports through a callback (`on_event`) and reads a [`Control`] between steps
//! (stop, pause, predictions); it knows nothing of terminals or windows.

use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::module::{Module, ParamGroup};
use burn::tensor::{Device, Tensor};

use super::config::{ConfigError, Distill, EarlyStopping, RunConfig, TrainConfig};
use super::control::{Control, PredictRequest};
use super::init::starting_model;
use super::optim::{ScheduleConfig, SegOptimizer, build_optimizer, group_rates, lr_at, warmup_for};
use super::prepare::{Prepared, prepare};
use super::probe::pick_at_start;
use super::run_dir::{
    CheckpointKind, ClassIou, MetricRecord, MetricsLog, RunDir, RunDirError, Summary, TrainState,
};
use super::step::{
    AuxTargets, DistillTargets, ExtraTargets, StepError, eval_step_boundary, train_step_multi,
};
use crate::core::boundary::{BoundaryScore, road_class};
use crate::core::dataset::loader::{
    AuxSource, LoaderConfig, SegDataset, SegLoader, default_workers,
};
use crate::core::dataset::{DatasetError, Format, Problem, Sample};
use crate::core::device::{DeviceChoice, DeviceError, resolve};
use crate::core::mask::Mask;
use crate::core::metrics::ConfusionMatrix;
use crate::core::model::segmenter::{AuxTask, Segmenter};
use crate::core::model::unet::UNet;
use crate::core::predict::{AuxMap, Predictor};

/// Where training data comes from.
#[derive(Debug, Clone)]
pub struct DataSpec {
    pub root: PathBuf,
    /// `None`: detect the layout.
    pub format: Option<Format>,
}

/// A new run or the continuation of one.
#[derive(Debug, Clone)]
pub enum TrainStart {
    New {
        data: DataSpec,
        config: Box<TrainConfig>,
        /// The run directory to create (must not hold a run yet).
        out: PathBuf,
    },
    Resume {
        run: PathBuf,
        /// Raise the epoch count of the run (to more than it has trained).
        epochs: Option<usize>,
        /// The config asked for: the run's own with the caller's changes. Only the epoch
        /// count and the loader's threads may differ from the run's; any other change is
        /// refused. `None`: the run's own.
        config: Option<Box<TrainConfig>>,
    },
}

/// How to run.
#[derive(Debug, Clone, Default)]
pub struct TrainOptions {
    pub device: DeviceChoice,
    /// Leave out images or labels that cannot be read (counted and reported) instead of
    /// refusing to start.
    pub skip_bad: bool,
    /// Copy the labels into the run at start and train on the copies (the studio does, since
    /// the user keeps painting while the run goes).
    pub snapshot_labels: bool,
    /// When the GPU asked for cannot be used, train on the CPU (with a log line) instead of
    /// failing.
    pub cpu_fallback: bool,
}

/// Facts about the run, sent once when it starts.
#[derive(Debug, Clone)]
pub struct StartInfo {
    pub run_dir: PathBuf,
    pub device: String,
    pub resumed: bool,
    pub epochs: usize,
    pub start_epoch: usize,
    pub steps_per_epoch: usize,
    pub total_steps: usize,
    pub start_step: usize,
    pub train_images: usize,
    pub val_images: usize,
    pub batch_size: usize,
    pub class_names: Vec<String>,
    /// What the time budget picked and why (a new run that had one).
    pub choice: Option<String>,
}

impl StartInfo {
    /// Seconds left once `step` steps are done, at `images_per_sec`; `None` before the speed
    /// is known.
    pub fn eta_secs(&self, step: usize, images_per_sec: Option<f64>) -> Option<f64> {
        let left = self.total_steps.saturating_sub(step) * self.batch_size;
        images_per_sec.filter(|s| *s > 0.0).map(|s| left as f64 / s)
    }
}

/// What the loop reports, in order.
#[derive(Debug, Clone)]
pub enum TrainEvent {
    Started(Box<StartInfo>),
    /// After each logged optimiser step.
    Step(MetricRecord),
    /// After each epoch's validation.
    Validation(MetricRecord),
    Checkpoint {
        kind: CheckpointKind,
        path: PathBuf,
    },
    /// The answer to a [`PredictRequest`]: class ids at the image's resolution, and each
    /// pixel's confidence (winning softmax probability, `round(p * 255)`), and the second
    /// head's map when the model has one.
    Prediction {
        tag: u64,
        mask: Mask,
        confidence: Vec<u8>,
        aux: Option<AuxMap>,
    },
    /// A line for the user (skipped files, fallbacks, early stopping).
    Log(String),
}

/// Why training could not start or go on.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error(transparent)]
    Dataset(#[from] DatasetError),
    #[error("{} bad file(s) in the dataset (pass --skip-bad to train without them):\n{}",
        .0.len(), list_problems(.0))]
    BadFiles(Vec<Problem>),
    #[error("{0}: no labelled training images")]
    NoTrainingImages(PathBuf),
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    RunDir(#[from] RunDirError),
    #[error(transparent)]
    Device(#[from] DeviceError),
    #[error("{0}: already holds a run; resume it with --resume or choose another --out")]
    RunExists(PathBuf),
    #[error("the last checkpoint could not be written: {error}; {}", match .kept {
        Some(dir) => format!("the previous checkpoint is kept in {}", dir.display()),
        None => "no earlier checkpoint exists".to_string(),
    })]
    NotSaved {
        error: RunDirError,
        kept: Option<PathBuf>,
    },
    #[error("cannot resume: {0}")]
    CannotResume(super::run_check::Broken),
    #[error(
        "cannot resume with other settings: {0}; a resumed run keeps the settings it was trained with (start a new run to change them, with --init-from RUN to begin from its weights)"
    )]
    ResumeChanges(String),
    #[error(
        "cannot resume: the run has trained {done} epoch(s) and asks for {epochs}, so there is nothing to train; pass --epochs N with N > {done} to train longer"
    )]
    NothingToResume { done: usize, epochs: usize },
    #[error("loading a batch: {0}")]
    Loader(Problem),
    #[error("{error} (epoch {epoch}, step {step}); {}", match .checkpoint {
        Some(dir) => format!("the last good checkpoint is kept in {}", dir.display()),
        None => "no checkpoint had been written yet".to_string(),
    })]
    Diverged {
        epoch: usize,
        step: usize,
        error: StepError,
        checkpoint: Option<PathBuf>,
    },
    #[error("training step failed: {0}")]
    Step(StepError),
}

/// Validation sees whole images at the input size: in batches of no more pixels than a
/// training batch of crops, so that it needs no more memory than a training step.
pub fn validation_batch(config: &TrainConfig) -> usize {
    let pixels = |[w, h]: [u32; 2]| w as usize * h as usize;
    let crop = config.crop.map_or(pixels(config.size), pixels);
    (config.batch_size * crop / pixels(config.size).max(1)).clamp(1, config.batch_size)
}

/// Says the rule as the loop applies it: an epoch counts as an improvement when it beats the
/// best validation mIoU so far by more than `min_delta`; `patience` epochs in a row that do
/// not stop the run (smaller gains still make a new best checkpoint).
fn early_stop_message(early: &EarlyStopping, state: &TrainState) -> String {
    let by = match early.min_delta {
        0.0 => String::new(),
        d => format!(" by more than {d}"),
    };
    let last = state.epoch - state.epochs_without_improvement;
    let since = match last {
        0 => String::new(),
        e => format!(" since epoch {e}"),
    };
    format!(
        "early stopping: validation mIoU has not beaten its best{by} for {} epochs{since} (best {:.4} at epoch {})",
        state.epochs_without_improvement,
        state.best_mean_iou.unwrap_or(0.0),
        state.best_epoch.unwrap_or(0)
    )
}

fn list_problems(problems: &[Problem]) -> String {
    let mut lines: Vec<String> = problems.iter().take(20).map(|p| format!("  {p}")).collect();
    if problems.len() > 20 {
        lines.push(format!("  ... and {} more", problems.len() - 20));
    }
    lines.join("\n")
}

/// Trains until the configured epochs are done, early stopping triggers, `control` says stop,
/// or an error occurs. Every outcome except an error writes summary.json.
pub fn train(
    start: TrainStart,
    options: &TrainOptions,
    on_event: &mut dyn FnMut(TrainEvent),
    control: &Control,
) -> Result<Summary, TrainError> {
    let mut prepared = prepare(start, options, &mut |line| on_event(TrainEvent::Log(line)))?;
    let (device, device_name) = match resolve(options.device) {
        Ok(found) => found,
        Err(e) if options.cpu_fallback => {
            on_event(TrainEvent::Log(format!(
                "the GPU could not be used ({e}); training on the CPU"
            )));
            resolve(DeviceChoice::Cpu)?
        }
        Err(e) => return Err(e.into()),
    };
    pick_at_start(&mut prepared, &device, &mut |line| {
        on_event(TrainEvent::Log(line))
    })?;
    Loop::new(prepared, device, device_name, on_event)?.run(control)
}

/// The state of a running loop.
struct Loop<'a> {
    run: RunDir,
    run_config: RunConfig,
    /// The device without autodiff (validation, predictions).
    device: Device,
    config: TrainConfig,
    class_names: Vec<String>,
    device_name: String,
    model: Segmenter,
    optimizer: SegOptimizer,
    /// The encoder's parameters, frozen for the first epochs and given their own learning rate.
    encoder: ParamGroup,
    /// Whether the encoder is frozen now (`None`: not set yet in this session).
    frozen: Option<bool>,
    /// The class whose edges the boundary scores follow.
    road: Option<u8>,
    state: TrainState,
    metrics: MetricsLog,
    train_loader: SegLoader,
    val_loader: SegLoader,
    total_steps: usize,
    on_event: &'a mut dyn FnMut(TrainEvent),
    /// Wall time of this session (added to the state's elapsed time).
    started: Instant,
    elapsed_before: f64,
    /// Why the last checkpoint of the latest epoch could not be written, if it could not.
    unsaved: Option<RunDirError>,
    /// Validation mIoU of the weights in `best/` (a best epoch whose save failed is not there:
    /// the next epoch that beats what is on disk is saved instead).
    best_on_disk: Option<f64>,
    /// The model to distil from (inference copy, on `device`), with its weight and temperature.
    teacher: Option<Teacher>,
}

struct Teacher {
    model: Segmenter,
    weight: f32,
    temperature: f32,
}

impl Teacher {
    /// Loads `distill`'s run, which must predict the classes of `classes` (same names, same
    /// order).
    fn load(distill: &Distill, classes: &[String], device: &Device) -> Result<Self, TrainError> {
        let invalid = |why: String| {
            TrainError::Config(ConfigError::Invalid(format!(
                "distillation teacher {}: {why}",
                distill.teacher.display()
            )))
        };
        // As `Distill::checkpoint` says: best falls back to last.
        let loaded = match distill.checkpoint {
            CheckpointKind::Best => Predictor::load_best_or_last(&distill.teacher, device.clone()),
            kind => Predictor::load(&distill.teacher, kind, device.clone()),
        };
        let predictor = loaded.map_err(|e| invalid(e.to_string()))?;
        let theirs: Vec<&str> = predictor
            .classes()
            .iter()
            .map(|c| c.name.as_str())
            .collect();
        if theirs != classes.iter().map(String::as_str).collect::<Vec<_>>() {
            return Err(invalid(format!(
                "it predicts the classes {theirs:?}, this run has {classes:?}"
            )));
        }
        Ok(Self {
            model: predictor.model().clone(),
            weight: distill.weight,
            temperature: distill.temperature,
        })
    }

    /// The teacher's logits for a training batch, as a constant of the autodiff graph.
    fn targets(&self, images: &Tensor<4>) -> DistillTargets {
        let logits = self.model.forward_any_size(images.clone().inner()); // [batch, classes, h, w]
        DistillTargets {
            logits: logits.autodiff(),
            weight: self.weight,
            temperature: self.temperature,
        }
    }
}

impl<'a> Loop<'a> {
    fn new(
        prepared: Prepared,
        device: Device,
        device_name: String,
        on_event: &'a mut dyn FnMut(TrainEvent),
    ) -> Result<Self, TrainError> {
        let Prepared {
            run,
            run_config,
            train,
            val,
            index,
            resumed,
            choice,
            sizes: _,
        } = prepared;
        let config = run_config.train.clone();
        let autodiff = device.clone().autodiff();
        // Seeds weight initialisation (and dropout): equal seeds give equal runs.
        autodiff.seed(config.seed);
        // A resumed run with no checkpoint yet (killed early, or prepared here and started by
        // a job engine elsewhere) starts as a new run would: from its pretrained encoder or
        // `--init-from` run, not from random weights.
        let mut model = if resumed && run.existing_checkpoint(CheckpointKind::Last).is_some() {
            run_config.segmenter().init(&autodiff)
        } else {
            starting_model(&run_config, &autodiff, &mut |line| {
                on_event(TrainEvent::Log(line))
            })?
        };
        let mut optimizer = build_optimizer(&config.optimizer)
            .map_err(|e| TrainError::Config(ConfigError::Invalid(format!("optimizer: {e}"))))?;

        let mut state = TrainState {
            epoch: 0,
            batch: 0,
            step: 0,
            best_mean_iou: None,
            best_epoch: None,
            epochs_without_improvement: 0,
            metrics_bytes: 0,
            elapsed_secs: 0.0,
        };
        if resumed {
            match run.existing_checkpoint(CheckpointKind::Last) {
                Some(dir) => {
                    state = run.read_state(&dir)?;
                    model = super::run_dir::load_for_training(model, &dir, &mut |line| {
                        on_event(TrainEvent::Log(line))
                    })?;
                    let optim_path = dir.join("optimizer.bpk");
                    optimizer = optimizer.load_state_file(&optim_path).map_err(|e| {
                        RunDirError::Corrupt {
                            path: optim_path.clone(),
                            reason: format!("could not read the optimiser state: {e}"),
                        }
                    })?;
                    on_event(TrainEvent::Log(format!(
                        "resuming from {} (epoch {}, step {})",
                        dir.display(),
                        state.epoch + 1,
                        state.step
                    )));
                }
                None => on_event(TrainEvent::Log(
                    "no checkpoint yet: starting the run over".into(),
                )),
            }
        }
        let metrics = run.open_metrics(state.metrics_bytes)?;

        let workers = match config.num_workers {
            0 => default_workers(),
            n => n,
        };
        let train_cfg = LoaderConfig {
            size: config.size,
            crop: config.crop,
            augment: config.augment.clone(),
            normalize: config.normalize,
            batch_size: config.batch_size,
            num_workers: workers,
            seed: config.seed,
            shuffle: true,
            drop_last: true,
        };
        let val_cfg = LoaderConfig {
            crop: None,
            augment: None,
            batch_size: validation_batch(&config),
            shuffle: false,
            drop_last: false,
            ..train_cfg.clone()
        };
        let train_refs: Vec<&Sample> = train.iter().collect();
        let val_refs: Vec<&Sample> = val.iter().collect();
        let mut train_set = SegDataset::new(&index, &train_refs, &train_cfg);
        let road = road_class(run_config.classes.iter().map(|c| c.name.as_str()));
        match config.aux {
            Some(AuxTask::Boundary) => {
                let road = road.ok_or_else(|| {
                    ConfigError::Invalid("the boundary head needs a class named \"road\"".into())
                })?;
                train_set = train_set.with_aux(AuxSource::Boundary { road });
            }
            Some(AuxTask::Drivable) => {
                train_set = train_set.with_aux(AuxSource::drivable(&index, &train_refs));
            }
            None => {}
        }
        let train_loader = SegLoader::new(train_set, &train_cfg, autodiff);
        let val_loader = SegLoader::new(
            SegDataset::new(&index, &val_refs, &val_cfg),
            &val_cfg,
            device.clone(),
        );
        let steps_per_epoch = train_loader.batches_per_epoch();
        let total_steps = steps_per_epoch * config.epochs;
        let class_names: Vec<String> = run_config.classes.iter().map(|c| c.name.clone()).collect();
        on_event(TrainEvent::Started(Box::new(StartInfo {
            run_dir: run.root().to_path_buf(),
            device: device_name.clone(),
            resumed,
            epochs: config.epochs,
            start_epoch: state.epoch,
            steps_per_epoch,
            total_steps,
            start_step: state.step,
            train_images: train.len(),
            val_images: val.len(),
            batch_size: config.batch_size,
            class_names: class_names.clone(),
            choice,
        })));
        if let ScheduleConfig::WarmupCosine { warmup_steps, .. } = config.schedule {
            let warmup = warmup_for(warmup_steps, total_steps);
            if warmup < warmup_steps && state.step == 0 {
                on_event(TrainEvent::Log(format!(
                    "warm-up: {warmup} step{}, not the configured {warmup_steps} (at most a fifth \
                     of this run's {total_steps} steps, so that the rate peaks and decays)",
                    if warmup == 1 { "" } else { "s" }
                )));
            }
        }
        let teacher = match &config.distill {
            Some(distill) => Some(Teacher::load(distill, &class_names, &device)?),
            None => None,
        };
        let elapsed_before = state.elapsed_secs;
        let encoder = model.encoder_group();
        let best_on_disk = state.best_mean_iou;
        Ok(Self {
            run,
            run_config,
            device,
            config,
            class_names,
            device_name,
            model,
            optimizer,
            encoder,
            frozen: None,
            road,
            state,
            metrics,
            train_loader,
            val_loader,
            total_steps,
            on_event,
            started: Instant::now(),
            elapsed_before,
            unsaved: None,
            best_on_disk,
            teacher,
        })
    }

    fn elapsed(&self) -> f64 {
        self.elapsed_before + self.started.elapsed().as_secs_f64()
    }

    fn run(mut self, control: &Control) -> Result<Summary, TrainError> {
        let mut status = "completed";
        let mut message = None;
        let mut last_validation = None;
        'epochs: while self.state.epoch < self.config.epochs {
            let epoch = self.state.epoch;
            self.set_frozen(epoch < self.config.freeze_encoder_epochs);
            let mut window_start = Instant::now();
            let mut window_images = 0usize;
            let mut iter = self.train_loader.epoch_from(epoch, self.state.batch);
            loop {
                // The batch first: a stop between the last step and the validation lets the
                // epoch finish, so a stopped run never resumes into an empty epoch.
                let Some(batch) = iter.next() else { break };
                control.wait_while_paused();
                if control.stop_requested() {
                    status = "stopped";
                    message = Some(format!(
                        "stopped by the user at epoch {}, step {}",
                        epoch + 1,
                        self.state.step
                    ));
                    drop(iter);
                    self.checkpoint(CheckpointKind::Last)
                        .map_err(|error| self.not_saved(error))?;
                    self.unsaved = None;
                    break 'epochs;
                }
                let batch = batch.map_err(TrainError::Loader)?;
                let images = batch.images.dims()[0];
                let lr = lr_at(
                    &self.config.schedule,
                    self.config.lr,
                    self.state.step,
                    self.total_steps,
                );
                let mult = self.config.encoder_lr_mult;
                let rates = group_rates(lr, (mult != 1.0).then(|| (self.encoder.clone(), mult)));
                let extra = ExtraTargets {
                    aux: batch.aux.map(|targets| AuxTargets {
                        targets,
                        weight: self.config.aux_weight,
                    }),
                    distill: self.teacher.as_ref().map(|t| t.targets(&batch.images)),
                };
                let (model, result) = train_step_multi(
                    self.model,
                    &mut self.optimizer,
                    &self.config.loss,
                    extra,
                    rates,
                    batch.images,
                    batch.masks,
                );
                self.model = model;
                let loss = match result {
                    Ok(loss) => loss,
                    Err(error @ StepError::NonFiniteLoss(_)) => {
                        let checkpoint = self.run.existing_checkpoint(CheckpointKind::Last);
                        let summary = Summary {
                            status: "diverged".into(),
                            epochs: epoch,
                            steps: self.state.step,
                            best_epoch: self.state.best_epoch,
                            best_mean_iou: self.state.best_mean_iou,
                            last_validation: last_validation.clone(),
                            elapsed_secs: self.elapsed(),
                            device: self.device_name.clone(),
                            message: Some(error.to_string()),
                        };
                        self.run.write_summary(&summary)?;
                        return Err(TrainError::Diverged {
                            epoch: epoch + 1,
                            step: self.state.step + 1,
                            error,
                            checkpoint,
                        });
                    }
                    Err(e) => return Err(TrainError::Step(e)),
                };
                self.state.step += 1;
                self.state.batch += 1;
                window_images += images;
                if self.state.step.is_multiple_of(self.config.log_every.max(1)) {
                    let secs = window_start.elapsed().as_secs_f64();
                    let record = MetricRecord {
                        split: "train".into(),
                        epoch: epoch + 1,
                        step: self.state.step,
                        loss: loss as f64,
                        lr,
                        elapsed_secs: self.elapsed(),
                        images_per_sec: (secs > 0.0).then(|| window_images as f64 / secs),
                        pixel_accuracy: None,
                        mean_iou: None,
                        mean_f1: None,
                        classes: None,
                        boundary_f1: None,
                    };
                    self.metrics.append(&record)?;
                    (self.on_event)(TrainEvent::Step(record));
                    window_start = Instant::now();
                    window_images = 0;
                }
                test_hooks::maybe_abort_at_step(self.state.step);
                test_hooks::pace();
                let request = control.take_now();
                predict(
                    &self.model,
                    &self.run_config,
                    &self.device,
                    &self.run,
                    request,
                    self.on_event,
                );
            }

            let record = self.validate(epoch)?;
            last_validation = Some(record.clone());
            let request = control.epoch_request();
            predict(
                &self.model,
                &self.run_config,
                &self.device,
                &self.run,
                request,
                self.on_event,
            );
            let miou = record.mean_iou.unwrap_or(0.0);
            // Any gain makes a new best checkpoint; only a gain of `min_delta` resets the
            // early-stopping patience.
            let min_delta = self
                .config
                .early_stopping
                .as_ref()
                .map_or(0.0, |e| e.min_delta);
            let previous = self.state.best_mean_iou;
            let is_best = previous.is_none_or(|best| miou > best);
            let significant = previous.is_none_or(|best| miou > best + min_delta);
            self.state.epoch += 1;
            self.state.batch = 0;
            if is_best {
                self.state.best_mean_iou = Some(miou);
                self.state.best_epoch = Some(epoch + 1);
            }
            if significant {
                self.state.epochs_without_improvement = 0;
            } else {
                self.state.epochs_without_improvement += 1;
            }
            // A checkpoint that cannot be written (a full disk) is not the end of the run: the
            // previous one stays in place, the weights stay in memory, and the next epoch tries
            // again. Only a run that ends without a saved last checkpoint is an error.
            self.unsaved = self.keep_going(CheckpointKind::Last);
            if self.best_on_disk.is_none_or(|best| miou > best)
                && self.keep_going(CheckpointKind::Best).is_none()
            {
                self.best_on_disk = Some(miou);
            }
            if let Some(early) = &self.config.early_stopping
                && self.state.epochs_without_improvement >= early.patience
                && self.state.epoch < self.config.epochs
            {
                status = "early_stopped";
                let line = early_stop_message(early, &self.state);
                (self.on_event)(TrainEvent::Log(line.clone()));
                message = Some(line);
                break;
            }
        }
        if let Some(error) = self.unsaved.take() {
            return Err(self.not_saved(error));
        }
        let summary = Summary {
            status: status.into(),
            epochs: self.state.epoch,
            steps: self.state.step,
            best_epoch: self.state.best_epoch,
            best_mean_iou: self.state.best_mean_iou,
            last_validation: last_validation.or_else(|| last_val_record(&self.run)),
            elapsed_secs: self.elapsed(),
            device: self.device_name.clone(),
            message,
        };
        self.run.write_summary(&summary)?;
        Ok(summary)
    }

    /// Freezes or unfreezes the encoder (weights and batch-norm statistics) when `frozen`
    /// differs from its state, saying so. Runs that never freeze are left alone.
    fn set_frozen(&mut self, frozen: bool) {
        if self.config.freeze_encoder_epochs == 0 || self.frozen == Some(frozen) {
            return;
        }
        let group = self.encoder.clone();
        self.model = match frozen {
            true => self.model.clone().freeze_group(group),
            false => self.model.clone().unfreeze_group(group),
        };
        let epoch = self.state.epoch + 1;
        let line = match frozen {
            true => format!(
                "epoch {epoch}: the encoder's weights and batch-norm statistics are frozen until epoch {}",
                self.config.freeze_encoder_epochs
            ),
            false => format!(
                "epoch {epoch}: the encoder is unfrozen (learning rate x{})",
                self.config.encoder_lr_mult
            ),
        };
        if self.frozen.is_some() || frozen {
            (self.on_event)(TrainEvent::Log(line));
        }
        self.frozen = Some(frozen);
    }

    /// Validation pass at the training size; appends the `val` record.
    fn validate(&mut self, epoch: usize) -> Result<MetricRecord, TrainError> {
        let model = self.model.valid().fold_batch_norm();
        let mut confusion = ConfusionMatrix::new(self.class_names.len());
        let mut boundary = BoundaryScore::default();
        let (mut loss_sum, mut images) = (0.0f64, 0usize);
        for batch in self.val_loader.epoch(0) {
            let batch = batch.map_err(TrainError::Loader)?;
            let n = batch.images.dims()[0];
            let loss = eval_step_boundary(
                &model,
                &self.config.loss,
                batch.images,
                batch.masks,
                &mut confusion,
                self.road.map(|road| (road, &mut boundary)),
            )
            .map_err(TrainError::Step)?;
            loss_sum += loss as f64 * n as f64;
            images += n;
        }
        let report = confusion.report(&self.class_names);
        let record = MetricRecord {
            split: "val".into(),
            epoch: epoch + 1,
            step: self.state.step,
            loss: loss_sum / images.max(1) as f64,
            lr: lr_at(
                &self.config.schedule,
                self.config.lr,
                self.state.step.saturating_sub(1),
                self.total_steps,
            ),
            elapsed_secs: self.elapsed(),
            images_per_sec: None,
            pixel_accuracy: Some(report.pixel_accuracy),
            mean_iou: Some(report.mean_iou),
            mean_f1: Some(report.mean_f1),
            classes: Some(
                report
                    .classes
                    .iter()
                    .map(|c| ClassIou {
                        id: c.id,
                        name: c.name.clone(),
                        iou: c.iou,
                    })
                    .collect(),
            ),
            boundary_f1: boundary.f1(),
        };
        self.metrics.append(&record)?;
        (self.on_event)(TrainEvent::Validation(record.clone()));
        Ok(record)
    }

    /// Saves a checkpoint; a failure is logged and returned, and the loop goes on.
    fn keep_going(&mut self, kind: CheckpointKind) -> Option<RunDirError> {
        let Err(error) = self.checkpoint(kind) else {
            return None;
        };
        let kept = self.run.existing_checkpoint(kind).map_or_else(
            || "there is no earlier one".to_string(),
            |dir| format!("the previous one in {} is kept", dir.display()),
        );
        let retry = match kind {
            CheckpointKind::Last => "trying again after the next epoch",
            CheckpointKind::Best => "the next epoch that scores higher than it is saved instead",
        };
        (self.on_event)(TrainEvent::Log(format!(
            "could not write the {} checkpoint ({error}); {kept}; {retry}",
            match kind {
                CheckpointKind::Last => "last",
                CheckpointKind::Best => "best",
            }
        )));
        Some(error)
    }

    fn not_saved(&self, error: RunDirError) -> TrainError {
        TrainError::NotSaved {
            error,
            kept: self.run.existing_checkpoint(CheckpointKind::Last),
        }
    }

    fn checkpoint(&mut self, kind: CheckpointKind) -> Result<(), RunDirError> {
        self.metrics.sync()?;
        self.state.metrics_bytes = self.metrics.bytes();
        self.state.elapsed_secs = self.elapsed();
        let optimizer = (kind == CheckpointKind::Last).then_some(&self.optimizer);
        let path = self
            .run
            .save_checkpoint(kind, &self.model, optimizer, &self.state)?;
        (self.on_event)(TrainEvent::Checkpoint { kind, path });
        Ok(())
    }
}

/// Predicts the requested image (if any) with the current weights and reports the mask; a
/// failure is a log line, not an error. Takes the loop's parts, not the loop, so it can run
/// while the epoch's batch iterator borrows the loader.
fn predict(
    model: &Segmenter,
    run_config: &RunConfig,
    device: &Device,
    run: &RunDir,
    request: Option<PredictRequest>,
    on_event: &mut dyn FnMut(TrainEvent),
) {
    let Some(request) = request else { return };
    let predictor = Predictor::from_model(
        model,
        run_config.clone(),
        device.clone(),
        run.checkpoint_dir(CheckpointKind::Last),
    );
    on_event(match predictor.predict_full(&request.image) {
        Ok(p) => TrainEvent::Prediction {
            tag: request.tag,
            mask: p.mask,
            confidence: p.confidence,
            aux: p.aux,
        },
        Err(e) => TrainEvent::Log(format!("prediction failed: {e}")),
    });
}

/// The last validation line of a run's metrics, for a summary after a resume that validated
/// nothing new.
fn last_val_record(run: &RunDir) -> Option<MetricRecord> {
    super::run_dir::read_metrics(&run.metrics_path())
        .ok()?
        .into_iter()
        .rev()
        .find(|r| r.split == "val")
}

/// Loads checkpoint weights into `model` (which fixes the architecture and device).
pub fn load_model(model: UNet, path: &Path) -> Result<UNet, RunDirError> {
    model.try_load_file(path).map_err(|e| RunDirError::Corrupt {
        path: path.to_path_buf(),
        reason: format!("could not load the model: {e}"),
    })
}

/// Crash injection for the resume test: `ROADSEG_TEST_ABORT_AT_STEP=N` aborts the process (as
/// abruptly as a kill) right after step N's metrics line, mid-epoch, past the last checkpoint.
/// `ROADSEG_TEST_STEP_DELAY_MS=N` sleeps N ms after each step, so that the tests of signals and
/// job engines can catch a tiny run mid-epoch (its numbers do not change).
mod test_hooks {
    pub fn pace() {
        if let Some(ms) = std::env::var("ROADSEG_TEST_STEP_DELAY_MS")
            .ok()
            .and_then(|v| v.parse::<u64>().ok())
        {
            std::thread::sleep(std::time::Duration::from_millis(ms));
        }
    }

    pub fn maybe_abort_at_step(step: usize) {
        if let Some(n) = std::env::var("ROADSEG_TEST_ABORT_AT_STEP")
            .ok()
            .and_then(|v| v.parse::<usize>().ok())
            && n == step
        {
            std::process::abort();
        }
    }
}
