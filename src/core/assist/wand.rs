//! The magic wand: the 4-connected pixels around a click whose colour is close to the clicked
//! pixel's.
//!
//! A pixel `p` is close to the seed `s` when its colour distance is within the tolerance:
//!
//! ```text
//! d(p, s) = max(|p.r - s.r|, |p.g - s.g|, |p.b - s.b|)    (0..=255)
//! ```
//!
//! the largest channel difference, as GIMP's fuzzy select measures by default ("composite").
//! Every pixel is compared with the *seed*, not with its neighbour, so a slow gradient does not
//! carry the region across the image, and a strong edge (a jump larger than the tolerance)
//! always stops it. Tolerance 0 selects the connected pixels of exactly the seed's colour; a
//! larger tolerance selects a superset (the regions grow monotonically).
//!
//! Cost: one scanline flood fill (as `paint::ops::flood_fill`): time proportional to the
//! region's pixels, memory the output mask plus a stack proportional to the region's outline.
//! Nothing is precomputed.

use image::RgbImage;

use crate::core::mask::Mask;

/// The region of the 4-connected pixels around `(x, y)` within `tolerance` of its colour, as a
/// mask of the image's size (1 inside, 0 outside). A click outside the image selects nothing
/// (an all-0 mask).
pub fn wand(image: &RgbImage, x: u32, y: u32, tolerance: u8) -> Mask {
    let (w, h) = image.dimensions();
    let mut region = Mask::filled(w, h, 0);
    if x >= w || y >= h {
        return region;
    }
    let seed = image.get_pixel(x, y).0;
    let pixels = image.as_raw();
    let (w, h) = (w as usize, h as usize);
    // Not yet in the region, and close to the seed's colour.
    let open = |region: &Mask, i: usize| {
        region.data[i] == 0 && (0..3).all(|c| pixels[i * 3 + c].abs_diff(seed[c]) <= tolerance)
    };
    let mut stack = vec![(x as usize, y as usize)];
    while let Some((sx, sy)) = stack.pop() {
        let row = sy * w;
        if !open(&region, row + sx) {
            continue;
        }
        // Extend left and right along the row.
        let mut left = sx;
        while left > 0 && open(&region, row + left - 1) {
            left -= 1;
        }
        let mut right = sx;
        while right + 1 < w && open(&region, row + right + 1) {
            right += 1;
        }
        region.data[row + left..=row + right].fill(1);
        // Seed one point per run of open pixels in the rows above and below.
        for ny in [sy.wrapping_sub(1), sy + 1] {
            if ny >= h {
                continue;
            }
            let nrow = ny * w;
            let mut nx = left;
            while nx <= right {
                if open(&region, nrow + nx) {
                    stack.push((nx, ny));
                    while nx <= right && open(&region, nrow + nx) {
                        nx += 1;
                    }
                } else {
                    nx += 1;
                }
            }
        }
    }
    region
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::rng::Rng;

    /// A 40x30 image: a dark patch (about 60 grey) left of column 20, a bright one (about 200)
    /// right of it, each with noise of +-`noise` per channel.
    fn two_patches(noise: u8) -> RgbImage {
        let mut rng = Rng::new(7);
        RgbImage::from_fn(40, 30, |x, _| {
            let base: i32 = if x < 20 { 60 } else { 200 };
            let mut channel = || {
                let n = (rng.next_u64() % (2 * noise as u64 + 1)) as i32 - noise as i32;
                (base + n) as u8
            };
            image::Rgb([channel(), channel(), channel()])
        })
    }

    fn inside(region: &Mask) -> usize {
        region.data.iter().filter(|&&v| v == 1).count()
    }

    /// Whether every inside pixel is reachable from the seed through inside pixels, stepping
    /// only up, down, left and right (a breadth-first search independent of the fill).
    fn four_connected(region: &Mask, x: u32, y: u32) -> bool {
        let (w, h) = (region.width as i64, region.height as i64);
        let mut seen = vec![false; region.data.len()];
        let mut queue = std::collections::VecDeque::from([(x as i64, y as i64)]);
        seen[(y as i64 * w + x as i64) as usize] = true;
        let mut reached = 1;
        while let Some((px, py)) = queue.pop_front() {
            for (nx, ny) in [(px - 1, py), (px + 1, py), (px, py - 1), (px, py + 1)] {
                let i = (ny * w + nx) as usize;
                if nx >= 0 && ny >= 0 && nx < w && ny < h && region.data[i] == 1 && !seen[i] {
                    seen[i] = true;
                    reached += 1;
                    queue.push_back((nx, ny));
                }
            }
        }
        reached == inside(region)
    }

    #[test]
    fn tolerance_0_takes_only_identical_connected_pixels() {
        // Grey 10 everywhere; a ring of (11, 10, 10) around (5, 5) cuts off a grey-10 hole.
        let mut image = RgbImage::from_pixel(12, 12, image::Rgb([10, 10, 10]));
        for i in 2..9 {
            for (x, y) in [(i, 2), (i, 8), (2, i), (8, i)] {
                image.put_pixel(x, y, image::Rgb([11, 10, 10]));
            }
        }
        let hole = wand(&image, 5, 5, 0);
        assert_eq!(
            inside(&hole),
            25,
            "the 5x5 hole, not the ring nor the outside"
        );
        assert!(four_connected(&hole, 5, 5));
        let outside = wand(&image, 0, 0, 0);
        assert_eq!(inside(&outside), 144 - 49);
        assert_eq!(
            outside.get(5, 5),
            0,
            "the hole is not connected to the outside"
        );
        // One step of tolerance takes the ring too, and through it the hole.
        assert_eq!(inside(&wand(&image, 0, 0, 1)), 144);
        // A pixel connected only diagonally is not part of the region.
        let mut image = RgbImage::from_pixel(3, 3, image::Rgb([0, 0, 0]));
        image.put_pixel(0, 0, image::Rgb([9, 9, 9]));
        image.put_pixel(1, 1, image::Rgb([9, 9, 9]));
        let corner = wand(&image, 0, 0, 0);
        assert_eq!((inside(&corner), corner.get(1, 1)), (1, 0));
    }

    #[test]
    fn a_larger_tolerance_grows_the_region_and_never_crosses_a_strong_edge() {
        let image = two_patches(12);
        let mut previous = wand(&image, 5, 15, 0);
        assert_eq!(
            inside(&previous),
            1,
            "noise makes the seed's colour nearly unique"
        );
        let mut sizes = vec![];
        for tolerance in 1..=100u8 {
            let region = wand(&image, 5, 15, tolerance);
            assert!(
                previous
                    .data
                    .iter()
                    .zip(&region.data)
                    .all(|(&a, &b)| a <= b),
                "tolerance {tolerance} lost pixels of tolerance {}",
                tolerance - 1
            );
            assert!(four_connected(&region, 5, 15), "tolerance {tolerance}");
            // The patches are 140 apart, the noise at most 24 across a patch: the bright patch
            // is out of reach of every tolerance up to 100 (its darkest is 188 - 72 = 116 away).
            assert!(
                (0..30).all(|y| (20..40).all(|x| region.get(x, y) == 0)),
                "tolerance {tolerance} crossed the edge"
            );
            sizes.push(inside(&region));
            previous = region;
        }
        assert!(
            sizes.iter().any(|&n| n > 1 && n < 600),
            "some tolerance takes part of the patch: {sizes:?}"
        );
        assert_eq!(
            sizes[23], 600,
            "tolerance 24 covers the noise: the whole dark patch"
        );
        // The bright side from a click there, and the whole image once the edge is in reach.
        assert_eq!(inside(&wand(&image, 30, 3, 30)), 600);
        assert_eq!(inside(&wand(&image, 30, 3, 170)), 1200);
    }

    #[test]
    fn a_gradient_is_cut_where_it_leaves_the_tolerance() {
        // Red rising by 4 per column: from column 10 (red 40), tolerance 8 is columns 8..=12.
        let image = RgbImage::from_fn(32, 4, |x, _| image::Rgb([(x * 4) as u8, 0, 0]));
        let region = wand(&image, 10, 2, 8);
        assert!((0..4).all(|y| (0..32).all(|x| region.get(x, y) == (8..=12).contains(&x) as u8)));
        assert_eq!(inside(&wand(&image, 99, 0, 8)), 0, "outside the image");
    }
}
