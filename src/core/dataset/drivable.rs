//! Drivable-area maps, the second target of `--aux drivable`: 8-bit single-channel PNGs, one
//! per image and of its size, 0 = direct, 1 = alternative, 2 = background, 255 = ignore
//! (BDD100K's drivable release). BDD100K keeps them in `labels/drivable/masks/<split>/`, the
//! native layout in `drivable/`; each layout's module says where, this one what they hold.
//!
//! Every reader of a map comes through [`load`], so `info`, the training checks and the
//! loader agree on what a good map is.

use std::path::Path;
use std::sync::Arc;

use super::labels::Mask;
use super::{IGNORE, LabelEncoding, Problem};

/// What an unknown value is reported against.
const VALUES: &str = "the drivable-area values (0 direct, 1 alternative, 2 background, 255 ignore)";

/// The drivable-area values: 0 direct, 1 alternative, 2 background, 255 ignore.
pub fn encoding() -> LabelEncoding {
    let mut lut = [None; 256];
    for (id, entry) in lut.iter_mut().enumerate().take(3) {
        *entry = Some(id as u8);
    }
    lut[IGNORE as usize] = Some(IGNORE);
    LabelEncoding::Index { lut: Arc::new(lut) }
}

/// Decodes the map at `path`, checking its values and that it is `size` (its image's), as a
/// mask must be.
pub fn load(path: &Path, size: (u32, u32)) -> Result<Mask, Problem> {
    let map = encoding().decode_against(path, VALUES)?;
    if (map.width, map.height) != size {
        return Err(Problem::new(
            path,
            format!(
                "drivable-area map is {}x{} but its image is {}x{}",
                map.width, map.height, size.0, size.1
            ),
        ));
    }
    Ok(map)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::dataset::image_io;
    use image::{GrayImage, Luma};

    #[test]
    fn values_and_size_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("d.png");
        let mut img = GrayImage::from_fn(4, 2, |x, _| Luma([x.min(2) as u8]));
        img.put_pixel(3, 1, Luma([IGNORE]));
        image_io::write_gray_png(&file, &img).unwrap();
        assert_eq!(
            load(&file, (4, 2)).unwrap().data,
            vec![0, 1, 2, 2, 0, 1, 2, 255]
        );

        let err = load(&file, (8, 2)).unwrap_err();
        assert_eq!(err.file, file);
        assert!(
            err.error.contains("map is 4x2 but its image is 8x2"),
            "{err}"
        );

        img.put_pixel(0, 0, Luma([7]));
        image_io::write_gray_png(&file, &img).unwrap();
        let err = load(&file, (4, 2)).unwrap_err().error;
        assert!(
            err.contains("drivable-area values") && err.contains("7 in 1 pixels"),
            "{err}"
        );
    }
}
