//! Time budgets: how long a run trains, at which input size and width, chosen when it starts
//! from a few timed steps on this machine.
//!
//! `roadseg train` without flags and the studio's presets say how long a run may take (Quick
//! about a minute, Full about ten; by default the budget grows with the training images'
//! pixels from a minute and a half to ten, [`default_budget`]). The picker walks a ladder of candidates from the cheapest up
//! ([`ladder`]: larger inputs, then wider networks), times each one's step ([`Cost`], measured
//! by the caller), and keeps the last whose [`MIN_STEPS`] (and [`MIN_COVER`] passes over the
//! images' pixels) fit the budget; then as many epochs as the budget holds. What the user set
//! (epochs, size, width) is kept and the rest picked around it. The run's `config.json`
//! records the outcome (and no budget), so a rerun from it trains the same thing and a resumed
//! run does not pick again.

use serde::{Deserialize, Serialize};

use super::resolution::{crop_for, input_size};

/// Quick: a first look.
pub const QUICK_SECS: f64 = 60.0;
/// Full: a model that sees thin classes, on a 2-core CPU.
pub const FULL_SECS: f64 = 600.0;
/// The default budget per megapixel of training images, between [`DEFAULT_MIN_SECS`] and
/// [`FULL_SECS`]: 80 images of 2048x1024 (168 megapixels) get ten minutes.
pub const SECS_PER_MEGAPIXEL: f64 = 4.0;
/// The least default budget, for small datasets: on the bundled sample (80 images of 480x360,
/// 14 megapixels) it buys about 800 steps at 128x96 on a 2-core CPU, where the fixed defaults
/// before budgets trained 450 (full-resolution mIoU 0.82; 930 steps reached 0.87), and the run
/// still ends within two minutes.
pub const DEFAULT_MIN_SECS: f64 = 90.0;

/// The share of a budget the picker plans to fill: a run's steps came out 10 to 15% slower
/// than the probe's (the loader's threads share the cores with the step, and the probe's
/// batches are warm in cache), so a plan of the whole budget overran it.
pub const PLAN_SHARE: f64 = 0.88;

/// Optimiser steps a run needs before a larger input pays: on 80 images of 2048x1024 with lane
/// markings, 450 steps at 384x192 reached mIoU 0.82 and 900 steps 0.91 (at full resolution),
/// and 450 steps at 512x256 fell behind 900 at 256x128 (0.80 against 0.87). A budget too short
/// for this many steps at the smallest input trains that input for what fits.
pub const MIN_STEPS: usize = 1000;
/// Passes over the training images' pixels a run needs at least (a crop sees part of an image:
/// an input four times a crop's pixels takes four epochs for one pass).
pub const MIN_COVER: f64 = 20.0;
/// The most epochs a budget picks (a tiny dataset on a fast device would get thousands).
pub const MAX_EPOCHS: usize = 400;
/// A picked run of `epochs` waits this share of them without a gain before it stops early:
/// patience 10 stopped a 200-epoch run at epoch 54, its rate still near the peak.
pub const PATIENCE_SHARE: usize = 4;

/// Training crops hold at most this many pixels (256x256): a batch of 8 then trains in about
/// 0.6 GiB on the CPU, and larger inputs are seen in crops rather than in slower steps.
pub const CROP_PIXELS: u32 = 256 * 256;
/// The tallest crop (road scenes are wide: a crop keeps the whole height up to this).
pub const CROP_SIDE: u32 = 256;
/// Input sizes tried, by their longer side, cheapest first (never past the images' own size).
pub const LONG_SIDES: [u32; 12] = [128, 160, 192, 224, 256, 320, 384, 448, 512, 640, 768, 1024];
/// Widths tried at the largest input, after the default one.
pub const WIDER: [usize; 2] = [16, 32];
/// The network's width up to the largest input.
pub const WIDTH: usize = 8;

/// What a run picks from a time budget when it starts (`None` in a config: nothing; every
/// setting as configured).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Auto {
    /// Seconds the run may take; `None`: [`default_budget`] of the training images.
    pub budget_secs: Option<f64>,
    /// Pick the epoch count (else `epochs` as configured).
    pub epochs: bool,
    /// Pick the input size and the training crop (else `size` and `crop` as configured).
    pub size: bool,
    /// Pick the network's width (else `model.base_width`).
    pub width: bool,
}

impl Default for Auto {
    fn default() -> Self {
        Self {
            budget_secs: None,
            epochs: true,
            size: true,
            width: true,
        }
    }
}

impl Auto {
    /// Everything picked within `secs`.
    pub fn within(secs: f64) -> Self {
        Self {
            budget_secs: Some(secs),
            ..Self::default()
        }
    }

    /// Whether anything is left to pick.
    pub fn picks_anything(&self) -> bool {
        self.epochs || self.size || self.width
    }

    /// The budget for `megapixels` of training images.
    pub fn seconds(&self, megapixels: f64) -> f64 {
        self.budget_secs
            .unwrap_or_else(|| default_budget(megapixels))
    }
}

/// The default budget: [`SECS_PER_MEGAPIXEL`] per megapixel of training images, at least
/// [`DEFAULT_MIN_SECS`] and at most Full's.
pub fn default_budget(megapixels: f64) -> f64 {
    (megapixels * SECS_PER_MEGAPIXEL).clamp(DEFAULT_MIN_SECS, FULL_SECS)
}

/// A name for a budget, for the log: "Quick", "Full", or its seconds.
pub fn budget_name(secs: f64) -> String {
    match secs {
        QUICK_SECS => format!("Quick, {secs:.0} s"),
        FULL_SECS => format!("Full, {secs:.0} s"),
        _ => format!("{secs:.0} s"),
    }
}

/// One way to train: the input size, the crop (`None`: whole images) and the width.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Candidate {
    pub size: [u32; 2],
    pub crop: Option<[u32; 2]>,
    pub width: usize,
}

impl Candidate {
    fn pixels(size: [u32; 2]) -> f64 {
        size[0] as f64 * size[1] as f64
    }

    /// Epochs for one pass over the images' pixels at the input size.
    pub fn cover(&self) -> f64 {
        let crop = self.crop.map_or(Self::pixels(self.size), Self::pixels);
        (Self::pixels(self.size) / crop).max(1.0)
    }
}

/// What the dataset and the fixed settings say.
#[derive(Clone, Debug, PartialEq)]
pub struct Facts {
    /// The typical training image ([`super::resolution::typical_size`]).
    pub typical: (u32, u32),
    pub train_images: usize,
    pub val_images: usize,
    pub batch_size: usize,
    /// The network's size multiple.
    pub multiple: u32,
}

impl Facts {
    /// Optimiser steps of one epoch (the loader drops a last partial batch).
    pub fn steps_per_epoch(&self) -> usize {
        let batch = self.batch_size.max(1);
        match self.train_images / batch {
            0 => 1,
            n => n,
        }
    }
}

/// The settings a user fixed, which the ladder keeps.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Fixed {
    pub epochs: Option<usize>,
    /// Input size and crop.
    pub size: Option<([u32; 2], Option<[u32; 2]>)>,
    pub width: Option<usize>,
}

/// The candidates, cheapest first: inputs of growing size at [`WIDTH`] (cropped past
/// [`CROP_PIXELS`]), up to the images' own size or 1024 on the long side, then the largest
/// input at the [`WIDER`] widths; a fixed size or width stays fixed.
pub fn ladder(facts: &Facts, fixed: &Fixed) -> Vec<Candidate> {
    let (w, h) = facts.typical;
    let long = w.max(h).max(1);
    let sizes: Vec<([u32; 2], Option<[u32; 2]>)> = match fixed.size {
        Some(size) => vec![size],
        None => {
            let mut sizes: Vec<[u32; 2]> = LONG_SIDES
                .iter()
                .filter(|&&side| side <= long)
                .map(|&side| input_size(facts.typical, side, facts.multiple))
                .collect();
            if sizes.is_empty() {
                sizes.push(input_size(facts.typical, long, facts.multiple));
            }
            sizes.dedup();
            sizes
                .into_iter()
                .map(|size| {
                    let crop = crop_for(size, CROP_PIXELS, CROP_SIDE, facts.multiple);
                    (size, crop)
                })
                .collect()
        }
    };
    let widths: Vec<usize> = match fixed.width {
        Some(width) => vec![width],
        None => std::iter::once(WIDTH).chain(WIDER).collect(),
    };
    let mut out: Vec<Candidate> = sizes
        .iter()
        .map(|&(size, crop)| Candidate {
            size,
            crop,
            width: widths[0],
        })
        .collect();
    let &(size, crop) = sizes.last().expect("at least one size");
    out.extend(
        widths[1..]
            .iter()
            .map(|&width| Candidate { size, crop, width }),
    );
    out
}

/// What one candidate costs here: seconds per optimiser step (loading included) and per
/// validation image.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Cost {
    pub step_secs: f64,
    pub val_secs_per_image: f64,
}

/// The picker's outcome.
#[derive(Clone, Debug, PartialEq)]
pub struct Choice {
    pub candidate: Candidate,
    pub epochs: usize,
    pub steps: usize,
    /// Predicted seconds of training and validation.
    pub predicted_secs: f64,
    /// What was chosen and why, for the log and the studio.
    pub reason: String,
}

/// Seconds of one epoch of `candidate` (its steps and a validation pass).
fn epoch_secs(facts: &Facts, cost: &Cost) -> f64 {
    facts.steps_per_epoch() as f64 * cost.step_secs
        + facts.val_images as f64 * cost.val_secs_per_image
}

/// The epochs `candidate` needs at least: [`MIN_STEPS`] steps and [`MIN_COVER`] passes over
/// the pixels (or the fixed count).
fn needed_epochs(facts: &Facts, fixed: &Fixed, candidate: &Candidate) -> usize {
    if let Some(epochs) = fixed.epochs {
        return epochs;
    }
    let by_steps = MIN_STEPS.div_ceil(facts.steps_per_epoch());
    let by_cover = (MIN_COVER * candidate.cover()).ceil() as usize;
    by_steps.max(by_cover).max(1)
}

/// Picks from `ladder` (cheapest first) within `budget` seconds: the last candidate whose
/// needed epochs fit, with as many epochs as the budget holds (the fixed count when there is
/// one); the first candidate, with what fits (at least one epoch), when none does. `cost`
/// is asked about the candidates in order, up to the first that does not fit.
pub fn pick(
    facts: &Facts,
    fixed: &Fixed,
    ladder: &[Candidate],
    budget: f64,
    cost: &mut dyn FnMut(&Candidate) -> Cost,
) -> Choice {
    let mut best: Option<(Candidate, Cost)> = None;
    let mut next: Option<(Candidate, f64)> = None;
    for candidate in ladder {
        let measured = cost(candidate);
        let needs = needed_epochs(facts, fixed, candidate) as f64 * epoch_secs(facts, &measured);
        if needs > budget && best.is_some() {
            next = Some((*candidate, needs));
            break;
        }
        best = Some((*candidate, measured));
        if needs > budget {
            break;
        }
    }
    let (candidate, measured) = best.expect("a ladder has at least one candidate");
    let epoch = epoch_secs(facts, &measured).max(1e-9);
    let epochs = match fixed.epochs {
        Some(epochs) => epochs,
        None => ((budget / epoch).floor() as usize).clamp(1, MAX_EPOCHS),
    };
    let steps = epochs * facts.steps_per_epoch();
    let predicted_secs = epochs as f64 * epoch;
    let reason = reason(
        facts,
        &candidate,
        &measured,
        epochs,
        steps,
        predicted_secs,
        next,
    );
    Choice {
        candidate,
        epochs,
        steps,
        predicted_secs,
        reason,
    }
}

fn reason(
    facts: &Facts,
    c: &Candidate,
    cost: &Cost,
    epochs: usize,
    steps: usize,
    secs: f64,
    next: Option<(Candidate, f64)>,
) -> String {
    let (w, h) = facts.typical;
    let scale = c.size[0] as f64 / w.max(1) as f64;
    let what = match c.crop {
        Some([cw, ch]) => format!("crops of {cw}x{ch}"),
        None => "whole images".to_string(),
    };
    let mut text = format!(
        "input {}x{} ({scale:.2} of the typical {w}x{h} image), {what}, width {}, {epochs} \
         epochs ({steps} steps of {:.2} s, about {secs:.0} s with validation)",
        c.size[0], c.size[1], c.width, cost.step_secs
    );
    if let Some((next, needs)) = next {
        let what = match (next.size == c.size, next.width == c.width) {
            (true, false) => format!("width {}", next.width),
            _ => format!("input {}x{}", next.size[0], next.size[1]),
        };
        text.push_str(&format!("; {what} would need {needs:.0} s"));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(typical: (u32, u32), train: usize) -> Facts {
        Facts {
            typical,
            train_images: train,
            val_images: 20,
            batch_size: 8,
            multiple: 16,
        }
    }

    /// Step times that grow with a candidate's pixels per step and its width squared (what a
    /// CPU shows), at `px_per_sec` pixels a second for width 8.
    fn cpu(px_per_sec: f64) -> impl FnMut(&Candidate) -> Cost {
        move |c: &Candidate| {
            let [w, h] = c.crop.unwrap_or(c.size);
            let widen = (c.width as f64 / 8.0).powi(2);
            Cost {
                step_secs: 8.0 * (w * h) as f64 * widen / px_per_sec,
                val_secs_per_image: (c.size[0] * c.size[1]) as f64 * widen / px_per_sec / 3.0,
            }
        }
    }

    #[test]
    fn the_ladder_grows_to_the_images_own_size_then_widens() {
        let wide = ladder(&facts((2048, 1024), 80), &Fixed::default());
        assert_eq!(wide[0].size, [128, 64]);
        let last = wide[wide.len() - 3];
        assert_eq!((last.size, last.crop), ([1024, 512], Some([256, 256])));
        assert_eq!(
            wide[wide.len() - 2..]
                .iter()
                .map(|c| c.width)
                .collect::<Vec<_>>(),
            [16, 32]
        );
        assert!(wide.windows(2).all(|p| p[0].size[0] <= p[1].size[0]));
        // Small images stop at their own size; KITTI's keeps its 3.3:1 (between 3:1 and 4:1
        // once both sides are rounded to multiples of 16).
        let small = ladder(&facts((480, 360), 80), &Fixed::default());
        assert_eq!(small[small.len() - 3].size, [448, 336]);
        let kitti = ladder(&facts((1242, 375), 74), &Fixed::default());
        assert_eq!(kitti[0].size, [128, 32]);
        assert!(
            kitti
                .iter()
                .all(|c| (3 * c.size[1]..=4 * c.size[1]).contains(&c.size[0])),
            "{kitti:?}"
        );
        // Fixed settings stay.
        let fixed = Fixed {
            size: Some(([64, 48], None)),
            width: Some(4),
            epochs: None,
        };
        assert_eq!(
            ladder(&facts((480, 360), 80), &fixed),
            vec![Candidate {
                size: [64, 48],
                crop: None,
                width: 4
            }]
        );
    }

    #[test]
    fn a_larger_budget_buys_a_larger_input_and_more_epochs() {
        let f = facts((2048, 1024), 80);
        let steps = ladder(&f, &Fixed::default());
        let quick = pick(&f, &Fixed::default(), &steps, QUICK_SECS, &mut cpu(1e6));
        let full = pick(&f, &Fixed::default(), &steps, FULL_SECS, &mut cpu(1e6));
        assert!(
            quick.candidate.size[0] < full.candidate.size[0],
            "{quick:?} {full:?}"
        );
        assert!(full.candidate.crop.is_some(), "{full:?}");
        assert!(full.steps >= MIN_STEPS, "{full:?}");
        // Quick is too short for MIN_STEPS at any input: the cheapest, for what fits.
        assert_eq!(quick.candidate, steps[0]);
        assert!(quick.steps < MIN_STEPS, "{quick:?}");
        // Each fills its budget, without passing it.
        let budgets = [(quick, QUICK_SECS), (full, FULL_SECS)];
        for (choice, budget) in &budgets {
            assert!(choice.predicted_secs <= *budget, "{choice:?}");
            assert!(choice.predicted_secs > 0.8 * budget, "{choice:?}");
        }
        // The reason says the choice and what the next candidate would have cost.
        let text = &budgets[1].0.reason;
        assert!(
            text.contains("crops of") && text.contains("would need"),
            "{text}"
        );
    }

    #[test]
    fn the_chosen_candidate_is_the_last_whose_needs_fit() {
        let f = facts((2048, 1024), 80);
        let steps = ladder(&f, &Fixed::default());
        // A step of any candidate costs its pixels; validation nothing: the needs are known.
        let mut asked = Vec::new();
        let mut cost = |c: &Candidate| {
            asked.push(*c);
            let [w, h] = c.crop.unwrap_or(c.size);
            Cost {
                step_secs: (w * h) as f64 / 1e5,
                val_secs_per_image: 0.0,
            }
        };
        let choice = pick(&f, &Fixed::default(), &steps, 300.0, &mut cost);
        // Each needs max(MIN_STEPS, 20 covers * 10 steps) steps of its pixels / 1e5.
        let needs = |c: &Candidate| {
            let [w, h] = c.crop.unwrap_or(c.size);
            needed_epochs(&f, &Fixed::default(), c) as f64 * 10.0 * (w * h) as f64 / 1e5
        };
        let at = steps.iter().position(|c| *c == choice.candidate).unwrap();
        assert!(needs(&steps[at]) <= 300.0);
        assert!(needs(&steps[at + 1]) > 300.0);
        // Asked up to the first that does not fit, no further.
        assert_eq!(asked, steps[..=at + 1].to_vec());
        assert_eq!(
            choice.epochs,
            (300.0
                / (choice.steps as f64 / choice.epochs as f64 * {
                    let [w, h] = choice.candidate.crop.unwrap_or(choice.candidate.size);
                    (w * h) as f64 / 1e5
                })) as usize
        );
    }

    #[test]
    fn too_small_a_budget_trains_the_cheapest_candidate_for_what_fits() {
        let f = facts((2048, 1024), 800);
        let steps = ladder(&f, &Fixed::default());
        let choice = pick(&f, &Fixed::default(), &steps, 5.0, &mut cpu(1e5));
        assert_eq!(choice.candidate, steps[0]);
        assert_eq!(choice.epochs, 1, "at least one epoch, whatever the budget");
        // A fixed epoch count is kept, and the input shrinks to fit it instead.
        let fixed = Fixed {
            epochs: Some(200),
            ..Fixed::default()
        };
        let long = pick(&f, &fixed, &ladder(&f, &fixed), FULL_SECS, &mut cpu(1e6));
        let free = pick(&f, &Fixed::default(), &steps, FULL_SECS, &mut cpu(1e6));
        assert_eq!(long.epochs, 200);
        assert!(
            long.candidate.size[0] < free.candidate.size[0],
            "{long:?} {free:?}"
        );
    }

    #[test]
    fn a_fast_device_widens_the_network_at_the_largest_input() {
        let f = facts((2048, 1024), 80);
        let steps = ladder(&f, &Fixed::default());
        let choice = pick(&f, &Fixed::default(), &steps, FULL_SECS, &mut cpu(1e9));
        assert_eq!(choice.candidate.width, 32, "{choice:?}");
        assert_eq!(choice.epochs, MAX_EPOCHS);
    }

    #[test]
    fn the_default_budget_grows_with_the_data_up_to_full() {
        // The bundled sample's 80 training images of 480x360; 80 of 2048x1024; KITTI's 1242x375.
        let mp = |n: f64, w: f64, h: f64| n * w * h / 1e6;
        assert_eq!(default_budget(mp(80.0, 480.0, 360.0)), DEFAULT_MIN_SECS);
        assert_eq!(default_budget(mp(80.0, 2048.0, 1024.0)), FULL_SECS);
        let kitti = default_budget(mp(74.0, 1242.0, 375.0));
        assert!(kitti > DEFAULT_MIN_SECS && kitti < FULL_SECS, "{kitti}");
        assert_eq!(Auto::within(90.0).seconds(1000.0), 90.0);
    }
}
