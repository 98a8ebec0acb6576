//! Click-to-segment ("Smart region"): a graph cut over the image's superpixels.
//!
//! Per image, once ([`Prepared::new`], in the background when the studio opens an image):
//! CIELAB, SLIC superpixels ([`super::superpixels`]), and their adjacency graph, each edge
//! carrying the length of the shared boundary and its contrast (the CIELAB distance between the
//! two means: a mean is the image denoised at the superpixel's scale, where pixel pairs across
//! a boundary measure sensor noise).
//!
//! Per click ([`smart_region`]), on the superpixel graph:
//! 1. Geodesic distances from the positive and from the negative clicks, an edge costing its
//!    contrast above the image's typical contrast (the median edge's): a road's texture is
//!    free to cross however long the road, a kerb or a car's outline is not.
//! 2. A foreground probability per superpixel from those distances, `d_neg / (d_pos + d_neg)`
//!    (Bai and Sapiro's geodesic probability; without a negative click the background sits at a
//!    fixed distance), multiplied, as odds, with the model's probability for the class when a
//!    run is open, averaged over the superpixel.
//! 3. A minimum cut ([`super::maxflow`]) of `-ln p` unaries weighted by area and contrast-
//!    sensitive pairwise terms weighted by boundary length, the clicked superpixels tied to
//!    their side; then only the part connected to a positive click is kept.
//!
//! Cost: preparing a 2048x1024 image is dominated by SLIC; each click is two Dijkstra runs
//! and a cut over ~30,000 superpixels plus one pass over the pixels to draw
//! the region, about 10 ms (`roadseg bench --assist` reports both).

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use image::RgbImage;

use super::maxflow::Graph;
use super::superpixels::{LabImage, SlicParams, Superpixels, slic};
use super::{AssistError, Click};
use crate::core::mask::Mask;
use crate::core::paint::DirtyRect;

/// How many superpixels click-to-segment aims at: finer ones fix more with each click (on the
/// hard 1024x512 scenes 8,000 left 16 of 20 objects failing, 30,000 left 10).
const SUPERPIXELS: f64 = 30_000.0;

/// Superpixel size for click-to-segment at a given image size: about [`SUPERPIXELS`] of
/// them, no smaller than 6 pixels across (small images, where smaller ones measure noise) and no larger than 24.
pub fn region_size_for(width: u32, height: u32) -> u32 {
    let area = width as f64 * height as f64;
    ((area / SUPERPIXELS).sqrt().round() as u32).clamp(6, 24)
}

/// How strongly neighbouring superpixels are pulled to the same side, per pixel of shared
/// boundary (the unaries are per pixel of area).
const SMOOTHNESS: f64 = 3.0;
/// The background's distance when there is no negative click, in units of the image's
/// contrast scale: how much edge a region crosses before it stops.
const BACKGROUND_DISTANCE: f64 = 4.0;
/// Contrast below this fraction of the image's typical contrast costs nothing on a path.
const FREE_CONTRAST: f32 = 0.5;
/// How much a colour unlike the clicks' counts against a superpixel, against the edges on its
/// way there.
const COLOUR_WEIGHT: f32 = 0.5;
/// The power the model's odds are raised to. At 1 (plain odds product) a model trained on 10
/// hard scenes made road NoC@90 worse (4.2 -> 10.8): such a model is confidently wrong in
/// places. 0.5 no longer let a confident model carry a region across a colour change. Left at 1
/// until a better-trained run measures otherwise.
const MODEL_WEIGHT: f64 = 1.0;
/// Probabilities are kept inside `[EPS, 1 - EPS]` before taking logs.
const EPS: f64 = 0.01;

#[derive(Clone, Copy, Debug)]
struct Edge {
    a: u32,
    b: u32,
    /// Pixel pairs across the shared boundary.
    length: f32,
    /// CIELAB distance between the two superpixels' means.
    contrast: f32,
}

/// What click-to-segment precomputes once per image.
#[derive(Clone, Debug)]
pub struct Prepared {
    params: SlicParams,
    superpixels: Superpixels,
    /// Pixels per superpixel.
    area: Vec<f32>,
    edges: Vec<Edge>,
    /// Per superpixel: (neighbour, edge index).
    adjacency: Vec<Vec<(u32, u32)>>,
    /// The typical edge contrast (median): what texture looks like in this image.
    contrast_scale: f32,
    /// Per superpixel, its bounding box.
    bounds: Vec<DirtyRect>,
    /// Per superpixel, its mean colour.
    mean: Vec<[f32; 3]>,
}

impl Prepared {
    pub fn new(image: &RgbImage) -> Self {
        let (w, h) = image.dimensions();
        Self::with_params(
            image,
            SlicParams {
                region_size: region_size_for(w, h),
                ..SlicParams::default()
            },
        )
    }

    pub fn with_params(image: &RgbImage, params: SlicParams) -> Self {
        let lab = LabImage::from_rgb(image);
        let superpixels = slic(&lab, params);
        Self::from_superpixels(&lab, superpixels, params)
    }

    fn from_superpixels(lab: &LabImage, superpixels: Superpixels, params: SlicParams) -> Self {
        let (w, h) = (lab.width as usize, lab.height as usize);
        let labels = &superpixels.labels;
        let mut area = vec![0f32; superpixels.count];
        let mut extent = vec![[u32::MAX, u32::MAX, 0, 0]; superpixels.count];
        let mut sum = vec![[0f64; 3]; superpixels.count];
        for (i, &l) in labels.iter().enumerate() {
            area[l as usize] += 1.0;
            let (p, s) = (lab.data[i], &mut sum[l as usize]);
            s.iter_mut().zip(p).for_each(|(s, p)| *s += p as f64);
            let (x, y) = ((i % w) as u32, (i / w) as u32);
            let e = &mut extent[l as usize];
            *e = [e[0].min(x), e[1].min(y), e[2].max(x), e[3].max(y)];
        }
        let bounds = extent
            .iter()
            .map(|e| DirtyRect {
                x: e[0],
                y: e[1],
                width: e[2] - e[0] + 1,
                height: e[3] - e[1] + 1,
            })
            .collect();
        // Every pair of 4-neighbours with different labels, as (low, high).
        let mut pairs: Vec<(u32, u32)> = Vec::new();
        for y in 0..h {
            for x in 0..w {
                let i = y * w + x;
                for j in [(x + 1 < w).then_some(i + 1), (y + 1 < h).then_some(i + w)]
                    .into_iter()
                    .flatten()
                {
                    let (a, b) = (labels[i], labels[j]);
                    if a != b {
                        pairs.push((a.min(b), a.max(b)));
                    }
                }
            }
        }
        pairs.sort_unstable();
        let mut edges: Vec<Edge> = Vec::new();
        for (a, b) in pairs {
            match edges.last_mut() {
                Some(e) if (e.a, e.b) == (a, b) => e.length += 1.0,
                _ => edges.push(Edge {
                    a,
                    b,
                    length: 1.0,
                    contrast: 0.0,
                }),
            }
        }
        let mean: Vec<[f32; 3]> = sum
            .iter()
            .zip(&area)
            .map(|(s, &a)| s.map(|v| (v / a as f64) as f32))
            .collect();
        let mut adjacency = vec![Vec::new(); superpixels.count];
        for (k, e) in edges.iter_mut().enumerate() {
            e.contrast = colour_distance(mean[e.a as usize], mean[e.b as usize]);
            adjacency[e.a as usize].push((e.b, k as u32));
            adjacency[e.b as usize].push((e.a, k as u32));
        }
        let mut contrasts: Vec<f32> = edges.iter().map(|e| e.contrast).collect();
        let contrast_scale = match contrasts.is_empty() {
            true => 1.0,
            false => {
                let mid = contrasts.len() / 2;
                *contrasts.select_nth_unstable_by(mid, f32::total_cmp).1
            }
        }
        .max(1.0);
        Self {
            params,
            superpixels,
            area,
            edges,
            adjacency,
            contrast_scale,
            bounds,
            mean,
        }
    }

    /// Bounding box of superpixel `label`.
    pub fn bounds_of(&self, label: usize) -> DirtyRect {
        self.bounds[label]
    }

    /// The superpixels' parameters.
    pub fn params(&self) -> SlicParams {
        self.params
    }

    pub fn size(&self) -> [u32; 2] {
        [self.superpixels.width, self.superpixels.height]
    }

    pub fn superpixels(&self) -> &Superpixels {
        &self.superpixels
    }

    fn label_at(&self, x: u32, y: u32) -> usize {
        self.superpixels.labels[(y * self.superpixels.width + x) as usize] as usize
    }

    /// What crossing edge `k` costs on a geodesic path.
    fn edge_cost(&self, k: usize) -> f64 {
        let excess = self.edges[k].contrast - FREE_CONTRAST * self.contrast_scale;
        (excess.max(0.0) / self.contrast_scale) as f64
    }

    /// Geodesic distance of every superpixel from the nearest of `seeds` (Dijkstra).
    fn distances(&self, seeds: &[usize]) -> Vec<f64> {
        let mut dist = vec![f64::INFINITY; self.area.len()];
        let mut heap = BinaryHeap::new();
        for &s in seeds {
            dist[s] = 0.0;
            heap.push(Reverse((Ordered(0.0), s)));
        }
        while let Some(Reverse((Ordered(d), i))) = heap.pop() {
            if d > dist[i] {
                continue;
            }
            for &(j, k) in &self.adjacency[i] {
                let nd = d + self.edge_cost(k as usize);
                if nd < dist[j as usize] {
                    dist[j as usize] = nd;
                    heap.push(Reverse((Ordered(nd), j as usize)));
                }
            }
        }
        dist
    }
}

fn colour_distance(p: [f32; 3], q: [f32; 3]) -> f32 {
    ((p[0] - q[0]).powi(2) + (p[1] - q[1]).powi(2) + (p[2] - q[2]).powi(2)).sqrt()
}

/// An `f64` that sorts (distances are never NaN).
#[derive(Clone, Copy, Debug, PartialEq)]
struct Ordered(f64);
impl Eq for Ordered {}
impl PartialOrd for Ordered {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Ordered {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.total_cmp(&other.0)
    }
}

/// The region the clicks ask for (1 inside, 0 outside). Clicks apply in order: a later click
/// on the same superpixel overrides an earlier one. `prior`, when given, is the model's
/// probability (0..=1) per pixel, row-major, that the pixel belongs to the class being
/// labelled.
pub fn smart_region(
    prepared: &Prepared,
    clicks: &[Click],
    prior: Option<&[f32]>,
) -> Result<Mask, AssistError> {
    check(prepared, clicks, prior)?;
    let n = prepared.area.len();
    // The side each clicked superpixel is tied to, the last click winning.
    let mut tied: Vec<Option<bool>> = vec![None; n];
    for c in clicks {
        tied[prepared.label_at(c.x, c.y)] = Some(c.positive);
    }
    let positive: Vec<usize> = (0..n).filter(|&i| tied[i] == Some(true)).collect();
    let negative: Vec<usize> = (0..n).filter(|&i| tied[i] == Some(false)).collect();
    if positive.is_empty() {
        // Every positive click was overridden by a negative one on its superpixel.
        let [w, h] = prepared.size();
        return Ok(Mask::filled(w, h, 0));
    }
    // Distance = the edges crossed on the way plus how far the colour is from the nearest
    // click's: a region that leaked through a blurred spot still looks unlike the click.
    let colour_cost = |seeds: &[usize], i: usize| {
        let nearest = seeds
            .iter()
            .map(|&s| colour_distance(prepared.mean[s], prepared.mean[i]))
            .fold(f32::INFINITY, f32::min);
        (COLOUR_WEIGHT
            * ((nearest - FREE_CONTRAST * prepared.contrast_scale).max(0.0)
                / prepared.contrast_scale)) as f64
    };
    let d_pos: Vec<f64> = prepared
        .distances(&positive)
        .into_iter()
        .enumerate()
        .map(|(i, d)| d + colour_cost(&positive, i))
        .collect();
    let d_neg: Vec<f64> = match negative.is_empty() {
        true => vec![BACKGROUND_DISTANCE; n],
        false => prepared
            .distances(&negative)
            .into_iter()
            .enumerate()
            .map(|(i, d)| (d + colour_cost(&negative, i)).min(BACKGROUND_DISTANCE))
            .collect(),
    };
    let model = prior.map(|p| mean_per_superpixel(prepared, p));
    let mut graph = Graph::new(n);
    for i in 0..n {
        let (a, b) = (d_pos[i], d_neg[i]);
        let mut p = match (a.is_finite(), a + b == 0.0) {
            (false, _) => 0.0,
            (true, true) => 0.5,
            (true, false) => b / (a + b),
        };
        if let Some(model) = &model {
            // Odds multiply: the clicks' geodesic evidence and the model's.
            let m = (model[i] as f64).clamp(EPS, 1.0 - EPS);
            let q = p.clamp(EPS, 1.0 - EPS);
            let odds = q / (1.0 - q) * (m / (1.0 - m)).powf(MODEL_WEIGHT);
            p = odds / (1.0 + odds);
        }
        let p = p.clamp(EPS, 1.0 - EPS);
        let area = prepared.area[i] as f64;
        match tied[i] {
            Some(true) => graph.add_terminal_weights(i, f64::MAX / 4.0, 0.0),
            Some(false) => graph.add_terminal_weights(i, 0.0, f64::MAX / 4.0),
            // Source capacity: what putting it outside costs, and the reverse.
            None => graph.add_terminal_weights(i, -(1.0 - p).ln() * area, -p.ln() * area),
        }
    }
    let scale = prepared.contrast_scale as f64;
    for e in &prepared.edges {
        let c = e.contrast as f64 / scale;
        let w = SMOOTHNESS * e.length as f64 * (-0.5 * c * c).exp();
        graph.add_edge(e.a as usize, e.b as usize, w, w);
    }
    graph.maxflow();
    // Keep what is connected to a positive click.
    let mut inside = vec![false; n];
    let mut stack = positive.clone();
    for &s in &positive {
        inside[s] = true;
    }
    while let Some(i) = stack.pop() {
        for &(j, _) in &prepared.adjacency[i] {
            let j = j as usize;
            if !inside[j] && graph.in_source(j) {
                inside[j] = true;
                stack.push(j);
            }
        }
    }
    let [w, h] = prepared.size();
    let data = prepared
        .superpixels
        .labels
        .iter()
        .map(|&l| inside[l as usize] as u8)
        .collect();
    Ok(Mask {
        width: w,
        height: h,
        data,
    })
}

fn mean_per_superpixel(prepared: &Prepared, values: &[f32]) -> Vec<f32> {
    let mut sum = vec![0f64; prepared.area.len()];
    for (&l, &v) in prepared.superpixels.labels.iter().zip(values) {
        sum[l as usize] += v as f64;
    }
    sum.iter()
        .zip(&prepared.area)
        .map(|(s, a)| (s / *a as f64) as f32)
        .collect()
}

fn check(prepared: &Prepared, clicks: &[Click], prior: Option<&[f32]>) -> Result<(), AssistError> {
    let [width, height] = prepared.size();
    for (index, c) in clicks.iter().enumerate() {
        if c.x >= width || c.y >= height {
            return Err(AssistError::ClickOutside {
                index,
                x: c.x,
                y: c.y,
                width,
                height,
            });
        }
    }
    if !clicks.iter().any(|c| c.positive) {
        return Err(AssistError::NoPositiveClick);
    }
    if let Some(p) = prior
        && p.len() != width as usize * height as usize
    {
        return Err(AssistError::PriorSize {
            got: p.len(),
            width,
            height,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::Rgb;

    /// A noisy textured image: a grey "road" band with a darker "car" rectangle on it, a pink
    /// "sidewalk" above and green below; the answer masks drawn with it.
    fn scene() -> (RgbImage, Mask, Mask) {
        let (w, h) = (320u32, 200u32);
        let mut image = RgbImage::new(w, h);
        let mut road = Mask::filled(w, h, 0);
        let mut car = Mask::filled(w, h, 0);
        let mut state = 99u32;
        for (x, y, p) in image.enumerate_pixels_mut() {
            state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            let noise = (state >> 24) as i32 % 30 - 15;
            let in_car = (140..210).contains(&x) && (90..130).contains(&y);
            let base: [i32; 3] = if in_car {
                [30, 40, 110]
            } else if (60..160).contains(&y) {
                [110, 110, 115]
            } else if y < 60 {
                [200, 150, 190]
            } else {
                [80, 140, 60]
            };
            if in_car {
                car.set(x, y, 1);
            } else if (60..160).contains(&y) {
                road.set(x, y, 1);
            }
            *p = Rgb(base.map(|c| (c + noise).clamp(0, 255) as u8));
        }
        (image, road, car)
    }

    fn iou(a: &Mask, b: &Mask) -> f64 {
        let inter = a
            .data
            .iter()
            .zip(&b.data)
            .filter(|(a, b)| **a == 1 && **b == 1);
        let union = a
            .data
            .iter()
            .zip(&b.data)
            .filter(|(a, b)| **a == 1 || **b == 1);
        inter.count() as f64 / union.count().max(1) as f64
    }

    fn click(x: u32, y: u32, positive: bool) -> Click {
        Click { x, y, positive }
    }

    #[test]
    fn one_click_takes_the_object_under_it() {
        let (image, road, car) = scene();
        let prepared = Prepared::new(&image);
        let region = smart_region(&prepared, &[click(50, 110, true)], None).unwrap();
        assert!(iou(&region, &road) > 0.9, "road {}", iou(&region, &road));
        let region = smart_region(&prepared, &[click(175, 110, true)], None).unwrap();
        assert!(iou(&region, &car) > 0.9, "car {}", iou(&region, &car));
    }

    #[test]
    fn a_negative_click_takes_a_part_away() {
        let (image, road, _) = scene();
        let prepared = Prepared::new(&image);
        // Road and car together first (two positives), then the car taken away.
        let both = [click(50, 110, true), click(175, 110, true)];
        let region = smart_region(&prepared, &both, None).unwrap();
        assert!(region.get(175, 110) == 1 && region.get(50, 110) == 1);
        let fixed = [both[0], both[1], click(175, 110, false)];
        let region = smart_region(&prepared, &fixed, None).unwrap();
        assert_eq!(region.get(175, 110), 0);
        assert!(iou(&region, &road) > 0.9, "{}", iou(&region, &road));
    }

    #[test]
    fn the_model_prior_pulls_the_region_where_colour_cannot() {
        // The sidewalk is split in two colours; the model knows it is one class.
        let (mut image, _, _) = scene();
        for y in 0..60 {
            for x in 160..320 {
                image.put_pixel(x, y, Rgb([230, 200, 150]));
            }
        }
        let prepared = Prepared::new(&image);
        let clicks = [click(40, 30, true)];
        let alone = smart_region(&prepared, &clicks, None).unwrap();
        assert_eq!(alone.get(250, 30), 0, "colour alone stops at the change");
        let prior: Vec<f32> = (0..320 * 200)
            .map(|i| if i / 320 < 60 { 0.95 } else { 0.05 })
            .collect();
        let helped = smart_region(&prepared, &clicks, Some(&prior)).unwrap();
        assert_eq!(helped.get(250, 30), 1, "the model carries it across");
        assert_eq!(helped.get(40, 110), 0, "and not onto the road");
    }

    #[test]
    fn bad_clicks_are_errors() {
        let (image, _, _) = scene();
        let prepared = Prepared::new(&image);
        assert_eq!(
            smart_region(&prepared, &[click(320, 5, true)], None),
            Err(AssistError::ClickOutside {
                index: 0,
                x: 320,
                y: 5,
                width: 320,
                height: 200
            })
        );
        assert_eq!(
            smart_region(&prepared, &[click(3, 5, false)], None),
            Err(AssistError::NoPositiveClick)
        );
        assert!(matches!(
            smart_region(&prepared, &[click(3, 5, true)], Some(&[0.5; 10])),
            Err(AssistError::PriorSize { got: 10, .. })
        ));
    }
}
