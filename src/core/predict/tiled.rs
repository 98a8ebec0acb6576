//! Sliding-window inference: the model's outputs for an input too large to go through the
//! network at once, assembled from tiles.
//!
//! Each tile is a square core plus a margin on every side that does not leave the image; only
//! the core's outputs are kept. Cores start at multiples of the model's size multiple, so the
//! tiles see the pooling grid of the whole input, and the margin is at least the network's
//! receptive radius, so a core pixel sees in its tile what it sees in the whole image: the
//! assembled logits equal the whole-image logits (to float rounding) for a plain UNet. (A
//! ResNet encoder's receptive field is wider than any margin worth paying for: there the tiles
//! approximate it, as sliding-window inference does in segmentation toolkits.)
//!
//! Memory is what decides: the activations of a whole-image pass grow with its pixels and the
//! network's width ([`bytes_per_pixel`]); past [`INFERENCE_BYTES`] the input goes by tiles whose
//! pass stays under it.

use burn::tensor::{Tensor, TensorData};

use super::PredictError;
use crate::core::model::segmenter::{Encoder, Output, Segmenter, SegmenterConfig};

/// Activation memory one inference pass may take. With the sample's width-8 UNet this passes
/// inputs up to about 0.7 megapixels whole (a 2048x1024 input goes by tiles), and keeps
/// `predict` on 2048x1024 images well under 1 GiB resident.
pub const INFERENCE_BYTES: usize = 256 << 20;

/// Peak activation bytes per input pixel of an inference pass, an upper estimate: a UNet level
/// of width `w` holds its skip, the conv in progress, the concatenation (`2w`) and its outputs,
/// about `6w` floats per pixel of that level, and each level below adds half of the one above
/// (twice the channels on a quarter of the pixels): `12 w` floats per input pixel in all. A
/// ResNet's stem (64 channels at half resolution) adds about 32 more.
pub fn bytes_per_pixel(config: &SegmenterConfig) -> usize {
    let width = config.unet.base_width.max(1);
    let stem = match config.encoder {
        Encoder::Unet => 0,
        _ => 32,
    };
    4 * (12 * width + stem + config.unet.num_classes)
}

/// The network's receptive radius in input pixels, rounded up to its size multiple: a plain
/// UNet of depth `d` reaches `8 * 2^d - 6` pixels (two 3x3 convolutions per level on the way
/// down and up, the pooling and the up-sampling); for a ResNet encoder, four of its multiples.
pub fn margin(config: &SegmenterConfig) -> usize {
    let multiple = config.multiple();
    match config.encoder {
        Encoder::Unet => 8 * multiple,
        _ => 4 * multiple,
    }
}

/// How an input goes through the network.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Plan {
    /// In one pass.
    Whole,
    /// By tiles of a `core` x `core` centre (a multiple of the size multiple) and `margin`
    /// pixels on each side.
    Tiles { core: usize, margin: usize },
}

/// The plan for a `[height, width]` input that keeps a pass under `budget` bytes of
/// activations.
pub fn plan(config: &SegmenterConfig, [height, width]: [usize; 2], budget: usize) -> Plan {
    let per_pixel = bytes_per_pixel(config);
    let multiple = config.multiple();
    let padded = |v: usize| v.div_ceil(multiple).max(1) * multiple;
    if padded(height) * padded(width) * per_pixel <= budget {
        return Plan::Whole;
    }
    let margin = margin(config);
    // The largest tile side that fits, less both margins, down to a multiple; at least one
    // multiple, whatever the budget (a tiny budget makes many tiles, never a failure).
    let side = ((budget / per_pixel) as f64).sqrt() as usize;
    let core = (side.saturating_sub(2 * margin) / multiple * multiple).max(multiple);
    Plan::Tiles { core, margin }
}

/// The model's outputs for `input` (`[1, 3, h, w]`) by tiles: logits `[1, classes, h, w]` and
/// the second head's `[1, aux, h, w]`, on `input`'s device.
pub fn forward_tiled(
    model: &Segmenter,
    input: &Tensor<4>,
    core: usize,
    margin: usize,
) -> Result<Output, PredictError> {
    let [_, channels, height, width] = input.dims();
    let device = input.device();
    let mut logits: Option<Vec<f32>> = None;
    let mut aux: Option<Vec<f32>> = None;
    let (mut classes, mut aux_classes) = (0, 0);
    for y0 in (0..height).step_by(core) {
        for x0 in (0..width).step_by(core) {
            let (y1, x1) = ((y0 + core).min(height), (x0 + core).min(width));
            let (ty0, tx0) = (y0.saturating_sub(margin), x0.saturating_sub(margin));
            let (ty1, tx1) = ((y1 + margin).min(height), (x1 + margin).min(width));
            let tile = input.clone().slice([0..1, 0..channels, ty0..ty1, tx0..tx1]); // [1, 3, th, tw]
            let out = model.forward(tile);
            let place = |t: Tensor<4>, buf: &mut Option<Vec<f32>>, count: &mut usize| {
                let [_, c, th, tw] = t.dims();
                let values = t
                    .try_into_vec_as::<f32>()
                    .map_err(|e| PredictError::Device(e.to_string()))?;
                let out = buf.get_or_insert_with(|| {
                    *count = c;
                    vec![0.0; c * height * width]
                });
                for k in 0..c {
                    for y in y0..y1 {
                        let from = (k * th + (y - ty0)) * tw + (x0 - tx0);
                        let to = (k * height + y) * width + x0;
                        out[to..to + (x1 - x0)].copy_from_slice(&values[from..from + (x1 - x0)]);
                    }
                }
                Ok::<(), PredictError>(())
            };
            place(out.logits, &mut logits, &mut classes)?; // [1, classes, th, tw]
            if let Some(a) = out.aux {
                place(a, &mut aux, &mut aux_classes)?; // [1, aux, th, tw]
            }
        }
    }
    let tensor = |values: Vec<f32>, c: usize| {
        Tensor::<4>::from_data(TensorData::new(values, [1, c, height, width]), &device)
    };
    Ok(Output {
        logits: tensor(logits.unwrap_or_default(), classes),
        aux: aux.map(|a| tensor(a, aux_classes)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::model::segmenter::AuxTask;
    use crate::core::model::unet::UNetConfig;
    use burn::tensor::{Device, Distribution};

    fn model(config: &SegmenterConfig, seed: u64) -> Segmenter {
        let device = Device::flex();
        device.seed(seed);
        config.init(&device).fold_batch_norm()
    }

    fn max_difference(a: Tensor<4>, b: Tensor<4>) -> f32 {
        assert_eq!(a.dims(), b.dims());
        let (a, b) = (
            a.try_into_vec_as::<f32>().unwrap(),
            b.try_into_vec_as::<f32>().unwrap(),
        );
        a.iter()
            .zip(&b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f32::max)
    }

    /// Tiles whose margins reach the receptive radius give the whole pass's logits, on an
    /// input that is not a multiple of anything (edge tiles padded like the whole input), with
    /// cores smaller than the margin (every pixel's tile cut on several sides), and for the
    /// second head too.
    #[test]
    fn tiled_logits_equal_the_whole_pass_where_both_fit() {
        for (depth, upsample_transposed, aux) in
            [(2, false, None), (3, true, Some(AuxTask::Boundary))]
        {
            let mut unet = UNetConfig::new(3).with_depth(depth).with_base_width(4);
            if upsample_transposed {
                unet = unet.with_upsample(crate::core::model::unet::Upsample::Transposed);
            }
            let config = SegmenterConfig::new(unet).with_aux(aux);
            let net = model(&config, 7);
            let input = Tensor::<4>::random(
                [1, 3, 90, 150],
                Distribution::Normal(0.0, 1.0),
                &Device::flex(),
            );
            let whole = net.forward(input.clone());
            let multiple = config.multiple();
            for core in [multiple, 3 * multiple, 64] {
                let tiled = forward_tiled(&net, &input, core, margin(&config)).unwrap();
                let d = max_difference(whole.logits.clone(), tiled.logits);
                assert!(d < 1e-4, "depth {depth}, core {core}: logits differ by {d}");
                if aux.is_some() {
                    let d = max_difference(whole.aux.clone().unwrap(), tiled.aux.unwrap());
                    assert!(d < 1e-4, "depth {depth}, core {core}: aux differs by {d}");
                }
            }
            // A margin short of the receptive radius shows: the check above can fail.
            let short = forward_tiled(&net, &input, multiple, multiple).unwrap();
            assert!(max_difference(whole.logits, short.logits) > 1e-3);
        }
    }

    #[test]
    fn large_inputs_go_by_tiles_that_fit_the_budget() {
        let config = SegmenterConfig::new(UNetConfig::new(7).with_depth(4).with_base_width(8));
        let per_pixel = bytes_per_pixel(&config);
        assert_eq!(plan(&config, [256, 512], INFERENCE_BYTES), Plan::Whole);
        let Plan::Tiles { core, margin } = plan(&config, [1024, 2048], INFERENCE_BYTES) else {
            panic!("a 2048x1024 input of a width-8 UNet goes by tiles");
        };
        assert_eq!((core % 16, margin), (0, 128));
        assert!((core + 2 * margin).pow(2) * per_pixel <= INFERENCE_BYTES);
        assert!((core + 16 + 2 * margin).pow(2) * per_pixel > INFERENCE_BYTES);
        // Even a budget no tile fits makes tiles of one multiple.
        assert_eq!(
            plan(&config, [64, 64], 1),
            Plan::Tiles {
                core: 16,
                margin: 128
            }
        );
    }
}
