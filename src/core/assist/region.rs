//! Click-to-segment ("Smart region").

use image::RgbImage;

use super::{AssistError, Click};
use crate::core::mask::Mask;

/// What click-to-segment precomputes once per image (in the background when it opens).
#[derive(Clone, Debug)]
pub struct Prepared {
    width: u32,
    height: u32,
}

impl Prepared {
    pub fn new(image: &RgbImage) -> Self {
        let (width, height) = image.dimensions();
        Self { width, height }
    }

    pub fn size(&self) -> [u32; 2] {
        [self.width, self.height]
    }
}

/// The region the clicks ask for (1 inside, 0 outside). `prior`, when given, is the model's
/// probability (0..=1) per pixel, row-major, that the pixel belongs to the class being labelled.
pub fn smart_region(
    prepared: &Prepared,
    clicks: &[Click],
    prior: Option<&[f32]>,
) -> Result<Mask, AssistError> {
    check(prepared, clicks, prior)?;
    // Work in progress: the energy minimisation comes next.
    let mut mask = Mask::filled(prepared.width, prepared.height, 0);
    for c in clicks.iter().filter(|c| c.positive) {
        mask.set(c.x, c.y, 1);
    }
    Ok(mask)
}

fn check(prepared: &Prepared, clicks: &[Click], prior: Option<&[f32]>) -> Result<(), AssistError> {
    let [width, height] = prepared.size();
    for (index, c) in clicks.iter().enumerate() {
        if c.x >= width || c.y >= height {
            return Err(AssistError::ClickOutside {
                index,
                x: c.x,
                y: c.y,
                width,
                height,
            });
        }
    }
    if !clicks.iter().any(|c| c.positive) {
        return Err(AssistError::NoPositiveClick);
    }
    if let Some(p) = prior
        && p.len() != width as usize * height as usize
    {
        return Err(AssistError::PriorSize {
            got: p.len(),
            width,
            height,
        });
    }
    Ok(())
}
