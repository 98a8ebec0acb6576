//! Model-assisted labelling: copy the model's prediction into the mask, where the user says and
//! where the model is confident enough. Pixels whose confidence is below the threshold keep
//! their label, so a threshold of 0 accepts everything and 255 only certain pixels.
//!
//! Like the other [`ops`](super::ops), each function returns the rectangle it changed, and
//! [`accept_bounds`] gives the rectangle before the change, for the undo history.

use super::ops::{self, Point};
use super::rect::DirtyRect;
use crate::core::dataset::IGNORE;
use crate::core::mask::Mask;

/// The model's answer for the image being labelled.
#[derive(Clone, Copy, Debug)]
pub struct Suggestion<'a> {
    /// Predicted class ids, the mask's size.
    pub ids: &'a Mask,
    /// Winning-class probability per pixel, `round(p * 255)`.
    pub confidence: &'a [u8],
    /// Pixels below this confidence are left alone.
    pub threshold: u8,
}

/// Where the prediction is accepted.
#[derive(Clone, Debug, PartialEq)]
pub enum AcceptScope {
    /// Every pixel.
    Whole,
    /// Only pixels still unlabelled (255): the user's own labels are never overwritten.
    Unlabelled,
    /// Under a brush stroke from `a` to `b` (a dab when equal).
    Brush { a: Point, b: Point, radius: f32 },
    /// Inside a closed polygon (even-odd, pixel centres, as the polygon tool).
    Polygon(Vec<Point>),
    /// The 4-connected region of the *predicted* class under this pixel.
    Component { x: u32, y: u32 },
}

/// The rectangle `accept` may change, before changing it; `None` when it cannot change
/// anything. A component's extent is unknown before it is traced: the whole mask.
pub fn accept_bounds(mask: &Mask, scope: &AcceptScope) -> Option<DirtyRect> {
    let all = DirtyRect::clipped(
        0,
        0,
        mask.width as i64,
        mask.height as i64,
        mask.width,
        mask.height,
    );
    match scope {
        AcceptScope::Whole | AcceptScope::Unlabelled | AcceptScope::Component { .. } => all,
        AcceptScope::Brush { a, b, radius } => ops::stroke_bounds(mask, *a, *b, *radius),
        AcceptScope::Polygon(points) => ops::polygon_bounds(mask, points),
    }
}

/// Writes the suggestion into `mask` within `scope`; returns the rectangle changed.
///
/// # Panics
/// If the suggestion's size differs from the mask's (the caller pairs a prediction with the
/// image it was made for).
pub fn accept(
    mask: &mut Mask,
    suggestion: Suggestion<'_>,
    scope: &AcceptScope,
) -> Option<DirtyRect> {
    let Suggestion {
        ids,
        confidence,
        threshold,
    } = suggestion;
    assert_eq!(
        (ids.width, ids.height, confidence.len()),
        (mask.width, mask.height, mask.data.len()),
        "a prediction for another image"
    );
    let rect = accept_bounds(mask, scope)?;
    // Which pixels of `rect` the scope covers, as a mask of `rect`'s size (1 = inside).
    let region: Option<Mask> = match scope {
        AcceptScope::Whole | AcceptScope::Unlabelled => None,
        AcceptScope::Brush { a, b, radius } => {
            let mut local = Mask::filled(rect.width, rect.height, 0);
            let shift = |p: &Point| [p[0] - rect.x as f32, p[1] - rect.y as f32];
            ops::stroke(&mut local, shift(a), shift(b), *radius, 1);
            Some(local)
        }
        AcceptScope::Polygon(points) => {
            let mut local = Mask::filled(rect.width, rect.height, 0);
            let shifted: Vec<Point> = points
                .iter()
                .map(|p| [p[0] - rect.x as f32, p[1] - rect.y as f32])
                .collect();
            ops::polygon_fill(&mut local, &shifted, 1);
            Some(local)
        }
        AcceptScope::Component { x, y } => {
            if *x >= ids.width || *y >= ids.height {
                return None;
            }
            // Trace the component on a copy of the prediction: flood fill marks it with a
            // value no class uses (the ids are below 255 and IGNORE is never predicted).
            let mut traced = ids.clone();
            let marker = IGNORE;
            if traced.get(*x, *y) == marker {
                return None;
            }
            ops::flood_fill(&mut traced, *x, *y, marker)?;
            traced
                .data
                .iter_mut()
                .for_each(|v| *v = (*v == marker) as u8);
            Some(traced)
        }
    };
    let width = mask.width as usize;
    let mut changed: Option<DirtyRect> = None;
    for y in rect.y..rect.bottom() {
        let (mut first, mut last) = (u32::MAX, 0u32);
        for x in rect.x..rect.right() {
            let i = y as usize * width + x as usize;
            let inside = match (&region, scope) {
                (Some(local), AcceptScope::Component { .. }) => local.data[i] == 1,
                (Some(local), _) => local.get(x - rect.x, y - rect.y) == 1,
                (None, AcceptScope::Unlabelled) => mask.data[i] == IGNORE,
                (None, _) => true,
            };
            let value = ids.data[i];
            if inside && confidence[i] >= threshold && mask.data[i] != value {
                mask.data[i] = value;
                first = first.min(x);
                last = last.max(x);
            }
        }
        changed = DirtyRect::with_row(changed, y, first, last);
    }
    changed
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 6x4 prediction: class 1 on the left half, class 2 on the right, except a class-1
    /// island at (5, 0); confidence rises from left to right (0, 50, 100, ..., 250).
    fn suggestion_parts() -> (Mask, Vec<u8>) {
        let mut ids = Mask::filled(6, 4, 1);
        for y in 0..4 {
            for x in 3..6 {
                ids.set(x, y, 2);
            }
        }
        ids.set(5, 0, 1);
        let confidence = (0..24).map(|i| (i % 6) as u8 * 50).collect();
        (ids, confidence)
    }

    fn run(mask: &mut Mask, threshold: u8, scope: AcceptScope) -> Option<DirtyRect> {
        let (ids, confidence) = suggestion_parts();
        accept(
            mask,
            Suggestion {
                ids: &ids,
                confidence: &confidence,
                threshold,
            },
            &scope,
        )
    }

    fn rows(mask: &Mask) -> Vec<Vec<u8>> {
        mask.data
            .chunks(mask.width as usize)
            .map(<[u8]>::to_vec)
            .collect()
    }

    const U: u8 = IGNORE;

    #[test]
    fn accept_by_threshold_leaves_unsure_pixels_alone() {
        let mut mask = Mask::unlabelled(6, 4);
        // Confidence >= 100 is columns 2..6.
        let changed = run(&mut mask, 100, AcceptScope::Whole).unwrap();
        assert_eq!(rows(&mask)[1], [U, U, 1, 2, 2, 2]);
        assert_eq!(rows(&mask)[0], [U, U, 1, 2, 2, 1]);
        assert_eq!((changed.x, changed.width, changed.height), (2, 4, 4));
        // Threshold 0 takes everything; nothing left to change the second time.
        run(&mut mask, 0, AcceptScope::Whole).unwrap();
        assert_eq!(rows(&mask)[3], [1, 1, 1, 2, 2, 2]);
        assert_eq!(run(&mut mask, 0, AcceptScope::Whole), None);
        // 255 is above every confidence here: nothing is certain enough.
        let mut untouched = Mask::unlabelled(6, 4);
        assert_eq!(run(&mut untouched, 255, AcceptScope::Whole), None);
    }

    #[test]
    fn unlabelled_only_keeps_the_users_labels() {
        let mut mask = Mask::unlabelled(6, 4);
        mask.set(0, 0, 3);
        mask.set(4, 2, 0);
        run(&mut mask, 0, AcceptScope::Unlabelled).unwrap();
        assert_eq!(rows(&mask)[0], [3, 1, 1, 2, 2, 1]);
        assert_eq!(rows(&mask)[2], [1, 1, 1, 2, 0, 2]);
    }

    #[test]
    fn brush_and_polygon_accept_only_inside() {
        let mut mask = Mask::unlabelled(6, 4);
        // A dab of radius 0.5 at pixel (1, 1)'s centre covers that pixel only.
        run(
            &mut mask,
            0,
            AcceptScope::Brush {
                a: [1.5, 1.5],
                b: [1.5, 1.5],
                radius: 0.5,
            },
        )
        .unwrap();
        assert_eq!(mask.data.iter().filter(|&&v| v != U).count(), 1);
        assert_eq!(mask.get(1, 1), 1);

        // The polygon covers columns 3..5 of rows 2..4.
        let mut mask = Mask::unlabelled(6, 4);
        let square = vec![[3.0, 2.0], [5.0, 2.0], [5.0, 4.0], [3.0, 4.0]];
        let changed = run(&mut mask, 0, AcceptScope::Polygon(square)).unwrap();
        assert_eq!(rows(&mask)[2], [U, U, U, 2, 2, U]);
        assert_eq!(rows(&mask)[3], [U, U, U, 2, 2, U]);
        assert_eq!(rows(&mask)[1], [U; 6]);
        assert_eq!(
            (changed.x, changed.y, changed.width, changed.height),
            (3, 2, 2, 2)
        );
    }

    #[test]
    fn a_component_is_the_predicted_region_under_the_cursor() {
        let mut mask = Mask::unlabelled(6, 4);
        // The class-1 region on the left, not the class-1 island at (5, 0).
        run(&mut mask, 0, AcceptScope::Component { x: 0, y: 3 }).unwrap();
        assert_eq!(rows(&mask)[0], [1, 1, 1, U, U, U]);
        assert_eq!(rows(&mask)[3], [1, 1, 1, U, U, U]);
        // The island alone.
        let mut mask = Mask::unlabelled(6, 4);
        let changed = run(&mut mask, 0, AcceptScope::Component { x: 5, y: 0 }).unwrap();
        assert_eq!(mask.data.iter().filter(|&&v| v != U).count(), 1);
        assert_eq!((changed.x, changed.y), (5, 0));
        // With a threshold the component's unsure pixels stay: class 2 at >= 200 is column 4+.
        let mut mask = Mask::unlabelled(6, 4);
        run(&mut mask, 200, AcceptScope::Component { x: 4, y: 1 }).unwrap();
        assert_eq!(rows(&mask)[1], [U, U, U, U, 2, 2]);
        assert_eq!(rows(&mask)[0], [U, U, U, U, 2, U]);
        // Outside the image: nothing.
        assert_eq!(
            run(&mut mask, 0, AcceptScope::Component { x: 9, y: 0 }),
            None
        );
    }
}
