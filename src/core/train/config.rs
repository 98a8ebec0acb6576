//! Everything a training run needs, as one serialisable config.
//!
//! A user's JSON config may be partial: it is deep-merged over [`TrainConfig::default`], so
//! `{"model": {"base_width": 32}, "epochs": 50}` changes just those fields. A run folder's own
//! `config.json` is read too (its `train` block), so a run can be reproduced from it. A key
//! that is not a field, or a value of the wrong type, is an error naming the key's path:
//! a config that silently drops what it does not know trains something else than asked.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::budget::Auto;
use super::loss::LossConfig;
use super::optim::{OptimizerConfig, ScheduleConfig};
use super::run_dir::CheckpointKind;
use crate::core::dataset::augment::{AugmentConfig, Normalize};
use crate::core::dataset::classes::{ClassInfo, ClassTable};
use crate::core::dataset::image_io::{MAX_PIXELS, MAX_SIDE};
use crate::core::model::segmenter::{AuxTask, Encoder, SegmenterConfig};
use crate::core::model::unet::UNetConfig;

/// Why a config cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{file}: {source}")]
    Read {
        file: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{file}: not a valid training config: {reason}")]
    Parse { file: PathBuf, reason: String },
    #[error("invalid training config: {0}")]
    Invalid(String),
}

/// Stop when validation mIoU has not improved by `min_delta` for `patience` epochs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EarlyStopping {
    pub patience: usize,
    pub min_delta: f64,
}

/// Knowledge distillation (Hinton et al. 2015): a trained run, the teacher, predicts every
/// training batch, and the model also learns to match its softened class probabilities, which
/// say more per pixel than a label does (which wrong classes are close). `roadseg prune` uses
/// it to fine-tune a pruned model towards the original.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Distill {
    /// The teacher's run directory; same classes, any architecture.
    pub teacher: PathBuf,
    /// Which of its checkpoints (best falls back to last).
    #[serde(default = "best_checkpoint")]
    pub checkpoint: CheckpointKind,
    /// Weight of the distillation term next to the labels' loss.
    #[serde(default = "one")]
    pub weight: f32,
    /// Softmax temperature of both sides (> 1 softens them); the term is scaled by its square
    /// so that its gradients keep their size.
    #[serde(default = "two")]
    pub temperature: f32,
}

fn best_checkpoint() -> CheckpointKind {
    CheckpointKind::Best
}

fn one() -> f32 {
    1.0
}

fn two() -> f32 {
    2.0
}

/// Hyper-parameters of a run (the dataset and output folder are given separately).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TrainConfig {
    /// The network; `num_classes` is taken from the dataset.
    pub model: UNetConfig,
    pub epochs: usize,
    pub batch_size: usize,
    /// Input size (width, height): the whole image is seen at this size in validation, `eval`,
    /// `predict` and the studio, which sets the scale; multiples of `2^depth` avoid padding.
    pub size: [u32; 2],
    /// Training crops (width, height) of the images at that scale, randomly zoomed by
    /// `augment.scale` and placed; `None`: each step sees whole images.
    pub crop: Option<[u32; 2]>,
    /// Base learning rate; the schedule shapes it over the run.
    pub lr: f64,
    pub optimizer: OptimizerConfig,
    pub schedule: ScheduleConfig,
    pub loss: LossConfig,
    /// Compute cross-entropy/focal class weights from the training masks' pixel counts
    /// (overrides `loss.class_weights`).
    pub class_weights_auto: bool,
    /// `None` turns augmentation off.
    pub augment: Option<AugmentConfig>,
    pub normalize: Normalize,
    /// Seeds weights, shuffling and augmentation: equal seeds give equal runs.
    pub seed: u64,
    /// Loader threads; 0 = one per core.
    pub num_workers: usize,
    /// Write a training metrics line every this many steps.
    pub log_every: usize,
    pub early_stopping: Option<EarlyStopping>,
    /// The encoder: the plain UNet's own, or a ResNet under a UNet decoder (`model` then sets
    /// the decoder's width, up-sampling and initialisation).
    pub encoder: Encoder,
    /// torchvision-layout ImageNet weights for a ResNet encoder (`.pth`, `.pt` or
    /// `.safetensors`), loaded when the run starts.
    pub pretrained: Option<PathBuf>,
    /// An earlier run to start from (its best weights, else its last): the architecture is
    /// that run's; the head is re-initialised when the class tables differ.
    pub init_from: Option<PathBuf>,
    /// The encoder's weights and batch-norm statistics stay frozen for this many first epochs.
    pub freeze_encoder_epochs: usize,
    /// The encoder's learning rate as a multiple of the rest's (once unfrozen).
    pub encoder_lr_mult: f64,
    /// A second output head trained jointly.
    pub aux: Option<AuxTask>,
    /// Weight of the second head's loss in the sum.
    pub aux_weight: f32,
    /// Learn from a trained run's predictions too (knowledge distillation).
    pub distill: Option<Distill>,
    /// Pick the epochs, the input size (and crop) and the width from a time budget measured
    /// when the run starts ([`Auto`]); `None`: train exactly as configured. A run's
    /// `config.json` records what was picked, with `auto: null`.
    pub auto: Option<Auto>,
}

impl Default for TrainConfig {
    /// What `roadseg train` without flags does: epochs, size and width picked from the default
    /// budget ([`Auto`]); the values below are what a run keeps of them when `auto` is off.
    fn default() -> Self {
        Self {
            // Sized so that a run on the bundled sample converges on a 2-core CPU in about a
            // minute; the budget picks larger inputs and widths where it has the time.
            model: UNetConfig::new(0).with_base_width(8),
            epochs: 45,
            batch_size: 8,
            size: [128, 96],
            crop: None,
            lr: 3e-3,
            optimizer: OptimizerConfig::default(),
            schedule: ScheduleConfig::WarmupCosine {
                warmup_steps: 20,
                min_lr: 1e-5,
            },
            loss: LossConfig::default(),
            class_weights_auto: false,
            augment: Some(AugmentConfig::default()),
            normalize: Normalize::default(),
            seed: 42,
            num_workers: 0,
            log_every: 1,
            early_stopping: Some(EarlyStopping {
                patience: 10,
                min_delta: 1e-3,
            }),
            encoder: Encoder::Unet,
            pretrained: None,
            init_from: None,
            freeze_encoder_epochs: 0,
            encoder_lr_mult: 1.0,
            aux: None,
            aux_weight: 0.4,
            distill: None,
            auto: Some(Auto::default()),
        }
    }
}

/// A config file as `--config` reads it.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigFile {
    pub train: TrainConfig,
    /// The dataset (folder and layout) of a run folder's `config.json`; `None` for a plain
    /// training config.
    pub run_data: Option<(PathBuf, String)>,
}

/// The top-level keys of a run folder's `config.json` ([`RunConfig`]).
const RUN_CONFIG_KEYS: [&str; 8] = [
    "data",
    "format",
    "classes",
    "model",
    "train",
    "device",
    "roadseg_version",
    "labels_snapshot",
];

impl TrainConfig {
    /// Reads a (possibly partial) JSON config over the defaults, or a run folder's
    /// `config.json` (the run's hyper-parameters, and its dataset as `run_data`).
    pub fn load(file: &Path) -> Result<ConfigFile, ConfigError> {
        let text = std::fs::read_to_string(file).map_err(|source| ConfigError::Read {
            file: file.to_path_buf(),
            source,
        })?;
        parse_config_file(&text).map_err(|reason| ConfigError::Parse {
            file: file.to_path_buf(),
            reason,
        })
    }

    /// Parses a (possibly partial) JSON config over the defaults (or a run's `config.json`,
    /// whose `train` block is taken).
    pub fn from_json(text: &str) -> Result<Self, String> {
        parse_config_file(text).map(|file| file.train)
    }

    /// Checks every part against the number of classes of the dataset.
    pub fn validate(&self, num_classes: usize) -> Result<(), ConfigError> {
        let bad = |m: String| Err(ConfigError::Invalid(m));
        if self.epochs == 0 {
            return bad("epochs must be at least 1".into());
        }
        if self.batch_size == 0 {
            return bad("batch_size must be at least 1".into());
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return bad(format!("lr must be > 0, got {}", self.lr));
        }
        // Any size works (the model pads to a multiple of 2^depth); multiples avoid the waste.
        let [w, h] = self.size;
        if self.size.contains(&0) {
            return bad(format!("size {w}x{h} is empty"));
        }
        // The bounds of a garbage config, not of a good one: past them a run or a prediction
        // would only end in an out-of-memory abort.
        if w > MAX_SIDE || h > MAX_SIDE || w as u64 * h as u64 > MAX_PIXELS {
            return bad(format!(
                "size {w}x{h} is larger than any image roadseg reads ({MAX_SIDE} a side, {} megapixels)",
                MAX_PIXELS >> 20
            ));
        }
        if let Some([cw, ch]) = self.crop {
            if cw == 0 || ch == 0 {
                return bad(format!("crop {cw}x{ch} is empty"));
            }
            if cw > w || ch > h {
                return bad(format!(
                    "crop {cw}x{ch} is larger than the input size {w}x{h} (a crop is a window of \
                     the image at that size; leave crop out to train on whole images)"
                ));
            }
        }
        if self.batch_size > MAX_BATCH {
            return bad(format!(
                "batch_size {} is over {MAX_BATCH}",
                self.batch_size
            ));
        }
        if self.num_workers > MAX_WORKERS {
            return bad(format!(
                "num_workers {} is over {MAX_WORKERS}",
                self.num_workers
            ));
        }
        let model = UNetConfig {
            num_classes,
            ..self.model.clone()
        };
        validate_model(&model)?;
        SegmenterConfig::new(model)
            .with_encoder(self.encoder)
            .validate()
            .map_err(|e| ConfigError::Invalid(e.to_string()))?;
        if self.pretrained.is_some() && self.encoder.resnet().is_none() {
            return bad(format!(
                "pretrained weights need a ResNet encoder (resnet18, resnet34, resnet50), not {}",
                self.encoder
            ));
        }
        if !(self.encoder_lr_mult.is_finite() && self.encoder_lr_mult > 0.0) {
            return bad(format!(
                "encoder_lr_mult must be > 0, got {}",
                self.encoder_lr_mult
            ));
        }
        if self.log_every == 0 {
            return bad("log_every must be at least 1".into());
        }
        if let Some(augment) = &self.augment {
            validate_augment(augment)?;
        }
        validate_normalize(&self.normalize)?;
        if let Some(early) = &self.early_stopping {
            // Patience 0 would stop after any epoch; `null` is how to turn early stopping off.
            if early.patience == 0 {
                return bad(
                    "early_stopping.patience must be at least 1 (null turns early stopping off)"
                        .into(),
                );
            }
            // mIoU lies in [0, 1]: a gain of 1 or more can never happen.
            if !(early.min_delta.is_finite() && (0.0..1.0).contains(&early.min_delta)) {
                return bad(format!(
                    "early_stopping.min_delta must be in [0, 1) (a gain in mIoU), got {}",
                    early.min_delta
                ));
            }
        }
        if let Some(secs) = self.auto.as_ref().and_then(|a| a.budget_secs)
            && !(secs.is_finite() && secs > 0.0)
        {
            return bad(format!("auto.budget_secs must be > 0, got {secs}"));
        }
        if !(self.aux_weight.is_finite() && self.aux_weight >= 0.0) {
            return bad(format!("aux_weight must be >= 0, got {}", self.aux_weight));
        }
        if let Some(d) = &self.distill {
            if !(d.weight.is_finite() && d.weight >= 0.0) {
                return bad(format!("distill.weight must be >= 0, got {}", d.weight));
            }
            if !(d.temperature.is_finite() && d.temperature > 0.0) {
                return bad(format!(
                    "distill.temperature must be > 0, got {}",
                    d.temperature
                ));
            }
        }
        self.loss
            .validate(num_classes)
            .map_err(|e| ConfigError::Invalid(e.to_string()))?;
        self.optimizer
            .validate()
            .map_err(|e| ConfigError::Invalid(e.to_string()))?;
        self.schedule
            .validate()
            .map_err(|e| ConfigError::Invalid(e.to_string()))?;
        Ok(())
    }
}

/// Largest batch and loader thread count a config may ask for.
pub const MAX_BATCH: usize = 1024;
pub const MAX_WORKERS: usize = 256;
/// Largest model a config may describe: 2^28 parameters (1 GiB of f32 weights; the classic
/// 64-wide, depth-4 UNet has 31 M).
pub const MAX_PARAMETERS: u128 = 1 << 28;

/// An upper bound of a UNet's parameter count. A stage of width `w` has two `3x3` convolutions
/// in the encoder (`9 w^2 / 2 + 9 w^2`) and, above the bottleneck, an up-sampling and two more in
/// the decoder (at most `8 w^2 + 18 w^2 + 9 w^2`): under `54 w^2` in all; the bottleneck only
/// the encoder's `18 w^2`.
pub fn parameter_bound(model: &UNetConfig) -> u128 {
    let depth = model.depth.min(32) as u32;
    let base = model.base_width as u128;
    let (inputs, classes) = (model.in_channels as u128, model.num_classes as u128);
    (0..=depth).fold(0u128, |sum, s| {
        let w = base.saturating_mul(1 << s);
        let convs: u128 = if s == depth { 18 } else { 54 };
        sum.saturating_add(convs.saturating_mul(w).saturating_mul(w))
            .saturating_add(w.saturating_mul(9 * inputs + classes))
    })
}

/// Augmentation parameters in the ranges where they mean something.
fn validate_augment(a: &AugmentConfig) -> Result<(), ConfigError> {
    let bad = |m: String| Err(ConfigError::Invalid(m));
    if !(a.hflip.is_finite() && (0.0..=1.0).contains(&a.hflip)) {
        return bad(format!(
            "augment.hflip is a probability in [0, 1], got {}",
            a.hflip
        ));
    }
    let [lo, hi] = a.scale;
    if !(lo.is_finite() && hi.is_finite() && lo > 0.0 && lo <= hi && hi <= 16.0) {
        return bad(format!(
            "augment.scale must be [min, max] with 0 < min <= max <= 16, got [{lo}, {hi}]"
        ));
    }
    if !(a.rotate_deg.is_finite() && (0.0..=180.0).contains(&a.rotate_deg)) {
        return bad(format!(
            "augment.rotate_deg must be in [0, 180], got {}",
            a.rotate_deg
        ));
    }
    // Factors are drawn from [1 - x, 1 + x]: past 1 they could turn negative.
    for (key, x) in [
        ("brightness", a.brightness),
        ("contrast", a.contrast),
        ("saturation", a.saturation),
    ] {
        if !(x.is_finite() && (0.0..=1.0).contains(&x)) {
            return bad(format!("augment.{key} must be in [0, 1], got {x}"));
        }
    }
    if !(a.hue.is_finite() && (0.0..=0.5).contains(&a.hue)) {
        return bad(format!(
            "augment.hue is a fraction of a turn in [0, 0.5], got {}",
            a.hue
        ));
    }
    Ok(())
}

/// `(x - mean) / std` needs finite means and positive deviations.
fn validate_normalize(n: &Normalize) -> Result<(), ConfigError> {
    if let Some(m) = n.mean.iter().find(|m| !m.is_finite()) {
        return Err(ConfigError::Invalid(format!(
            "normalize.mean must be finite, got {m}"
        )));
    }
    if let Some(s) = n.std.iter().find(|s| !(s.is_finite() && **s > 0.0)) {
        return Err(ConfigError::Invalid(format!(
            "normalize.std must be > 0 (it divides), got {s}"
        )));
    }
    Ok(())
}

/// The model's own checks, then the size bound.
fn validate_model(model: &UNetConfig) -> Result<(), ConfigError> {
    model
        .validate()
        .map_err(|e| ConfigError::Invalid(e.to_string()))?;
    let params = parameter_bound(model);
    if params > MAX_PARAMETERS {
        return Err(ConfigError::Invalid(format!(
            "UNet width {} depth {} would have up to {} M parameters; at most {} M",
            model.base_width,
            model.depth,
            params / 1_000_000,
            MAX_PARAMETERS / 1_000_000
        )));
    }
    Ok(())
}

/// See [`TrainConfig::load`].
fn parse_config_file(text: &str) -> Result<ConfigFile, String> {
    let value: serde_json::Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
    let serde_json::Value::Object(mut top) = value else {
        return Err("expected a JSON object".into());
    };
    // A training config has no `train` key: one that has it is a run folder's config.json.
    let (overrides, prefix, run_data) = match top.remove("train") {
        Some(train) => {
            if let Some(key) = top.keys().find(|k| !RUN_CONFIG_KEYS.contains(&k.as_str())) {
                return Err(format!(
                    "unknown key {key:?} (a run's config.json has {})",
                    RUN_CONFIG_KEYS.join(", ")
                ));
            }
            let data = top.get("data").and_then(|v| v.as_str()).map(PathBuf::from);
            let format = top.get("format").and_then(|v| v.as_str());
            let run_data = data.zip(format.map(str::to_string));
            (train, "train.", run_data)
        }
        None => (serde_json::Value::Object(top), "", None),
    };
    if !overrides.is_object() {
        return Err(format!("{prefix}: expected a JSON object"));
    }
    let mut merged = serde_json::to_value(TrainConfig::default()).map_err(|e| e.to_string())?;
    merge(&mut merged, overrides.clone());
    let mut train: TrainConfig = serde_path_to_error::deserialize(merged).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        match path.as_str() {
            "." => inner.to_string(),
            _ => format!("{prefix}{path}: {inner}"),
        }
    })?;
    keep_given(&mut train, &overrides, !prefix.is_empty());
    // Whatever serde skipped is not in the config read back: that key was not a field.
    let read = serde_json::to_value(&train).map_err(|e| e.to_string())?;
    let mut unknown = Vec::new();
    unknown_keys(&overrides, &read, prefix, &mut unknown);
    if !unknown.is_empty() {
        return Err(format!(
            "unknown key{} {} (not a setting of a training run)",
            if unknown.len() == 1 { "" } else { "s" },
            unknown.join(", ")
        ));
    }
    Ok(ConfigFile { train, run_data })
}

/// A config's own values win over the budget: a key it gives (`epochs`; `size` or `crop`;
/// `model.base_width` or `model.widths`) is not picked, unless its `auto` block says outright
/// that it is (`"auto": {"epochs": true}`), as a config written out whole says. A run folder's
/// `config.json` (`run`) describes a run as it trained: without an `auto` key (runs from before
/// budgets) nothing is picked.
fn keep_given(train: &mut TrainConfig, given: &serde_json::Value, run: bool) {
    let has = |path: &[&str]| path.iter().try_fold(given, |v, key| v.get(key)).is_some();
    if run && !has(&["auto"]) {
        train.auto = None;
    }
    let Some(auto) = train.auto.as_mut() else {
        return;
    };
    let said = |flag: &str| has(&["auto", flag]);
    if !said("epochs") {
        auto.epochs &= !has(&["epochs"]);
    }
    if !said("size") {
        auto.size &= !(has(&["size"]) || has(&["crop"]));
    }
    if !said("width") {
        auto.width &= !(has(&["model", "base_width"]) || has(&["model", "widths"]));
    }
}

/// Appends to `out` the path of every key of `given` that `read` lacks, at any depth.
fn unknown_keys(
    given: &serde_json::Value,
    read: &serde_json::Value,
    path: &str,
    out: &mut Vec<String>,
) {
    let (serde_json::Value::Object(given), serde_json::Value::Object(read)) = (given, read) else {
        return;
    };
    for (key, value) in given {
        let here = format!("{path}{key}");
        match read.get(key) {
            Some(slot) => unknown_keys(value, slot, &format!("{here}."), out),
            None => out.push(here),
        }
    }
}

/// The settings that differ between two configs, as `(key path, a, b)`, at any depth.
pub fn differences(a: &TrainConfig, b: &TrainConfig) -> Vec<(String, String, String)> {
    fn walk(
        a: &serde_json::Value,
        b: &serde_json::Value,
        path: &str,
        out: &mut Vec<(String, String, String)>,
    ) {
        match (a, b) {
            (serde_json::Value::Object(x), serde_json::Value::Object(y)) => {
                let mut keys: Vec<&String> = x.keys().chain(y.keys()).collect();
                keys.sort();
                keys.dedup();
                for key in keys {
                    let null = serde_json::Value::Null;
                    let here = match path {
                        "" => key.clone(),
                        _ => format!("{path}.{key}"),
                    };
                    walk(
                        x.get(key).unwrap_or(&null),
                        y.get(key).unwrap_or(&null),
                        &here,
                        out,
                    );
                }
            }
            _ if a != b => out.push((path.to_string(), a.to_string(), b.to_string())),
            _ => {}
        }
    }
    let (Ok(a), Ok(b)) = (serde_json::to_value(a), serde_json::to_value(b)) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    walk(&a, &b, "", &mut out);
    out
}

/// Recursively overlays `overrides` onto `base`: objects merge key by key, anything else
/// replaces.
fn merge(base: &mut serde_json::Value, overrides: serde_json::Value) {
    match (base, overrides) {
        (serde_json::Value::Object(base), serde_json::Value::Object(overrides)) => {
            for (key, value) in overrides {
                match base.get_mut(&key) {
                    Some(slot) => merge(slot, value),
                    None => {
                        base.insert(key, value);
                    }
                }
            }
        }
        (slot, value) => *slot = value,
    }
}

/// What a run directory's `config.json` holds: enough to reproduce the run and to rebuild the
/// model for inference.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunConfig {
    /// The dataset trained on (absolute).
    pub data: PathBuf,
    /// Its layout (`native`, `camvid`, ...).
    pub format: String,
    /// Train classes; ids index the model's output channels.
    pub classes: Vec<ClassInfo>,
    /// The network exactly as built (`num_classes` filled in).
    pub model: UNetConfig,
    /// The hyper-parameters (`loss.class_weights` filled in when computed automatically).
    pub train: TrainConfig,
    /// Device the run was started on, as the user asked for it (`cpu`, `gpu`, `auto`).
    pub device: String,
    /// roadseg version that wrote this file.
    pub roadseg_version: String,
    /// The labels were copied into the run at start (`labels/` beside this file) and the run
    /// trains on those copies, so later edits to the dataset's masks do not leak in.
    #[serde(default)]
    pub labels_snapshot: bool,
}

impl RunConfig {
    /// The network's architecture: `model` with the encoder and second head of `train`.
    pub fn segmenter(&self) -> SegmenterConfig {
        SegmenterConfig::new(self.model.clone())
            .with_encoder(self.train.encoder)
            .with_aux(self.train.aux)
    }

    /// Checks that the config describes a model that can be built and used: a valid class
    /// table that the model's outputs match, and hyper-parameters within bounds. A run folder's
    /// `config.json` is checked this way on every read, since it may have been edited, cut
    /// short or swapped since it was written. The error is the reason (the caller names the
    /// file).
    pub fn validate(&self) -> Result<(), String> {
        if let Err(e) = ClassTable(self.classes.clone()).validate(Path::new("config.json")) {
            return Err(match e {
                crate::core::dataset::DatasetError::BadClassTable { reason, .. } => {
                    format!("classes: {reason}")
                }
                other => other.to_string(),
            });
        }
        if self.model.num_classes != self.classes.len() {
            return Err(format!(
                "the model has {} outputs for {} classes",
                self.model.num_classes,
                self.classes.len()
            ));
        }
        validate_model(&self.model).map_err(|e| e.to_string())?;
        self.train
            .validate(self.classes.len())
            .map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partial_json_overrides_only_the_given_fields() {
        let cfg = TrainConfig::from_json(r#"{"distill": {"teacher": "runs/big"}}"#).unwrap();
        let distill = cfg.distill.expect("set");
        assert_eq!(distill.teacher, Path::new("runs/big"));
        assert_eq!(
            (distill.checkpoint, distill.weight, distill.temperature),
            (CheckpointKind::Best, 1.0, 2.0)
        );
        let cfg = TrainConfig {
            distill: Some(Distill {
                temperature: 0.0,
                ..distill
            }),
            ..TrainConfig::default()
        };
        let err = cfg.validate(3).unwrap_err().to_string();
        assert!(err.contains("distill.temperature must be > 0"), "{err}");

        let cfg = TrainConfig::from_json(r#"{"epochs": 3, "model": {"base_width": 4}}"#).unwrap();
        let default = TrainConfig::default();
        assert_eq!(cfg.epochs, 3);
        assert_eq!(cfg.model.base_width, 4);
        assert_eq!(cfg.model.depth, default.model.depth);
        assert_eq!(cfg.lr, default.lr);
        assert_eq!(cfg.schedule, default.schedule);
    }

    #[test]
    fn unknown_values_are_rejected_with_the_reason() {
        let err = TrainConfig::from_json(r#"{"epochs": "many"}"#).unwrap_err();
        assert!(err.contains("invalid type"), "{err}");
        let err = TrainConfig::from_json("{").unwrap_err();
        assert!(err.contains("EOF"), "{err}");
    }

    #[test]
    fn unknown_keys_and_wrong_types_name_their_path() {
        for (text, expected) in [
            (r#"{"bogus_key": 1}"#, "unknown key bogus_key"),
            (
                r#"{"loss": {"ignore_indx": 3}}"#,
                "unknown key loss.ignore_indx",
            ),
            (
                r#"{"model": {"width": 8}, "augment": {"flip": 0.5}}"#,
                "model.width",
            ),
            (
                r#"{"model": {"width": 8}, "augment": {"flip": 0.5}}"#,
                "augment.flip",
            ),
            (
                r#"{"model": {"width": 8}, "augment": {"flip": 0.5}}"#,
                "unknown keys ",
            ),
            (
                r#"{"schedule": {"type": "constant", "min_lr": 0.1}}"#,
                "unknown key schedule.min_lr",
            ),
            (r#"{"loss": {"ce": "x"}}"#, "loss.ce: invalid type"),
            (
                r#"{"train": {"model": {"depth": "deep"}}}"#,
                "train.model.depth: invalid type",
            ),
            (r#"{"train": {}, "extra": 1}"#, "unknown key \"extra\""),
            (r#"{"train": {"epoch": 2}}"#, "unknown key train.epoch"),
            ("[1]", "expected a JSON object"),
        ] {
            let err = TrainConfig::from_json(text).unwrap_err();
            assert!(err.contains(expected), "{text}: {err}");
        }
        // Known keys of every kind still read, nulls included.
        let cfg = TrainConfig::from_json(
            r#"{"loss": {"ignore_index": 3}, "early_stopping": null, "distill": {"teacher": "t"},
                "optimizer": {"grad_clip": {"norm": 1.0}}, "model": {"widths": [4, 8, 8]}}"#,
        )
        .unwrap();
        assert_eq!(cfg.loss.ignore_index, Some(3));
        assert_eq!(cfg.early_stopping, None);
    }

    #[test]
    fn a_run_folders_config_reads_as_the_run_was_trained() {
        let train = TrainConfig {
            epochs: 2,
            size: [64, 48],
            lr: 0.01,
            loss: LossConfig {
                ignore_index: Some(1),
                ..LossConfig::default()
            },
            ..TrainConfig::default()
        };
        let run = RunConfig {
            data: "/data/roads".into(),
            format: "camvid".into(),
            classes: vec![],
            model: UNetConfig {
                num_classes: 3,
                ..train.model.clone()
            },
            train: train.clone(),
            device: "cpu".into(),
            roadseg_version: "0.1.0".into(),
            labels_snapshot: true,
        };
        let text = serde_json::to_string_pretty(&run).unwrap();
        let file = parse_config_file(&text).unwrap();
        assert_eq!(file.train, train);
        assert_eq!(
            file.run_data,
            Some((PathBuf::from("/data/roads"), "camvid".to_string()))
        );
        // A partial one in the same shape overrides just its fields.
        let cfg = TrainConfig::from_json(r#"{"train": {"epochs": 2}}"#).unwrap();
        assert_eq!((cfg.epochs, cfg.size), (2, TrainConfig::default().size));
    }

    #[test]
    fn impossible_values_are_refused_naming_the_key() {
        let check = |json: &str| TrainConfig::from_json(json).unwrap().validate(3);
        for (json, expected) in [
            (
                r#"{"normalize": {"mean": [0, 0, 0], "std": [0, 1, 1]}}"#,
                "normalize.std must be > 0",
            ),
            (r#"{"augment": {"hflip": 2.0}}"#, "augment.hflip"),
            (r#"{"augment": {"scale": [1.5, 0.8]}}"#, "augment.scale"),
            (r#"{"augment": {"brightness": 1.5}}"#, "augment.brightness"),
            (
                r#"{"early_stopping": {"patience": 0, "min_delta": 0.0}}"#,
                "early_stopping.patience",
            ),
            (
                r#"{"early_stopping": {"patience": 2, "min_delta": 1.5}}"#,
                "early_stopping.min_delta",
            ),
            (
                r#"{"loss": {"ignore_index": 3}}"#,
                "ignore_index 3 is not a class id",
            ),
            (r#"{"log_every": 0}"#, "log_every"),
        ] {
            let err = check(json).unwrap_err().to_string();
            assert!(err.contains(expected), "{json}: {err}");
        }
        check(r#"{"loss": {"ignore_index": 2}, "augment": null}"#).unwrap();
    }

    #[test]
    fn differences_name_each_changed_setting() {
        let a = TrainConfig::default();
        let b = TrainConfig {
            lr: 0.01,
            optimizer: OptimizerConfig {
                kind: crate::core::train::optim::OptimizerKind::sgd(),
                ..OptimizerConfig::default()
            },
            ..a.clone()
        };
        let keys: Vec<String> = differences(&a, &b).into_iter().map(|d| d.0).collect();
        assert!(keys.contains(&"lr".to_string()), "{keys:?}");
        assert!(
            keys.iter().any(|k| k.starts_with("optimizer.kind")),
            "{keys:?}"
        );
        assert!(differences(&a, &a).is_empty());
    }

    #[test]
    fn a_configs_own_values_are_not_picked_by_the_budget() {
        let auto = |json: &str| TrainConfig::from_json(json).unwrap().auto;
        // Nothing given: everything picked.
        assert_eq!(auto("{}"), Some(Auto::default()));
        // Each value given is kept; the rest is picked.
        let some = auto(r#"{"epochs": 20, "model": {"base_width": 16}}"#).unwrap();
        assert_eq!((some.epochs, some.size, some.width), (false, true, false));
        assert!(
            !auto(r#"{"crop": [64, 64], "size": [128, 96]}"#)
                .unwrap()
                .size
        );
        // Unless the auto block says it is picked (a config written out whole).
        let said = auto(r#"{"epochs": 20, "auto": {"epochs": true, "budget_secs": 90}}"#).unwrap();
        assert_eq!((said.epochs, said.budget_secs), (true, Some(90.0)));
        assert_eq!(auto(r#"{"auto": null}"#), None);
        // A run folder's config without an auto key (from before budgets): nothing picked.
        assert_eq!(auto(r#"{"train": {"epochs": 2}}"#), None);
        assert_eq!(
            auto(r#"{"train": {"auto": {"budget_secs": 60}}}"#).map(|a| a.budget_secs),
            Some(Some(60.0))
        );
    }

    #[test]
    fn round_trips_through_json() {
        let cfg = TrainConfig::default();
        let text = serde_json::to_string(&cfg).unwrap();
        assert_eq!(TrainConfig::from_json(&text).unwrap(), cfg);
    }

    #[test]
    fn sizes_and_rates_are_checked() {
        let mut cfg = TrainConfig {
            size: [0, 192],
            ..TrainConfig::default()
        };
        let err = cfg.validate(7).unwrap_err().to_string();
        assert!(err.contains("empty"), "{err}");
        cfg.size = [250, 190];
        cfg.validate(7).unwrap();
        cfg.lr = f64::NAN;
        assert!(cfg.validate(7).is_err());
        cfg.lr = 1e-3;
        cfg.model.depth = 0;
        assert!(cfg.validate(7).is_err());
        cfg.model.depth = 2;
        cfg.pretrained = Some("r18.pth".into());
        let err = cfg.validate(7).unwrap_err().to_string();
        assert!(err.contains("ResNet encoder"), "{err}");
        cfg.encoder = Encoder::Resnet18;
        cfg.validate(7).unwrap();
        cfg.encoder_lr_mult = 0.0;
        assert!(cfg.validate(7).is_err());
    }

    #[test]
    fn configs_from_before_encoders_read_with_the_plain_unet() {
        let old = r#"{"epochs": 3, "model": {"base_width": 4, "depth": 2}}"#;
        let cfg = TrainConfig::from_json(old).unwrap();
        assert_eq!(cfg.encoder, Encoder::Unet);
        assert_eq!(
            (cfg.aux, cfg.freeze_encoder_epochs, cfg.encoder_lr_mult),
            (None, 0, 1.0)
        );
        let new = r#"{"encoder": "resnet34", "aux": "boundary", "aux_weight": 0.25}"#;
        let cfg = TrainConfig::from_json(new).unwrap();
        assert_eq!(
            (cfg.encoder, cfg.aux),
            (Encoder::Resnet34, Some(AuxTask::Boundary))
        );
    }
}
