//! Segmentation metrics from an exact integer confusion matrix.
//!
//! Rows are ground truth, columns are predictions: `counts[t * n + p]` pixels of true class `t`
//! were predicted as `p`. Ground-truth value 255 marks unlabelled pixels, which are never
//! counted.

use burn::tensor::{Int, Tensor};
use serde::{Deserialize, Serialize};

/// Ground-truth value of pixels without a label; class ids must stay below it.
const IGNORE: usize = 255;

/// Why tensors could not be added to a [`ConfusionMatrix`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MetricsError {
    /// Targets and predictions have different shapes.
    #[error("targets have shape {targets:?} but predictions {preds:?}")]
    ShapeMismatch {
        /// Shape of the target tensor.
        targets: Vec<usize>,
        /// Shape of the prediction tensor.
        preds: Vec<usize>,
    },
    /// Reading the tensor back from the device failed.
    #[error("could not read tensor from the device: {0}")]
    Read(String),
}

/// Exact pixel counts per (ground truth, prediction) class pair.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfusionMatrix {
    /// Number of classes `n`.
    pub num_classes: usize,
    /// Row-major `n x n` counts: index `truth * n + prediction`.
    pub counts: Vec<u64>,
}

impl ConfusionMatrix {
    /// An all-zero matrix for `num_classes` classes.
    ///
    /// # Panics
    /// If `num_classes > 255`: labels are bytes and 255 means "unlabelled".
    pub fn new(num_classes: usize) -> Self {
        assert!(
            num_classes <= IGNORE,
            "at most {IGNORE} classes are supported, got {num_classes}"
        );
        Self {
            num_classes,
            counts: vec![0; num_classes * num_classes],
        }
    }

    /// Pixels with ground truth `truth` predicted as `pred`.
    pub fn get(&self, truth: usize, pred: usize) -> u64 {
        self.counts[truth * self.num_classes + pred]
    }

    /// Count a pair of same-length label slices.
    ///
    /// Pixels whose target is 255 (unlabelled) are skipped. Pixels whose target or prediction
    /// is any other value `>= num_classes` are counted nowhere: no class can claim them, and
    /// they can only come from data or a model made for more classes.
    ///
    /// # Panics
    /// If the slices have different lengths.
    pub fn update(&mut self, target: &[u8], pred: &[u8]) {
        assert_eq!(
            target.len(),
            pred.len(),
            "target and prediction must have the same number of pixels"
        );
        let n = self.num_classes;
        for (&t, &p) in target.iter().zip(pred) {
            let (t, p) = (t as usize, p as usize);
            // 255 is >= n for any n <= 255, so this also skips unlabelled pixels.
            if t < n && p < n {
                self.counts[t * n + p] += 1;
            }
        }
    }

    /// Count a batch of targets `[batch, h, w]` (255 = unlabelled) against predicted class ids
    /// `[batch, h, w]` (e.g. `logits.argmax(1).squeeze_dim(1)`), with the same rules as
    /// [`ConfusionMatrix::update`].
    ///
    /// The pair is folded into one code per pixel on the device (`t * n + p`, or `n * n` where
    /// the pixel is not counted), so only one integer tensor is copied to the host, where a
    /// single pass bins it. A pure on-device histogram would need an integer scatter-add, which
    /// WGSL only has for 32-bit atomics, or `n^2` full-size masks; the copy is cheaper than both
    /// for a validation pass.
    pub fn update_from_tensors(
        &mut self,
        targets: Tensor<3, Int>,
        preds: Tensor<3, Int>,
    ) -> Result<(), MetricsError> {
        if targets.dims() != preds.dims() {
            return Err(MetricsError::ShapeMismatch {
                targets: targets.dims().to_vec(),
                preds: preds.dims().to_vec(),
            });
        }
        let n = self.num_classes as i64;
        let in_range = |t: &Tensor<3, Int>| {
            t.clone()
                .greater_equal_elem(0)
                .bool_and(t.clone().lower_elem(n))
        };
        let counted = in_range(&targets).bool_and(in_range(&preds));
        let codes = targets
            .mul_scalar(n)
            .add(preds)
            .mask_fill(counted.bool_not(), n * n);
        let codes = codes
            .try_into_vec_as::<i64>()
            .map_err(|e| MetricsError::Read(e.to_string()))?;

        // The extra last bin collects the pixels that are not counted.
        let mut bins = vec![0u64; self.counts.len() + 1];
        for code in codes {
            bins[code as usize] += 1;
        }
        for (count, add) in self.counts.iter_mut().zip(bins) {
            *count += add;
        }
        Ok(())
    }

    /// Add another matrix's counts (e.g. from another batch or worker).
    ///
    /// # Panics
    /// If the class counts differ.
    pub fn merge(&mut self, other: &ConfusionMatrix) {
        assert_eq!(
            self.num_classes, other.num_classes,
            "cannot merge confusion matrices of different class counts"
        );
        for (count, add) in self.counts.iter_mut().zip(&other.counts) {
            *count += add;
        }
    }

    /// Total number of counted pixels.
    pub fn total(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// Correctly classified pixels of class `c` (the diagonal).
    fn true_positives(&self, c: usize) -> u64 {
        self.get(c, c)
    }

    /// Pixels whose ground truth is `c` (row sum).
    fn truth_count(&self, c: usize) -> u64 {
        let n = self.num_classes;
        self.counts[c * n..(c + 1) * n].iter().sum()
    }

    /// Pixels predicted as `c` (column sum).
    fn pred_count(&self, c: usize) -> u64 {
        (0..self.num_classes).map(|t| self.get(t, c)).sum()
    }

    /// Fraction of counted pixels classified correctly; 0 when nothing was counted.
    pub fn pixel_accuracy(&self) -> f64 {
        let total = self.total();
        if total == 0 {
            return 0.0;
        }
        let correct: u64 = (0..self.num_classes).map(|c| self.true_positives(c)).sum();
        correct as f64 / total as f64
    }

    /// Per-class score `num / den` from (tp, fp + fn), or `None` when the class appears in
    /// neither ground truth nor prediction (`tp + fp + fn == 0`).
    fn per_class(&self, score: impl Fn(u64, u64) -> f64) -> Vec<Option<f64>> {
        (0..self.num_classes)
            .map(|c| {
                let tp = self.true_positives(c);
                // fp + fn = (predicted c) + (truly c) - 2 tp.
                let errors = self.pred_count(c) + self.truth_count(c) - 2 * tp;
                (tp + errors > 0).then(|| score(tp, errors))
            })
            .collect()
    }

    /// Intersection over union per class: `tp / (tp + fp + fn)`; `None` for a class absent from
    /// both ground truth and prediction.
    pub fn iou(&self) -> Vec<Option<f64>> {
        self.per_class(|tp, errors| tp as f64 / (tp + errors) as f64)
    }

    /// F1 (= Dice) per class: `2 tp / (2 tp + fp + fn)`; `None` as for [`ConfusionMatrix::iou`].
    pub fn f1(&self) -> Vec<Option<f64>> {
        self.per_class(|tp, errors| 2.0 * tp as f64 / (2 * tp + errors) as f64)
    }

    /// Mean IoU over the classes present in ground truth or prediction; 0 if there are none.
    pub fn mean_iou(&self) -> f64 {
        mean_present(&self.iou())
    }

    /// Mean F1 over the classes present in ground truth or prediction; 0 if there are none.
    pub fn mean_f1(&self) -> f64 {
        mean_present(&self.f1())
    }

    /// All metrics, with `class_names[i]` naming class `i` (`"class i"` where missing).
    pub fn report(&self, class_names: &[String]) -> MetricsReport {
        let classes = self
            .iou()
            .into_iter()
            .zip(self.f1())
            .enumerate()
            .map(|(id, (iou, f1))| ClassMetric {
                id,
                name: class_names
                    .get(id)
                    .cloned()
                    .unwrap_or_else(|| format!("class {id}")),
                iou,
                f1,
            })
            .collect();
        MetricsReport {
            pixel_accuracy: self.pixel_accuracy(),
            mean_iou: self.mean_iou(),
            mean_f1: self.mean_f1(),
            classes,
            confusion: self
                .counts
                .chunks(self.num_classes.max(1))
                .map(<[u64]>::to_vec)
                .collect(),
        }
    }
}

fn mean_present(values: &[Option<f64>]) -> f64 {
    let present: Vec<f64> = values.iter().flatten().copied().collect();
    if present.is_empty() {
        0.0
    } else {
        present.iter().sum::<f64>() / present.len() as f64
    }
}

/// Metrics of one class.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassMetric {
    /// Class id.
    pub id: usize,
    /// Human-readable class name.
    pub name: String,
    /// Intersection over union; `None` if the class is in neither ground truth nor prediction.
    pub iou: Option<f64>,
    /// F1 / Dice; `None` as for `iou`.
    pub f1: Option<f64>,
}

/// Serialisable summary of a [`ConfusionMatrix`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricsReport {
    /// Fraction of counted pixels classified correctly.
    pub pixel_accuracy: f64,
    /// Mean IoU over present classes.
    pub mean_iou: f64,
    /// Mean F1 over present classes.
    pub mean_f1: f64,
    /// Per-class metrics, by class id.
    pub classes: Vec<ClassMetric>,
    /// Confusion matrix rows (ground truth) of columns (prediction).
    pub confusion: Vec<Vec<u64>>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, TensorData};

    /// 3 classes; class 2 never occurs. Pixels (truth, pred):
    /// (0,0) x3, (0,1) x1, (1,1) x2, (1,0) x1, plus an unlabelled pixel and an out-of-range
    /// prediction that must not count.
    const TARGET: [u8; 9] = [0, 0, 0, 0, 1, 1, 1, 255, 1];
    const PRED: [u8; 9] = [0, 0, 0, 1, 1, 1, 0, 2, 7];

    fn example() -> ConfusionMatrix {
        let mut m = ConfusionMatrix::new(3);
        m.update(&TARGET, &PRED);
        m
    }

    #[test]
    fn counts_rows_as_truth_and_skips_ignored() {
        let m = example();
        assert_eq!(m.counts, vec![3, 1, 0, 1, 2, 0, 0, 0, 0]);
        assert_eq!(m.total(), 7);
    }

    #[test]
    fn derived_metrics_match_hand_computation() {
        let m = example();
        assert!((m.pixel_accuracy() - 5.0 / 7.0).abs() < 1e-12);
        // Class 0: tp 3, fp 1, fn 1 -> IoU 3/5, F1 6/8. Class 1: tp 2, fp 1, fn 1 -> 2/4, 4/6.
        let iou = m.iou();
        assert!((iou[0].unwrap() - 0.6).abs() < 1e-12);
        assert!((iou[1].unwrap() - 0.5).abs() < 1e-12);
        assert_eq!(iou[2], None);
        let f1 = m.f1();
        assert!((f1[0].unwrap() - 0.75).abs() < 1e-12);
        assert!((f1[1].unwrap() - 4.0 / 6.0).abs() < 1e-12);
        assert_eq!(f1[2], None);
        assert!((m.mean_iou() - 0.55).abs() < 1e-12);
        assert!((m.mean_f1() - (0.75 + 4.0 / 6.0) / 2.0).abs() < 1e-12);
    }

    #[test]
    fn class_predicted_but_absent_from_truth_scores_zero() {
        let mut m = ConfusionMatrix::new(2);
        m.update(&[0, 0], &[0, 1]);
        assert_eq!(m.iou(), vec![Some(0.5), Some(0.0)]);
        assert!((m.mean_iou() - 0.25).abs() < 1e-12);
    }

    #[test]
    fn empty_matrix_is_all_zero() {
        let m = ConfusionMatrix::new(2);
        assert_eq!(m.pixel_accuracy(), 0.0);
        assert_eq!(m.mean_iou(), 0.0);
        assert_eq!(m.iou(), vec![None, None]);
    }

    #[test]
    fn merge_adds_counts() {
        let mut a = example();
        a.merge(&example());
        assert_eq!(a.counts, vec![6, 2, 0, 2, 4, 0, 0, 0, 0]);
    }

    #[test]
    fn tensor_update_matches_slice_update() {
        let device = Device::flex();
        let to_tensor = |v: &[u8]| {
            let v: Vec<i64> = v.iter().map(|&x| x as i64).collect();
            Tensor::<3, Int>::from_data(TensorData::new(v, [1, 3, 3]), &device)
        };
        let mut m = ConfusionMatrix::new(3);
        m.update_from_tensors(to_tensor(&TARGET), to_tensor(&PRED))
            .unwrap();
        assert_eq!(m, example());

        let wrong = Tensor::<3, Int>::zeros([1, 9, 1], &device);
        assert!(m.update_from_tensors(to_tensor(&TARGET), wrong).is_err());
    }

    #[test]
    fn report_names_classes_and_serialises() {
        let names = vec!["background".to_string(), "road".to_string()];
        let report = example().report(&names);
        assert_eq!(report.classes[1].name, "road");
        assert_eq!(report.classes[2].name, "class 2");
        assert_eq!(
            report.confusion,
            vec![vec![3, 1, 0], vec![1, 2, 0], vec![0, 0, 0]]
        );
        let json = serde_json::to_string(&report).unwrap();
        let back: MetricsReport = serde_json::from_str(&json).unwrap();
        assert_eq!(back, report);
    }
}
