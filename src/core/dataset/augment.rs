//! Paired image/mask augmentation and resizing to the run's input size.
//!
//! All geometric steps (resize, random scale + crop, rotation, horizontal flip) are folded into
//! one affine map from output to source pixels, so each output pixel is sampled once: bilinear
//! for the image, nearest for the mask, IGNORE for mask pixels that fall outside the source.
//!
//! A [`Frame`] says at which size the whole image is seen (the run's input size, which sets the
//! scale) and how large the output is: the whole image at that size, or a training crop of it
//! (the random scale-and-crop of segmentation recipes: the window is `crop / (scale * zoom)`
//! source pixels, placed inside the image when it fits). A crop may be centred on a pixel of a
//! rare class ([`AugmentConfig::focus`]), so that thin classes are in more crops.
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
    /// Chance that a training crop is centred on a pixel of one of `focus_classes` that the
    /// image holds (class-aware crops, as nnU-Net over-samples foreground): thin and rare
    /// classes then appear in more crops. 0 turns it off; it only matters when a crop is
    /// smaller than the image.
    pub focus: f32,
    /// The classes `focus` centres crops on. Empty with `focus > 0`: the rare classes of the
    /// training masks, found when a run starts and recorded in its config.
    pub focus_classes: Vec<u8>,
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
            focus: 0.0,
            focus_classes: Vec::new(),
        }
    }
}

/// The geometry of a prepared pair: the whole image is seen at `input` (w, h), and the output
/// is `out` (w, h): `input` itself, or a training crop of the image at that scale.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Frame {
    pub input: (u32, u32),
    pub out: (u32, u32),
}

impl Frame {
    /// The whole image resized to `size`.
    pub fn whole(size: (u32, u32)) -> Self {
        Self {
            input: size,
            out: size,
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
    /// The map of `frame`'s output onto a `src` image; with `aug`, randomly zoomed, rotated,
    /// flipped and placed (on a pixel of a focus class of `mask`, at the config's chance).
    fn build(
        src: (u32, u32),
        frame: Frame,
        aug: Option<(&AugmentConfig, &mut Rng)>,
        mask: Option<&Mask>,
    ) -> Self {
        let (sw, sh) = (src.0 as f32, src.1 as f32);
        let (iw, ih) = (frame.input.0 as f32, frame.input.1 as f32);
        let (ow, oh) = (frame.out.0 as f32, frame.out.1 as f32);
        let (mut zoom, mut theta, mut flip) = (1.0f32, 0.0f32, false);
        let (mut cx, mut cy) = (sw / 2.0, sh / 2.0);
        if let Some((cfg, rng)) = aug {
            flip = rng.chance(cfg.hflip);
            zoom = rng.range(cfg.scale[0], cfg.scale[1].max(cfg.scale[0] + 1e-6));
            theta = rng.range(-cfg.rotate_deg, cfg.rotate_deg).to_radians();
            // Window centre: anywhere that keeps the window inside the image (when it fits), or
            // that keeps the image inside the window (when it does not). The window's half
            // extent is the output's over the scale (input / source) and the zoom.
            let (hw, hh) = (ow * sw / iw / 2.0 / zoom, oh * sh / ih / 2.0 / zoom);
            let (lo_x, hi_x) = (hw.min(sw - hw), hw.max(sw - hw));
            let (lo_y, hi_y) = (hh.min(sh - hh), hh.max(sh - hh));
            cx = rng.range(lo_x, hi_x.max(lo_x + 1e-6));
            cy = rng.range(lo_y, hi_y.max(lo_y + 1e-6));
            // Drawn only when asked for, so that runs without it see the augmentation they did.
            if cfg.focus > 0.0
                && rng.chance(cfg.focus)
                && let Some(mask) = mask
                && let Some((fx, fy)) = focus_pixel(mask, &cfg.focus_classes, rng)
            {
                cx = fx.clamp(lo_x, hi_x);
                cy = fy.clamp(lo_y, hi_y);
            }
        }
        // Output pixel offset from the output centre -> flip -> rotate -> scale to source.
        let (kx, ky) = (sw / iw / zoom, sh / ih / zoom);
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

/// The centre of a random pixel of a random one of `classes` that `mask` holds (each present
/// class equally likely, whatever its area: a thin class gets as many crops as a wide one);
/// `None` when the mask holds none of them. Two passes over the mask.
fn focus_pixel(mask: &Mask, classes: &[u8], rng: &mut Rng) -> Option<(f32, f32)> {
    let mut counts = [0usize; 256];
    for &id in &mask.data {
        counts[id as usize] += 1;
    }
    let present: Vec<u8> = classes
        .iter()
        .copied()
        .filter(|&c| c != IGNORE && counts[c as usize] > 0)
        .collect();
    if present.is_empty() {
        return None;
    }
    let class = present[rng.below(present.len())];
    let nth = rng.below(counts[class as usize]);
    let index = mask
        .data
        .iter()
        .enumerate()
        .filter(|&(_, &id)| id == class)
        .nth(nth)
        .map(|(i, _)| i)?;
    let width = mask.width as usize;
    Some(((index % width) as f32 + 0.5, (index / width) as f32 + 0.5))
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

/// Resizes (and, with `aug`, augments) a pair to `frame`.
pub fn prepare(
    image: &RgbImage,
    mask: Option<&Mask>,
    frame: Frame,
    aug: Option<(&AugmentConfig, &mut Rng)>,
    norm: &Normalize,
) -> Prepared {
    prepare_with(image, mask, None, frame, aug, norm).0
}

/// [`prepare`], also warping a second label map `extra` (the image's size; e.g. the
/// drivable-area map of a multi-task run) exactly like the mask.
pub fn prepare_with(
    image: &RgbImage,
    mask: Option<&Mask>,
    extra: Option<&Mask>,
    frame: Frame,
    aug: Option<(&AugmentConfig, &mut Rng)>,
    norm: &Normalize,
) -> (Prepared, Option<Vec<u8>>) {
    let (sw, sh) = image.dimensions();
    let (ow, oh) = frame.out;
    let n = (ow * oh) as usize;
    let (affine, colour) = match aug {
        Some((cfg, rng)) => {
            let affine = Affine::build((sw, sh), frame, Some((cfg, rng)), mask);
            (affine, Some((cfg, rng)))
        }
        None => (Affine::build((sw, sh), frame, None, None), None),
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
        let p = prepare(&img, Some(&mask), Frame::whole((32, 24)), None, &norm);
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
            ..Default::default()
        };
        let mut rng = Rng::new(1);
        let p = prepare(
            &img,
            Some(&mask),
            Frame::whole((40, 20)),
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
                Frame::whole((64, 48)),
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

    /// An image whose red and green say each pixel's column and row (0..=255), and a mask of
    /// 10-pixel checks of four classes: an output pixel's colour tells where it came from.
    fn coordinates(w: u32, h: u32) -> (RgbImage, Mask, impl Fn(f32, f32) -> u8) {
        let img = RgbImage::from_fn(w, h, |x, y| image::Rgb([x as u8, y as u8, 90]));
        let class = |x: u32, y: u32| ((x / 10 + y / 10) % 4) as u8;
        let mut mask = Mask::filled(w, h, 0);
        for y in 0..h {
            for x in 0..w {
                mask.set(x, y, class(x, y));
            }
        }
        (img, mask, move |x: f32, y: f32| class(x as u32, y as u32))
    }

    /// No colour change, no normalisation: outputs are the source's values / 255.
    fn geometry_only(scale: [f32; 2], rotate_deg: f32) -> (AugmentConfig, Normalize) {
        let cfg = AugmentConfig {
            scale,
            rotate_deg,
            brightness: 0.0,
            contrast: 0.0,
            saturation: 0.0,
            hue: 0.0,
            ..Default::default()
        };
        let norm = Normalize {
            mean: [0.0; 3],
            std: [1.0; 3],
        };
        (cfg, norm)
    }

    #[test]
    fn crops_stay_inside_the_image_at_the_inputs_scale_with_masks_aligned() {
        // 200x100 seen at 100x50 (half scale), trained on 40x40 crops zoomed 1..1.5: each crop
        // is a window of 80/zoom source pixels, inside the image.
        let (img, mask, class) = coordinates(200, 100);
        let (cfg, norm) = geometry_only([1.0, 1.5], 0.0);
        let frame = Frame {
            input: (100, 50),
            out: (40, 40),
        };
        let (n, plane) = (40 * 40, |p: &Prepared, ch: usize, i: usize| {
            p.image[ch * 1600 + i]
        });
        let (mut lefts, mut checked) = (Vec::new(), 0);
        for seed in 0..40 {
            let mut rng = Rng::new(seed);
            let p = prepare(&img, Some(&mask), frame, Some((&cfg, &mut rng)), &norm);
            assert_eq!((p.image.len(), p.mask.len()), (3 * n, n));
            assert!(
                p.mask.iter().all(|&v| v != IGNORE),
                "seed {seed}: a crop left the image"
            );
            // Source coordinates from the colours (bilinear between pixel centres: value + 0.5).
            let at = |i: usize| (plane(&p, 0, i) * 255.0 + 0.5, plane(&p, 1, i) * 255.0 + 0.5);
            for i in 0..n {
                let (x, y) = at(i);
                // Pixels on a check's edge may round either way.
                if (x.fract() - 0.0).abs() < 0.05 || (x.fract() - 1.0).abs() < 0.05 {
                    continue;
                }
                if (y.fract() - 0.0).abs() < 0.05 || (y.fract() - 1.0).abs() < 0.05 {
                    continue;
                }
                assert_eq!(
                    p.mask[i],
                    class(x, y),
                    "seed {seed}, pixel {i} from ({x}, {y})"
                );
                checked += 1;
            }
            // Neighbouring output pixels are 2/zoom source pixels apart: the input's scale.
            let (x0, _) = at(20 * 40 + 10);
            let (x1, _) = at(20 * 40 + 11);
            let step = (x1 - x0).abs();
            assert!((1.3..=2.01).contains(&step), "seed {seed}: step {step}");
            lefts.push(at(0).0.min(at(39).0));
        }
        assert!(checked > 40 * n / 2, "only {checked} pixels checked");
        // Placed anywhere in the image, not always in the same spot.
        let (lo, hi) = lefts
            .iter()
            .fold((f32::MAX, 0f32), |(a, b), &v| (a.min(v), b.max(v)));
        assert!(hi - lo > 60.0, "crops from {lo} to {hi}");
    }

    #[test]
    fn a_crop_larger_than_the_image_is_padded_and_ignored_there() {
        // Zoomed out to 0.3: the window (267 source pixels) is wider than the image.
        let (img, mask, _) = coordinates(200, 100);
        let (cfg, norm) = geometry_only([0.3, 0.3], 10.0);
        let frame = Frame {
            input: (100, 50),
            out: (40, 40),
        };
        for seed in 0..10 {
            let mut rng = Rng::new(seed);
            let p = prepare(&img, Some(&mask), frame, Some((&cfg, &mut rng)), &norm);
            // The blue channel is 90/255 inside the image, and 0 where padded.
            let padded: Vec<bool> = p.image[2 * 1600..].iter().map(|&b| b == 0.0).collect();
            let ignored: Vec<bool> = p.mask.iter().map(|&v| v == IGNORE).collect();
            assert_eq!(padded, ignored, "seed {seed}");
            let count = ignored.iter().filter(|&&b| b).count();
            assert!(count > 100 && count < 1500, "seed {seed}: {count} ignored");
        }
    }

    #[test]
    fn focus_centres_crops_on_a_thin_class() {
        // A line 2 pixels wide (class 9) at x = 20 of a 200x100 image, in 40x40 crops at half
        // scale: a crop holds it by chance now and then, and every time when focused on it.
        let (img, mut mask, _) = coordinates(200, 100);
        for y in 0..100 {
            mask.set(20, y, 9);
            mask.set(21, y, 9);
        }
        let frame = Frame {
            input: (100, 50),
            out: (40, 40),
        };
        let holds = |focus: f32| {
            let (mut cfg, norm) = geometry_only([1.0, 1.5], 0.0);
            cfg.hflip = 0.0;
            cfg.focus = focus;
            cfg.focus_classes = vec![9];
            (0..50)
                .filter(|&seed| {
                    let mut rng = Rng::new(seed);
                    let p = prepare(&img, Some(&mask), frame, Some((&cfg, &mut rng)), &norm);
                    p.mask.contains(&9)
                })
                .count()
        };
        let (chance, focused) = (holds(0.0), holds(1.0));
        assert!(
            chance < 25,
            "{chance} of 50 crops held the line without focus"
        );
        assert_eq!(focused, 50);
        // Half the time: in between.
        let half = holds(0.5);
        assert!(half > chance && half < 50, "{chance} {half}");
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
        let p = prepare(
            &img,
            None,
            Frame::whole((8, 8)),
            Some((&cfg, &mut rng)),
            &norm,
        );
        let (r, g, b) = (p.image[0], p.image[64], p.image[128]);
        assert!((r - g).abs() < 2e-3 && (g - b).abs() < 2e-3, "{r} {g} {b}");
    }
}
