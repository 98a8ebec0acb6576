//! The figures that compare a run with its quantized or pruned variants: parameters,
//! convolution FLOPs, bytes on disk, inference latency and validation mIoU.

use std::path::Path;
use std::time::Instant;

use burn::module::Module;
use burn::tensor::{Device, Distribution, Tensor};
use serde::{Deserialize, Serialize};

use crate::core::dataset::{DatasetIndex, Sample, Split};
use crate::core::model::resnet::{ResNetKind, decoder_layout};
use crate::core::model::segmenter::{Segmenter, SegmenterConfig};
use crate::core::model::unet::{UNetConfig, Upsample};
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

/// Multiply-adds of a ResNet encoder's convolutions (stem, blocks, projection shortcuts) for
/// one `cin`-channel `height` x `width` image, both multiples of 32.
pub fn resnet_encoder_macs(kind: ResNetKind, cin: usize, height: usize, width: usize) -> u64 {
    let pixels = |stage: usize| ((height >> stage) * (width >> stage)) as u64;
    let conv = |k: usize, cin: usize, cout: usize, stage: usize| {
        (k * k * cin * cout) as u64 * pixels(stage)
    };
    let channels = kind.channels();
    // The stem's 7x7/2 at H/2; the max-pool takes it to H/4, layer1's resolution.
    let mut macs = conv(7, cin, 64, 1);
    let mut cin = 64;
    for (index, blocks) in kind.blocks().into_iter().enumerate() {
        let planes = 64 << index;
        let cout = channels[index + 1];
        // layer1 at H/4 (stride 1), each later one halves: its first block has the stride.
        let out = index + 2;
        for block in 0..blocks {
            let input = if block == 0 && index > 0 {
                out - 1
            } else {
                out
            };
            macs += match kind.bottleneck() {
                // 1x1 at the input's resolution, 3x3 with the stride, 1x1 to 4x the width.
                true => {
                    conv(1, cin, planes, input)
                        + conv(3, planes, planes, out)
                        + conv(1, planes, cout, out)
                }
                false => conv(3, cin, planes, out) + conv(3, planes, planes, out),
            };
            if block == 0 && (index > 0 || cin != cout) {
                macs += conv(1, cin, cout, out);
            }
            cin = cout;
        }
    }
    macs
}

/// Multiply-adds of a UNet decoder on a ResNet encoder (see [`crate::core::model::resnet`]),
/// encoder included, for one `height` x `width` image (multiples of 32).
pub fn resnet_unet_macs(kind: ResNetKind, config: &UNetConfig, height: usize, width: usize) -> u64 {
    let pixels = |stage: usize| ((height >> stage) * (width >> stage)) as u64;
    let conv3 = |cin: usize, cout: usize, stage: usize| 9 * (cin * cout) as u64 * pixels(stage);
    let channels = kind.channels();
    let layout = decoder_layout(config);
    let w = |stage: usize| layout.width(stage);
    let mut macs = resnet_encoder_macs(kind, config.in_channels, height, width);
    let mut below = channels[4];
    for stage in (0..5).rev() {
        let skip = if stage >= 1 { channels[stage - 1] } else { 0 };
        macs += match config.upsample {
            Upsample::Bilinear => conv3(below, w(stage), stage),
            Upsample::Transposed => (below * w(stage)) as u64 * pixels(stage),
        };
        macs += conv3(skip + w(stage), w(stage), stage) + conv3(w(stage), w(stage), stage);
        below = w(stage);
    }
    macs + (w(0) * config.num_classes) as u64 * pixels(0)
}

/// Multiply-adds of a run's network (either encoder) and its second head, if any.
pub fn segmenter_macs(config: &SegmenterConfig, height: usize, width: usize) -> u64 {
    let unet = &config.unet;
    let net = match config.encoder.resnet() {
        None => conv_macs(unet, height, width),
        Some(kind) => resnet_unet_macs(kind, unet, height, width),
    };
    // The head reads the decoder's last features: a 3x3 then a 1x1, at full resolution.
    let aux = config.aux.map_or(0, |task| {
        let b = config.stage_widths()[0];
        (9 * b * b + b * task.channels()) as u64 * (height * width) as u64
    });
    net + aux
}

/// Bytes of a checkpoint's weights files (the second head's included).
pub fn checkpoint_bytes(checkpoint: &Path) -> u64 {
    ["model.bpk", "aux.bpk"]
        .iter()
        .map(|f| std::fs::metadata(checkpoint.join(f)).map_or(0, |m| m.len()))
        .sum()
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
/// as a prediction would be (a second head's output too). Sizes that are not multiples of the
/// model's multiple are padded, as `predict` does.
pub fn latency(
    model: &Segmenter,
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
    models: &[&Segmenter],
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
    let once = |model: &Segmenter| -> Result<f64, PredictError> {
        let start = Instant::now();
        let out = model.forward(image.clone());
        for logits in std::iter::once(out.logits).chain(out.aux) {
            logits
                .argmax(1)
                .try_into_vec_as::<i64>()
                .map_err(|e| PredictError::Device(e.to_string()))?;
        }
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
pub fn size_figures(
    model: &Segmenter,
    config: &SegmenterConfig,
    [width, height]: [u32; 2],
) -> (usize, f64) {
    let multiple = config.multiple();
    let (w, h) = (
        (width as usize).div_ceil(multiple) * multiple,
        (height as usize).div_ceil(multiple) * multiple,
    );
    (
        model.num_params(),
        2.0 * segmenter_macs(config, h, w) as f64 / 1e9,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::model::segmenter::{AuxTask, Encoder};

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

    /// torchvision's model table gives the encoders' GFLOPS (multiply-adds, 224x224, its
    /// classifier's 0.5 to 2 M included): resnet18 1.81, resnet34 3.66, resnet50 4.09.
    #[test]
    fn resnet_encoder_macs_match_torchvision() {
        for (kind, published) in [
            (ResNetKind::R18, 1.81),
            (ResNetKind::R34, 3.66),
            (ResNetKind::R50, 4.09),
        ] {
            let g = resnet_encoder_macs(kind, 3, 224, 224) as f64 / 1e9;
            assert!(
                (g - published).abs() < 0.006,
                "{kind:?}: {g} vs {published}"
            );
        }
    }

    #[test]
    fn a_second_head_adds_its_two_convolutions() {
        let unet = UNetConfig::new(3).with_base_width(4);
        let plain = SegmenterConfig::new(unet.clone()).with_encoder(Encoder::Resnet18);
        let with_head = plain.clone().with_aux(Some(AuxTask::Boundary));
        let (h, w) = (64, 96);
        assert_eq!(
            segmenter_macs(&with_head, h, w) - segmenter_macs(&plain, h, w),
            (9 * 4 * 4 + 4 * 2) * (h * w) as u64
        );
        // The ResNet's decoder on top of its encoder.
        assert!(
            resnet_unet_macs(ResNetKind::R18, &unet, h, w)
                > resnet_encoder_macs(ResNetKind::R18, 3, h, w)
        );
        // A narrowed decoder (prune --structured) and its head count at their own widths.
        let narrow = |c: &SegmenterConfig| SegmenterConfig {
            unet: c.unet.clone().with_widths(Some(vec![2, 4, 8, 16, 32])),
            ..c.clone()
        };
        assert_eq!(
            segmenter_macs(&narrow(&with_head), h, w) - segmenter_macs(&narrow(&plain), h, w),
            (9 * 2 * 2 + 2 * 2) * (h * w) as u64
        );
        let decoder = |c: &SegmenterConfig| {
            segmenter_macs(c, h, w) - resnet_encoder_macs(ResNetKind::R18, 3, h, w)
        };
        let ratio = decoder(&plain) as f64 / decoder(&narrow(&plain)) as f64;
        assert!((2.0..4.0).contains(&ratio), "{ratio}");
    }
}
