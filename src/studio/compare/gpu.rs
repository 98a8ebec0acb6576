//! The canvas drawn by our own wgpu pipeline (`shaders/overlay.wgsl`) inside egui's render pass,
//! through an [`egui_wgpu::CallbackTrait`] paint callback.
//!
//! The GPU holds the raw layers, not colours: the photo (RGBA), the ground truth and the
//! prediction as `R8Uint` class ids, the confidence as `R8Unorm`, and the class colours as a
//! 256x1 table. Switching the view mode, the class, the opacity or the divider changes only a
//! uniform; a brush dab uploads the ids of its dirty rectangle (one byte a pixel); a new
//! prediction uploads two bytes a pixel.
//!
//! The pipeline, sampler and colour table are built once ([`install`]) and kept in egui's
//! `callback_resources`, with the textures of the image on the canvas. The canvas queues
//! uploads in [`Uploads`]; `prepare` applies them, so frames that are never rendered (tests)
//! lose nothing. Every wgpu object is labelled.

use std::sync::{Arc, Mutex};

use bytemuck::{Pod, Zeroable};
use eframe::egui_wgpu::{self, CallbackResources, CallbackTrait, ScreenDescriptor, wgpu};
use image::RgbImage;

use super::blend::{BlendParams, Lut};
use super::textures::{create_texture, write, write_part, write_part_rgba};
use crate::core::mask::Mask;
use crate::core::paint::DirtyRect;

/// The shader, validated by naga in the tests.
pub const SHADER: &str = include_str!("../../../shaders/overlay.wgsl");

/// The shader's `Overlay` uniform struct, byte for byte.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Pod, Zeroable)]
pub struct OverlayUniforms {
    /// The tile's rectangle in clip space: left, top, right, bottom.
    pub quad: [f32; 4],
    /// The tile in image pixels: x, y, width, height.
    pub tile: [f32; 4],
    /// The mask textures' extent in image pixels (tile plus apron).
    pub apron: [f32; 4],
    pub opacity: f32,
    pub divider: f32,
    pub mode: u32,
    pub class_id: u32,
    pub outline: u32,
    pub _pad: [u32; 3],
}

/// Pixels on their way to the GPU, queued by the canvas and applied by the next `prepare`.
#[derive(Default)]
pub struct Uploads {
    /// A new image: every texture is rebuilt at its size (pending patches are dropped).
    image: Option<NewImage>,
    lut: Option<Box<Lut>>,
    /// Changed ground-truth rectangles with their ids.
    truth: Vec<(DirtyRect, Vec<u8>)>,
    truth_bytes: usize,
    /// A new prediction (ids, confidence), or `Some(None)` to clear it.
    prediction: Option<Option<(Vec<u8>, Vec<u8>)>>,
}

struct NewImage {
    generation: u64,
    width: u32,
    height: u32,
    rgba: Vec<u8>,
    truth: Vec<u8>,
}

/// The canvas' side: queues uploads and makes the paint callback of each frame.
pub struct GpuOverlay {
    uploads: Arc<Mutex<Uploads>>,
    generation: u64,
    size: [u32; 2],
}

impl Default for GpuOverlay {
    fn default() -> Self {
        Self {
            uploads: Arc::new(Mutex::new(Uploads::default())),
            generation: 0,
            size: [0, 0],
        }
    }
}

/// Where the image is on screen and how to blend it, for one frame.
#[derive(Clone, Copy, Debug)]
pub struct Frame {
    /// The canvas (the callback's rectangle), in points.
    pub canvas: egui::Rect,
    /// Screen position of image pixel (0, 0)'s corner, in points.
    pub origin: egui::Pos2,
    /// Points per image pixel.
    pub zoom: f32,
    pub blend: BlendParams,
}

impl GpuOverlay {
    fn queue(&self) -> std::sync::MutexGuard<'_, Uploads> {
        // A panic while holding the lock leaves plain data behind: keep using it.
        self.uploads.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Replaces the image (and its ground truth: `None` for none) on the GPU.
    pub fn set_image(&mut self, image: &RgbImage, truth: Option<&Mask>) {
        self.generation += 1;
        let (width, height) = image.dimensions();
        self.size = [width, height];
        let mut rgba = Vec::with_capacity(width as usize * height as usize * 4);
        for p in image.pixels() {
            rgba.extend_from_slice(&[p.0[0], p.0[1], p.0[2], 255]);
        }
        let truth = truth.map_or_else(
            || vec![crate::core::dataset::IGNORE; width as usize * height as usize],
            |m| m.data.clone(),
        );
        let mut q = self.queue();
        q.truth.clear();
        q.truth_bytes = 0;
        q.prediction = Some(None);
        q.image = Some(NewImage {
            generation: self.generation,
            width,
            height,
            rgba,
            truth,
        });
    }

    pub fn set_lut(&mut self, lut: &Lut) {
        self.queue().lut = Some(Box::new(*lut));
    }

    /// Queues the ground-truth ids of `rect`; returns the pixels queued.
    pub fn update_truth(&mut self, mask: &Mask, rect: DirtyRect) -> u64 {
        let whole = DirtyRect {
            x: 0,
            y: 0,
            width: mask.width,
            height: mask.height,
        };
        let mut q = self.queue();
        // Many strokes between two rendered frames (a test, a stalled window): once the queue
        // holds a mask's worth, one copy of the whole mask replaces it.
        let rect = match q.truth_bytes + rect.area() as usize > mask.data.len() {
            true => {
                q.truth.clear();
                q.truth_bytes = 0;
                whole
            }
            false => rect,
        };
        let bytes = crate::core::paint::history::copy_rect(mask, rect);
        q.truth_bytes += bytes.len();
        q.truth.push((rect, bytes));
        rect.area()
    }

    /// Queues a prediction (ids and confidence at the image's size), or clears it.
    pub fn set_prediction(&mut self, prediction: Option<(&Mask, &[u8])>) {
        self.queue().prediction =
            Some(prediction.map(|(ids, conf)| (ids.data.clone(), conf.to_vec())));
    }

    /// The paint callback drawing the canvas this frame.
    pub fn callback(&self, frame: Frame) -> egui::PaintCallback {
        egui_wgpu::Callback::new_paint_callback(
            frame.canvas,
            OverlayCallback {
                uploads: self.uploads.clone(),
                generation: self.generation,
                frame,
            },
        )
    }
}

struct OverlayCallback {
    uploads: Arc<Mutex<Uploads>>,
    generation: u64,
    frame: Frame,
}

impl CallbackTrait for OverlayCallback {
    fn prepare(
        &self,
        device: &wgpu::Device,
        queue: &wgpu::Queue,
        _screen: &ScreenDescriptor,
        _encoder: &mut wgpu::CommandEncoder,
        resources: &mut CallbackResources,
    ) -> Vec<wgpu::CommandBuffer> {
        let Some(overlay) = resources.get_mut::<OverlayResources>() else {
            return Vec::new();
        };
        let mut uploads = self.uploads.lock().unwrap_or_else(|e| e.into_inner());
        overlay.upload(device, queue, &mut uploads);
        drop(uploads);
        overlay.set_frame(queue, self.generation, &self.frame);
        Vec::new()
    }

    fn paint(
        &self,
        _info: egui::PaintCallbackInfo,
        pass: &mut wgpu::RenderPass<'static>,
        resources: &CallbackResources,
    ) {
        if let Some(overlay) = resources.get::<OverlayResources>() {
            overlay.paint(pass, self.generation);
        }
    }
}

/// Builds the pipeline once and keeps it where egui's paint callbacks find it. Call with the
/// window's render state (eframe's `CreationContext::wgpu_render_state`).
pub fn install(render_state: &egui_wgpu::RenderState) {
    let resources = OverlayResources::new(&render_state.device, render_state.target_format, None);
    render_state
        .renderer
        .write()
        .callback_resources
        .insert(resources);
}

/// The pipeline and the textures of the image on the canvas.
pub struct OverlayResources {
    pipeline: wgpu::RenderPipeline,
    layout: wgpu::BindGroupLayout,
    sampler: wgpu::Sampler,
    lut: wgpu::Texture,
    /// Largest tile edge, apron included.
    max_texture: u32,
    image: Option<GpuImage>,
}

struct GpuImage {
    generation: u64,
    tiles: Vec<GpuTile>,
}

/// One tile of the image with its textures, uniforms and bind group.
struct GpuTile {
    rect: DirtyRect,
    /// The tile plus one pixel around it, clipped to the image: the mask textures' extent.
    apron: DirtyRect,
    /// Kept with the tile (the bind group samples it; only created and filled once).
    _image: wgpu::Texture,
    truth: wgpu::Texture,
    prediction: wgpu::Texture,
    confidence: wgpu::Texture,
    uniforms: wgpu::Buffer,
    bind_group: wgpu::BindGroup,
}

impl OverlayResources {
    /// The pipeline for `target` (the framebuffer's format). `max_tile` caps the texture size
    /// below the device's limit (tests use it to exercise tiling on small images).
    pub fn new(device: &wgpu::Device, target: wgpu::TextureFormat, max_tile: Option<u32>) -> Self {
        let shader = device.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some("roadseg overlay shader"),
            source: wgpu::ShaderSource::Wgsl(SHADER.into()),
        });
        let texture = |binding, sample_type| wgpu::BindGroupLayoutEntry {
            binding,
            visibility: wgpu::ShaderStages::FRAGMENT,
            ty: wgpu::BindingType::Texture {
                sample_type,
                view_dimension: wgpu::TextureViewDimension::D2,
                multisampled: false,
            },
            count: None,
        };
        let unfiltered = wgpu::TextureSampleType::Float { filterable: false };
        let layout = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
            label: Some("roadseg overlay bind group layout"),
            entries: &[
                wgpu::BindGroupLayoutEntry {
                    binding: 0,
                    visibility: wgpu::ShaderStages::VERTEX | wgpu::ShaderStages::FRAGMENT,
                    ty: wgpu::BindingType::Buffer {
                        ty: wgpu::BufferBindingType::Uniform,
                        has_dynamic_offset: false,
                        min_binding_size: wgpu::BufferSize::new(
                            std::mem::size_of::<OverlayUniforms>() as u64,
                        ),
                    },
                    count: None,
                },
                texture(1, wgpu::TextureSampleType::Float { filterable: true }),
                wgpu::BindGroupLayoutEntry {
                    binding: 2,
                    visibility: wgpu::ShaderStages::FRAGMENT,
                    ty: wgpu::BindingType::Sampler(wgpu::SamplerBindingType::Filtering),
                    count: None,
                },
                texture(3, wgpu::TextureSampleType::Uint),
                texture(4, wgpu::TextureSampleType::Uint),
                texture(5, unfiltered),
                texture(6, unfiltered),
            ],
        });
        let pipeline_layout = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
            label: Some("roadseg overlay pipeline layout"),
            bind_group_layouts: &[Some(&layout)],
            immediate_size: 0,
        });
        let pipeline = device.create_render_pipeline(&wgpu::RenderPipelineDescriptor {
            label: Some("roadseg overlay pipeline"),
            layout: Some(&pipeline_layout),
            vertex: wgpu::VertexState {
                module: &shader,
                entry_point: Some("vs_main"),
                compilation_options: wgpu::PipelineCompilationOptions::default(),
                buffers: &[],
            },
            primitive: wgpu::PrimitiveState::default(),
            depth_stencil: None,
            multisample: wgpu::MultisampleState::default(),
            fragment: Some(wgpu::FragmentState {
                module: &shader,
                // As egui: blend in gamma space, convert only for sRGB framebuffers.
                entry_point: Some(match target.is_srgb() {
                    true => "fs_main_linear",
                    false => "fs_main_gamma",
                }),
                compilation_options: wgpu::PipelineCompilationOptions::default(),
                // Opaque: the callback replaces what is under it.
                targets: &[Some(wgpu::ColorTargetState {
                    format: target,
                    blend: None,
                    write_mask: wgpu::ColorWrites::ALL,
                })],
            }),
            multiview_mask: None,
            cache: None,
        });
        let sampler = device.create_sampler(&wgpu::SamplerDescriptor {
            label: Some("roadseg overlay image sampler"),
            mag_filter: wgpu::FilterMode::Nearest,
            min_filter: wgpu::FilterMode::Linear,
            ..Default::default()
        });
        let lut = create_texture(
            device,
            "roadseg overlay class colours",
            [256, 1],
            wgpu::TextureFormat::Rgba8Unorm,
        );
        let limit = device.limits().max_texture_dimension_2d;
        Self {
            pipeline,
            layout,
            sampler,
            lut,
            max_texture: max_tile.map_or(limit, |m| m.min(limit)).max(3),
            image: None,
        }
    }

    /// Applies the queued uploads.
    pub fn upload(&mut self, device: &wgpu::Device, queue: &wgpu::Queue, uploads: &mut Uploads) {
        if let Some(lut) = uploads.lut.take() {
            write(queue, &self.lut, [0, 0, 256, 1], lut.as_flattened(), 4);
        }
        if let Some(new) = uploads.image.take() {
            self.image = Some(self.create_image(device, queue, &new));
        }
        let Some(image) = &self.image else {
            uploads.truth.clear();
            uploads.truth_bytes = 0;
            return;
        };
        for (rect, bytes) in uploads.truth.drain(..) {
            for tile in &image.tiles {
                write_part(queue, &tile.truth, tile.apron, rect, &bytes);
            }
        }
        uploads.truth_bytes = 0;
        if let Some(prediction) = uploads.prediction.take() {
            let Some(whole) = image.tiles.iter().map(|t| t.rect).reduce(DirtyRect::union) else {
                return;
            };
            let (ids, confidence) = prediction.unwrap_or_else(|| {
                (
                    vec![crate::core::dataset::IGNORE; whole.area() as usize],
                    vec![0; whole.area() as usize],
                )
            });
            for tile in &image.tiles {
                write_part(queue, &tile.prediction, tile.apron, whole, &ids);
                write_part(queue, &tile.confidence, tile.apron, whole, &confidence);
            }
        }
    }

    fn create_image(&self, device: &wgpu::Device, queue: &wgpu::Queue, new: &NewImage) -> GpuImage {
        let step = self.max_texture - 2;
        let whole = DirtyRect {
            x: 0,
            y: 0,
            width: new.width,
            height: new.height,
        };
        let mut tiles = Vec::new();
        for y in (0..new.height).step_by(step as usize) {
            for x in (0..new.width).step_by(step as usize) {
                let rect = DirtyRect {
                    x,
                    y,
                    width: step.min(new.width - x),
                    height: step.min(new.height - y),
                };
                let apron = DirtyRect::clipped(
                    x as i64 - 1,
                    y as i64 - 1,
                    rect.right() as i64 + 1,
                    rect.bottom() as i64 + 1,
                    new.width,
                    new.height,
                )
                .unwrap_or(rect);
                let name = |what: &str| format!("roadseg overlay {what} tile {x},{y}");
                let size = |r: DirtyRect| [r.width, r.height];
                let image = create_texture(
                    device,
                    &name("image"),
                    size(rect),
                    wgpu::TextureFormat::Rgba8Unorm,
                );
                let truth = create_texture(
                    device,
                    &name("truth"),
                    size(apron),
                    wgpu::TextureFormat::R8Uint,
                );
                let prediction = create_texture(
                    device,
                    &name("prediction"),
                    size(apron),
                    wgpu::TextureFormat::R8Uint,
                );
                let confidence = create_texture(
                    device,
                    &name("confidence"),
                    size(apron),
                    wgpu::TextureFormat::R8Unorm,
                );
                write_part_rgba(queue, &image, rect, whole, &new.rgba);
                write_part(queue, &truth, apron, whole, &new.truth);
                let blank = vec![crate::core::dataset::IGNORE; apron.area() as usize];
                write(
                    queue,
                    &prediction,
                    [0, 0, apron.width, apron.height],
                    &blank,
                    1,
                );
                write(
                    queue,
                    &confidence,
                    [0, 0, apron.width, apron.height],
                    &vec![0; apron.area() as usize],
                    1,
                );
                let uniforms = device.create_buffer(&wgpu::BufferDescriptor {
                    label: Some(&name("uniforms")),
                    size: std::mem::size_of::<OverlayUniforms>() as u64,
                    usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
                    mapped_at_creation: false,
                });
                let view =
                    |t: &wgpu::Texture| t.create_view(&wgpu::TextureViewDescriptor::default());
                let views = [
                    view(&image),
                    view(&truth),
                    view(&prediction),
                    view(&confidence),
                    view(&self.lut),
                ];
                let bind_group = device.create_bind_group(&wgpu::BindGroupDescriptor {
                    label: Some(&name("bind group")),
                    layout: &self.layout,
                    entries: &[
                        wgpu::BindGroupEntry {
                            binding: 0,
                            resource: uniforms.as_entire_binding(),
                        },
                        wgpu::BindGroupEntry {
                            binding: 1,
                            resource: wgpu::BindingResource::TextureView(&views[0]),
                        },
                        wgpu::BindGroupEntry {
                            binding: 2,
                            resource: wgpu::BindingResource::Sampler(&self.sampler),
                        },
                        wgpu::BindGroupEntry {
                            binding: 3,
                            resource: wgpu::BindingResource::TextureView(&views[1]),
                        },
                        wgpu::BindGroupEntry {
                            binding: 4,
                            resource: wgpu::BindingResource::TextureView(&views[2]),
                        },
                        wgpu::BindGroupEntry {
                            binding: 5,
                            resource: wgpu::BindingResource::TextureView(&views[3]),
                        },
                        wgpu::BindGroupEntry {
                            binding: 6,
                            resource: wgpu::BindingResource::TextureView(&views[4]),
                        },
                    ],
                });
                tiles.push(GpuTile {
                    rect,
                    apron,
                    _image: image,
                    truth,
                    prediction,
                    confidence,
                    uniforms,
                    bind_group,
                });
            }
        }
        GpuImage {
            generation: new.generation,
            tiles,
        }
    }

    /// Writes each tile's uniforms for `frame`.
    pub fn set_frame(&self, queue: &wgpu::Queue, generation: u64, frame: &Frame) {
        let Some(image) = self.image.as_ref().filter(|i| i.generation == generation) else {
            return;
        };
        for tile in &image.tiles {
            let uniforms = tile_uniforms(tile.rect, tile.apron, frame);
            queue.write_buffer(&tile.uniforms, 0, bytemuck::bytes_of(&uniforms));
        }
    }

    /// Draws the tiles (nothing while the image of `generation` is not on the GPU yet).
    pub fn paint(&self, pass: &mut wgpu::RenderPass<'_>, generation: u64) {
        let Some(image) = self.image.as_ref().filter(|i| i.generation == generation) else {
            return;
        };
        pass.set_pipeline(&self.pipeline);
        for tile in &image.tiles {
            pass.set_bind_group(0, &tile.bind_group, &[]);
            pass.draw(0..6, 0..1);
        }
    }

    /// How many tiles the image on the GPU has (tests).
    pub fn tile_count(&self) -> usize {
        self.image.as_ref().map_or(0, |i| i.tiles.len())
    }

    /// Drops the image's textures (closing a dataset).
    pub fn forget_image(&mut self) {
        self.image = None;
    }
}

/// The uniforms of a tile: its quad in the canvas' clip space and the blend settings.
pub fn tile_uniforms(rect: DirtyRect, apron: DirtyRect, frame: &Frame) -> OverlayUniforms {
    let c = frame.canvas;
    let to_clip = |x: u32, y: u32| {
        let sx = frame.origin.x + x as f32 * frame.zoom;
        let sy = frame.origin.y + y as f32 * frame.zoom;
        [
            (sx - c.min.x) / c.width() * 2.0 - 1.0,
            1.0 - (sy - c.min.y) / c.height() * 2.0,
        ]
    };
    let [left, top] = to_clip(rect.x, rect.y);
    let [right, bottom] = to_clip(rect.right(), rect.bottom());
    let f = |r: DirtyRect| [r.x as f32, r.y as f32, r.width as f32, r.height as f32];
    let b = &frame.blend;
    OverlayUniforms {
        quad: [left, top, right, bottom],
        tile: f(rect),
        apron: f(apron),
        opacity: b.opacity.clamp(0.0, 1.0),
        divider: b.divider,
        mode: b.mode.code(),
        class_id: b.class as u32,
        outline: b.outline as u32,
        _pad: [0; 3],
    }
}

#[cfg(test)]
#[path = "gpu_tests.rs"]
mod tests;
