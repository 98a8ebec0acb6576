//! The canvas' blend on the CPU: image, ground truth, prediction and confidence into one opaque
//! colour per pixel. Two users: the OpenGL fallback composites the canvas with it, and the tests
//! compare `shaders/overlay.wgsl`'s output with it pixel by pixel. The maths, constants and
//! order of operations are the shader's (gamma-space floats, `mix(image, layer, alpha)`), so
//! keep the two in step.

use crate::core::dataset::IGNORE;
use crate::core::paint::DirtyRect;

/// What the canvas shows over the image.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub enum ViewMode {
    /// The photo alone.
    Image,
    /// The ground-truth mask (what is being painted).
    #[default]
    Truth,
    /// The model's prediction.
    Prediction,
    /// Where prediction and ground truth disagree.
    Difference,
    /// How sure the model is (winning softmax probability) as a heat map.
    Confidence,
    /// Ground truth left of a divider, prediction right of it.
    Split,
}

impl ViewMode {
    pub const ALL: [ViewMode; 6] = [
        ViewMode::Image,
        ViewMode::Truth,
        ViewMode::Prediction,
        ViewMode::Difference,
        ViewMode::Confidence,
        ViewMode::Split,
    ];

    /// The shader's `mode` uniform.
    pub fn code(self) -> u32 {
        match self {
            ViewMode::Image => 0,
            ViewMode::Truth => 1,
            ViewMode::Prediction => 2,
            ViewMode::Difference => 3,
            ViewMode::Confidence => 4,
            ViewMode::Split => 5,
        }
    }

    /// The name on the command line (`--view`).
    pub fn name(self) -> &'static str {
        match self {
            ViewMode::Image => "image",
            ViewMode::Truth => "gt",
            ViewMode::Prediction => "pred",
            ViewMode::Difference => "diff",
            ViewMode::Confidence => "confidence",
            ViewMode::Split => "split",
        }
    }

    /// The button's text.
    pub fn label(self) -> &'static str {
        match self {
            ViewMode::Image => "Image",
            ViewMode::Truth => "Ground truth",
            ViewMode::Prediction => "Prediction",
            ViewMode::Difference => "Difference",
            ViewMode::Confidence => "Confidence",
            ViewMode::Split => "Split",
        }
    }

    /// The key that selects it.
    pub fn key(self) -> egui::Key {
        match self {
            ViewMode::Image => egui::Key::I,
            ViewMode::Truth => egui::Key::G,
            ViewMode::Prediction => egui::Key::P,
            ViewMode::Difference => egui::Key::D,
            ViewMode::Confidence => egui::Key::C,
            ViewMode::Split => egui::Key::S,
        }
    }

    /// Whether it needs a prediction to mean anything.
    pub fn needs_prediction(self) -> bool {
        !matches!(self, ViewMode::Image | ViewMode::Truth)
    }
}

impl std::str::FromStr for ViewMode {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        ViewMode::ALL
            .into_iter()
            .find(|m| m.name() == text)
            .ok_or_else(|| format!("{text:?}: expected image, gt, pred, diff, confidence or split"))
    }
}

/// The difference view's class value meaning "any wrong class".
pub const ANY_CLASS: u8 = 255;

/// Colours (gamma-encoded sRGB) and strengths of the difference view. Alphas are multiplied by
/// the opacity slider.
pub const FALSE_POSITIVE: [u8; 3] = [255, 64, 32];
pub const FALSE_NEGATIVE: [u8; 3] = [32, 160, 255];
/// Errors are drawn this much stronger than the opacity slider says (capped at opaque), so
/// they stand out of the dimmed rest at any setting.
pub const ERROR_GAIN: f32 = 1.5;
/// Correct pixels are dimmed: black at this alpha.
pub const CORRECT_DIM: f32 = 0.6;
/// Unlabelled pixels: neither right nor wrong, a neutral grey veil.
pub const NEUTRAL: [u8; 3] = [128, 128, 128];
pub const NEUTRAL_ALPHA: f32 = 0.6;
/// Confidence heat map stops at 0, 1/3, 2/3 and 1 (dark, red, orange, pale yellow).
pub const HEAT: [[u8; 3]; 4] = [[0, 0, 4], [187, 55, 84], [249, 142, 9], [252, 255, 164]];

/// Per-frame settings of the blend (the shader's uniforms).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BlendParams {
    pub mode: ViewMode,
    /// 0..=1.
    pub opacity: f32,
    /// Difference view class, or [`ANY_CLASS`].
    pub class: u8,
    /// Split view: image x (pixels, continuous) where the prediction starts.
    pub divider: f32,
    /// Ground truth and prediction layers show class boundaries only.
    pub outline: bool,
}

/// The pixels to blend, each row-major at the image's size.
#[derive(Clone, Copy)]
pub struct Layers<'a> {
    pub width: u32,
    pub height: u32,
    /// RGB, 3 bytes a pixel.
    pub image: &'a [u8],
    /// Class ids (255 = unlabelled); `None` reads as all unlabelled.
    pub truth: Option<&'a [u8]>,
    pub prediction: Option<&'a [u8]>,
    pub confidence: Option<&'a [u8]>,
}

/// Class colours with alpha (0 for unlabelled), indexed by class id.
pub type Lut = [[u8; 4]; 256];

fn unit(v: u8) -> f32 {
    v as f32 / 255.0
}

fn rgb(c: [u8; 3]) -> [f32; 3] {
    c.map(unit)
}

/// The shader's `heat(t)`.
pub fn heat(t: f32) -> [f32; 3] {
    let x = t.clamp(0.0, 1.0) * 3.0;
    let i = (x.floor() as usize).min(2);
    let f = x - i as f32;
    let (a, b) = (rgb(HEAT[i]), rgb(HEAT[i + 1]));
    [0, 1, 2].map(|k| a[k] * (1.0 - f) + b[k] * f)
}

impl Layers<'_> {
    fn at(layer: Option<&[u8]>, i: usize, missing: u8) -> u8 {
        layer.map_or(missing, |l| l[i])
    }

    /// Whether a 4-neighbour inside the image holds another id than `id`.
    fn on_boundary(&self, layer: Option<&[u8]>, x: u32, y: u32, id: u8) -> bool {
        let (w, h) = (self.width, self.height);
        let get = |x: u32, y: u32| Self::at(layer, (y * w + x) as usize, IGNORE);
        (x > 0 && get(x - 1, y) != id)
            || (x + 1 < w && get(x + 1, y) != id)
            || (y > 0 && get(x, y - 1) != id)
            || (y + 1 < h && get(x, y + 1) != id)
    }

    /// The colour of a class layer (truth or prediction) at a pixel, with alpha.
    fn class_layer(
        &self,
        layer: Option<&[u8]>,
        x: u32,
        y: u32,
        p: &BlendParams,
        lut: &Lut,
    ) -> [f32; 4] {
        let id = Self::at(layer, (y * self.width + x) as usize, IGNORE);
        let c = lut[id as usize];
        let visible = !p.outline || self.on_boundary(layer, x, y, id);
        let alpha = if visible { unit(c[3]) * p.opacity } else { 0.0 };
        [unit(c[0]), unit(c[1]), unit(c[2]), alpha]
    }

    /// The overlay's colour and alpha at pixel `(x, y)`: the shader's `layer()`.
    pub fn layer(&self, x: u32, y: u32, p: &BlendParams, lut: &Lut) -> [f32; 4] {
        let i = (y * self.width + x) as usize;
        let with_alpha = |c: [u8; 3], a: f32| {
            let c = rgb(c);
            [c[0], c[1], c[2], a]
        };
        match p.mode {
            ViewMode::Image => [0.0; 4],
            ViewMode::Truth => self.class_layer(self.truth, x, y, p, lut),
            ViewMode::Prediction => self.class_layer(self.prediction, x, y, p, lut),
            ViewMode::Split => {
                // The pixel's centre decides its side.
                let layer = match (x as f32 + 0.5) < p.divider {
                    true => self.truth,
                    false => self.prediction,
                };
                self.class_layer(layer, x, y, p, lut)
            }
            ViewMode::Difference => {
                let truth = Self::at(self.truth, i, IGNORE);
                let pred = Self::at(self.prediction, i, IGNORE);
                if truth == IGNORE {
                    return with_alpha(NEUTRAL, NEUTRAL_ALPHA * p.opacity);
                }
                let wrong = if p.class == ANY_CLASS {
                    (truth != pred).then_some(FALSE_POSITIVE)
                } else if pred == p.class && truth != p.class {
                    Some(FALSE_POSITIVE)
                } else if truth == p.class && pred != p.class {
                    Some(FALSE_NEGATIVE)
                } else {
                    None
                };
                match wrong {
                    Some(c) => with_alpha(c, (ERROR_GAIN * p.opacity).min(1.0)),
                    None => [0.0, 0.0, 0.0, CORRECT_DIM * p.opacity],
                }
            }
            ViewMode::Confidence => {
                let t = unit(Self::at(self.confidence, i, 0));
                let c = heat(t);
                [c[0], c[1], c[2], p.opacity]
            }
        }
    }

    /// The final colour at `(x, y)`: `mix(image, layer, alpha)` rounded to bytes.
    pub fn pixel(&self, x: u32, y: u32, p: &BlendParams, lut: &Lut) -> [u8; 3] {
        let i = (y * self.width + x) as usize * 3;
        let layer = self.layer(x, y, p, lut);
        let a = layer[3];
        [0, 1, 2].map(|k| {
            let v = unit(self.image[i + k]) * (1.0 - a) + layer[k] * a;
            (v.clamp(0.0, 1.0) * 255.0).round() as u8
        })
    }

    /// RGBA bytes of `rect`, row by row (alpha 255).
    pub fn composite(&self, rect: DirtyRect, p: &BlendParams, lut: &Lut) -> Vec<[u8; 4]> {
        let mut out = Vec::with_capacity(rect.area() as usize);
        for y in rect.y..rect.bottom() {
            for x in rect.x..rect.right() {
                let [r, g, b] = self.pixel(x, y, p, lut);
                out.push([r, g, b, 255]);
            }
        }
        out
    }
}

/// The class colour table: `colours[id]` opaque, unlabelled transparent, ids without a class
/// loud magenta (so they get noticed and fixed).
pub fn lut(colours: &[[u8; 3]]) -> Lut {
    std::array::from_fn(|id| match colours.get(id) {
        Some(&[r, g, b]) => [r, g, b, 255],
        None if id == IGNORE as usize => [0, 0, 0, 0],
        None => [255, 0, 255, 255],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 3x1 image: grey pixels; truth road(0), sky(1), unlabelled; prediction road, road, sky.
    fn layers<'a>(image: &'a [u8], truth: &'a [u8], pred: &'a [u8], conf: &'a [u8]) -> Layers<'a> {
        Layers {
            width: 3,
            height: 1,
            image,
            truth: Some(truth),
            prediction: Some(pred),
            confidence: Some(conf),
        }
    }

    fn params(mode: ViewMode, class: u8) -> BlendParams {
        BlendParams {
            mode,
            opacity: 1.0,
            class,
            divider: 1.0,
            outline: false,
        }
    }

    #[test]
    fn difference_colours_false_positives_and_negatives_of_a_class() {
        let image = [100u8; 9];
        let (truth, pred, conf) = ([0u8, 1, IGNORE], [0u8, 0, 1], [255u8, 128, 0]);
        let l = layers(&image, &truth, &pred, &conf);
        let lut = lut(&[[128, 64, 128], [70, 130, 180]]);
        // For road (0): pixel 0 correct (dimmed), pixel 1 predicted road where sky is: a false
        // positive; pixel 2 unlabelled: neutral.
        let p = params(ViewMode::Difference, 0);
        assert_eq!(l.pixel(1, 0, &p, &lut), FALSE_POSITIVE);
        let dimmed = (100.0 / 255.0 * (1.0 - CORRECT_DIM) * 255.0_f32).round() as u8;
        assert_eq!(l.pixel(0, 0, &p, &lut), [dimmed; 3]);
        let neutral = |v: f32| {
            ((v / 255.0 * (1.0 - NEUTRAL_ALPHA) + 128.0 / 255.0 * NEUTRAL_ALPHA) * 255.0).round()
                as u8
        };
        assert_eq!(l.pixel(2, 0, &p, &lut), [neutral(100.0); 3]);
        // For sky (1): pixel 1 is sky missed, a false negative.
        let p = params(ViewMode::Difference, 1);
        assert_eq!(l.pixel(1, 0, &p, &lut), FALSE_NEGATIVE);
        // Any class: pixel 1 is wrong, pixel 0 right.
        let p = params(ViewMode::Difference, ANY_CLASS);
        assert_eq!(l.pixel(1, 0, &p, &lut), FALSE_POSITIVE);
        assert_eq!(l.pixel(0, 0, &p, &lut), [dimmed; 3]);
    }

    #[test]
    fn split_shows_truth_left_of_the_divider_and_prediction_right() {
        let image = [0u8; 9];
        let (truth, pred, conf) = ([0u8, 0, 0], [1u8, 1, 1], [0u8; 3]);
        let l = layers(&image, &truth, &pred, &conf);
        let lut = lut(&[[10, 20, 30], [40, 50, 60]]);
        let p = BlendParams {
            divider: 1.0,
            ..params(ViewMode::Split, ANY_CLASS)
        };
        assert_eq!(l.pixel(0, 0, &p, &lut), [10, 20, 30]);
        assert_eq!(l.pixel(1, 0, &p, &lut), [40, 50, 60]);
        // Half opacity blends halfway with the black image.
        let half = BlendParams { opacity: 0.5, ..p };
        assert_eq!(l.pixel(2, 0, &half, &lut), [20, 25, 30]);
    }

    #[test]
    fn heat_runs_through_its_stops_and_outline_keeps_boundaries() {
        assert_eq!(heat(0.0), rgb(HEAT[0]));
        assert_eq!(heat(1.0), rgb(HEAT[3]));
        let mid = heat(0.5);
        for (k, v) in mid.iter().enumerate() {
            let expected = (rgb(HEAT[1])[k] + rgb(HEAT[2])[k]) / 2.0;
            assert!((v - expected).abs() < 1e-6);
        }
        // Outline: a 3x1 truth 0 0 1 has a boundary at pixels 1 and 2, not 0.
        let image = [0u8; 9];
        let (truth, pred, conf) = ([0u8, 0, 1], [0u8; 3], [0u8; 3]);
        let l = layers(&image, &truth, &pred, &conf);
        let lut = lut(&[[200, 0, 0], [0, 200, 0]]);
        let p = BlendParams {
            outline: true,
            ..params(ViewMode::Truth, ANY_CLASS)
        };
        assert_eq!(l.pixel(0, 0, &p, &lut), [0, 0, 0]);
        assert_eq!(l.pixel(1, 0, &p, &lut), [200, 0, 0]);
        assert_eq!(l.pixel(2, 0, &p, &lut), [0, 200, 0]);
    }
}
