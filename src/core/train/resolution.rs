//! The input size a run sees its images at, chosen from the dataset's own image sizes.
//!
//! A run resizes every image to one input size (validation, `eval`, `predict`, the studio) and
//! trains on crops of the images at that scale. The size keeps the dataset's aspect ratio (a
//! 2048x1024 image is not squashed to 4:3) and is a multiple of the network's size multiple
//! (no padding). Datasets mix sizes (KITTI road holds 1242x375, 1241x376, 1224x370 and
//! 1226x370 images; a folder of phone and dash-camera shots holds several aspects): the
//! typical image is the median aspect ratio at the median pixel count, so a few odd images do
//! not move it. How large the input is (the scale) is the budget's choice ([`super::budget`]).

/// The dataset's typical image size: the median aspect ratio (width / height) of `sizes` at
/// their median pixel count. `None` for no sizes.
pub fn typical_size(sizes: &[(u32, u32)]) -> Option<(u32, u32)> {
    let median = |mut values: Vec<f64>| {
        values.sort_by(f64::total_cmp);
        let mid = values.len() / 2;
        match values.len() {
            0 => None,
            n if n % 2 == 1 => Some(values[mid]),
            _ => Some((values[mid - 1] + values[mid]) / 2.0),
        }
    };
    let sizes: Vec<(f64, f64)> = sizes
        .iter()
        .filter(|(w, h)| *w > 0 && *h > 0)
        .map(|&(w, h)| (w as f64, h as f64))
        .collect();
    let aspect = median(sizes.iter().map(|(w, h)| w / h).collect())?;
    let pixels = median(sizes.iter().map(|(w, h)| w * h).collect())?;
    // w / h = aspect and w * h = pixels.
    let height = (pixels / aspect).sqrt();
    let width = height * aspect;
    Some((
        width.round().max(1.0) as u32,
        height.round().max(1.0) as u32,
    ))
}

/// The input size of an image of `typical` size with `long` pixels on its longer side: the
/// aspect ratio kept, each side the nearest multiple of `multiple` (at least one).
pub fn input_size(typical: (u32, u32), long: u32, multiple: u32) -> [u32; 2] {
    let (w, h) = (typical.0.max(1) as f64, typical.1.max(1) as f64);
    let scale = long as f64 / w.max(h);
    let multiple = multiple.max(1);
    let round = |v: f64| ((v / multiple as f64).round() as u32).max(1) * multiple;
    [round(w * scale), round(h * scale)]
}

/// The training crop for an `input` size: `None` (whole images) when it holds at most
/// `max_pixels`; else a window of at most `max_pixels` pixels, as tall as the input up to
/// `max_side` and as wide as the rest allows (road scenes are wider than tall: a crop keeps
/// the whole height of a lane where it can), sides multiples of `multiple`.
pub fn crop_for(
    input: [u32; 2],
    max_pixels: u32,
    max_side: u32,
    multiple: u32,
) -> Option<[u32; 2]> {
    let [w, h] = input;
    if w as u64 * h as u64 <= max_pixels as u64 {
        return None;
    }
    let multiple = multiple.max(1);
    let down = |v: u32| (v / multiple).max(1) * multiple;
    let height = down(h.min(max_side));
    let width = down(w.min(max_pixels / height));
    Some([width, height])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_typical_size_follows_most_images_not_the_odd_ones() {
        // KITTI road's four sizes, and two stray images of other aspects.
        let mut sizes = vec![(1242, 375); 5];
        sizes.extend([(1241, 376), (1224, 370), (1226, 370), (1226, 370)]);
        sizes.extend([(640, 480), (4000, 3000)]);
        let (w, h) = typical_size(&sizes).unwrap();
        let aspect = w as f64 / h as f64;
        assert!((aspect - 1242.0 / 375.0).abs() < 0.02, "{w}x{h}");
        assert!((w as i64 - 1240).abs() < 20, "{w}x{h}");
        // One size: itself.
        assert_eq!(typical_size(&[(2048, 1024)]), Some((2048, 1024)));
        assert_eq!(typical_size(&[]), None);
        assert_eq!(typical_size(&[(0, 10)]), None);
    }

    #[test]
    fn input_sizes_keep_the_aspect_in_multiples() {
        assert_eq!(input_size((2048, 1024), 512, 16), [512, 256]);
        assert_eq!(input_size((480, 360), 128, 16), [128, 96]);
        // 3.3:1 at 640 wide: 193.2 rounds to 192.
        assert_eq!(input_size((1242, 375), 640, 16), [640, 192]);
        // Portrait images keep their long side vertical.
        assert_eq!(input_size((1080, 1920), 256, 32), [160, 256]);
        // Never below one multiple.
        assert_eq!(input_size((4000, 100), 128, 16), [128, 16]);
        for (typical, long) in [((1242, 375), 300), ((960, 720), 333), ((1280, 720), 500)] {
            let [w, h] = input_size(typical, long, 16);
            assert!(w % 16 == 0 && h % 16 == 0, "{w}x{h}");
            let (a, b) = (w as f64 / h as f64, typical.0 as f64 / typical.1 as f64);
            assert!((a / b - 1.0).abs() < 0.12, "{typical:?} at {long}: {w}x{h}");
        }
    }

    #[test]
    fn crops_fit_the_input_and_the_pixel_cap() {
        assert_eq!(crop_for([256, 128], 65536, 256, 16), None);
        assert_eq!(crop_for([512, 256], 65536, 256, 16), Some([256, 256]));
        // A wide, low input: its whole height, as wide as the cap allows.
        assert_eq!(crop_for([1024, 304], 65536, 256, 16), Some([256, 256]));
        assert_eq!(crop_for([640, 192], 65536, 256, 16), Some([336, 192]));
        for input in [[768, 384], [1024, 512], [640, 192], [400, 1000]] {
            let [w, h] = crop_for(input, 65536, 256, 16).unwrap();
            assert!(w <= input[0] && h <= input[1], "{input:?}: {w}x{h}");
            assert!(
                w * h <= 65536 && w % 16 == 0 && h % 16 == 0,
                "{input:?}: {w}x{h}"
            );
        }
    }
}
