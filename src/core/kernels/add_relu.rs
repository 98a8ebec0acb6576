//! The end of a residual block when there is no batch norm to fuse it into (inference with the
//! norms folded, or frozen norms): `y = max(0, a + b)` on `f32`, any shape, and its gradient.
//!
//! ```text
//! y  = max(0, a + b)
//! da = db = dy · [y > 0]
//! ```

use std::mem::MaybeUninit;

use rayon::prelude::*;

use super::macros::multiversion;

/// Elements per parallel task.
const CHUNK: usize = 1 << 14;

/// `max(0, a + b)` (NaNs kept).
pub fn forward(a: &[f32], b: &[f32]) -> Vec<f32> {
    assert_eq!(a.len(), b.len(), "operand sizes");
    let mut y = Vec::with_capacity(a.len());
    y.spare_capacity_mut()
        .par_chunks_mut(CHUNK)
        .zip(a.par_chunks(CHUNK).zip(b.par_chunks(CHUNK)))
        .for_each(|(out, (a, b))| add_relu(a, b, out));
    // SAFETY: every chunk of y was written above.
    unsafe { y.set_len(a.len()) };
    y
}

/// `dy · [y > 0]`: the gradient of both operands.
pub fn backward(dy: &[f32], y: &[f32]) -> Vec<f32> {
    assert_eq!(dy.len(), y.len(), "gradient size");
    let mut dx = Vec::with_capacity(y.len());
    dx.spare_capacity_mut()
        .par_chunks_mut(CHUNK)
        .zip(dy.par_chunks(CHUNK).zip(y.par_chunks(CHUNK)))
        .for_each(|(out, (dy, y))| mask(dy, y, out));
    // SAFETY: every chunk of dx was written above.
    unsafe { dx.set_len(y.len()) };
    dx
}

multiversion! {
    fn add_relu(a: &[f32], b: &[f32], out: &mut [MaybeUninit<f32>]) {
        for ((o, &a), &b) in out.iter_mut().zip(a).zip(b) {
            let z = a + b;
            *o = MaybeUninit::new(if z < 0.0 { 0.0 } else { z });
        }
    }
}

multiversion! {
    fn mask(dy: &[f32], y: &[f32], out: &mut [MaybeUninit<f32>]) {
        for ((o, &g), &y) in out.iter_mut().zip(dy).zip(y) {
            *o = MaybeUninit::new(if y > 0.0 { g } else { 0.0 });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forward_and_gradient_follow_the_definition() {
        let n = 3 * CHUNK + 5;
        let a: Vec<f32> = (0..n)
            .map(|i| ((i * 13 % 29) as f32 - 14.0) / 3.0)
            .collect();
        let b: Vec<f32> = (0..n).map(|i| ((i * 7 % 23) as f32 - 11.0) / 5.0).collect();
        let mut with_nan = a.clone();
        with_nan[CHUNK + 1] = f32::NAN;
        let y = forward(&with_nan, &b);
        assert!(y[CHUNK + 1].is_nan(), "a NaN reaches the output");
        let y = forward(&a, &b);
        let dy: Vec<f32> = (0..n).map(|i| i as f32).collect();
        let dx = backward(&dy, &y);
        for i in 0..n {
            assert_eq!(y[i], (a[i] + b[i]).max(0.0));
            assert_eq!(dx[i], if a[i] + b[i] > 0.0 { dy[i] } else { 0.0 });
        }
    }
}
