//! [`CpuKernels`] on the flex backend: each operation turns burn's primitives into slices, runs
//! the kernel and wraps the result. The backward helpers used by `autodiff.rs` live here too, so
//! all conversion between primitives and slices is in one file.

use std::sync::Arc;

use burn::backend::tensor::{FloatTensor, IntTensor};
use burn::backend::{Flex, TensorMetadata};
use burn::tensor::{DType, TensorData};

use super::extension::{CpuKernels, Optional};
use super::{
    add_relu, batch_norm, conv_unfold, conv1x1, conv3x3, cross_entropy, pool, pool_window, profile,
    upsample,
};

/// A flex float tensor.
pub(super) type Primitive = FloatTensor<Flex>;

/// `t` with contiguous `f32` storage starting at offset 0 of its buffer (a copy if it was a
/// view).
pub(super) fn contiguous(t: Primitive) -> Primitive {
    assert_eq!(t.dtype(), DType::F32, "the CPU kernels take f32 tensors");
    if t.as_slice::<f32>().is_some() {
        t
    } else {
        t.to_contiguous()
    }
}

/// The values of a tensor made [`contiguous`].
pub(super) fn values(t: &Primitive) -> &[f32] {
    t.as_slice::<f32>()
        .expect("the tensor was made contiguous first")
}

/// A contiguous tensor of `shape` owning `data`.
pub(super) fn tensor<const D: usize>(data: Vec<f32>, shape: [usize; D]) -> Primitive {
    Primitive::from_data(TensorData::new(data, shape))
}

/// The dimensions of a rank-`D` tensor.
pub(super) fn dims<const D: usize>(t: &Primitive) -> [usize; D] {
    t.shape().dims()
}

/// Class ids of an integer tensor as `i64`, whatever its integer type.
fn int_values(t: IntTensor<Flex>) -> Vec<i64> {
    match t.dtype() {
        DType::I64 => match t.as_slice::<i64>() {
            Some(v) => v.to_vec(),
            None => t
                .to_contiguous()
                .as_slice::<i64>()
                .unwrap_or_default()
                .to_vec(),
        },
        _ => t
            .into_data()
            .convert::<i64>()
            .try_into_vec::<i64>()
            .expect("converted to i64"),
    }
}

/// A 3x3 convolution's operands as its forward and backward passes read them: the input
/// already padded (and concatenated), built once for both the forward pass and the weight
/// gradient.
#[derive(Debug, Clone)]
pub(super) struct Conv3x3 {
    pub input: Arc<conv3x3::Padded>,
    pub weight: Primitive,
    pub bias: Option<Primitive>,
    /// `[batch, first channels, second channels, h, w]`
    pub shape: [usize; 5],
    pub out_channels: usize,
}

impl Conv3x3 {
    pub fn new(
        first: Primitive,
        second: Option<Primitive>,
        weight: Primitive,
        bias: Option<Primitive>,
    ) -> Self {
        let first = contiguous(first);
        let second = second.map(contiguous);
        let weight = contiguous(weight);
        let bias = bias.map(contiguous);
        let [batch, c1, h, w] = dims(&first);
        let c2 = second.as_ref().map_or(0, |s| {
            let [b2, c2, h2, w2] = dims(s);
            assert_eq!(
                [b2, h2, w2],
                [batch, h, w],
                "concatenated inputs must agree in batch and size"
            );
            c2
        });
        let [out_channels, in_channels, kh, kw] = dims(&weight);
        assert_eq!([kh, kw], [3, 3], "a 3x3 kernel");
        assert_eq!(in_channels, c1 + c2, "weight input channels");
        let input = match &second {
            Some(second) => {
                conv3x3::Padded::new(&[values(&first), values(second)], &[c1, c2], batch, h, w)
            }
            None => conv3x3::Padded::new(&[values(&first)], &[c1], batch, h, w),
        };
        Self {
            input: Arc::new(input),
            weight,
            bias,
            shape: [batch, c1, c2, h, w],
            out_channels,
        }
    }

    pub fn forward(&self, relu: bool) -> Primitive {
        let [batch, c1, c2, h, w] = self.shape;
        let o = self.out_channels;
        profile::time(
            || format!("conv3x3 forward   {batch}x{}x{h}x{w} -> {o}", c1 + c2),
            || {
                let mut out = Vec::with_capacity(batch * o * h * w);
                conv3x3::forward(
                    &self.input,
                    &conv3x3::Weights::forward(values(&self.weight), o, c1 + c2),
                    self.bias.as_ref().map(values),
                    relu,
                    conv3x3::Outputs::single(out.spare_capacity_mut(), o),
                );
                // SAFETY: the convolution wrote every output element.
                unsafe { out.set_len(batch * o * h * w) };
                tensor(out, [batch, o, h, w])
            },
        )
    }

    /// Gradients of the two inputs (each only if asked for) from the output gradient `dy`.
    pub fn input_gradients(
        &self,
        dy: &Primitive,
        first: bool,
        second: bool,
    ) -> (Option<Primitive>, Option<Primitive>) {
        let [batch, c1, c2, h, w] = self.shape;
        let o = self.out_channels;
        let second = second && c2 > 0;
        if !first && !second {
            return (None, None);
        }
        // A gradient nobody needs still has to go somewhere; it is small next to the rest.
        let mut d1 = Vec::with_capacity(batch * c1 * h * w);
        let mut d2 = Vec::with_capacity(batch * c2 * h * w);
        profile::time(
            || format!("conv3x3 dx        {batch}x{}x{h}x{w} -> {o}", c1 + c2),
            || {
                let padded = conv3x3::Padded::new(&[values(dy)], &[o], batch, h, w);
                let weights = conv3x3::Weights::input_gradient(values(&self.weight), o, c1 + c2);
                let outputs = if c2 > 0 {
                    conv3x3::Outputs::new(
                        vec![d1.spare_capacity_mut(), d2.spare_capacity_mut()],
                        vec![c1, c2],
                    )
                } else {
                    conv3x3::Outputs::single(d1.spare_capacity_mut(), c1)
                };
                conv3x3::forward(&padded, &weights, None, false, outputs);
            },
        );
        // SAFETY: the convolution wrote every element of both.
        unsafe {
            d1.set_len(batch * c1 * h * w);
            d2.set_len(batch * c2 * h * w);
        }
        (
            first.then(|| tensor(d1, [batch, c1, h, w])),
            second.then(|| tensor(d2, [batch, c2, h, w])),
        )
    }

    pub fn weight_gradient(&self, dy: &Primitive) -> Primitive {
        let [batch, c1, c2, h, w] = self.shape;
        let o = self.out_channels;
        let dw = profile::time(
            || format!("conv3x3 dw        {batch}x{}x{h}x{w} -> {o}", c1 + c2),
            || conv3x3::weight_gradient(&self.input, values(dy), o),
        );
        tensor(dw, [o, c1 + c2, 3, 3])
    }

    pub fn bias_gradient(&self, dy: &Primitive) -> Primitive {
        let [batch, _, _, h, w] = self.shape;
        let o = self.out_channels;
        tensor(conv3x3::bias_gradient(values(dy), batch, o, h * w), [o])
    }
}

/// `dy · [y > 0]`: the gradient through a ReLU whose output was `y`.
pub(super) fn relu_mask(dy: Primitive, y: &Primitive) -> Primitive {
    let dy = contiguous(dy);
    let masked = profile::time(
        || format!("relu mask         {:?}", dims::<4>(&dy)),
        || {
            values(&dy)
                .iter()
                .zip(values(y))
                .map(|(&g, &v)| if v > 0.0 { g } else { 0.0 })
                .collect()
        },
    );
    tensor::<4>(masked, dims(&dy))
}

/// Everything a 1x1 convolution (and its backward) needs.
#[derive(Debug, Clone)]
pub(super) struct Conv1x1 {
    pub x: Primitive,
    pub weight: Primitive,
    pub bias: Option<Primitive>,
    /// `[batch, in, h, w]`
    pub shape: [usize; 4],
    pub out_channels: usize,
}

impl Conv1x1 {
    pub fn new(x: Primitive, weight: Primitive, bias: Option<Primitive>) -> Self {
        let x = contiguous(x);
        let weight = contiguous(weight);
        let [out_channels, in_channels, kh, kw] = dims(&weight);
        assert_eq!([kh, kw], [1, 1], "a 1x1 kernel");
        let shape: [usize; 4] = dims(&x);
        assert_eq!(shape[1], in_channels, "weight input channels");
        Self {
            x,
            weight,
            bias: bias.map(contiguous),
            shape,
            out_channels,
        }
    }

    pub fn forward(&self) -> Primitive {
        let [b, c, h, w] = self.shape;
        let y = conv1x1::forward(
            values(&self.x),
            [b, c, h * w],
            values(&self.weight),
            self.bias.as_ref().map(values),
            self.out_channels,
        );
        tensor(y, [b, self.out_channels, h, w])
    }

    pub fn input_gradient(&self, dy: &Primitive) -> Primitive {
        let [b, c, h, w] = self.shape;
        let dx = conv1x1::input_gradient(
            values(dy),
            [b, self.out_channels, h * w],
            values(&self.weight),
            c,
        );
        tensor(dx, [b, c, h, w])
    }

    pub fn weight_gradient(&self, dy: &Primitive) -> Primitive {
        let [b, c, h, w] = self.shape;
        let dw = conv1x1::weight_gradient(
            values(&self.x),
            values(dy),
            [b, c, h * w],
            self.out_channels,
        );
        tensor(dw, [self.out_channels, c, 1, 1])
    }

    pub fn bias_gradient(&self, dy: &Primitive) -> Primitive {
        let [b, _, h, w] = self.shape;
        tensor(
            conv3x3::bias_gradient(values(dy), b, self.out_channels, h * w),
            [self.out_channels],
        )
    }
}

/// What a batch norm's backward pass reads: the forward input, the parameters, the batch
/// statistics, the residual (if any) and whether a ReLU followed.
#[derive(Debug, Clone)]
pub(super) struct BatchNorm {
    pub x: Primitive,
    pub gamma: Primitive,
    pub beta: Primitive,
    pub residual: Option<Primitive>,
    pub relu: bool,
    pub epsilon: f64,
    pub mean: Primitive,
    pub var: Primitive,
}

impl BatchNorm {
    fn after(&self) -> batch_norm::After<'_> {
        match (&self.residual, self.relu) {
            (Some(r), _) => batch_norm::After::AddRelu(values(r)),
            (None, true) => batch_norm::After::Relu,
            (None, false) => batch_norm::After::Nothing,
        }
    }

    fn label(&self) -> &'static str {
        match (&self.residual, self.relu) {
            (Some(_), _) => "bn+add+relu",
            (None, true) => "bn+relu",
            (None, false) => "bn",
        }
    }

    /// The forward pass (inputs made contiguous): the output and what the backward pass needs.
    pub fn forward(
        x: Primitive,
        gamma: Primitive,
        beta: Primitive,
        residual: Option<Primitive>,
        relu: bool,
        epsilon: f64,
    ) -> (Primitive, Self) {
        let (x, gamma, beta) = (contiguous(x), contiguous(gamma), contiguous(beta));
        let residual = residual.map(contiguous);
        let [b, c, h, w] = dims(&x);
        let mut norm = Self {
            x,
            gamma,
            beta,
            residual,
            relu,
            epsilon,
            mean: tensor(Vec::new(), [0]),
            var: tensor(Vec::new(), [0]),
        };
        let (y, stats) = profile::time(
            || format!("{:<17} {b}x{c}x{h}x{w}", norm.label()),
            || {
                batch_norm::forward(
                    values(&norm.x),
                    [b, c, h * w],
                    values(&norm.gamma),
                    values(&norm.beta),
                    norm.after(),
                    epsilon,
                )
            },
        );
        norm.mean = tensor(stats.mean, [c]);
        norm.var = tensor(stats.var, [c]);
        (tensor(y, [b, c, h, w]), norm)
    }

    /// `(dx, dgamma, dbeta, dresidual)`.
    pub fn backward(&self, dy: &Primitive) -> (Primitive, Primitive, Primitive, Option<Primitive>) {
        let [b, c, h, w] = dims(&self.x);
        let stats = batch_norm::Stats {
            mean: values(&self.mean).to_vec(),
            var: values(&self.var).to_vec(),
        };
        let g = profile::time(
            || format!("{:<17} {b}x{c}x{h}x{w}", format!("{} bwd", self.label())),
            || {
                batch_norm::backward(
                    values(&self.x),
                    values(dy),
                    [b, c, h * w],
                    values(&self.gamma),
                    values(&self.beta),
                    &stats,
                    self.after(),
                    self.epsilon,
                )
            },
        );
        (
            tensor(g.dx, [b, c, h, w]),
            tensor(g.dgamma, [c]),
            tensor(g.dbeta, [c]),
            g.dresidual.map(|d| tensor(d, [b, c, h, w])),
        )
    }
}

/// Everything a convolution through [`conv_unfold`] (and its backward) needs.
#[derive(Debug, Clone)]
pub(super) struct ConvUnfolded {
    pub x: Primitive,
    pub weight: Primitive,
    pub bias: Option<Primitive>,
    pub geometry: conv_unfold::Geometry,
    pub out_channels: usize,
}

impl ConvUnfolded {
    pub fn new(
        x: Primitive,
        weight: Primitive,
        bias: Option<Primitive>,
        stride: [usize; 2],
        padding: [usize; 2],
    ) -> Self {
        let x = contiguous(x);
        let weight = contiguous(weight);
        let [batch, channels, height, width] = dims(&x);
        let [out_channels, in_channels, kh, kw] = dims(&weight);
        assert_eq!(channels, in_channels, "weight input channels");
        Self {
            x,
            weight,
            bias: bias.map(contiguous),
            geometry: conv_unfold::Geometry {
                batch,
                channels,
                height,
                width,
                kernel: [kh, kw],
                stride,
                padding,
            },
            out_channels,
        }
    }

    fn label(&self, what: &str) -> String {
        let g = &self.geometry;
        format!(
            "conv{}x{}/{} {what:<7} {}x{}x{}x{} -> {}",
            g.kernel[0],
            g.kernel[1],
            g.stride[0],
            g.batch,
            g.channels,
            g.height,
            g.width,
            self.out_channels
        )
    }

    pub fn forward(&self, relu: bool) -> Primitive {
        let g = self.geometry;
        let [oh, ow] = g.output();
        let y = profile::time(
            || self.label("forward"),
            || {
                let mut y = conv_unfold::forward(
                    values(&self.x),
                    &g,
                    values(&self.weight),
                    self.bias.as_ref().map(values),
                    self.out_channels,
                );
                if relu {
                    // `max` would turn a NaN into 0.
                    y.iter_mut()
                        .for_each(|v| *v = if *v < 0.0 { 0.0 } else { *v });
                }
                y
            },
        );
        tensor(y, [g.batch, self.out_channels, oh, ow])
    }

    pub fn input_gradient(&self, dy: &Primitive) -> Primitive {
        let g = self.geometry;
        let dx = profile::time(
            || self.label("dx"),
            || conv_unfold::input_gradient(values(dy), &g, values(&self.weight), self.out_channels),
        );
        tensor(dx, [g.batch, g.channels, g.height, g.width])
    }

    pub fn weight_gradient(&self, dy: &Primitive) -> Primitive {
        let g = self.geometry;
        let dw = profile::time(
            || self.label("dw"),
            || conv_unfold::weight_gradient(values(&self.x), values(dy), &g, self.out_channels),
        );
        tensor(
            dw,
            [self.out_channels, g.channels, g.kernel[0], g.kernel[1]],
        )
    }

    pub fn bias_gradient(&self, dy: &Primitive) -> Primitive {
        let g = self.geometry;
        tensor(
            conv3x3::bias_gradient(values(dy), g.batch, self.out_channels, g.pixels()),
            [self.out_channels],
        )
    }
}

/// Windowed max-pool forward: the output and the position of each maximum.
pub(super) fn max_pool(x: &Primitive, window: pool_window::Window) -> (Primitive, Vec<u8>) {
    let [b, c, h, w] = dims(x);
    let (y, positions) = profile::time(
        || {
            format!(
                "max pool {}/{} fwd  {b}x{c}x{h}x{w}",
                window.size, window.stride
            )
        },
        || pool_window::forward(values(x), b * c, [h, w], window),
    );
    let shape = [b, c, window.output(h), window.output(w)];
    (tensor(y, shape), positions)
}

pub(super) fn max_pool_backward(
    dy: &Primitive,
    positions: &[u8],
    [b, c, h, w]: [usize; 4],
    window: pool_window::Window,
) -> Primitive {
    let dx = profile::time(
        || {
            format!(
                "max pool {}/{} bwd  {b}x{c}x{h}x{w}",
                window.size, window.stride
            )
        },
        || pool_window::backward(values(dy), positions, b * c, [h, w], window),
    );
    tensor(dx, [b, c, h, w])
}

/// `max(0, a + b)`.
pub(super) fn add_relu(a: &Primitive, b: &Primitive) -> Primitive {
    let shape: [usize; 4] = dims(a);
    assert_eq!(shape, dims::<4>(b), "add + relu operands");
    let y = profile::time(
        || format!("add+relu          {shape:?}"),
        || add_relu::forward(values(a), values(b)),
    );
    tensor(y, shape)
}

/// The gradient of both operands of [`add_relu`] from its output `y`.
pub(super) fn add_relu_backward(dy: &Primitive, y: &Primitive) -> Primitive {
    let shape: [usize; 4] = dims(y);
    let dx = profile::time(
        || format!("add+relu bwd      {shape:?}"),
        || add_relu::backward(values(dy), values(y)),
    );
    tensor(dx, shape)
}

/// Max-pool forward: the output and the position of each maximum.
pub(super) fn max_pool2x2(x: &Primitive) -> (Primitive, Vec<u8>) {
    let [b, c, h, w] = dims(x);
    let (y, positions) = profile::time(
        || format!("max pool forward  {b}x{c}x{h}x{w}"),
        || pool::forward(values(x), b * c, h, w),
    );
    (tensor(y, [b, c, h / 2, w / 2]), positions)
}

pub(super) fn max_pool2x2_backward(
    dy: &Primitive,
    positions: &[u8],
    [b, c, h, w]: [usize; 4],
) -> Primitive {
    let dx = profile::time(
        || format!("max pool backward {b}x{c}x{h}x{w}"),
        || pool::backward(values(dy), positions, b * c, h, w),
    );
    tensor(dx, [b, c, h, w])
}

pub(super) fn upsample2x(x: &Primitive) -> Primitive {
    let [b, c, h, w] = dims(x);
    let y = profile::time(
        || format!("upsample forward  {b}x{c}x{h}x{w}"),
        || upsample::forward(values(x), b * c, h, w),
    );
    tensor(y, [b, c, 2 * h, 2 * w])
}

pub(super) fn upsample2x_backward(dy: &Primitive, [b, c, h, w]: [usize; 4]) -> Primitive {
    let dx = profile::time(
        || format!("upsample backward {b}x{c}x{h}x{w}"),
        || upsample::backward(values(dy), b * c, h, w),
    );
    tensor(dx, [b, c, h, w])
}

/// Cross-entropy forward: the loss as a `[1]` tensor, and what the backward needs.
pub(super) fn cross_entropy(
    logits: &Primitive,
    targets: IntTensor<Flex>,
    class_weights: Option<&[f32]>,
) -> (Primitive, cross_entropy::Saved) {
    let [b, k, h, w] = dims(logits);
    let targets = int_values(targets);
    let (loss, saved) = profile::time(
        || format!("cross-entropy fwd {b}x{k}x{h}x{w}"),
        || cross_entropy::forward(values(logits), &targets, [b, k, h * w], class_weights),
    );
    (tensor(vec![loss], [1]), saved)
}

pub(super) fn cross_entropy_backward(
    saved: cross_entropy::Saved,
    grad: &Primitive,
    [b, k, h, w]: [usize; 4],
) -> Primitive {
    let grad = values(grad)[0];
    let dx = profile::time(
        || format!("cross-entropy bwd {b}x{k}x{h}x{w}"),
        || cross_entropy::backward(saved, grad, [b, k, h * w]),
    );
    tensor(dx, [b, k, h, w])
}

impl CpuKernels for Flex {
    fn conv3x3(
        first: Primitive,
        second: Optional<Self>,
        weight: Primitive,
        bias: Optional<Self>,
        relu: bool,
    ) -> Primitive {
        Conv3x3::new(first, second.into_option(), weight, bias.into_option()).forward(relu)
    }

    fn conv1x1(x: Primitive, weight: Primitive, bias: Optional<Self>) -> Primitive {
        Conv1x1::new(x, weight, bias.into_option()).forward()
    }

    fn batch_norm(
        x: Primitive,
        gamma: Primitive,
        beta: Primitive,
        residual: Optional<Self>,
        relu: bool,
        epsilon: f64,
    ) -> (Primitive, Primitive, Primitive) {
        let (y, norm) = BatchNorm::forward(x, gamma, beta, residual.into_option(), relu, epsilon);
        (y, norm.mean, norm.var)
    }

    fn conv_unfolded(
        x: Primitive,
        weight: Primitive,
        bias: Optional<Self>,
        stride: [usize; 2],
        padding: [usize; 2],
        relu: bool,
    ) -> Primitive {
        ConvUnfolded::new(x, weight, bias.into_option(), stride, padding).forward(relu)
    }

    fn max_pool(x: Primitive, size: usize, stride: usize, padding: usize) -> Primitive {
        let window = pool_window::Window {
            size,
            stride,
            padding,
        };
        max_pool(&contiguous(x), window).0
    }

    fn add_relu(a: Primitive, b: Primitive) -> Primitive {
        add_relu(&contiguous(a), &contiguous(b))
    }

    fn max_pool2x2(x: Primitive) -> Primitive {
        max_pool2x2(&contiguous(x)).0
    }

    fn upsample2x(x: Primitive) -> Primitive {
        upsample2x(&contiguous(x))
    }

    fn cross_entropy(
        logits: Primitive,
        targets: IntTensor<Self>,
        class_weights: Option<Vec<f32>>,
    ) -> Primitive {
        cross_entropy(&contiguous(logits), targets, class_weights.as_deref()).0
    }
}
