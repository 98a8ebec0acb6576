//! A label mask: one class id per pixel, [`IGNORE`] for unlabelled pixels.

use crate::core::dataset::IGNORE;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mask {
    pub width: u32,
    pub height: u32,
    /// Row-major class ids, `width * height` of them.
    pub data: Vec<u8>,
}

impl Mask {
    /// An all-unlabelled mask.
    pub fn unlabelled(width: u32, height: u32) -> Self {
        Self::filled(width, height, IGNORE)
    }

    pub fn filled(width: u32, height: u32, id: u8) -> Self {
        Self {
            width,
            height,
            data: vec![id; width as usize * height as usize],
        }
    }

    pub fn get(&self, x: u32, y: u32) -> u8 {
        self.data[(y * self.width + x) as usize]
    }

    pub fn set(&mut self, x: u32, y: u32, id: u8) {
        self.data[(y * self.width + x) as usize] = id;
    }

    /// Fraction of pixels that carry a class (not IGNORE).
    pub fn labelled_fraction(&self) -> f32 {
        if self.data.is_empty() {
            return 0.0;
        }
        let labelled = self.data.iter().filter(|&&v| v != IGNORE).count();
        labelled as f32 / self.data.len() as f32
    }

    pub fn to_gray_image(&self) -> image::GrayImage {
        image::GrayImage::from_raw(self.width, self.height, self.data.clone())
            .expect("mask data matches its size")
    }

    pub fn from_gray_image(img: image::GrayImage) -> Self {
        let (width, height) = img.dimensions();
        Self {
            width,
            height,
            data: img.into_raw(),
        }
    }
}
