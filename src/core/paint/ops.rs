//! The painting operations. Each writes class ids into a [`Mask`] and returns the rectangle it
//! may have changed (`None` when it touched nothing), so callers can record undo tiles and
//! upload only that part of the texture. [`bounds`] functions give the rectangle *before*
//! painting, for the undo history to save what is about to change.

use super::rect::DirtyRect;
use crate::core::mask::Mask;

/// Pixel centres are at `x + 0.5`; positions are in image pixels (floats: the cursor is
/// sub-pixel when zoomed in).
pub type Point = [f32; 2];

/// Bounding rectangle of a round brush of `radius` swept from `a` to `b`.
pub fn stroke_bounds(mask: &Mask, a: Point, b: Point, radius: f32) -> Option<DirtyRect> {
    let r = radius.max(0.5);
    DirtyRect::clipped(
        (a[0].min(b[0]) - r).floor() as i64,
        (a[1].min(b[1]) - r).floor() as i64,
        (a[0].max(b[0]) + r).ceil() as i64 + 1,
        (a[1].max(b[1]) + r).ceil() as i64 + 1,
        mask.width,
        mask.height,
    )
}

/// Paints `value` over every pixel whose centre lies within `radius` of the segment `a`-`b`
/// (a capsule: one pass, no gaps between dabs however fast the cursor moves). A single dab is
/// `a == b`. The eraser is this with `value = IGNORE`.
pub fn stroke(mask: &mut Mask, a: Point, b: Point, radius: f32, value: u8) -> Option<DirtyRect> {
    let rect = stroke_bounds(mask, a, b, radius)?;
    // A radius below half a pixel would miss the pixel under the cursor.
    let r = radius.max(0.5);
    let r2 = r * r;
    let (dx, dy) = (b[0] - a[0], b[1] - a[1]);
    let len2 = dx * dx + dy * dy;
    let width = mask.width as usize;
    let mut changed: Option<DirtyRect> = None;
    for y in rect.y..rect.bottom() {
        let py = y as f32 + 0.5;
        // Solve for the x-range of this row inside the capsule would be faster still, but the
        // per-pixel test over the bounding box is branch-light and keeps exact round caps.
        let row = &mut mask.data[y as usize * width..][..width];
        let (mut first, mut last) = (u32::MAX, 0u32);
        for x in rect.x..rect.right() {
            let px = x as f32 + 0.5;
            let t = if len2 > 0.0 {
                (((px - a[0]) * dx + (py - a[1]) * dy) / len2).clamp(0.0, 1.0)
            } else {
                0.0
            };
            let (ex, ey) = (px - (a[0] + t * dx), py - (a[1] + t * dy));
            if ex * ex + ey * ey <= r2 && row[x as usize] != value {
                row[x as usize] = value;
                first = first.min(x);
                last = last.max(x);
            }
        }
        changed = DirtyRect::with_row(changed, y, first, last);
    }
    changed
}

/// Fills the 4-connected region of pixels equal to the one at `(x, y)` with `value`
/// (scanline fill: memory proportional to the region's outline, not its area). Returns the
/// filled region's bounds.
pub fn flood_fill(mask: &mut Mask, x: u32, y: u32, value: u8) -> Option<DirtyRect> {
    if x >= mask.width || y >= mask.height {
        return None;
    }
    let (w, h) = (mask.width as usize, mask.height as usize);
    let target = mask.data[y as usize * w + x as usize];
    if target == value {
        return None;
    }
    let mut changed: Option<DirtyRect> = None;
    let mut stack = vec![(x as usize, y as usize)];
    while let Some((sx, sy)) = stack.pop() {
        let row = sy * w;
        if mask.data[row + sx] != target {
            continue;
        }
        // Extend left and right along the row.
        let mut left = sx;
        while left > 0 && mask.data[row + left - 1] == target {
            left -= 1;
        }
        let mut right = sx;
        while right + 1 < w && mask.data[row + right + 1] == target {
            right += 1;
        }
        mask.data[row + left..=row + right].fill(value);
        let span = DirtyRect {
            x: left as u32,
            y: sy as u32,
            width: (right - left + 1) as u32,
            height: 1,
        };
        changed = DirtyRect::merge(changed, Some(span));
        // Seed one point per run of target pixels in the rows above and below.
        for ny in [sy.wrapping_sub(1), sy + 1] {
            if ny >= h {
                continue;
            }
            let nrow = ny * w;
            let mut nx = left;
            while nx <= right {
                if mask.data[nrow + nx] == target {
                    stack.push((nx, ny));
                    while nx <= right && mask.data[nrow + nx] == target {
                        nx += 1;
                    }
                } else {
                    nx += 1;
                }
            }
        }
    }
    changed
}

/// Bounding rectangle of a polygon.
pub fn polygon_bounds(mask: &Mask, points: &[Point]) -> Option<DirtyRect> {
    if points.len() < 3 {
        return None;
    }
    let (mut x0, mut y0, mut x1, mut y1) = (f32::MAX, f32::MAX, f32::MIN, f32::MIN);
    for p in points {
        x0 = x0.min(p[0]);
        y0 = y0.min(p[1]);
        x1 = x1.max(p[0]);
        y1 = y1.max(p[1]);
    }
    DirtyRect::clipped(
        x0.floor() as i64,
        y0.floor() as i64,
        x1.ceil() as i64 + 1,
        y1.ceil() as i64 + 1,
        mask.width,
        mask.height,
    )
}

/// Fills the closed polygon `points` (even-odd rule, pixel centres) with `value`.
pub fn polygon_fill(mask: &mut Mask, points: &[Point], value: u8) -> Option<DirtyRect> {
    let rect = polygon_bounds(mask, points)?;
    let width = mask.width as usize;
    let mut changed: Option<DirtyRect> = None;
    let mut crossings = Vec::new();
    for y in rect.y..rect.bottom() {
        let py = y as f32 + 0.5;
        crossings.clear();
        for (i, a) in points.iter().enumerate() {
            let b = points[(i + 1) % points.len()];
            // Half-open rule: an edge counts when the row is in [min y, max y).
            if (a[1] <= py) != (b[1] <= py) {
                crossings.push(a[0] + (py - a[1]) / (b[1] - a[1]) * (b[0] - a[0]));
            }
        }
        crossings.sort_by(f32::total_cmp);
        for pair in crossings.chunks_exact(2) {
            // Pixels whose centre lies in [x_in, x_out).
            let start = (pair[0] - 0.5).ceil().max(rect.x as f32) as u32;
            let end = ((pair[1] - 0.5).ceil().min(rect.right() as f32)) as u32;
            if end > start {
                mask.data[y as usize * width + start as usize..y as usize * width + end as usize]
                    .fill(value);
                let span = DirtyRect {
                    x: start,
                    y,
                    width: end - start,
                    height: 1,
                };
                changed = DirtyRect::merge(changed, Some(span));
            }
        }
    }
    changed
}

/// Bounding rectangle of a region's inside (its nonzero pixels); `None` when it is empty.
pub fn region_bounds(region: &Mask) -> Option<DirtyRect> {
    let width = region.width.max(1) as usize;
    let (mut x0, mut y0, mut x1, mut y1) = (u32::MAX, u32::MAX, 0, 0);
    for (y, row) in region.data.chunks_exact(width).enumerate() {
        let Some(first) = row.iter().position(|&v| v != 0) else {
            continue;
        };
        let last = row.iter().rposition(|&v| v != 0).unwrap_or(first);
        x0 = x0.min(first as u32);
        x1 = x1.max(last as u32 + 1);
        y0 = y0.min(y as u32);
        y1 = y as u32 + 1;
    }
    DirtyRect::clipped(
        x0 as i64,
        y0 as i64,
        x1 as i64,
        y1 as i64,
        region.width,
        region.height,
    )
}

/// Writes `value` wherever `region` is nonzero (a region from an assist: 1 inside, 0 outside,
/// the mask's size). Returns the rectangle changed.
///
/// # Panics
/// If `region` is not the mask's size (the caller pairs a region with its image).
pub fn paint_region(mask: &mut Mask, region: &Mask, value: u8) -> Option<DirtyRect> {
    assert_eq!(
        (region.width, region.height),
        (mask.width, mask.height),
        "a region of another image"
    );
    let rect = region_bounds(region)?;
    let width = mask.width as usize;
    let mut changed: Option<DirtyRect> = None;
    for y in rect.y..rect.bottom() {
        let start = y as usize * width;
        let (mut first, mut last) = (u32::MAX, 0u32);
        for x in rect.x..rect.right() {
            let i = start + x as usize;
            if region.data[i] != 0 && mask.data[i] != value {
                mask.data[i] = value;
                first = first.min(x);
                last = last.max(x);
            }
        }
        changed = DirtyRect::with_row(changed, y, first, last);
    }
    changed
}

/// Makes `mask` a copy of `source` (of the same size); returns the rectangle changed.
///
/// # Panics
/// If the sizes differ.
pub fn copy_mask(mask: &mut Mask, source: &Mask) -> Option<DirtyRect> {
    assert_eq!(
        (source.width, source.height),
        (mask.width, mask.height),
        "a mask of another size"
    );
    let width = mask.width.max(1) as usize;
    let mut changed: Option<DirtyRect> = None;
    let rows = mask
        .data
        .chunks_exact_mut(width)
        .zip(source.data.chunks_exact(width));
    for (y, (row, from)) in rows.enumerate() {
        let Some(first) = row.iter().zip(from).position(|(a, b)| a != b) else {
            continue;
        };
        let last = row
            .iter()
            .zip(from)
            .rposition(|(a, b)| a != b)
            .unwrap_or(first);
        row[first..=last].copy_from_slice(&from[first..=last]);
        let line = DirtyRect {
            x: first as u32,
            y: y as u32,
            width: (last - first + 1) as u32,
            height: 1,
        };
        changed = DirtyRect::merge(changed, Some(line));
    }
    changed
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::dataset::IGNORE;

    fn count(mask: &Mask, value: u8) -> usize {
        mask.data.iter().filter(|&&v| v == value).count()
    }

    #[test]
    fn a_dab_paints_a_disc() {
        let mut mask = Mask::unlabelled(20, 20);
        let rect = stroke(&mut mask, [10.0, 10.0], [10.0, 10.0], 3.0, 1).unwrap();
        // Pixel centres within 3 px of (10, 10): the 6x6 block minus its 4 corners.
        assert_eq!(count(&mask, 1), 32);
        assert_eq!((rect.x, rect.y, rect.width, rect.height), (7, 7, 6, 6));
        assert_eq!(mask.get(9, 9), 1);
        assert_eq!(mask.get(6, 9), IGNORE);
        // Painting the same again changes nothing.
        assert_eq!(stroke(&mut mask, [10.0, 10.0], [10.0, 10.0], 3.0, 1), None);
    }

    #[test]
    fn a_fast_stroke_leaves_no_gaps() {
        let mut mask = Mask::unlabelled(100, 10);
        stroke(&mut mask, [2.0, 5.0], [97.0, 5.0], 1.0, 2).unwrap();
        // Every column between the end points is painted on the stroke's row.
        assert!((2..97).all(|x| mask.get(x, 4) == 2 || mask.get(x, 5) == 2));
        assert!((3..96).all(|x| mask.get(x, 4) == 2));
    }

    #[test]
    fn a_tiny_brush_still_paints_the_pixel_under_the_cursor() {
        let mut mask = Mask::unlabelled(4, 4);
        stroke(&mut mask, [1.5, 1.5], [1.5, 1.5], 0.1, 3).unwrap();
        assert_eq!(count(&mask, 3), 1);
        assert_eq!(mask.get(1, 1), 3);
    }

    #[test]
    fn strokes_are_clipped_to_the_image() {
        let mut mask = Mask::unlabelled(8, 8);
        let rect = stroke(&mut mask, [-3.0, -3.0], [1.0, 1.0], 2.0, 1).unwrap();
        assert_eq!((rect.x, rect.y), (0, 0));
        assert!(stroke(&mut mask, [-30.0, -30.0], [-20.0, -20.0], 2.0, 1).is_none());
    }

    #[test]
    fn flood_fill_stays_inside_its_region() {
        // A ring of class 1 around an unlabelled hole, unlabelled outside.
        let mut mask = Mask::unlabelled(9, 9);
        for i in 1..8 {
            for (x, y) in [(i, 1), (i, 7), (1, i), (7, i)] {
                mask.set(x, y, 1);
            }
        }
        let rect = flood_fill(&mut mask, 4, 4, 2).unwrap();
        assert_eq!(count(&mask, 2), 25, "the 5x5 hole");
        assert_eq!((rect.x, rect.y, rect.width, rect.height), (2, 2, 5, 5));
        // Outside: everything unlabelled that touches the border (81 - 49 ring+hole = 32).
        flood_fill(&mut mask, 0, 0, 3).unwrap();
        assert_eq!(count(&mask, 3), 32);
        assert_eq!(count(&mask, 1), 24);
        assert_eq!(
            flood_fill(&mut mask, 0, 0, 3),
            None,
            "same value: nothing to do"
        );
        assert_eq!(flood_fill(&mut mask, 50, 0, 3), None, "outside the image");
    }

    #[test]
    fn flood_fill_handles_a_large_open_area() {
        let mut mask = Mask::unlabelled(1000, 800);
        let rect = flood_fill(&mut mask, 500, 400, 4).unwrap();
        assert_eq!(count(&mask, 4), 800_000);
        assert_eq!(rect.area(), 800_000);
    }

    #[test]
    fn polygon_fill_covers_pixel_centres_inside() {
        let mut mask = Mask::unlabelled(10, 10);
        // An axis-aligned square from (2, 2) to (6, 5): pixel centres x 2.5..5.5, y 2.5..4.5.
        let square = [[2.0, 2.0], [6.0, 2.0], [6.0, 5.0], [2.0, 5.0]];
        let rect = polygon_fill(&mut mask, &square, 5).unwrap();
        assert_eq!(count(&mask, 5), 12);
        assert_eq!((rect.x, rect.y, rect.width, rect.height), (2, 2, 4, 3));
        // A triangle: half of a 8x8 square, about 32 pixels.
        let mut mask = Mask::unlabelled(10, 10);
        polygon_fill(&mut mask, &[[0.0, 0.0], [8.0, 0.0], [0.0, 8.0]], 1).unwrap();
        let n = count(&mask, 1);
        assert!((28..=36).contains(&n), "{n}");
        assert!(polygon_fill(&mut mask, &[[0.0, 0.0], [1.0, 1.0]], 1).is_none());
    }

    #[test]
    fn paint_region_writes_the_inside_only() {
        let mut region = Mask::filled(8, 6, 0);
        assert_eq!(region_bounds(&region), None);
        for (x, y) in [(2, 1), (3, 1), (5, 4)] {
            region.set(x, y, 1);
        }
        let bounds = region_bounds(&region).unwrap();
        assert_eq!(
            (bounds.x, bounds.y, bounds.width, bounds.height),
            (2, 1, 4, 4)
        );
        let mut mask = Mask::unlabelled(8, 6);
        mask.set(3, 1, 4);
        let changed = paint_region(&mut mask, &region, 4).unwrap();
        assert_eq!(count(&mask, 4), 3);
        assert_eq!(mask.get(4, 1), IGNORE, "between the inside pixels");
        // (3, 1) already held the value: the change starts at (2, 1) and ends at (5, 4).
        assert_eq!(
            (changed.x, changed.y, changed.right(), changed.bottom()),
            (2, 1, 6, 5)
        );
        assert_eq!(
            paint_region(&mut mask, &region, 4),
            None,
            "nothing left to change"
        );
    }

    #[test]
    fn copy_mask_reports_the_rows_that_differ() {
        let mut mask = Mask::unlabelled(6, 5);
        let mut source = mask.clone();
        assert_eq!(copy_mask(&mut mask, &source), None);
        source.set(1, 2, 0);
        source.set(4, 3, 7);
        let changed = copy_mask(&mut mask, &source).unwrap();
        assert_eq!(mask, source);
        assert_eq!(
            (changed.x, changed.y, changed.right(), changed.bottom()),
            (1, 2, 5, 4)
        );
    }
}
