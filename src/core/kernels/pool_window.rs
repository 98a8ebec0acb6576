//! Max-pooling over `k x k` windows with a stride and padding on NCHW `f32` (the ResNet stem's
//! 3x3/2 with padding 1), and its backward pass.
//!
//! With `OH = (H + 2p - k) / s + 1` (likewise `OW`), padding never chosen (as -∞):
//!
//! ```text
//! y[i, j]  = max_{u, v < k, inside} x[i·s + u - p, j·s + v - p]
//! dx[a, b] = Σ_{(i, j): the maximum of window (i, j) is at (a, b)} dy[i, j]
//! ```
//!
//! The first maximum in row-major window order wins ties, and a NaN wins over any number (so
//! that it reaches the loss); the winner's window position `u·k + v` is kept per output (one
//! byte: `k <= 15`). Windows overlap when `s < k`, so the backward pass adds.

use rayon::prelude::*;

/// A pooling window: side, stride and padding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub size: usize,
    pub stride: usize,
    pub padding: usize,
}

impl Window {
    /// Output length of an input side `n`.
    pub fn output(&self, n: usize) -> usize {
        match n + 2 * self.padding >= self.size {
            true => (n + 2 * self.padding - self.size) / self.stride + 1,
            false => 0,
        }
    }

    fn check(&self) {
        assert!(
            (1..16).contains(&self.size) && self.stride > 0,
            "pooling window"
        );
        assert!(self.padding < self.size, "padding smaller than the window");
    }
}

/// `[planes, h, w]` -> (`[planes, OH, OW]`, the window position of each maximum).
pub fn forward(
    x: &[f32],
    planes: usize,
    [height, width]: [usize; 2],
    window: Window,
) -> (Vec<f32>, Vec<u8>) {
    window.check();
    assert_eq!(x.len(), planes * height * width, "input size");
    let (oh, ow) = (window.output(height), window.output(width));
    let mut y = vec![0.0f32; planes * oh * ow];
    let mut at = vec![0u8; planes * oh * ow];
    if y.is_empty() {
        return (y, at);
    }
    let Window {
        size: k,
        stride: s,
        padding: p,
    } = window;
    // The window's taps inside the image, found once per output column (here) and row (below)
    // rather than checked at every tap.
    let columns: Vec<_> = (0..ow).map(|j| inside(j, window, width)).collect();
    // One task per plane: a row of outputs is too little work to hand to another thread.
    y.par_chunks_mut(oh * ow)
        .zip(at.par_chunks_mut(oh * ow))
        .enumerate()
        .for_each(|(plane, (y, at))| {
            let x = &x[plane * height * width..][..height * width];
            for (i, (y, at)) in y
                .chunks_exact_mut(ow)
                .zip(at.chunks_exact_mut(ow))
                .enumerate()
            {
                let us = inside(i, window, height);
                for (j, vs) in columns.iter().enumerate() {
                    let (mut best, mut best_at) = (f32::NEG_INFINITY, u8::MAX);
                    for u in us.clone() {
                        let row = &x[(i * s + u - p) * width..][..width];
                        for v in vs.clone() {
                            let value = row[j * s + v - p];
                            // `>` keeps the first maximum; a NaN wins.
                            if best_at == u8::MAX
                                || value > best
                                || value.is_nan() && !best.is_nan()
                            {
                                (best, best_at) = (value, (u * k + v) as u8);
                            }
                        }
                    }
                    y[j] = best;
                    at[j] = best_at;
                }
            }
        });
    (y, at)
}

/// The taps `t < k` of output position `o` that land inside a side of `n`: `0 <= o·s + t - p < n`.
fn inside(o: usize, window: Window, n: usize) -> std::ops::Range<usize> {
    let start = o * window.stride;
    let first = window.padding.saturating_sub(start);
    let end = (n + window.padding).saturating_sub(start).min(window.size);
    first..end.max(first)
}

/// Gradient of [`forward`]: `dy` (`[planes, OH, OW]`) added to the maxima, `[planes, h, w]`.
pub fn backward(
    dy: &[f32],
    positions: &[u8],
    planes: usize,
    [height, width]: [usize; 2],
    window: Window,
) -> Vec<f32> {
    window.check();
    let (oh, ow) = (window.output(height), window.output(width));
    assert_eq!(dy.len(), planes * oh * ow, "output gradient size");
    assert_eq!(positions.len(), dy.len(), "positions size");
    let mut dx = vec![0.0f32; planes * height * width];
    if dx.is_empty() || dy.is_empty() {
        return dx;
    }
    let Window {
        size: k,
        stride: s,
        padding: p,
    } = window;
    dx.par_chunks_mut(height * width)
        .enumerate()
        .for_each(|(plane, dx)| {
            let dy = &dy[plane * oh * ow..][..oh * ow];
            let at = &positions[plane * oh * ow..][..oh * ow];
            for i in 0..oh {
                for j in 0..ow {
                    let q = at[i * ow + j] as usize;
                    if q == u8::MAX as usize {
                        continue; // a window wholly in the padding (cannot happen for p < k)
                    }
                    let (a, b) = (i * s + q / k - p, j * s + q % k - p);
                    dx[a * width + b] += dy[i * ow + j];
                }
            }
        });
    dx
}

#[cfg(test)]
mod tests {
    use super::*;

    const STEM: Window = Window {
        size: 3,
        stride: 2,
        padding: 1,
    };

    #[test]
    fn overlapping_windows_add_their_gradients_and_skip_the_padding() {
        // A 3x4 plane whose largest value (9) is in two 3x3/2 windows, and negative values
        // elsewhere (the padding must not win).
        let x = [
            -5.0, -4.0, -3.0, -6.0, //
            -2.0, -1.0, 9.0, -7.0, //
            -8.0, -9.0, -3.5, -2.5,
        ];
        let (y, at) = forward(&x, 1, [3, 4], STEM);
        // Output 2x2: windows centred on (0,0), (0,2), (2,0), (2,2).
        assert_eq!(y, vec![-1.0, 9.0, -1.0, 9.0]);
        let dx = backward(&[1.0, 10.0, 100.0, 1000.0], &at, 1, [3, 4], STEM);
        let mut expected = [0.0f32; 12];
        expected[5] = 101.0; // -1 at (1,1): windows (0,0) and (1,0)
        expected[6] = 1010.0; // 9 at (1,2): windows (0,1) and (1,1)
        assert_eq!(dx, expected.to_vec());
    }

    #[test]
    fn matches_the_definition_on_odd_sizes() {
        for (planes, h, w, window) in [
            (3, 7, 5, STEM),
            (
                2,
                6,
                6,
                Window {
                    size: 2,
                    stride: 2,
                    padding: 0,
                },
            ),
            (1, 1, 1, STEM),
        ] {
            let x: Vec<f32> = (0..planes * h * w)
                .map(|i| ((i * 37 % 101) as f32 - 50.0) / 7.0)
                .collect();
            let (y, _) = forward(&x, planes, [h, w], window);
            let (oh, ow) = (window.output(h), window.output(w));
            for plane in 0..planes {
                for i in 0..oh {
                    for j in 0..ow {
                        let mut m = f32::NEG_INFINITY;
                        for a in 0..h {
                            for b in 0..w {
                                let (u, v) = (a + window.padding, b + window.padding);
                                if (i * window.stride..i * window.stride + window.size).contains(&u)
                                    && (j * window.stride..j * window.stride + window.size)
                                        .contains(&v)
                                {
                                    m = m.max(x[(plane * h + a) * w + b]);
                                }
                            }
                        }
                        assert_eq!(y[(plane * oh + i) * ow + j], m, "{window:?} {h}x{w}");
                    }
                }
            }
        }
    }
}
