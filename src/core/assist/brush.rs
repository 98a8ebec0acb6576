//! The superpixel brush: a stroke paints every superpixel it touches, whole, so one pass along
//! a region fills it up to its edges.

use super::region::Prepared;
use crate::core::mask::Mask;
use crate::core::paint::DirtyRect;
use crate::core::paint::ops::{self, Point};

/// The superpixels a brush segment touches.
#[derive(Clone, Debug)]
pub struct Touched {
    /// Per superpixel, whether the stroke reaches it.
    labels: Vec<bool>,
    /// The union of their bounding boxes: every pixel painting may change.
    pub bounds: DirtyRect,
}

impl Prepared {
    /// The superpixels under the capsule from `a` to `b` of `radius` (pixel centres, as the
    /// brush paints); `None` when it misses the image.
    pub fn touched(&self, a: Point, b: Point, radius: f32) -> Option<Touched> {
        let sp = self.superpixels();
        let probe = Mask::filled(sp.width, sp.height, 0);
        let rect = ops::stroke_bounds(&probe, a, b, radius)?;
        // The capsule drawn into a mask of `rect`'s size, then read through the labels.
        let mut local = Mask::filled(rect.width, rect.height, 0);
        let shift = |p: Point| [p[0] - rect.x as f32, p[1] - rect.y as f32];
        ops::stroke(&mut local, shift(a), shift(b), radius, 1)?;
        let mut labels = vec![false; sp.count];
        let mut bounds: Option<DirtyRect> = None;
        for ly in 0..rect.height {
            for lx in 0..rect.width {
                if local.get(lx, ly) == 1 {
                    let (x, y) = (rect.x + lx, rect.y + ly);
                    let l = sp.labels[(y * sp.width + x) as usize] as usize;
                    if !labels[l] {
                        labels[l] = true;
                        bounds = DirtyRect::merge(bounds, Some(self.bounds_of(l)));
                    }
                }
            }
        }
        Some(Touched {
            labels,
            bounds: bounds?,
        })
    }

    /// Writes `value` over the touched superpixels; returns the rectangle changed.
    pub fn paint_touched(
        &self,
        mask: &mut Mask,
        touched: &Touched,
        value: u8,
    ) -> Option<DirtyRect> {
        let sp = self.superpixels();
        assert_eq!((mask.width, mask.height), (sp.width, sp.height));
        let r = touched.bounds;
        let mut changed: Option<DirtyRect> = None;
        for y in r.y..r.bottom() {
            let (mut first, mut last) = (u32::MAX, 0u32);
            for x in r.x..r.right() {
                let i = (y * sp.width + x) as usize;
                if touched.labels[sp.labels[i] as usize] && mask.data[i] != value {
                    mask.data[i] = value;
                    first = first.min(x);
                    last = last.max(x);
                }
            }
            changed = DirtyRect::with_row(changed, y, first, last);
        }
        changed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::assist::superpixels::SlicParams;
    use image::{Rgb, RgbImage};

    #[test]
    fn a_dab_paints_whole_superpixels_and_stops_at_edges() {
        // Left half dark, right half light: superpixels never straddle x = 40.
        let image = RgbImage::from_fn(80, 40, |x, _| match x < 40 {
            true => Rgb([40, 40, 40]),
            false => Rgb([220, 220, 200]),
        });
        let prepared = Prepared::with_params(
            &image,
            SlicParams {
                region_size: 10,
                ..SlicParams::default()
            },
        );
        let sp = prepared.superpixels().clone();
        // A one-pixel dab (radius 0.5) on pixel (25, 15).
        let touched = prepared.touched([25.5, 15.5], [25.5, 15.5], 0.5).unwrap();
        let mut mask = Mask::unlabelled(80, 40);
        let changed = prepared.paint_touched(&mut mask, &touched, 3).unwrap();
        let label = sp.labels[15 * 80 + 25];
        for (i, &l) in sp.labels.iter().enumerate() {
            assert_eq!(
                mask.data[i] == 3,
                l == label,
                "pixel {i}: its superpixel, whole"
            );
        }
        assert!(
            mask.data.iter().filter(|&&v| v == 3).count() > 9,
            "more than the dab"
        );
        assert!(
            (0..40).all(|y| mask.get(45, y) != 3),
            "nothing across the edge"
        );
        assert!(changed.right() <= 40);
        // Painting it again changes nothing.
        assert!(prepared.paint_touched(&mut mask, &touched, 3).is_none());
        assert!(
            prepared
                .touched([-50.0, -5.0], [-40.0, -5.0], 2.0)
                .is_none()
        );
    }
}
