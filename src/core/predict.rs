//! Inference with a trained run: class masks at each image's own resolution, and evaluation of
//! those masks against ground truth.
//!
//! The model sees the image resized to its training size; its logits are resized back to the
//! image's size (bilinear) before the arg-max, so predicted edges follow the full-resolution
//! image rather than the coarse training grid.

use std::path::Path;

use burn::module::Module;
use burn::tensor::{Device, Tensor, TensorData};
use image::RgbImage;

use crate::core::dataset::augment::prepare;
use crate::core::dataset::classes::ClassInfo;
use crate::core::dataset::info::load_pair;
use crate::core::dataset::{DatasetIndex, Problem, Sample};
use crate::core::kernels::resize::resized_argmax;
use crate::core::mask::Mask;
use crate::core::metrics::ConfusionMatrix;
use crate::core::model::unet::UNet;
use crate::core::train::config::RunConfig;
use crate::core::train::run_dir::{CheckpointKind, RunDir, RunDirError};
use crate::core::train::trainer::load_model;

#[derive(Debug, thiserror::Error)]
pub enum PredictError {
    #[error(transparent)]
    RunDir(#[from] RunDirError),
    #[error("the device failed: {0}")]
    Device(String),
    #[error(transparent)]
    Problem(#[from] Problem),
    #[error("{} bad file(s) (pass --skip-bad to evaluate without them):\n{}", .0.len(),
        .0.iter().map(|p| format!("  {p}")).collect::<Vec<_>>().join("\n"))]
    BadFiles(Vec<Problem>),
}

/// A trained model ready for inference.
pub struct Predictor {
    model: UNet,
    config: RunConfig,
    device: Device,
    checkpoint: std::path::PathBuf,
}

impl Predictor {
    /// Loads the `kind` checkpoint of `run` (the best model falls back to the last one).
    pub fn load(run: &Path, kind: CheckpointKind, device: Device) -> Result<Self, PredictError> {
        let run = RunDir::new(run);
        let config = run.read_config()?;
        let dir = run
            .existing_checkpoint(kind)
            .or_else(|| run.existing_checkpoint(CheckpointKind::Last))
            .ok_or_else(|| RunDirError::NoCheckpoint(run.root().to_path_buf()))?;
        let model = load_model(config.model.init(&device), &dir.join("model.bpk"))?;
        Ok(Self::from_model(&model, config, device, dir))
    }

    /// A predictor for weights in memory (a run in progress); `checkpoint` says where they
    /// would be saved.
    pub fn from_model(
        model: &UNet,
        config: RunConfig,
        device: Device,
        checkpoint: std::path::PathBuf,
    ) -> Self {
        Self {
            model: model.valid().fold_batch_norm(),
            config,
            device,
            checkpoint,
        }
    }

    pub fn config(&self) -> &RunConfig {
        &self.config
    }

    pub fn classes(&self) -> &[ClassInfo] {
        &self.config.classes
    }

    /// The checkpoint folder the weights came from.
    pub fn checkpoint(&self) -> &Path {
        &self.checkpoint
    }

    /// Class ids for `image`, at its own resolution.
    pub fn predict(&self, image: &RgbImage) -> Result<Mask, PredictError> {
        let [w, h] = self.config.train.size;
        let prepared = prepare(image, None, (w, h), None, &self.config.train.normalize);
        let input = Tensor::<4>::from_data(
            TensorData::new(prepared.image, [1, 3, h as usize, w as usize]),
            &self.device,
        );
        let logits = self.model.forward_any_size(input); // [1, classes, h, w]
        let [_, classes, ..] = logits.dims();
        // Read back at the model's resolution and resize on the host, row by row: the
        // full-resolution logits are never materialised (bounded memory for 4K images).
        let logits = logits
            .try_into_vec_as::<f32>()
            .map_err(|e| PredictError::Device(e.to_string()))?;
        let (width, height) = image.dimensions();
        let (data, _) = resized_argmax(
            &logits,
            [classes, h as usize, w as usize],
            [height as usize, width as usize],
            false,
        );
        Ok(Mask {
            width,
            height,
            data,
        })
    }

    /// Predicts every sample and compares with its ground truth at full resolution. Samples
    /// that cannot be read are errors unless `skip_bad`, which leaves them out (returned).
    pub fn evaluate(
        &self,
        index: &DatasetIndex,
        samples: &[&Sample],
        skip_bad: bool,
    ) -> Result<(ConfusionMatrix, Vec<Problem>), PredictError> {
        // Each file is decoded once; after a first bad file (without `skip_bad`) the rest are
        // only checked, so that the error lists every problem.
        let mut bad = Vec::new();
        let mut confusion = ConfusionMatrix::new(self.config.classes.len());
        for sample in samples {
            match load_pair(index, sample) {
                Ok((image, Some(truth))) if bad.is_empty() || skip_bad => {
                    let pred = self.predict(&image)?;
                    confusion.update(&truth.data, &pred.data);
                }
                Ok(_) => {}
                Err(p) => bad.push(p),
            }
        }
        if !bad.is_empty() && !skip_bad {
            return Err(PredictError::BadFiles(bad));
        }
        Ok((confusion, bad))
    }
}
