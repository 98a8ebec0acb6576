//! Segmentation losses on logits `[batch, classes, h, w]` and class-id targets `[batch, h, w]`.
//!
//! Target value 255 marks pixels to ignore (unlabelled); any other id outside `0..classes` is
//! ignored the same way. Everything is written with whole-tensor ops (no per-pixel host loops)
//! so it runs on the training device and is differentiable.
//!
//! The shared trick: targets become a float one-hot tensor `[batch, classes, h, w]` by comparing
//! them with `0..classes`; an ignored pixel matches no class, so its one-hot column is all zero
//! and it drops out of every sum below without any explicit masking.

use burn::tensor::activation::log_softmax;
use burn::tensor::{Int, Tensor};
use serde::{Deserialize, Serialize};

use crate::core::kernels::ops;

/// Target value of pixels that carry no label (same value as the dataset's ignore marker).
const IGNORE: i64 = 255;

/// Additive smoothing of the soft Dice ratio `(2|P∩G| + s) / (|P| + |G| + s)`.
///
/// With `s = 1` a class absent from both the batch's ground truth and its predictions scores a
/// perfect 1 instead of 0/0, and a class absent from the ground truth is not punished with a
/// near-infinite slope for tiny predicted probabilities (the usual "smooth = 1" formulation).
pub const DICE_SMOOTH: f32 = 1.0;

/// Floor for the normaliser of weighted means: a batch whose pixels are all ignored (or all
/// have weight 0) then yields a loss of 0 instead of PyTorch's NaN.
const MIN_NORMALISER: f32 = 1e-12;

/// Why a [`LossConfig`] cannot be used.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LossError {
    /// A term weight, gamma or class weight is negative or not finite.
    #[error("invalid loss config: {0}")]
    Invalid(String),
    /// `class_weights` does not have one entry per class.
    #[error("class_weights has {got} entries but the model has {expected} classes")]
    ClassWeightCount {
        /// Number of classes of the model.
        expected: usize,
        /// Number of weights supplied.
        got: usize,
    },
}

/// Weighted sum of segmentation losses: `ce * CE + dice * Dice + focal * Focal`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct LossConfig {
    /// Weight of the cross-entropy term.
    pub ce: f32,
    /// Weight of the soft Dice term.
    pub dice: f32,
    /// Weight of the focal term.
    pub focal: f32,
    /// Focusing parameter gamma of the focal term (0 turns focal into cross-entropy).
    pub focal_gamma: f32,
    /// Per-class weights for the cross-entropy and focal terms (not Dice, which is already
    /// balanced per class); `None` weighs every class 1.
    pub class_weights: Option<Vec<f32>>,
    /// A class id whose pixels every term leaves out, as if unlabelled (PyTorch's
    /// `ignore_index`): for a "void" or "other" class that should not be learned. Validation
    /// metrics still count it. `None`: only unlabelled pixels (255) are left out.
    pub ignore_index: Option<u8>,
}

impl Default for LossConfig {
    /// Plain cross-entropy.
    fn default() -> Self {
        Self {
            ce: 1.0,
            dice: 0.0,
            focal: 0.0,
            focal_gamma: 2.0,
            class_weights: None,
            ignore_index: None,
        }
    }
}

impl LossConfig {
    /// Check the weights, and that `class_weights` (if any) has `num_classes` entries.
    pub fn validate(&self, num_classes: usize) -> Result<(), LossError> {
        let terms = [
            ("ce", self.ce),
            ("dice", self.dice),
            ("focal", self.focal),
            ("focal_gamma", self.focal_gamma),
        ];
        for (name, value) in terms {
            if !value.is_finite() || value < 0.0 {
                return Err(LossError::Invalid(format!(
                    "{name} must be finite and >= 0, got {value}"
                )));
            }
        }
        if self.ce + self.dice + self.focal <= 0.0 {
            return Err(LossError::Invalid(
                "at least one of ce, dice, focal must be > 0".into(),
            ));
        }
        if let Some(id) = self.ignore_index
            && id as usize >= num_classes
        {
            return Err(LossError::Invalid(format!(
                "ignore_index {id} is not a class id (0..={})",
                num_classes.saturating_sub(1)
            )));
        }
        if let Some(weights) = &self.class_weights {
            if weights.len() != num_classes {
                return Err(LossError::ClassWeightCount {
                    expected: num_classes,
                    got: weights.len(),
                });
            }
            if let Some(w) = weights.iter().find(|w| !w.is_finite() || **w < 0.0) {
                return Err(LossError::Invalid(format!(
                    "class weights must be finite and >= 0, got {w}"
                )));
            }
        }
        Ok(())
    }

    /// The weighted loss for logits `[batch, classes, h, w]` and targets `[batch, h, w]`, as a
    /// one-element tensor. Terms with weight 0 are not computed.
    ///
    /// # Panics
    /// If the shapes disagree or the config is invalid for this number of classes (call
    /// [`LossConfig::validate`] once up front to get an error instead).
    pub fn loss(&self, logits: Tensor<4>, targets: Tensor<3, Int>) -> Tensor<1> {
        // The ignored class becomes "unlabelled", which every term already leaves out.
        let targets = match self.ignore_index {
            Some(id) => {
                let hit = targets.clone().equal_elem(id as i64); // [batch, h, w]
                targets.mask_fill(hit, IGNORE)
            }
            None => targets,
        };
        if self.dice == 0.0 && self.focal == 0.0 {
            if let Err(e) = self.validate(logits.dims()[1]) {
                panic!("{e}");
            }
            return cross_entropy(logits, targets, self.class_weights.as_deref())
                .mul_scalar(self.ce);
        }
        let parts = Prepared::new(logits, targets, self.class_weights.as_deref());
        if let Err(e) = self.validate(parts.classes) {
            panic!("{e}");
        }
        let mut total: Option<Tensor<1>> = None;
        let mut add = |term: Tensor<1>, weight: f32| {
            let term = term.mul_scalar(weight);
            total = Some(match total.take() {
                Some(t) => t + term,
                None => term,
            });
        };
        if self.ce > 0.0 {
            add(parts.focal(0.0), self.ce);
        }
        if self.focal > 0.0 {
            add(parts.focal(self.focal_gamma), self.focal);
        }
        if self.dice > 0.0 {
            add(parts.dice(), self.dice);
        }
        total.expect("validate() guarantees a positive term weight")
    }
}

/// Cross-entropy on logits `[batch, classes, h, w]` and targets `[batch, h, w]`, averaged over
/// non-ignored pixels and weighted like PyTorch: `sum(w_t * nll) / sum(w_t)` where `w_t` is the
/// weight of the pixel's true class (1 without `class_weights`).
pub fn cross_entropy(
    logits: Tensor<4>,
    targets: Tensor<3, Int>,
    class_weights: Option<&[f32]>,
) -> Tensor<1> {
    check_shapes(&logits, &targets);
    if let Some(fused) = ops::cross_entropy(&logits, &targets, class_weights) {
        return fused;
    }
    Prepared::new(logits, targets, class_weights).focal(0.0)
}

/// Panics unless `targets` is `[batch, h, w]` for `logits: [batch, classes, h, w]`.
fn check_shapes(logits: &Tensor<4>, targets: &Tensor<3, Int>) {
    let [batch, classes, height, width] = logits.dims();
    assert_eq!(
        targets.dims(),
        [batch, height, width],
        "targets [batch, h, w] must match logits [batch, classes, h, w] = {:?}",
        logits.dims()
    );
    assert!(
        classes <= IGNORE as usize,
        "the ignore id {IGNORE} must not be a class id"
    );
}

/// Knowledge-distillation loss: `T^2 * mean over pixels of KL(teacher || student)` with both
/// logits (`[batch, classes, h, w]`) softened by `temperature`. `teacher` carries no gradient.
pub fn distillation(student: Tensor<4>, teacher: Tensor<4>, temperature: f32) -> Tensor<1> {
    let [batch, _, h, w] = student.dims();
    let log_q = log_softmax(student.div_scalar(temperature), 1); // [batch, classes, h, w]
    let log_p = log_softmax(teacher.div_scalar(temperature), 1);
    let kl = (log_p.clone().exp() * (log_p - log_q)).sum(); // [1]
    kl.mul_scalar(temperature * temperature / (batch * h * w).max(1) as f32)
}

/// Focal loss (Lin et al., 2017): per pixel `-(1 - p_t)^gamma * log p_t`, reduced like
/// [`cross_entropy`] (weighted mean over non-ignored pixels). `gamma = 0` is cross-entropy.
pub fn focal_loss(
    logits: Tensor<4>,
    targets: Tensor<3, Int>,
    gamma: f32,
    class_weights: Option<&[f32]>,
) -> Tensor<1> {
    Prepared::new(logits, targets, class_weights).focal(gamma)
}

/// Soft Dice loss: `1 - mean_c (2 * sum(p_c * g_c) + s) / (sum(p_c) + sum(g_c) + s)` with
/// softmax probabilities `p`, one-hot targets `g`, sums over the whole batch and all
/// non-ignored pixels, the mean over all classes, and `s` = [`DICE_SMOOTH`].
pub fn dice_loss(logits: Tensor<4>, targets: Tensor<3, Int>) -> Tensor<1> {
    Prepared::new(logits, targets, None).dice()
}

/// Per-class weights from pixel counts by median-frequency balancing (Eigen & Fergus, 2015):
/// `w_c = median(f) / f_c` with `f_c = counts[c] / sum(counts)` and the median taken over the
/// classes that occur. A class with 0 pixels gets weight 0 (it cannot be learned from this data
/// anyway, and an infinite weight would be useless); if no class occurs, all weights are 0.
pub fn class_weights_from_pixel_counts(counts: &[u64]) -> Vec<f32> {
    let total: u64 = counts.iter().sum();
    if total == 0 {
        return vec![0.0; counts.len()];
    }
    let freq = |c: u64| c as f64 / total as f64;
    let mut present: Vec<f64> = counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| freq(c))
        .collect();
    present.sort_by(f64::total_cmp);
    let mid = present.len() / 2;
    let median = if !present.len().is_multiple_of(2) {
        present[mid]
    } else {
        (present[mid - 1] + present[mid]) / 2.0
    };
    counts
        .iter()
        .map(|&c| {
            if c == 0 {
                0.0
            } else {
                (median / freq(c)) as f32
            }
        })
        .collect()
}

/// What every loss needs, computed once per batch.
struct Prepared {
    classes: usize,
    /// `[B, C, H, W]` log-probabilities.
    log_probs: Tensor<4>,
    /// `[B, C, H, W]` one-hot targets, all-zero at ignored pixels.
    one_hot: Tensor<4>,
    /// `[B, 1, H, W]` weight of each pixel's true class, 0 at ignored pixels.
    pixel_weight: Tensor<4>,
}

impl Prepared {
    fn new(logits: Tensor<4>, targets: Tensor<3, Int>, class_weights: Option<&[f32]>) -> Self {
        check_shapes(&logits, &targets);
        let [batch, classes, height, width] = logits.dims();
        let device = logits.device();
        let full = [batch, classes, height, width];

        // [1, C, 1, 1] class ids compared with [B, 1, H, W] targets -> [B, C, H, W].
        let ids = Tensor::<1, Int>::arange(0..classes as i64, &device)
            .reshape([1, classes, 1, 1])
            .expand(full);
        let one_hot = targets
            .unsqueeze_dim::<4>(1)
            .expand(full)
            .equal(ids)
            .float();

        let pixel_weight = match class_weights {
            Some(weights) => {
                assert_eq!(weights.len(), classes, "one class weight per class");
                let weights =
                    Tensor::<1>::from_floats(weights, &device).reshape([1, classes, 1, 1]);
                (one_hot.clone() * weights).sum_dim(1)
            }
            None => one_hot.clone().sum_dim(1),
        };

        Self {
            classes,
            log_probs: log_softmax(logits, 1),
            one_hot,
            pixel_weight,
        }
    }

    /// Weighted mean of `(1 - p_t)^gamma * -log p_t` over non-ignored pixels.
    fn focal(&self, gamma: f32) -> Tensor<1> {
        // [B, 1, H, W]: -log p_t (0 at ignored pixels, whose one-hot column is zero).
        let nll = (self.log_probs.clone() * self.one_hot.clone())
            .sum_dim(1)
            .neg();
        let per_pixel = if gamma == 0.0 {
            nll
        } else {
            // 1 - p_t = 1 - exp(-nll); the floor keeps d/dx x^gamma finite for gamma < 1.
            let modulation = nll
                .clone()
                .neg()
                .exp()
                .neg()
                .add_scalar(1.0)
                .clamp_min(MIN_NORMALISER)
                .powf_scalar(gamma);
            modulation * nll
        };
        let weighted = (per_pixel * self.pixel_weight.clone()).sum();
        weighted / self.pixel_weight.clone().sum().clamp_min(MIN_NORMALISER)
    }

    /// Soft Dice loss, see [`dice_loss`].
    fn dice(&self) -> Tensor<1> {
        // Zero the probabilities of ignored pixels so they count in no |P|.
        let valid = self.one_hot.clone().sum_dim(1); // [B, 1, H, W]
        let probs = self.log_probs.clone().exp() * valid; // [B, C, H, W]
        let dims: [usize; 3] = [0, 2, 3];
        let intersection = (probs.clone() * self.one_hot.clone()).sum_dims(&dims); // [1, C, 1, 1]
        let denominator = probs.sum_dims(&dims) + self.one_hot.clone().sum_dims(&dims);
        let dice = intersection.mul_scalar(2.0).add_scalar(DICE_SMOOTH)
            / denominator.add_scalar(DICE_SMOOTH);
        dice.mean().neg().add_scalar(1.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, TensorData};

    /// Logits of one image with 2 classes and 3 pixels in a row: `[1, 2, 1, 3]`, with target
    /// `[0, 1, 255]` (last pixel ignored).
    const LOGITS: [[f64; 3]; 2] = [[1.0, 0.5, 3.0], [-1.0, 2.0, 0.0]];
    const TARGETS: [i64; 3] = [0, 1, IGNORE];

    fn inputs(device: &Device) -> (Tensor<4>, Tensor<3, Int>) {
        let flat: Vec<f32> = LOGITS.iter().flatten().map(|&v| v as f32).collect();
        let logits = Tensor::<4>::from_data(TensorData::new(flat, [1, 2, 1, 3]), device);
        let targets =
            Tensor::<3, Int>::from_data(TensorData::new(TARGETS.to_vec(), [1, 1, 3]), device);
        (logits, targets)
    }

    /// Softmax probability of class `c` at pixel `x`, computed independently in f64.
    fn prob(c: usize, x: usize) -> f64 {
        let z: f64 = LOGITS.iter().map(|row| row[x].exp()).sum();
        LOGITS[c][x].exp() / z
    }

    fn scalar(t: Tensor<1>) -> f64 {
        t.into_scalar::<f32>() as f64
    }

    fn assert_close(actual: f64, expected: f64) {
        assert!(
            (actual - expected).abs() < 1e-5,
            "actual {actual} expected {expected}"
        );
    }

    #[test]
    fn cross_entropy_ignores_pixels_and_weights_classes() {
        let device = Device::flex();
        let nll0 = -prob(0, 0).ln();
        let nll1 = -prob(1, 1).ln();

        let (logits, targets) = inputs(&device);
        assert_close(
            scalar(cross_entropy(logits, targets, None)),
            (nll0 + nll1) / 2.0,
        );

        let (logits, targets) = inputs(&device);
        let weighted = scalar(cross_entropy(logits, targets, Some(&[2.0, 0.5])));
        assert_close(weighted, (2.0 * nll0 + 0.5 * nll1) / 2.5);
    }

    #[test]
    fn focal_loss_matches_hand_computation() {
        let device = Device::flex();
        let (p0, p1) = (prob(0, 0), prob(1, 1));
        let fl = |p: f64, gamma: f64| -(1.0 - p).powf(gamma) * p.ln();

        let (logits, targets) = inputs(&device);
        let actual = scalar(focal_loss(logits, targets, 2.0, None));
        assert_close(actual, (fl(p0, 2.0) + fl(p1, 2.0)) / 2.0);

        let (logits, targets) = inputs(&device);
        let actual = scalar(focal_loss(logits, targets, 1.5, Some(&[2.0, 0.5])));
        assert_close(actual, (2.0 * fl(p0, 1.5) + 0.5 * fl(p1, 1.5)) / 2.5);

        // gamma = 0 is cross-entropy.
        let (logits, targets) = inputs(&device);
        let (l2, t2) = inputs(&device);
        assert_close(
            scalar(focal_loss(logits, targets, 0.0, None)),
            scalar(cross_entropy(l2, t2, None)),
        );
    }

    #[test]
    fn dice_loss_matches_hand_computation() {
        let device = Device::flex();
        // Only pixels 0 (class 0) and 1 (class 1) count.
        let s = DICE_SMOOTH as f64;
        let dice0 = (2.0 * prob(0, 0) + s) / (prob(0, 0) + prob(0, 1) + 1.0 + s);
        let dice1 = (2.0 * prob(1, 1) + s) / (prob(1, 0) + prob(1, 1) + 1.0 + s);
        let (logits, targets) = inputs(&device);
        assert_close(
            scalar(dice_loss(logits, targets)),
            1.0 - (dice0 + dice1) / 2.0,
        );
    }

    #[test]
    fn config_sums_weighted_terms() {
        let device = Device::flex();
        let cfg = LossConfig {
            ce: 0.5,
            dice: 2.0,
            focal: 1.0,
            focal_gamma: 2.0,
            class_weights: Some(vec![2.0, 0.5]),
            ignore_index: None,
        };
        let parts = |f: fn(Tensor<4>, Tensor<3, Int>) -> Tensor<1>| {
            let (l, t) = inputs(&device);
            scalar(f(l, t))
        };
        let ce = parts(|l, t| cross_entropy(l, t, Some(&[2.0, 0.5])));
        let focal = parts(|l, t| focal_loss(l, t, 2.0, Some(&[2.0, 0.5])));
        let dice = parts(dice_loss);
        let (logits, targets) = inputs(&device);
        assert_close(
            scalar(cfg.loss(logits, targets)),
            0.5 * ce + 2.0 * dice + focal,
        );

        let (logits, targets) = inputs(&device);
        let plain = scalar(LossConfig::default().loss(logits, targets));
        assert_close(plain, parts(|l, t| cross_entropy(l, t, None)));
    }

    #[test]
    fn ignore_index_leaves_its_class_out_of_every_term() {
        let device = Device::flex();
        let mixed = LossConfig {
            ce: 1.0,
            dice: 0.5,
            focal: 0.5,
            ..LossConfig::default()
        };
        for cfg in [LossConfig::default(), mixed] {
            // Ignoring class 1 equals marking its pixel (the second) unlabelled.
            let (logits, _) = inputs(&device);
            let unlabelled = Tensor::<3, Int>::from_data(
                TensorData::new(vec![0i64, IGNORE, IGNORE], [1, 1, 3]),
                &device,
            );
            let expected = scalar(cfg.loss(logits, unlabelled));
            let (logits, targets) = inputs(&device);
            let ignoring = LossConfig {
                ignore_index: Some(1),
                ..cfg.clone()
            };
            assert_close(scalar(ignoring.loss(logits, targets)), expected);
            let (logits, targets) = inputs(&device);
            assert!((scalar(cfg.loss(logits, targets)) - expected).abs() > 1e-4);
        }
        let err = LossConfig {
            ignore_index: Some(2),
            ..LossConfig::default()
        }
        .validate(2)
        .unwrap_err();
        assert!(
            err.to_string()
                .contains("ignore_index 2 is not a class id (0..=1)"),
            "{err}"
        );
    }

    #[test]
    fn all_ignored_batch_gives_zero_not_nan() {
        let device = Device::flex();
        let logits = Tensor::<4>::ones([1, 2, 1, 2], &device);
        let targets = Tensor::<3, Int>::full([1, 1, 2], IGNORE, &device);
        assert_eq!(scalar(cross_entropy(logits, targets, None)), 0.0);
    }

    #[test]
    fn validate_rejects_bad_configs() {
        let ok = LossConfig::default();
        assert!(ok.validate(2).is_ok());
        let bad_count = LossConfig {
            class_weights: Some(vec![1.0]),
            ..ok.clone()
        };
        assert!(matches!(
            bad_count.validate(2),
            Err(LossError::ClassWeightCount {
                expected: 2,
                got: 1
            })
        ));
        let no_terms = LossConfig {
            ce: 0.0,
            ..ok.clone()
        };
        assert!(no_terms.validate(2).is_err());
        let negative = LossConfig { dice: -1.0, ..ok };
        assert!(negative.validate(2).is_err());
    }

    #[test]
    fn config_deserialises_with_defaults() {
        let cfg: LossConfig = serde_json::from_str(r#"{"dice": 1.0}"#).unwrap();
        assert_eq!(
            cfg,
            LossConfig {
                dice: 1.0,
                ..LossConfig::default()
            }
        );
    }

    #[test]
    fn median_frequency_class_weights() {
        // f = [0.75, 0.25, 0]; median over present classes = 0.5.
        let w = class_weights_from_pixel_counts(&[300, 100, 0]);
        assert_eq!(w.len(), 3);
        assert!(
            (w[0] - 0.5 / 0.75).abs() < 1e-6 && (w[1] - 2.0).abs() < 1e-6,
            "{w:?}"
        );
        assert_eq!(w[2], 0.0);
        // Odd number of present classes: f = [0.5, 0.3, 0.2], median 0.3.
        let w = class_weights_from_pixel_counts(&[5, 3, 2]);
        assert!(
            (w[0] - 0.6).abs() < 1e-6 && (w[1] - 1.0).abs() < 1e-6 && (w[2] - 1.5).abs() < 1e-6
        );
        assert_eq!(class_weights_from_pixel_counts(&[0, 0]), vec![0.0, 0.0]);
    }

    #[test]
    fn gradients_flow_through_every_term() {
        let device = Device::flex().autodiff();
        let cfg = LossConfig {
            ce: 1.0,
            dice: 1.0,
            focal: 1.0,
            focal_gamma: 2.0,
            class_weights: Some(vec![1.0, 3.0]),
            ignore_index: None,
        };
        let (logits, targets) = inputs(&device);
        let logits = logits.require_grad();
        let grads = cfg.loss(logits.clone(), targets).backward();
        let grad: Vec<f32> = logits
            .grad(&grads)
            .expect("logits have a gradient")
            .into_data()
            .convert::<f32>()
            .try_into_vec()
            .unwrap();
        // Layout [class][pixel]: pixels 0 and 1 are labelled, pixel 2 is ignored.
        for (i, g) in grad.iter().enumerate() {
            let pixel = i % 3;
            if pixel == 2 {
                assert_eq!(*g, 0.0, "ignored pixel got gradient {grad:?}");
            } else {
                assert!(g.abs() > 1e-6, "no gradient at {i}: {grad:?}");
            }
        }
    }

    #[test]
    fn distillation_is_the_scaled_kl_divergence() {
        let device = Device::flex();
        let (student, _) = inputs(&device);
        // Teacher: the student's classes swapped.
        let teacher = student.clone().flip([1]);
        let t = 2.0f32;
        let got = distillation(student.clone(), teacher, t).into_scalar::<f32>();
        let mut want = 0.0f64;
        for (&a, &b) in LOGITS[0].iter().zip(&LOGITS[1]) {
            let s = [a / t as f64, b / t as f64];
            let p = [s[1], s[0]]; // the flipped teacher
            let log_softmax = |v: [f64; 2]| {
                let m = v[0].max(v[1]);
                let z = m + ((v[0] - m).exp() + (v[1] - m).exp()).ln();
                [v[0] - z, v[1] - z]
            };
            let (lq, lp) = (log_softmax(s), log_softmax(p));
            want += (0..2).map(|c| lp[c].exp() * (lp[c] - lq[c])).sum::<f64>();
        }
        want *= (t * t) as f64 / 3.0;
        assert!(want > 0.1);
        assert!((got as f64 - want).abs() < 1e-5, "{got} vs {want}");
        // A student that already agrees learns nothing more.
        let same = distillation(student.clone(), student, t).into_scalar::<f32>();
        assert!(same.abs() < 1e-6, "{same}");
    }
}
