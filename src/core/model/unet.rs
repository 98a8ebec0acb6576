//! A configurable UNet (Ronneberger et al., 2015) for semantic segmentation.
//!
//! Layout for `depth = d` and `base_width = b` (channels double at each stage):
//!
//! ```text
//! input [B, in, H, W]
//!   enc 0: ConvBlock(in -> b)            [B, b, H, W]         --skip 0--+
//!   pool                                  [B, b, H/2, W/2]               |
//!   enc 1: ConvBlock(b -> 2b)            [B, 2b, H/2, W/2]    --skip 1-+|
//!   ...                                                                 ||
//!   bottleneck: ConvBlock(b*2^(d-1) -> b*2^d) + dropout  [B, b*2^d, H/2^d, W/2^d]
//!   dec d-1: up(b*2^d -> b*2^(d-1)), cat(skip d-1), ConvBlock(...)      ||
//!   ...                                                                 ||
//!   dec 0:   up(2b -> b), cat(skip 0), ConvBlock(2b -> b)   [B, b, H, W]
//!   head: 1x1 conv (b -> classes)         [B, classes, H, W]
//! ```
//!
//! Every max-pool halves the spatial size, so the input height and width must be divisible by
//! `2^depth` (see [`UNet::check_input_size`]); padding/cropping is left to the caller (the
//! dataset tiles images to suitable sizes).

use burn::config::Config;
use burn::module::{Module, Param, ParamGroup};
use burn::nn::conv::{Conv2d, Conv2dConfig, ConvTranspose2d, ConvTranspose2dConfig};
use burn::nn::pool::{MaxPool2d, MaxPool2dConfig};
use burn::nn::{
    BatchNorm, BatchNormConfig, Dropout, DropoutConfig, Initializer, PaddingConfig2d, Relu,
};
use burn::tensor::activation::relu;
use burn::tensor::{Device, Tensor};

use crate::core::kernels::ops;

/// Largest supported number of down-sampling stages (2^8 = 256 px minimum tile).
pub const MAX_DEPTH: usize = 8;

/// How the decoder doubles the spatial resolution.
#[derive(Config, Debug, PartialEq, Eq)]
pub enum Upsample {
    /// Bilinear x2 interpolation followed by a 3x3 convolution that halves the channels.
    /// No checkerboard artefacts; the default.
    Bilinear,
    /// A learned 2x2 transposed convolution with stride 2 that halves the channels.
    Transposed,
}

/// Weight initialisation scheme for the convolutions.
#[derive(Config, Debug, PartialEq, Eq)]
pub enum Init {
    /// He/Kaiming normal (gain sqrt(2), fan-in): suited to ReLU networks; the default.
    Kaiming,
    /// Glorot/Xavier uniform (gain 1).
    Xavier,
}

/// Why a [`UNetConfig`] or an input size is not usable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UNetError {
    /// A field of the configuration is out of range.
    #[error("invalid UNet config: {0}")]
    InvalidConfig(String),
    /// The input height/width cannot be pooled `depth` times without remainder.
    #[error(
        "input size {height}x{width} is not supported: height and width must be non-zero \
         multiples of {multiple} (2^depth with depth {depth}); pad or crop the image first"
    )]
    InputSize {
        /// Input height.
        height: usize,
        /// Input width.
        width: usize,
        /// Number of down-sampling stages of the model.
        depth: usize,
        /// Required divisor, `2^depth`.
        multiple: usize,
    },
}

/// Configuration of a [`UNet`]. Serialisable (burn `Config`: serde + JSON `save`/`load`).
#[derive(Config, Debug, PartialEq)]
pub struct UNetConfig {
    /// Number of input channels (3 for RGB).
    #[config(default = 3)]
    pub in_channels: usize,
    /// Number of output classes (logit channels).
    pub num_classes: usize,
    /// Number of down-sampling (max-pool) stages, 1..=[`MAX_DEPTH`].
    #[config(default = 4)]
    pub depth: usize,
    /// Channels of the first stage; doubled at each deeper stage.
    #[config(default = 16)]
    pub base_width: usize,
    /// Dropout probability applied to the bottleneck features during training, in [0, 1).
    #[config(default = 0.0)]
    pub dropout: f64,
    /// Decoder up-sampling method.
    #[config(default = "Upsample::Bilinear")]
    pub upsample: Upsample,
    /// Convolution weight initialisation.
    #[config(default = "Init::Kaiming")]
    pub init: Init,
    /// Batch normalisation after every 3x3 convolution (convolutions then have no bias).
    #[config(default = true)]
    pub batch_norm: bool,
    /// Channels of each stage, shallowest first, the bottleneck last (`depth + 1` values), when
    /// they do not follow `base_width * 2^stage`: a channel-pruned model (`roadseg prune
    /// --structured`). Every layer of a stage (encoder, skip, up-sampler, decoder) has this
    /// width. Under a ResNet encoder, the five stages of its decoder, shallowest first; the
    /// encoder keeps its own widths. Absent (older configs too): `base_width` doubled at each
    /// stage.
    pub widths: Option<Vec<usize>>,
}

impl UNetConfig {
    /// Check that every field is in range.
    pub fn validate(&self) -> Result<(), UNetError> {
        let bad = |msg: String| Err(UNetError::InvalidConfig(msg));
        if self.in_channels == 0 {
            return bad("in_channels must be at least 1".into());
        }
        if self.num_classes == 0 {
            return bad("num_classes must be at least 1".into());
        }
        if !(1..=MAX_DEPTH).contains(&self.depth) {
            return bad(format!(
                "depth must be in 1..={MAX_DEPTH}, got {}",
                self.depth
            ));
        }
        if self.base_width == 0 {
            return bad("base_width must be at least 1".into());
        }
        // The widest stage has base_width * 2^depth channels; keep that sane.
        if self
            .base_width
            .checked_mul(1 << self.depth)
            .is_none_or(|w| w > 1 << 16)
        {
            return bad(format!(
                "base_width {} * 2^{} channels is too large",
                self.base_width, self.depth
            ));
        }
        if !self.dropout.is_finite() || !(0.0..1.0).contains(&self.dropout) {
            return bad(format!("dropout must be in [0, 1), got {}", self.dropout));
        }
        if let Some(widths) = &self.widths {
            if widths.len() != self.depth + 1 {
                return bad(format!(
                    "widths must list {} stages (depth {} + the bottleneck), got {}",
                    self.depth + 1,
                    self.depth,
                    widths.len()
                ));
            }
            if widths.iter().any(|&w| w == 0 || w > 1 << 16) {
                return bad(format!("widths must be in 1..=65536, got {widths:?}"));
            }
        }
        Ok(())
    }

    /// Channels at encoder stage `stage` (0-based; `stage == depth` is the bottleneck).
    pub fn width(&self, stage: usize) -> usize {
        match &self.widths {
            Some(widths) => widths[stage],
            None => self.base_width << stage,
        }
    }

    /// The channels of every stage, shallowest first, the bottleneck last.
    pub fn stage_widths(&self) -> Vec<usize> {
        (0..=self.depth).map(|s| self.width(s)).collect()
    }

    /// burn's initializer for [`UNetConfig::init`].
    pub(crate) fn initializer(&self) -> Initializer {
        match self.init {
            // PyTorch's `kaiming_normal_(nonlinearity="relu")`: std = sqrt(2 / fan_in).
            Init::Kaiming => Initializer::KaimingNormal {
                gain: std::f64::consts::SQRT_2,
                fan_out_only: false,
            },
            Init::Xavier => Initializer::XavierUniform { gain: 1.0 },
        }
    }

    /// Build the model with freshly initialised weights on `device`.
    ///
    /// # Panics
    /// If the configuration is invalid (see [`UNetConfig::validate`]).
    pub fn init(&self, device: &Device) -> UNet {
        if let Err(e) = self.validate() {
            panic!("{e}");
        }
        let conv_init = self.initializer();
        let block = |cin: usize, cout: usize| ConvBlock::new(cin, cout, self, &conv_init, device);

        let encoders = (0..self.depth)
            .map(|s| {
                let cin = if s == 0 {
                    self.in_channels
                } else {
                    self.width(s - 1)
                };
                block(cin, self.width(s))
            })
            .collect();
        let bottleneck = block(self.width(self.depth - 1), self.width(self.depth));
        // Decoders are stored deepest first, in the order forward() visits them.
        let decoders = (0..self.depth)
            .rev()
            .map(|s| {
                let (cin, cout) = (self.width(s + 1), self.width(s));
                let up = UpSampler::new(cin, cout, self, &conv_init, device);
                // The up-sampled features (cout) are concatenated with the skip (cout).
                UpBlock {
                    up,
                    block: block(2 * cout, cout),
                }
            })
            .collect();
        let head = Conv2dConfig::new([self.width(0), self.num_classes], [1, 1])
            .with_initializer(conv_init.clone())
            .init(device);

        UNet {
            encoders,
            pool: MaxPool2dConfig::new([2, 2]).init(),
            bottleneck,
            dropout: DropoutConfig::new(self.dropout).init(),
            decoders,
            head,
        }
    }
}

/// Two 3x3 convolutions (padding 1), each followed by optional batch norm and ReLU.
#[derive(Module, Debug)]
pub struct ConvBlock {
    pub(super) conv1: Conv2d,
    pub(super) norm1: Option<BatchNorm>,
    pub(super) conv2: Conv2d,
    pub(super) norm2: Option<BatchNorm>,
    pub(super) relu: Relu,
}

impl ConvBlock {
    pub(crate) fn new(
        cin: usize,
        cout: usize,
        cfg: &UNetConfig,
        init: &Initializer,
        device: &Device,
    ) -> Self {
        let conv = |cin: usize| {
            Conv2dConfig::new([cin, cout], [3, 3])
                .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
                // Batch norm subtracts the mean, so a conv bias would be dead weight.
                .with_bias(!cfg.batch_norm)
                .with_initializer(init.clone())
                .init(device)
        };
        let norm = || {
            cfg.batch_norm
                .then(|| BatchNormConfig::new(cout).init(device))
        };
        Self {
            conv1: conv(cin),
            norm1: norm(),
            conv2: conv(cout),
            norm2: norm(),
            relu: Relu::new(),
        }
    }

    /// `[B, cin, h, w]` -> `[B, cout, h, w]`; `second` (`[B, c2, h, w]`), when given, is
    /// concatenated after `first` along the channels (the decoder's skip connection).
    pub(crate) fn forward(&self, first: Tensor<4>, second: Option<Tensor<4>>) -> Tensor<4> {
        let x = conv_norm_relu(&self.conv1, self.norm1.as_ref(), first, second);
        conv_norm_relu(&self.conv2, self.norm2.as_ref(), x, None)
    }
}

impl ConvBlock {
    /// This block for inference with each batch norm folded into its convolution.
    pub(crate) fn fold_batch_norm(self) -> Self {
        let (conv1, norm1) = fold(self.conv1, self.norm1);
        let (conv2, norm2) = fold(self.conv2, self.norm2);
        Self {
            conv1,
            norm1,
            conv2,
            norm2,
            relu: self.relu,
        }
    }
}

/// `conv` with `norm`'s running statistics folded in (see [`conv_norm_relu`]), and no norm.
pub(crate) fn fold(mut conv: Conv2d, norm: Option<BatchNorm>) -> (Conv2d, Option<BatchNorm>) {
    let Some(norm) = norm else {
        return (conv, None);
    };
    let (weight, bias) = folded(&conv, &norm);
    conv.weight = Param::from_tensor(weight);
    conv.bias = Some(Param::from_tensor(bias));
    (conv, None)
}

/// The weight and bias of `conv` followed by `norm` in inference mode:
/// `w' = w·scale`, `b' = (b - mean)·scale + beta` with `scale = gamma / sqrt(var + eps)`.
pub(super) fn folded(conv: &Conv2d, norm: &BatchNorm) -> (Tensor<4>, Tensor<1>) {
    let weight = ops::dequantized(conv.weight.val()); // [out, in, kh, kw]
    let device = weight.device();
    let var = norm.running_var.value().to_device(&device);
    let mean = norm.running_mean.value().to_device(&device);
    let scale = norm.gamma.val() / var.add_scalar(norm.epsilon).sqrt(); // [out]
    let [out_channels, ..] = weight.dims();
    let weight = weight * scale.clone().reshape([out_channels, 1, 1, 1]);
    let shift = match &conv.bias {
        Some(bias) => ops::dequantized(bias.val()) - mean,
        None => mean.neg(),
    };
    (weight, shift * scale + norm.beta.val())
}

/// `relu(norm(conv(x)))` (no norm: `relu(conv(x))`) for a 3x3 convolution with padding 1.
///
/// In training (an autodiff device and the norm not frozen) the batch's statistics normalise,
/// as burn's `BatchNorm` does. Otherwise, on the CPU kernels, the running statistics are folded
/// into the convolution ([`folded`]): one pass instead of three, the same values up to
/// rounding. (Inference models fold once, [`UNet::fold_batch_norm`].)
fn conv_norm_relu(
    conv: &Conv2d,
    norm: Option<&BatchNorm>,
    first: Tensor<4>,
    second: Option<Tensor<4>>,
) -> Tensor<4> {
    let weight = conv.weight.val(); // [out, in, 3, 3]
    let bias = conv.bias.as_ref().map(|b| b.val()); // [out]
    let Some(norm) = norm else {
        return ops::conv3x3(first, second, weight, bias, true);
    };
    if first.device().is_autodiff() && norm.training.is_enabled() {
        let x = ops::conv3x3(first, second, weight, bias, false);
        return ops::batch_norm_relu_train(x, norm);
    }
    if !ops::accelerated(&first) {
        // burn's own inference batch norm (the reference the folding is tested against).
        let x = ops::conv3x3(first, second, weight, bias, false);
        return relu(norm.forward(x));
    }
    let (weight, bias) = folded(conv, norm);
    ops::conv3x3(first, second, weight, Some(bias), true)
}

/// Bilinear x2 interpolation followed by a 3x3 convolution.
#[derive(Module, Debug)]
pub struct BilinearUp {
    pub(super) conv: Conv2d,
}

/// The decoder's x2 up-sampling, halving the channels.
#[derive(Module, Debug)]
pub enum UpSampler {
    /// See [`Upsample::Bilinear`].
    Bilinear(BilinearUp),
    /// See [`Upsample::Transposed`].
    Transposed(ConvTranspose2d),
}

impl UpSampler {
    pub(crate) fn new(
        cin: usize,
        cout: usize,
        cfg: &UNetConfig,
        init: &Initializer,
        device: &Device,
    ) -> Self {
        match cfg.upsample {
            Upsample::Bilinear => Self::Bilinear(BilinearUp {
                conv: Conv2dConfig::new([cin, cout], [3, 3])
                    .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
                    .with_initializer(init.clone())
                    .init(device),
            }),
            Upsample::Transposed => {
                let init = match init {
                    // burn gives transposed convolutions no fan-out, which Xavier needs, so
                    // spell Glorot's uniform bound out with PyTorch's fans for a
                    // `[cin, cout, 2, 2]` weight: fan_in = cout*4, fan_out = cin*4.
                    Initializer::XavierUniform { gain } => {
                        let bound = gain * (6.0 / (4 * (cin + cout)) as f64).sqrt();
                        Initializer::Uniform {
                            min: -bound,
                            max: bound,
                        }
                    }
                    other => other.clone(),
                };
                Self::Transposed(
                    ConvTranspose2dConfig::new([cin, cout], [2, 2])
                        .with_stride([2, 2])
                        .with_initializer(init)
                        .init(device),
                )
            }
        }
    }

    /// `[B, cin, h, w]` -> `[B, cout, 2h, 2w]`.
    pub(crate) fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        match self {
            Self::Bilinear(up) => {
                let x = ops::upsample2x(x); // [B, cin, 2h, 2w]
                let (weight, bias) = (up.conv.weight.val(), up.conv.bias.as_ref().map(|b| b.val()));
                ops::conv3x3(x, None, weight, bias, false)
            }
            Self::Transposed(conv) => conv.forward(x),
        }
    }
}

/// One decoder stage: up-sample, concatenate the skip connection, [`ConvBlock`].
#[derive(Module, Debug)]
pub struct UpBlock {
    pub(super) up: UpSampler,
    pub(super) block: ConvBlock,
}

/// UNet segmentation network; build it with [`UNetConfig::init`].
///
/// Batch norm and dropout behave in training mode when the parameters live on an autodiff
/// device (`device.autodiff()`), and in inference mode otherwise (or after
/// [`Module::valid`]).
#[derive(Module, Debug)]
pub struct UNet {
    /// Encoder stages, shallowest first.
    pub(super) encoders: Vec<ConvBlock>,
    /// 2x2 max-pooling; [`ops::max_pool2x2`] computes it (the field keeps the module's record
    /// layout).
    pub(super) pool: MaxPool2d,
    pub(super) bottleneck: ConvBlock,
    pub(super) dropout: Dropout,
    /// Decoder stages, deepest first.
    pub(super) decoders: Vec<UpBlock>,
    pub(super) head: Conv2d,
}

impl UNet {
    /// Number of down-sampling stages.
    pub fn depth(&self) -> usize {
        self.encoders.len()
    }

    /// Check that an input of `height` x `width` pixels can go through the network: both must be
    /// non-zero multiples of `2^depth`.
    pub fn check_input_size(&self, height: usize, width: usize) -> Result<(), UNetError> {
        let depth = self.depth();
        let multiple = 1usize << depth;
        if height == 0
            || width == 0
            || !height.is_multiple_of(multiple)
            || !width.is_multiple_of(multiple)
        {
            return Err(UNetError::InputSize {
                height,
                width,
                depth,
                multiple,
            });
        }
        Ok(())
    }

    /// Logits for a batch of images: `[batch, in_channels, h, w]` -> `[batch, num_classes, h, w]`.
    ///
    /// # Panics
    /// If `h` or `w` is not a multiple of `2^depth` (see [`UNet::check_input_size`]).
    pub fn forward(&self, images: Tensor<4>) -> Tensor<4> {
        let features = self.features(images);
        self.head(features)
    }

    /// The last decoder stage's features, what the head classifies:
    /// `[batch, in_channels, h, w]` -> `[batch, base_width, h, w]`.
    ///
    /// # Panics
    /// If `h` or `w` is not a multiple of `2^depth` (see [`UNet::check_input_size`]).
    pub fn features(&self, images: Tensor<4>) -> Tensor<4> {
        let [_, _, height, width] = images.dims();
        if let Err(e) = self.check_input_size(height, width) {
            panic!("{e}");
        }

        let mut skips = Vec::with_capacity(self.encoders.len());
        let mut x = images; // [B, in, H, W]
        for encoder in &self.encoders {
            let features = encoder.forward(x, None); // [B, b*2^s, H/2^s, W/2^s]
            x = ops::max_pool2x2(features.clone()); // [B, b*2^s, H/2^(s+1), W/2^(s+1)]
            skips.push(features);
        }
        // [B, b*2^d, H/2^d, W/2^d]
        x = self.dropout.forward(self.bottleneck.forward(x, None));
        for decoder in &self.decoders {
            let skip = skips.pop().expect("one skip per decoder stage");
            let up = decoder.up.forward(x); // [B, b*2^s, H/2^s, W/2^s]
            x = decoder.block.forward(skip, Some(up)); // cat(skip, up) -> [B, b*2^s, ...]
        }
        x
    }

    /// Logits from [`UNet::features`]: `[B, b, H, W]` -> `[B, classes, H, W]`.
    pub fn head(&self, features: Tensor<4>) -> Tensor<4> {
        // Weight before bias, as burn's Conv2d reads them: parameters are initialised lazily on
        // first read, so this order decides which random numbers a seed gives each of them.
        let head_weight = self.head.weight.val();
        let head_bias = self.head.bias.as_ref().map(|b| b.val());
        ops::conv1x1(features, head_weight, head_bias)
    }

    /// Channels of [`UNet::features`].
    pub fn feature_channels(&self) -> usize {
        self.head.weight.dims()[1]
    }

    /// The encoder's parameters (down-sampling stages and bottleneck), for freezing and
    /// per-group learning rates.
    pub fn encoder_group(&self) -> ParamGroup {
        ParamGroup::ids_from_module((self.encoders.clone(), self.bottleneck.clone()))
    }
}

impl UNet {
    /// The model for inference: every batch norm folded into the convolution before it, with
    /// its running statistics (one pass per convolution instead of three). Dropout is already
    /// inactive outside training. The result has no batch norm left to train.
    pub fn fold_batch_norm(self) -> Self {
        Self {
            encoders: self
                .encoders
                .into_iter()
                .map(ConvBlock::fold_batch_norm)
                .collect(),
            pool: self.pool,
            bottleneck: self.bottleneck.fold_batch_norm(),
            dropout: self.dropout,
            decoders: self
                .decoders
                .into_iter()
                .map(|d| UpBlock {
                    up: d.up,
                    block: d.block.fold_batch_norm(),
                })
                .collect(),
            head: self.head,
        }
    }

    /// Logits for images of any size: the batch is padded with zeros (the mean colour after
    /// normalisation) at the bottom and right up to the next multiple of `2^depth`, and the
    /// logits are cropped back. `[batch, in, h, w]` -> `[batch, classes, h, w]`.
    pub fn forward_any_size(&self, images: Tensor<4>) -> Tensor<4> {
        let [_, _, height, width] = images.dims();
        let padded = pad_to_multiple(images, 1 << self.depth());
        crop_to(self.forward(padded), [height, width]) // [batch, classes, h, w]
    }
}

/// `images` (`[batch, c, h, w]`) zero-padded at the bottom and right up to the next multiples
/// of `multiple` (unchanged when they already are); [`crop_to`] takes an output back.
pub fn pad_to_multiple(images: Tensor<4>, multiple: usize) -> Tensor<4> {
    let [batch, channels, height, width] = images.dims();
    let padded_h = height.div_ceil(multiple).max(1) * multiple;
    let padded_w = width.div_ceil(multiple).max(1) * multiple;
    let device = images.device();
    let mut x = images;
    if padded_w > width {
        let zeros = Tensor::zeros([batch, channels, height, padded_w - width], &device);
        x = Tensor::cat(vec![x, zeros], 3);
    }
    if padded_h > height {
        let zeros = Tensor::zeros([batch, channels, padded_h - height, padded_w], &device);
        x = Tensor::cat(vec![x, zeros], 2);
    }
    x
}

/// The top-left `[height, width]` of `t` (`[batch, c, H, W]`), `t` itself when it is that size.
pub fn crop_to(t: Tensor<4>, [height, width]: [usize; 2]) -> Tensor<4> {
    let [_, _, h, w] = t.dims();
    if (h, w) == (height, width) {
        t
    } else {
        t.narrow(2, 0, height).narrow(3, 0, width)
    }
}
#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Distribution;

    fn shape_of(cfg: &UNetConfig, h: usize, w: usize) -> [usize; 4] {
        let device = Device::flex();
        let model = cfg.init(&device);
        let x = Tensor::<4>::random([2, cfg.in_channels, h, w], Distribution::Default, &device);
        model.forward(x).dims()
    }

    #[test]
    fn bilinear_upsampling_matches_burns_interpolate() {
        use burn::tensor::module::interpolate;
        use burn::tensor::ops::{InterpolateMode, InterpolateOptions};
        let device = Device::flex();
        let x = Tensor::<4>::random([2, 3, 5, 4], Distribution::Default, &device);
        let ours = ops::upsample2x_composite(x.clone());
        let reference = interpolate(
            x,
            InterpolateOptions::new(InterpolateMode::Bilinear)
                .with_align_corners(false)
                .with_output_size([10, 8]),
        );
        assert_eq!(ours.dims(), [2, 3, 10, 8]);
        let diff = (ours - reference).abs().max().into_scalar::<f32>();
        assert!(diff < 1e-5, "max difference {diff}");
    }

    #[test]
    fn output_shape_matches_input_for_both_upsamplers() {
        for upsample in [Upsample::Bilinear, Upsample::Transposed] {
            for (depth, h, w) in [(2, 8, 12), (3, 16, 24)] {
                let cfg = UNetConfig::new(3)
                    .with_depth(depth)
                    .with_base_width(4)
                    .with_upsample(upsample.clone());
                assert_eq!(
                    shape_of(&cfg, h, w),
                    [2, 3, h, w],
                    "{upsample:?} depth {depth}"
                );
            }
        }
    }

    #[test]
    fn variants_without_batch_norm_with_dropout_and_xavier_run() {
        let cfg = UNetConfig::new(2)
            .with_in_channels(1)
            .with_depth(2)
            .with_base_width(4)
            .with_batch_norm(false)
            .with_dropout(0.5)
            .with_init(Init::Xavier)
            .with_upsample(Upsample::Transposed);
        assert_eq!(shape_of(&cfg, 8, 8), [2, 2, 8, 8]);
    }

    #[test]
    fn parameter_count_grows_with_base_width() {
        let device = Device::flex();
        let count = |w| {
            UNetConfig::new(2)
                .with_depth(2)
                .with_base_width(w)
                .init(&device)
                .num_params()
        };
        let (small, large) = (count(4), count(8));
        assert!(small > 0 && large > small, "{small} vs {large}");
    }

    #[test]
    fn any_size_is_padded_and_cropped_back() {
        let device = Device::flex();
        let model = UNetConfig::new(3)
            .with_depth(3)
            .with_base_width(2)
            .init(&device);
        let images = Tensor::<4>::random([1, 3, 18, 13], Distribution::Default, &device);
        assert_eq!(model.forward_any_size(images).dims(), [1, 3, 18, 13]);
        // Aligned sizes take the plain path with identical results.
        let aligned = Tensor::<4>::random([1, 3, 16, 8], Distribution::Default, &device);
        let diff = (model.forward_any_size(aligned.clone()) - model.forward(aligned))
            .abs()
            .max()
            .into_scalar::<f32>();
        assert_eq!(diff, 0.0);
    }

    #[test]
    fn input_size_must_be_divisible_by_two_to_the_depth() {
        let model = UNetConfig::new(2)
            .with_depth(3)
            .with_base_width(2)
            .init(&Device::flex());
        assert!(model.check_input_size(16, 24).is_ok());
        let err = model.check_input_size(12, 16).unwrap_err();
        assert!(err.to_string().contains("multiples of 8"), "{err}");
        assert!(model.check_input_size(0, 8).is_err());
    }

    #[test]
    fn invalid_configs_are_rejected() {
        assert!(UNetConfig::new(0).validate().is_err());
        assert!(UNetConfig::new(2).with_depth(0).validate().is_err());
        assert!(UNetConfig::new(2).with_dropout(1.0).validate().is_err());
        assert!(UNetConfig::new(2).validate().is_ok());
    }

    #[test]
    fn stage_widths_shape_the_model_and_old_configs_still_load() {
        let cfg = UNetConfig::new(3)
            .with_depth(2)
            .with_base_width(4)
            .with_widths(Some(vec![3, 5, 6]));
        cfg.validate().unwrap();
        assert_eq!(cfg.stage_widths(), [3, 5, 6]);
        assert_eq!(shape_of(&cfg, 8, 12), [2, 3, 8, 12]);
        let full = UNetConfig::new(3).with_depth(2).with_base_width(4);
        assert_eq!(full.stage_widths(), [4, 8, 16]);
        let device = Device::flex();
        assert!(cfg.init(&device).num_params() < full.init(&device).num_params());
        assert!(
            cfg.clone()
                .with_widths(Some(vec![3, 5]))
                .validate()
                .is_err()
        );
        assert!(
            cfg.clone()
                .with_widths(Some(vec![3, 0, 5]))
                .validate()
                .is_err()
        );
        // A config.json written before the field existed.
        let old = r#"{"in_channels":3,"num_classes":7,"depth":4,"base_width":8,"dropout":0.0,
            "upsample":"Bilinear","init":"Kaiming","batch_norm":true}"#;
        let back: UNetConfig = serde_json::from_str(old).unwrap();
        assert_eq!(back.widths, None);
        assert_eq!(back.stage_widths(), [8, 16, 32, 64, 128]);
        let json = serde_json::to_string(&cfg).unwrap();
        assert_eq!(serde_json::from_str::<UNetConfig>(&json).unwrap(), cfg);
    }

    #[test]
    fn config_round_trips_through_json() {
        let cfg = UNetConfig::new(5)
            .with_upsample(Upsample::Transposed)
            .with_init(Init::Xavier);
        let json = serde_json::to_string(&cfg).unwrap();
        let back: UNetConfig = serde_json::from_str(&json).unwrap();
        assert_eq!(back, cfg);
    }
}
