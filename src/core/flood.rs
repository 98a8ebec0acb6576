//! The 4-connected flood over a pixel grid that labelling regions, relabelling superpixels and
//! keeping the part of a region joined to its clicks all share: a stack of pixel indices grown
//! from seeds through the neighbours a predicate accepts.
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
