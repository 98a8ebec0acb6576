//! Fast CPU kernels for the UNet's and the ResNet encoders' hot operations, plugged into burn as a backend extension.
//!
//! burn's flex backend runs convolutions through NHWC copies and im2col buffers and has no
//! convolution backward of its own, batch norm as a composite of reshapes and reductions, and
//! the bilinear up-sampling and skip concatenations as chains of copies. The operations here do
//! each of those in one or two passes over NCHW memory, with hand-written backward passes:
//!
//! | op | forward | backward | file |
//! |---|---|---|---|
//! | 3x3 conv (+ channel concat, + ReLU) | direct, 4 channels x 16 pixels register tiles | input: the same kernel, flipped weights; weights: 4x3 register sweeps | `conv3x3.rs` |
//! | batch norm (+ ReLU, + residual add + ReLU) (training) | 2 passes | 2 passes (3 with a residual) | `batch_norm.rs` |
//! | any conv with stride/padding (7x7/2 stem, 3x3/2, 1x1/2) | unfolded + gemm | gemm + folded back; weights: gemm | `conv_unfold.rs` |
//! | 2x2 max-pool | 1 pass | 1 pass | `pool.rs` |
//! | kxk/s max-pool with padding (3x3/2 stem) | 1 pass | 1 pass | `pool_window.rs` |
//! | residual add + ReLU (without a norm) | 1 pass | 1 pass | `add_relu.rs` |
//! | bilinear x2 up-sampling | separable | separable adjoint | `upsample.rs` |
//! | 1x1 conv (head) | gemm | gemm | `conv1x1.rs` |
//! | cross-entropy | fused softmax | `p - onehot` | `cross_entropy.rs` |
//! | logits -> full-resolution mask | bilinear + arg-max per row, O(classes·w) memory | - | `resize.rs` |
//!
//! [`ops`] is the API the model calls: on the flex device (training or not) it runs these
//! kernels, on any other device (wgpu) the equivalent burn operations, so the same model trains
//! everywhere. `ROADSEG_KERNELS=burn` uses burn's operations on the CPU too (for comparisons);
//! `ROADSEG_KERNELS=portable` keeps these kernels but without AVX2.

mod autodiff;
mod extension;
mod flex;
mod macros;
pub mod ops;

pub mod add_relu;
pub mod batch_norm;
pub mod conv1x1;
pub mod conv3x3;
pub mod conv_unfold;
pub mod cross_entropy;
pub mod pool;
pub mod pool_window;
pub mod profile;
pub mod reduce;
pub mod resize;
pub mod simd;
pub mod upsample;

pub use extension::CpuKernels;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_resnet;
