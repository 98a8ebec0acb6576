//! The 4-connected flood over a pixel grid that tracing labelled regions, keeping the part of a
//! Smart region joined to its clicks and filling its holes all share: a stack of pixel indices
//! grown from seeds through the neighbours a predicate accepts.
//!
//! Cost: `O(pixels taken)`, four neighbour checks each; the stack holds at most the pixels
//! taken.

/// Grows a region over a `width x height` grid (row-major indices) from `seeds`, which the
/// caller has already marked as taken. Each 4-neighbour of a taken pixel is offered to `take`,
/// which answers whether it joins, and must mark it so that it is not offered again once it has
/// joined. `visit` sees every pixel taken, seeds included, once, in stack order.
pub fn flood4(
    width: usize,
    height: usize,
    seeds: &[usize],
    mut take: impl FnMut(usize) -> bool,
    mut visit: impl FnMut(usize),
) {
    let mut stack = seeds.to_vec();
    while let Some(i) = stack.pop() {
        visit(i);
        let (x, y) = (i % width, i / width);
        if x > 0 && take(i - 1) {
            stack.push(i - 1);
        }
        if x + 1 < width && take(i + 1) {
            stack.push(i + 1);
        }
        if y > 0 && take(i - width) {
            stack.push(i - width);
        }
        if y + 1 < height && take(i + width) {
            stack.push(i + width);
        }
    }
}

/// A region filled, within its bounding box `[x0, y0, x1, y1)` (`x1`, `y1` exclusive) framed by
/// one pixel: the grid (`x1 - x0 + 2` columns, row-major, box pixel `(x, y)` at grid `(x - x0 +
/// 1, y - y0 + 1)`) holds `true` where `inside(x, y)` or where no 4-path through pixels not
/// inside joins the pixel to the frame or to one of `open` (image pixels kept out however
/// enclosed). The frame stands for everything beyond the box, the image's border included.
pub fn filled(
    [x0, y0, x1, y1]: [usize; 4],
    inside: impl Fn(usize, usize) -> bool,
    open: &[[usize; 2]],
) -> Vec<bool> {
    let (bw, bh) = (x1 - x0 + 2, y1 - y0 + 2);
    let in_box = |g: usize| {
        let (gx, gy) = (g % bw, g / bw);
        (1..=x1 - x0).contains(&gx) && (1..=y1 - y0).contains(&gy)
    };
    let inside_at = |g: usize| in_box(g) && inside(g % bw - 1 + x0, g / bw - 1 + y0);
    let mut outside = vec![false; bw * bh];
    // The frame is one ring of outside pixels: its corner reaches all of it.
    let mut seeds = vec![0];
    for &[x, y] in open {
        let g = (y + 1 - y0) * bw + x + 1 - x0;
        if (x0..x1).contains(&x) && (y0..y1).contains(&y) && !inside_at(g) {
            seeds.push(g);
        }
    }
    for &g in &seeds {
        outside[g] = true;
    }
    flood4(
        bw,
        bh,
        &seeds,
        |g| {
            let join = !outside[g] && !inside_at(g);
            outside[g] |= join;
            join
        },
        |_| {},
    );
    outside.iter().map(|&o| !o).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_flood_stays_in_its_4_connected_region() {
        // Two 1-regions touching only at a corner (not 4-connected), and a U shape.
        let grid = [
            "11.....", //
            "11..1.1", //
            "..1.1.1", //
            "....111", //
        ];
        let (w, h) = (grid[0].len(), grid.len());
        let cells: Vec<bool> = grid
            .iter()
            .flat_map(|r| r.bytes().map(|b| b == b'1'))
            .collect();
        let region = |seed: usize| {
            let mut taken = vec![false; w * h];
            taken[seed] = true;
            let mut seen = Vec::new();
            flood4(
                w,
                h,
                &[seed],
                |j| {
                    let join = cells[j] && !taken[j];
                    taken[j] |= join;
                    join
                },
                |i| seen.push(i),
            );
            seen.sort_unstable();
            seen
        };
        assert_eq!(region(0), vec![0, 1, 7, 8], "the corner does not join");
        assert_eq!(region(2 * w + 2), vec![2 * w + 2]);
        let u = region(w + 4);
        assert_eq!(u.len(), 7, "the whole U: {u:?}");
        assert!(u.contains(&(w + 6)) && u.contains(&(3 * w + 5)));
    }

    #[test]
    fn a_filled_region_takes_what_it_encloses_but_not_an_open_pixel() {
        // Two holes, (1..=2, 1) and (4, 1), and a gap at the box's corner (5, 2), which is
        // not enclosed.
        let grid = [
            "111111", //
            "1..1.1", //
            "11111.", //
        ];
        let w = grid[0].len();
        let cells: Vec<bool> = grid
            .iter()
            .flat_map(|r| r.bytes().map(|b| b == b'1'))
            .collect();
        let inside = |x: usize, y: usize| cells[y * w + x];
        let box_ = [0, 0, w, grid.len()];
        let at = |grid: &[bool], x: usize, y: usize| grid[(y + 1) * (w + 2) + x + 1];
        let all = filled(box_, inside, &[]);
        assert!(at(&all, 1, 1) && at(&all, 2, 1) && at(&all, 4, 1));
        assert!(!at(&all, 5, 2), "the corner gap touches the frame");
        assert_eq!(all.iter().filter(|&&f| f).count(), 17);
        let kept = filled(box_, inside, &[[2, 1]]);
        assert!(
            !at(&kept, 1, 1) && !at(&kept, 2, 1),
            "the open pixel's hole stays open"
        );
        assert!(at(&kept, 4, 1), "another hole is still filled");
    }

    #[test]
    fn several_seeds_grow_one_region_each_pixel_once() {
        let (w, h) = (5, 3);
        let mut taken = vec![false; w * h];
        let seeds = [0, 14];
        for &s in &seeds {
            taken[s] = true;
        }
        let mut visits = vec![0; w * h];
        flood4(
            w,
            h,
            &seeds,
            |j| !std::mem::replace(&mut taken[j], true),
            |i| visits[i] += 1,
        );
        assert!(visits.iter().all(|&v| v == 1), "{visits:?}");
    }
}
