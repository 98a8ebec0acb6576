//! Click-to-segment (the "Smart region" tool): positive and negative clicks to a region, by a
//! graph cut over the image's superpixels refined by one over the pixels along its edge.
//!
//! Clicks apply in order, each step starting from the region the previous clicks made (as a
//! person sees it, and as RITM's protocol feeds the previous mask back), so a [`Session`] keeps
//! the steps and a new click costs one step; [`smart_region`] replays them all.
//!
//! One step, for clicks `1..=k`, on the superpixel graph of [`Prepared`]:
//! 1. Geodesic distances from the positive and from the negative clicks, an edge costing its
//!    contrast above the image's typical contrast (the median edge's), plus how far a
//!    superpixel's colour is from the nearest click's: a road's texture is free to cross however
//!    long the road, a kerb or a car's outline is not.
//! 2. A foreground probability per superpixel from those distances, `d_neg / (d_pos + d_neg)`
//!    (Bai and Sapiro's geodesic probability; without a negative click the background sits at a
//!    fixed distance), multiplied, as odds, with the model's probability for the class when a
//!    run is open ([`ClassPrior`], averaged over the superpixel).
//! 3. Locality ([`Locality`]): that probability counts with weight `exp(-d_k / reach)`, `d_k`
//!    the geodesic distance from click `k`; elsewhere the previous region holds.
//! 4. A minimum cut ([`super::maxflow`]) of `-ln p` unaries weighted by area and contrast-
//!    sensitive pairwise terms weighted by boundary length, the clicked superpixels tied to
//!    their side.
//! 5. The pixel-level cut in a band around that region's boundary ([`super::band`]), then only
//!    the pixels 4-connected to a positive click are kept.
//!
//! Cost per step: three Dijkstra runs and a cut over ~30,000 superpixels (about 15 ms at
//! 2048x1024), the band's cut (proportional to the band's pixels, at most
//! [`BandParams::max_pixels`]: up to some 80 ms), and a few passes over the pixels. `roadseg
//! bench --assist` reports it per click.

use super::band::{BandParams, refine};
use super::maxflow::Graph;
use super::region::{Prepared, colour_distance};
use super::{AssistError, Click};
use crate::core::flood::{filled, flood4};
use crate::core::mask::Mask;

/// What click-to-segment weighs. [`Params::default`] is what the tools and the bench use; the
/// fields are public so that a study can vary them.
#[derive(Clone, Debug, PartialEq)]
pub struct Params {
    /// How strongly neighbouring superpixels are pulled to the same side, per pixel of shared
    /// boundary (the unaries are per pixel of area).
    pub smoothness: f64,
    /// The background's distance when there is no negative click, in units of the image's
    /// contrast scale: how much edge a region crosses before it stops.
    pub background_distance: f64,
    /// Contrast below this fraction of the image's typical contrast costs nothing on a path.
    pub free_contrast: f32,
    /// How much a colour unlike the clicks' counts against a superpixel, against the edges on
    /// its way there.
    pub colour_weight: f32,
    /// The power the model's odds are raised to (its log-odds tempered by this factor). A
    /// model trained by the default `roadseg train` on 10 other hard scenes (5 minutes, val
    /// mIoU 0.79) measured, NoC@90 road / sidewalk / vehicle on the 6 bench scenes: 2.50 /
    /// 12.83 / 10.25 at 2, 1.50 / 11.42 / 7.42 at 1, 1.67 / 11.75 / 8.42 at 0.7, 1.50 / 10.67
    /// / 7.25 at 0.5, 1.83 / 10.75 / 7.75 at 0.3. Its probabilities come from a small input
    /// (256x128 here) and are sure of themselves where they are wrong along thin edges.
    pub model_weight: f64,
    /// What a full change of the model's probability across an edge adds to its geodesic
    /// cost, in contrast units: the model's edges stop a region where the colours do not.
    pub model_edge: f64,
    /// How far a click's say reaches once there is a region ([`Locality`]); `None`: every
    /// click re-decides the whole image.
    pub locality: Option<Locality>,
    /// The pixel-level cut around the superpixels' boundary ([`super::band`]); `None` keeps
    /// the superpixels' edges.
    pub band: Option<BandParams>,
    /// Holes in the region are filled, except those holding a negative click: a car's
    /// windows, lights and wheels are the car, whatever their colour. For countable objects
    /// only ([`fills_holes`]): the road has the cars on it as holes.
    pub fill_holes: bool,
}

impl Params {
    /// The default weights, holes filled when `class` names a countable object.
    pub fn for_class(class: &str) -> Self {
        Self {
            fill_holes: fills_holes(class),
            ..Self::default()
        }
    }
}

/// Whether Smart region fills the holes of a region of `class` (by name): countable objects,
/// which nothing else lies inside (Cityscapes' classes "with instances": people and vehicles).
/// Measured with `roadseg bench --assist`, NoC@90 vehicle without / with a model on seeds 17,
/// 29 and 41: 8.42 / 6.42, 6.29 / 4.14, 7.75 / 7.25 unfilled, 7.58 / 6.25, 6.29 / 3.71, 6.83 /
/// 6.33 filled.
pub fn fills_holes(class: &str) -> bool {
    const THINGS: [&str; 13] = [
        "vehicle",
        "car",
        "truck",
        "bus",
        "train",
        "tram",
        "motorcycle",
        "bicycle",
        "caravan",
        "trailer",
        "person",
        "pedestrian",
        "rider",
    ];
    class
        .split(|c: char| !c.is_alphanumeric())
        .map(str::to_lowercase)
        .any(|word| {
            // The word itself, or its singular ("cars", "buses").
            [
                Some(&word[..]),
                word.strip_suffix("es"),
                word.strip_suffix('s'),
            ]
            .into_iter()
            .flatten()
            .any(|w| THINGS.contains(&w))
        })
}

/// How a click's effect stays near it: the clicks' evidence applies in full near the newest
/// click and fades into the previous region further away, so a negative click near a car takes
/// the area around it and leaves distant parts alone. "Near" scales with how deep the click
/// sits in the area it corrects (its distance to the previous region's edge): a person clicks
/// in the middle of what is wrong, so a click deep in a large wrong area reaches far and one in
/// a thin sliver stays local.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Locality {
    /// The distance, in multiples of the click's depth, at which its weight has fallen to
    /// `1/e` (a Gaussian in the distance). Measured on the bench's scenes (NoC@90 road /
    /// sidewalk / vehicle, no model): 3 left a large road's later clicks too little say (7.50
    /// / 13.83 / 8.67, the band unbounded); with the band bounded at 60,000 pixels, 15 and 20
    /// gave 3.83 / 11.9 / 8.5-8.7, 30 gave 4.33 / 12.08 / 8.75, and no locality (every click
    /// re-deciding the whole image) 4.33 / 12.33 / 9.25.
    pub reach: f64,
    /// The probability of the other side where the previous region holds.
    pub doubt: f64,
}

impl Default for Params {
    fn default() -> Self {
        Self {
            smoothness: 3.0,
            background_distance: 4.0,
            free_contrast: 0.5,
            colour_weight: 0.5,
            model_weight: 0.5,
            model_edge: 0.0,
            locality: Some(Locality {
                reach: 20.0,
                doubt: 0.1,
            }),
            band: Some(BandParams::default()),
            fill_holes: false,
        }
    }
}

/// Probabilities are kept inside `[EPS, 1 - EPS]` before taking logs.
const EPS: f64 = 0.01;

/// The model's probability, per pixel, that the pixel belongs to the class being labelled, with
/// its mean per superpixel: computed once per image, class and prediction, not per click.
#[derive(Clone, Debug)]
pub struct ClassPrior {
    pixels: Vec<f32>,
    superpixels: Vec<f32>,
}

impl ClassPrior {
    /// `pixels`: row-major probabilities (0..=1), one per pixel of `prepared`'s image.
    pub fn new(prepared: &Prepared, pixels: Vec<f32>) -> Result<Self, AssistError> {
        let [width, height] = prepared.size();
        if pixels.len() != width as usize * height as usize {
            return Err(AssistError::PriorSize {
                got: pixels.len(),
                width,
                height,
            });
        }
        let sp = prepared.superpixels();
        let mut sum = vec![0f64; sp.count];
        for (&l, &v) in sp.labels.iter().zip(&pixels) {
            sum[l as usize] += v as f64;
        }
        let superpixels = sum
            .iter()
            .zip(&prepared.area)
            .map(|(s, a)| (s / *a as f64) as f32)
            .collect();
        Ok(Self {
            pixels,
            superpixels,
        })
    }

    pub fn pixels(&self) -> &[f32] {
        &self.pixels
    }
}

/// One click's result: the superpixels' sides as shown (the majority of each one's pixels)
/// and the region per pixel.
#[derive(Clone, Debug)]
struct Step {
    click: Click,
    /// The superpixel cut's sides, before the band.
    coarse: Vec<bool>,
    side: Vec<bool>,
    region: Vec<u8>,
}

/// The clicks on one object so far and the region after each, so that a new click costs one
/// step and removing the last costs none. A session belongs to one image, prior and set of
/// [`Params`]: start a new one when any of them changes.
#[derive(Clone, Debug, Default)]
pub struct Session {
    steps: Vec<Step>,
}

impl Session {
    pub fn new() -> Self {
        Self::default()
    }

    /// The region `clicks` ask for (1 inside, 0 outside): the steps kept for the longest prefix
    /// of `clicks` this session has seen are reused, the rest computed.
    pub fn region(
        &mut self,
        prepared: &Prepared,
        clicks: &[Click],
        prior: Option<&ClassPrior>,
        params: &Params,
    ) -> Result<Mask, AssistError> {
        check(prepared, clicks)?;
        let kept = self
            .steps
            .iter()
            .zip(clicks)
            .take_while(|(step, click)| step.click == **click)
            .count();
        self.steps.truncate(kept);
        for k in kept..clicks.len() {
            let next = step(prepared, &clicks[..=k], prior, params, self.steps.last());
            self.steps.push(next);
        }
        let [width, height] = prepared.size();
        let last = self.steps.last().expect("check found a click");
        Ok(Mask {
            width,
            height,
            data: last.region.clone(),
        })
    }
}

/// The region the clicks ask for (1 inside, 0 outside), with the default [`Params`], every
/// step replayed. `prior`, when given, is the model's say for the class being labelled.
pub fn smart_region(
    prepared: &Prepared,
    clicks: &[Click],
    prior: Option<&ClassPrior>,
) -> Result<Mask, AssistError> {
    smart_region_with(prepared, clicks, prior, &Params::default())
}

/// [`smart_region`] with other weights.
pub fn smart_region_with(
    prepared: &Prepared,
    clicks: &[Click],
    prior: Option<&ClassPrior>,
    params: &Params,
) -> Result<Mask, AssistError> {
    Session::new().region(prepared, clicks, prior, params)
}

/// The step for `clicks` (the newest last) from the previous one.
fn step(
    prepared: &Prepared,
    clicks: &[Click],
    prior: Option<&ClassPrior>,
    params: &Params,
    previous: Option<&Step>,
) -> Step {
    let n = prepared.area.len();
    let [w, h] = prepared.size();
    let newest = *clicks.last().expect("a step has a click");
    // The side each clicked superpixel is tied to, the last click winning.
    let mut tied: Vec<Option<bool>> = vec![None; n];
    for c in clicks {
        tied[prepared.label_at(c.x, c.y)] = Some(c.positive);
    }
    let positive: Vec<usize> = (0..n).filter(|&i| tied[i] == Some(true)).collect();
    let negative: Vec<usize> = (0..n).filter(|&i| tied[i] == Some(false)).collect();
    if positive.is_empty() {
        // No positive click yet, or every one overridden by a negative one on its superpixel.
        return Step {
            click: newest,
            coarse: vec![false; n],
            side: vec![false; n],
            region: vec![0; w as usize * h as usize],
        };
    }
    // What crossing each edge costs: its contrast above the free share of the typical one, and
    // the change in the model's belief across it (a semantic edge the colours may not show).
    let scale = prepared.contrast_scale;
    let cost: Vec<f64> = prepared
        .edges
        .iter()
        .map(|e| {
            let colour = ((e.contrast - params.free_contrast * scale).max(0.0) / scale) as f64;
            let model = prior.map_or(0.0, |p| {
                (p.superpixels[e.a as usize] - p.superpixels[e.b as usize]).abs() as f64
            });
            colour + params.model_edge * model
        })
        .collect();
    // Distance = the edges crossed on the way plus how far the colour is from the nearest
    // click's: a region that leaked through a blurred spot still looks unlike the click.
    let colour_cost = |seeds: &[usize], i: usize| {
        let nearest = seeds
            .iter()
            .map(|&s| colour_distance(prepared.mean[s], prepared.mean[i]))
            .fold(f32::INFINITY, f32::min);
        (params.colour_weight
            * ((nearest - params.free_contrast * prepared.contrast_scale).max(0.0)
                / prepared.contrast_scale)) as f64
    };
    // The two walks are independent: one on each core.
    let (d_pos, d_neg): (Vec<f64>, Vec<f64>) = rayon::join(
        || {
            prepared
                .distances(&positive, &cost)
                .into_iter()
                .enumerate()
                .map(|(i, d)| d + colour_cost(&positive, i))
                .collect()
        },
        || match negative.is_empty() {
            true => vec![params.background_distance; n],
            false => prepared
                .distances(&negative, &cost)
                .into_iter()
                .enumerate()
                .map(|(i, d)| (d + colour_cost(&negative, i)).min(params.background_distance))
                .collect(),
        },
    );
    // Where the newest click has its say, once there is a region to keep elsewhere.
    let reach = match (previous, &params.locality) {
        (Some(previous), Some(locality)) => {
            let depth = depth(&previous.region, w as usize, h as usize, newest);
            Some((previous, locality.reach * depth as f64, locality))
        }
        _ => None,
    };
    let mut graph = Graph::new(n);
    for i in 0..n {
        let (a, b) = (d_pos[i], d_neg[i]);
        let mut p = match (a.is_finite(), a + b == 0.0) {
            (false, _) => 0.0,
            (true, true) => 0.5,
            (true, false) => b / (a + b),
        };
        if let Some(prior) = prior {
            // Odds multiply: the clicks' geodesic evidence and the model's.
            let m = (prior.superpixels[i] as f64).clamp(EPS, 1.0 - EPS);
            let q = p.clamp(EPS, 1.0 - EPS);
            let odds = q / (1.0 - q) * (m / (1.0 - m)).powf(params.model_weight);
            p = odds / (1.0 + odds);
        }
        if let Some((previous, radius, locality)) = &reach {
            let b = prepared.bounds_of(i);
            let dx = b.x as f64 + b.width as f64 / 2.0 - newest.x as f64;
            let dy = b.y as f64 + b.height as f64 / 2.0 - newest.y as f64;
            let weight = (-(dx * dx + dy * dy) / (radius * radius)).exp();
            let kept = match previous.side[i] {
                true => 1.0 - locality.doubt,
                false => locality.doubt,
            };
            p = weight * p + (1.0 - weight) * kept;
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
        let w = params.smoothness * e.length as f64 * (-0.5 * c * c).exp();
        graph.add_edge(e.a as usize, e.b as usize, w, w);
    }
    graph.maxflow();
    let side: Vec<bool> = (0..n).map(|i| graph.in_source(i)).collect();
    let labels = &prepared.superpixels().labels;
    let coarse = side;
    let inside = match &params.band {
        Some(band) => {
            let previous = previous.map(|p| (&p.coarse[..], &p.region[..]));
            let prior = prior.map(ClassPrior::pixels);
            refine(prepared, &coarse, previous, clicks, prior, band)
        }
        None => labels.iter().map(|&l| coarse[l as usize]).collect(),
    };
    let mut region = connected_to_clicks(&inside, w as usize, h as usize, clicks);
    if params.fill_holes {
        fill_holes(&mut region, w as usize, h as usize, clicks);
    }
    // The sides as shown: a superpixel is in when most of its pixels are.
    let mut count = vec![0f32; n];
    for (&l, &r) in labels.iter().zip(&region) {
        count[l as usize] += r as f32;
    }
    let side = count
        .iter()
        .zip(&prepared.area)
        .map(|(&c, &a)| 2.0 * c > a)
        .collect();
    Step {
        click: newest,
        coarse,
        side,
        region,
    }
}

/// How deep `click` sits in the area of its pixel's value in `region`: the distance, in
/// pixels, to the nearest pixel of the other value (or the image's border), searched ring by
/// ring up to [`MAX_DEPTH`].
fn depth(region: &[u8], w: usize, h: usize, click: Click) -> u32 {
    const MAX_DEPTH: i64 = 1024;
    let (cx, cy) = (click.x as i64, click.y as i64);
    let value = region[cy as usize * w + cx as usize];
    let mut best = f64::INFINITY;
    for r in 1..=MAX_DEPTH {
        if r as f64 > best {
            break;
        }
        // The ring at Chebyshev distance r holds every pixel that could be nearer than r + 1.
        for k in -r..=r {
            for (x, y) in [
                (cx + k, cy - r),
                (cx + k, cy + r),
                (cx - r, cy + k),
                (cx + r, cy + k),
            ] {
                let outside = x < 0 || y < 0 || x >= w as i64 || y >= h as i64;
                if outside || region[y as usize * w + x as usize] != value {
                    let d = (((x - cx).pow(2) + (y - cy).pow(2)) as f64).sqrt();
                    best = best.min(d);
                }
            }
        }
    }
    best.min(MAX_DEPTH as f64).ceil() as u32
}

/// The pixels of `inside` 4-connected to a positive click's pixel, as 1 (0 elsewhere): a
/// region is what the clicks grow, not every patch that looks like it.
fn connected_to_clicks(inside: &[bool], w: usize, h: usize, clicks: &[Click]) -> Vec<u8> {
    let mut out = vec![0u8; inside.len()];
    let seeds: Vec<usize> = clicks
        .iter()
        .filter(|c| c.positive)
        .map(|c| c.y as usize * w + c.x as usize)
        .filter(|&i| inside[i])
        .collect();
    for &s in &seeds {
        out[s] = 1;
    }
    flood4(
        w,
        h,
        &seeds,
        |j| {
            let join = inside[j] && out[j] == 0;
            if join {
                out[j] = 1;
            }
            join
        },
        |_| {},
    );
    out
}

/// Sets the pixels outside `region` that no path outside it joins to the image's border or to
/// a negative click: the holes, other than those the person cleared.
fn fill_holes(region: &mut [u8], w: usize, h: usize, clicks: &[Click]) {
    let (mut x0, mut y0, mut x1, mut y1) = (usize::MAX, usize::MAX, 0, 0);
    for (i, _) in region.iter().enumerate().filter(|(_, r)| **r == 1) {
        let (x, y) = (i % w, i / w);
        (x0, y0, x1, y1) = (x0.min(x), y0.min(y), x1.max(x + 1), y1.max(y + 1));
    }
    if x0 >= x1 || h == 0 {
        return;
    }
    let open: Vec<[usize; 2]> = clicks
        .iter()
        .filter(|c| !c.positive)
        .map(|c| [c.x as usize, c.y as usize])
        .collect();
    let filled = filled([x0, y0, x1, y1], |x, y| region[y * w + x] == 1, &open);
    let bw = x1 - x0 + 2;
    for y in y0..y1 {
        for x in x0..x1 {
            if filled[(y + 1 - y0) * bw + x + 1 - x0] {
                region[y * w + x] = 1;
            }
        }
    }
}

fn check(prepared: &Prepared, clicks: &[Click]) -> Result<(), AssistError> {
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
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{Rgb, RgbImage};

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
        // The sidewalk is split in two colours; the model is sure it is one class.
        let split = |colour: [u8; 3]| {
            let (mut image, _, _) = scene();
            for y in 0..60 {
                for x in 160..320 {
                    image.put_pixel(x, y, Rgb(colour));
                }
            }
            Prepared::new(&image)
        };
        let clicks = [click(40, 30, true)];
        let prior: Vec<f32> = (0..320 * 200)
            .map(|i| if i / 320 < 60 { 0.99 } else { 0.01 })
            .collect();
        // A change of colour the clicks alone stop at; the tempered model carries it across.
        let prepared = split([215, 175, 170]);
        let alone = smart_region(&prepared, &clicks, None).unwrap();
        assert_eq!(alone.get(250, 30), 0, "colour alone stops at the change");
        let model = ClassPrior::new(&prepared, prior.clone()).unwrap();
        let helped = smart_region(&prepared, &clicks, Some(&model)).unwrap();
        assert_eq!(helped.get(250, 30), 1, "the model carries it across");
        assert_eq!(helped.get(40, 110), 0, "and not onto the road");
        // A stronger change holds against the tempered model (`model_weight` 0.5: a model
        // sure where it is wrong costs clicks); the plain odds product carries it.
        let prepared = split([230, 200, 150]);
        let model = ClassPrior::new(&prepared, prior).unwrap();
        let tempered = smart_region(&prepared, &clicks, Some(&model)).unwrap();
        assert_eq!(tempered.get(250, 30), 0);
        let plain = Params {
            model_weight: 1.0,
            ..Params::default()
        };
        let product = smart_region_with(&prepared, &clicks, Some(&model), &plain).unwrap();
        assert_eq!(product.get(250, 30), 1);
        assert_eq!(product.get(40, 110), 0);
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
            ClassPrior::new(&prepared, vec![0.5; 10]),
            Err(AssistError::PriorSize { got: 10, .. })
        ));
    }

    #[test]
    fn a_session_replays_to_the_same_region_and_reuses_its_steps() {
        let (image, _, _) = scene();
        let prepared = Prepared::new(&image);
        let clicks = [
            click(50, 110, true),
            click(175, 110, true),
            click(175, 110, false),
            click(300, 150, true),
        ];
        let params = Params::default();
        let mut session = Session::new();
        for k in 1..=clicks.len() {
            let incremental = session
                .region(&prepared, &clicks[..k], None, &params)
                .unwrap();
            assert_eq!(session.steps.len(), k, "one step per click");
            let replayed = smart_region(&prepared, &clicks[..k], None).unwrap();
            assert_eq!(incremental, replayed, "after {k} clicks");
        }
        // Backspace: the step before is kept, nothing recomputed; another click replaces the
        // last step only.
        let kept = session.steps[1].region.clone();
        let back = session
            .region(&prepared, &clicks[..2], None, &params)
            .unwrap();
        assert_eq!((session.steps.len(), &back.data), (2, &kept));
        let other = [clicks[0], clicks[1], click(10, 10, false)];
        session.region(&prepared, &other, None, &params).unwrap();
        assert_eq!(session.steps.len(), 3);
        assert_eq!(session.steps[1].region, kept);
    }

    #[test]
    fn the_class_prior_is_averaged_per_superpixel_once() {
        let (image, _, _) = scene();
        let prepared = Prepared::new(&image);
        let values: Vec<f32> = (0..320 * 200).map(|i| (i % 320) as f32 / 320.0).collect();
        let prior = ClassPrior::new(&prepared, values.clone()).unwrap();
        assert_eq!(prior.pixels(), &values[..]);
        let sp = prepared.superpixels();
        for l in [0, sp.count / 2, sp.count - 1] {
            let (sum, n) = sp
                .labels
                .iter()
                .zip(&values)
                .filter(|(k, _)| **k as usize == l)
                .fold((0f64, 0usize), |(s, n), (_, &v)| (s + v as f64, n + 1));
            assert!((prior.superpixels[l] as f64 - sum / n as f64).abs() < 1e-5);
        }
    }

    #[test]
    fn a_click_in_a_sliver_the_region_took_removes_the_sliver_along_its_length() {
        // A light band (the object) with a dark 2-pixel strip along its lower edge and a white
        // line beyond it: the strip's edge to the line is the stronger one, so a cut may take
        // the strip; one negative click in the strip takes it all back.
        let (w, h) = (240u32, 80u32);
        let mut rng = crate::core::rng::Rng::new(3);
        let mut object = Mask::filled(w, h, 0);
        let image = RgbImage::from_fn(w, h, |x, y| {
            let base: f32 = match y {
                20..40 => 150.0,
                40..42 => 95.0,
                42..45 => 235.0,
                _ => 60.0,
            };
            if (20..40).contains(&y) {
                object.set(x, y, 1);
            }
            let v = (base + 6.0 * rng.normal()).clamp(0.0, 255.0) as u8;
            Rgb([v, v, v])
        });
        let prepared = Prepared::new(&image);
        let first = [click(120, 30, true)];
        let strip = |region: &Mask| (0..w).filter(|&x| region.get(x, 40) == 1).count();
        let region = smart_region(&prepared, &first, None).unwrap();
        let fixed = [first[0], click(120, 40, false)];
        let after = smart_region(&prepared, &fixed, None).unwrap();
        assert!(
            strip(&after) <= strip(&region) && strip(&after) < w as usize / 10,
            "strip pixels taken: {} before the click, {} after",
            strip(&region),
            strip(&after)
        );
        let missed = (0..w).filter(|&x| after.get(x, 30) == 0).count();
        assert_eq!(missed, 0, "the object stays");
    }

    #[test]
    fn holes_are_filled_unless_a_negative_click_cleared_them() {
        // A 12x9 region: a closed ring around (3..5, 3..5), a second hole at (8, 4) with a
        // negative click in it, and a notch open to the outside at the bottom.
        let (w, h) = (14usize, 9usize);
        let mut region = vec![0u8; w * h];
        for y in 1..8 {
            for x in 1..11 {
                region[y * w + x] = 1;
            }
        }
        let holes = [(3, 3), (4, 3), (3, 4), (4, 4), (8, 4)];
        for (x, y) in holes {
            region[y * w + x] = 0;
        }
        let notch = [(6, 7), (6, 6), (6, 5)];
        for (x, y) in notch {
            region[y * w + x] = 0;
        }
        let clicks = [
            Click {
                x: 2,
                y: 2,
                positive: true,
            },
            Click {
                x: 8,
                y: 4,
                positive: false,
            },
        ];
        let before = region.clone();
        fill_holes(&mut region, w, h, &clicks);
        for (x, y) in [(3, 3), (4, 3), (3, 4), (4, 4)] {
            assert_eq!(
                region[y * w + x],
                1,
                "the closed hole at ({x}, {y}) is filled"
            );
        }
        assert_eq!(region[4 * w + 8], 0, "the hole with a negative click stays");
        for (x, y) in notch {
            assert_eq!(
                region[y * w + x],
                0,
                "the notch at ({x}, {y}) is open, not a hole"
            );
        }
        let changed = region.iter().zip(&before).filter(|(a, b)| a != b).count();
        assert_eq!(changed, 4, "nothing else changes");
    }

    #[test]
    fn countable_objects_fill_their_holes_and_surfaces_do_not() {
        for name in [
            "vehicle",
            "Car",
            "cars",
            "buses",
            "person",
            "Rider",
            "ego vehicle",
        ] {
            assert!(fills_holes(name), "{name}");
        }
        for name in [
            "road",
            "sidewalk",
            "lane marking",
            "carpet",
            "vegetation",
            "sky",
        ] {
            assert!(!fills_holes(name), "{name}");
        }
        assert!(Params::for_class("car").fill_holes);
        assert!(!Params::for_class("road").fill_holes);
    }

    #[test]
    fn a_car_with_filled_holes_takes_its_window() {
        // A dark red car on noisy grey asphalt, a bright window inside it.
        let (w, h) = (200u32, 120u32);
        let car = |x: u32, y: u32| (50..150).contains(&x) && (30..90).contains(&y);
        let window = |x: u32, y: u32| (75..125).contains(&x) && (40..60).contains(&y);
        let mut state = 7u32;
        let image = RgbImage::from_fn(w, h, |x, y| {
            state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            let noise = (state >> 24) as i32 % 16 - 8;
            let base: [i32; 3] = match (car(x, y), window(x, y)) {
                (true, true) => [170, 220, 230],
                (true, false) => [120, 25, 30],
                _ => [110, 110, 110],
            };
            Rgb(base.map(|c| (c + noise).clamp(0, 255) as u8))
        });
        let prepared = Prepared::new(&image);
        let clicks = [Click {
            x: 100,
            y: 75,
            positive: true,
        }];
        let region = |fill_holes| {
            let params = Params {
                fill_holes,
                ..Params::default()
            };
            smart_region_with(&prepared, &clicks, None, &params).unwrap()
        };
        let share_of_window = |m: &Mask| {
            let (mut inside, mut all) = (0, 0);
            for y in 0..h {
                for x in 0..w {
                    if window(x, y) {
                        all += 1;
                        inside += usize::from(m.get(x, y) == 1);
                    }
                }
            }
            inside as f64 / all as f64
        };
        let (open, filled) = (region(false), region(true));
        assert!(
            share_of_window(&open) < 0.5,
            "the colours alone leave the window out"
        );
        assert!(
            share_of_window(&filled) > 0.99,
            "{}",
            share_of_window(&filled)
        );
        let truth = Mask {
            width: w,
            height: h,
            data: (0..w * h).map(|i| u8::from(car(i % w, i / w))).collect(),
        };
        let iou = crate::core::assist::protocol::iou(&truth, &filled);
        assert!(iou > 0.95, "IoU {iou}");
    }
}
