//! The network a run trains: a plain [`UNet`] or a UNet decoder on a ResNet encoder
//! ([`ResNetUNet`]), optionally with a second output head trained jointly (multi-task).
//!
//! A checkpoint stores the network exactly as before (`model.bpk` holds the UNet's or the
//! ResNet-UNet's own record, so runs written before encoders existed still load) and the second
//! head, when there is one, beside it (`aux.bpk`).

use std::path::Path;

use burn::module::{Module, ParamGroup};
use burn::nn::PaddingConfig2d;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::store::RecordError;
use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};

use super::resnet::{DECODER_STAGES, RESNET_MULTIPLE, ResNetKind, ResNetUNet, decoder_layout};
use super::unet::{UNet, UNetConfig, UNetError, crop_to, pad_to_multiple};
use crate::core::kernels::ops;

/// The encoder half of the network.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Encoder {
    /// The plain UNet's own encoder ([`UNetConfig::depth`] and `base_width`).
    #[default]
    Unet,
    Resnet18,
    Resnet34,
    Resnet50,
}

impl Encoder {
    pub const ALL: [Encoder; 4] = [
        Encoder::Unet,
        Encoder::Resnet18,
        Encoder::Resnet34,
        Encoder::Resnet50,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unet => "unet",
            Self::Resnet18 => "resnet18",
            Self::Resnet34 => "resnet34",
            Self::Resnet50 => "resnet50",
        }
    }

    /// The ResNet, for the ResNet encoders.
    pub fn resnet(self) -> Option<ResNetKind> {
        match self {
            Self::Unet => None,
            Self::Resnet18 => Some(ResNetKind::R18),
            Self::Resnet34 => Some(ResNetKind::R34),
            Self::Resnet50 => Some(ResNetKind::R50),
        }
    }
}

impl std::fmt::Display for Encoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Encoder {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let wanted = s.to_ascii_lowercase().replace(['-', '_'], "");
        Self::ALL
            .into_iter()
            .find(|e| e.as_str() == wanted)
            .ok_or_else(|| format!("unknown encoder {s:?} (unet, resnet18, resnet34, resnet50)"))
    }
}

/// What the second head predicts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuxTask {
    /// A thin band where the road meets anything else, derived from the class masks
    /// ([`crate::core::boundary`]): 0 elsewhere, 1 on the band.
    Boundary,
    /// BDD100K's drivable area: 0 direct, 1 alternative, 2 background.
    Drivable,
}

impl AuxTask {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Boundary => "boundary",
            Self::Drivable => "drivable",
        }
    }

    /// Output channels (classes) of the head.
    pub fn channels(self) -> usize {
        self.class_names().len()
    }

    pub fn class_names(self) -> &'static [&'static str] {
        match self {
            Self::Boundary => &["elsewhere", "boundary"],
            Self::Drivable => &["direct", "alternative", "background"],
        }
    }
}

impl std::fmt::Display for AuxTask {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for AuxTask {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "boundary" => Ok(Self::Boundary),
            "drivable" => Ok(Self::Drivable),
            _ => Err(format!("unknown auxiliary task {s:?} (boundary, drivable)")),
        }
    }
}

/// Everything that fixes a [`Segmenter`]'s architecture.
#[derive(Clone, Debug, PartialEq)]
pub struct SegmenterConfig {
    /// The UNet (for a ResNet encoder: the decoder's width, up-sampling, initialisation and
    /// batch norm; `depth` is the ResNet's own, 5).
    pub unet: UNetConfig,
    pub encoder: Encoder,
    pub aux: Option<AuxTask>,
}

impl SegmenterConfig {
    pub fn new(unet: UNetConfig) -> Self {
        Self {
            unet,
            encoder: Encoder::Unet,
            aux: None,
        }
    }

    pub fn with_encoder(self, encoder: Encoder) -> Self {
        Self { encoder, ..self }
    }

    pub fn with_aux(self, aux: Option<AuxTask>) -> Self {
        Self { aux, ..self }
    }

    pub fn validate(&self) -> Result<(), UNetError> {
        if self.encoder.resnet().is_none() {
            return self.unet.validate();
        }
        if let Some(widths) = &self.unet.widths
            && widths.len() != DECODER_STAGES
        {
            return Err(UNetError::InvalidConfig(format!(
                "widths must list the {DECODER_STAGES} stages of a {} decoder, got {}",
                self.encoder,
                widths.len()
            )));
        }
        decoder_layout(&self.unet).validate()
    }

    /// The widths `roadseg prune --structured` narrows: a plain UNet's stages, shallowest
    /// first and the bottleneck last, or the five stages of a ResNet's decoder, shallowest
    /// first (the encoder keeps its width).
    pub fn stage_widths(&self) -> Vec<usize> {
        match self.encoder.resnet() {
            None => self.unet.stage_widths(),
            Some(_) => decoder_layout(&self.unet).stage_widths(),
        }
    }

    /// Input sides must be multiples of this (the model pads to it).
    pub fn multiple(&self) -> usize {
        match self.encoder {
            Encoder::Unet => 1 << self.unet.depth,
            _ => RESNET_MULTIPLE,
        }
    }

    /// A freshly initialised model on `device`.
    ///
    /// # Panics
    /// If the configuration is invalid (see [`SegmenterConfig::validate`]).
    pub fn init(&self, device: &Device) -> Segmenter {
        if let Err(e) = self.validate() {
            panic!("{e}");
        }
        let net = match self.encoder.resnet() {
            None => Net::UNet(self.unet.init(device)),
            Some(kind) => Net::ResNet(ResNetUNet::new(kind, &self.unet, device)),
        };
        let aux = self
            .aux
            .map(|task| AuxHead::new(net.feature_channels(), task.channels(), &self.unet, device));
        Segmenter { net, aux }
    }
}

/// The two networks.
// One per model, never in a collection: the size difference costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Module, Debug)]
pub enum Net {
    UNet(UNet),
    ResNet(ResNetUNet),
}

impl Net {
    fn feature_channels(&self) -> usize {
        match self {
            Self::UNet(m) => m.feature_channels(),
            Self::ResNet(m) => m.feature_channels(),
        }
    }
}

/// The second head: a 3x3 convolution with ReLU on the decoder's last features, then a 1x1
/// convolution to the task's classes. `[B, b, H, W]` -> `[B, channels, H, W]`.
#[derive(Module, Debug)]
pub struct AuxHead {
    pub(super) conv: Conv2d,
    pub(super) out: Conv2d,
}

impl AuxHead {
    fn new(features: usize, channels: usize, cfg: &UNetConfig, device: &Device) -> Self {
        let init = cfg.initializer();
        Self {
            conv: Conv2dConfig::new([features, features], [3, 3])
                .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
                .with_initializer(init.clone())
                .init(device),
            out: Conv2dConfig::new([features, channels], [1, 1])
                .with_initializer(init)
                .init(device),
        }
    }

    fn forward(&self, features: Tensor<4>) -> Tensor<4> {
        // Weights before biases, as burn's Conv2d reads them (parameters initialise lazily on
        // first read: the order decides what a seed gives each).
        let weight = self.conv.weight.val();
        let bias = self.conv.bias.as_ref().map(|b| b.val());
        let x = ops::conv3x3(features, None, weight, bias, true);
        let weight = self.out.weight.val();
        let bias = self.out.bias.as_ref().map(|b| b.val());
        ops::conv1x1(x, weight, bias)
    }

    /// Output channels.
    pub fn channels(&self) -> usize {
        self.out.weight.dims()[0]
    }
}

/// What the network says about a batch.
#[derive(Clone, Debug)]
pub struct Output {
    /// `[batch, classes, h, w]`
    pub logits: Tensor<4>,
    /// The second head's logits `[batch, aux classes, h, w]`, when there is one.
    pub aux: Option<Tensor<4>>,
}

/// A segmentation network and its optional second head; build it with
/// [`SegmenterConfig::init`].
#[derive(Module, Debug)]
pub struct Segmenter {
    pub(super) net: Net,
    pub(super) aux: Option<AuxHead>,
}

impl From<UNet> for Segmenter {
    fn from(unet: UNet) -> Self {
        Self {
            net: Net::UNet(unet),
            aux: None,
        }
    }
}

impl Segmenter {
    pub fn net(&self) -> &Net {
        &self.net
    }

    /// Output channels of the second head, if any.
    pub fn aux_channels(&self) -> Option<usize> {
        self.aux.as_ref().map(AuxHead::channels)
    }

    /// Input sides the network takes without padding are multiples of this.
    pub fn multiple(&self) -> usize {
        match &self.net {
            Net::UNet(m) => 1 << m.depth(),
            Net::ResNet(_) => RESNET_MULTIPLE,
        }
    }

    /// The encoder's parameters and batch-norm flags (for freezing and per-group learning
    /// rates).
    pub fn encoder_group(&self) -> ParamGroup {
        match &self.net {
            Net::UNet(m) => m.encoder_group(),
            Net::ResNet(m) => m.encoder_group(),
        }
    }

    /// The ResNet encoder, to load pretrained weights into.
    pub fn resnet_encoder_mut(&mut self) -> Option<&mut super::resnet::ResNetEncoder> {
        match &mut self.net {
            Net::ResNet(m) => Some(&mut m.encoder),
            Net::UNet(_) => None,
        }
    }

    fn features(&self, images: Tensor<4>) -> Tensor<4> {
        match &self.net {
            Net::UNet(m) => m.features(images),
            Net::ResNet(m) => m.features(images),
        }
    }

    fn head(&self, features: Tensor<4>) -> Tensor<4> {
        match &self.net {
            Net::UNet(m) => m.head(features),
            Net::ResNet(m) => m.head(features),
        }
    }

    /// Logits of both heads for images of any size: the batch is padded with zeros (the mean
    /// colour after normalisation) at the bottom and right up to the next multiple of
    /// [`Segmenter::multiple`], and the outputs are cropped back.
    /// `[batch, in, h, w]` -> `[batch, classes, h, w]` (and `[batch, aux, h, w]`).
    pub fn forward(&self, images: Tensor<4>) -> Output {
        self.run(images, true)
    }

    /// The first head's logits only (see [`Segmenter::forward`]).
    pub fn forward_any_size(&self, images: Tensor<4>) -> Tensor<4> {
        self.run(images, false).logits
    }

    fn run(&self, images: Tensor<4>, with_aux: bool) -> Output {
        let [_, _, height, width] = images.dims();
        let padded = pad_to_multiple(images, self.multiple());
        let features = self.features(padded); // [batch, b, padded_h, padded_w]
        let aux = match (&self.aux, with_aux) {
            (Some(head), true) => Some(head.forward(features.clone())),
            _ => None,
        };
        Output {
            logits: crop_to(self.head(features), [height, width]),
            aux: aux.map(|t| crop_to(t, [height, width])),
        }
    }

    /// The model for inference: every batch norm folded into the convolution before it.
    pub fn fold_batch_norm(self) -> Self {
        let net = match self.net {
            Net::UNet(m) => Net::UNet(m.fold_batch_norm()),
            Net::ResNet(m) => Net::ResNet(m.fold_batch_norm()),
        };
        Self { net, aux: self.aux }
    }

    /// Writes the network's record to `model` and the second head's (if any) to `aux`.
    pub fn save_files(&self, model: &Path, aux: &Path) -> Result<(), RecordError> {
        match &self.net {
            Net::UNet(m) => m.clone().save_file(model)?,
            Net::ResNet(m) => m.clone().save_file(model)?,
        }
        if let Some(head) = &self.aux {
            head.clone().save_file(aux)?;
        }
        Ok(())
    }

    /// Loads what [`Segmenter::save_files`] wrote into this architecture.
    pub fn load_files(self, model: &Path, aux: &Path) -> Result<Self, RecordError> {
        let net = match self.net {
            Net::UNet(m) => Net::UNet(m.try_load_file(model)?),
            Net::ResNet(m) => Net::ResNet(m.try_load_file(model)?),
        };
        let aux = match self.aux {
            Some(head) => Some(head.try_load_file(aux)?),
            None => None,
        };
        Ok(Self { net, aux })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Distribution;

    #[test]
    fn names_parse_and_print() {
        for e in Encoder::ALL {
            assert_eq!(e.as_str().parse::<Encoder>(), Ok(e));
        }
        assert_eq!("ResNet-18".parse::<Encoder>(), Ok(Encoder::Resnet18));
        assert!("vgg16".parse::<Encoder>().unwrap_err().contains("resnet50"));
        assert_eq!("boundary".parse::<AuxTask>(), Ok(AuxTask::Boundary));
        assert_eq!(
            serde_json::to_string(&Encoder::Resnet34).unwrap(),
            "\"resnet34\""
        );
    }

    #[test]
    fn both_heads_keep_the_input_size_for_every_encoder() {
        let device = Device::flex();
        let unet = UNetConfig::new(3).with_depth(2).with_base_width(2);
        for encoder in [Encoder::Unet, Encoder::Resnet18] {
            let model = SegmenterConfig::new(unet.clone())
                .with_encoder(encoder)
                .with_aux(Some(AuxTask::Drivable))
                .init(&device);
            let x = Tensor::<4>::random([1, 3, 30, 20], Distribution::Default, &device);
            let out = model.forward(x.clone());
            assert_eq!(out.logits.dims(), [1, 3, 30, 20], "{encoder}");
            assert_eq!(out.aux.unwrap().dims(), [1, 3, 30, 20], "{encoder}");
            assert_eq!(model.forward_any_size(x).dims(), [1, 3, 30, 20]);
        }
    }

    #[test]
    fn checkpoint_files_round_trip_with_the_second_head() {
        let device = Device::flex();
        let dir = tempfile::tempdir().unwrap();
        let (model_path, aux_path) = (dir.path().join("model.bpk"), dir.path().join("aux.bpk"));
        let config = SegmenterConfig::new(UNetConfig::new(2).with_depth(1).with_base_width(2))
            .with_aux(Some(AuxTask::Boundary));
        let model = config.init(&device);
        model.save_files(&model_path, &aux_path).unwrap();
        let loaded = config
            .init(&device)
            .load_files(&model_path, &aux_path)
            .unwrap();
        let x = Tensor::<4>::random([1, 3, 4, 4], Distribution::Default, &device);
        let (a, b) = (model.forward(x.clone()), loaded.forward(x));
        let diff = (a.aux.unwrap() - b.aux.unwrap())
            .abs()
            .max()
            .into_scalar::<f32>();
        assert_eq!(diff, 0.0);
        // The network's record alone is a plain UNet's: what runs wrote before encoders.
        let plain = UNetConfig::new(2)
            .with_depth(1)
            .with_base_width(2)
            .init(&device)
            .try_load_file(&model_path);
        assert!(plain.is_ok());
    }
}
