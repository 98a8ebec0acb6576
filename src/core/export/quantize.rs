//! `roadseg quantize`: burn's post-training weight quantization of a run's convolution weights
//! to 8-bit integers (symmetric, min-max calibration).
//!
//! Only the 4-D convolution weights are quantized (they are nearly all of the model's bytes);
//! biases and batch-norm parameters stay in f32. The quantized run is an ordinary run: its
//! checkpoint holds the int8 values and their scales, and loading it gives a model whose
//! quantized weights are turned back into floats right before each convolution
//! ([`crate::core::kernels::ops::dequantized`]). burn's CPU backend stores quantized tensors but
//! computes in f32, so the file is about four times smaller and inference is no faster.

use std::str::FromStr;

use burn::module::{Module, ModuleMapper, Param};
use burn::tensor::quantization::{
    Calibration, QuantScheme, QuantValue, ScaleDtype, compute_q_params, compute_range,
};
use burn::tensor::{DType, Tensor};

/// How weights are quantized.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// One f32 scale per weight tensor.
    Int8Tensor,
    /// One f32 scale per block of input channels of a filter (up to 16 channels x kh x kw
    /// values): finer scales, a little more storage, closer to the float weights.
    Int8Block,
}

impl FromStr for Scheme {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "int8-tensor" => Ok(Self::Int8Tensor),
            "int8-block" => Ok(Self::Int8Block),
            _ => Err(format!(
                "unknown scheme {s:?}: expected int8-tensor or int8-block"
            )),
        }
    }
}

impl std::fmt::Display for Scheme {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Int8Tensor => "int8-tensor",
            Self::Int8Block => "int8-block",
        })
    }
}

impl Scheme {
    /// burn's scheme for a weight of `dims` (`[out, in, kh, kw]`).
    fn for_weight(self, dims: &[usize]) -> QuantScheme {
        let base = QuantScheme::default().with_value(QuantValue::Q8S);
        match (self, dims) {
            (Self::Int8Block, &[_, cin, kh, kw]) => {
                // Blocks must tile the tensor: a divisor of the input channels, times the kernel.
                let group = (1..=16.min(cin)).rev().find(|g| cin % g == 0).unwrap_or(1);
                base.per_block([1, group as u8, kh as u8, kw as u8], ScaleDtype::F32)
            }
            _ => base.per_tensor(ScaleDtype::F32),
        }
    }
}

/// `model` with every convolution weight quantized with `scheme`.
pub fn quantize_weights<M: Module>(model: M, scheme: Scheme) -> M {
    model.map(&mut WeightQuantizer { scheme })
}

/// Quantizes 4-D float parameters (convolution weights), leaves the rest.
struct WeightQuantizer {
    scheme: Scheme,
}

impl ModuleMapper for WeightQuantizer {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        if D != 4 {
            return param;
        }
        let scheme = self.scheme;
        param.map(|tensor| {
            if tensor.dtype() != DType::F32 || kernel_too_large(&tensor.dims()) {
                return tensor;
            }
            let scheme = scheme.for_weight(&tensor.dims());
            let range = compute_range(&scheme, &tensor, &Calibration::MinMax);
            let qparams = compute_q_params(&scheme, range);
            tensor.quantize(&scheme, qparams)
        })
    }
}

/// Block sizes are bytes per axis: kernels past 255 cannot be blocked (none in a UNet).
fn kernel_too_large(dims: &[usize]) -> bool {
    dims.iter().skip(2).any(|&d| d > 255)
}

/// How many values are stored quantized, and how many float values the model stores in all
/// (batch-norm statistics included: more than the inference model's parameters, which have
/// batch norm folded into the convolutions).
pub fn quantized_params<M: Module>(model: &M) -> (usize, usize) {
    struct Count(usize, usize);
    impl burn::module::ModuleVisitor for Count {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            let tensor = param.val();
            let n = tensor.shape().num_elements();
            self.1 += n;
            if matches!(tensor.dtype(), DType::QFloat(_)) {
                self.0 += n;
            }
        }
    }
    let mut count = Count(0, 0);
    model.visit(&mut count);
    (count.0, count.1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::model::unet::UNetConfig;
    use crate::core::train::trainer::load_model;
    use burn::tensor::{Device, Distribution};

    #[test]
    fn quantized_weights_save_load_and_predict_close_to_float() {
        let device = Device::flex();
        device.seed(3);
        let cfg = UNetConfig::new(3).with_depth(2).with_base_width(4);
        let model = cfg.init(&device);
        let x = Tensor::<4>::random([1, 3, 16, 16], Distribution::Default, &device);
        let reference = model.clone().fold_batch_norm().forward(x.clone());
        let tmp = tempfile::tempdir().unwrap();
        for scheme in [Scheme::Int8Tensor, Scheme::Int8Block] {
            let quantized = quantize_weights(model.clone(), scheme);
            let (q, all) = quantized_params(&quantized);
            assert!(
                q > 0 && q * 10 > all * 9,
                "{scheme}: {q} of {all} quantized"
            );
            let path = tmp.path().join(format!("{scheme}.bpk"));
            quantized.clone().save_file(&path).unwrap();
            let float_path = tmp.path().join("float.bpk");
            model.clone().save_file(&float_path).unwrap();
            let (qsize, fsize) = (
                std::fs::metadata(&path).unwrap().len(),
                std::fs::metadata(&float_path).unwrap().len(),
            );
            // The record's names and shapes weigh a lot in a model this tiny: about 45% smaller
            // here, 3.8x for the default UNet.
            assert!(
                qsize * 10 < fsize * 6,
                "{scheme}: {qsize} vs float {fsize} bytes"
            );

            // Loaded into a float model, as eval and predict do; it still predicts.
            let loaded = load_model(cfg.init(&device), &path).unwrap();
            let out = loaded.fold_batch_norm().forward(x.clone());
            let diff = (out.clone() - reference.clone())
                .abs()
                .max()
                .into_scalar::<f32>();
            let scale = reference.clone().abs().max().into_scalar::<f32>();
            assert!(diff > 0.0, "{scheme}: int8 weights cannot be exact");
            assert!(
                diff < 0.05 * scale,
                "{scheme}: {diff} vs output scale {scale}"
            );
        }
    }
}
