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

/// The largest image side roadseg decodes (a 16K panorama still fits).
pub const MAX_SIDE: u32 = 16_384;
/// The most pixels roadseg decodes: 2^25, so 8K UHD (7680x4320) fits.
pub const MAX_PIXELS: u64 = 1 << 25;
/// What the decoder may allocate for its output: `MAX_PIXELS` of the widest pixel kind read
/// (16-bit RGBA, 8 bytes).
pub const MAX_DECODE_BYTES: u64 = MAX_PIXELS * 8;
/// The most one read may hold at once, stated for the fuzz tests: the decoded buffer, an 8-bit
/// RGB copy of it (`into_rgb8`), and the decoder's own working memory (JPEG planes: one byte
/// per pixel and channel).
pub const MAX_READ_BYTES: u64 = MAX_DECODE_BYTES + MAX_PIXELS * 3 + MAX_PIXELS * 4;

fn limits() -> image::Limits {
    let mut limits = image::Limits::default();
    limits.max_alloc = Some(MAX_DECODE_BYTES);
    limits
}

/// Opens `path` as an image decoder with [`limits`], after checking the size its header
/// declares: a header claiming a huge image is refused before anything is allocated for it.
/// Every decode in roadseg (datasets, masks, the studio, thumbnails, predict) comes through
/// here.
fn decoder(path: &Path) -> Result<impl image::ImageDecoder, Problem> {
    let reader = image::ImageReader::open(path)
        .map_err(|e| Problem::new(path, format!("cannot open: {e}")))?
        .with_guessed_format()
        .map_err(|e| Problem::new(path, format!("cannot read: {e}")))?;
    checked(path, reader)
}

/// The size gate of [`decoder`], for a reader over a file or over bytes in memory.
fn checked<R: std::io::BufRead + std::io::Seek + 'static>(
    path: &Path,
    mut reader: image::ImageReader<R>,
) -> Result<impl image::ImageDecoder + use<R>, Problem> {
    reader.limits(limits());
    let decoder = reader.into_decoder().map_err(|e| {
        Problem::new(
            path,
            format!("cannot decode image (corrupt, truncated or not an image?): {e}"),
        )
    })?;
    let (w, h) = image::ImageDecoder::dimensions(&decoder);
    if w == 0 || h == 0 {
        return Err(Problem::new(path, format!("image is {w}x{h}: empty")));
    }
    if w > MAX_SIDE || h > MAX_SIDE || w as u64 * h as u64 > MAX_PIXELS {
        return Err(Problem::new(
            path,
            format!(
                "image is {w}x{h}: larger than roadseg reads (at most {MAX_SIDE} pixels a side \
                 and {} megapixels)",
                MAX_PIXELS >> 20
            ),
        ));
    }
    if image::ImageDecoder::total_bytes(&decoder) > MAX_DECODE_BYTES {
        return Err(Problem::new(
            path,
            format!(
                "image is {w}x{h} of {:?}: more than {} MiB decoded",
                image::ImageDecoder::color_type(&decoder),
                MAX_DECODE_BYTES >> 20
            ),
        ));
    }
    Ok(decoder)
}

fn open(path: &Path) -> Result<image::DynamicImage, Problem> {
    image::DynamicImage::from_decoder(decoder(path)?).map_err(|e| {
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
        other => {
            // The decoder expands palette PNGs to RGB, which would hide what the file is.
            let found = if png_color_type(path) == Some(PNG_PALETTE) {
                "a palette (indexed-colour) PNG".to_string()
            } else {
                format!("{:?}", other.color())
            };
            Err(Problem::new(
                path,
                format!("expected an 8-bit single-channel (grayscale) index mask, found {found}"),
            ))
        }
    }
}

/// Decodes an 8-bit grayscale image held in memory (a labelme mask crop inside its json),
/// under the same limits as a file; problems name `file`, the file the bytes come from.
pub fn read_gray_bytes(bytes: &[u8], file: &Path) -> Result<GrayImage, Problem> {
    let reader = image::ImageReader::new(std::io::Cursor::new(bytes.to_vec()))
        .with_guessed_format()
        .map_err(|e| Problem::new(file, format!("cannot read embedded image: {e}")))?;
    let decoder = checked(file, reader)?;
    image::DynamicImage::from_decoder(decoder)
        .map(|img| img.into_luma8())
        .map_err(|e| Problem::new(file, format!("cannot decode embedded image: {e}")))
}

/// A label image as its file holds it: raw 8-bit values (a palette PNG's indices, or an 8-bit
/// grayscale image), or colours.
#[derive(Clone, Debug, PartialEq)]
pub enum LabelImage {
    Indexed(GrayImage),
    Rgb(RgbImage),
}

/// Decodes a label image without expanding a palette: VOC, CVAT and Mapillary Vistas store the
/// class index as the palette index. 8-bit grayscale reads as indices too, RGB as colours; other
/// kinds (16-bit, alpha) are refused, naming what they are. Same size limits as every decode.
pub fn read_label_image(path: &Path) -> Result<LabelImage, Problem> {
    if png_color_type(path) != Some(PNG_PALETTE) {
        return match open(path)? {
            image::DynamicImage::ImageLuma8(gray) => Ok(LabelImage::Indexed(gray)),
            image::DynamicImage::ImageRgb8(rgb) => Ok(LabelImage::Rgb(rgb)),
            other => Err(Problem::new(
                path,
                format!(
                    "expected a palette, 8-bit grayscale or RGB label image, found {:?}",
                    other.color()
                ),
            )),
        };
    }
    // The header's size is checked by the same gate as every other decode.
    let (width, height) = dimensions(path)?;
    let bad = |e: png::DecodingError| {
        Problem::new(
            path,
            format!("cannot decode palette PNG (corrupt or truncated?): {e}"),
        )
    };
    let file =
        std::fs::File::open(path).map_err(|e| Problem::new(path, format!("cannot open: {e}")))?;
    let limits = png::Limits {
        bytes: MAX_DECODE_BYTES as usize,
    };
    let mut decoder = png::Decoder::new_with_limits(std::io::BufReader::new(file), limits);
    decoder.set_transformations(png::Transformations::IDENTITY);
    let mut reader = decoder.read_info().map_err(bad)?;
    let depth = reader.info().bit_depth as u8;
    let size = reader
        .output_buffer_size()
        .ok_or_else(|| Problem::new(path, "palette PNG too large to decode"))?;
    let mut packed = vec![0u8; size];
    let frame = reader.next_frame(&mut packed).map_err(bad)?;
    let per_byte = 8 / depth.max(1) as usize;
    let mask = ((1u16 << depth) - 1) as u8;
    let mut data = Vec::with_capacity(width as usize * height as usize);
    for row in packed.chunks(frame.line_size).take(height as usize) {
        if depth == 8 {
            data.extend_from_slice(&row[..width as usize]);
            continue;
        }
        // Sub-byte indices, most significant bits first.
        for x in 0..width as usize {
            let byte = row[x / per_byte];
            let shift = 8 - depth as usize * (x % per_byte + 1);
            data.push((byte >> shift) & mask);
        }
    }
    GrayImage::from_raw(width, height, data)
        .map(LabelImage::Indexed)
        .ok_or_else(|| Problem::new(path, "palette PNG holds fewer pixels than its size"))
}

/// Writes an 8-bit palette PNG: `indices` as they are, `palette` (at most 256 colours) as the
/// colours a viewer shows.
pub fn write_palette_png(
    path: &Path,
    indices: &GrayImage,
    palette: &[[u8; 3]],
) -> Result<(), DatasetError> {
    let mut bytes = Vec::new();
    {
        let mut encoder = png::Encoder::new(&mut bytes, indices.width(), indices.height());
        encoder.set_color(png::ColorType::Indexed);
        encoder.set_depth(png::BitDepth::Eight);
        encoder.set_palette(
            palette
                .iter()
                .take(256)
                .flatten()
                .copied()
                .collect::<Vec<u8>>(),
        );
        let mut writer = encoder
            .write_header()
            .expect("PNG header to memory cannot fail");
        writer
            .write_image_data(indices.as_raw())
            .expect("PNG encoding to memory cannot fail");
    }
    write_atomic(path, &bytes)
}

/// PNG colour type 3: palette.
const PNG_PALETTE: u8 = 3;

/// The colour type byte of a PNG's IHDR chunk, if `path` starts like a PNG.
fn png_color_type(path: &Path) -> Option<u8> {
    use std::io::Read;
    let mut head = [0u8; 26];
    std::fs::File::open(path).ok()?.read_exact(&mut head).ok()?;
    (head[..8] == *b"\x89PNG\r\n\x1a\n" && head[12..16] == *b"IHDR").then_some(head[25])
}

/// Image size from the header only (cheap), with the same checks as a decode.
pub fn dimensions(path: &Path) -> Result<(u32, u32), Problem> {
    decoder(path).map(|d| image::ImageDecoder::dimensions(&d))
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
        crate::core::fault::check_write(path)?;
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

/// Writes a baseline JPEG of `quality` (1-100) atomically.
pub fn write_rgb_jpeg(path: &Path, img: &RgbImage, quality: u8) -> Result<(), DatasetError> {
    let mut bytes = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut bytes, quality.clamp(1, 100))
        .encode_image(img)
        .expect("JPEG encoding of an RGB image to memory cannot fail");
    write_atomic(path, &bytes)
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

    /// A PNG declaring `w` x `h` whose pixel data is missing: an IHDR chunk, then an empty IDAT
    /// (the decoder reads up to the first IDAT before it reports the size).
    fn png_header(w: u32, h: u32, depth: u8, color: u8) -> Vec<u8> {
        let mut ihdr = b"IHDR".to_vec();
        ihdr.extend(w.to_be_bytes());
        ihdr.extend(h.to_be_bytes());
        ihdr.extend([depth, color, 0, 0, 0]);
        let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
        for chunk in [ihdr, b"IDAT".to_vec()] {
            out.extend((chunk.len() as u32 - 4).to_be_bytes());
            out.extend(&chunk);
            out.extend(crc32fast::hash(&chunk).to_be_bytes());
        }
        out
    }

    #[test]
    fn absurd_sizes_are_refused_from_the_header() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("huge.png");
        std::fs::write(&file, png_header(100_000, 100_000, 8, 2)).unwrap();
        let problem = read_rgb(&file).unwrap_err();
        assert_eq!(problem.file, file);
        assert!(problem.error.contains("100000x100000"), "{problem}");
        assert!(dimensions(&file).is_err());
        // Within each side's limit but too many pixels in all.
        std::fs::write(&file, png_header(16_000, 16_000, 8, 0)).unwrap();
        let problem = read_index(&file).unwrap_err();
        assert!(
            problem.error.contains("larger than roadseg reads"),
            "{problem}"
        );
        std::fs::write(&file, png_header(0, 5, 8, 0)).unwrap();
        assert!(read_index(&file).is_err());
    }

    #[test]
    fn index_masks_must_be_8_bit_gray_and_say_what_they_are() {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, depth: png::BitDepth, color: png::ColorType, data: &[u8]| {
            let file = dir.path().join(name);
            let mut encoder = png::Encoder::new(std::fs::File::create(&file).unwrap(), 2, 1);
            encoder.set_depth(depth);
            encoder.set_color(color);
            if color == png::ColorType::Indexed {
                encoder.set_palette(vec![0, 0, 0, 255, 0, 0]);
            }
            let mut writer = encoder.write_header().unwrap();
            writer.write_image_data(data).unwrap();
            file
        };
        let palette = write(
            "palette.png",
            png::BitDepth::Eight,
            png::ColorType::Indexed,
            &[0, 1],
        );
        let err = read_index(&palette).unwrap_err().to_string();
        assert!(
            err.contains("palette.png") && err.contains("palette"),
            "{err}"
        );
        let deep = write(
            "deep.png",
            png::BitDepth::Sixteen,
            png::ColorType::Grayscale,
            &[0, 1, 0, 2],
        );
        let err = read_index(&deep).unwrap_err().to_string();
        assert!(err.contains("deep.png") && err.contains("L16"), "{err}");
        // As photos both are fine.
        assert_eq!(read_rgb(&palette).unwrap().get_pixel(1, 0).0, [255, 0, 0]);
        assert_eq!(read_rgb(&deep).unwrap().dimensions(), (2, 1));
    }

    #[test]
    fn a_failing_disk_leaves_the_old_file_and_no_temp() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("m.png");
        write_gray_png(&file, &GrayImage::from_pixel(3, 2, image::Luma([7]))).unwrap();
        let before = std::fs::read(&file).unwrap();
        let full = crate::core::fault::fail_writes_under(dir.path());
        let err = write_gray_png(&file, &GrayImage::from_pixel(3, 2, image::Luma([9])))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("m.png") && err.contains("No space left"),
            "{err}"
        );
        assert_eq!(std::fs::read(&file).unwrap(), before);
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 1, "temp file left behind");
        drop(full);
        write_gray_png(&file, &GrayImage::from_pixel(3, 2, image::Luma([9]))).unwrap();
        assert_eq!(read_index(&file).unwrap().get_pixel(0, 0).0, [9]);
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
