//! Inference with a trained run: class masks at each image's own resolution, and evaluation of
//! those masks against ground truth.
//!
//! The model sees the whole image resized to the run's input size (by tiles when a pass at that
//! size would take too much memory: [`tiled`]); its logits are resized back to the image's size
//! (bilinear) before the arg-max, so predicted edges follow the full-resolution
//! image rather than the coarse training grid. The same resized logits give each pixel's
//! confidence (the largest softmax probability) and the image's mean predictive entropy, so the
//! compare view and active learning cost no second forward pass.

use std::path::Path;

use burn::module::Module;
use burn::tensor::{Device, Tensor, TensorData};
use image::RgbImage;

use crate::core::dataset::augment::{Frame, prepare};
use crate::core::dataset::classes::ClassInfo;
use crate::core::dataset::decoded::reduce_image;
use crate::core::dataset::info::load_pair;
use crate::core::dataset::{DatasetIndex, Problem, Sample};
use crate::core::kernels::resize::resized_argmax;
use crate::core::mask::Mask;
use crate::core::metrics::ConfusionMatrix;
use crate::core::model::segmenter::{AuxTask, Output, Segmenter};
use crate::core::train::config::RunConfig;
use crate::core::train::run_dir::{CheckpointKind, RunDir, RunDirError, load_model};

pub mod tiled;

#[derive(Debug, thiserror::Error)]
pub enum PredictError {
    #[error(transparent)]
    RunDir(#[from] RunDirError),
    #[error("the device failed: {0}")]
    Device(String),
    /// The dataset to evaluate on cannot be used (missing, unreadable, other classes).
    #[error("{root}: {reason}")]
    Dataset {
        root: std::path::PathBuf,
        reason: String,
    },
    #[error(transparent)]
    Problem(#[from] Problem),
    #[error("{} bad file(s) (pass --skip-bad to evaluate without them):\n{}", .0.len(),
        .0.iter().map(|p| format!("  {p}")).collect::<Vec<_>>().join("\n"))]
    BadFiles(Vec<Problem>),
}

/// What the model says about one image, at the image's resolution.
#[derive(Clone, Debug, PartialEq)]
pub struct Prediction {
    /// Arg-max class ids.
    pub mask: Mask,
    /// The winning class's softmax probability per pixel, `round(p * 255)`, row-major like
    /// `mask.data`.
    pub confidence: Vec<u8>,
    /// Mean over pixels of the predictive entropy `-sum_c p_c ln p_c`, in nats: 0 when the
    /// model is sure everywhere, `ln(classes)` when it guesses uniformly.
    pub mean_entropy: f64,
    /// The second head's map, when the model has one.
    pub aux: Option<AuxMap>,
}

/// The second head's arg-max at the image's resolution (e.g. 1 on the road boundary).
#[derive(Clone, Debug, PartialEq)]
pub struct AuxMap {
    pub task: AuxTask,
    pub map: Mask,
}

/// Class ids, confidence and mean entropy for an `out` (`[H, W]`) image from the model's
/// logits `[1, classes, h, w]`, resized on the host row by row ([`resized_argmax`]): the
/// full-resolution logits are never materialised, so memory stays bounded for 4K images.
pub fn prediction_from_logits(
    logits: Tensor<4>,
    [height, width]: [usize; 2],
) -> Result<Prediction, PredictError> {
    let [_, classes, h, w] = logits.dims();
    let logits = logits
        .try_into_vec_as::<f32>()
        .map_err(|e| PredictError::Device(e.to_string()))?;
    let (ids, certainty) = resized_argmax(&logits, [classes, h, w], [height, width], true);
    let certainty = certainty.expect("asked for");
    Ok(Prediction {
        mask: Mask {
            width: width as u32,
            height: height as u32,
            data: ids,
        },
        confidence: certainty.confidence,
        mean_entropy: certainty.mean_entropy,
        aux: None,
    })
}

/// Arg-max ids of `logits` (`[1, classes, h, w]`) resized to `[height, width]`.
fn resized_ids(logits: Tensor<4>, [height, width]: [usize; 2]) -> Result<Mask, PredictError> {
    let [_, classes, h, w] = logits.dims();
    let logits = logits
        .try_into_vec_as::<f32>()
        .map_err(|e| PredictError::Device(e.to_string()))?;
    let (ids, _) = resized_argmax(&logits, [classes, h, w], [height, width], false);
    Ok(Mask {
        width: width as u32,
        height: height as u32,
        data: ids,
    })
}

/// A trained model ready for inference.
pub struct Predictor {
    model: Segmenter,
    config: RunConfig,
    device: Device,
    checkpoint: std::path::PathBuf,
}

impl Predictor {
    /// Loads the `kind` checkpoint of `run`; a run without one is an error that names the
    /// other ([`RunDir::checkpoint`]), as every command's `--checkpoint` is.
    pub fn load(run: &Path, kind: CheckpointKind, device: Device) -> Result<Self, PredictError> {
        let run = RunDir::new(run);
        let config = run.read_config()?;
        let dir = run.checkpoint(kind)?;
        Self::load_dir(config, dir, device)
    }

    /// The best checkpoint of `run`, else its last one: for a view of a run (the studio's
    /// Errors panel), which shows the checkpoint it read.
    pub fn load_best_or_last(run: &Path, device: Device) -> Result<Self, PredictError> {
        let run = RunDir::new(run);
        let config = run.read_config()?;
        let dir = run.best_or_last()?;
        Self::load_dir(config, dir, device)
    }

    fn load_dir(
        config: RunConfig,
        dir: std::path::PathBuf,
        device: Device,
    ) -> Result<Self, PredictError> {
        let model = load_model(config.segmenter().init(&device), &dir)?;
        Ok(Self::from_model(&model, config, device, dir))
    }

    /// A predictor for weights in memory (a run in progress); `checkpoint` says where they
    /// would be saved.
    pub fn from_model(
        model: &Segmenter,
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

    /// The inference model (batch norm folded), on [`Predictor::device`].
    pub fn model(&self) -> &Segmenter {
        &self.model
    }

    pub fn device(&self) -> &Device {
        &self.device
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
        self.predict_full(image).map(|p| p.mask)
    }

    /// The model's outputs for `image` resized to the input size: logits `[1, classes, h, w]`
    /// (and the second head's `[1, aux, h, w]`), in one pass or by tiles ([`tiled::plan`]).
    fn forward(&self, image: &RgbImage) -> Result<Output, PredictError> {
        let [w, h] = self.config.train.size;
        let normalize = &self.config.train.normalize;
        // Reduced first, as the loader reduces what the model trained and validated on.
        let reduced = reduce_image(image, (w, h));
        let image = reduced.as_ref().unwrap_or(image);
        let prepared = prepare(image, None, Frame::whole((w, h)), None, normalize);
        let input = Tensor::<4>::from_data(
            TensorData::new(prepared.image, [1, 3, h as usize, w as usize]),
            &self.device,
        );
        let size = [h as usize, w as usize];
        match tiled::plan(&self.config.segmenter(), size, tiled::INFERENCE_BYTES) {
            tiled::Plan::Whole => Ok(self.model.forward(input)),
            tiled::Plan::Tiles { core, margin } => {
                tiled::forward_tiled(&self.model, &input, core, margin)
            }
        }
    }

    /// Class ids, confidence and mean entropy for `image`, at its own resolution, from one
    /// forward pass.
    pub fn predict_full(&self, image: &RgbImage) -> Result<Prediction, PredictError> {
        let out = self.forward(image)?;
        let (width, height) = image.dimensions();
        let size = [height as usize, width as usize];
        let mut prediction = prediction_from_logits(out.logits, size)?;
        if let (Some(aux), Some(task)) = (out.aux, self.config.train.aux) {
            prediction.aux = Some(AuxMap {
                task,
                map: resized_ids(aux, size)?,
            });
        }
        Ok(prediction)
    }

    /// Predicts every sample and compares with its ground truth at full resolution. Samples
    /// that cannot be read are errors unless `skip_bad`, which leaves them out (returned).
    pub fn evaluate(
        &self,
        index: &DatasetIndex,
        samples: &[&Sample],
        skip_bad: bool,
    ) -> Result<(ConfusionMatrix, Vec<Problem>), PredictError> {
        self.evaluate_each(index, samples, skip_bad, |_, _, _| {})
    }

    /// [`Predictor::evaluate`], also handing each image's ground truth and prediction to
    /// `on_image` (per-image scores, boundary scores).
    pub fn evaluate_each(
        &self,
        index: &DatasetIndex,
        samples: &[&Sample],
        skip_bad: bool,
        mut on_image: impl FnMut(&Sample, &Mask, &Prediction),
    ) -> Result<(ConfusionMatrix, Vec<Problem>), PredictError> {
        // Each file is decoded once; after a first bad file (without `skip_bad`) the rest are
        // only checked, so that the error lists every problem.
        let mut bad = Vec::new();
        let mut confusion = ConfusionMatrix::new(self.config.classes.len());
        for sample in samples {
            match load_pair(index, sample) {
                Ok((image, Some(truth))) if bad.is_empty() || skip_bad => {
                    let pred = self.predict_full(&image)?;
                    confusion.update(&truth.data, &pred.mask.data);
                    on_image(sample, &truth, &pred);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn confidence_and_entropy_come_from_the_same_logits() {
        // 2 classes, 3 pixels in a row: a tie, 3:1 for class 0, e^2:1 for class 1.
        let logits = [0.0, 3f32.ln(), 0.0, 0.0, 0.0, 2.0];
        let tensor = Tensor::<4>::from_data(
            TensorData::new(logits.to_vec(), [1, 2, 1, 3]),
            &Device::flex(),
        );
        let p = prediction_from_logits(tensor, [1, 3]).unwrap();
        assert_eq!((p.mask.width, p.mask.height), (3, 1));
        assert_eq!(p.mask.data[1..], [0, 1]);
        let sure = 1.0 / (1.0 + (-2f64).exp());
        // round(255 p): 127.5 -> 128, 191.25 -> 191.
        assert_eq!(p.confidence, [128, 191, (sure * 255.0).round() as u8]);
        let h = |p: f64| -(p * p.ln() + (1.0 - p) * (1.0 - p).ln());
        let expected = (h(0.5) + h(0.75) + h(sure)) / 3.0;
        assert!(
            (p.mean_entropy - expected).abs() < 1e-5,
            "{} vs {expected}",
            p.mean_entropy
        );
    }
}
