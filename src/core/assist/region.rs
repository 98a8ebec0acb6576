//! What click-to-segment ([`super::smart`]) and the superpixel brush precompute once per image
//! ([`Prepared::new`], in the background when the studio opens an image): CIELAB, SLIC
//! superpixels ([`super::superpixels`]) and their adjacency graph, each edge carrying the length
//! of the shared boundary and its contrast (the CIELAB distance between the two means: a mean is
//! the image denoised at the superpixel's scale, where pixel pairs across a boundary measure
//! sensor noise), and the pixel-level cut's blurred colours and neighbour weights
//! ([`super::band::PixelGrid`]); then geodesic distances over that graph, per click.
//!
//! Cost: preparing a 2048x1024 image takes about 250 ms on 2 cores (CIELAB 25 ms, SLIC 90 ms, the
//! pixel-level cut's blurs and weights 120 ms, the graph 40 ms; `roadseg bench --assist`
//! reports it); a geodesic distance is one Dijkstra run over ~20,000 superpixels.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use image::RgbImage;

use super::band::PixelGrid;
use super::superpixels::{LabImage, SlicParams, Superpixels, slic};
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

#[derive(Clone, Copy, Debug)]
pub(super) struct Edge {
    pub a: u32,
    pub b: u32,
    /// Pixel pairs across the shared boundary.
    pub length: f32,
    /// CIELAB distance between the two superpixels' means.
    pub contrast: f32,
}

/// What click-to-segment precomputes once per image.
#[derive(Clone, Debug)]
pub struct Prepared {
    params: SlicParams,
    superpixels: Superpixels,
    /// Pixels per superpixel.
    pub(super) area: Vec<f32>,
    pub(super) edges: Vec<Edge>,
    /// Per superpixel: (neighbour, edge index).
    adjacency: Vec<Vec<(u32, u32)>>,
    /// The typical edge contrast (median): what texture looks like in this image.
    pub(super) contrast_scale: f32,
    /// Per superpixel, its bounding box.
    bounds: Vec<DirtyRect>,
    /// Per superpixel, its mean colour.
    pub(super) mean: Vec<[f32; 3]>,
    /// What the pixel-level cut needs: blurred colours and neighbour weights.
    pixels: PixelGrid,
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
        let pixels = PixelGrid::new(&lab);
        Self::from_superpixels(&lab, superpixels, params, pixels)
    }

    fn from_superpixels(
        lab: &LabImage,
        superpixels: Superpixels,
        params: SlicParams,
        pixels: PixelGrid,
    ) -> Self {
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
            pixels,
        }
    }

    pub(super) fn pixels(&self) -> &PixelGrid {
        &self.pixels
    }

    /// Per superpixel: (neighbour, edge index).
    pub(super) fn adjacency(&self) -> &[Vec<(u32, u32)>] {
        &self.adjacency
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

    pub(super) fn label_at(&self, x: u32, y: u32) -> usize {
        self.superpixels.labels[(y * self.superpixels.width + x) as usize] as usize
    }

    /// Geodesic distance of every superpixel from the nearest of `seeds` (Dijkstra), crossing
    /// edge `k` costing `cost[k]`.
    pub(super) fn distances(&self, seeds: &[usize], cost: &[f64]) -> Vec<f64> {
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
                let nd = d + cost[k as usize];
                if nd < dist[j as usize] {
                    dist[j as usize] = nd;
                    heap.push(Reverse((Ordered(nd), j as usize)));
                }
            }
        }
        dist
    }
}

pub(super) fn colour_distance(p: [f32; 3], q: [f32; 3]) -> f32 {
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
