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

use crate::core::mask::Mask;

/// How far ahead of the input's scale an image is kept before it is sampled: a large image is
/// first reduced (area-weighted) to this many times the input's scale, then sampled bilinearly.
/// Sampled directly, a 2048-pixel-wide image seen at 256 would skip 7 of every 8 pixels (its
/// noise and JPEG blocks alias into the input); kept ahead, a zoom of up to 1.5 still finds
/// detail. Training, validation, `eval` and `predict` all reduce the same way.
pub const REDUCE_AHEAD: f64 = 1.5;

/// The size an image of `src` is reduced to for an `input`-sized view, `None` when it is
/// already within [`REDUCE_AHEAD`] of it (within a quarter more: reducing would not pay).
pub fn reduced_size(src: (u32, u32), input: (u32, u32)) -> Option<(u32, u32)> {
    let (sw, sh) = (src.0.max(1) as f64, src.1.max(1) as f64);
    let factor = REDUCE_AHEAD * (input.0 as f64 / sw).max(input.1 as f64 / sh);
    (factor < 0.8).then(|| {
        let side = |v: f64| ((v * factor).round() as u32).max(1);
        (side(sw), side(sh))
    })
}

/// `image` reduced for an `input`-sized view ([`reduced_size`]; triangle filter, which
/// averages every source pixel into the result), or `None` when it needs no reduction.
pub fn reduce_image(image: &RgbImage, input: (u32, u32)) -> Option<RgbImage> {
    let (w, h) = reduced_size(image.dimensions(), input)?;
    Some(image::imageops::resize(
        image,
        w,
        h,
        image::imageops::FilterType::Triangle,
    ))
}

/// `mask` at `size` (nearest: labels do not blend).
pub fn reduce_mask(mask: &Mask, (w, h): (u32, u32)) -> Mask {
    let mut data = Vec::with_capacity(w as usize * h as usize);
    for y in 0..h {
        let sy = ((y as u64 * 2 + 1) * mask.height as u64 / (2 * h as u64)) as usize;
        let row = &mask.data[sy * mask.width as usize..][..mask.width as usize];
        data.extend(
            (0..w).map(|x| row[((x as u64 * 2 + 1) * mask.width as u64 / (2 * w as u64)) as usize]),
        );
    }
    Mask {
        width: w,
        height: h,
        data,
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn large_images_are_reduced_to_one_and_a_half_times_the_input() {
        assert_eq!(reduced_size((2048, 1024), (256, 128)), Some((384, 192)));
        assert_eq!(reduced_size((480, 360), (128, 96)), Some((192, 144)));
        // KITTI's 3.3:1 seen at 4:3 is kept ahead on both sides (the taller need wins).
        assert_eq!(reduced_size((1242, 375), (128, 96)), Some((477, 144)));
        // Near the input already: not worth a pass.
        assert_eq!(reduced_size((480, 360), (448, 336)), None);
        assert_eq!(reduced_size((480, 360), (256, 192)), None);
    }

    #[test]
    fn reduced_masks_keep_their_labels_and_thin_lines_in_place() {
        // 2048x64 with a lane line 12 pixels wide at x = 1000..1012 (class 6) on road (0), and
        // the right half ignored.
        let mut mask = Mask::filled(2048, 64, 0);
        for y in 0..64 {
            for x in 1000..1012 {
                mask.set(x, y, 6);
            }
            for x in 1024..2048 {
                mask.set(x, y, crate::core::dataset::IGNORE);
            }
        }
        let small = reduce_mask(&mask, (384, 12));
        assert_eq!((small.width, small.height), (384, 12));
        let row: Vec<u8> = small.data[..384].to_vec();
        let line: Vec<usize> = (0..384).filter(|&x| row[x] == 6).collect();
        // 1000..1012 of 2048 is 187.5..189.75 of 384: the line is there, where it was.
        assert!(
            !line.is_empty() && line.iter().all(|&x| (187..=190).contains(&x)),
            "{line:?}"
        );
        assert!(
            row[192..]
                .iter()
                .all(|&v| v == crate::core::dataset::IGNORE)
        );
        assert!(row[..187].iter().all(|&v| v == 0));
        assert!(small.data.chunks(384).all(|r| r == &row[..]));
    }

    #[test]
    fn the_cache_holds_items_up_to_its_budget() {
        let item = |w: u32| Decoded {
            image: RgbImage::new(w, 10),
            mask: Some(Mask::filled(w, 10, 1)),
            extra: None,
        };
        // 10x10: 300 bytes of image and 100 of mask.
        let cache = DecodedCache::new(1000);
        let first = cache.keep(0, item(10));
        assert!(Arc::ptr_eq(&first, &cache.get(0).unwrap()));
        cache.keep(1, item(10));
        assert_eq!(cache.used(), 800);
        // Past the budget: returned, not kept; memory stays bounded.
        let third = cache.keep(2, item(10));
        assert_eq!((third.image.width(), cache.used()), (10, 800));
        assert!(cache.get(2).is_none());
        // A second decoding of a kept item gives the copy kept.
        let again = cache.keep(0, item(10));
        assert!(Arc::ptr_eq(&first, &again));
        assert_eq!(cache.used(), 800);
    }

    #[test]
    fn a_decoded_pair_is_reduced_together() {
        let decoded = Decoded {
            image: RgbImage::new(2048, 1024),
            mask: Some(Mask::filled(2048, 1024, 2)),
            extra: Some(Mask::filled(2048, 1024, 1)),
        }
        .reduced((256, 128));
        assert_eq!(decoded.image.dimensions(), (384, 192));
        for m in [decoded.mask.unwrap(), decoded.extra.unwrap()] {
            assert_eq!((m.width, m.height), (384, 192));
        }
        // Small enough already: unchanged.
        let same = Decoded {
            image: RgbImage::new(300, 200),
            mask: None,
            extra: None,
        }
        .reduced((256, 192));
        assert_eq!(same.image.dimensions(), (300, 200));
    }
}
