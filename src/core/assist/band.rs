//! The pixel-level step of click-to-segment: a graph cut over the pixels of a band around the
//! superpixel region's boundary, so the region's edge follows the image's rather than the
//! superpixels' (a superpixel straddling a kerb is wrong on one side whatever the coarse cut
//! decides).
//!
//! - The band: the superpixels on the coarse region's boundary (a neighbour on the other side)
//!   and `rings` rings of their neighbours. Pixels outside it keep the coarse side.
//! - Unaries: GrabCut's colour costs ([`super::gmm`]) of two mixtures fitted to the band's
//!   pixels on each side of the coarse boundary (so the colours are those near this edge: the
//!   road's in the sun and in the shade where it meets the kerb, not the whole image's), plus a
//!   small cost for leaving the coarse side, plus the model's odds when a run is open.
//! - Pairwise: GrabCut's contrast-sensitive Potts term over 8 neighbours,
//!   `gamma / dist * exp(-beta |c_p - c_q|^2)` on the blurred CIELAB image (its colour steps
//!   weighted down against lightness: JPEG smears them), `beta` from the image's mean squared
//!   neighbour difference. An edge to a pixel outside the band becomes a
//!   terminal weight towards that pixel's fixed side.
//! - Clicks: the pixels within `click_radius` of a click are tied to its side, the last click
//!   winning.
//!
//! - Bounded: past [`BandParams::max_pixels`] the band is the boundary superpixels nearest the
//!   newest click; the others keep the previous click's pixels (or the coarse side where their
//!   side changed).
//!
//! Cost: one max-flow over the band's pixels, about `perimeter * (2 rings + 2) * superpixel
//! size` of them (a 2048x1024 road: up to 270,000) but at most `max_pixels`, plus two small
//! mixture fits.

use super::Click;
use super::gmm::Gmm;
use super::maxflow::Graph;
use super::region::Prepared;
use super::superpixels::LabImage;
use rayon::prelude::*;

/// What the pixel-level cut weighs.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BandParams {
    /// Rings of superpixels added on each side of the boundary's own.
    pub rings: usize,
    /// GrabCut's `gamma`: the pairwise weight of two 4-neighbours of equal colour, against
    /// colour costs in nats.
    pub smoothness: f64,
    /// Weight of the colour costs.
    pub colour_weight: f64,
    /// The weight of the model's log-odds per pixel. Its probabilities are the network's
    /// output resized from its training size, blurred across edges, so at the pixel level
    /// they say less than the colours.
    pub model_weight: f64,
    /// Cost, in nats per pixel, of leaving the side the superpixel cut chose.
    pub coarse_weight: f64,
    /// Pixels within this distance of a click are tied to its side.
    pub click_radius: u32,
    /// Nats pulling a band pixel next to a click to the click's side (falling linearly to 0
    /// at `geodesic_reach`); 0 turns the pull off.
    pub geodesic_weight: f64,
    /// How far a click's pull carries, in the units of `geodesic_step`.
    pub geodesic_reach: f32,
    /// What each pixel step costs on the way, whatever the contrast: 1 / `geodesic_step`
    /// pixels is the farthest a click pulls along a flat sliver.
    pub geodesic_step: f32,
    /// Contrast (in units of the image's typical neighbour difference) crossed for free.
    pub geodesic_free: f32,
    /// Pixels closer than this (in 4-neighbour steps) to the coarse boundary do not fit the
    /// colour models.
    pub trust: u32,
    /// Mixture components per side.
    pub components: usize,
    /// At most this many pixels per side fit a mixture (every n-th pixel of the band).
    pub samples: usize,
    /// At most this many pixels are cut per click: past it, the band is the boundary
    /// superpixels nearest the newest click, which is where the person saw the largest error.
    /// The rest keep the region they had (see [`refine`]'s `base`). The cut's cost is about
    /// linear in its pixels, so this bounds a click's time however long the region's edge.
    pub max_pixels: usize,
}

impl Default for BandParams {
    fn default() -> Self {
        Self {
            rings: 0,
            smoothness: 50.0,
            colour_weight: 1.0,
            model_weight: 0.0,
            coarse_weight: 0.5,
            click_radius: 2,
            geodesic_weight: 15.0,
            geodesic_reach: 1.0,
            geodesic_step: 0.01,
            geodesic_free: 1.0,
            trust: 8,
            components: 5,
            samples: 4000,
            max_pixels: MAX_PIXELS,
        }
    }
}

/// The default [`BandParams::max_pixels`]. A 2048x1024 road's whole band is up to 270,000
/// pixels (its outline and every car on it), some 250 ms to cut on one core of a 2-core EPYC;
/// 60,000 took at most 106 ms there (the machine loaded), and measured best of 40,000 to
/// 60,000 on the bench's scenes (NoC@90 road / sidewalk / vehicle: 40,000 3.83 / 12.00 /
/// 8.83, 50,000 3.83 / 12.08 / 8.83, 60,000 3.83 / 11.83 / 8.67).
const MAX_PIXELS: usize = 60_000;

/// The blur, in pixels, of the colours whose differences weigh the pixel-level cut's edges:
/// single pixels of a noisy JPEG differ by more than many real edges.
const PAIR_BLUR: f32 = 1.0;
/// The lighter blur of the colours the mixtures see: at [`PAIR_BLUR`] a 2-pixel strip of road
/// between a kerb and a painted line takes the colours of both (measured on the hard scenes:
/// sidewalk NoC@90 13.00 at 1.0, 13.33 at 0.5 and vehicle 9.50 -> 7.75; unblurred, 13.50 and
/// 8.50).
const UNARY_BLUR: f32 = 0.5;

/// How much a step in colour (CIELAB's a and b) counts against one in lightness in the
/// pixel-level cut's edges. JPEG stores colour at half resolution (4:2:0), so a colour edge is
/// smeared over two pixels while the lightness edge beside it is sharp; at full weight the cut
/// wanders into the smear. Measured with `roadseg bench --assist`, NoC@90 vehicle without / with
/// a model on three sets of 6 hard scenes (seeds 17, 29, 41): 8.67 / 7.25, 7.29 / 5.71, 7.83 /
/// 7.75 at 1; 8.42 / 6.42, 6.29 / 4.14, 7.75 / 7.25 at 0.3. Sidewalks, whose edge to the road in
/// shadow is mostly a colour one, moved by -1.0 to +0.6 (+0.6 and 0 on seed 17, -0.2 and +0.3 on
/// 29, -1.0 and -0.6 on 41); the road by at most 0.17. Without colour at all (0), vehicles with
/// a model took 5.50 on seed 17 but sidewalks 13.00.
const CHROMA_WEIGHT: f32 = 0.3;

/// What the pixel-level cut precomputes per image: each pixel's blurred colour and the
/// contrast term to four of its neighbours, `exp(-beta |c_p - c_q|^2)` in 1/255ths (the other
/// four are the neighbours' own), `beta` being GrabCut's `1 / (2 mean |c_p - c_q|^2)` over
/// 4-neighbours, colour steps weighted by [`CHROMA_WEIGHT`]. Costs 16 bytes a pixel.
#[derive(Clone, Debug)]
pub struct PixelGrid {
    width: usize,
    colours: Vec<[f32; 3]>,
    /// Per pixel: to (x+1, y), (x, y+1), (x+1, y+1), (x-1, y+1).
    contrast: Vec<[u8; 4]>,
}

impl PixelGrid {
    pub fn new(lab: &LabImage) -> Self {
        let blurred = lab.blurred(PAIR_BLUR);
        let (w, h) = (lab.width as usize, lab.height as usize);
        let colours = blurred.data;
        let d2 = |a: [f32; 3], b: [f32; 3]| {
            (a[0] - b[0]).powi(2) + CHROMA_WEIGHT * ((a[1] - b[1]).powi(2) + (a[2] - b[2]).powi(2))
        };
        let (sum, count) = (0..h)
            .into_par_iter()
            .map(|y| {
                let row = &colours[y * w..(y + 1) * w];
                let mut sum: f64 = row.windows(2).map(|p| d2(p[0], p[1]) as f64).sum();
                if y + 1 < h {
                    let below = &colours[(y + 1) * w..(y + 2) * w];
                    sum += row
                        .iter()
                        .zip(below)
                        .map(|(&a, &b)| d2(a, b) as f64)
                        .sum::<f64>();
                }
                (
                    sum,
                    (w.saturating_sub(1) + if y + 1 < h { w } else { 0 }) as f64,
                )
            })
            .reduce(|| (0.0, 0.0), |a, b| (a.0 + b.0, a.1 + b.1));
        let beta = match sum > 0.0 {
            true => (count / (2.0 * sum)) as f32,
            false => 0.0,
        };
        let mut contrast = vec![[0u8; 4]; w * h];
        contrast
            .par_chunks_mut(w.max(1))
            .enumerate()
            .for_each(|(y, row)| {
                for (x, out) in row.iter_mut().enumerate() {
                    let c = colours[y * w + x];
                    let weight = |nx: i64, ny: usize| {
                        if nx < 0 || nx >= w as i64 || ny >= h {
                            return 0;
                        }
                        let d = d2(c, colours[ny * w + nx as usize]);
                        (255.0 * (-beta * d).exp()).round() as u8
                    };
                    let x = x as i64;
                    *out = [
                        weight(x + 1, y),
                        weight(x, y + 1),
                        weight(x + 1, y + 1),
                        weight(x - 1, y + 1),
                    ];
                }
            });
        let colours = lab.blurred(UNARY_BLUR).data;
        Self {
            width: w,
            colours,
            contrast,
        }
    }

    /// The colour step from pixel `i` to its neighbour at `(dx, dy)`, in units of the image's
    /// typical neighbour difference (read back from the stored weight: `weight = exp(-beta
    /// d^2)` and `beta = 1 / (2 typical^2)`, so `d / typical = sqrt(-2 ln weight)`).
    pub(super) fn step(&self, i: usize, dx: i64, dy: i64) -> f32 {
        static TABLE: std::sync::OnceLock<[f32; 256]> = std::sync::OnceLock::new();
        let table = TABLE.get_or_init(|| {
            // A weight of 0 stands for anything below half a unit.
            std::array::from_fn(|v| (-2.0 * (v.max(1) as f32 / 255.0).ln()).sqrt())
        });
        table[self.contrast(i, dx, dy) as usize]
    }

    /// The contrast term between pixel `i` and its neighbour at `(dx, dy)`, in 0..=255.
    fn contrast(&self, i: usize, dx: i64, dy: i64) -> u8 {
        let w = self.width as i64;
        let j = (i as i64 + dy * w + dx) as usize;
        match (dx, dy) {
            (1, 0) => self.contrast[i][0],
            (-1, 0) => self.contrast[j][0],
            (0, 1) => self.contrast[i][1],
            (0, -1) => self.contrast[j][1],
            (1, 1) => self.contrast[i][2],
            (-1, -1) => self.contrast[j][2],
            (-1, 1) => self.contrast[i][3],
            _ => self.contrast[j][3],
        }
    }
}

/// The 8 neighbours: (dx, dy, 1 / distance).
const NEIGHBOURS: [(i64, i64, f64); 8] = [
    (1, 0, 1.0),
    (-1, 0, 1.0),
    (0, 1, 1.0),
    (0, -1, 1.0),
    (1, 1, std::f64::consts::FRAC_1_SQRT_2),
    (-1, 1, std::f64::consts::FRAC_1_SQRT_2),
    (1, -1, std::f64::consts::FRAC_1_SQRT_2),
    (-1, -1, std::f64::consts::FRAC_1_SQRT_2),
];

/// The region per pixel (`true` inside) from the superpixels' sides `coarse`, its edge moved
/// to the image's by a cut over the band (the last of `clicks` is the newest; the band is
/// bounded around it, see [`BandParams::max_pixels`]). `previous`, the previous click's
/// superpixel sides and region (1 inside), when there is one: boundary superpixels left out
/// of a bounded band keep its pixels where their side did not change (the coarse side
/// elsewhere), so an edge refined by an earlier click stays refined. `prior`, when given, is
/// the model's probability per pixel (already checked to be the image's size).
pub fn refine(
    prepared: &Prepared,
    coarse: &[bool],
    previous: Option<(&[bool], &[u8])>,
    clicks: &[Click],
    prior: Option<&[f32]>,
    params: &BandParams,
) -> Vec<bool> {
    let sp = prepared.superpixels();
    let (w, h) = (sp.width as usize, sp.height as usize);
    let labels = &sp.labels;
    let mut out: Vec<bool> = labels.iter().map(|&l| coarse[l as usize]).collect();
    let whole = band_superpixels(prepared, coarse, params.rings);
    let band = nearest_within(prepared, whole.clone(), clicks.last(), params.max_pixels);
    if let Some((sides, region)) = previous {
        let keep: Vec<bool> = (0..coarse.len())
            .map(|l| whole[l] && !band[l] && sides[l] == coarse[l])
            .collect();
        for ((o, &l), &r) in out.iter_mut().zip(labels).zip(region) {
            if keep[l as usize] {
                *o = r == 1;
            }
        }
    }
    // Node index per pixel of the band.
    const OFF: u32 = u32::MAX;
    let mut node = vec![OFF; w * h];
    let mut pixels: Vec<u32> = Vec::new();
    for (i, &l) in labels.iter().enumerate() {
        if band[l as usize] {
            node[i] = pixels.len() as u32;
            pixels.push(i as u32);
        }
    }
    if pixels.is_empty() {
        return out;
    }
    let grid = prepared.pixels();
    let colours = &grid.colours;
    let (fg, bg) = fit_sides(grid, &pixels, &node, &out, clicks, params);
    let mut graph = Graph::with_capacity(pixels.len(), 4 * pixels.len());
    let unit = params.smoothness / 255.0;
    // Terminal weights: (cost of the background side, cost of the foreground side).
    let mut terminal: Vec<(f64, f64)> = pixels
        .iter()
        .map(|&i| {
            let c = colours[i as usize];
            let mut d = params.colour_weight * (bg.cost(c) - fg.cost(c));
            if let Some(prior) = prior {
                let m = (prior[i as usize] as f64).clamp(0.01, 0.99);
                d += params.model_weight * (m / (1.0 - m)).ln();
            }
            d += match out[i as usize] {
                true => params.coarse_weight,
                false => -params.coarse_weight,
            };
            // d > 0: the foreground is cheaper by d.
            (d.max(0.0), (-d).max(0.0))
        })
        .collect();
    for (n, &i) in pixels.iter().enumerate() {
        let i = i as usize;
        let (x, y) = ((i % w) as i64, (i / w) as i64);
        for &(dx, dy, inv) in &NEIGHBOURS {
            let (nx, ny) = (x + dx, y + dy);
            if nx < 0 || ny < 0 || nx >= w as i64 || ny >= h as i64 {
                continue;
            }
            let j = ny as usize * w + nx as usize;
            let weight = unit * inv * grid.contrast(i, dx, dy) as f64;
            match node[j] {
                // Each inner edge once, from its lower index.
                OFF => match out[j] {
                    true => terminal[n].0 += weight,
                    false => terminal[n].1 += weight,
                },
                m if j > i => graph.add_edge(n, m as usize, weight, weight),
                _ => {}
            }
        }
    }
    // Clicks: the last one on a pixel wins.
    let mut tied: Vec<Option<bool>> = vec![None; pixels.len()];
    let r = params.click_radius as i64;
    for c in clicks {
        for dy in -r..=r {
            for dx in -r..=r {
                let (x, y) = (c.x as i64 + dx, c.y as i64 + dy);
                if dx * dx + dy * dy > r * r || x < 0 || y < 0 || x >= w as i64 || y >= h as i64 {
                    continue;
                }
                let n = node[y as usize * w + x as usize];
                if n != OFF {
                    tied[n as usize] = Some(c.positive);
                }
            }
        }
    }
    // Near the clicks in the band, their side, as far as the colour carries it (the two signs'
    // walks are independent: one on each core).
    if params.geodesic_weight > 0.0 {
        let near = |positive| geodesic_nearness(grid, &pixels, &node, clicks, positive, params);
        let (to_positive, to_negative) = rayon::join(|| near(true), || near(false));
        for (n, (p, q)) in to_positive.into_iter().zip(to_negative).enumerate() {
            terminal[n].0 += params.geodesic_weight * p as f64;
            terminal[n].1 += params.geodesic_weight * q as f64;
        }
    }
    const HARD: f64 = 1e12;
    for (n, (bg_cost, fg_cost)) in terminal.into_iter().enumerate() {
        match tied[n] {
            Some(true) => graph.add_terminal_weights(n, HARD, 0.0),
            Some(false) => graph.add_terminal_weights(n, 0.0, HARD),
            None => graph.add_terminal_weights(n, bg_cost, fg_cost),
        }
    }
    graph.maxflow();
    for (n, &i) in pixels.iter().enumerate() {
        out[i as usize] = graph.in_source(n);
    }
    out
}

/// How near each band pixel is to the clicks of one sign, `1 - d / reach` (0 beyond), `d` the
/// geodesic distance over the band's pixels: each step costs `step` plus its contrast above
/// `free` (in units of the image's typical neighbour difference, read back from the stored
/// weights), so a click in a sliver the region wrongly holds reaches along the sliver and not
/// across its edge.
fn geodesic_nearness(
    grid: &PixelGrid,
    pixels: &[u32],
    node: &[u32],
    clicks: &[Click],
    positive: bool,
    params: &BandParams,
) -> Vec<f32> {
    use std::cmp::Reverse;
    let w = grid.width as i64;
    let h = grid.colours.len() as i64 / w.max(1);
    let reach = params.geodesic_reach;
    let mut dist = vec![f32::INFINITY; pixels.len()];
    let mut heap = std::collections::BinaryHeap::new();
    for c in clicks.iter().filter(|c| c.positive == positive) {
        let n = node[(c.y as i64 * w + c.x as i64) as usize];
        if n != u32::MAX {
            dist[n as usize] = 0.0;
            heap.push(Reverse((0u32, n)));
        }
    }
    // Distances as fixed-point integers so the heap orders them exactly.
    const SCALE: f32 = 1024.0;
    while let Some(Reverse((d, n))) = heap.pop() {
        let d = d as f32 / SCALE;
        if d > dist[n as usize] || d >= reach {
            continue;
        }
        let i = pixels[n as usize] as i64;
        let (x, y) = (i % w, i / w);
        for &(dx, dy, inv) in &NEIGHBOURS {
            let (nx, ny) = (x + dx, y + dy);
            if nx < 0 || ny < 0 || nx >= w || ny >= h {
                continue;
            }
            let m = node[(ny * w + nx) as usize];
            if m == u32::MAX {
                continue;
            }
            let c = grid.step(i as usize, dx, dy);
            let step = (params.geodesic_step + (c - params.geodesic_free).max(0.0)) / inv as f32;
            let nd = d + step;
            if nd < dist[m as usize] && nd < reach {
                dist[m as usize] = nd;
                heap.push(Reverse(((nd * SCALE) as u32, m)));
            }
        }
    }
    dist.iter().map(|&d| (1.0 - d / reach).max(0.0)).collect()
}

/// The superpixels of `band` nearest `focus` (by their boxes' centres) holding at most
/// `max_pixels` pixels together; all of them when they hold no more, or there is no focus.
fn nearest_within(
    prepared: &Prepared,
    mut band: Vec<bool>,
    focus: Option<&Click>,
    max_pixels: usize,
) -> Vec<bool> {
    let area = &prepared.area;
    let members: Vec<usize> = (0..band.len()).filter(|&i| band[i]).collect();
    let total: f64 = members.iter().map(|&i| area[i] as f64).sum();
    let Some(focus) = focus.filter(|_| total > max_pixels as f64) else {
        return band;
    };
    let distance = |i: usize| {
        let b = prepared.bounds_of(i);
        let dx = b.x as f64 + b.width as f64 / 2.0 - focus.x as f64;
        let dy = b.y as f64 + b.height as f64 / 2.0 - focus.y as f64;
        dx * dx + dy * dy
    };
    let mut by_distance: Vec<(f64, usize)> = members.iter().map(|&i| (distance(i), i)).collect();
    by_distance.sort_unstable_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    let mut taken = 0.0;
    for (_, i) in by_distance {
        taken += area[i] as f64;
        if taken > max_pixels as f64 {
            band[i] = false;
        }
    }
    band
}

/// The superpixels on the boundary between `coarse`'s sides, and `rings` rings around them.
fn band_superpixels(prepared: &Prepared, coarse: &[bool], rings: usize) -> Vec<bool> {
    let adjacency = prepared.adjacency();
    let mut band: Vec<bool> = (0..coarse.len())
        .map(|i| {
            adjacency[i]
                .iter()
                .any(|&(j, _)| coarse[j as usize] != coarse[i])
        })
        .collect();
    let mut frontier: Vec<usize> = (0..band.len()).filter(|&i| band[i]).collect();
    for _ in 0..rings {
        let mut next = Vec::new();
        for &i in &frontier {
            for &(j, _) in &adjacency[i] {
                if !band[j as usize] {
                    band[j as usize] = true;
                    next.push(j as usize);
                }
            }
        }
        frontier = next;
    }
    band
}

/// Mixtures fitted to each side's trusted colours: the band's pixels at least `trust` steps
/// (4-neighbour steps within the band) from the coarse boundary, where the superpixels are
/// unlikely to be wrong, and the pixels around the clicks of that side. The pixels next to the
/// coarse boundary are left out: fitted to, a strip the coarse cut took by mistake would make
/// its own colour look like the region's.
fn fit_sides(
    grid: &PixelGrid,
    pixels: &[u32],
    node: &[u32],
    inside: &[bool],
    clicks: &[Click],
    params: &BandParams,
) -> (Gmm, Gmm) {
    let w = grid.width;
    let h = grid.colours.len() / w.max(1);
    // Steps from the coarse boundary, by a breadth-first walk from the band's pixels that
    // touch the other side.
    const FAR: u16 = u16::MAX;
    let mut steps = vec![FAR; pixels.len()];
    let mut queue = std::collections::VecDeque::new();
    let neighbours = |i: usize| {
        let (x, y) = (i % w, i / w);
        [
            (x > 0).then(|| i - 1),
            (x + 1 < w).then(|| i + 1),
            (y > 0).then(|| i - w),
            (y + 1 < h).then(|| i + w),
        ]
        .into_iter()
        .flatten()
    };
    for (n, &i) in pixels.iter().enumerate() {
        let i = i as usize;
        if neighbours(i).any(|j| inside[j] != inside[i]) {
            steps[n] = 0;
            queue.push_back(n);
        }
    }
    let trust = params.trust as u16;
    while let Some(n) = queue.pop_front() {
        if steps[n] >= trust {
            continue;
        }
        let i = pixels[n] as usize;
        for j in neighbours(i) {
            let m = node[j];
            if m != u32::MAX && steps[m as usize] == FAR && inside[j] == inside[i] {
                steps[m as usize] = steps[n] + 1;
                queue.push_back(m as usize);
            }
        }
    }
    let mut samples = [Vec::new(), Vec::new()];
    for (n, &i) in pixels.iter().enumerate() {
        if steps[n] >= trust {
            samples[usize::from(inside[i as usize])].push(grid.colours[i as usize]);
        }
    }
    // Around each click, its side's colour; weighted like a patch of the band.
    let r = params.click_radius.max(2) as i64;
    for c in clicks {
        for dy in -r..=r {
            for dx in -r..=r {
                let (x, y) = (c.x as i64 + dx, c.y as i64 + dy);
                if x >= 0 && y >= 0 && (x as usize) < w && (y as usize) < h {
                    let colour = grid.colours[y as usize * w + x as usize];
                    samples[usize::from(c.positive)].push(colour);
                }
            }
        }
    }
    let fit = |samples: &[[f32; 3]]| {
        let stride = samples.len().div_ceil(params.samples.max(1)).max(1);
        let picked: Vec<[f32; 3]> = samples.iter().step_by(stride).copied().collect();
        const ROUNDS: usize = 3;
        Gmm::fit(&picked, params.components, ROUNDS)
    };
    // The two sides' fits are independent: one on each core.
    rayon::join(|| fit(&samples[1]), || fit(&samples[0]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::assist::smart::{Params, smart_region_with};
    use crate::core::mask::Mask;
    use crate::core::rng::Rng;
    use image::{Rgb, RgbImage};

    /// Noisy grey left of a slanted edge, noisy blue right of it (the edge crosses the
    /// superpixel grid at every angle), and the exact answer.
    fn slanted(noise: f32) -> (RgbImage, Mask) {
        let (w, h) = (160u32, 120u32);
        let mut rng = Rng::new(5);
        let mut answer = Mask::filled(w, h, 0);
        let edge = |y: u32| 61.3 + 0.37 * y as f32;
        let image = RgbImage::from_fn(w, h, |x, y| {
            let left = (x as f32) + 0.5 < edge(y);
            let base = match left {
                true => [120.0, 120.0, 125.0],
                false => [70.0, 90.0, 150.0],
            };
            Rgb(base.map(|c: f32| (c + noise * rng.normal()).clamp(0.0, 255.0) as u8))
        });
        for y in 0..h {
            for x in 0..w {
                if (x as f32) + 0.5 < edge(y) {
                    answer.set(x, y, 1);
                }
            }
        }
        (image, answer)
    }

    /// [`slanted`] with noise 12, prepared with superpixels about 12 pixels across; and its
    /// answer.
    fn slanted_prepared() -> (Prepared, Mask) {
        let (image, answer) = slanted(12.0);
        let params = crate::core::assist::superpixels::SlicParams {
            region_size: 12,
            ..Default::default()
        };
        (Prepared::with_params(&image, params), answer)
    }

    fn errors(a: &Mask, b: &Mask) -> usize {
        a.data.iter().zip(&b.data).filter(|(a, b)| a != b).count()
    }

    #[test]
    fn the_band_moves_the_edge_to_the_image_edge() {
        let (prepared, answer) = slanted_prepared();
        let click = [Click {
            x: 20,
            y: 60,
            positive: true,
        }];
        let coarse = Params {
            band: None,
            ..Params::default()
        };
        let fine = Params::default();
        let before = errors(
            &smart_region_with(&prepared, &click, None, &coarse).unwrap(),
            &answer,
        );
        let after = errors(
            &smart_region_with(&prepared, &click, None, &fine).unwrap(),
            &answer,
        );
        // 120 rows: at most about one wrong pixel per row once refined.
        assert!(
            after <= 130,
            "{after} pixels wrong after the band (before: {before})"
        );
        assert!(after * 2 < before, "before {before}, after {after}");
    }

    #[test]
    fn the_band_is_the_boundary_superpixels_and_their_rings() {
        let (image, _) = slanted(0.0);
        let prepared = Prepared::new(&image);
        let n = prepared.superpixels().count;
        let left: Vec<bool> = (0..n)
            .map(|i| prepared.bounds_of(i).x + prepared.bounds_of(i).width / 2 < 60)
            .collect();
        let band0 = band_superpixels(&prepared, &left, 0);
        let band1 = band_superpixels(&prepared, &left, 1);
        let adjacency = prepared.adjacency();
        for i in 0..n {
            let on_boundary = adjacency[i]
                .iter()
                .any(|&(j, _)| left[j as usize] != left[i]);
            assert_eq!(band0[i], on_boundary);
            let near = on_boundary || adjacency[i].iter().any(|&(j, _)| band0[j as usize]);
            assert_eq!(band1[i], near);
        }
        assert!(
            band0.iter().any(|&b| b)
                && band1.iter().filter(|&&b| b).count() > band0.iter().filter(|&&b| b).count()
        );
    }

    #[test]
    fn a_bounded_band_is_the_boundary_nearest_the_click() {
        let (image, _) = slanted(0.0);
        let prepared = Prepared::new(&image);
        let n = prepared.superpixels().count;
        let all = vec![true; n];
        let focus = Click {
            x: 20,
            y: 60,
            positive: true,
        };
        let kept = nearest_within(&prepared, all.clone(), Some(&focus), 2000);
        let area = |i: usize| prepared.area[i] as f64;
        let total: f64 = (0..n).filter(|&i| kept[i]).map(area).sum();
        assert!(total <= 2000.0 && total > 1500.0, "{total} pixels kept");
        let distance = |i: usize| {
            let b = prepared.bounds_of(i);
            let dx = b.x as f64 + b.width as f64 / 2.0 - 20.0;
            let dy = b.y as f64 + b.height as f64 / 2.0 - 60.0;
            dx * dx + dy * dy
        };
        let farthest_kept = (0..n)
            .filter(|&i| kept[i])
            .map(distance)
            .fold(0.0, f64::max);
        let nearest_dropped = (0..n)
            .filter(|&i| !kept[i])
            .map(distance)
            .fold(f64::INFINITY, f64::min);
        assert!(farthest_kept <= nearest_dropped);
        // Within the bound, or without a click, the band stays whole.
        assert_eq!(
            nearest_within(&prepared, all.clone(), Some(&focus), 160 * 120),
            all
        );
        assert_eq!(nearest_within(&prepared, all.clone(), None, 10), all);
    }

    #[test]
    fn outside_a_bounded_band_the_previous_pixels_stay() {
        let (prepared, answer) = slanted_prepared();
        let n = prepared.superpixels().count;
        let labels = &prepared.superpixels().labels;
        let coarse: Vec<bool> = (0..n)
            .map(|i| prepared.bounds_of(i).x + prepared.bounds_of(i).width / 2 < 80)
            .collect();
        // The click at the top of the edge; the bound takes about a third of the band.
        let clicks = [Click {
            x: 20,
            y: 5,
            positive: true,
        }];
        let whole = band_superpixels(&prepared, &coarse, 0);
        let band_pixels: usize = labels.iter().filter(|&&l| whole[l as usize]).count();
        let params = BandParams {
            max_pixels: band_pixels / 3,
            ..BandParams::default()
        };
        let bounded = nearest_within(&prepared, whole.clone(), clicks.last(), params.max_pixels);
        let previous: (&[bool], &[u8]) = (&coarse, &answer.data);
        let out = refine(&prepared, &coarse, Some(previous), &clicks, None, &params);
        let first = refine(&prepared, &coarse, None, &clicks, None, &params);
        let (mut kept, mut cut_errors, mut cut_pixels) = (0, 0, 0);
        for (i, &l) in labels.iter().enumerate() {
            let l = l as usize;
            if whole[l] && !bounded[l] {
                // Left out: the previous click's pixels, or the coarse side on a first click.
                assert_eq!(out[i], answer.data[i] == 1, "pixel {i}");
                assert_eq!(first[i], coarse[l], "pixel {i}");
                kept += 1;
            } else if bounded[l] {
                cut_pixels += 1;
                cut_errors += usize::from(out[i] != (answer.data[i] == 1));
            } else {
                assert_eq!(out[i], coarse[l]);
            }
        }
        assert!(kept > 0 && cut_pixels > 0);
        // Inside the bound the edge still moves to the image's: about a pixel per row.
        assert!(
            cut_errors < 60,
            "{cut_errors} of {cut_pixels} cut pixels wrong"
        );
    }

    #[test]
    fn contrast_weights_are_symmetric_and_low_across_edges() {
        let (image, _) = slanted(0.0);
        let grid = PixelGrid::new(&LabImage::from_rgb(&image));
        let w = 160usize;
        // Far from the edge, flat: the full weight; across it: almost none.
        let flat = 10 * w + 5;
        assert!(
            grid.contrast(flat, 1, 0) > 200,
            "{}",
            grid.contrast(flat, 1, 0)
        );
        let y = 50usize;
        let x = (61.3 + 0.37 * y as f32) as usize;
        let across = y * w + x - 1;
        assert!(
            grid.contrast(across, 1, 0) < 60,
            "{}",
            grid.contrast(across, 1, 0)
        );
        for (dx, dy) in [(1, 0), (0, 1), (1, 1), (-1, 1)] {
            let i = 40 * w + 70;
            let j = (i as i64 + dy * w as i64 + dx) as usize;
            assert_eq!(grid.contrast(i, dx, dy), grid.contrast(j, -dx, -dy));
        }
    }
}
