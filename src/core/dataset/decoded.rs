//! Decoded images kept in memory between epochs, reduced to the resolution a run samples them
//! at ([`reduce_image`]), up to a byte budget.
//!
//! Decoding is most of a step's cost on large images: a 2048x1024 JPEG takes longer to decode
//! than a 256x256 crop of it takes to train on a CPU. A run over 80 such images at a quarter
//! scale keeps them in about 100 MiB (each at 768x384 with its mask) and decodes each once;
//! past [`CACHE_BYTES`] the rest are decoded whenever they are used, so memory stays bounded
//! whatever the dataset's size.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use image::RgbImage;

use super::augment::{reduce_image, reduce_mask};
use crate::core::mask::Mask;

/// Memory one dataset's cache may hold.
pub const CACHE_BYTES: usize = 192 << 20;

/// An image with its mask and second label map (a multi-task run's), at one resolution.
#[derive(Debug)]
pub struct Decoded {
    pub image: RgbImage,
    pub mask: Option<Mask>,
    pub extra: Option<Mask>,
}

impl Decoded {
    /// The three reduced for an `input`-sized view (unchanged when they need no reduction).
    pub fn reduced(self, input: (u32, u32)) -> Self {
        let Some(image) = reduce_image(&self.image, input) else {
            return self;
        };
        let size = image.dimensions();
        Self {
            mask: self.mask.map(|m| reduce_mask(&m, size)),
            extra: self.extra.map(|m| reduce_mask(&m, size)),
            image,
        }
    }

    fn bytes(&self) -> usize {
        let mask = |m: &Option<Mask>| m.as_ref().map_or(0, |m| m.data.len());
        self.image.as_raw().len() + mask(&self.mask) + mask(&self.extra)
    }
}

/// Decoded items by index, filled as the loader meets them.
#[derive(Debug, Default)]
pub struct DecodedCache {
    /// The items and the bytes they hold.
    items: Mutex<(HashMap<usize, Arc<Decoded>>, usize)>,
    budget: usize,
}

impl DecodedCache {
    pub fn new(budget: usize) -> Self {
        Self {
            budget,
            ..Self::default()
        }
    }

    pub fn get(&self, index: usize) -> Option<Arc<Decoded>> {
        self.items.lock().ok()?.0.get(&index).cloned()
    }

    /// Keeps `item` when it fits the budget (the copy kept first when two threads decoded it);
    /// returns it either way.
    pub fn keep(&self, index: usize, item: Decoded) -> Arc<Decoded> {
        let item = Arc::new(item);
        let Ok(mut guard) = self.items.lock() else {
            return item;
        };
        let (items, used) = &mut *guard;
        if let Some(kept) = items.get(&index) {
            return kept.clone();
        }
        let bytes = item.bytes();
        if *used + bytes <= self.budget {
            *used += bytes;
            items.insert(index, item.clone());
        }
        item
    }

    /// Bytes held.
    pub fn used(&self) -> usize {
        self.items.lock().map_or(0, |g| g.1)
    }
}
