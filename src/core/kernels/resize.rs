//! Full-resolution class masks from low-resolution logits, without the full-resolution logits.
//!
//! `predict` runs the model at the training size and resizes the logits back to the image's
//! own size before the arg-max. Done with tensors, a 1920x1080 prediction of 7 classes holds a
//! 58 MB float tensor (and burn's arg-max an 8-byte index per pixel); here each output row is
//! interpolated class by class into a scratch row and reduced at once, so memory is
//! `O(classes · w)` per thread besides the mask (and the confidence, when asked for).
//!
//! Interpolation is burn's `interpolate` bilinear with half-pixel centres (`align_corners =
//! false`): output `o` samples input coordinate `(o + 0.5) · in/out - 0.5`, clamped at 0, between
//! `floor` and `min(floor + 1, in - 1)`.

use rayon::prelude::*;

use super::cross_entropy::{exp_approx, ln_approx};

/// Where one output coordinate samples its input axis.
#[derive(Debug, Clone, Copy)]
struct Sample {
    low: usize,
    high: usize,
    weight: f32,
}

fn samples(input: usize, output: usize) -> Vec<Sample> {
    let ratio = input as f64 / output as f64;
    (0..output)
        .map(|o| {
            let at = (o as f64 + 0.5) * ratio - 0.5;
            let low = at.floor().max(0.0) as usize;
            Sample {
                low: low.min(input - 1),
                high: (low + 1).min(input - 1),
                weight: (at - low as f64).max(0.0) as f32,
            }
        })
        .collect()
}

/// What [`resized_argmax`] computes per pixel beyond the class.
#[derive(Debug, Clone, PartialEq)]
pub struct Certainty {
    /// The winning class's softmax probability, `round(255 p)`.
    pub confidence: Vec<u8>,
    /// Mean over pixels of the predictive entropy `-Σ_k p_k ln p_k`, in nats.
    pub mean_entropy: f64,
}

/// Per pixel of the `out_h x out_w` resize of `logits: [classes, h, w]`: the arg-max class
/// (of the logits, so that rounding in a softmax cannot change it) and, if asked for, its
/// [`Certainty`].
pub fn resized_argmax(
    logits: &[f32],
    [classes, height, width]: [usize; 3],
    [out_h, out_w]: [usize; 2],
    certainty: bool,
) -> (Vec<u8>, Option<Certainty>) {
    assert_eq!(logits.len(), classes * height * width, "logits size");
    assert!(classes <= 256, "class ids must fit in a byte");
    let mut ids = vec![0u8; out_h * out_w];
    let mut conf = certainty.then(|| vec![0u8; out_h * out_w]);
    if ids.is_empty() || classes == 0 || height * width == 0 {
        return (
            ids,
            conf.map(|confidence| Certainty {
                confidence,
                mean_entropy: 0.0,
            }),
        );
    }
    let rows = samples(height, out_h);
    let columns = samples(width, out_w);
    let mut outputs: Vec<(&mut [u8], Option<&mut [u8]>)> = match &mut conf {
        Some(conf) => ids
            .chunks_mut(out_w)
            .zip(conf.chunks_mut(out_w))
            .map(|(i, c)| (i, Some(c)))
            .collect(),
        None => ids.chunks_mut(out_w).map(|i| (i, None)).collect(),
    };
    let entropy: f64 = outputs
        .par_iter_mut()
        .enumerate()
        .map_init(
            || {
                (
                    vec![0.0f32; classes * width],
                    vec![0.0f32; out_w],
                    vec![0.0f32; out_w],
                    vec![0.0f32; out_w],
                )
            },
            |(blended, best, sum, weighted), (row, (ids, conf))| {
                let Sample { low, high, weight } = rows[row];
                // Vertical blend of every class's two source rows.
                for (k, out) in blended.chunks_exact_mut(width).enumerate() {
                    let plane = &logits[k * height * width..(k + 1) * height * width];
                    let (a, b) = (
                        &plane[low * width..][..width],
                        &plane[high * width..][..width],
                    );
                    for ((o, &a), &b) in out.iter_mut().zip(a).zip(b) {
                        *o = a + (b - a) * weight;
                    }
                }
                let sample = |class: &[f32], c: &Sample| {
                    class[c.low] + (class[c.high] - class[c.low]) * c.weight
                };
                // Horizontal sampling, keeping the running maximum per pixel.
                for (k, class) in blended.chunks_exact(width).enumerate() {
                    for (x, c) in columns.iter().enumerate() {
                        let v = sample(class, c);
                        if k == 0 || v > best[x] {
                            best[x] = v;
                            ids[x] = k as u8;
                        }
                    }
                }
                let Some(conf) = conf else { return 0.0 };
                // With e_k = exp(v_k - max) and S = Σ e_k: max softmax = 1/S, and the entropy
                // -Σ p_k ln p_k = ln S - Σ e_k (v_k - max) / S.
                sum.fill(0.0);
                weighted.fill(0.0);
                for class in blended.chunks_exact(width) {
                    for (x, c) in columns.iter().enumerate() {
                        let d = sample(class, c) - best[x];
                        let e = exp_approx(d);
                        sum[x] += e;
                        weighted[x] += e * d;
                    }
                }
                let mut entropy = 0.0f64;
                for ((c, &s), &w) in conf.iter_mut().zip(sum.iter()).zip(weighted.iter()) {
                    *c = (255.0 / s).round().clamp(0.0, 255.0) as u8;
                    entropy += (ln_approx(s) - w / s).max(0.0) as f64;
                }
                entropy
            },
        )
        .sum();
    let pixels = (out_h * out_w) as f64;
    (
        ids,
        conf.map(|confidence| Certainty {
            confidence,
            mean_entropy: entropy / pixels,
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_follow_half_pixel_centres() {
        // 2 -> 4: outputs sample -0.25 (clamped: row 0), 0.25, 0.75, 1.25 (row 1 only).
        let s = samples(2, 4);
        assert_eq!((s[0].low, s[0].high, s[0].weight), (0, 1, 0.0));
        assert_eq!((s[1].low, s[1].high, s[1].weight), (0, 1, 0.25));
        assert_eq!((s[2].low, s[2].high, s[2].weight), (0, 1, 0.75));
        assert_eq!((s[3].low, s[3].high), (1, 1));
        // Same size: every output samples exactly its own input.
        assert!(
            samples(5, 5)
                .iter()
                .enumerate()
                .all(|(i, s)| s.low == i && s.weight == 0.0)
        );
    }

    #[test]
    fn confidence_is_the_largest_softmax_probability() {
        // One pixel, two classes with logits 0 and ln 3: probabilities 1/4 and 3/4.
        let logits = [0.0, 3f32.ln()];
        let (ids, certainty) = resized_argmax(&logits, [2, 1, 1], [2, 3], true);
        assert_eq!(ids, vec![1; 6]);
        let certainty = certainty.unwrap();
        assert_eq!(certainty.confidence, vec![191; 6]); // round(0.75 · 255)
        let entropy = -(0.25f64 * 0.25f64.ln() + 0.75 * 0.75f64.ln());
        assert!((certainty.mean_entropy - entropy).abs() < 1e-6);
    }
}
