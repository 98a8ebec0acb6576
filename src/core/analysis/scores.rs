//! One score per image: pixel accuracy, per-class IoU and mean IoU of that image alone, and
//! how many pixels are wrong. The rules are the dataset-level ones of
//! [`ConfusionMatrix`](crate::core::metrics::ConfusionMatrix) applied to one image: ignored
//! pixels (255) are not counted, and a class absent from both the ground truth and the
//! prediction has no IoU (`None`, JSON `null`), neither 0 nor 1.

use std::cmp::Ordering;

use serde_json::{Map, Value};

use crate::core::metrics::ConfusionMatrix;

/// The score of one image.
#[derive(Clone, Debug, PartialEq)]
pub struct ImageScore {
    pub name: String,
    /// `train`, `val` or `test`.
    pub split: String,
    /// Correct / counted pixels; `None` when the image has no labelled pixel.
    pub pixel_accuracy: Option<f64>,
    /// Mean over the classes present in ground truth or prediction; `None` when none is.
    pub mean_iou: Option<f64>,
    /// By class id; `None` for a class in neither ground truth nor prediction.
    pub iou: Vec<Option<f64>>,
    /// Labelled pixels predicted as another class.
    pub wrong_pixels: u64,
    /// Labelled (counted) pixels.
    pub labelled_pixels: u64,
    /// This image's own confusion matrix (rows truth, columns prediction).
    pub confusion: ConfusionMatrix,
}

impl ImageScore {
    /// Scores `pred` against `truth` (same length, row-major class ids) for `classes` classes.
    ///
    /// # Panics
    /// If the slices differ in length (as [`ConfusionMatrix::update`]).
    pub fn new(name: &str, split: &str, classes: usize, truth: &[u8], pred: &[u8]) -> Self {
        let mut confusion = ConfusionMatrix::new(classes);
        confusion.update(truth, pred);
        Self::from_confusion(name, split, confusion)
    }

    pub fn from_confusion(name: &str, split: &str, confusion: ConfusionMatrix) -> Self {
        let labelled = confusion.total();
        let correct: u64 = (0..confusion.num_classes)
            .map(|c| confusion.get(c, c))
            .sum();
        let iou = confusion.iou();
        let present: Vec<f64> = iou.iter().flatten().copied().collect();
        Self {
            name: name.to_string(),
            split: split.to_string(),
            pixel_accuracy: (labelled > 0).then(|| correct as f64 / labelled as f64),
            mean_iou: (!present.is_empty())
                .then(|| present.iter().sum::<f64>() / present.len() as f64),
            iou,
            wrong_pixels: labelled - correct,
            labelled_pixels: labelled,
            confusion,
        }
    }

    /// The JSON of `roadseg eval --per-image`: `iou` keyed by class name.
    pub fn to_json(&self, class_names: &[String]) -> Value {
        let iou: Map<String, Value> = self
            .iou
            .iter()
            .enumerate()
            .map(|(id, v)| {
                let name = class_names
                    .get(id)
                    .cloned()
                    .unwrap_or_else(|| format!("class {id}"));
                (name, v.map_or(Value::Null, Value::from))
            })
            .collect();
        serde_json::json!({
            "name": self.name,
            "split": self.split,
            "pixel_accuracy": self.pixel_accuracy,
            "mean_iou": self.mean_iou,
            "iou": iou,
            "wrong_pixels": self.wrong_pixels,
        })
    }
}

/// What a table of scores is sorted by, worst first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum SortKey {
    /// Lowest mean IoU first.
    #[default]
    MeanIou,
    /// Lowest IoU of this class first.
    ClassIou(usize),
    /// Most wrong pixels first.
    WrongPixels,
}

/// Sorts worst first by `key`; images without a value (nothing labelled, class absent) go
/// last; ties are broken by name so the order is stable across runs.
pub fn sort_scores(scores: &mut [ImageScore], key: SortKey) {
    // Lower is worse for IoUs; for wrong pixels more is worse, so compare negated counts.
    let value = |s: &ImageScore| -> Option<f64> {
        match key {
            SortKey::MeanIou => s.mean_iou,
            SortKey::ClassIou(c) => s.iou.get(c).copied().flatten(),
            SortKey::WrongPixels => Some(-(s.wrong_pixels as f64)),
        }
    };
    scores.sort_by(|a, b| {
        let order = match (value(a), value(b)) {
            (Some(x), Some(y)) => x.total_cmp(&y),
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (None, None) => Ordering::Equal,
        };
        order.then_with(|| a.name.cmp(&b.name))
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::dataset::IGNORE;

    /// 3 classes on a 4x2 image; class 2 appears nowhere; one pixel unlabelled.
    /// truth: 0 0 1 1 / 0 0 1 255; prediction: 0 1 1 1 / 0 0 0 2.
    const TRUTH: [u8; 8] = [0, 0, 1, 1, 0, 0, 1, IGNORE];
    const PRED: [u8; 8] = [0, 1, 1, 1, 0, 0, 0, 2];

    #[test]
    fn per_image_iou_on_known_masks() {
        let s = ImageScore::new("a", "val", 3, &TRUTH, &PRED);
        // Class 0: tp 3 (pixels 0, 4, 5), fp 1 (pixel 6), fn 1 (pixel 1) -> 3/5.
        // Class 1: tp 2 (pixels 2, 3), fp 1 (pixel 1), fn 1 (pixel 6) -> 2/4.
        assert_eq!(s.iou[0], Some(0.6));
        assert_eq!(s.iou[1], Some(0.5));
        // Class 2 is predicted only on the unlabelled pixel, which is not counted: absent from
        // both, so no IoU at all, neither 0 nor 1.
        assert_eq!(s.iou[2], None);
        assert!((s.mean_iou.unwrap() - 0.55).abs() < 1e-12);
        assert_eq!(s.labelled_pixels, 7);
        assert_eq!(s.wrong_pixels, 2);
        assert_eq!(s.pixel_accuracy, Some(5.0 / 7.0));

        let json = s.to_json(&["road".into(), "sky".into(), "car".into()]);
        assert_eq!(json["iou"]["road"], 0.6);
        assert_eq!(json["iou"]["car"], Value::Null);
        assert_eq!(json["wrong_pixels"], 2);
        assert_eq!(json["split"], "val");
    }

    #[test]
    fn an_unlabelled_image_has_no_scores() {
        let s = ImageScore::new("blank", "val", 2, &[IGNORE; 4], &[0, 1, 0, 1]);
        assert_eq!(s.mean_iou, None);
        assert_eq!(s.pixel_accuracy, None);
        assert_eq!(s.iou, vec![None, None]);
        assert_eq!(s.wrong_pixels, 0);
        assert_eq!(s.to_json(&[])["mean_iou"], Value::Null);
    }

    #[test]
    fn ranking_puts_the_worst_first_and_unscored_last() {
        let perfect = ImageScore::new("b-perfect", "val", 2, &[0, 1, 1, 1], &[0, 1, 1, 1]);
        let half = ImageScore::new("c-half", "val", 2, &[0, 0, 1, 1], &[0, 1, 1, 0]);
        let wrong = ImageScore::new("d-wrong", "val", 2, &[0, 0, 0, 1], &[1, 1, 1, 0]);
        let blank = ImageScore::new("a-blank", "val", 2, &[IGNORE; 4], &[0; 4]);
        // Same score as `half`, earlier name: ties go by name.
        let half_too = ImageScore::new("a-half", "val", 2, &[1, 1, 0, 0], &[1, 0, 0, 1]);
        let mut scores = vec![
            perfect.clone(),
            blank.clone(),
            half.clone(),
            wrong.clone(),
            half_too.clone(),
        ];
        let names = |s: &[ImageScore]| s.iter().map(|s| s.name.clone()).collect::<Vec<_>>();

        sort_scores(&mut scores, SortKey::MeanIou);
        assert_eq!(
            names(&scores),
            ["d-wrong", "a-half", "c-half", "b-perfect", "a-blank"]
        );

        sort_scores(&mut scores, SortKey::WrongPixels);
        assert_eq!(
            names(&scores),
            ["d-wrong", "a-half", "c-half", "a-blank", "b-perfect"]
        );

        // By class 0's IoU: `perfect` has 1.0, the halves 1/3, `wrong` 0; `blank` none.
        sort_scores(&mut scores, SortKey::ClassIou(0));
        assert_eq!(
            names(&scores),
            ["d-wrong", "a-half", "c-half", "b-perfect", "a-blank"]
        );
        assert_eq!(scores[0].iou[0], Some(0.0));
        assert_eq!(scores[1].iou[0], Some(1.0 / 3.0));
    }
}
