//! 2x2 max-pooling with stride 2 on NCHW `f32` with even height and width, and its backward
//! pass.
//!
//! `y[i,j] = max(x[2i,2j], x[2i,2j+1], x[2i+1,2j], x[2i+1,2j+1])`; the gradient of each output
//! goes to the one input that was the maximum (the first in that order on ties, as burn does),
//! remembered as a 2-bit position per output.

use rayon::prelude::*;

/// `[planes, h, w]` -> (`[planes, h/2, w/2]`, the position 0..4 of each maximum).
///
/// # Panics
/// If `h` or `w` is odd.
pub fn forward(x: &[f32], planes: usize, height: usize, width: usize) -> (Vec<f32>, Vec<u8>) {
    assert!(
        height.is_multiple_of(2) && width.is_multiple_of(2),
        "2x2 pooling needs even sizes"
    );
    assert_eq!(x.len(), planes * height * width, "input size");
    let (oh, ow) = (height / 2, width / 2);
    let mut y = vec![0.0f32; planes * oh * ow];
    let mut at = vec![0u8; planes * oh * ow];
    if y.is_empty() {
        return (y, at);
    }
    y.par_chunks_mut(ow)
        .zip(at.par_chunks_mut(ow))
        .enumerate()
        .for_each(|(out_row, (y, at))| {
            let (plane, i) = (out_row / oh, out_row % oh);
            let top = &x[(plane * height + 2 * i) * width..][..width];
            let bottom = &x[(plane * height + 2 * i + 1) * width..][..width];
            for j in 0..ow {
                let candidates = [top[2 * j], top[2 * j + 1], bottom[2 * j], bottom[2 * j + 1]];
                let mut best = 0;
                for k in 1..4 {
                    // `>` keeps the first maximum; a NaN wins, so that it reaches the loss.
                    if candidates[k] > candidates[best] || candidates[k].is_nan() {
                        best = k;
                    }
                }
                y[j] = candidates[best];
                at[j] = best as u8;
            }
        });
    (y, at)
}

/// Gradient of [`forward`]: `dy` (`[planes, h/2, w/2]`) routed to the maxima, `[planes, h, w]`.
pub fn backward(
    dy: &[f32],
    positions: &[u8],
    planes: usize,
    height: usize,
    width: usize,
) -> Vec<f32> {
    let (oh, ow) = (height / 2, width / 2);
    assert_eq!(dy.len(), planes * oh * ow, "output gradient size");
    assert_eq!(positions.len(), dy.len(), "positions size");
    let mut dx = vec![0.0f32; planes * height * width];
    if dx.is_empty() {
        return dx;
    }
    // Each output row feeds two input rows.
    dx.par_chunks_mut(2 * width)
        .enumerate()
        .for_each(|(out_row, rows)| {
            let dy = &dy[out_row * ow..(out_row + 1) * ow];
            let at = &positions[out_row * ow..(out_row + 1) * ow];
            for j in 0..ow {
                let k = at[j] as usize;
                rows[(k / 2) * width + 2 * j + k % 2] = dy[j];
            }
        });
    dx
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_the_gradient_to_the_first_maximum() {
        // One 4x4 plane with a tie in the top-left window.
        let x = [
            1.0, 3.0, 0.0, -1.0, //
            3.0, 2.0, -2.0, -3.0, //
            5.0, 4.0, 7.0, 7.5, //
            6.0, 4.5, 7.5, 1.0,
        ];
        let (y, at) = forward(&x, 1, 4, 4);
        assert_eq!(y, vec![3.0, 0.0, 6.0, 7.5]);
        assert_eq!(at, vec![1, 0, 2, 1]);
        let dx = backward(&[10.0, 20.0, 30.0, 40.0], &at, 1, 4, 4);
        let mut expected = [0.0f32; 16];
        expected[1] = 10.0;
        expected[2] = 20.0;
        expected[12] = 30.0;
        expected[11] = 40.0;
        assert_eq!(dx, expected.to_vec());
    }

    #[test]
    fn several_planes_keep_their_own_maxima() {
        let (p, h, w) = (3, 4, 6);
        let x: Vec<f32> = (0..p * h * w).map(|i| (i * 29 % 53) as f32).collect();
        let (y, at) = forward(&x, p, h, w);
        for plane in 0..p {
            for i in 0..h / 2 {
                for j in 0..w / 2 {
                    let v = |a: usize, b: usize| x[(plane * h + 2 * i + a) * w + 2 * j + b];
                    let m = v(0, 0).max(v(0, 1)).max(v(1, 0)).max(v(1, 1));
                    let o = (plane * h / 2 + i) * w / 2 + j;
                    assert_eq!(y[o], m);
                    let k = at[o] as usize;
                    assert_eq!(v(k / 2, k % 2), m);
                }
            }
        }
    }
}
