//! The objects a labeller would select one at a time, cut from a class mask: connected
//! components, each as a target for [`super::protocol`] (1 on the object, 0 elsewhere,
//! [`IGNORE`] where the label ignores the pixel).
//!
//! Components are found by a breadth-first flood from each unvisited member pixel: `O(pixels)`
//! time, one `u32` label per pixel.

use std::collections::VecDeque;

use crate::core::dataset::IGNORE;
use crate::core::mask::Mask;

/// Which neighbours join a component: the 4 sharing an edge, or also the 4 diagonal ones.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Connectivity {
    Four,
    Eight,
}

/// The connected components of the pixels of `labels` for which `member(id)` holds: a component
/// index per pixel (`u32::MAX` for non-members), and each component's area in pixels.
pub fn components(
    labels: &Mask,
    member: impl Fn(u8) -> bool,
    connectivity: Connectivity,
) -> (Vec<u32>, Vec<usize>) {
    let (w, h) = (labels.width as i64, labels.height as i64);
    let mut component = vec![u32::MAX; labels.data.len()];
    let mut areas = Vec::new();
    let mut queue = VecDeque::new();
    let steps: &[(i64, i64)] = match connectivity {
        Connectivity::Four => &[(1, 0), (-1, 0), (0, 1), (0, -1)],
        Connectivity::Eight => &[
            (1, 0),
            (-1, 0),
            (0, 1),
            (0, -1),
            (1, 1),
            (1, -1),
            (-1, 1),
            (-1, -1),
        ],
    };
    for start in 0..labels.data.len() {
        if component[start] != u32::MAX || !member(labels.data[start]) {
            continue;
        }
        let index = areas.len() as u32;
        let mut area = 0;
        component[start] = index;
        queue.push_back(start);
        while let Some(p) = queue.pop_front() {
            area += 1;
            let (x, y) = (p as i64 % w, p as i64 / w);
            for &(dx, dy) in steps {
                let (nx, ny) = (x + dx, y + dy);
                if nx < 0 || ny < 0 || nx >= w || ny >= h {
                    continue;
                }
                let n = (ny * w + nx) as usize;
                if component[n] == u32::MAX && member(labels.data[n]) {
                    component[n] = index;
                    queue.push_back(n);
                }
            }
        }
        areas.push(area);
    }
    (component, areas)
}

/// The target of component `index`: 1 on it, [`IGNORE`] where `labels` is IGNORE or
/// `ignored(id)` holds for a pixel of it, 0 elsewhere.
fn target(labels: &Mask, component: &[u32], index: u32, ignored: impl Fn(u8) -> bool) -> Mask {
    let data = labels
        .data
        .iter()
        .zip(component)
        .map(|(&id, &c)| match (id, c == index) {
            (IGNORE, _) => IGNORE,
            (id, true) if ignored(id) => IGNORE,
            (_, true) => 1,
            (_, false) => 0,
        })
        .collect();
    Mask {
        width: labels.width,
        height: labels.height,
        data,
    }
}

/// Each component of `class` of at least `min_area` pixels, largest first.
pub fn class_objects(
    labels: &Mask,
    class: u8,
    connectivity: Connectivity,
    min_area: usize,
) -> Vec<Mask> {
    let (component, areas) = components(labels, |id| id == class, connectivity);
    let mut kept: Vec<u32> = (0..areas.len() as u32)
        .filter(|&i| areas[i as usize] >= min_area.max(1))
        .collect();
    kept.sort_by_key(|&i| std::cmp::Reverse(areas[i as usize]));
    kept.into_iter()
        .map(|i| target(labels, &component, i, |_| false))
        .collect()
}

/// The road as one object: the largest 4-connected component of `road` pixels and, when the
/// classes have one, `marking` (lane-marking) pixels together, so that painted lines do not cut
/// the road into strips. The markings inside it are ignored: whether a road region includes its
/// lines is the labeller's choice, not the segmenter's error. `None` without road pixels.
pub fn road_object(labels: &Mask, road: u8, marking: Option<u8>) -> Option<Mask> {
    let member = |id: u8| id == road || Some(id) == marking;
    let (component, areas) = components(labels, member, Connectivity::Four);
    // The largest component that holds road, not only lines.
    let mut has_road = vec![false; areas.len()];
    for (&id, &c) in labels.data.iter().zip(&component) {
        if id == road {
            has_road[c as usize] = true;
        }
    }
    let largest = (0..areas.len())
        .filter(|&i| has_road[i])
        .max_by_key(|&i| (areas[i], std::cmp::Reverse(i)))?;
    Some(target(labels, &component, largest as u32, |id| id != road))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mask(rows: &[&str]) -> Mask {
        let data: Vec<u8> = rows
            .iter()
            .flat_map(|r| {
                r.bytes().map(|b| match b {
                    b'.' => 9,
                    b'x' => IGNORE,
                    d => d - b'0',
                })
            })
            .collect();
        Mask {
            width: rows[0].len() as u32,
            height: rows.len() as u32,
            data,
        }
    }

    #[test]
    fn diagonal_neighbours_join_only_with_eight_connectivity() {
        let m = mask(&["5...", ".5..", "...5"]);
        assert_eq!(
            components(&m, |id| id == 5, Connectivity::Four).1,
            [1, 1, 1]
        );
        assert_eq!(components(&m, |id| id == 5, Connectivity::Eight).1, [2, 1]);
    }

    #[test]
    fn class_objects_are_the_components_above_the_area_largest_first() {
        let m = mask(&["11..1", "11...", "....1", "x..11"]);
        let objects = class_objects(&m, 1, Connectivity::Four, 2);
        assert_eq!(objects.len(), 2); // the 4-pixel block and the 3-pixel corner; not the lone one
        assert_eq!(objects[0], mask(&["11000", "11000", "00000", "x0000"]));
        assert_eq!(objects[1], mask(&["00000", "00000", "00001", "x0011"]));
    }

    #[test]
    fn the_road_is_one_object_across_its_lines_which_are_ignored() {
        // Road (0) split by a solid line (6), a car (5) on it, a sidewalk (1) strip apart.
        let m = mask(&["006001", "006501", "006001"]);
        let road = road_object(&m, 0, Some(6)).unwrap();
        assert_eq!(road, mask(&["11x110", "11x010", "11x110"]));
        // Without a lane-marking class the line cuts the road: the larger half is the road.
        let road = road_object(&m, 0, None).unwrap();
        assert_eq!(road, mask(&["110000", "110000", "110000"]));
        assert_eq!(road_object(&mask(&["111"]), 0, None), None);
    }
}
