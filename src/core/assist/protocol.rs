//! The standard evaluation of click-to-segment: a simulated user clicks, the segmenter answers,
//! and the number of clicks needed to reach an IoU is counted (NoC). This is Xu et al.'s
//! protocol ("Deep Interactive Object Selection", 2016) as RITM implements it
//! (`isegm/inference/clicker.py`, `evaluation.py`, `utils.py` of
//! SamsungLabs/ritm_interactive_segmentation), so figures compare with the field's:
//!
//! - The error regions are the false negatives (object pixels outside the region) and the false
//!   positives (region pixels outside the object), ignored pixels in neither.
//! - Each is padded with one outside pixel on every side, so the image border counts as a
//!   boundary, and its exact Euclidean distance transform taken ([`super::distance`]);
//!   pixels already clicked score 0.
//! - The next click goes to the pixel of largest distance, in the false negatives if their
//!   largest distance is strictly larger (a positive click, adding the missed area), else in the
//!   false positives (a negative click, taking the wrong area away); the first such pixel in
//!   row-major order on a tie.
//! - The first click is the same rule against an empty region: the object's interior point
//!   farthest from its boundary.
//! - After each click the IoU is measured; the run stops at `stop_iou` or `max_clicks`. NoC@t
//!   is the first click count with IoU >= t; an object that never gets there counts as
//!   `max_clicks` in a mean (RITM's `_get_noc`).
//!
//! One change: when no unclicked error pixel is left, RITM would click pixel (0, 0); here the run
//! ends there (it cannot improve).
//!
//! The protocol only sees the segmenter through a closure from the clicks so far to a region, so
//! the same code measures any method (graph cut, the model alone, a person's replay).
//!
//! Cost per click: `O(pixels)` to find the errors and the IoU, plus the distance transforms of
//! each error region's bounding box (`O(box area)`).

use std::time::{Duration, Instant};

use super::Click;
use super::distance::squared_edt;
use crate::core::dataset::IGNORE;
use crate::core::mask::Mask;

/// RITM's figures: click until IoU 0.90, at most 20 clicks.
pub const STOP_IOU: f64 = 0.90;
pub const MAX_CLICKS: usize = 20;

/// What one object's run recorded, one entry per click in each list.
#[derive(Clone, Debug, PartialEq)]
pub struct ObjectRun {
    pub clicks: Vec<Click>,
    /// IoU of the region after each click.
    pub ious: Vec<f64>,
    /// How long the segmenter took after each click (the protocol's own work not included).
    pub times: Vec<Duration>,
}

/// Runs the protocol on one object. `target` holds 1 on the object, [`IGNORE`] where pixels
/// count for nothing (never clicked, outside the IoU) and anything else elsewhere; `segment` is
/// given all clicks so far and returns the region (1 inside, anything else outside) at the
/// target's size, or an error, which ends the run and is returned. A target without an object
/// pixel gets no click.
///
/// # Panics
/// When `segment` returns a region of another size than `target`.
pub fn run_object<E>(
    target: &Mask,
    max_clicks: usize,
    stop_iou: f64,
    mut segment: impl FnMut(&[Click]) -> Result<Mask, E>,
) -> Result<ObjectRun, E> {
    let mut run = ObjectRun {
        clicks: Vec::new(),
        ious: Vec::new(),
        times: Vec::new(),
    };
    let mut region = Mask::filled(target.width, target.height, 0);
    while run.clicks.len() < max_clicks {
        let Some(click) = next_click(target, &region, &run.clicks) else {
            break;
        };
        run.clicks.push(click);
        let start = Instant::now();
        region = segment(&run.clicks)?;
        run.times.push(start.elapsed());
        assert_eq!(
            (region.width, region.height),
            (target.width, target.height),
            "the segmenter's region is not the target's size"
        );
        let iou = iou(target, &region);
        run.ious.push(iou);
        if iou >= stop_iou {
            break;
        }
    }
    Ok(run)
}

/// The number of clicks after which the IoU first reached `threshold` (NoC@threshold), or `None`
/// when it never did (a failure; RITM counts it as the click limit in a mean).
pub fn noc(ious: &[f64], threshold: f64) -> Option<usize> {
    ious.iter().position(|&iou| iou >= threshold).map(|i| i + 1)
}

/// Intersection over union of `region` (1 inside) with the object of `target` (1 on it), over
/// the pixels `target` does not ignore. 1 when both are empty.
pub fn iou(target: &Mask, region: &Mask) -> f64 {
    let (mut both, mut either) = (0u64, 0u64);
    for (&t, &r) in target.data.iter().zip(&region.data) {
        if t == IGNORE {
            continue;
        }
        let (t, r) = (t == 1, r == 1);
        both += u64::from(t && r);
        either += u64::from(t || r);
    }
    if either == 0 {
        1.0
    } else {
        both as f64 / either as f64
    }
}

/// The simulated user's next click given the region shown now and the clicks made; `None` when
/// no unclicked pixel is wrong.
pub fn next_click(target: &Mask, region: &Mask, clicked: &[Click]) -> Option<Click> {
    let (w, h) = (target.width as usize, target.height as usize);
    assert_eq!((region.width, region.height), (target.width, target.height));
    let missed = |i: usize| target.data[i] == 1 && region.data[i] != 1;
    let taken = |i: usize| target.data[i] != 1 && target.data[i] != IGNORE && region.data[i] == 1;
    let is_clicked = |x: usize, y: usize| {
        clicked
            .iter()
            .any(|c| c.x as usize == x && c.y as usize == y)
    };
    let farthest = |error: &dyn Fn(usize) -> bool| -> Option<(u32, usize, usize)> {
        // Bounding box of the error pixels: outside it the (padded) mask is all outside, so its
        // transform is exact on the box padded by one pixel.
        let (mut x0, mut y0, mut x1, mut y1) = (usize::MAX, usize::MAX, 0, 0);
        for y in 0..h {
            for x in 0..w {
                if error(y * w + x) {
                    (x0, y0) = (x0.min(x), y0.min(y));
                    (x1, y1) = (x1.max(x), y1.max(y));
                }
            }
        }
        if x0 == usize::MAX {
            return None;
        }
        let (bw, bh) = (x1 - x0 + 3, y1 - y0 + 3);
        let mut inside = vec![false; bw * bh];
        for y in y0..=y1 {
            for x in x0..=x1 {
                inside[(y - y0 + 1) * bw + (x - x0 + 1)] = error(y * w + x);
            }
        }
        let d = squared_edt(&inside, bw, bh);
        let mut best: Option<(u32, usize, usize)> = None;
        for y in y0..=y1 {
            for x in x0..=x1 {
                let v = d[(y - y0 + 1) * bw + (x - x0 + 1)];
                if v > 0 && best.is_none_or(|(b, _, _)| v > b) && !is_clicked(x, y) {
                    best = Some((v, x, y));
                }
            }
        }
        best
    };
    let fn_best = farthest(&missed);
    let fp_best = farthest(&taken);
    let score = |b: Option<(u32, usize, usize)>| b.map_or(0, |(v, _, _)| v);
    let (positive, (_, x, y)) = if score(fn_best) > score(fp_best) {
        (true, fn_best?)
    } else {
        (false, fp_best?)
    };
    Some(Click {
        x: x as u32,
        y: y as u32,
        positive,
    })
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use super::*;

    /// A `w x h` target with 1 on the rectangle `[x0, x1) x [y0, y1)`.
    fn rect(w: u32, h: u32, [x0, y0, x1, y1]: [u32; 4]) -> Mask {
        let mut m = Mask::filled(w, h, 0);
        for y in y0..y1 {
            for x in x0..x1 {
                m.set(x, y, 1);
            }
        }
        m
    }

    #[test]
    fn the_first_click_is_at_the_centre_of_a_square() {
        let target = rect(40, 30, [10, 5, 21, 16]); // 11x11, centre (15, 10)
        let click = next_click(&target, &Mask::filled(40, 30, 0), &[]).unwrap();
        assert_eq!(
            click,
            Click {
                x: 15,
                y: 10,
                positive: true
            }
        );
    }

    #[test]
    fn the_image_border_counts_as_a_boundary() {
        // The object touches the left border: its farthest point is 3 pixels in, not at x = 0.
        let target = rect(30, 7, [0, 0, 7, 7]);
        let click = next_click(&target, &Mask::filled(30, 7, 0), &[]).unwrap();
        assert_eq!((click.x, click.y), (3, 3));
    }

    #[test]
    fn a_missed_area_gets_a_positive_click_and_a_taken_one_a_negative_click() {
        let target = rect(40, 20, [4, 4, 36, 16]);
        // The region misses the left third (x 4..14) of the object.
        let region = rect(40, 20, [14, 4, 36, 16]);
        let click = next_click(&target, &region, &[]).unwrap();
        assert!(click.positive);
        assert!((4..14).contains(&click.x), "{click:?}");
        // The region covers the object and a wide band above it.
        let region = rect(40, 20, [4, 0, 36, 16]);
        let click = next_click(&target, &region, &[]).unwrap();
        assert!(!click.positive);
        assert!(click.y < 4, "{click:?}");
        // Nothing wrong: no click.
        assert_eq!(next_click(&target, &target, &[]), None);
    }

    #[test]
    fn a_clicked_pixel_is_not_clicked_again() {
        let target = rect(9, 9, [2, 2, 7, 7]);
        let empty = Mask::filled(9, 9, 0);
        let first = next_click(&target, &empty, &[]).unwrap();
        let second = next_click(&target, &empty, &[first]).unwrap();
        assert_ne!((first.x, first.y), (second.x, second.y));
        assert!(second.positive);
    }

    #[test]
    fn ignored_pixels_are_neither_clicked_nor_counted() {
        let mut target = rect(20, 10, [0, 0, 10, 10]);
        for y in 0..10 {
            for x in 10..20 {
                target.set(x, y, IGNORE);
            }
        }
        // The region takes all of the ignored half: no error, IoU 1.
        let region = Mask::filled(20, 10, 1);
        assert_eq!(iou(&target, &region), 1.0);
        assert_eq!(next_click(&target, &region, &[]), None);
    }

    #[test]
    fn a_perfect_segmenter_needs_one_click() {
        let target = rect(64, 48, [10, 10, 40, 30]);
        let run = run_object(&target, MAX_CLICKS, STOP_IOU, |clicks| {
            assert_eq!(clicks.len(), 1);
            Ok::<_, Infallible>(target.clone())
        })
        .unwrap();
        assert_eq!(run.ious, [1.0]);
        assert_eq!(run.clicks.len(), 1);
        assert_eq!(run.times.len(), 1);
        assert_eq!(noc(&run.ious, 0.85), Some(1));
        assert_eq!(noc(&run.ious, 0.90), Some(1));
    }

    #[test]
    fn a_segmenter_that_returns_only_the_clicked_pixels_fails() {
        let target = rect(64, 48, [10, 10, 40, 30]);
        let run = run_object(&target, MAX_CLICKS, STOP_IOU, |clicks| {
            let mut region = Mask::filled(64, 48, 0);
            for c in clicks.iter().filter(|c| c.positive) {
                region.set(c.x, c.y, 1);
            }
            Ok::<_, Infallible>(region)
        })
        .unwrap();
        assert_eq!(run.clicks.len(), MAX_CLICKS);
        assert!(run.clicks.iter().all(|c| c.positive));
        // Each click adds one of the 600 pixels.
        assert!(
            (run.ious[19] - 20.0 / 600.0).abs() < 1e-12,
            "{:?}",
            run.ious
        );
        assert_eq!(noc(&run.ious, STOP_IOU), None);
    }

    #[test]
    fn the_run_stops_at_the_iou_and_ends_on_an_error() {
        // A segmenter that gets better by a tenth per click: 0.1 ... stops at 0.9.
        let target = rect(10, 10, [0, 0, 10, 10]);
        let run = run_object(&target, MAX_CLICKS, STOP_IOU, |clicks| {
            let rows = clicks.len() as u32;
            Ok::<_, Infallible>(rect(10, 10, [0, 0, 10, rows]))
        })
        .unwrap();
        assert_eq!(run.ious.len(), 9);
        assert_eq!(noc(&run.ious, 0.85), Some(9));
        assert_eq!(noc(&run.ious, 0.5), Some(5));
        let failed = run_object(&target, MAX_CLICKS, STOP_IOU, |_| Err("no"));
        assert_eq!(failed, Err("no"));
    }
}
