//! The model's say in click-to-segment: a per-pixel probability that the pixel belongs to the
//! class being labelled, from the prediction the studio already holds (arg-max ids and the
//! winning class's probability), so the studio, `roadseg assist` and the bench use one prior.

use crate::core::mask::Mask;

/// `confidence` is the winning class's probability per pixel, `round(p * 255)`. Where the
/// model picked `class`, that probability; elsewhere half of what the winner left over (the
/// class had at most `1 - p`, shared with the others).
pub fn class_prior(ids: &Mask, confidence: &[u8], class: u8) -> Vec<f32> {
    ids.data
        .iter()
        .zip(confidence)
        .map(|(&id, &c)| {
            let p = c as f32 / 255.0;
            match id == class {
                true => p,
                false => (1.0 - p) * 0.5,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_prior_is_high_where_the_model_picked_the_class() {
        let ids = Mask {
            width: 3,
            height: 1,
            data: vec![2, 2, 5],
        };
        let prior = class_prior(&ids, &[255, 128, 204], 2);
        assert_eq!(prior[0], 1.0);
        assert!((prior[1] - 0.502).abs() < 1e-3);
        assert!((prior[2] - 0.1).abs() < 1e-3, "{}", prior[2]);
    }
}
