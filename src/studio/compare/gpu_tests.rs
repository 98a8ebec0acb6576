//! The overlay shader against its CPU reference: every `.wgsl` file validated by naga, and
//! each view mode rendered off-screen (lavapipe in CI) on a small fixed image, read back and
//! compared pixel by pixel with [`Layers::pixel`], with the image cut into several tiles.

use std::path::Path;

use eframe::egui_wgpu::wgpu;
use image::RgbImage;

use super::*;
use crate::core::dataset::IGNORE;
use crate::studio::compare::blend::{self, ANY_CLASS, Layers, ViewMode};

#[test]
fn every_shader_parses_and_validates() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("shaders");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "wgsl") {
            continue;
        }
        let source = std::fs::read_to_string(&path).unwrap();
        let module = naga::front::wgsl::parse_str(&source).unwrap_or_else(|e| {
            panic!(
                "{}",
                e.emit_to_string_with_path(&source, &path.to_string_lossy())
            )
        });
        naga::valid::Validator::new(
            naga::valid::ValidationFlags::all(),
            naga::valid::Capabilities::default(),
        )
        .validate(&module)
        .unwrap_or_else(|e| {
            panic!(
                "{}",
                e.emit_to_string_with_path(&source, &path.to_string_lossy())
            )
        });
        checked += 1;
    }
    assert!(checked >= 1, "no shaders found in {}", dir.display());
}

#[test]
fn uniform_struct_matches_the_shader() {
    let module = naga::front::wgsl::parse_str(SHADER).unwrap();
    let overlay = module
        .types
        .iter()
        .find(|(_, t)| t.name.as_deref() == Some("Overlay"))
        .expect("struct Overlay in overlay.wgsl");
    let naga::TypeInner::Struct { members, span } = &overlay.1.inner else {
        panic!("Overlay is not a struct");
    };
    assert_eq!(*span as usize, std::mem::size_of::<OverlayUniforms>());
    // Same order and offsets as the #[repr(C)] mirror.
    let names: Vec<_> = members.iter().map(|m| m.name.clone().unwrap()).collect();
    assert_eq!(
        names,
        [
            "quad", "tile", "apron", "opacity", "divider", "mode", "class_id", "outline", "_pad0",
            "_pad1", "_pad2"
        ]
    );
    let u = OverlayUniforms::default();
    let base = &u as *const _ as usize;
    let offset = |field: *const u8| field as usize - base;
    let ours = [
        offset(u.quad.as_ptr().cast()),
        offset(u.tile.as_ptr().cast()),
        offset(u.apron.as_ptr().cast()),
        offset((&u.opacity as *const f32).cast()),
        offset((&u.divider as *const f32).cast()),
        offset((&u.mode as *const u32).cast()),
        offset((&u.class_id as *const u32).cast()),
        offset((&u.outline as *const u32).cast()),
    ];
    let theirs: Vec<usize> = members.iter().take(8).map(|m| m.offset as usize).collect();
    assert_eq!(ours.to_vec(), theirs);
}

const W: u32 = 23;
const H: u32 = 17;

/// A photo with every byte value mixed, a truth of three classes with an unlabelled blob, a
/// prediction that disagrees in places, and a confidence ramp.
fn fixture() -> (RgbImage, Mask, Mask, Vec<u8>) {
    let image = RgbImage::from_fn(W, H, |x, y| {
        image::Rgb([(x * 11) as u8, (y * 15) as u8, ((x * y) % 256) as u8])
    });
    let truth = Mask {
        width: W,
        height: H,
        data: (0..W * H)
            .map(|i| {
                let (x, y) = (i % W, i / W);
                if (5..9).contains(&x) && (3..6).contains(&y) {
                    IGNORE
                } else {
                    ((x / 6 + y / 5) % 3) as u8
                }
            })
            .collect(),
    };
    let ids = Mask {
        width: W,
        height: H,
        data: (0..W * H)
            .map(|i| (((i % W) / 5 + (i / W) / 6) % 3) as u8)
            .collect(),
    };
    let confidence = (0..W * H).map(|i| ((i * 37) % 256) as u8).collect();
    (image, truth, ids, confidence)
}

struct Gpu {
    device: wgpu::Device,
    queue: wgpu::Queue,
}

fn gpu() -> Gpu {
    let state = egui_kittest::wgpu::create_render_state(
        egui_kittest::wgpu::default_wgpu_setup(),
        egui_wgpu::RendererOptions::PREDICTABLE,
    );
    Gpu {
        device: state.device,
        queue: state.queue,
    }
}

/// Draws the overlay at 1:1 into a `format` texture of the image's size and reads it back.
fn render(
    gpu: &Gpu,
    resources: &OverlayResources,
    generation: u64,
    blend: BlendParams,
    format: wgpu::TextureFormat,
) -> Vec<[u8; 4]> {
    let frame = Frame {
        canvas: egui::Rect::from_min_size(egui::Pos2::ZERO, egui::vec2(W as f32, H as f32)),
        origin: egui::Pos2::ZERO,
        zoom: 1.0,
        blend,
    };
    resources.set_frame(&gpu.queue, generation, &frame);
    let target = gpu.device.create_texture(&wgpu::TextureDescriptor {
        label: Some("overlay test target"),
        size: wgpu::Extent3d {
            width: W,
            height: H,
            depth_or_array_layers: 1,
        },
        mip_level_count: 1,
        sample_count: 1,
        dimension: wgpu::TextureDimension::D2,
        format,
        usage: wgpu::TextureUsages::RENDER_ATTACHMENT | wgpu::TextureUsages::COPY_SRC,
        view_formats: &[],
    });
    let view = target.create_view(&wgpu::TextureViewDescriptor::default());
    let mut encoder = gpu
        .device
        .create_command_encoder(&wgpu::CommandEncoderDescriptor {
            label: Some("overlay test encoder"),
        });
    {
        let mut pass = encoder.begin_render_pass(&wgpu::RenderPassDescriptor {
            label: Some("overlay test pass"),
            color_attachments: &[Some(wgpu::RenderPassColorAttachment {
                view: &view,
                resolve_target: None,
                depth_slice: None,
                ops: wgpu::Operations {
                    load: wgpu::LoadOp::Clear(wgpu::Color::RED),
                    store: wgpu::StoreOp::Store,
                },
            })],
            ..Default::default()
        });
        resources.paint(&mut pass, generation);
    }
    let row = (W * 4).next_multiple_of(wgpu::COPY_BYTES_PER_ROW_ALIGNMENT);
    let buffer = gpu.device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("overlay test readback"),
        size: (row * H) as u64,
        usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    });
    encoder.copy_texture_to_buffer(
        target.as_image_copy(),
        wgpu::TexelCopyBufferInfo {
            buffer: &buffer,
            layout: wgpu::TexelCopyBufferLayout {
                offset: 0,
                bytes_per_row: Some(row),
                rows_per_image: None,
            },
        },
        wgpu::Extent3d {
            width: W,
            height: H,
            depth_or_array_layers: 1,
        },
    );
    let submission = gpu.queue.submit([encoder.finish()]);
    let (tx, rx) = std::sync::mpsc::channel();
    buffer
        .slice(..)
        .map_async(wgpu::MapMode::Read, move |r| drop(tx.send(r)));
    gpu.device
        .poll(wgpu::PollType::Wait {
            submission_index: Some(submission),
            timeout: Some(std::time::Duration::from_secs(30)),
        })
        .unwrap();
    rx.recv().unwrap().unwrap();
    let data = buffer.slice(..).get_mapped_range().unwrap();
    data.chunks_exact(row as usize)
        .flat_map(|r| {
            r[..(W * 4) as usize]
                .chunks_exact(4)
                .map(|p| [p[0], p[1], p[2], p[3]])
        })
        .collect()
}

/// Every pixel within one level of the CPU's (rounding of the last bit may differ).
fn assert_matches(
    what: &str,
    gpu: &[[u8; 4]],
    layers: &Layers<'_>,
    blend: &BlendParams,
    lut: &blend::Lut,
) {
    let mut worst = (0, [0u8; 4], [0u8; 3], 0, 0);
    for y in 0..H {
        for x in 0..W {
            let got = gpu[(y * W + x) as usize];
            let want = layers.pixel(x, y, blend, lut);
            let diff = (0..3).map(|k| got[k].abs_diff(want[k])).max().unwrap();
            if diff > worst.0 {
                worst = (diff, got, want, x, y);
            }
            assert_eq!(got[3], 255, "{what}: opaque at ({x}, {y})");
        }
    }
    let (diff, got, want, x, y) = worst;
    assert!(
        diff <= 1,
        "{what}: GPU {got:?} vs CPU {want:?} at ({x}, {y})"
    );
}

#[test]
fn every_view_mode_matches_the_cpu_blend_across_tiles() {
    let gpu = gpu();
    let (image, mut truth, ids, confidence) = fixture();
    let lut = blend::lut(&[[128, 64, 128], [244, 35, 232], [70, 130, 180]]);
    let mut overlay = GpuOverlay::default();
    overlay.set_image(&image, Some(&truth));
    overlay.set_lut(&lut);
    overlay.set_prediction(Some((&ids, &confidence)));
    for format in [
        wgpu::TextureFormat::Rgba8Unorm,
        wgpu::TextureFormat::Rgba8UnormSrgb,
    ] {
        // Tiles of at most 10 texels, apron included: a 23x17 image becomes 3 x 3 tiles.
        let mut resources = OverlayResources::new(&gpu.device, format, Some(10));
        let mut uploads = std::mem::take(&mut *overlay.queue());
        // Keep the queue's contents for the second format.
        let again = Uploads {
            image: uploads.image.as_ref().map(|i| NewImage {
                generation: i.generation,
                width: i.width,
                height: i.height,
                rgba: i.rgba.clone(),
                truth: i.truth.clone(),
            }),
            lut: uploads.lut.clone(),
            truth: Vec::new(),
            truth_bytes: 0,
            prediction: uploads.prediction.clone(),
        };
        resources.upload(&gpu.device, &gpu.queue, &mut uploads);
        *overlay.queue() = again;
        assert_eq!(resources.tile_count(), 9);
        let layers = Layers {
            width: W,
            height: H,
            image: image.as_raw(),
            truth: Some(&truth.data),
            prediction: Some(&ids.data),
            confidence: Some(&confidence),
        };
        let base = BlendParams {
            mode: ViewMode::Image,
            opacity: 0.7,
            class: ANY_CLASS,
            divider: 11.3,
            outline: false,
        };
        let mut cases: Vec<(String, BlendParams)> = ViewMode::ALL
            .into_iter()
            .map(|mode| (format!("{format:?} {mode:?}"), BlendParams { mode, ..base }))
            .collect();
        for class in [0, 2] {
            cases.push((
                format!("{format:?} difference of class {class}"),
                BlendParams {
                    mode: ViewMode::Difference,
                    class,
                    ..base
                },
            ));
        }
        for mode in [ViewMode::Truth, ViewMode::Prediction, ViewMode::Split] {
            cases.push((
                format!("{format:?} {mode:?} outline"),
                BlendParams {
                    mode,
                    outline: true,
                    opacity: 1.0,
                    ..base
                },
            ));
        }
        for (what, blend) in &cases {
            let pixels = render(&gpu, &resources, overlay.generation, *blend, format);
            assert_matches(what, &pixels, &layers, blend, &lut);
        }
    }

    // Painting: a dirty rectangle across four tiles reaches the GPU and the outline follows.
    let mut resources =
        OverlayResources::new(&gpu.device, wgpu::TextureFormat::Rgba8Unorm, Some(10));
    resources.upload(&gpu.device, &gpu.queue, &mut overlay.queue());
    let rect = DirtyRect::clipped(6, 6, 11, 10, W, H).unwrap();
    for y in rect.y..rect.bottom() {
        for x in rect.x..rect.right() {
            truth.set(x, y, 1);
        }
    }
    assert_eq!(overlay.update_truth(&truth, rect), rect.area());
    resources.upload(&gpu.device, &gpu.queue, &mut overlay.queue());
    let layers = Layers {
        width: W,
        height: H,
        image: image.as_raw(),
        truth: Some(&truth.data),
        prediction: Some(&ids.data),
        confidence: Some(&confidence),
    };
    for (mode, outline) in [(ViewMode::Difference, false), (ViewMode::Truth, true)] {
        let blend = BlendParams {
            mode,
            opacity: 1.0,
            class: 1,
            divider: 0.0,
            outline,
        };
        let pixels = render(
            &gpu,
            &resources,
            overlay.generation,
            blend,
            wgpu::TextureFormat::Rgba8Unorm,
        );
        assert_matches(
            &format!("after painting, {mode:?}"),
            &pixels,
            &layers,
            &blend,
            &lut,
        );
    }

    // A cleared prediction shows nothing predicted; an old generation draws nothing at all.
    overlay.set_prediction(None);
    resources.upload(&gpu.device, &gpu.queue, &mut overlay.queue());
    let blend = BlendParams {
        mode: ViewMode::Prediction,
        opacity: 1.0,
        class: ANY_CLASS,
        divider: 0.0,
        outline: false,
    };
    let pixels = render(
        &gpu,
        &resources,
        overlay.generation,
        blend,
        wgpu::TextureFormat::Rgba8Unorm,
    );
    assert_eq!(
        pixels[0],
        [0, 0, 0, 255],
        "unlabelled prediction: the photo's (0, 0) pixel"
    );
    let stale = render(
        &gpu,
        &resources,
        overlay.generation + 1,
        blend,
        wgpu::TextureFormat::Rgba8Unorm,
    );
    assert!(
        stale.iter().all(|p| *p == [255, 0, 0, 255]),
        "nothing drawn for another image"
    );
}
