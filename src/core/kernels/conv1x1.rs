//! 1x1 convolution (the UNet's classification head, the ResNet bottlenecks' reductions and
//! expansions) on NCHW `f32`: one matrix product per image, through the `gemm` crate (which
//! picks its AVX2/AVX-512/NEON kernels at run time), images across the threads or, with fewer
//! images than threads, each product across them.
//!
//! With `x_b: [C, P]` (one image, `P = h·w` pixels), `w: [O, C]`, `y_b: [O, P]`:
//!
//! ```text
//! y_b  = w · x_b + bias        dx_b = wᵀ · dy_b        dw = Σ_b dy_b · x_bᵀ        dbias = Σ dy
//! ```

use rayon::prelude::*;

/// `y = w · x + bias` for `x: [batch, in, area]`, `w: [out, in]`.
pub fn forward(
    x: &[f32],
    shape: [usize; 3],
    weight: &[f32],
    bias: Option<&[f32]>,
    out_channels: usize,
) -> Vec<f32> {
    forward_spread(x, shape, weight, bias, out_channels, Spread::of(shape[0]))
}

fn forward_spread(
    x: &[f32],
    [batch, in_channels, area]: [usize; 3],
    weight: &[f32],
    bias: Option<&[f32]>,
    out_channels: usize,
    spread: Spread,
) -> Vec<f32> {
    assert_eq!(x.len(), batch * in_channels * area, "input size");
    assert_eq!(weight.len(), out_channels * in_channels, "weight size");
    let mut y = vec![0.0f32; batch * out_channels * area];
    if y.is_empty() {
        return y;
    }
    spread.each_image(
        &mut y,
        out_channels * area,
        x,
        in_channels * area,
        |y, x, parallelism| {
            if let Some(bias) = bias {
                for (plane, &b) in y.chunks_exact_mut(area).zip(bias) {
                    plane.fill(b);
                }
            }
            // y[out, area] (+)= w[out, in] · x[in, area], all row-major.
            product_with(
                y,
                Operand::rows(weight, in_channels),
                Operand::rows(x, area),
                [out_channels, area, in_channels],
                bias.is_some(),
                parallelism,
            );
        },
    );
    y
}

/// `dx = wᵀ · dy` for `dy: [batch, out, area]`.
pub fn input_gradient(
    dy: &[f32],
    shape: [usize; 3],
    weight: &[f32],
    in_channels: usize,
) -> Vec<f32> {
    input_gradient_spread(dy, shape, weight, in_channels, Spread::of(shape[0]))
}

fn input_gradient_spread(
    dy: &[f32],
    [batch, out_channels, area]: [usize; 3],
    weight: &[f32],
    in_channels: usize,
    spread: Spread,
) -> Vec<f32> {
    assert_eq!(
        dy.len(),
        batch * out_channels * area,
        "output gradient size"
    );
    assert_eq!(weight.len(), out_channels * in_channels, "weight size");
    let mut dx = vec![0.0f32; batch * in_channels * area];
    if dx.is_empty() {
        return dx;
    }
    spread.each_image(
        &mut dx,
        in_channels * area,
        dy,
        out_channels * area,
        |dx, dy, parallelism| {
            // dx[in, area] = wᵀ · dy[out, area]; wᵀ read from w ([out, in]) column by column.
            product_with(
                dx,
                Operand::columns(weight, in_channels),
                Operand::rows(dy, area),
                [in_channels, area, out_channels],
                false,
                parallelism,
            );
        },
    );
    dx
}

/// How a layer's per-image products share the threads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Spread {
    /// One image per task, each product on its thread.
    Images,
    /// One image after the other, each product split across the threads: with fewer images
    /// than threads (a batch of one at inference), spreading images would leave threads idle.
    Products,
}

impl Spread {
    fn of(batch: usize) -> Self {
        match batch >= rayon::current_num_threads() {
            true => Self::Images,
            false => Self::Products,
        }
    }

    /// `f(dst image, src image, gemm's parallelism)` for each image of `dst` and `src`.
    fn each_image(
        self,
        dst: &mut [f32],
        dst_image: usize,
        src: &[f32],
        src_image: usize,
        f: impl Fn(&mut [f32], &[f32], gemm::Parallelism) + Sync,
    ) {
        match self {
            Self::Images => dst
                .par_chunks_mut(dst_image)
                .zip(src.par_chunks(src_image))
                .for_each(|(d, s)| f(d, s, gemm::Parallelism::None)),
            Self::Products => dst
                .chunks_mut(dst_image)
                .zip(src.chunks(src_image))
                .for_each(|(d, s)| f(d, s, all_threads())),
        }
    }
}

/// gemm's parallelism: every thread of the pool.
pub(super) fn all_threads() -> gemm::Parallelism {
    match rayon::current_num_threads() {
        0 | 1 => gemm::Parallelism::None,
        n => gemm::Parallelism::Rayon(n),
    }
}

/// `dw = Σ_b dy_b · x_bᵀ` (`[out, in]`) for `x: [batch, in, area]`, `dy: [batch, out, area]`.
pub fn weight_gradient(
    x: &[f32],
    dy: &[f32],
    [batch, in_channels, area]: [usize; 3],
    out_channels: usize,
) -> Vec<f32> {
    assert_eq!(x.len(), batch * in_channels * area, "input size");
    assert_eq!(
        dy.len(),
        batch * out_channels * area,
        "output gradient size"
    );
    let zero = || vec![0.0f32; out_channels * in_channels];
    if area == 0 {
        return zero();
    }
    (0..batch)
        .into_par_iter()
        .fold(zero, |mut dw, b| {
            let x = &x[b * in_channels * area..(b + 1) * in_channels * area];
            let dy = &dy[b * out_channels * area..(b + 1) * out_channels * area];
            // dw[out, in] += dy[out, area] · xᵀ; xᵀ read from x ([in, area]) column by column.
            product(
                &mut dw,
                Operand::rows(dy, area),
                Operand::columns(x, area),
                [out_channels, in_channels, area],
                true,
            );
            dw
        })
        .reduce(zero, |mut a, b| {
            for (a, b) in a.iter_mut().zip(b) {
                *a += b;
            }
            a
        })
}

/// A row-major matrix operand, read as is or transposed.
pub(super) struct Operand<'a> {
    data: &'a [f32],
    /// Strides between consecutive rows and consecutive columns of the matrix as read.
    row_stride: isize,
    column_stride: isize,
}

impl<'a> Operand<'a> {
    /// `data` as a row-major matrix with rows of `length`.
    pub(super) fn rows(data: &'a [f32], length: usize) -> Self {
        Self {
            data,
            row_stride: length as isize,
            column_stride: 1,
        }
    }

    /// The transpose of `data` taken as a row-major matrix with rows of `length`.
    pub(super) fn columns(data: &'a [f32], length: usize) -> Self {
        Self {
            data,
            row_stride: 1,
            column_stride: length as isize,
        }
    }
}

/// `dst = lhs · rhs` (`accumulate`: `dst += lhs · rhs`) for `dst: [m, n]` row-major, `lhs` read
/// as `[m, k]`, `rhs` as `[k, n]`, on the calling thread (the callers parallelise over images).
pub(super) fn product(
    dst: &mut [f32],
    lhs: Operand,
    rhs: Operand,
    shape: [usize; 3],
    accumulate: bool,
) {
    product_with(dst, lhs, rhs, shape, accumulate, gemm::Parallelism::None)
}

/// [`product`] with gemm's own parallelism (for one large product when there are fewer images
/// than threads).
pub(super) fn product_with(
    dst: &mut [f32],
    lhs: Operand,
    rhs: Operand,
    [m, n, k]: [usize; 3],
    accumulate: bool,
    parallelism: gemm::Parallelism,
) {
    assert_eq!(dst.len(), m * n, "product size");
    let extent = |o: &Operand, rows: usize, columns: usize| {
        (rows.saturating_sub(1)) as isize * o.row_stride
            + (columns.saturating_sub(1)) as isize * o.column_stride
    };
    if m * n > 0 && k > 0 {
        assert!(extent(&lhs, m, k) < lhs.data.len() as isize, "lhs extent");
        assert!(extent(&rhs, k, n) < rhs.data.len() as isize, "rhs extent");
    }
    // SAFETY: dst holds m·n elements with row stride n; every element gemm reads from lhs and
    // rhs is within the extents checked above.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            n as isize,
            accumulate,
            lhs.data.as_ptr(),
            lhs.column_stride,
            lhs.row_stride,
            rhs.data.as_ptr(),
            rhs.column_stride,
            rhs.row_stride,
            1.0,
            1.0,
            false,
            false,
            false,
            parallelism,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(n: usize, k: usize) -> Vec<f32> {
        (0..n).map(|i| ((i * k % 97) as f32 / 48.0) - 1.0).collect()
    }

    #[test]
    fn forward_and_gradients_match_the_formulas() {
        for &(b, c, a, o, with_bias) in &[
            (1, 1, 1, 1, true),
            (2, 8, 13, 7, true),
            (3, 5, 64, 2, false),
        ] {
            let x = values(b * c * a, 7);
            let w = values(o * c, 11);
            let bias = values(o, 13);
            let dy = values(b * o * a, 17);
            let bias = with_bias.then_some(&bias[..]);
            let y = forward(&x, [b, c, a], &w, bias, o);
            let dx = input_gradient(&dy, [b, o, a], &w, c);
            // Both ways of sharing the threads compute the same products.
            for spread in [Spread::Images, Spread::Products] {
                assert_eq!(y, forward_spread(&x, [b, c, a], &w, bias, o, spread));
                assert_eq!(dx, input_gradient_spread(&dy, [b, o, a], &w, c, spread));
            }
            let dw = weight_gradient(&x, &dy, [b, c, a], o);
            let mut dw_ref = vec![0.0f64; o * c];
            for bi in 0..b {
                for p in 0..a {
                    for oi in 0..o {
                        let mut s = bias.map_or(0.0, |bias| bias[oi] as f64);
                        for ci in 0..c {
                            s += w[oi * c + ci] as f64 * x[(bi * c + ci) * a + p] as f64;
                            dw_ref[oi * c + ci] +=
                                dy[(bi * o + oi) * a + p] as f64 * x[(bi * c + ci) * a + p] as f64;
                        }
                        assert!((y[(bi * o + oi) * a + p] as f64 - s).abs() < 1e-5, "y");
                    }
                    for ci in 0..c {
                        let s: f64 = (0..o)
                            .map(|oi| w[oi * c + ci] as f64 * dy[(bi * o + oi) * a + p] as f64)
                            .sum();
                        assert!((dx[(bi * c + ci) * a + p] as f64 - s).abs() < 1e-5, "dx");
                    }
                }
            }
            for (g, r) in dw.iter().zip(&dw_ref) {
                assert!((*g as f64 - r).abs() < 1e-4, "dw {g} vs {r}");
            }
        }
    }
}
