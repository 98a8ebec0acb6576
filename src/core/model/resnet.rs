//! ResNet encoders (He et al., 2016) in torchvision's layout, with a UNet decoder on top.
//!
//! The encoder's module tree spells torchvision's `state_dict` keys (`conv1.weight`,
//! `bn1.running_mean`, `layer2.0.downsample.0.weight`, ...), so ImageNet weights load by name
//! (see [`super::pretrained`]). Basic blocks for ResNet-18/34, bottlenecks (stride on the 3x3, as
//! torchvision's "v1.5") for ResNet-50.
//!
//! ```text
//! input [B, in, H, W]
//!   stem: conv 7x7/2 + BN + ReLU   [B, 64, H/2, W/2]        --skip--+
//!   max-pool 3x3/2                  [B, 64, H/4, W/4]                |
//!   layer1                          [B, c1, H/4, W/4]       --skip-+ |
//!   layer2 (stride 2)               [B, c2, H/8, W/8]       --skip+| |
//!   layer3 (stride 2)               [B, c3, H/16, W/16]     -skip+|| |
//!   layer4 (stride 2)               [B, c4, H/32, W/32]          ||| |
//!   dec 4: up(c4 -> 16b), cat(layer3), ConvBlock   [B, 16b, H/16, W/16]
//!   dec 3: up(16b -> 8b), cat(layer2), ConvBlock   [B, 8b, H/8, W/8]
//!   dec 2: up(8b -> 4b),  cat(layer1), ConvBlock   [B, 4b, H/4, W/4]
//!   dec 1: up(4b -> 2b),  cat(stem),   ConvBlock   [B, 2b, H/2, W/2]
//!   dec 0: up(2b -> b),                ConvBlock   [B, b, H, W]
//!   head: 1x1 conv (b -> classes)                  [B, classes, H, W]
//! ```
//!
//! `c1..c4` are 64/128/256/512 (basic) or 256/512/1024/2048 (bottleneck); `b` is the decoder's
//! base width ([`UNetConfig::base_width`]), its stages `b, 2b, .., 16b`, or the five stages of
//! [`UNetConfig::widths`] for a decoder narrowed by `roadseg prune --structured`
//! ([`decoder_layout`]). The decoder and the encoder both go through [`ops`] (roadseg's CPU
//! kernels on flex, burn's operations elsewhere): the stem and strided convolutions, the max-pool, the batch norms (each block's
//! last one fused with the residual add and the ReLU) and the stride-1 convolutions.

use burn::module::{Module, ParamGroup};
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::{MaxPool2d, MaxPool2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, Initializer, PaddingConfig2d};
use burn::tensor::activation::relu;
use burn::tensor::{Device, Tensor};

use super::unet::{ConvBlock, UNetConfig, UNetError, UpSampler, fold};
use crate::core::kernels::ops;

/// Down-sampling factor of a ResNet encoder: inputs must be multiples of 32.
pub const RESNET_MULTIPLE: usize = 32;

/// Stages of the decoder on a ResNet encoder (H/16 up to H).
pub const DECODER_STAGES: usize = 5;

/// The decoder's widths as a [`UNetConfig`] lays them out: `width(s)` for `s` in `0..5`,
/// shallowest first, is `base_width << s`, or `widths[s]` for a decoder narrowed by `roadseg
/// prune --structured`. A ResNet config's own `depth` means nothing (the encoder has its five
/// stages), so the layout takes the depth whose `depth + 1` stages are the decoder's.
pub fn decoder_layout(decoder: &UNetConfig) -> UNetConfig {
    UNetConfig {
        depth: DECODER_STAGES - 1,
        ..decoder.clone()
    }
}

/// Which ResNet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResNetKind {
    R18,
    R34,
    R50,
}

impl ResNetKind {
    /// Blocks per stage.
    pub fn blocks(self) -> [usize; 4] {
        match self {
            Self::R18 => [2, 2, 2, 2],
            Self::R34 | Self::R50 => [3, 4, 6, 3],
        }
    }

    /// Bottleneck blocks (ResNet-50) rather than basic ones.
    pub fn bottleneck(self) -> bool {
        self == Self::R50
    }

    /// Channels of the stem and of the four stages' outputs.
    pub fn channels(self) -> [usize; 5] {
        let expansion = if self.bottleneck() { 4 } else { 1 };
        [
            64,
            64 * expansion,
            128 * expansion,
            256 * expansion,
            512 * expansion,
        ]
    }
}

/// torchvision's initialisation: Kaiming normal with fan-out for every convolution.
fn encoder_init() -> Initializer {
    Initializer::KaimingNormal {
        gain: std::f64::consts::SQRT_2,
        fan_out_only: true,
    }
}

fn conv(cin: usize, cout: usize, kernel: usize, stride: usize, device: &Device) -> Conv2d {
    let pad = kernel / 2;
    Conv2dConfig::new([cin, cout], [kernel, kernel])
        .with_stride([stride, stride])
        .with_padding(PaddingConfig2d::Explicit(pad, pad, pad, pad))
        .with_bias(false)
        .with_initializer(encoder_init())
        .init(device)
}

fn norm(channels: usize, device: &Device) -> Option<BatchNorm> {
    Some(BatchNormConfig::new(channels).init(device))
}

/// `conv(x)` (with its bias, if any), then a ReLU if `relu_after`: stride-1 3x3 and 1x1
/// convolutions through [`ops::conv3x3`] and [`ops::conv1x1`], every other one (the stem, the
/// strided ones) through [`ops::conv2d`]; burn's own convolution only for a padding these
/// encoders never use.
fn convolve(conv: &Conv2d, x: Tensor<4>, relu_after: bool) -> Tensor<4> {
    let bias = conv.bias.as_ref().map(|b| b.val());
    let weight = conv.weight.val();
    let padding = match conv.padding {
        PaddingConfig2d::Explicit(top, left, bottom, right) if top == bottom && left == right => {
            Some([top, left])
        }
        PaddingConfig2d::Valid => Some([0, 0]),
        _ => None,
    };
    let plain = conv.dilation == [1, 1] && conv.groups == 1;
    match (conv.kernel_size, conv.stride, padding) {
        ([3, 3], [1, 1], Some([1, 1])) if plain => ops::conv3x3(x, None, weight, bias, relu_after),
        ([1, 1], [1, 1], Some([0, 0])) if plain => {
            let y = ops::conv1x1(x, weight, bias);
            if relu_after { relu(y) } else { y }
        }
        (_, stride, Some(padding)) if plain => {
            ops::conv2d(x, weight, bias, stride, padding, relu_after)
        }
        _ => {
            let y = conv.forward(x);
            if relu_after { relu(y) } else { y }
        }
    }
}

/// Whether `norm` normalises with the batch's statistics here: training (an autodiff device)
/// and the norm not frozen.
fn batch_statistics(norm: &BatchNorm, x: &Tensor<4>) -> bool {
    x.device().is_autodiff() && norm.training.is_enabled()
}

/// `norm(conv(x))`, ReLU'd if `relu_after`. In training, the norm (and its ReLU) is the fused
/// [`ops::batch_norm_train`]. Without a norm (folded for inference) the convolution carries the
/// bias and the ReLU.
fn conv_norm(conv: &Conv2d, norm: Option<&BatchNorm>, x: Tensor<4>, relu_after: bool) -> Tensor<4> {
    let Some(norm) = norm else {
        return convolve(conv, x, relu_after);
    };
    let y = convolve(conv, x, false);
    if batch_statistics(norm, &y) {
        return ops::batch_norm_train(y, norm, None, relu_after);
    }
    let y = norm.forward(y);
    if relu_after { relu(y) } else { y }
}

/// `relu(norm(conv(x)) + identity)`: the end of a residual block. In training the norm, the
/// add and the ReLU are one fused [`ops::batch_norm_train`]; otherwise the add and the ReLU are
/// one [`ops::add_relu`].
fn conv_norm_add_relu(
    conv: &Conv2d,
    norm: Option<&BatchNorm>,
    x: Tensor<4>,
    identity: Tensor<4>,
) -> Tensor<4> {
    let y = convolve(conv, x, false);
    match norm {
        Some(norm) if batch_statistics(norm, &y) => {
            ops::batch_norm_train(y, norm, Some(identity), true)
        }
        Some(norm) => ops::add_relu(norm.forward(y), identity),
        None => ops::add_relu(y, identity),
    }
}

/// One residual block: torchvision's `BasicBlock` (conv1 3x3 with the stride, conv2 3x3) or
/// `Bottleneck` (conv1 1x1, conv2 3x3 with the stride, conv3 1x1 to 4x the width), with the
/// projection shortcut `downsample` (`0`: 1x1 conv, `1`: norm) where the shape changes.
#[derive(Module, Debug)]
pub struct Block {
    conv1: Conv2d,
    bn1: Option<BatchNorm>,
    conv2: Conv2d,
    bn2: Option<BatchNorm>,
    conv3: Option<Conv2d>,
    bn3: Option<BatchNorm>,
    downsample: Option<(Conv2d, Option<BatchNorm>)>,
}

impl Block {
    fn new(cin: usize, width: usize, stride: usize, bottleneck: bool, device: &Device) -> Self {
        let cout = if bottleneck { width * 4 } else { width };
        let downsample = (stride != 1 || cin != cout)
            .then(|| (conv(cin, cout, 1, stride, device), norm(cout, device)));
        if bottleneck {
            Self {
                conv1: conv(cin, width, 1, 1, device),
                bn1: norm(width, device),
                conv2: conv(width, width, 3, stride, device),
                bn2: norm(width, device),
                conv3: Some(conv(width, cout, 1, 1, device)),
                bn3: norm(cout, device),
                downsample,
            }
        } else {
            Self {
                conv1: conv(cin, width, 3, stride, device),
                bn1: norm(width, device),
                conv2: conv(width, width, 3, 1, device),
                bn2: norm(width, device),
                conv3: None,
                bn3: None,
                downsample,
            }
        }
    }

    /// `[B, cin, h, w]` -> `[B, cout, h/stride, w/stride]`.
    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let identity = match &self.downsample {
            Some((conv, norm)) => conv_norm(conv, norm.as_ref(), x.clone(), false),
            None => x.clone(),
        };
        let out = conv_norm(&self.conv1, self.bn1.as_ref(), x, true);
        match &self.conv3 {
            Some(conv3) => {
                let out = conv_norm(&self.conv2, self.bn2.as_ref(), out, true);
                conv_norm_add_relu(conv3, self.bn3.as_ref(), out, identity)
            }
            None => conv_norm_add_relu(&self.conv2, self.bn2.as_ref(), out, identity),
        }
    }

    fn fold_batch_norm(self) -> Self {
        let (conv1, bn1) = fold(self.conv1, self.bn1);
        let (conv2, bn2) = fold(self.conv2, self.bn2);
        let (conv3, bn3) = match self.conv3 {
            Some(conv3) => {
                let (conv3, bn3) = fold(conv3, self.bn3);
                (Some(conv3), bn3)
            }
            None => (None, None),
        };
        let downsample = self.downsample.map(|(conv, norm)| fold(conv, norm));
        Self {
            conv1,
            bn1,
            conv2,
            bn2,
            conv3,
            bn3,
            downsample,
        }
    }
}

/// A ResNet without its classifier: the stem and four stages, keys as in torchvision.
#[derive(Module, Debug)]
pub struct ResNetEncoder {
    conv1: Conv2d,
    bn1: Option<BatchNorm>,
    maxpool: MaxPool2d,
    layer1: Vec<Block>,
    layer2: Vec<Block>,
    layer3: Vec<Block>,
    layer4: Vec<Block>,
}

impl ResNetEncoder {
    /// A freshly initialised encoder (torchvision's initialisation) for `in_channels` inputs.
    pub fn new(kind: ResNetKind, in_channels: usize, device: &Device) -> Self {
        let mut cin = 64;
        let mut stage = |index: usize| -> Vec<Block> {
            let width = 64 << index;
            let stride = if index == 0 { 1 } else { 2 };
            (0..kind.blocks()[index])
                .map(|b| {
                    let block = Block::new(
                        cin,
                        width,
                        if b == 0 { stride } else { 1 },
                        kind.bottleneck(),
                        device,
                    );
                    cin = kind.channels()[index + 1];
                    block
                })
                .collect()
        };
        let (layer1, layer2, layer3, layer4) = (stage(0), stage(1), stage(2), stage(3));
        Self {
            conv1: conv(in_channels, 64, 7, 2, device),
            bn1: norm(64, device),
            maxpool: MaxPool2dConfig::new([3, 3])
                .with_strides([2, 2])
                .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
                .init(),
            layer1,
            layer2,
            layer3,
            layer4,
        }
    }

    /// The stem's and the four stages' features, shallowest first:
    /// `[B, in, H, W]` -> `[B, 64, H/2, W/2]`, `[B, c1, H/4, W/4]`, ..., `[B, c4, H/32, W/32]`.
    pub fn forward(&self, images: Tensor<4>) -> [Tensor<4>; 5] {
        let stem = conv_norm(&self.conv1, self.bn1.as_ref(), images, true);
        let stage = |blocks: &[Block], x: Tensor<4>| blocks.iter().fold(x, |x, b| b.forward(x));
        // The stem's 3x3/2 max-pool with padding 1 (the module is kept for the record's layout).
        let pooled = ops::max_pool(stem.clone(), 3, 2, 1);
        let l1 = stage(&self.layer1, pooled);
        let l2 = stage(&self.layer2, l1.clone());
        let l3 = stage(&self.layer3, l2.clone());
        let l4 = stage(&self.layer4, l3.clone());
        [stem, l1, l2, l3, l4]
    }

    fn fold_batch_norm(self) -> Self {
        let (conv1, bn1) = fold(self.conv1, self.bn1);
        let fold_all = |blocks: Vec<Block>| -> Vec<Block> {
            blocks.into_iter().map(Block::fold_batch_norm).collect()
        };
        Self {
            conv1,
            bn1,
            maxpool: self.maxpool,
            layer1: fold_all(self.layer1),
            layer2: fold_all(self.layer2),
            layer3: fold_all(self.layer3),
            layer4: fold_all(self.layer4),
        }
    }
}

/// One decoder stage: up-sample, concatenate the skip (if any), [`ConvBlock`].
#[derive(Module, Debug)]
pub struct DecoderStage {
    pub(super) up: UpSampler,
    /// Reads `cat(skip, up)`: the skip's channels first.
    pub(super) block: ConvBlock,
}

/// A UNet decoder on a ResNet encoder; build it with [`ResNetUNet::new`].
#[derive(Module, Debug)]
pub struct ResNetUNet {
    pub(crate) encoder: ResNetEncoder,
    /// Deepest first: four with the skips layer3, layer2, layer1, stem, then one without.
    pub(super) decoders: Vec<DecoderStage>,
    pub(super) head: Conv2d,
}

impl ResNetUNet {
    /// A ResNet-`kind` encoder and a decoder of `decoder`'s widths ([`decoder_layout`]), with
    /// its up-sampling, initialisation and batch norm, for `decoder.num_classes` classes.
    ///
    /// # Panics
    /// If the decoder's layout is invalid (see [`UNetConfig::validate`]).
    pub fn new(kind: ResNetKind, decoder: &UNetConfig, device: &Device) -> Self {
        let decoder = &decoder_layout(decoder);
        if let Err(e) = decoder.validate() {
            panic!("{e}");
        }
        let init = decoder.initializer();
        let channels = kind.channels();
        let width = |s: usize| decoder.width(s);
        // (input channels from below, skip channels, output width) from H/16 up to H.
        let mut below = channels[4];
        let decoders = (0..DECODER_STAGES)
            .rev()
            .map(|s: usize| {
                let skip = if s >= 1 { channels[s - 1] } else { 0 };
                let stage = DecoderStage {
                    up: UpSampler::new(below, width(s), decoder, &init, device),
                    block: ConvBlock::new(skip + width(s), width(s), decoder, &init, device),
                };
                below = width(s);
                stage
            })
            .collect();
        let head = Conv2dConfig::new([width(0), decoder.num_classes], [1, 1])
            .with_initializer(init)
            .init(device);
        Self {
            encoder: ResNetEncoder::new(kind, decoder.in_channels, device),
            decoders,
            head,
        }
    }

    /// Check that `height` x `width` inputs fit: non-zero multiples of 32.
    pub fn check_input_size(&self, height: usize, width: usize) -> Result<(), UNetError> {
        if height == 0
            || width == 0
            || !height.is_multiple_of(RESNET_MULTIPLE)
            || !width.is_multiple_of(RESNET_MULTIPLE)
        {
            return Err(UNetError::InputSize {
                height,
                width,
                depth: 5,
                multiple: RESNET_MULTIPLE,
            });
        }
        Ok(())
    }

    /// The last decoder stage's features: `[B, in, H, W]` -> `[B, b, H, W]`.
    ///
    /// # Panics
    /// If `H` or `W` is not a multiple of 32.
    pub fn features(&self, images: Tensor<4>) -> Tensor<4> {
        let [_, _, height, width] = images.dims();
        if let Err(e) = self.check_input_size(height, width) {
            panic!("{e}");
        }
        self.decode(self.encoder.forward(images))
    }

    /// The decoder on the encoder's features ([`ResNetEncoder::forward`]): `[B, b, H, W]`.
    pub(super) fn decode(&self, encoded: [Tensor<4>; 5]) -> Tensor<4> {
        let [stem, l1, l2, l3, l4] = encoded;
        let mut skips = vec![stem, l1, l2, l3];
        let mut x = l4;
        for stage in &self.decoders {
            let up = stage.up.forward(x);
            x = match skips.pop() {
                Some(skip) => stage.block.forward(skip, Some(up)),
                None => stage.block.forward(up, None),
            };
        }
        x
    }

    /// Logits from [`ResNetUNet::features`]: `[B, b, H, W]` -> `[B, classes, H, W]`.
    pub fn head(&self, features: Tensor<4>) -> Tensor<4> {
        let bias = self.head.bias.as_ref().map(|b| b.val());
        ops::conv1x1(features, self.head.weight.val(), bias)
    }

    /// Logits for inputs whose sides are multiples of 32.
    pub fn forward(&self, images: Tensor<4>) -> Tensor<4> {
        let features = self.features(images);
        self.head(features)
    }

    /// Channels of [`ResNetUNet::features`].
    pub fn feature_channels(&self) -> usize {
        self.head.weight.dims()[1]
    }

    /// The encoder's parameters and batch-norm flags.
    pub fn encoder_group(&self) -> ParamGroup {
        ParamGroup::ids_from_module(self.encoder.clone())
    }

    /// The model for inference with every batch norm folded into its convolution.
    pub fn fold_batch_norm(self) -> Self {
        Self {
            encoder: self.encoder.fold_batch_norm(),
            decoders: self
                .decoders
                .into_iter()
                .map(|d| DecoderStage {
                    up: d.up,
                    block: d.block.fold_batch_norm(),
                })
                .collect(),
            head: self.head,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Distribution;

    /// torchvision's published parameter counts (`sum(p.numel() for p in m.parameters())`)
    /// without the 1000-class classifier (`fc`: 512 or 2048 inputs, plus 1000 biases).
    #[test]
    fn parameter_counts_match_torchvision() {
        let device = Device::flex();
        for (kind, total, fc_in) in [
            (ResNetKind::R18, 11_689_512, 512),
            (ResNetKind::R34, 21_797_672, 512),
            (ResNetKind::R50, 25_557_032, 2048),
        ] {
            let encoder = ResNetEncoder::new(kind, 3, &device);
            // burn keeps BN's running statistics as parameters; torch as buffers.
            let running: usize = super::super::pretrained::torchvision_keys(&encoder)
                .iter()
                .filter(|(k, _)| k.contains(".running_"))
                .map(|(_, shape)| shape.iter().product::<usize>())
                .sum();
            assert_eq!(
                encoder.num_params() - running,
                total - (fc_in * 1000 + 1000),
                "{kind:?}"
            );
        }
    }

    #[test]
    fn features_and_logits_have_the_documented_shapes() {
        let device = Device::flex();
        let decoder = UNetConfig::new(3).with_base_width(4);
        for kind in [ResNetKind::R18, ResNetKind::R50] {
            let model = ResNetUNet::new(kind, &decoder, &device);
            let x = Tensor::<4>::random([2, 3, 64, 96], Distribution::Default, &device);
            let feats = model.encoder.forward(x.clone());
            let c = kind.channels();
            assert_eq!(feats[0].dims(), [2, c[0], 32, 48]);
            assert_eq!(feats[1].dims(), [2, c[1], 16, 24]);
            assert_eq!(feats[4].dims(), [2, c[4], 2, 3]);
            assert_eq!(model.forward(x).dims(), [2, 3, 64, 96], "{kind:?}");
        }
        let model = ResNetUNet::new(ResNetKind::R18, &decoder, &device);
        assert!(model.check_input_size(64, 40).is_err());
    }

    #[test]
    fn folded_inference_matches_unfolded() {
        let device = Device::flex();
        let autodiff = device.clone().autodiff();
        let decoder = UNetConfig::new(2).with_base_width(4);
        let mut model = ResNetUNet::new(ResNetKind::R18, &decoder, &autodiff);
        // A few training passes give the running statistics values other than 0 and 1.
        for _ in 0..3 {
            let x = Tensor::<4>::random([2, 3, 32, 32], Distribution::Default, &autodiff);
            let _ = model.forward(x);
        }
        model = model.clone();
        let inference = model.valid();
        let x = Tensor::<4>::random([1, 3, 64, 32], Distribution::Default, &device);
        let reference = inference.forward(x.clone());
        let folded = inference.fold_batch_norm().forward(x);
        let diff = (reference - folded).abs().max().into_scalar::<f32>();
        assert!(diff < 1e-3, "max difference {diff}");
    }
}
