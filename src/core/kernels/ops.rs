//! The operations the model calls. On the flex device with `f32` tensors (training or
//! inference) they run this module's CPU kernels through the backend extension; on any other
//! device, or with `ROADSEG_KERNELS=burn`, burn's own operations compute the same values, so the
//! model trains and predicts on every backend.

use std::cell::Cell;
use std::sync::OnceLock;

use burn::backend::{Dispatch, DispatchDevice};
use burn::module::{Module, ModuleMapper, Param};
use burn::nn::BatchNorm;
use burn::tensor::activation::relu;
use burn::tensor::module::{conv2d as conv2d_burn, interpolate, max_pool2d};
use burn::tensor::ops::{ConvOptions, InterpolateMode, InterpolateOptions, MaxPoolOptions};
use burn::tensor::{DType, Device, Int, Tensor};

use super::extension::{CpuKernels, Optional};

thread_local! {
    /// [`with_burn_ops`]'s switch for the calling thread.
    static BURN_OPS: Cell<bool> = const { Cell::new(false) };
}

/// Whether the CPU kernels are switched on: not with `ROADSEG_KERNELS=burn`, nor inside
/// [`with_burn_ops`].
pub fn enabled() -> bool {
    static ENV_OFF: OnceLock<bool> = OnceLock::new();
    let env_off = *ENV_OFF.get_or_init(|| {
        std::env::var("ROADSEG_KERNELS").is_ok_and(|v| v.eq_ignore_ascii_case("burn"))
    });
    !env_off && !BURN_OPS.get()
}

/// Runs `f` with burn's own operations on the CPU too (on this thread): the reference the
/// kernels are tested against, and the "before" of the benchmark. The operations recorded for
/// a backward pass keep the implementation they were recorded with.
pub fn with_burn_ops<R>(f: impl FnOnce() -> R) -> R {
    /// Restores the switch even if `f` panics.
    struct Restore(bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            BURN_OPS.set(self.0);
        }
    }
    let _restore = Restore(BURN_OPS.replace(true));
    f()
}

/// Whether `x` goes through the CPU kernels: an `f32` tensor on the flex device.
pub fn accelerated<const D: usize>(x: &Tensor<D>) -> bool {
    enabled() && x.dtype() == DType::F32 && x.device() == Device::flex()
}

/// `t` as plain floats: a weight quantized by `roadseg quantize` (`QFloat`: int8 values and
/// scales) is dequantized here, before any kernel or burn op computes with it. burn keeps
/// quantized weights for storage only on the CPU, so a quantized model is smaller on disk but
/// computes at float speed.
pub fn dequantized<const D: usize>(t: Tensor<D>) -> Tensor<D> {
    match t.dtype() {
        DType::QFloat(_) => t.dequantize(),
        _ => t,
    }
}

/// `module` with every quantized float parameter turned back into an f32 one (same id, so a
/// loaded optimiser state still finds it), requiring gradients when the module lives on an
/// autodiff device; and how many were. Training needs this: autodiff treats a quantized
/// parameter as a constant (its dequantized value is a new leaf at every use), so it would
/// never move.
pub fn dequantize_params<M: Module>(module: M) -> (M, usize) {
    struct Dequantize(usize);
    impl ModuleMapper for Dequantize {
        fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
            // A parameter not initialised yet is a fresh float one (and stays lazy).
            if !param.is_initialized() || !matches!(param.val().dtype(), DType::QFloat(_)) {
                return param;
            }
            self.0 += 1;
            let trainable = param.lazy_device().is_autodiff();
            param
                .map(|t| match trainable {
                    true => t.dequantize().autodiff(),
                    false => t.dequantize(),
                })
                .set_require_grad(trainable)
        }
    }
    let mut mapper = Dequantize(0);
    let module = module.map(&mut mapper);
    (module, mapper.0)
}

/// 3x3 convolution (stride 1, padding 1) of the channel concatenation `[first, second]` with
/// `weight: [out, in, 3, 3]` and an optional bias, followed by a ReLU if `relu`.
/// `[B, c1, h, w]` (+ `[B, c2, h, w]`) -> `[B, out, h, w]`.
pub fn conv3x3(
    first: Tensor<4>,
    second: Option<Tensor<4>>,
    weight: Tensor<4>,
    bias: Option<Tensor<1>>,
    relu_after: bool,
) -> Tensor<4> {
    let (weight, bias) = (dequantized(weight), bias.map(dequantized));
    if accelerated(&first) {
        return Tensor::from_dispatch(<Dispatch as CpuKernels>::conv3x3(
            first.into_dispatch(),
            Optional::new(second.map(Tensor::into_dispatch)),
            weight.into_dispatch(),
            Optional::new(bias.map(Tensor::into_dispatch)),
            relu_after,
        ));
    }
    let x = match second {
        Some(second) => Tensor::cat(vec![first, second], 1),
        None => first,
    };
    let y = conv2d_burn(x, weight, bias, ConvOptions::new([1, 1], [1, 1], [1, 1], 1));
    if relu_after { relu(y) } else { y }
}

/// 1x1 convolution with `weight: [out, in, 1, 1]`: `[B, in, h, w]` -> `[B, out, h, w]`.
pub fn conv1x1(x: Tensor<4>, weight: Tensor<4>, bias: Option<Tensor<1>>) -> Tensor<4> {
    let (weight, bias) = (dequantized(weight), bias.map(dequantized));
    if accelerated(&x) {
        return Tensor::from_dispatch(<Dispatch as CpuKernels>::conv1x1(
            x.into_dispatch(),
            weight.into_dispatch(),
            Optional::new(bias.map(Tensor::into_dispatch)),
        ));
    }
    conv2d_burn(x, weight, bias, ConvOptions::new([1, 1], [0, 0], [1, 1], 1))
}

/// `relu(norm(x))` in training mode: normalised with the batch's statistics, which also update
/// the running statistics exactly as burn's `BatchNorm::forward` does.
pub fn batch_norm_relu_train(x: Tensor<4>, norm: &BatchNorm) -> Tensor<4> {
    batch_norm_train(x, norm, None, true)
}

/// `norm(x)` in training mode, then `relu(. + residual)` with a residual, or `relu(.)` if
/// `relu_after`: the batch's statistics normalise and update the running statistics exactly as
/// burn's `BatchNorm::forward` does. `[B, C, h, w]` (residual the same) -> `[B, C, h, w]`.
pub fn batch_norm_train(
    x: Tensor<4>,
    norm: &BatchNorm,
    residual: Option<Tensor<4>>,
    relu_after: bool,
) -> Tensor<4> {
    if !accelerated(&x) {
        let y = norm.forward(x);
        return match residual {
            Some(r) => relu(y + r),
            None if relu_after => relu(y),
            None => y,
        };
    }
    let device = x.device();
    let (y, mean, var) = <Dispatch as CpuKernels>::batch_norm(
        x.into_dispatch(),
        norm.gamma.val().into_dispatch(),
        norm.beta.val().into_dispatch(),
        Optional::new(residual.map(Tensor::into_dispatch)),
        relu_after,
        norm.epsilon,
    );
    let (mean, var) = (
        Tensor::<1>::from_dispatch(mean),
        Tensor::<1>::from_dispatch(var),
    );
    let momentum = norm.momentum;
    let running_mean = norm.running_mean.value_sync().to_device(&device);
    let running_var = norm.running_var.value_sync().to_device(&device);
    norm.running_mean.update(
        running_mean
            .mul_scalar(1.0 - momentum)
            .add(mean.detach().mul_scalar(momentum))
            .detach(),
    );
    norm.running_var.update(
        running_var
            .mul_scalar(1.0 - momentum)
            .add(var.detach().mul_scalar(momentum))
            .detach(),
    );
    Tensor::from_dispatch(y)
}

/// Convolution with any kernel, `stride` and `padding` (`[vertical, horizontal]`; one group, no
/// dilation), then a ReLU if `relu_after`: `[B, in, h, w]` -> `[B, out, OH, OW]`. The ResNet
/// encoder's stem and strided convolutions; stride-1 3x3 and 1x1 ones have their own
/// [`conv3x3`] and [`conv1x1`].
pub fn conv2d(
    x: Tensor<4>,
    weight: Tensor<4>,
    bias: Option<Tensor<1>>,
    stride: [usize; 2],
    padding: [usize; 2],
    relu_after: bool,
) -> Tensor<4> {
    let (weight, bias) = (dequantized(weight), bias.map(dequantized));
    if accelerated(&x) {
        return Tensor::from_dispatch(<Dispatch as CpuKernels>::conv_unfolded(
            x.into_dispatch(),
            weight.into_dispatch(),
            Optional::new(bias.map(Tensor::into_dispatch)),
            stride,
            padding,
            relu_after,
        ));
    }
    let y = conv2d_burn(
        x,
        weight,
        bias,
        ConvOptions::new(stride, padding, [1, 1], 1),
    );
    if relu_after { relu(y) } else { y }
}

/// Max-pooling over `size x size` windows with `stride` and `padding` (padding never chosen):
/// `[B, C, h, w]` -> `[B, C, (h + 2p - size) / stride + 1, ...]`.
pub fn max_pool(x: Tensor<4>, size: usize, stride: usize, padding: usize) -> Tensor<4> {
    if accelerated(&x) {
        return Tensor::from_dispatch(<Dispatch as CpuKernels>::max_pool(
            x.into_dispatch(),
            size,
            stride,
            padding,
        ));
    }
    max_pool2d(
        x,
        MaxPoolOptions::new([size, size])
            .with_stride([stride, stride])
            .with_padding([padding, padding]),
    )
}

/// One AdamW update of `param` (any rank) on the CPU kernels: the new parameter and moments
/// from its gradient and the moments before the step; `None` where the kernels do not run
/// (another device, another dtype, the kernels switched off), for the caller's own update.
pub fn adamw<const D: usize>(
    param: Tensor<D>,
    grad: Tensor<D>,
    [moment_1, moment_2]: [Tensor<D>; 2],
    hyper: super::adamw::Hyper,
) -> Option<[Tensor<D>; 3]> {
    if ![&param, &grad, &moment_1, &moment_2]
        .into_iter()
        .all(accelerated)
    {
        return None;
    }
    let (p, m, v) = <Dispatch as CpuKernels>::adamw(
        param.into_dispatch(),
        grad.into_dispatch(),
        moment_1.into_dispatch(),
        moment_2.into_dispatch(),
        hyper,
    );
    Some([p, m, v].map(Tensor::from_dispatch))
}

/// `max(0, a + b)`: the end of a residual block without a norm to fuse it into. Same shapes.
pub fn add_relu(a: Tensor<4>, b: Tensor<4>) -> Tensor<4> {
    if accelerated(&a) {
        return Tensor::from_dispatch(<Dispatch as CpuKernels>::add_relu(
            a.into_dispatch(),
            b.into_dispatch(),
        ));
    }
    relu(a + b)
}

/// 2x2 max-pooling with stride 2: `[B, C, h, w]` -> `[B, C, h/2, w/2]` (h, w even).
pub fn max_pool2x2(x: Tensor<4>) -> Tensor<4> {
    if accelerated(&x) {
        return Tensor::from_dispatch(<Dispatch as CpuKernels>::max_pool2x2(x.into_dispatch()));
    }
    max_pool2d(x, MaxPoolOptions::new([2, 2]).with_stride([2, 2]))
}

/// Bilinear x2 up-sampling with half-pixel centres (PyTorch's `Upsample(scale_factor=2,
/// mode="bilinear", align_corners=False)`): `[B, C, h, w]` -> `[B, C, 2h, 2w]`.
pub fn upsample2x(x: Tensor<4>) -> Tensor<4> {
    if accelerated(&x) {
        return Tensor::from_dispatch(<Dispatch as CpuKernels>::upsample2x(x.into_dispatch()));
    }
    if is_capture(&x) {
        return upsample2x_interpolate(x);
    }
    upsample2x_composite(x)
}

/// Whether `x` lives on burn's graph-capture device: the ONNX exporter is recording the forward
/// pass, and each operation should be the one that lowers to a single ONNX node.
fn is_capture<const D: usize>(x: &Tensor<D>) -> bool {
    matches!(x.device().as_dispatch(), DispatchDevice::Capture(_))
}

/// [`upsample2x`] as burn's bilinear `interpolate` (`align_corners = false`, which is not its
/// default): the same numbers as [`upsample2x_composite`], and it lowers to one ONNX `Resize`
/// (`coordinate_transformation_mode = half_pixel`). Inference only: wgpu has no backward pass
/// for it.
pub fn upsample2x_interpolate(x: Tensor<4>) -> Tensor<4> {
    let [_, _, h, w] = x.dims();
    interpolate(
        x,
        InterpolateOptions::new(InterpolateMode::Bilinear)
            .with_align_corners(false)
            .with_output_size([2 * h, 2 * w]),
    )
}

/// [`upsample2x`] written with slices, sums and reshapes instead of burn's `interpolate`, whose
/// bilinear backward pass the wgpu backend does not implement: this trains on every backend.
/// Along each axis, output `2i` is `0.75 x[i] + 0.25 x[i-1]` and `2i+1` is `0.75 x[i] + 0.25
/// x[i+1]`, with the edge sample repeated at the borders.
pub fn upsample2x_composite(x: Tensor<4>) -> Tensor<4> {
    let x = upsample_axis_x2(x, 3); // [B, C, h, 2w]
    upsample_axis_x2(x, 2) // [B, C, 2h, 2w]
}

fn upsample_axis_x2(x: Tensor<4>, axis: usize) -> Tensor<4> {
    let dims = x.dims();
    let n = dims[axis];
    let take = |x: &Tensor<4>, range: std::ops::Range<usize>| {
        x.clone().narrow(axis, range.start, range.len())
    };
    let (previous, next) = if n > 1 {
        (
            Tensor::cat(vec![take(&x, 0..1), take(&x, 0..n - 1)], axis),
            Tensor::cat(vec![take(&x, 1..n), take(&x, n - 1..n)], axis),
        )
    } else {
        (x.clone(), x.clone())
    };
    let centre = x.mul_scalar(0.75);
    let even = centre.clone() + previous.mul_scalar(0.25);
    let odd = centre + next.mul_scalar(0.25);
    // Interleave: stack after `axis`, then merge the two axes.
    let stacked: Tensor<5> = Tensor::stack(vec![even, odd], axis + 1);
    let mut out = dims;
    out[axis] = 2 * n;
    stacked.reshape(out)
}

/// Pixel-wise cross-entropy of `logits: [B, classes, h, w]` against `targets: [B, h, w]`
/// (ids outside `0..classes` ignored), weighted mean over pixels, with the CPU kernel; `None`
/// where the logits are not [`accelerated`] (the caller composes it from tensor operations).
pub fn cross_entropy(
    logits: &Tensor<4>,
    targets: &Tensor<3, Int>,
    class_weights: Option<&[f32]>,
) -> Option<Tensor<1>> {
    if !accelerated(logits) {
        return None;
    }
    Some(Tensor::from_dispatch(
        <Dispatch as CpuKernels>::cross_entropy(
            logits.clone().into_dispatch(),
            targets.clone().into_dispatch(),
            class_weights.map(<[f32]>::to_vec),
        ),
    ))
}
