//! The backend extension: the kernels as operations on burn's tensor primitives, implemented
//! for the flex backend (`flex.rs`) and for autodiff over flex with hand-written backward passes
//! (`autodiff.rs`). burn's `#[backend_extension]` generates the dispatch from a `Tensor` to the
//! implementation of the device it lives on; only flex (with or without autodiff) is listed, so
//! callers check the device first ([`super::ops`] does).
//!
//! Shapes: feature maps are `[batch, channels, h, w]` `f32`; every operation accepts
//! non-contiguous inputs (they are made contiguous first).

use burn::backend::tensor::{FloatTensor, IntTensor};
use burn::backend::{Backend, ExtensionType, backend_extension};

/// An optional tensor operand (burn 0.22's extension macro does not route `Option<Tensor>`
/// arguments, but does route derived enums).
#[derive(ExtensionType)]
pub enum Optional<B: Backend> {
    Present(FloatTensor<B>),
    Absent,
}

impl<B: Backend> Optional<B> {
    pub fn new(tensor: Option<FloatTensor<B>>) -> Self {
        match tensor {
            Some(t) => Self::Present(t),
            None => Self::Absent,
        }
    }

    pub fn into_option(self) -> Option<FloatTensor<B>> {
        match self {
            Self::Present(t) => Some(t),
            Self::Absent => None,
        }
    }
}

#[backend_extension(Autodiff, Flex)]
pub trait CpuKernels: Backend {
    /// 3x3 convolution, stride 1, padding 1, of the channel concatenation `[first, second]`
    /// (`second` absent: just `first`), with `weight: [out, in, 3, 3]` and an optional bias,
    /// followed by a ReLU when `relu` is set.
    fn conv3x3(
        first: FloatTensor<Self>,
        #[extension_type] second: Optional<Self>,
        weight: FloatTensor<Self>,
        #[extension_type] bias: Optional<Self>,
        relu: bool,
    ) -> FloatTensor<Self>;

    /// 1x1 convolution with `weight: [out, in, 1, 1]` and an optional bias.
    fn conv1x1(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        #[extension_type] bias: Optional<Self>,
    ) -> FloatTensor<Self>;

    /// `batch_norm(x)` with the batch's statistics, then `relu(. + residual)` (residual present)
    /// or `relu(.)` (`relu`); returns the output and the batch mean and biased variance
    /// (`[channels]`, not differentiated).
    fn batch_norm(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        #[extension_type] residual: Optional<Self>,
        relu: bool,
        epsilon: f64,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>);

    /// Convolution of any kernel size with `stride` and `padding` (`[vertical, horizontal]`),
    /// one group, no dilation: `weight: [out, in, kh, kw]`, an optional bias, then a ReLU when
    /// `relu` is set.
    fn conv_unfolded(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        #[extension_type] bias: Optional<Self>,
        stride: [usize; 2],
        padding: [usize; 2],
        relu: bool,
    ) -> FloatTensor<Self>;

    /// Max-pooling over `size x size` windows with `stride` and `padding`.
    fn max_pool(
        x: FloatTensor<Self>,
        size: usize,
        stride: usize,
        padding: usize,
    ) -> FloatTensor<Self>;

    /// `max(0, a + b)`, same shapes.
    fn add_relu(a: FloatTensor<Self>, b: FloatTensor<Self>) -> FloatTensor<Self>;

    /// 2x2 max-pooling with stride 2 (even height and width).
    fn max_pool2x2(x: FloatTensor<Self>) -> FloatTensor<Self>;

    /// Bilinear x2 up-sampling with half-pixel centres.
    fn upsample2x(x: FloatTensor<Self>) -> FloatTensor<Self>;

    /// Cross-entropy of logits `[batch, classes, h, w]` against class ids `[batch, h, w]`
    /// (out-of-range ids ignored), weighted mean over pixels; a one-element tensor.
    fn cross_entropy(
        logits: FloatTensor<Self>,
        targets: IntTensor<Self>,
        class_weights: Option<Vec<f32>>,
    ) -> FloatTensor<Self>;
}
