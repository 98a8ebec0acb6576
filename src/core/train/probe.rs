//! Applying a run's time budget when it starts ([`pick_at_start`]), and timing candidates for
//! the budget picker ([`super::budget::pick`]): a few optimiser steps of each on random batches
//! of its size, on the run's device, and the loading of real images.
//!
//! A probe costs about three of the candidate's steps (one to warm up: first allocations, and
//! two timed); the picker stops at the first candidate that does not fit, so probing takes a
//! few seconds of a Full budget. Loading is timed on the dataset's own images (decoding a large
//! JPEG or PNG is a large part of a step) and spread over the cores, as the loader threads run
//! beside the step.

use std::time::Instant;

use burn::module::Module;
use burn::tensor::{Device, Distribution, Int, Tensor};

use super::budget::{
    Candidate, Cost, Facts, Fixed, PATIENCE_SHARE, PLAN_SHARE, budget_name, ladder, pick,
};
use super::config::TrainConfig;
use super::optim::build_optimizer;
use super::prepare::Prepared;
use super::resolution::typical_size;
use super::run_dir::CheckpointKind;
use super::step::train_step;
use super::trainer::TrainError;
use crate::core::dataset::loader::{LoaderConfig, SegDataset, default_workers};
use crate::core::dataset::{DatasetIndex, Sample};
use crate::core::model::segmenter::{Encoder, Segmenter, SegmenterConfig};
use crate::core::model::unet::UNetConfig;

/// Picks what a run's time budget leaves open (`auto` in its config), on the device it trains
/// on, just before its first step: a new run, or one prepared elsewhere and started here by
/// `--resume` with no checkpoint yet (as a job engine starts it). The run's `config.json` then
/// records the outcome with `auto: null`, so it is never picked again; a run with a checkpoint
/// keeps what it trained with.
pub(super) fn pick_at_start(
    prepared: &mut Prepared,
    device: &Device,
    log: &mut dyn FnMut(String),
) -> Result<(), TrainError> {
    let started = prepared
        .run
        .existing_checkpoint(CheckpointKind::Last)
        .is_some();
    if prepared.run_config.train.auto.is_none() || started {
        return Ok(());
    }
    let num_classes = prepared.index.classes.len();
    let config = &mut prepared.run_config.train;
    prepared.choice = apply_budget(
        config,
        device,
        num_classes,
        &prepared.index,
        &prepared.train,
        prepared.val.len(),
        &prepared.sizes,
        log,
    );
    config.auto = None;
    config.validate(num_classes)?;
    prepared.run_config.model = UNetConfig {
        num_classes,
        ..config.model.clone()
    };
    prepared.run.write_config(&prepared.run_config)?;
    Ok(())
}

/// Times candidates of one run.
pub(super) struct Probe<'a> {
    pub(super) device: &'a Device,
    pub(super) config: &'a TrainConfig,
    pub(super) num_classes: usize,
    pub(super) index: &'a DatasetIndex,
    /// A few training images to time loading on.
    pub(super) samples: Vec<&'a Sample>,
    /// Seconds the probes took so far.
    pub(super) spent: f64,
    /// Seconds of decoding an image the first time (the first epoch pays it once per image).
    pub(super) decode_secs: f64,
}

impl Probe<'_> {
    /// What `candidate` costs here; a candidate whose step fails costs infinitely much (the
    /// picker then keeps a cheaper one).
    pub(super) fn cost(&mut self, candidate: &Candidate) -> Cost {
        let started = Instant::now();
        let cost = self.measure(candidate).unwrap_or(Cost {
            step_secs: f64::INFINITY,
            val_secs_per_image: f64::INFINITY,
        });
        self.spent += started.elapsed().as_secs_f64();
        cost
    }

    fn measure(&mut self, c: &Candidate) -> Option<Cost> {
        let cores = default_workers().max(1) as f64;
        let batch = self.config.batch_size.max(1);
        let (load_train, load_val) = self.loading(c);
        let model = SegmenterConfig::new(UNetConfig {
            num_classes: self.num_classes,
            base_width: c.width,
            ..self.config.model.clone()
        })
        .with_encoder(self.config.encoder);
        let autodiff = self.device.clone().autodiff();
        autodiff.seed(self.config.seed);
        let mut net = model.init(&autodiff);
        let mut optimizer = build_optimizer(&self.config.optimizer).ok()?;
        let [w, h] = c.crop.unwrap_or(c.size).map(|v| v as usize);
        let images =
            Tensor::<4>::random([batch, 3, h, w], Distribution::Normal(0.0, 1.0), &autodiff);
        let classes = self.num_classes as f64;
        let masks = Tensor::<3, Int>::random(
            [batch, h, w],
            Distribution::Uniform(0.0, classes),
            &autodiff,
        );
        let mut times = Vec::new();
        for _ in 0..3 {
            let start = Instant::now();
            let (next, loss) = train_step(
                net,
                &mut optimizer,
                &self.config.loss,
                self.config.lr,
                images.clone(),
                masks.clone(),
            );
            loss.ok()?;
            net = next;
            times.push(start.elapsed().as_secs_f64());
        }
        let step = (times[1] + times[2]) / 2.0 + load_train * batch as f64 / cores;
        let val = self.validation(&net, c) + load_val / cores;
        Some(Cost {
            step_secs: step,
            val_secs_per_image: val,
        })
    }

    /// Seconds a loader thread takes for one training item and one validation item of `c`,
    /// once decoded (the loader keeps decoded images: later epochs pay only this).
    fn loading(&mut self, c: &Candidate) -> (f64, f64) {
        let loader = |crop: Option<[u32; 2]>, augment| LoaderConfig {
            size: c.size,
            crop,
            augment,
            normalize: self.config.normalize,
            seed: self.config.seed,
            ..LoaderConfig::default()
        };
        let train = loader(c.crop, self.config.augment.clone());
        let val = loader(None, None);
        let time = |cfg: &LoaderConfig, this: &mut Self| {
            let dataset = SegDataset::new(this.index, &this.samples, cfg);
            let (mut first, mut again) = (0.0, 0.0);
            for i in 0..this.samples.len() {
                let start = Instant::now();
                let _ = dataset.load(i, 0);
                first += start.elapsed().as_secs_f64();
                let start = Instant::now();
                let _ = dataset.load(i, 1);
                again += start.elapsed().as_secs_f64();
            }
            let n = this.samples.len().max(1) as f64;
            this.decode_secs = this.decode_secs.max((first - again).max(0.0) / n);
            again / n
        };
        (time(&train, self), time(&val, self))
    }

    /// Seconds of one image's validation forward pass at the input size.
    fn validation(&self, net: &Segmenter, c: &Candidate) -> f64 {
        let inference = net.valid().fold_batch_norm();
        let [w, h] = c.size.map(|v| v as usize);
        let image = Tensor::<4>::random([1, 3, h, w], Distribution::Normal(0.0, 1.0), self.device);
        let start = Instant::now();
        let logits = inference.forward_any_size(image);
        let _ = logits.argmax(1).try_into_vec_as::<i64>();
        start.elapsed().as_secs_f64()
    }
}

/// What a new run's budget picks, applied to `config` (which then has no `auto`): the log line
/// saying what was chosen and why, `None` when nothing was picked. `sizes` are the training
/// images' sizes; `pixels` the training masks' pixels per class.
#[allow(clippy::too_many_arguments)]
pub(super) fn apply_budget(
    config: &mut TrainConfig,
    device: &Device,
    num_classes: usize,
    index: &DatasetIndex,
    train: &[Sample],
    val_images: usize,
    sizes: &[(u32, u32)],
    log: &mut dyn FnMut(String),
) -> Option<String> {
    let mut auto = config.auto.take()?;
    // A ResNet encoder or an earlier run brings its own network: its width is not picked.
    auto.width &= config.encoder == Encoder::Unet && config.init_from.is_none();
    if !auto.picks_anything() {
        return None;
    }
    let typical = typical_size(sizes)?;
    let megapixels = sizes.iter().map(|&(w, h)| w as f64 * h as f64).sum::<f64>() / 1e6;
    let budget = auto.seconds(megapixels);
    let multiple = SegmenterConfig::new(config.model.clone())
        .with_encoder(config.encoder)
        .multiple() as u32;
    let facts = Facts {
        typical,
        train_images: train.len(),
        val_images,
        batch_size: config.batch_size,
        multiple,
    };
    let fixed = Fixed {
        epochs: (!auto.epochs).then_some(config.epochs),
        size: (!auto.size).then_some((config.size, config.crop)),
        width: (!auto.width).then_some(config.model.base_width),
    };
    let steps = ladder(&facts, &fixed);
    // Loading is timed on a few images spread over the training set.
    let stride = train.len().div_ceil(2).max(1);
    let mut probe = Probe {
        device,
        config,
        num_classes,
        index,
        samples: train.iter().step_by(stride).take(2).collect(),
        spent: 0.0,
        decode_secs: 0.0,
    };
    // The first look at the candidates costs the probes and one decoding of every image
    // (spread over the loader threads); what is left is the training's.
    let first = probe.cost(&steps[0]);
    let cores = default_workers().max(1) as f64;
    let decoding = (train.len() + val_images) as f64 * probe.decode_secs / cores;
    let mut cache = vec![(steps[0], first)];
    let mut cost = |c: &Candidate| match cache.iter().find(|(k, _)| k == c) {
        Some((_, cost)) => *cost,
        None => {
            let cost = probe.cost(c);
            cache.push((*c, cost));
            cost
        }
    };
    let left = (budget * PLAN_SHARE - decoding - 2.0 * probe_estimate(&steps, first)).max(1.0);
    let choice = pick(&facts, &fixed, &steps, left, &mut cost);
    let c = choice.candidate;
    let mut patience = String::new();
    if auto.epochs {
        config.epochs = choice.epochs;
        // Early stopping waits in proportion to the run, so that it does not stop a long
        // schedule before its rate has decayed.
        if let Some(early) = config.early_stopping.as_mut() {
            let scaled = early.patience.max(config.epochs / PATIENCE_SHARE);
            if scaled > early.patience {
                patience = format!("; early stopping after {scaled} epochs without a gain");
                early.patience = scaled;
            }
        }
    }
    if auto.size {
        config.size = c.size;
        config.crop = c.crop;
    }
    if auto.width {
        config.model.base_width = c.width;
    }
    let picked: Vec<&str> = [
        (auto.epochs, "epochs"),
        (auto.size, "input size"),
        (auto.width, "width"),
    ]
    .into_iter()
    .filter_map(|(on, name)| on.then_some(name))
    .collect();
    let line = format!(
        "budget {} picked the {}: {}{patience}",
        budget_name(budget),
        picked.join(", "),
        choice.reason
    );
    log(line.clone());
    Some(line)
}

/// Seconds the probes of a ladder's first rungs take, roughly: three steps of the first.
fn probe_estimate(steps: &[Candidate], first: Cost) -> f64 {
    let rungs = steps.len().min(4) as f64;
    3.0 * first.step_secs * rungs
}
