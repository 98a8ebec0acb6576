//! Active learning: which unlabelled image to label next. The model's mean predictive entropy
//! over an image's pixels says how unsure it is there; labelling the most uncertain images first
//! teaches it the most per painted pixel.

use std::cmp::Ordering;

/// How unsure the model is about one image.
#[derive(Clone, Debug, PartialEq)]
pub struct Uncertainty {
    pub name: String,
    /// Mean over pixels of `-sum_c p_c ln p_c`, in nats.
    pub mean_entropy: f64,
}

/// Most uncertain first; ties by name; NaN (a model that failed on the image) last.
pub fn rank_by_uncertainty(items: &mut [Uncertainty]) {
    items.sort_by(|a, b| {
        let order = match (a.mean_entropy.is_nan(), b.mean_entropy.is_nan()) {
            (false, false) => b.mean_entropy.total_cmp(&a.mean_entropy),
            (true, false) => Ordering::Greater,
            (false, true) => Ordering::Less,
            (true, true) => Ordering::Equal,
        };
        order.then_with(|| a.name.cmp(&b.name))
    });
}

/// The most uncertain of `items` (ranked) that `still_unlabelled` accepts.
pub fn next_to_label(
    ranked: &[Uncertainty],
    still_unlabelled: impl Fn(&str) -> bool,
) -> Option<&Uncertainty> {
    ranked.iter().find(|u| still_unlabelled(&u.name))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Entropy of a pixel with these class probabilities, in nats.
    fn entropy(p: &[f64]) -> f64 {
        -p.iter()
            .filter(|&&p| p > 0.0)
            .map(|p| p * p.ln())
            .sum::<f64>()
    }

    #[test]
    fn entropy_ranking_puts_the_least_certain_first() {
        // Three images of two pixels each, as a softmax would give them.
        let sure = (entropy(&[0.99, 0.01]) + entropy(&[0.98, 0.02])) / 2.0;
        let torn = (entropy(&[0.5, 0.5]) + entropy(&[0.6, 0.4])) / 2.0;
        let mixed = (entropy(&[0.99, 0.01]) + entropy(&[0.5, 0.5])) / 2.0;
        let mut items = vec![
            Uncertainty {
                name: "sure".into(),
                mean_entropy: sure,
            },
            Uncertainty {
                name: "broken".into(),
                mean_entropy: f64::NAN,
            },
            Uncertainty {
                name: "torn".into(),
                mean_entropy: torn,
            },
            Uncertainty {
                name: "mixed".into(),
                mean_entropy: mixed,
            },
        ];
        rank_by_uncertainty(&mut items);
        let names: Vec<&str> = items.iter().map(|u| u.name.as_str()).collect();
        assert_eq!(names, ["torn", "mixed", "sure", "broken"]);
        // Uniform over two classes is the most a pixel can reach.
        assert!(items[0].mean_entropy <= 2f64.ln());

        // Once "torn" is labelled, "mixed" is next.
        let next = next_to_label(&items, |n| n != "torn").unwrap();
        assert_eq!(next.name, "mixed");
        assert!(next_to_label(&items, |_| false).is_none());
    }
}
