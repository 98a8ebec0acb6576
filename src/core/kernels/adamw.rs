//! One AdamW update of a parameter in a single pass over its values, its gradient and its two
//! moments, where burn's AdamW makes about fifteen whole-tensor passes (each a fresh tensor):
//! for a ResNet's millions of weights the optimiser step is memory traffic, not arithmetic.
//!
//! The same arithmetic as burn's `AdamW` (Loshchilov and Hutter, 2019), operation by
//! operation in `f32`, so the two give the same values:
//!
//! ```text
//! m' = m·β1 + g·(1 - β1)            v' = v·β2 + g²·(1 - β2)
//! Δ  = (m' / c1) / (sqrt(v' / c2) + ε)        c1 = 1 - β1^t,  c2 = 1 - β2^t
//! p' = p·(1 - lr·λ) - Δ·lr                    (p unscaled when lr·λ = 0)
//! ```

use std::mem::MaybeUninit;

use rayon::prelude::*;

use super::macros::multiversion;

/// Elements per parallel task.
const CHUNK: usize = 1 << 14;

/// The step's scalars, as burn's AdamW rounds them to `f32`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Hyper {
    pub beta1: f32,
    pub beta2: f32,
    pub epsilon: f32,
    /// The learning rate.
    pub lr: f32,
    /// `1 - lr·λ`, or `None` when `lr·λ` is 0.
    pub decay: Option<f32>,
    /// `1 - β1^t`.
    pub correction1: f32,
    /// `1 - β2^t`.
    pub correction2: f32,
}

impl Hyper {
    /// The scalars of step `time` (1 for the first) with learning rate `lr` and decoupled
    /// weight decay `weight_decay`.
    pub fn new([beta1, beta2, epsilon]: [f32; 3], weight_decay: f32, lr: f64, time: usize) -> Self {
        let decay_rate = lr * weight_decay as f64;
        let time = time.min(i32::MAX as usize) as i32;
        Self {
            beta1,
            beta2,
            epsilon,
            lr: lr as f32,
            decay: (decay_rate != 0.0).then_some((1.0 - decay_rate) as f32),
            correction1: 1.0 - beta1.powi(time),
            correction2: 1.0 - beta2.powi(time),
        }
    }
}

/// The new parameter and moments from the parameter `p`, its gradient `g` and the moments
/// before the step (zeros before the first step give burn's first-step moments exactly).
pub fn step(
    p: &[f32],
    g: &[f32],
    m: &[f32],
    v: &[f32],
    hyper: Hyper,
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let n = p.len();
    assert!(
        g.len() == n && m.len() == n && v.len() == n,
        "parameter, gradient and moments sizes"
    );
    let (mut p2, mut m2, mut v2) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    p2.spare_capacity_mut()
        .par_chunks_mut(CHUNK)
        .zip(m2.spare_capacity_mut().par_chunks_mut(CHUNK))
        .zip(v2.spare_capacity_mut().par_chunks_mut(CHUNK))
        .enumerate()
        .for_each(|(i, ((p_out, m_out), v_out))| {
            let range = i * CHUNK..(i * CHUNK + p_out.len());
            update(
                &p[range.clone()],
                &g[range.clone()],
                &m[range.clone()],
                &v[range],
                hyper,
                [p_out, m_out, v_out],
            );
        });
    // SAFETY: every chunk of the three outputs was written above.
    unsafe {
        p2.set_len(n);
        m2.set_len(n);
        v2.set_len(n);
    }
    (p2, m2, v2)
}

multiversion! {
    fn update(
        p: &[f32],
        g: &[f32],
        m: &[f32],
        v: &[f32],
        hyper: Hyper,
        out: [&mut [MaybeUninit<f32>]; 3],
    ) {
        let Hyper { beta1, beta2, epsilon, lr, decay, correction1, correction2 } = hyper;
        let (f1, f2) = (1.0 - beta1, 1.0 - beta2);
        let [p_out, m_out, v_out] = out;
        for i in 0..p.len() {
            let g = g[i];
            let m = m[i] * beta1 + g * f1;
            let v = v[i] * beta2 + g * g * f2;
            let delta = (m / correction1) / ((v / correction2).sqrt() + epsilon);
            let decayed = match decay {
                Some(k) => p[i] * k,
                None => p[i],
            };
            p_out[i] = MaybeUninit::new(decayed - delta * lr);
            m_out[i] = MaybeUninit::new(m);
            v_out[i] = MaybeUninit::new(v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_steps_follow_the_definition_in_f64() {
        // Odd length across several chunks; gradients of both signs and zero.
        let n = 2 * CHUNK + 7;
        let p0: Vec<f32> = (0..n).map(|i| ((i * 7 % 23) as f32 - 11.0) / 5.0).collect();
        let g: Vec<f32> = (0..n).map(|i| ((i * 13 % 17) as f32 - 8.0) / 3.0).collect();
        let zeros = vec![0.0; n];
        let betas = [0.9, 0.999, 1e-8];
        let (lr, wd) = (1e-2, 0.05);
        let first = Hyper::new(betas, wd, lr, 1);
        let (p1, m1, v1) = step(&p0, &g, &zeros, &zeros, first);
        let second = Hyper::new(betas, wd, lr, 2);
        let (p2, m2, v2) = step(&p1, &g, &m1, &v1, second);
        for i in 0..n {
            let (g, mut p, mut m, mut v) = (g[i] as f64, p0[i] as f64, 0.0f64, 0.0f64);
            for t in 1..=2 {
                m = 0.9 * m + 0.1 * g;
                v = 0.999 * v + 0.001 * g * g;
                let (mc, vc) = (m / (1.0 - 0.9f64.powi(t)), v / (1.0 - 0.999f64.powi(t)));
                p = p * (1.0 - lr * wd as f64) - lr * mc / (vc.sqrt() + 1e-8);
            }
            assert!((p2[i] as f64 - p).abs() < 1e-5, "{i}: {} vs {p}", p2[i]);
            assert!((m2[i] as f64 - m).abs() < 1e-5, "{i}");
            assert!((v2[i] as f64 - v).abs() < 1e-5, "{i}");
        }
        // No decay: the parameter moves by the update alone.
        let plain = Hyper::new(betas, 0.0, lr, 1);
        assert_eq!(plain.decay, None);
        let (p, _, _) = step(&[1.0], &[0.0], &[0.0], &[0.0], plain);
        assert_eq!(p, [1.0]);
    }
}
