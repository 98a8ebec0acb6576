//! Shared by the fuzz tests (`tests/flows/fuzz_*.rs`): how many cases, an allocation meter, and
//! generators of hostile image files.
//!
//! Fuzzing runs on stable Rust as property-based tests (proptest): each target generates inputs,
//! feeds them to a reader and checks three properties: no panic (proptest turns one into a
//! failure and shrinks the input), the error names the file, and the reader's peak allocation
//! stays under a stated bound. `ROADSEG_FUZZ_CASES=N` runs N cases per target instead of the CI
//! default; `ROADSEG_FUZZ_SEED=S` explores another part of the input space (the default seed is
//! fixed so CI is reproducible).
#![allow(dead_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::path::Path;

use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed};

/// Runner configuration: `default_cases` unless ROADSEG_FUZZ_CASES says otherwise.
pub fn config(default_cases: u32) -> Config {
    let cases = std::env::var("ROADSEG_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default_cases);
    let seed = std::env::var("ROADSEG_FUZZ_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0x5EED_F022);
    Config {
        cases,
        rng_seed: RngSeed::Fixed(seed),
        // Failures print the shrunk input; no regression files are written into the tree.
        failure_persistence: None,
        max_shrink_iters: 2_000,
        ..Config::default()
    }
}

/// Counts this thread's live heap bytes and their peak (thread-local, so tests running in
/// parallel do not see each other's allocations).
pub struct Meter;

thread_local! {
    static LIVE: Cell<i64> = const { Cell::new(0) };
    static PEAK: Cell<i64> = const { Cell::new(0) };
}

fn account(delta: i64) {
    let _ = LIVE.try_with(|live| {
        let now = live.get() + delta;
        live.set(now);
        let _ = PEAK.try_with(|peak| peak.set(peak.get().max(now)));
    });
}

// SAFETY: every call is forwarded to the system allocator unchanged; the meter only counts.
unsafe impl GlobalAlloc for Meter {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: same contract as ours.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            account(layout.size() as i64);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: same contract as ours.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            account(layout.size() as i64);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(ptr, layout) };
        account(-(layout.size() as i64));
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: same contract as ours.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            account(new_size as i64 - layout.size() as i64);
        }
        p
    }
}

/// Runs `f` and returns its result with the most heap it held at once above what was live
/// before, in bytes.
pub fn peak_of<R>(f: impl FnOnce() -> R) -> (R, u64) {
    let base = LIVE.with(Cell::get);
    PEAK.with(|p| p.set(base));
    let result = f();
    let peak = PEAK.with(Cell::get);
    (result, (peak - base).max(0) as u64)
}

/// Asserts an error message names `file` (its file name at least: folders may be shortened).
pub fn assert_names(error: &str, file: &Path) {
    let name = file.file_name().unwrap().to_string_lossy();
    assert!(
        error.contains(&*name),
        "the error does not name {}: {error}",
        file.display()
    );
}

/// A PNG chunk: length, type, data, CRC.
pub fn png_chunk(kind: &[u8; 4], data: &[u8]) -> Vec<u8> {
    let mut body = kind.to_vec();
    body.extend(data);
    let mut out = (data.len() as u32).to_be_bytes().to_vec();
    out.extend(&body);
    out.extend(crc32fast::hash(&body).to_be_bytes());
    out
}

/// A PNG whose header says `w` x `h` with `depth`/`color` (any values, valid or not), followed
/// by `data` as its pixel data (usually not enough of it).
pub fn png_with_header(w: u32, h: u32, depth: u8, color: u8, data: &[u8]) -> Vec<u8> {
    let mut ihdr = w.to_be_bytes().to_vec();
    ihdr.extend(h.to_be_bytes());
    ihdr.extend([depth, color, 0, 0, 0]);
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    out.extend(png_chunk(b"IHDR", &ihdr));
    if color == 3 {
        out.extend(png_chunk(b"PLTE", &[0, 0, 0, 255, 255, 255]));
    }
    out.extend(png_chunk(b"IDAT", data));
    out.extend(png_chunk(b"IEND", &[]));
    out
}

/// The pixel kinds a PNG can hold, as (bit depth, colour type, bytes per pixel).
pub const PNG_KINDS: [(png::BitDepth, png::ColorType, usize); 8] = [
    (png::BitDepth::Eight, png::ColorType::Grayscale, 1),
    (png::BitDepth::Eight, png::ColorType::GrayscaleAlpha, 2),
    (png::BitDepth::Eight, png::ColorType::Rgb, 3),
    (png::BitDepth::Eight, png::ColorType::Rgba, 4),
    (png::BitDepth::Sixteen, png::ColorType::Grayscale, 2),
    (png::BitDepth::Sixteen, png::ColorType::Rgb, 6),
    (png::BitDepth::Eight, png::ColorType::Indexed, 1),
    (png::BitDepth::Four, png::ColorType::Indexed, 1),
];

/// A valid PNG of `w` x `h` of one of [`PNG_KINDS`], pixels from `seed`.
pub fn valid_png(kind: usize, w: u32, h: u32, seed: u8) -> Vec<u8> {
    let (depth, color, bytes) = PNG_KINDS[kind % PNG_KINDS.len()];
    let mut out = Vec::new();
    let mut encoder = png::Encoder::new(&mut out, w, h);
    encoder.set_depth(depth);
    encoder.set_color(color);
    let row = match depth {
        png::BitDepth::Four => (w as usize).div_ceil(2),
        _ => w as usize * bytes,
    };
    if color == png::ColorType::Indexed {
        encoder.set_palette(
            (0..16u8)
                .flat_map(|i| [i * 16, 255 - i, i])
                .collect::<Vec<_>>(),
        );
    }
    let data: Vec<u8> = (0..row * h as usize)
        .map(|i| {
            let v = (i as u8).wrapping_mul(31).wrapping_add(seed);
            // Palette indices must exist in the 16-entry palette.
            if color == png::ColorType::Indexed && depth == png::BitDepth::Eight {
                v % 16
            } else {
                v
            }
        })
        .collect();
    let mut writer = encoder.write_header().expect("png header");
    writer.write_image_data(&data).expect("png data");
    writer.finish().expect("png end");
    out
}

/// A valid baseline JPEG of `w` x `h`.
pub fn valid_jpeg(w: u32, h: u32, seed: u8) -> Vec<u8> {
    let img = image::RgbImage::from_fn(w, h, |x, y| {
        image::Rgb([(x as u8).wrapping_add(seed), y as u8, seed])
    });
    let mut out = Vec::new();
    img.write_to(
        &mut std::io::Cursor::new(&mut out),
        image::ImageFormat::Jpeg,
    )
    .expect("jpeg");
    out
}

/// Rewrites the frame size in a JPEG's SOF0 segment (what a decoder allocates from).
pub fn patch_jpeg_size(mut jpeg: Vec<u8>, w: u16, h: u16) -> Vec<u8> {
    if let Some(at) = jpeg.windows(2).position(|m| m == [0xFF, 0xC0])
        && at + 9 <= jpeg.len()
    {
        jpeg[at + 5..at + 7].copy_from_slice(&h.to_be_bytes());
        jpeg[at + 7..at + 9].copy_from_slice(&w.to_be_bytes());
    }
    jpeg
}

/// Damage applied to a valid file: none, cut at a fraction, bytes overwritten, or garbage
/// appended.
#[derive(Debug, Clone)]
pub enum Damage {
    None,
    Truncate(f64),
    Flip(Vec<(f64, u8)>),
    Append(Vec<u8>),
}

pub fn damage() -> impl Strategy<Value = Damage> {
    prop_oneof![
        Just(Damage::None),
        (0.0..1.0f64).prop_map(Damage::Truncate),
        proptest::collection::vec((0.0..1.0f64, any::<u8>()), 1..8).prop_map(Damage::Flip),
        proptest::collection::vec(any::<u8>(), 1..64).prop_map(Damage::Append),
    ]
}

pub fn apply(mut bytes: Vec<u8>, damage: &Damage) -> Vec<u8> {
    match damage {
        Damage::None => {}
        Damage::Truncate(f) => bytes.truncate((bytes.len() as f64 * f) as usize),
        Damage::Flip(flips) => {
            for &(at, v) in flips {
                let len = bytes.len();
                if len > 0 {
                    bytes[((len as f64 * at) as usize).min(len - 1)] = v;
                }
            }
        }
        Damage::Append(extra) => bytes.extend(extra),
    }
    bytes
}

/// Text of arbitrary characters, biased to the ones parsers trip on.
pub fn text(max: usize) -> impl Strategy<Value = String> {
    proptest::collection::vec(
        prop_oneof![
            3 => proptest::char::range(' ', '~'),
            1 => prop::sample::select(vec![
                ',', '\t', '\n', '\r', '"', '\\', '{', '}', '[', ']', ':', '\u{feff}', '\u{0}',
                'é', '道', '\u{10ffff}',
            ]),
            1 => any::<char>(),
        ],
        0..max,
    )
    .prop_map(|chars| chars.into_iter().collect())
}
