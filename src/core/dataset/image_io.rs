//! Decoding images and labels with errors that name the file, and atomic writes.

use std::io::Write;
use std::path::Path;

use image::{GrayImage, RgbImage};

use super::{DatasetError, Problem};

/// Extensions read as images.
pub const IMAGE_EXTENSIONS: [&str; 3] = ["png", "jpg", "jpeg"];

pub fn is_image(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| IMAGE_EXTENSIONS.iter().any(|x| e.eq_ignore_ascii_case(x)))
}

fn open(path: &Path) -> Result<image::DynamicImage, Problem> {
    let reader = image::ImageReader::open(path)
        .map_err(|e| Problem::new(path, format!("cannot open: {e}")))?
        .with_guessed_format()
        .map_err(|e| Problem::new(path, format!("cannot read: {e}")))?;
    reader.decode().map_err(|e| {
        Problem::new(
            path,
            format!("cannot decode image (corrupt or truncated?): {e}"),
        )
    })
}

/// Decodes any supported image to 8-bit RGB.
pub fn read_rgb(path: &Path) -> Result<RgbImage, Problem> {
    Ok(open(path)?.into_rgb8())
}

/// Decodes a label image that must hold one 8-bit channel (an index mask).
pub fn read_index(path: &Path) -> Result<GrayImage, Problem> {
    match open(path)? {
        image::DynamicImage::ImageLuma8(gray) => Ok(gray),
        other => Err(Problem::new(
            path,
            format!(
                "expected an 8-bit single-channel index mask, found {:?}",
                other.color()
            ),
        )),
    }
}

/// Image size from the header only (cheap).
pub fn dimensions(path: &Path) -> Result<(u32, u32), Problem> {
    image::image_dimensions(path).map_err(|e| Problem::new(path, format!("cannot read size: {e}")))
}

/// Writes `bytes` to `path` atomically: temp file in the same folder, fsync, rename, fsync folder.
/// A crash leaves either the old or the new file, never a torn one.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), DatasetError> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| DatasetError::io(dir, e))?;
    let file_name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let tmp = dir.join(format!(".{file_name}.{}.tmp", std::process::id()));
    let result = (|| {
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        drop(file);
        std::fs::rename(&tmp, path)?;
        // Make the rename itself durable.
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    result.map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        DatasetError::io(path, e)
    })
}

/// Encodes a PNG in memory.
fn encode_png<P, C>(img: &image::ImageBuffer<P, C>) -> Vec<u8>
where
    P: image::PixelWithColorType,
    [P::Subpixel]: image::EncodableLayout,
    C: std::ops::Deref<Target = [P::Subpixel]>,
{
    let mut bytes = Vec::new();
    img.write_to(
        &mut std::io::Cursor::new(&mut bytes),
        image::ImageFormat::Png,
    )
    .expect("PNG encoding to memory cannot fail");
    bytes
}

pub fn write_gray_png(path: &Path, img: &GrayImage) -> Result<(), DatasetError> {
    write_atomic(path, &encode_png(img))
}

pub fn write_rgb_png(path: &Path, img: &RgbImage) -> Result<(), DatasetError> {
    write_atomic(path, &encode_png(img))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_replaces_and_leaves_no_temp() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("m.png");
        write_gray_png(&file, &GrayImage::from_pixel(3, 2, image::Luma([7]))).unwrap();
        write_gray_png(&file, &GrayImage::from_pixel(3, 2, image::Luma([9]))).unwrap();
        assert_eq!(read_index(&file).unwrap().get_pixel(2, 1).0, [9]);
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 1, "temp file left behind");
    }

    #[test]
    fn truncated_png_names_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("bad.png");
        write_rgb_png(&file, &RgbImage::new(32, 32)).unwrap();
        let bytes = std::fs::read(&file).unwrap();
        std::fs::write(&file, &bytes[..bytes.len() / 2]).unwrap();
        let problem = read_rgb(&file).unwrap_err();
        assert_eq!(problem.file, file);
        assert!(problem.error.contains("decode"), "{problem}");
    }
}
