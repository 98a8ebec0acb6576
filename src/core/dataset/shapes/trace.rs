//! Masks to polygons, for the layouts that store shapes (labelme): every region traced along
//! pixel edges, in an order that draws the mask back exactly.
//!
//! A region is a 4-connected component of one value. Its outline is the boundary of the region
//! *filled*: the region plus everything it encloses (pixels that cannot reach the image border
//! in 4-steps without crossing it). Filling that outline with [`super::polygon::fill_polygon`]
//! (pixel centres, even-odd) gives exactly the filled region, since the outline is its boundary
//! edge set walked as one ring (an Eulerian circuit of the edges: a ring may touch itself where
//! two outside pixels meet at a corner). Holes need no polygon holes, which labelme has not:
//! whatever lies inside a region is itself a region whose filled area is strictly smaller, so
//! drawing outlines by decreasing filled area, later ones overwriting earlier, puts every pixel
//! back. Ignore regions get an outline (class 255) only where they do not touch the border: a
//! region touching it is enclosed by nothing and stays as the canvas starts, ignore.
//!
//! Cost: one pass to label regions, then per region a flood fill of its bounding box (plus a
//! one-pixel frame) and a walk of its boundary; nested regions make that the sum of their
//! boxes.

use std::collections::HashMap;

use crate::core::dataset::IGNORE;
use crate::core::flood::{filled, flood4};
use crate::core::mask::Mask;

/// One region's outline: vertices at pixel corners, collinear ones removed.
#[derive(Clone, Debug, PartialEq)]
pub struct Outline {
    pub class: u8,
    pub points: Vec<[f64; 2]>,
}

/// Every region's outline, in drawing order (see the module header).
pub fn trace(mask: &Mask) -> Vec<Outline> {
    let w = mask.width as usize;
    let regions = label_regions(mask);
    let mut outlines: Vec<(usize, Outline)> = Vec::new();
    for region in &regions.list {
        if region.class == IGNORE && region.touches_border {
            continue;
        }
        let (filled, area) = fill_region(&regions.ids, w, region);
        let points = outline(&filled, region);
        outlines.push((
            area,
            Outline {
                class: region.class,
                points,
            },
        ));
    }
    // Stable: regions of equal area never enclose one another.
    outlines.sort_by_key(|o| std::cmp::Reverse(o.0));
    outlines.into_iter().map(|(_, o)| o).collect()
}

struct Region {
    id: u32,
    class: u8,
    /// Bounding box: x0, y0 inclusive, x1, y1 exclusive.
    bbox: [usize; 4],
    touches_border: bool,
}

struct Regions {
    /// Region index of every pixel, row-major.
    ids: Vec<u32>,
    list: Vec<Region>,
}

fn label_regions(mask: &Mask) -> Regions {
    let (w, h) = (mask.width as usize, mask.height as usize);
    let mut ids = vec![u32::MAX; w * h];
    let mut list = Vec::new();
    for start in 0..w * h {
        if ids[start] != u32::MAX {
            continue;
        }
        let id = list.len() as u32;
        let class = mask.data[start];
        let mut region = Region {
            id,
            class,
            bbox: [usize::MAX, usize::MAX, 0, 0],
            touches_border: false,
        };
        ids[start] = id;
        flood4(
            w,
            h,
            &[start],
            |j| {
                let join = ids[j] == u32::MAX && mask.data[j] == class;
                if join {
                    ids[j] = id;
                }
                join
            },
            |i| {
                let (x, y) = (i % w, i / w);
                let b = &mut region.bbox;
                (b[0], b[1], b[2], b[3]) =
                    (b[0].min(x), b[1].min(y), b[2].max(x + 1), b[3].max(y + 1));
                region.touches_border |= x == 0 || y == 0 || x + 1 == w || y + 1 == h;
            },
        );
        list.push(region);
    }
    Regions { ids, list }
}

/// The filled region within its box framed by one pixel: `true` where filled. Returns the grid
/// (box width + 2 columns) and the filled pixel count.
fn fill_region(ids: &[u32], w: usize, region: &Region) -> (Vec<bool>, usize) {
    let filled = filled(region.bbox, |x, y| ids[y * w + x] == region.id, &[]);
    let area = filled.iter().filter(|&&f| f).count();
    (filled, area)
}

/// The boundary of `filled` (a framed box grid) as one ring in image coordinates.
fn outline(filled: &[bool], region: &Region) -> Vec<[f64; 2]> {
    let [x0, y0, x1, _] = region.bbox;
    let bw = x1 - x0 + 2;
    let bh = filled.len() / bw;
    let at = |gx: usize, gy: usize| filled[gy * bw + gx];
    // Directed boundary edges, the filled side on the right (clockwise on screen, y down).
    // Vertices are grid corners: corner (cx, cy) is the top-left of grid pixel (cx, cy).
    let key = |cx: usize, cy: usize| (cy * (bw + 1) + cx) as u64;
    let mut out: HashMap<u64, Vec<u64>> = HashMap::new();
    let mut start = None;
    for gy in 1..bh - 1 {
        for gx in 1..bw - 1 {
            if !at(gx, gy) {
                continue;
            }
            let mut edge = |a: u64, b: u64| {
                out.entry(a).or_default().push(b);
                start.get_or_insert(a);
            };
            if !at(gx, gy - 1) {
                edge(key(gx, gy), key(gx + 1, gy));
            }
            if !at(gx + 1, gy) {
                edge(key(gx + 1, gy), key(gx + 1, gy + 1));
            }
            if !at(gx, gy + 1) {
                edge(key(gx + 1, gy + 1), key(gx, gy + 1));
            }
            if !at(gx - 1, gy) {
                edge(key(gx, gy + 1), key(gx, gy));
            }
        }
    }
    let Some(start) = start else {
        return Vec::new();
    };
    // Hierholzer: one closed walk over every edge.
    let mut stack = vec![start];
    let mut ring: Vec<u64> = Vec::new();
    while let Some(&v) = stack.last() {
        match out.get_mut(&v).and_then(Vec::pop) {
            Some(next) => stack.push(next),
            None => ring.push(stack.pop().unwrap_or(v)),
        }
    }
    ring.reverse();
    ring.pop(); // the walk ends where it began
    let corner = |k: u64| {
        let (cx, cy) = (
            (k % (bw as u64 + 1)) as usize,
            (k / (bw as u64 + 1)) as usize,
        );
        // Grid corner (1, 1) is the box's top-left pixel corner.
        [(cx + x0) as f64 - 1.0, (cy + y0) as f64 - 1.0]
    };
    let points: Vec<[f64; 2]> = ring.into_iter().map(corner).collect();
    without_collinear(points)
}

/// Drops vertices that lie on the straight line through their neighbours.
fn without_collinear(points: Vec<[f64; 2]>) -> Vec<[f64; 2]> {
    let n = points.len();
    if n < 4 {
        return points;
    }
    // Not f64::signum, which is 1 for 0.
    let sign = |v: f64| (v > 0.0) as i8 - (v < 0.0) as i8;
    let direction = |a: [f64; 2], b: [f64; 2]| [sign(b[0] - a[0]), sign(b[1] - a[1])];
    let mut kept = Vec::with_capacity(n);
    for i in 0..n {
        let prev = points[(i + n - 1) % n];
        let next = points[(i + 1) % n];
        if direction(prev, points[i]) != direction(points[i], next) {
            kept.push(points[i]);
        }
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::dataset::shapes::polygon::fill_polygon;

    fn redraw(mask: &Mask) -> Mask {
        let mut out = Mask::unlabelled(mask.width, mask.height);
        for outline in trace(mask) {
            for p in &outline.points {
                assert!(p[0].fract() == 0.0 && p[1].fract() == 0.0, "{p:?}");
            }
            fill_polygon(&outline.points, mask.width, mask.height, |x, y| {
                out.set(x, y, outline.class)
            })
            .unwrap();
        }
        out
    }

    fn from_rows(rows: &[&str]) -> Mask {
        let h = rows.len() as u32;
        let w = rows[0].len() as u32;
        let data = rows
            .iter()
            .flat_map(|r| r.bytes().map(|b| if b == b'.' { IGNORE } else { b - b'0' }))
            .collect();
        Mask {
            width: w,
            height: h,
            data,
        }
    }

    #[test]
    fn hand_made_masks_come_back_exactly() {
        let cases: &[&[&str]] = &[
            &["0"],
            &["."],
            &["0000", "0000"],
            // A hole, a hole in a hole, an ignore hole.
            &["00000", "01110", "01210", "01110", "00000"],
            &["0000000", "0111110", "01.2.10", "0111110", "0000000"],
            // Diagonal pinches: a ring closed only at a corner, and a checkerboard.
            &["0000", "0110", "0101", "0011"],
            &["1101", "1010", "0101", "1011"],
            &["0101", "1010", "0101", "1010"],
            // A single pixel, a full image, an ignore background with islands.
            &["...", ".1.", "..."],
            &["..0..", ".000.", "..0..", "1...2"],
            // A spiral.
            &[
                "1111111", "0000001", "1111101", "1000101", "1011101", "1000001", "1111111",
            ],
        ];
        for rows in cases {
            let mask = from_rows(rows);
            assert_eq!(redraw(&mask), mask, "{rows:?}");
        }
    }

    #[test]
    fn outlines_are_rings_of_corners_without_collinear_points() {
        let mask = from_rows(&["0000", "0110", "0110", "0000"]);
        let outlines = trace(&mask);
        assert_eq!(outlines.len(), 2);
        assert_eq!(outlines[0].class, 0);
        assert_eq!(outlines[0].points.len(), 4, "{:?}", outlines[0]);
        assert_eq!(outlines[1].points.len(), 4, "{:?}", outlines[1]);
        // The ignore background touching the border needs no shape.
        let islands = from_rows(&["....", ".1..", "...."]);
        assert_eq!(trace(&islands).len(), 1);
    }

    #[test]
    fn random_blobby_masks_come_back_exactly() {
        let mut seed = 11u64;
        let mut next = |n: u64| {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (seed >> 33) % n
        };
        for _ in 0..150 {
            let (w, h) = (1 + next(30) as u32, 1 + next(30) as u32);
            let mut mask = Mask::unlabelled(w, h);
            for _ in 0..next(12) {
                let class = if next(5) == 0 { IGNORE } else { next(4) as u8 };
                let (cx, cy, r) = (next(w as u64) as i64, next(h as u64) as i64, next(8) as i64);
                let square = next(2) == 0;
                for y in 0..h as i64 {
                    for x in 0..w as i64 {
                        let (dx, dy) = (x - cx, y - cy);
                        let hit = match square {
                            true => dx.abs() <= r && dy.abs() <= r,
                            false => dx * dx + dy * dy <= r * r,
                        };
                        if hit {
                            mask.set(x as u32, y as u32, class);
                        }
                    }
                }
            }
            // Salt: single pixels make pinches and one-pixel holes.
            for _ in 0..next(20) {
                let (x, y) = (next(w as u64) as u32, next(h as u64) as u32);
                mask.set(x, y, next(4) as u8);
            }
            assert_eq!(redraw(&mask), mask);
        }
    }
}
