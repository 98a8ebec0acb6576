//! Paired image/mask augmentation and resizing to the training size.
//!
//! All geometric steps (resize, random scale + crop, rotation, horizontal flip) are folded into
//! one affine map from output to source pixels, so each output pixel is sampled once: bilinear
//! for the image, nearest for the mask, IGNORE for mask pixels that fall outside the source.
//! All colour steps (brightness, contrast, saturation, hue) are folded into one 3x3 matrix plus
//! offset. Then per-channel normalisation, written planar (`[3, h, w]`).

use image::RgbImage;
use serde::{Deserialize, Serialize};

use super::IGNORE;
use crate::core::mask::Mask;
use crate::core::rng::Rng;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct AugmentConfig {
    /// Probability of a horizontal flip.
    pub hflip: f32,
    /// Zoom range relative to "whole image resized to the training size"; < 1 shows borders.
    pub scale: [f32; 2],
    /// Maximum rotation, degrees either way.
    pub rotate_deg: f32,
    /// Multiplicative jitter ranges: factor in [1 - x, 1 + x].
    pub brightness: f32,
    pub contrast: f32,
    pub saturation: f32,
    /// Hue shift, fraction of a full turn either way.
    pub hue: f32,
}

impl Default for AugmentConfig {
    fn default() -> Self {
        Self {
            hflip: 0.5,
            scale: [0.8, 1.5],
            rotate_deg: 8.0,
            brightness: 0.25,
            contrast: 0.25,
            saturation: 0.25,
            hue: 0.03,
        }
    }
}

/// Per-channel normalisation `(x - mean) / std` on values in [0, 1].
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Normalize {
    pub mean: [f32; 3],
    pub std: [f32; 3],
}

impl Default for Normalize {
    /// The ImageNet statistics, the usual choice for road scenes too.
    fn default() -> Self {
        Self {
            mean: [0.485, 0.456, 0.406],
            std: [0.229, 0.224, 0.225],
        }
    }
}

/// A training-ready pair.
#[derive(Clone, Debug)]
pub struct Prepared {
    /// Normalised image, planar `[3, h, w]`.
    pub image: Vec<f32>,
    /// Class ids `[h, w]`, IGNORE where unknown.
    pub mask: Vec<u8>,
}

/// Output-to-source affine map: `src = A * (u, v) + t` (pixel centres).
#[derive(Clone, Copy, Debug)]
struct Affine {
    a: [[f32; 2]; 2],
    t: [f32; 2],
}

impl Affine {
    fn build(src: (u32, u32), out: (u32, u32), aug: Option<(&AugmentConfig, &mut Rng)>) -> Self {
        let (sw, sh) = (src.0 as f32, src.1 as f32);
        let (ow, oh) = (out.0 as f32, out.1 as f32);
        let (mut zoom, mut theta, mut flip) = (1.0f32, 0.0f32, false);
        let (mut cx, mut cy) = (sw / 2.0, sh / 2.0);
        if let Some((cfg, rng)) = aug {
            flip = rng.chance(cfg.hflip);
            zoom = rng.range(cfg.scale[0], cfg.scale[1].max(cfg.scale[0] + 1e-6));
            theta = rng.range(-cfg.rotate_deg, cfg.rotate_deg).to_radians();
            // Crop centre: anywhere that keeps the window inside (zoom >= 1), or that keeps the
            // image inside the window (zoom < 1).
            let (hw, hh) = (sw / 2.0 / zoom, sh / 2.0 / zoom);
            let (lo_x, hi_x) = (hw.min(sw - hw), hw.max(sw - hw));
            let (lo_y, hi_y) = (hh.min(sh - hh), hh.max(sh - hh));
            cx = rng.range(lo_x, hi_x.max(lo_x + 1e-6));
            cy = rng.range(lo_y, hi_y.max(lo_y + 1e-6));
        }
        // Output pixel offset from the output centre -> flip -> rotate -> scale to source.
        let (kx, ky) = (sw / ow / zoom, sh / oh / zoom);
        let f = if flip { -1.0 } else { 1.0 };
        let (c, s) = (theta.cos(), theta.sin());
        // d = (u - ow/2, v - oh/2); p = (f*dx, dy); r = R p; src = (cx + kx r.x, cy + ky r.y)
        let a = [[kx * c * f, -kx * s], [ky * s * f, ky * c]];
        let t = [
            cx - a[0][0] * ow / 2.0 - a[0][1] * oh / 2.0,
            cy - a[1][0] * ow / 2.0 - a[1][1] * oh / 2.0,
        ];
        Self { a, t }
    }

    fn apply(&self, u: f32, v: f32) -> (f32, f32) {
        (
            self.a[0][0] * u + self.a[0][1] * v + self.t[0],
            self.a[1][0] * u + self.a[1][1] * v + self.t[1],
        )
    }
}

/// Colour transform `x' = m x + d` built from the jitter factors.
fn colour_matrix(cfg: &AugmentConfig, rng: &mut Rng, mean_luma: f32) -> ([[f32; 3]; 3], f32) {
    let b = rng.range(1.0 - cfg.brightness, 1.0 + cfg.brightness);
    let c = rng.range(1.0 - cfg.contrast, 1.0 + cfg.contrast);
    let s = rng.range(1.0 - cfg.saturation, 1.0 + cfg.saturation);
    let hue = rng.range(-cfg.hue, cfg.hue) * std::f32::consts::TAU;
    const LUMA: [f32; 3] = [0.299, 0.587, 0.114];
    // Saturation: blend with grey (luma); hue: rotate chroma in YIQ space.
    let mut sat = [[0.0; 3]; 3];
    for (i, row) in sat.iter_mut().enumerate() {
        for (j, v) in row.iter_mut().enumerate() {
            *v = (1.0 - s) * LUMA[j] + if i == j { s } else { 0.0 };
        }
    }
    let to_yiq = [
        [0.299, 0.587, 0.114],
        [0.596, -0.274, -0.322],
        [0.211, -0.523, 0.312],
    ];
    let from_yiq = [
        [1.0, 0.956, 0.621],
        [1.0, -0.272, -0.647],
        [1.0, -1.106, 1.703],
    ];
    let (hc, hs) = (hue.cos(), hue.sin());
    let rot = [[1.0, 0.0, 0.0], [0.0, hc, -hs], [0.0, hs, hc]];
    let mul = |x: [[f32; 3]; 3], y: [[f32; 3]; 3]| {
        let mut out = [[0.0; 3]; 3];
        for i in 0..3 {
            for j in 0..3 {
                out[i][j] = (0..3).map(|k| x[i][k] * y[k][j]).sum();
            }
        }
        out
    };
    let hue_m = mul(from_yiq, mul(rot, to_yiq));
    // brightness then contrast (around the brightened mean) are scalar: fold them in.
    let m = mul(hue_m, sat);
    let scalar = b * c;
    let m = m.map(|row| row.map(|v| v * scalar));
    // Contrast offset (1 - c) * mean, pushed through the saturation/hue matrix: grey stays grey.
    let d = (1.0 - c) * b * mean_luma;
    (m, d)
}

/// Resizes (and, with `aug`, augments) a pair to `out` = (w, h).
pub fn prepare(
    image: &RgbImage,
    mask: Option<&Mask>,
    out: (u32, u32),
    aug: Option<(&AugmentConfig, &mut Rng)>,
    norm: &Normalize,
) -> Prepared {
    prepare_with(image, mask, None, out, aug, norm).0
}

/// [`prepare`], also warping a second label map `extra` (the image's size; e.g. the
/// drivable-area map of a multi-task run) exactly like the mask.
pub fn prepare_with(
    image: &RgbImage,
    mask: Option<&Mask>,
    extra: Option<&Mask>,
    out: (u32, u32),
    aug: Option<(&AugmentConfig, &mut Rng)>,
    norm: &Normalize,
) -> (Prepared, Option<Vec<u8>>) {
    let (sw, sh) = image.dimensions();
    let (ow, oh) = out;
    let n = (ow * oh) as usize;
    let (affine, colour) = match aug {
        Some((cfg, rng)) => {
            let affine = Affine::build((sw, sh), out, Some((cfg, rng)));
            (affine, Some((cfg, rng)))
        }
        None => (Affine::build((sw, sh), out, None), None),
    };
    let src = image.as_raw();
    let mut rgb = vec![0f32; n * 3];
    let mut inside = vec![false; n];
    let mut out_mask = vec![IGNORE; n];
    let mut out_extra = extra.map(|_| vec![IGNORE; n]);
    let (swf, shf) = (sw as f32, sh as f32);
    for v in 0..oh {
        for u in 0..ow {
            let i = (v * ow + u) as usize;
            let (x, y) = affine.apply(u as f32 + 0.5, v as f32 + 0.5);
            if x < 0.0 || y < 0.0 || x >= swf || y >= shf {
                continue;
            }
            inside[i] = true;
            if let Some(mask) = mask {
                out_mask[i] = mask.data[(y as usize) * mask.width as usize + x as usize];
            }
            if let (Some(extra), Some(out_extra)) = (extra, out_extra.as_mut()) {
                out_extra[i] = extra.data[(y as usize) * extra.width as usize + x as usize];
            }
            // Bilinear between pixel centres, clamped at the border.
            let fx = (x - 0.5).max(0.0);
            let fy = (y - 0.5).max(0.0);
            let x0 = (fx as u32).min(sw - 1);
            let y0 = (fy as u32).min(sh - 1);
            let x1 = (x0 + 1).min(sw - 1);
            let y1 = (y0 + 1).min(sh - 1);
            let (ax, ay) = (fx - x0 as f32, fy - y0 as f32);
            let at = |xx: u32, yy: u32, ch: usize| src[((yy * sw + xx) * 3) as usize + ch] as f32;
            for ch in 0..3 {
                let top = at(x0, y0, ch) * (1.0 - ax) + at(x1, y0, ch) * ax;
                let bottom = at(x0, y1, ch) * (1.0 - ax) + at(x1, y1, ch) * ax;
                rgb[i * 3 + ch] = (top * (1.0 - ay) + bottom * ay) / 255.0;
            }
        }
    }
    if let Some((cfg, rng)) = colour {
        let count = inside.iter().filter(|&&b| b).count().max(1) as f32;
        let mean_luma = rgb
            .chunks_exact(3)
            .zip(&inside)
            .filter(|(_, ins)| **ins)
            .map(|(p, _)| 0.299 * p[0] + 0.587 * p[1] + 0.114 * p[2])
            .sum::<f32>()
            / count;
        let (m, d) = colour_matrix(cfg, rng, mean_luma);
        for p in rgb.chunks_exact_mut(3) {
            let q = [p[0], p[1], p[2]];
            for ch in 0..3 {
                p[ch] = (m[ch][0] * q[0] + m[ch][1] * q[1] + m[ch][2] * q[2] + d).clamp(0.0, 1.0);
            }
        }
    }
    let mut planar = vec![0f32; n * 3];
    for ch in 0..3 {
        let (mean, std) = (norm.mean[ch], norm.std[ch]);
        let plane = &mut planar[ch * n..(ch + 1) * n];
        for (i, out) in plane.iter_mut().enumerate() {
            // Outside the source: the channel mean, i.e. 0 after normalisation.
            *out = if inside[i] {
                (rgb[i * 3 + ch] - mean) / std
            } else {
                0.0
            };
        }
    }
    (
        Prepared {
            image: planar,
            mask: out_mask,
        },
        out_extra,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gradient(w: u32, h: u32) -> (RgbImage, Mask) {
        let img = RgbImage::from_fn(w, h, |x, y| {
            image::Rgb([(x * 255 / w) as u8, (y * 255 / h) as u8, 90])
        });
        let mut mask = Mask::filled(w, h, 0);
        for y in 0..h {
            for x in w / 2..w {
                mask.set(x, y, 1);
            }
        }
        (img, mask)
    }

    #[test]
    fn plain_resize_keeps_layout_and_normalises() {
        let (img, mask) = gradient(64, 48);
        let norm = Normalize::default();
        let p = prepare(&img, Some(&mask), (32, 24), None, &norm);
        assert_eq!(p.image.len(), 3 * 32 * 24);
        // Left half class 0, right half class 1, nothing ignored.
        assert_eq!(p.mask[5 * 32 + 3], 0);
        assert_eq!(p.mask[5 * 32 + 30], 1);
        assert!(!p.mask.contains(&IGNORE));
        // Blue channel is constant 90/255 everywhere -> normalised constant.
        let blue = &p.image[2 * 32 * 24..];
        let expect = (90.0 / 255.0 - norm.mean[2]) / norm.std[2];
        assert!(blue.iter().all(|v| (v - expect).abs() < 1e-4));
    }

    #[test]
    fn flip_mirrors_image_and_mask_together() {
        let (img, mask) = gradient(40, 20);
        let cfg = AugmentConfig {
            hflip: 1.0,
            scale: [1.0, 1.0],
            rotate_deg: 0.0,
            brightness: 0.0,
            contrast: 0.0,
            saturation: 0.0,
            hue: 0.0,
        };
        let mut rng = Rng::new(1);
        let p = prepare(
            &img,
            Some(&mask),
            (40, 20),
            Some((&cfg, &mut rng)),
            &Normalize::default(),
        );
        assert_eq!(p.mask[3], 1, "left edge now shows the right half");
        assert_eq!(p.mask[36], 0);
        // Red channel (x gradient) now decreases from left to right.
        assert!(p.image[0] > p.image[39]);
    }

    #[test]
    fn zoom_out_and_rotation_mark_outside_as_ignore_and_are_seeded() {
        let (img, mask) = gradient(64, 48);
        let cfg = AugmentConfig {
            scale: [0.6, 0.7],
            rotate_deg: 20.0,
            ..Default::default()
        };
        let run = |seed| {
            let mut rng = Rng::new(seed);
            prepare(
                &img,
                Some(&mask),
                (64, 48),
                Some((&cfg, &mut rng)),
                &Normalize::default(),
            )
        };
        let (a, b, c) = (run(5), run(5), run(6));
        assert_eq!(a.mask, b.mask);
        assert_eq!(a.image, b.image);
        assert_ne!(a.image, c.image);
        let ignored = a.mask.iter().filter(|&&v| v == IGNORE).count();
        assert!(ignored > 64 * 48 / 10, "only {ignored} ignored pixels");
        // Mask stays a nearest-neighbour copy: only known values.
        assert!(a.mask.iter().all(|&v| v == 0 || v == 1 || v == IGNORE));
    }

    #[test]
    fn colour_jitter_keeps_grey_grey() {
        let img = RgbImage::from_pixel(8, 8, image::Rgb([100, 100, 100]));
        let cfg = AugmentConfig {
            hflip: 0.0,
            scale: [1.0, 1.0],
            rotate_deg: 0.0,
            ..Default::default()
        };
        let norm = Normalize {
            mean: [0.0; 3],
            std: [1.0; 3],
        };
        let mut rng = Rng::new(9);
        let p = prepare(&img, None, (8, 8), Some((&cfg, &mut rng)), &norm);
        let (r, g, b) = (p.image[0], p.image[64], p.image[128]);
        assert!((r - g).abs() < 2e-3 && (g - b).abs() < 2e-3, "{r} {g} {b}");
    }
}
