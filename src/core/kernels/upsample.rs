//! Bilinear x2 up-sampling with half-pixel centres (PyTorch's `align_corners=False`) on NCHW
//! `f32`, and its adjoint (the backward pass).
//!
//! Along one axis of length `n`, output `2i` is `0.75·x[i] + 0.25·x[max(i-1, 0)]` and output
//! `2i+1` is `0.75·x[i] + 0.25·x[min(i+1, n-1)]`; the 2-D map applies this to the rows and then
//! to the columns. The adjoint of the 1-D map, for an output gradient `g` of length `2n`, is
//!
//! ```text
//! dx[i] = 0.75·(g[2i] + g[2i+1]) + 0.25·(g[max(2i-1, 0)] + g[min(2i+2, 2n-1)])
//! ```
//!
//! (the clamped terms carry the edge samples' extra weight), and the 2-D backward applies it to
//! both axes.

use rayon::prelude::*;

use super::macros::multiversion;

/// `[planes, h, w]` -> `[planes, 2h, 2w]` (a plane is one channel of one image).
pub fn forward(x: &[f32], planes: usize, height: usize, width: usize) -> Vec<f32> {
    assert_eq!(x.len(), planes * height * width, "input size");
    let (oh, ow) = (2 * height, 2 * width);
    let mut out = vec![0.0f32; planes * oh * ow];
    if out.is_empty() {
        return out;
    }
    out.par_chunks_mut(oh * ow)
        .zip(x.par_chunks(height * width))
        .for_each(|(out, x)| {
            let mut mixed = vec![0.0f32; width];
            for (r, out_row) in out.chunks_exact_mut(ow).enumerate() {
                let i = r / 2;
                let near = if r % 2 == 0 {
                    i.saturating_sub(1)
                } else {
                    (i + 1).min(height - 1)
                };
                blend(
                    &x[i * width..(i + 1) * width],
                    &x[near * width..(near + 1) * width],
                    &mut mixed,
                );
                widen_row(&mixed, out_row);
            }
        });
    out
}

/// Gradient of [`forward`]: `[planes, 2h, 2w]` -> `[planes, h, w]`.
pub fn backward(dy: &[f32], planes: usize, height: usize, width: usize) -> Vec<f32> {
    let (oh, ow) = (2 * height, 2 * width);
    assert_eq!(dy.len(), planes * oh * ow, "output gradient size");
    let mut dx = vec![0.0f32; planes * height * width];
    if dx.is_empty() {
        return dx;
    }
    dx.par_chunks_mut(height * width)
        .zip(dy.par_chunks(oh * ow))
        .for_each(|(dx, g)| {
            let mut rows = vec![0.0f32; ow];
            let row = |r: usize| &g[r * ow..(r + 1) * ow];
            for (i, dx_row) in dx.chunks_exact_mut(width).enumerate() {
                let before = (2 * i).saturating_sub(1);
                let after = (2 * i + 2).min(oh - 1);
                mix_rows(
                    row(2 * i),
                    row(2 * i + 1),
                    row(before),
                    row(after),
                    &mut rows,
                );
                narrow_row(&rows, dx_row);
            }
        });
    dx
}

multiversion! {
    /// `out = 0.75·a + 0.25·b`.
    fn blend(a: &[f32], b: &[f32], out: &mut [f32]) {
        for ((o, &a), &b) in out.iter_mut().zip(a).zip(b) {
            *o = 0.75 * a + 0.25 * b;
        }
    }
}

multiversion! {
    /// `out = 0.75·(a + b) + 0.25·(c + d)`.
    fn mix_rows(a: &[f32], b: &[f32], c: &[f32], d: &[f32], out: &mut [f32]) {
        for (k, o) in out.iter_mut().enumerate() {
            *o = 0.75 * (a[k] + b[k]) + 0.25 * (c[k] + d[k]);
        }
    }
}

/// The 1-D up-sampling of one row: `out.len() == 2 * m.len()`.
fn widen_row(m: &[f32], out: &mut [f32]) {
    let n = m.len();
    if n == 1 {
        out[0] = m[0];
        out[1] = m[0];
        return;
    }
    out[0] = m[0];
    out[1] = 0.75 * m[0] + 0.25 * m[1];
    widen_interior(m, out);
    out[2 * n - 2] = 0.75 * m[n - 1] + 0.25 * m[n - 2];
    out[2 * n - 1] = m[n - 1];
}

multiversion! {
    /// Outputs `2..2n-2` of [`widen_row`], the ones with both neighbours inside.
    fn widen_interior(m: &[f32], out: &mut [f32]) {
        for (j, pair) in out[2..2 * m.len() - 2].chunks_exact_mut(2).enumerate() {
            let j = j + 1;
            pair[0] = 0.75 * m[j] + 0.25 * m[j - 1];
            pair[1] = 0.75 * m[j] + 0.25 * m[j + 1];
        }
    }
}

multiversion! {
    /// The 1-D adjoint of one row: `g.len() == 2 * out.len()`.
    fn narrow_row(g: &[f32], out: &mut [f32]) {
        let n = out.len();
        let last = 2 * n - 1;
        for (i, o) in out.iter_mut().enumerate() {
            let before = (2 * i).saturating_sub(1);
            let after = (2 * i + 2).min(last);
            *o = 0.75 * (g[2 * i] + g[2 * i + 1]) + 0.25 * (g[before] + g[after]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn weights_1d(n: usize) -> Vec<Vec<f64>> {
        // Row k of the (2n x n) interpolation matrix.
        (0..2 * n)
            .map(|k| {
                let mut row = vec![0.0; n];
                let i = k / 2;
                let near = if k % 2 == 0 {
                    i.saturating_sub(1)
                } else {
                    (i + 1).min(n - 1)
                };
                row[i] += 0.75;
                row[near] += 0.25;
                row
            })
            .collect()
    }

    fn values(n: usize) -> Vec<f32> {
        (0..n)
            .map(|i| ((i * 37 % 101) as f32 / 50.0) - 1.0)
            .collect()
    }

    #[test]
    fn forward_and_backward_are_the_interpolation_matrix_and_its_transpose() {
        for &(p, h, w) in &[(1, 1, 1), (2, 3, 5), (1, 4, 17), (3, 2, 1), (1, 1, 9)] {
            let (wh, ww) = (weights_1d(h), weights_1d(w));
            let x = values(p * h * w);
            let dy = values(p * 4 * h * w);
            let y = forward(&x, p, h, w);
            let dx = backward(&dy, p, h, w);
            for plane in 0..p {
                for r in 0..2 * h {
                    for s in 0..2 * w {
                        let mut expected = 0.0;
                        for i in 0..h {
                            for j in 0..w {
                                expected += wh[r][i] * ww[s][j] * x[(plane * h + i) * w + j] as f64;
                            }
                        }
                        let got = y[(plane * 2 * h + r) * 2 * w + s] as f64;
                        assert!((got - expected).abs() < 1e-5, "{p}x{h}x{w} y[{r},{s}]");
                    }
                }
                for i in 0..h {
                    for j in 0..w {
                        let mut expected = 0.0;
                        for r in 0..2 * h {
                            for s in 0..2 * w {
                                expected += wh[r][i]
                                    * ww[s][j]
                                    * dy[(plane * 2 * h + r) * 2 * w + s] as f64;
                            }
                        }
                        let got = dx[(plane * h + i) * w + j] as f64;
                        assert!((got - expected).abs() < 1e-5, "{p}x{h}x{w} dx[{i},{j}]");
                    }
                }
            }
        }
    }
}
