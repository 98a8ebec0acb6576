//! The sample's renderer: one pinhole-camera road scene per seed, its exact label drawn with it.

use image::RgbImage;

use super::{BUILDING, LANE_MARKING, Look, ROAD, SIDEWALK, SKY, VEGETATION, VEHICLE};
use crate::core::mask::Mask;
use crate::core::rng::{Rng, mix64};

type Rgb = [f32; 3];

fn lerp3(a: Rgb, b: Rgb, t: f32) -> Rgb {
    [
        a[0] + (b[0] - a[0]) * t,
        a[1] + (b[1] - a[1]) * t,
        a[2] + (b[2] - a[2]) * t,
    ]
}

fn scale3(a: Rgb, s: f32) -> Rgb {
    [a[0] * s, a[1] * s, a[2] * s]
}

/// Smooth value noise in [0, 1] on a unit grid.
fn value_noise(seed: u64, x: f32, y: f32) -> f32 {
    let (xi, yi) = (x.floor(), y.floor());
    let (fx, fy) = (x - xi, y - yi);
    let corner = |dx: i64, dy: i64| {
        let h =
            mix64(seed ^ mix64((xi as i64 + dx) as u64) ^ mix64(((yi as i64 + dy) as u64) << 1));
        (h >> 40) as f32 / (1u64 << 24) as f32
    };
    let (sx, sy) = (fx * fx * (3.0 - 2.0 * fx), fy * fy * (3.0 - 2.0 * fy));
    let top = corner(0, 0) + (corner(1, 0) - corner(0, 0)) * sx;
    let bottom = corner(0, 1) + (corner(1, 1) - corner(0, 1)) * sx;
    top + (bottom - top) * sy
}

fn fbm(seed: u64, x: f32, y: f32) -> f32 {
    let mut sum = 0.0;
    let mut amp = 0.5;
    let mut freq = 1.0;
    for octave in 0..4 {
        sum += amp * value_noise(seed.wrapping_add(octave), x * freq, y * freq);
        amp *= 0.5;
        freq *= 2.0;
    }
    sum / 0.9375
}

/// Per-pixel white noise in [-0.5, 0.5], for texture grain.
fn grain(seed: u64, x: i32, y: i32) -> f32 {
    let h = mix64(seed ^ ((x as u64) << 32) ^ (y as u32 as u64));
    (h >> 40) as f32 / (1u64 << 24) as f32 - 0.5
}

struct Canvas {
    w: i32,
    h: i32,
    rgb: Vec<Rgb>,
    label: Vec<u8>,
}

impl Canvas {
    /// Fills a convex polygon; `shade` gives the colour and label of a pixel, or `None` to
    /// leave it as it is.
    fn fill(&mut self, pts: &[(f32, f32)], mut shade: impl FnMut(i32, i32) -> Option<(Rgb, u8)>) {
        let ymin = pts.iter().map(|p| p.1).fold(f32::INFINITY, f32::min);
        let ymax = pts.iter().map(|p| p.1).fold(f32::NEG_INFINITY, f32::max);
        let y0 = (ymin - 0.5).ceil().max(0.0) as i32;
        let y1 = ((ymax - 0.5).floor() as i32).min(self.h - 1);
        for y in y0..=y1 {
            let yc = y as f32 + 0.5;
            let (mut xl, mut xr) = (f32::INFINITY, f32::NEG_INFINITY);
            for i in 0..pts.len() {
                let (a, b) = (pts[i], pts[(i + 1) % pts.len()]);
                if (a.1 <= yc && b.1 > yc) || (b.1 <= yc && a.1 > yc) {
                    let x = a.0 + (yc - a.1) / (b.1 - a.1) * (b.0 - a.0);
                    xl = xl.min(x);
                    xr = xr.max(x);
                }
            }
            if xl > xr {
                continue;
            }
            let x0 = (xl - 0.5).ceil().max(0.0) as i32;
            let x1 = ((xr - 0.5).floor() as i32).min(self.w - 1);
            for x in x0..=x1 {
                if let Some((c, l)) = shade(x, y) {
                    let i = (y * self.w + x) as usize;
                    self.rgb[i] = c;
                    self.label[i] = l;
                }
            }
        }
    }

    /// Darkens a polygon (shadows): colour changes, labels don't.
    fn darken(&mut self, pts: &[(f32, f32)], factor: f32) {
        let mut hits = Vec::new();
        self.fill(pts, |x, y| {
            hits.push((x, y));
            None
        });
        for (x, y) in hits {
            let i = (y * self.w + x) as usize;
            self.rgb[i] = scale3(self.rgb[i], factor);
        }
    }
}

/// Camera and road geometry of one scene.
struct Scene {
    w: f32,
    horizon: f32,
    focal: f32,
    cam_h: f32,
    cam_x: f32,
    curve: f32,
}

impl Scene {
    /// World (x lateral, y up, z forward) to screen; the road bends by `curve * z^2`.
    fn project(&self, x: f32, y: f32, z: f32) -> (f32, f32) {
        let bend = self.curve * z * z;
        (
            self.w / 2.0 + self.focal * (x - self.cam_x - bend) / z,
            self.horizon + self.focal * (self.cam_h - y) / z,
        )
    }

    /// Ground point under screen pixel (x, y) below the horizon: (world x, z).
    fn ground(&self, x: i32, y: i32) -> (f32, f32) {
        let z = self.focal * self.cam_h / ((y as f32 + 0.5 - self.horizon).max(0.01));
        let wx = (x as f32 + 0.5 - self.w / 2.0) * z / self.focal + self.cam_x + self.curve * z * z;
        (wx, z)
    }

    fn quad(&self, x0: f32, x1: f32, y0: f32, y1: f32, z_far: f32, z_near: f32) -> [(f32, f32); 4] {
        [
            self.project(x0, y0, z_far),
            self.project(x1, y1, z_far),
            self.project(x1, y1, z_near),
            self.project(x0, y0, z_near),
        ]
    }
}

struct Vehicle {
    x: f32,
    z: f32,
    width: f32,
    height: f32,
    length: f32,
    color: Rgb,
}

/// What [`Look::Hard`] changes, drawn from a stream of its own so that the scene (geometry,
/// labels, every other colour) is the plain look's for the same seed.
struct Hard {
    seed: u64,
    /// Sidewalk paving as a multiple of the asphalt's grey: close to it.
    paving: f32,
    /// The buildings' (or trees') shadow on the shaded side: how far it reaches across the road
    /// from its edge, in metres, and how dark it is.
    side_shadow: f32,
    shadow_factor: f32,
    /// Shadows of poles, trees and bridges across road and sidewalk: (z at x = 0, z change per
    /// metre of x, width), in metres.
    bands: Vec<(f32, f32, f32)>,
    /// Whether tree canopies dapple the ground with shadow.
    dappled: bool,
    noise_sigma: f32,
    vignette: f32,
}

impl Hard {
    fn new(seed: u64, road_half: f32) -> Self {
        let mut rng = Rng::new(mix64(seed ^ 0x4A52_D0C4_11A9_7E53));
        let bands = (0..2 + rng.below(5))
            .map(|_| {
                (
                    rng.range(4.0, 60.0),
                    rng.range(-0.6, 0.6),
                    rng.range(0.3, 3.0),
                )
            })
            .collect();
        Self {
            seed: rng.next_u64(),
            paving: rng.range(1.08, 1.3),
            side_shadow: rng.range(0.3, road_half * 1.3),
            shadow_factor: rng.range(0.42, 0.6),
            bands,
            dappled: rng.chance(0.5),
            noise_sigma: rng.range(0.04, 0.07),
            vignette: rng.range(0.25, 0.38),
        }
    }

    /// Asphalt brightness (a factor of its base colour) at ground point (wx, z) and pixel grain
    /// `g`: wear patches metres across, stains a hand across, aggregate a few centimetres across,
    /// and darker wheel tracks in each lane.
    fn asphalt(&self, wx: f32, z: f32, g: f32, lane_w: f32, road_half: f32) -> f32 {
        let coarse = fbm(self.seed ^ 1, wx * 0.12, z * 0.05);
        let medium = fbm(self.seed ^ 2, wx * 1.3, z * 1.3);
        let fine = value_noise(self.seed ^ 3, wx * 14.0, z * 14.0);
        let in_lane = (wx + road_half).rem_euclid(lane_w) / lane_w; // 0..1 across the lane
        let track = ((in_lane - 0.25).abs().min((in_lane - 0.75).abs()) < 0.07) as u8 as f32;
        0.62 + 0.45 * coarse + 0.22 * medium + 0.18 * fine + 0.2 * g - 0.08 * track
    }

    /// The shadow factor at ground point (wx, z) (1 in the sun), the same for every surface.
    fn shadow(&self, wx: f32, z: f32, sun_left: bool, road_half: f32) -> f32 {
        // Shaded side: its edge wobbles along z (roof lines, gaps between buildings).
        let wobble = 0.8 * (fbm(self.seed ^ 4, z * 0.08, 0.5) - 0.5);
        let gap = fbm(self.seed ^ 5, z * 0.04, 2.5) > 0.72;
        let edge = road_half - self.side_shadow + wobble;
        let shaded_side = if sun_left { -wx > edge } else { wx > edge };
        let mut dark = shaded_side && !gap;
        for &(z0, slope, width) in &self.bands {
            let edge_noise = 0.25 * width * (fbm(self.seed ^ 6, wx * 0.5, z0) - 0.5);
            dark |= (z - (z0 + slope * wx)).abs() < width / 2.0 + edge_noise;
        }
        if self.dappled {
            dark |= fbm(self.seed ^ 7, wx * 0.35, z * 0.35) > 0.64;
        }
        if dark { self.shadow_factor } else { 1.0 }
    }
}

/// Draws one scene; returns the image and its exact label mask. The label does not depend on
/// `look`.
pub fn render(seed: u64, width: u32, height: u32, look: Look) -> (RgbImage, Mask) {
    let mut rng = Rng::new(seed);
    let (w, h) = (width as i32, height as i32);
    let wf = width as f32;
    let hf = height as f32;
    let lanes = 2 + rng.below(3);
    let lane_w = rng.range(3.0, 3.7);
    let road_half = lanes as f32 * lane_w / 2.0;
    let scene = Scene {
        w: wf,
        horizon: hf * rng.range(0.36, 0.52),
        focal: wf * rng.range(0.7, 1.0),
        cam_h: rng.range(1.2, 2.4),
        cam_x: rng.range(-road_half * 0.5, road_half * 0.5),
        curve: rng.range(-1.0, 1.0) * rng.range(0.0, 0.004),
    };
    let exposure = rng.range(0.65, 1.25);
    let warmth = rng.range(-0.08, 0.1);
    let overcast = rng.chance(0.3);
    let haze_dist = rng.range(90.0, 320.0);
    let sun_left = rng.chance(0.5);

    let sky_top: Rgb = if overcast {
        [0.62, 0.65, 0.7]
    } else {
        [0.22, 0.42, 0.78]
    };
    let sky_horizon: Rgb = if overcast {
        [0.8, 0.81, 0.83]
    } else {
        [0.72, 0.82, 0.93]
    };
    let mut canvas = Canvas {
        w,
        h,
        rgb: vec![[0.0; 3]; (w * h) as usize],
        label: vec![SKY; (w * h) as usize],
    };
    let cloud_seed = rng.next_u64();
    let cloudiness = if overcast { 0.2 } else { rng.range(0.45, 0.8) };
    for y in 0..h {
        let t = (y as f32 / scene.horizon.max(1.0)).clamp(0.0, 1.0);
        let base = lerp3(sky_top, sky_horizon, t.powf(0.7));
        for x in 0..w {
            let n = fbm(cloud_seed, x as f32 / wf * 5.0, y as f32 / hf * 12.0);
            let cloud = ((n - cloudiness) * 4.0).clamp(0.0, 1.0);
            canvas.rgb[(y * w + x) as usize] = lerp3(base, [0.95, 0.95, 0.97], cloud * 0.85);
        }
    }
    let haze = |c: Rgb, z: f32| lerp3(c, sky_horizon, 1.0 - (-z / haze_dist).exp());

    // Distant tree line and hills along the horizon.
    let hill_seed = rng.next_u64();
    let hill_height = hf * rng.range(0.02, 0.09);
    let far_green: Rgb = [0.2, 0.3, 0.16];
    for x in 0..w {
        let n = fbm(hill_seed, x as f32 / wf * 6.0, 0.5);
        let top = scene.horizon - hill_height * (0.3 + n);
        let bottom = scene.horizon + 2.0;
        let pts = [
            (x as f32, top),
            (x as f32 + 1.0, top),
            (x as f32 + 1.0, bottom),
            (x as f32, bottom),
        ];
        canvas.fill(&pts, |_, _| Some((haze(far_green, 250.0), VEGETATION)));
    }

    // Roadside: buildings (facade at the sidewalk's outer edge) or trees and grass, per side.
    let sidewalk_w = [rng.range(1.2, 4.0), rng.range(1.2, 4.0)];
    let buildings = [rng.chance(0.6), rng.chance(0.6)];
    let asphalt_shade = rng.range(0.22, 0.42);
    let asphalt: Rgb = [asphalt_shade, asphalt_shade, asphalt_shade * 1.04];
    let paving = rng.range(0.55, 0.72);
    let hard = (look == Look::Hard).then(|| Hard::new(seed, road_half));
    let paving = match &hard {
        Some(hard) => asphalt_shade * hard.paving,
        None => paving,
    };
    let paving: Rgb = match &hard {
        // Grey concrete or worn asphalt paving, barely warmer than the road.
        Some(_) => [paving * 1.01, paving, paving * 0.99],
        None => [paving, paving * 0.97, paving * 0.92],
    };
    let grass: Rgb = [
        rng.range(0.18, 0.3),
        rng.range(0.35, 0.45),
        rng.range(0.12, 0.2),
    ];
    let tex_seed = rng.next_u64();
    let dash_phase = rng.range(0.0, 12.0);
    let dash_len = rng.range(2.5, 4.0);
    let dash_period = dash_len + rng.range(4.0, 8.0);
    let yellow_centre = lanes.is_multiple_of(2) && rng.chance(0.35);
    let shadow_width = if buildings[usize::from(!sun_left)] {
        rng.range(0.0, road_half * 1.4)
    } else {
        0.0
    };
    let marking_w = 0.15;

    // Building blocks along each side: (z start, z end, height, colour).
    let mut blocks: [Vec<(f32, f32, f32, Rgb)>; 2] = [Vec::new(), Vec::new()];
    for (side, list) in blocks.iter_mut().enumerate() {
        if !buildings[side] {
            continue;
        }
        let mut z = rng.range(0.0, 4.0);
        while z < 240.0 {
            let len = rng.range(8.0, 30.0);
            let palette: [Rgb; 5] = [
                [0.72, 0.66, 0.56],
                [0.55, 0.32, 0.25],
                [0.6, 0.6, 0.62],
                [0.85, 0.83, 0.78],
                [0.45, 0.42, 0.4],
            ];
            let base = palette[rng.below(palette.len())];
            let tint = rng.range(0.85, 1.1);
            list.push((z, z + len, rng.range(5.0, 28.0), scale3(base, tint)));
            z += len
                + if rng.chance(0.2) {
                    rng.range(2.0, 8.0)
                } else {
                    0.0
                };
        }
    }
    // Trees along vegetation sides: (world x, z, crown radius, trunk height).
    let mut trees: Vec<(f32, f32, f32, f32)> = Vec::new();
    for side in 0..2 {
        if buildings[side] {
            continue;
        }
        let sign = if side == 0 { -1.0 } else { 1.0 };
        let mut z = rng.range(2.0, 10.0);
        while z < 200.0 {
            let x = sign * (road_half + sidewalk_w[side] + rng.range(1.0, 6.0));
            trees.push((x, z, rng.range(1.5, 3.2), rng.range(1.8, 3.5)));
            z += rng.range(6.0, 16.0);
        }
    }
    // Vehicles in lanes, some oncoming; never overlapping in a lane.
    let mut vehicles: Vec<Vehicle> = Vec::new();
    for _ in 0..rng.below(6) {
        let lane = rng.below(lanes);
        let z = rng.range(6.0, 70.0);
        let x = -road_half + (lane as f32 + 0.5) * lane_w + rng.range(-0.3, 0.3);
        if vehicles
            .iter()
            .any(|v| (v.x - x).abs() < lane_w * 0.8 && (v.z - z).abs() < 8.0)
        {
            continue;
        }
        let big = rng.chance(0.2);
        let palette: [Rgb; 6] = [
            [0.8, 0.8, 0.82],
            [0.1, 0.1, 0.12],
            [0.6, 0.08, 0.08],
            [0.12, 0.2, 0.5],
            [0.45, 0.47, 0.5],
            [0.9, 0.9, 0.88],
        ];
        vehicles.push(Vehicle {
            x,
            z,
            width: if big { 2.4 } else { rng.range(1.7, 1.95) },
            height: if big {
                rng.range(2.5, 3.4)
            } else {
                rng.range(1.4, 1.7)
            },
            length: if big {
                rng.range(6.0, 10.0)
            } else {
                rng.range(4.0, 4.8)
            },
            color: palette[rng.below(palette.len())],
        });
    }

    let z_near = scene.focal * scene.cam_h / (hf - scene.horizon) * 0.9;
    let mut slices = vec![z_near];
    while *slices.last().expect("non-empty") < 260.0 {
        let z = *slices.last().expect("non-empty");
        slices.push(z * 1.06 + 0.05);
    }
    let ground_shade = |x: i32, y: i32, wx: f32, z: f32| -> Option<(Rgb, u8)> {
        let g = grain(tex_seed, x, y);
        let abs_x = wx.abs();
        let side = usize::from(wx > 0.0);
        let (mut color, label) = if abs_x <= road_half {
            let mut c = match &hard {
                Some(hard) => scale3(asphalt, hard.asphalt(wx, z, g, lane_w, road_half)),
                None => {
                    let patch = fbm(tex_seed ^ 7, wx * 0.4, z * 0.15);
                    scale3(asphalt, 0.85 + 0.3 * patch + 0.12 * g)
                }
            };
            let lines: Vec<(f32, bool, bool)> = (1..lanes)
                .map(|k| {
                    let lx = -road_half + k as f32 * lane_w;
                    let centre = yellow_centre && k == lanes / 2;
                    (lx, !centre, centre)
                })
                .chain([
                    (-road_half + 0.3, false, false),
                    (road_half - 0.3, false, false),
                ])
                .collect();
            let mut label = ROAD;
            for (lx, dashed, yellow) in lines {
                let dx = (wx - lx).abs();
                let on_dash = !dashed || (z + dash_phase).rem_euclid(dash_period) < dash_len;
                let width = if yellow { marking_w * 2.5 } else { marking_w };
                if dx < width && on_dash {
                    let paint: Rgb = if yellow {
                        [0.85, 0.7, 0.15]
                    } else {
                        [0.88, 0.88, 0.85]
                    };
                    let worn = 0.75 + 0.25 * fbm(tex_seed ^ 3, z * 0.5, lx);
                    c = lerp3(c, paint, worn);
                    label = LANE_MARKING;
                }
            }
            // Shadow of the buildings on the sunny side across part of the road.
            let shadow_edge = if sun_left {
                -road_half + shadow_width
            } else {
                road_half - shadow_width
            };
            if hard.is_none() && ((sun_left && wx < shadow_edge) || (!sun_left && wx > shadow_edge))
            {
                c = scale3(c, 0.5);
            }
            (c, label)
        } else if abs_x <= road_half + sidewalk_w[side] || buildings[side] {
            let seam = (z * 1.2).fract() < 0.06 || ((abs_x - road_half) * 1.2).fract() < 0.06;
            let curb = abs_x - road_half < 0.25;
            let mut c = match &hard {
                Some(hard) => {
                    let stain = fbm(hard.seed ^ 8, wx * 0.9, z * 0.9);
                    scale3(paving, 0.8 + 0.3 * stain + 0.22 * g)
                }
                None => scale3(paving, 0.92 + 0.16 * g),
            };
            let (seam_shade, curb_shade) = if hard.is_some() {
                (0.93, 1.12)
            } else {
                (0.8, 1.1)
            };
            if seam {
                c = scale3(c, seam_shade);
            }
            if curb {
                c = scale3(c, curb_shade);
            }
            (c, SIDEWALK)
        } else {
            let n = fbm(tex_seed ^ 11, wx * 0.7, z * 0.7);
            (scale3(grass, 0.75 + 0.5 * n + 0.15 * g), VEGETATION)
        };
        if let Some(hard) = &hard {
            color = scale3(color, hard.shadow(wx, z, sun_left, road_half));
        }
        color = haze(color, z);
        Some((color, label))
    };

    for pair in slices.windows(2).rev() {
        let (z_near_slice, z_far) = (pair[0], pair[1]);
        // Ground: one quad across the whole width, shaded from the world point under each pixel.
        let quad = scene.quad(-120.0, 120.0, 0.0, 0.0, z_far, z_near_slice);
        canvas.fill(&quad, |x, y| {
            let (wx, z) = scene.ground(x, y);
            ground_shade(x, y, wx, z)
        });
        // Facades facing the road.
        for side in 0..2 {
            let sign = if side == 0 { -1.0 } else { 1.0 };
            let fx = sign * (road_half + sidewalk_w[side]);
            for &(z0, z1, height, color) in &blocks[side] {
                let (a, b) = (z0.max(z_near_slice), z1.min(z_far));
                if a >= b {
                    continue;
                }
                let pts = scene.quad(fx, fx, 0.0, 0.0, b, a);
                let top_far = scene.project(fx, height, b);
                let top_near = scene.project(fx, height, a);
                let facade = [top_far, top_near, pts[2], pts[1]];
                let (x_far, x_near) = (facade[0].0, facade[1].0);
                let lit = if (side == 0) == sun_left { 0.75 } else { 1.05 };
                canvas.fill(&facade, |x, y| {
                    // Perspective-correct depth across the facade: 1/z is linear in screen x.
                    let t = if (x_near - x_far).abs() > 1e-3 {
                        ((x as f32 + 0.5 - x_far) / (x_near - x_far)).clamp(0.0, 1.0)
                    } else {
                        0.5
                    };
                    let z = 1.0 / (1.0 / b + (1.0 / a - 1.0 / b) * t);
                    let wy = scene.cam_h - (y as f32 + 0.5 - scene.horizon) * z / scene.focal;
                    let window = wy > 2.6
                        && wy < height - 0.8
                        && (z * 0.33).fract() > 0.3
                        && (z * 0.33).fract() < 0.75
                        && (wy / 3.1).fract() > 0.35
                        && (wy / 3.1).fract() < 0.8;
                    let mut c = if window {
                        lerp3([0.12, 0.15, 0.2], sky_horizon, 0.25)
                    } else {
                        scale3(color, lit + 0.06 * grain(tex_seed ^ 5, x, y))
                    };
                    if wy < 0.4 {
                        c = scale3(c, 0.8);
                    }
                    Some((haze(c, z), BUILDING))
                });
            }
        }
        // Trees in this slice.
        for &(tx, tz, radius, trunk) in &trees {
            if !(tz >= z_near_slice && tz < z_far) {
                continue;
            }
            let trunk_pts = scene.quad(tx - 0.15, tx + 0.15, 0.0, 0.0, tz, tz);
            let (xl, yb) = trunk_pts[0];
            let (xr, _) = trunk_pts[1];
            let (_, yt) = scene.project(tx, trunk + radius * 0.5, tz);
            let rect = [
                (xl, yt),
                (xr.max(xl + 1.0), yt),
                (xr.max(xl + 1.0), yb),
                (xl, yb),
            ];
            canvas.fill(&rect, |_, _| {
                Some((haze([0.25, 0.18, 0.12], tz), VEGETATION))
            });
            let (cx, cy) = scene.project(tx, trunk + radius, tz);
            let r = radius * scene.focal / tz;
            let crown_seed = mix64(tex_seed ^ tz.to_bits() as u64);
            let bbox = [
                (cx - r, cy - r),
                (cx + r, cy - r),
                (cx + r, cy + r),
                (cx - r, cy + r),
            ];
            canvas.fill(&bbox, |x, y| {
                let (dx, dy) = ((x as f32 + 0.5 - cx) / r, (y as f32 + 0.5 - cy) / r);
                let d = (dx * dx + dy * dy).sqrt();
                let n = fbm(crown_seed, dx * 3.0 + 10.0, dy * 3.0 + 10.0);
                (d < 0.75 + 0.35 * n).then(|| {
                    let light = 0.7 + 0.5 * n - 0.25 * dy;
                    (haze(scale3([0.16, 0.34, 0.1], light), tz), VEGETATION)
                })
            });
        }
        // Vehicles in this slice: shadow, visible side, then the rear (or front) face.
        for v in &vehicles {
            if !(v.z >= z_near_slice && v.z < z_far) {
                continue;
            }
            let (x0, x1) = (v.x - v.width / 2.0, v.x + v.width / 2.0);
            let shadow = scene.quad(x0 - 0.2, x1 + 0.3, 0.0, 0.0, v.z + v.length, v.z - 0.3);
            canvas.darken(&shadow, 0.45);
            let side_x = if scene.cam_x < x0 {
                Some(x0)
            } else if scene.cam_x > x1 {
                Some(x1)
            } else {
                None
            };
            let body = haze(v.color, v.z);
            if let Some(sx) = side_x {
                let far = v.z + v.length;
                let pts = [
                    scene.project(sx, v.height * 0.85, far),
                    scene.project(sx, v.height * 0.85, v.z),
                    scene.project(sx, 0.25, v.z),
                    scene.project(sx, 0.25, far),
                ];
                canvas.fill(&pts, |_, _| Some((scale3(body, 0.8), VEHICLE)));
            }
            let rear = [
                scene.project(x0, v.height, v.z),
                scene.project(x1, v.height, v.z),
                scene.project(x1, 0.25, v.z),
                scene.project(x0, 0.25, v.z),
            ];
            let (left, right) = (rear[0].0, rear[1].0);
            let (top, bottom) = (rear[0].1, rear[2].1);
            canvas.fill(&rear, |x, y| {
                let u = (x as f32 + 0.5 - left) / (right - left).max(1.0);
                let t = (y as f32 + 0.5 - top) / (bottom - top).max(1.0);
                let c = if t < 0.45 && u > 0.1 && u < 0.9 && t > 0.08 {
                    [0.08, 0.1, 0.13]
                } else if (0.55..0.68).contains(&t) && !(0.15..=0.85).contains(&u) {
                    [0.75, 0.05, 0.05]
                } else {
                    scale3(body, 0.9 + 0.1 * (1.0 - t))
                };
                Some((haze(c, v.z), VEHICLE))
            });
            for wheel_x in [x0 + 0.1, x1 - 0.45] {
                let wheel = [
                    scene.project(wheel_x, 0.45, v.z),
                    scene.project(wheel_x + 0.35, 0.45, v.z),
                    scene.project(wheel_x + 0.35, 0.0, v.z),
                    scene.project(wheel_x, 0.0, v.z),
                ];
                canvas.fill(&wheel, |_, _| Some(([0.05, 0.05, 0.05], VEHICLE)));
            }
        }
    }

    // Camera: exposure, white balance, vignette, sensor noise.
    let noise_sigma = rng.range(0.006, 0.03);
    let (noise_sigma, vignetting) = match &hard {
        Some(hard) => (hard.noise_sigma, hard.vignette),
        None => (noise_sigma, 0.18),
    };
    let mut noise_rng = Rng::new(rng.next_u64());
    let mut img = RgbImage::new(width, height);
    let (cx, cy) = (wf / 2.0, hf / 2.0);
    for y in 0..h {
        for x in 0..w {
            let i = (y * w + x) as usize;
            let (dx, dy) = ((x as f32 - cx) / cx, (y as f32 - cy) / cy);
            let vignette = 1.0 - vignetting * (dx * dx + dy * dy);
            let c = canvas.rgb[i];
            let wb = [1.0 + warmth, 1.0, 1.0 - warmth];
            let mut px = [0u8; 3];
            for ch in 0..3 {
                let v = c[ch] * exposure * vignette * wb[ch] + noise_sigma * noise_rng.normal();
                px[ch] = (v.clamp(0.0, 1.0) * 255.0 + 0.5) as u8;
            }
            img.put_pixel(x as u32, y as u32, image::Rgb(px));
        }
    }
    let mask = Mask {
        width,
        height,
        data: canvas.label,
    };
    (img, mask)
}

#[cfg(test)]
mod tests {
    use super::super::classes;
    use super::*;

    #[test]
    fn deterministic_for_a_seed_and_varied_across_seeds() {
        let (a, ma) = render(7, 96, 72, Look::Plain);
        let (b, mb) = render(7, 96, 72, Look::Plain);
        assert_eq!(a, b);
        assert_eq!(ma, mb);
        let (c, _) = render(8, 96, 72, Look::Plain);
        assert_ne!(a, c);
    }

    #[test]
    fn scenes_have_the_main_classes() {
        let mut seen = [0u64; 7];
        for seed in 0..20 {
            let (_, mask) = render(seed, 160, 120, Look::Plain);
            for &v in &mask.data {
                seen[v as usize] += 1;
            }
        }
        for (class, n) in classes().iter().zip(seen) {
            assert!(n > 0, "class {} never drawn", class.name);
        }
        // Road and sky are large everywhere.
        assert!(seen[ROAD as usize] > 20 * 160 * 120 / 20);
        assert!(seen[SKY as usize] > 20 * 160 * 120 / 20);
    }
}
