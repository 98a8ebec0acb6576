//! Road boundaries: the second head's target (a thin band where the road meets anything else,
//! derived from the class masks, so it costs no labelling) and boundary F1, the share of
//! boundary pixels that have a counterpart within a small distance.
//!
//! Masks are row-major class ids with 255 = unlabelled. Unlabelled pixels make no boundary:
//! the band needs a labelled pixel of the other side, and scores skip unlabelled positions.

use serde::{Deserialize, Serialize};

use crate::core::dataset::IGNORE;

/// Half-width of the target band in pixels: a pixel is on the band when a labelled pixel of the
/// other side (road vs not road) lies within this Chebyshev distance, so the band is two to
/// three pixels wide.
pub const BAND_RADIUS: usize = 1;

/// Distance (pixels, Euclidean) within which a boundary pixel counts as found.
pub const TOLERANCE: usize = 2;

/// The band target from class ids: 255 where `mask` is unlabelled, 1 on the band around the
/// edges of class `road` (see [`BAND_RADIUS`]), 0 elsewhere.
pub fn band(mask: &[u8], [width, height]: [usize; 2], road: u8, radius: usize) -> Vec<u8> {
    assert_eq!(mask.len(), width * height, "mask size");
    let side = |v: u8| (v != IGNORE).then_some(v == road);
    let mut out = vec![0u8; mask.len()];
    for y in 0..height {
        for x in 0..width {
            let i = y * width + x;
            let Some(here) = side(mask[i]) else {
                out[i] = IGNORE;
                continue;
            };
            let (y0, y1) = (y.saturating_sub(radius), (y + radius).min(height - 1));
            let (x0, x1) = (x.saturating_sub(radius), (x + radius).min(width - 1));
            let differs = (y0..=y1).any(|yy| {
                mask[yy * width + x0..=yy * width + x1]
                    .iter()
                    .any(|&v| side(v) == Some(!here))
            });
            out[i] = differs as u8;
        }
    }
    out
}

/// One-pixel road edges: road pixels with a labelled non-road 4-neighbour.
pub fn edges(mask: &[u8], [width, height]: [usize; 2], road: u8) -> Vec<bool> {
    assert_eq!(mask.len(), width * height, "mask size");
    let other = |v: u8| v != IGNORE && v != road;
    let mut out = vec![false; mask.len()];
    for y in 0..height {
        for x in 0..width {
            let i = y * width + x;
            if mask[i] != road {
                continue;
            }
            out[i] = (x > 0 && other(mask[i - 1]))
                || (x + 1 < width && other(mask[i + 1]))
                || (y > 0 && other(mask[i - width]))
                || (y + 1 < height && other(mask[i + width]));
        }
    }
    out
}

/// `map` grown by a disk of radius `radius`.
fn dilate(map: &[bool], [width, height]: [usize; 2], radius: usize) -> Vec<bool> {
    let r = radius as isize;
    let offsets: Vec<(isize, isize)> = (-r..=r)
        .flat_map(|dy| (-r..=r).map(move |dx| (dx, dy)))
        .filter(|(dx, dy)| dx * dx + dy * dy <= r * r)
        .collect();
    let mut out = vec![false; map.len()];
    for (i, _) in map.iter().enumerate().filter(|(_, on)| **on) {
        let (x, y) = ((i % width) as isize, (i / width) as isize);
        for &(dx, dy) in &offsets {
            let (xx, yy) = (x + dx, y + dy);
            if xx >= 0 && yy >= 0 && (xx as usize) < width && (yy as usize) < height {
                out[yy as usize * width + xx as usize] = true;
            }
        }
    }
    out
}

/// Boundary pixel counts, summed over images; F1 from the sums.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BoundaryScore {
    /// Predicted boundary pixels, and those within the tolerance of a true one.
    pub predicted: u64,
    pub predicted_matched: u64,
    /// True boundary pixels, and those within the tolerance of a predicted one.
    pub truth: u64,
    pub truth_matched: u64,
}

impl BoundaryScore {
    /// Compares two boundary maps with tolerance `tolerance`, counting only where `valid`.
    pub fn compare(
        predicted: &[bool],
        truth: &[bool],
        valid: impl Fn(usize) -> bool,
        size: [usize; 2],
        tolerance: usize,
    ) -> Self {
        let near_truth = dilate(truth, size, tolerance);
        let near_predicted = dilate(predicted, size, tolerance);
        let mut score = Self::default();
        for i in (0..predicted.len()).filter(|&i| valid(i)) {
            if predicted[i] {
                score.predicted += 1;
                score.predicted_matched += near_truth[i] as u64;
            }
            if truth[i] {
                score.truth += 1;
                score.truth_matched += near_predicted[i] as u64;
            }
        }
        score
    }

    /// The road class's edges in `predicted` against those in `truth` (class ids, 255 =
    /// unlabelled, where nothing is counted), within [`TOLERANCE`].
    pub fn of_masks(truth: &[u8], predicted: &[u8], size: [usize; 2], road: u8) -> Self {
        Self::compare(
            &edges(predicted, size, road),
            &edges(truth, size, road),
            |i| truth[i] != IGNORE,
            size,
            TOLERANCE,
        )
    }

    /// A band map (`predicted`: 1 = on the band) against the band target (255 not counted),
    /// within [`TOLERANCE`].
    pub fn of_bands(truth: &[u8], predicted: &[u8], size: [usize; 2]) -> Self {
        let on = |m: &[u8]| m.iter().map(|&v| v == 1).collect::<Vec<_>>();
        Self::compare(
            &on(predicted),
            &on(truth),
            |i| truth[i] != IGNORE,
            size,
            TOLERANCE,
        )
    }

    pub fn add(&mut self, other: &Self) {
        self.predicted += other.predicted;
        self.predicted_matched += other.predicted_matched;
        self.truth += other.truth;
        self.truth_matched += other.truth_matched;
    }

    /// Harmonic mean of precision and recall; `None` when neither side has a boundary.
    pub fn f1(&self) -> Option<f64> {
        if self.predicted == 0 && self.truth == 0 {
            return None;
        }
        let precision = self.predicted_matched as f64 / self.predicted.max(1) as f64;
        let recall = self.truth_matched as f64 / self.truth.max(1) as f64;
        Some(match precision + recall {
            0.0 => 0.0,
            sum => 2.0 * precision * recall / sum,
        })
    }
}

/// The id of the class named "road" (any case), which the boundary is drawn around.
pub fn road_class<'a>(names: impl IntoIterator<Item = &'a str>) -> Option<u8> {
    names
        .into_iter()
        .position(|n| n.eq_ignore_ascii_case("road"))
        .map(|i| i as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Columns 0..split are road (0), the rest class 1; `ignore` columns unlabelled.
    fn split_mask(width: usize, height: usize, split: usize, ignore: &[usize]) -> Vec<u8> {
        (0..width * height)
            .map(|i| {
                let x = i % width;
                if ignore.contains(&x) {
                    IGNORE
                } else {
                    (x >= split) as u8
                }
            })
            .collect()
    }

    #[test]
    fn the_band_follows_the_road_edge_and_skips_unlabelled_pixels() {
        let mask = split_mask(8, 2, 4, &[7]);
        let first = band(&mask, [8, 2], 0, 1);
        assert_eq!(&first[..8], &[0, 0, 0, 1, 1, 0, 0, IGNORE]);
        // Next to unlabelled pixels only: no band.
        let mask = split_mask(6, 1, 3, &[2, 3]);
        assert_eq!(band(&mask, [6, 1], 0, 1), vec![0, 0, IGNORE, IGNORE, 0, 0]);
    }

    #[test]
    fn edges_within_the_tolerance_count_as_found() {
        let size = [16, 4];
        let truth = split_mask(16, 4, 8, &[]);
        let exact = BoundaryScore::of_masks(&truth, &truth, size, 0);
        assert_eq!(exact.f1(), Some(1.0));
        assert_eq!(exact.truth, 4, "one edge pixel per row");
        // Two pixels off: still found; three off: missed on both sides.
        let near = split_mask(16, 4, 10, &[]);
        assert_eq!(
            BoundaryScore::of_masks(&truth, &near, size, 0).f1(),
            Some(1.0)
        );
        let far = split_mask(16, 4, 11, &[]);
        assert_eq!(
            BoundaryScore::of_masks(&truth, &far, size, 0).f1(),
            Some(0.0)
        );
        // No road anywhere: undefined rather than perfect.
        let none = vec![1u8; 64];
        assert_eq!(BoundaryScore::of_masks(&none, &none, size, 0).f1(), None);
        // Half of the predicted edge pixels are wrong: precision 0.5, recall 1.
        let mut score = exact;
        score.add(&BoundaryScore {
            predicted: 4,
            ..Default::default()
        });
        let f1 = score.f1().unwrap();
        assert!((f1 - 2.0 * 0.5 / 1.5).abs() < 1e-12, "{f1}");
    }

    #[test]
    fn the_road_class_is_found_by_name() {
        assert_eq!(road_class(["sky", "Road"]), Some(1));
        assert_eq!(road_class(["sky"]), None);
    }
}
