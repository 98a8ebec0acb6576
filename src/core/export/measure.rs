//! The figures that compare a run with its quantized or pruned variants: parameters,
//! convolution FLOPs, bytes on disk, inference latency and validation mIoU.

use std::path::Path;
use std::time::Instant;

use burn::module::Module;
use burn::tensor::{Device, Distribution, Tensor};
use serde::{Deserialize, Serialize};

use crate::core::dataset::{DatasetIndex, Sample, Split};
use crate::core::model::unet::{UNet, UNetConfig, Upsample};
use crate::core::predict::{PredictError, Predictor};
use crate::core::train::config::RunConfig;

/// Multiply-adds of every convolution for one `height` x `width` image (both multiples of
/// `2^depth`); FLOPs are twice this. Pooling, up-sampling and ReLU are left out (a few per
/// pixel, against hundreds for the convolutions).
pub fn conv_macs(config: &UNetConfig, height: usize, width: usize) -> u64 {
    let pixels = |stage: usize| ((height >> stage) * (width >> stage)) as u64;
    let conv3 = |cin: usize, cout: usize, stage: usize| 9 * (cin * cout) as u64 * pixels(stage);
    let w = |stage: usize| config.width(stage);
    let depth = config.depth;
    let mut macs = 0;
    for stage in 0..depth {
        let cin = if stage == 0 {
            config.in_channels
        } else {
            w(stage - 1)
        };
        macs += conv3(cin, w(stage), stage) + conv3(w(stage), w(stage), stage);
    }
    macs += conv3(w(depth - 1), w(depth), depth) + conv3(w(depth), w(depth), depth);
    for stage in (0..depth).rev() {
        macs += match config.upsample {
            // 3x3 at the up-sampled resolution.
            Upsample::Bilinear => conv3(w(stage + 1), w(stage), stage),
            // Each output pixel of a stride-2 2x2 transposed convolution sees one input pixel.
            Upsample::Transposed => (w(stage + 1) * w(stage)) as u64 * pixels(stage),
        };
        macs += conv3(2 * w(stage), w(stage), stage) + conv3(w(stage), w(stage), stage);
    }
    macs + (w(0) * config.num_classes) as u64 * pixels(0)
}

/// Bytes of a checkpoint's weights file.
pub fn checkpoint_bytes(checkpoint: &Path) -> u64 {
    std::fs::metadata(checkpoint.join("model.bpk")).map_or(0, |m| m.len())
}

/// Inference latency at one size, batch 1.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Latency {
    /// `[width, height]`.
    pub size: [u32; 2],
    pub runs: usize,
    pub p50_ms: f64,
    pub p95_ms: f64,
    /// From the median.
    pub images_per_sec: f64,
}

/// Times `runs` forward passes of `model` (an inference model: batch norm folded) on one
/// random `[1, in, height, width]` image after two warm-up passes, each read back to the host
/// as a prediction would be. Sizes that are not multiples of `2^depth` are padded, as
/// `predict` does.
pub fn latency(
    model: &UNet,
    in_channels: usize,
    device: &Device,
    size: [u32; 2],
    runs: usize,
) -> Result<Latency, PredictError> {
    latencies(&[model], in_channels, device, size, runs).map(|mut l| l.remove(0))
}

/// [`latency`] of several models, their runs interleaved (a, b, a, b, ...) so that a busy
/// machine slows each of them alike.
pub fn latencies(
    models: &[&UNet],
    in_channels: usize,
    device: &Device,
    [width, height]: [u32; 2],
    runs: usize,
) -> Result<Vec<Latency>, PredictError> {
    let image = Tensor::<4>::random(
        [1, in_channels, height as usize, width as usize],
        Distribution::Normal(0.0, 1.0),
        device,
    );
    let once = |model: &UNet| -> Result<f64, PredictError> {
        let start = Instant::now();
        model
            .forward_any_size(image.clone())
            .argmax(1)
            .try_into_vec_as::<i64>()
            .map_err(|e| PredictError::Device(e.to_string()))?;
        Ok(start.elapsed().as_secs_f64() * 1000.0)
    };
    for model in models {
        once(model)?;
        once(model)?;
    }
    let mut times = vec![Vec::with_capacity(runs); models.len()];
    for _ in 0..runs.max(1) {
        for (model, times) in models.iter().zip(&mut times) {
            times.push(once(model)?);
        }
    }
    Ok(times
        .into_iter()
        .map(|mut times| {
            times.sort_by(f64::total_cmp);
            let p50 = percentile(&times, 0.5);
            Latency {
                size: [width, height],
                runs: times.len(),
                p50_ms: p50,
                p95_ms: percentile(&times, 0.95),
                images_per_sec: 1000.0 / p50,
            }
        })
        .collect())
}

/// The `q` quantile (0..=1) of sorted values, by linear interpolation between ranks.
pub fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = q.clamp(0.0, 1.0) * (sorted.len() - 1) as f64;
    let (low, high) = (rank.floor() as usize, rank.ceil() as usize);
    sorted[low] + (sorted[high] - sorted[low]) * (rank - low as f64)
}

/// The dataset a run's figures are measured on: `data` (a new place, e.g. after the dataset
/// moved) or the one in its config, read in the run's layout, with the run's class table. An
/// error says which folder, what is wrong with it and, for the config's, that `--data` can
/// point elsewhere.
pub fn open_dataset(config: &RunConfig, data: Option<&Path>) -> Result<DatasetIndex, PredictError> {
    let root = data.unwrap_or(&config.data).to_path_buf();
    let problem = |reason: String| PredictError::Dataset {
        root: root.clone(),
        reason,
    };
    let hint = "; if it moved, pass --data with its new place";
    if data.is_none() && !root.is_dir() {
        return Err(problem(format!(
            "the run's dataset (config.json's \"data\") is not there{hint}"
        )));
    }
    let index = DatasetIndex::open(&root, config.format.parse().ok()).map_err(|e| {
        problem(match data {
            Some(_) => format!("cannot be opened as a {} dataset: {e}", config.format),
            None => format!("the run's dataset cannot be opened ({e}){hint}"),
        })
    })?;
    let theirs: Vec<&str> = index.classes.iter().map(|c| c.name.as_str()).collect();
    let ours: Vec<&str> = config.classes.iter().map(|c| c.name.as_str()).collect();
    if theirs != ours {
        return Err(problem(format!(
            "its classes {theirs:?} differ from the run's {ours:?}"
        )));
    }
    Ok(index)
}

/// Mean IoU of `predictor` on the validation split of `index` (see [`open_dataset`]), at full
/// resolution (what `roadseg eval` prints). A dataset without validation images is scored on
/// all of its labelled images; the second value says which.
pub fn validation_miou(
    predictor: &Predictor,
    index: &DatasetIndex,
) -> Result<(f64, &'static str), PredictError> {
    let mut samples: Vec<&Sample> = index.labelled_in(Split::Val);
    let mut scope = "validation split";
    if samples.is_empty() {
        samples = index.labelled().collect();
        scope = "all labelled images";
    }
    let (confusion, _) = predictor.evaluate(index, &samples, true)?;
    let names: Vec<String> = predictor.classes().iter().map(|c| c.name.clone()).collect();
    Ok((confusion.report(&names).mean_iou, scope))
}

/// The static figures of a model: parameters, convolution GFLOPs at `[width, height]`.
pub fn size_figures(model: &UNet, config: &UNetConfig, [width, height]: [u32; 2]) -> (usize, f64) {
    let multiple = 1usize << config.depth;
    let (w, h) = (
        (width as usize).div_ceil(multiple) * multiple,
        (height as usize).div_ceil(multiple) * multiple,
    );
    (
        model.num_params(),
        2.0 * conv_macs(config, h, w) as f64 / 1e9,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_interpolate_between_ranks() {
        let v = [1.0, 2.0, 3.0, 4.0, 5.0];
        assert_eq!(percentile(&v, 0.5), 3.0);
        assert_eq!(percentile(&v, 0.95), 4.8);
        assert_eq!(percentile(&v, 0.0), 1.0);
        assert_eq!(percentile(&[7.0], 0.95), 7.0);
    }

    #[test]
    fn macs_count_every_convolution() {
        // depth 1, widths [2, 4], 3 classes, 3 input channels, 4x4 image.
        let cfg = UNetConfig::new(3).with_depth(1).with_base_width(2);
        let full = 16u64;
        let half = 4u64;
        let expected = 9 * 3 * 2 * full + 9 * 2 * 2 * full // encoder 0
            + 9 * 2 * 4 * half + 9 * 4 * 4 * half          // bottleneck
            + 9 * 4 * 2 * full                             // bilinear up conv
            + 9 * 4 * 2 * full + 9 * 2 * 2 * full          // decoder 0
            + 2 * 3 * full; // head
        assert_eq!(conv_macs(&cfg, 4, 4), expected);
        // Halving every width divides the inner convolutions by about four.
        let big = UNetConfig::new(7).with_depth(4).with_base_width(16);
        let small = big.clone().with_widths(Some(vec![8, 16, 32, 64, 128]));
        let ratio = conv_macs(&big, 96, 128) as f64 / conv_macs(&small, 96, 128) as f64;
        assert!((3.5..4.0).contains(&ratio), "{ratio}");
    }
}
