//! Convolutions of any kernel size, stride and padding (one group, no dilation) on NCHW `f32`,
//! as matrix products over the unfolded input ("im2col"): the ResNet's 7x7/2 stem, its strided
//! 3x3 convolutions and its strided 1x1 projection shortcuts, with both gradients.
//!
//! With `x: [B, C, H, W]`, `w: [O, C, kh, kw]` (read as `[O, K]`, `K = C·kh·kw`), stride `s`,
//! padding `p`, output `y: [B, O, OH, OW]` with `OH = (H + 2p - kh) / s + 1` (likewise `OW`),
//! `P = OH·OW`, and `x` read as 0 outside the image:
//!
//! ```text
//! cols_b[(c·kh + u)·kw + v, i·OW + j] = x[b, c, i·s + u - p, j·s + v - p]          [K, P]
//! y_b     = w · cols_b + bias                                                      [O, P]
//! dcols_b = wᵀ · dy_b                                                              [K, P]
//! dx[b, c, i·s + u - p, j·s + v - p] += dcols_b[(c·kh + u)·kw + v, i·OW + j]  (the adjoint of the unfolding)
//! dw      = Σ_b dy_b · cols_bᵀ                                                     [O, K]
//! dbias   = Σ_b Σ_p dy_b[:, p]
//! ```
//!
//! Images are unfolded side by side (`cols: [K, G·P]` for a group of `G` images, as many as fit
//! in [`GROUP_FLOATS`]), so the late stages' small maps still make one product wide enough to
//! run at full speed. The products go through the `gemm` crate, which picks its AVX2, AVX-512
//! or NEON kernels at run time and splits them across the threads, except a weight gradient
//! with a small output over a long side (the stem's), which gemm leaves on one thread: that one
//! is split along the pixels here and the parts added ([`weight_product`]). Nothing unfolded is
//! kept between passes: the backward pass unfolds `x` again.

use rayon::prelude::*;

use super::conv1x1::{Operand, all_threads, product, product_with};

/// Floats of unfolded input one product takes at most (32 MiB): larger batches are done in
/// groups of images.
const GROUP_FLOATS: usize = 1 << 23;

/// The shape of one convolution's input and kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Geometry {
    pub batch: usize,
    pub channels: usize,
    pub height: usize,
    pub width: usize,
    /// `[kh, kw]`
    pub kernel: [usize; 2],
    /// Vertical and horizontal stride (at least 1).
    pub stride: [usize; 2],
    /// Zeros added above and below, left and right.
    pub padding: [usize; 2],
}

impl Geometry {
    /// `[OH, OW]`.
    pub fn output(&self) -> [usize; 2] {
        [0, 1].map(|axis| {
            let n = [self.height, self.width][axis] + 2 * self.padding[axis];
            match n >= self.kernel[axis] {
                true => (n - self.kernel[axis]) / self.stride[axis] + 1,
                false => 0,
            }
        })
    }

    /// `K`: rows of the unfolded input (columns of the weight matrix).
    pub fn rows(&self) -> usize {
        self.channels * self.kernel[0] * self.kernel[1]
    }

    /// `P`: output pixels per image.
    pub fn pixels(&self) -> usize {
        let [oh, ow] = self.output();
        oh * ow
    }

    fn area(&self) -> usize {
        self.height * self.width
    }

    /// Images unfolded together when a group may take `floats`.
    fn group(&self, floats: usize) -> usize {
        (floats / (self.rows() * self.pixels()).max(1)).clamp(1, self.batch.max(1))
    }

    /// The output positions along `axis` whose tap `t` lands inside the image: `o` with
    /// `0 <= o·s + t - p < n`.
    fn inside(&self, axis: usize, t: usize) -> std::ops::Range<usize> {
        let (n, s, p) = (
            [self.height, self.width][axis],
            self.stride[axis],
            self.padding[axis],
        );
        let out = self.output()[axis];
        let first = if t >= p { 0 } else { (p - t).div_ceil(s) };
        let end = match n + p > t {
            true => ((n + p - t - 1) / s + 1).min(out),
            false => 0,
        };
        first.min(end)..end
    }
}

/// Runs `f` on each image group of at most `floats` unfolded: `(first image, images)`.
fn groups(g: &Geometry, floats: usize, mut f: impl FnMut(usize, usize)) {
    let group = g.group(floats);
    for first in (0..g.batch).step_by(group) {
        f(first, group.min(g.batch - first));
    }
}

/// `cols[r, b·P + q]` for the `images` images from `first` (`cols: [K, images·P]`).
fn unfold(x: &[f32], g: &Geometry, first: usize, images: usize) -> Vec<f32> {
    let (rows, pixels) = (g.rows(), g.pixels());
    let [kh, kw] = g.kernel;
    let [_, ow] = g.output();
    let mut cols = vec![0.0f32; rows * images * pixels];
    if cols.is_empty() {
        return cols;
    }
    cols.par_chunks_mut(images * pixels)
        .enumerate()
        .for_each(|(r, row)| {
            let (c, u, v) = (r / (kh * kw), (r / kw) % kh, r % kw);
            let (is, js) = (g.inside(0, u), g.inside(1, v));
            for (b, out) in row.chunks_exact_mut(pixels).enumerate() {
                let plane = &x[((first + b) * g.channels + c) * g.area()..][..g.area()];
                // Rows and columns outside the image stay 0.
                for i in is.clone() {
                    let line = &plane[(i * g.stride[0] + u - g.padding[0]) * g.width..];
                    let dst = &mut out[i * ow..(i + 1) * ow];
                    if g.stride[1] == 1 {
                        let j0 = js.start + v - g.padding[1];
                        dst[js.clone()].copy_from_slice(&line[j0..j0 + js.len()]);
                    } else {
                        for j in js.clone() {
                            dst[j] = line[j * g.stride[1] + v - g.padding[1]];
                        }
                    }
                }
            }
        });
    cols
}

/// The adjoint of [`unfold`]: `dx` of the `images` images from `first` (`dx: [B, C, H, W]`,
/// those planes overwritten) from `dcols: [K, images·P]`.
fn fold(dcols: &[f32], g: &Geometry, first: usize, images: usize, dx: &mut [f32]) {
    let pixels = g.pixels();
    let [kh, kw] = g.kernel;
    let [_, ow] = g.output();
    let taps = kh * kw;
    let width = images * pixels;
    dx[first * g.channels * g.area()..(first + images) * g.channels * g.area()]
        .par_chunks_mut(g.area().max(1))
        .enumerate()
        .for_each(|(index, plane)| {
            let (b, c) = (index / g.channels, index % g.channels);
            plane.fill(0.0);
            for tap in 0..taps {
                let (u, v) = (tap / kw, tap % kw);
                let src = &dcols[(c * taps + tap) * width + b * pixels..][..pixels];
                let js = g.inside(1, v);
                for i in g.inside(0, u) {
                    let line = &mut plane[(i * g.stride[0] + u - g.padding[0]) * g.width..];
                    let s = &src[i * ow..(i + 1) * ow];
                    for j in js.clone() {
                        line[j * g.stride[1] + v - g.padding[1]] += s[j];
                    }
                }
            }
        });
}

/// `[O, images·P]`: planes `o` of the images from `first` of `t: [B, O, P]` side by side.
fn gather(t: &[f32], channels: usize, pixels: usize, first: usize, images: usize) -> Vec<f32> {
    let mut out = vec![0.0f32; channels * images * pixels];
    if out.is_empty() {
        return out;
    }
    out.par_chunks_mut(images * pixels)
        .enumerate()
        .for_each(|(o, row)| {
            for (b, dst) in row.chunks_exact_mut(pixels).enumerate() {
                dst.copy_from_slice(&t[((first + b) * channels + o) * pixels..][..pixels]);
            }
        });
    out
}

/// `y = conv(x, w) + bias` for `x: [B, C, H, W]` contiguous, `weight: [O, C, kh, kw]`:
/// `[B, O, OH, OW]`.
pub fn forward(
    x: &[f32],
    g: &Geometry,
    weight: &[f32],
    bias: Option<&[f32]>,
    out_channels: usize,
) -> Vec<f32> {
    forward_in_groups(x, g, weight, bias, out_channels, GROUP_FLOATS)
}

/// [`forward`] unfolding at most `floats` at a time.
fn forward_in_groups(
    x: &[f32],
    g: &Geometry,
    weight: &[f32],
    bias: Option<&[f32]>,
    out_channels: usize,
    floats: usize,
) -> Vec<f32> {
    let (rows, pixels) = (g.rows(), g.pixels());
    assert_eq!(x.len(), g.batch * g.channels * g.area(), "input size");
    assert_eq!(weight.len(), out_channels * rows, "weight size");
    let mut y = vec![0.0f32; g.batch * out_channels * pixels];
    if y.is_empty() || rows == 0 {
        return y;
    }
    groups(g, floats, |first, images| {
        let cols = unfold(x, g, first, images);
        let n = images * pixels;
        let mut out = vec![0.0f32; out_channels * n];
        if let Some(bias) = bias {
            for (row, &b) in out.chunks_exact_mut(n).zip(bias) {
                row.fill(b);
            }
        }
        product_with(
            &mut out,
            Operand::rows(weight, rows),
            Operand::rows(&cols, n),
            [out_channels, n, rows],
            bias.is_some(),
            all_threads(),
        );
        // [O, images·P] -> [images, O, P]
        y[first * out_channels * pixels..(first + images) * out_channels * pixels]
            .par_chunks_mut(pixels)
            .enumerate()
            .for_each(|(index, dst)| {
                let (b, o) = (index / out_channels, index % out_channels);
                dst.copy_from_slice(&out[o * n + b * pixels..][..pixels]);
            });
    });
    y
}

/// `dx` (`[B, C, H, W]`) from `dy: [B, O, OH, OW]`.
pub fn input_gradient(dy: &[f32], g: &Geometry, weight: &[f32], out_channels: usize) -> Vec<f32> {
    input_gradient_in_groups(dy, g, weight, out_channels, GROUP_FLOATS)
}

/// [`input_gradient`] unfolding at most `floats` at a time.
fn input_gradient_in_groups(
    dy: &[f32],
    g: &Geometry,
    weight: &[f32],
    out_channels: usize,
    floats: usize,
) -> Vec<f32> {
    let (rows, pixels) = (g.rows(), g.pixels());
    assert_eq!(dy.len(), g.batch * out_channels * pixels, "gradient size");
    assert_eq!(weight.len(), out_channels * rows, "weight size");
    let mut dx = vec![0.0f32; g.batch * g.channels * g.area()];
    if dx.is_empty() || pixels == 0 {
        return dx;
    }
    groups(g, floats, |first, images| {
        let n = images * pixels;
        let gathered = gather(dy, out_channels, pixels, first, images);
        let mut dcols = vec![0.0f32; rows * n];
        product_with(
            &mut dcols,
            Operand::columns(weight, rows),
            Operand::rows(&gathered, n),
            [rows, n, out_channels],
            false,
            all_threads(),
        );
        fold(&dcols, g, first, images, &mut dx);
    });
    dx
}

/// `dw` (`[O, C, kh, kw]`) from `x: [B, C, H, W]` and `dy: [B, O, OH, OW]`.
pub fn weight_gradient(x: &[f32], dy: &[f32], g: &Geometry, out_channels: usize) -> Vec<f32> {
    weight_gradient_in_groups(x, dy, g, out_channels, GROUP_FLOATS)
}

/// [`weight_gradient`] unfolding at most `floats` at a time.
fn weight_gradient_in_groups(
    x: &[f32],
    dy: &[f32],
    g: &Geometry,
    out_channels: usize,
    floats: usize,
) -> Vec<f32> {
    let (rows, pixels) = (g.rows(), g.pixels());
    assert_eq!(x.len(), g.batch * g.channels * g.area(), "input size");
    assert_eq!(dy.len(), g.batch * out_channels * pixels, "gradient size");
    let mut dw = vec![0.0f32; out_channels * rows];
    if dw.is_empty() || pixels == 0 {
        return dw;
    }
    groups(g, floats, |first, images| {
        let n = images * pixels;
        let cols = unfold(x, g, first, images);
        let gathered = gather(dy, out_channels, pixels, first, images);
        let threads = rayon::current_num_threads();
        weight_product(&mut dw, &gathered, &cols, [out_channels, rows, n], threads);
    });
    dw
}

/// Outputs (`O·K`) below which the weight gradient's product is split along its long side.
const SPLIT_BELOW: usize = 1 << 14;
/// Columns each thread takes at least when it is.
const MIN_SLICE: usize = 1024;

/// `dw += gathered · colsᵀ` (`[m, r]` from `[m, n]` and `[r, n]`). gemm splits a product among
/// the threads by its output's blocks, so an output as small as the stem's (64 x 147) over a long
/// `n` (every pixel of the batch) ran on one thread: there each of `threads` takes a slice of `n`
/// and the partial sums are added.
fn weight_product(
    dw: &mut [f32],
    gathered: &[f32],
    cols: &[f32],
    [m, r, n]: [usize; 3],
    threads: usize,
) {
    if threads < 2 || m * r >= SPLIT_BELOW || n < threads * MIN_SLICE {
        let (lhs, rhs) = (Operand::rows(gathered, n), Operand::columns(cols, n));
        product_with(dw, lhs, rhs, [m, r, n], true, all_threads());
        return;
    }
    let slice = n.div_ceil(threads);
    let partials: Vec<Vec<f32>> = (0..threads)
        .into_par_iter()
        .map(|t| {
            let (start, end) = (t * slice, ((t + 1) * slice).min(n));
            let mut part = vec![0.0f32; m * r];
            if start < end {
                // The same row strides from the slice's first column.
                let lhs = Operand::rows(&gathered[start..], n);
                let rhs = Operand::columns(&cols[start..], n);
                product(&mut part, lhs, rhs, [m, r, end - start], false);
            }
            part
        })
        .collect();
    for part in partials {
        for (d, p) in dw.iter_mut().zip(part) {
            *d += p;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(n: usize, seed: u64) -> Vec<f32> {
        let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        (0..n)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
            })
            .collect()
    }

    /// The formulas of the module comment, straight from their definitions, in f64:
    /// `(y, dx, dw)`.
    fn reference(
        x: &[f32],
        w: &[f32],
        dy: &[f32],
        g: &Geometry,
        o: usize,
    ) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
        let [oh, ow] = g.output();
        let [kh, kw] = g.kernel;
        let (c, h, wd) = (g.channels, g.height, g.width);
        let mut y = vec![0.0; g.batch * o * oh * ow];
        let mut dx = vec![0.0; x.len()];
        let mut dw = vec![0.0; w.len()];
        for b in 0..g.batch {
            for oc in 0..o {
                for i in 0..oh {
                    for j in 0..ow {
                        let yi = ((b * o + oc) * oh + i) * ow + j;
                        for ci in 0..c {
                            for u in 0..kh {
                                for v in 0..kw {
                                    let ii = (i * g.stride[0] + u) as isize - g.padding[0] as isize;
                                    let jj = (j * g.stride[1] + v) as isize - g.padding[1] as isize;
                                    if ii < 0 || jj < 0 || ii >= h as isize || jj >= wd as isize {
                                        continue;
                                    }
                                    let xi = ((b * c + ci) * h + ii as usize) * wd + jj as usize;
                                    let wi = ((oc * c + ci) * kh + u) * kw + v;
                                    y[yi] += x[xi] as f64 * w[wi] as f64;
                                    dx[xi] += dy[yi] as f64 * w[wi] as f64;
                                    dw[wi] += dy[yi] as f64 * x[xi] as f64;
                                }
                            }
                        }
                    }
                }
            }
        }
        (y, dx, dw)
    }

    fn assert_close(a: &[f32], b: &[f64], what: &str) {
        assert_eq!(a.len(), b.len(), "{what}: lengths");
        for (k, (&x, &y)) in a.iter().zip(b).enumerate() {
            assert!(
                (x as f64 - y).abs() <= 1e-4 * (1.0 + y.abs()),
                "{what}: element {k}: {x} vs {y}"
            );
        }
    }

    #[test]
    fn forward_and_gradients_match_the_formulas() {
        // (batch, channels, h, w, kernel, stride, padding, out): the ResNet's shapes in small,
        // odd sizes, a stride taller than wide, and a map smaller than the kernel.
        let cases = [
            (2, 3, 13, 11, [7, 7], [2, 2], [3, 3], 4),
            (1, 4, 7, 9, [3, 3], [2, 2], [1, 1], 5),
            (3, 5, 6, 8, [1, 1], [2, 2], [0, 0], 6),
            (1, 2, 5, 5, [3, 3], [1, 1], [1, 1], 3),
            (2, 2, 9, 4, [3, 1], [3, 1], [1, 0], 2),
            (1, 1, 2, 2, [3, 3], [2, 2], [1, 1], 1),
            (1, 3, 4, 4, [5, 5], [1, 1], [0, 0], 2),
        ];
        for (batch, channels, height, width, kernel, stride, padding, o) in cases {
            let g = Geometry {
                batch,
                channels,
                height,
                width,
                kernel,
                stride,
                padding,
            };
            let what = format!("{g:?} -> {o}");
            let x = values(batch * channels * height * width, 1);
            let w = values(o * g.rows(), 2);
            let bias = values(o, 3);
            let dy = values(batch * o * g.pixels(), 4);
            let (mut y_ref, dx_ref, dw_ref) = reference(&x, &w, &dy, &g, o);
            for (k, y) in y_ref.iter_mut().enumerate() {
                *y += bias[(k / g.pixels()) % o] as f64;
            }
            assert_close(&forward(&x, &g, &w, Some(&bias), o), &y_ref, &what);
            assert_close(&input_gradient(&dy, &g, &w, o), &dx_ref, &what);
            assert_close(&weight_gradient(&x, &dy, &g, o), &dw_ref, &what);
        }
    }

    #[test]
    fn the_weight_product_split_among_threads_adds_up_to_one_product() {
        // The stem's shape in small: an output under SPLIT_BELOW over a long n, in 1 to 3
        // slices (the last one shorter), added to what dw held.
        let (m, r, n) = (5, 7, 3 * MIN_SLICE + 11);
        let gathered = values(m * n, 3);
        let cols = values(r * n, 4);
        let start = values(m * r, 5);
        let mut expected = start.clone();
        for i in 0..m {
            for j in 0..r {
                let dot: f64 = (0..n)
                    .map(|k| gathered[i * n + k] as f64 * cols[j * n + k] as f64)
                    .sum();
                expected[i * r + j] += dot as f32;
            }
        }
        let expected: Vec<f64> = expected.iter().map(|&v| v as f64).collect();
        for threads in [1, 2, 3] {
            let mut dw = start.clone();
            weight_product(&mut dw, &gathered, &cols, [m, r, n], threads);
            assert_close(&dw, &expected, &format!("{threads} threads"));
        }
    }

    #[test]
    fn images_in_groups_give_what_one_product_gives() {
        let g = Geometry {
            batch: 5,
            channels: 3,
            height: 8,
            width: 7,
            kernel: [3, 3],
            stride: [2, 2],
            padding: [1, 1],
        };
        let o = 4;
        let x = values(g.batch * g.channels * g.area(), 5);
        let w = values(o * g.rows(), 6);
        let dy = values(g.batch * o * g.pixels(), 7);
        let (y_ref, dx_ref, dw_ref) = reference(&x, &w, &dy, &g, o);
        // One image per group, two, and all five at once.
        for floats in [1, 2 * g.rows() * g.pixels(), GROUP_FLOATS] {
            let what = format!("groups of {}", g.group(floats));
            assert_close(
                &forward_in_groups(&x, &g, &w, None, o, floats),
                &y_ref,
                &what,
            );
            assert_close(
                &input_gradient_in_groups(&dy, &g, &w, o, floats),
                &dx_ref,
                &what,
            );
            assert_close(
                &weight_gradient_in_groups(&x, &dy, &g, o, floats),
                &dw_ref,
                &what,
            );
        }
    }
}
