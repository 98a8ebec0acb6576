//! Rasterising shapes (COCO and labelme polygons, rectangles, circles) into a label buffer.
//!
//! Coordinates are continuous: pixel (x, y) covers [x, x+1) × [y, y+1), and it belongs to a
//! shape when its centre (x + 0.5, y + 0.5) is inside (even-odd rule for polygons). This is
//! COCO's polygon convention, and it makes a polygon along pixel edges (as
//! [`super::trace`] writes them) fill exactly the pixels it outlines. Parts outside the image
//! are clipped. A polygon is filled a row at a time from its edges' crossings: the cost is the
//! rows it spans times its edges, plus the pixels filled.

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ShapeError {
    #[error("a coordinate is not a finite number")]
    NotFinite,
}

fn finite(points: &[[f64; 2]]) -> Result<(), ShapeError> {
    match points.iter().flatten().all(|v| v.is_finite()) {
        true => Ok(()),
        false => Err(ShapeError::NotFinite),
    }
}

/// Pixel columns (or rows) whose centres lie in [from, to), clipped to `0..size`.
fn centres_within(from: f64, to: f64, size: u32) -> std::ops::Range<u32> {
    let first = (from - 0.5).ceil().max(0.0);
    let end = (to - 0.5).ceil().min(size as f64);
    if end <= first {
        return 0..0;
    }
    first as u32..end as u32
}

/// Calls `set(x, y)` for each pixel whose centre lies inside the polygon (even-odd). Fewer than
/// three points fill nothing.
pub fn fill_polygon(
    points: &[[f64; 2]],
    width: u32,
    height: u32,
    mut set: impl FnMut(u32, u32),
) -> Result<(), ShapeError> {
    finite(points)?;
    if points.len() < 3 {
        return Ok(());
    }
    let (lo, hi) = points.iter().fold((f64::MAX, f64::MIN), |(lo, hi), p| {
        (lo.min(p[1]), hi.max(p[1]))
    });
    let mut crossings: Vec<f64> = Vec::new();
    for y in centres_within(lo, hi, height) {
        let yc = y as f64 + 0.5;
        crossings.clear();
        for (i, a) in points.iter().enumerate() {
            let b = points[(i + 1) % points.len()];
            // Half-open in y, so a vertex on the scanline counts once.
            if (a[1] <= yc) != (b[1] <= yc) {
                let t = (yc - a[1]) / (b[1] - a[1]);
                crossings.push(a[0] + t * (b[0] - a[0]));
            }
        }
        crossings.sort_by(f64::total_cmp);
        for pair in crossings.chunks_exact(2) {
            for x in centres_within(pair[0], pair[1], width) {
                set(x, y);
            }
        }
    }
    Ok(())
}

/// An axis-aligned rectangle from two opposite corners (in any order).
pub fn fill_rectangle(
    a: [f64; 2],
    b: [f64; 2],
    width: u32,
    height: u32,
    mut set: impl FnMut(u32, u32),
) -> Result<(), ShapeError> {
    finite(&[a, b])?;
    for y in centres_within(a[1].min(b[1]), a[1].max(b[1]), height) {
        for x in centres_within(a[0].min(b[0]), a[0].max(b[0]), width) {
            set(x, y);
        }
    }
    Ok(())
}

/// A circle from its centre and a point on its edge (labelme's convention).
pub fn fill_circle(
    centre: [f64; 2],
    edge: [f64; 2],
    width: u32,
    height: u32,
    mut set: impl FnMut(u32, u32),
) -> Result<(), ShapeError> {
    finite(&[centre, edge])?;
    let r = (edge[0] - centre[0]).hypot(edge[1] - centre[1]);
    for y in centres_within(centre[1] - r, centre[1] + r, height) {
        let dy = y as f64 + 0.5 - centre[1];
        let half = (r * r - dy * dy).max(0.0).sqrt();
        for x in centres_within(centre[0] - half, centre[0] + half, width) {
            set(x, y);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filled(points: &[[f64; 2]], w: u32, h: u32) -> Vec<(u32, u32)> {
        let mut out = Vec::new();
        fill_polygon(points, w, h, |x, y| out.push((x, y))).unwrap();
        out.sort();
        out
    }

    #[test]
    fn a_square_along_pixel_edges_fills_its_pixels() {
        let square = [[1.0, 1.0], [3.0, 1.0], [3.0, 3.0], [1.0, 3.0]];
        assert_eq!(filled(&square, 5, 5), [(1, 1), (1, 2), (2, 1), (2, 2)]);
        // Direction does not matter.
        let mut reversed = square;
        reversed.reverse();
        assert_eq!(filled(&reversed, 5, 5).len(), 4);
    }

    #[test]
    fn triangles_concave_and_self_intersecting_polygons() {
        // Right triangle with legs of 4: centres strictly below the diagonal.
        let triangle = [[0.0, 0.0], [4.0, 0.0], [0.0, 4.0]];
        assert_eq!(filled(&triangle, 8, 8).len(), 3 + 2 + 1);
        // An L: a 3x3 square missing its top-right 2x2 corner... as a concave hexagon.
        let l = [
            [0.0, 0.0],
            [1.0, 0.0],
            [1.0, 2.0],
            [3.0, 2.0],
            [3.0, 3.0],
            [0.0, 3.0],
        ];
        assert_eq!(filled(&l, 5, 5).len(), 5);
        // A bow tie: even-odd leaves nothing double-counted.
        let bow = [[0.0, 0.0], [4.0, 4.0], [4.0, 0.0], [0.0, 4.0]];
        let bow_tie = filled(&bow, 4, 4);
        assert!(bow_tie.contains(&(0, 1)) && bow_tie.contains(&(3, 1)));
        assert!(!bow_tie.contains(&(1, 0)), "{bow_tie:?}");
        // Two nested squares in one ring (a frame): even-odd gives the hole.
        let frame = [
            [0.0, 0.0],
            [4.0, 0.0],
            [4.0, 4.0],
            [0.0, 4.0],
            [0.0, 0.0],
            [1.0, 1.0],
            [1.0, 3.0],
            [3.0, 3.0],
            [3.0, 1.0],
            [1.0, 1.0],
        ];
        let ring = filled(&frame, 4, 4);
        assert_eq!(ring.len(), 12);
        assert!(!ring.contains(&(1, 1)));
    }

    #[test]
    fn shapes_are_clipped_to_the_image() {
        let big = [[-5.0, -5.0], [50.0, -5.0], [50.0, 50.0], [-5.0, 50.0]];
        assert_eq!(filled(&big, 3, 2).len(), 6);
        assert!(filled(&[[10.0, 10.0], [12.0, 10.0], [12.0, 12.0]], 3, 3).is_empty());
        let mut n = 0;
        fill_rectangle([2.0, 1.0], [-3.0, 9.0], 4, 4, |_, _| n += 1).unwrap();
        assert_eq!(n, 2 * 3);
    }

    #[test]
    fn circles_cover_about_pi_r_squared() {
        let mut n = 0;
        fill_circle([50.0, 50.0], [50.0, 30.0], 100, 100, |_, _| n += 1).unwrap();
        let area = std::f64::consts::PI * 400.0;
        assert!((n as f64 - area).abs() < 0.02 * area, "{n} vs {area}");
    }

    #[test]
    fn non_finite_coordinates_are_errors() {
        let nan = [[0.0, 0.0], [f64::NAN, 1.0], [1.0, 1.0]];
        assert_eq!(
            fill_polygon(&nan, 4, 4, |_, _| {}),
            Err(ShapeError::NotFinite)
        );
        let inf = fill_circle([0.0, 0.0], [f64::INFINITY, 0.0], 4, 4, |_, _| {});
        assert_eq!(inf, Err(ShapeError::NotFinite));
        assert!(fill_polygon(&[[0.0, 0.0], [1.0, 1.0]], 4, 4, |_, _| panic!()).is_ok());
    }
}
