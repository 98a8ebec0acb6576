//! Texture creation and partial uploads for the overlay: parts of an image-sized source copied
//! into the tiles that cover them.

use eframe::egui_wgpu::wgpu;

use crate::core::paint::DirtyRect;

pub fn create_texture(
    device: &wgpu::Device,
    label: &str,
    [width, height]: [u32; 2],
    format: wgpu::TextureFormat,
) -> wgpu::Texture {
    device.create_texture(&wgpu::TextureDescriptor {
        label: Some(label),
        size: wgpu::Extent3d {
            width: width.max(1),
            height: height.max(1),
            depth_or_array_layers: 1,
        },
        mip_level_count: 1,
        sample_count: 1,
        dimension: wgpu::TextureDimension::D2,
        format,
        usage: wgpu::TextureUsages::TEXTURE_BINDING | wgpu::TextureUsages::COPY_DST,
        view_formats: &[],
    })
}

/// Writes `bytes` (`[x, y, width, height]` of the texture, `texel` bytes each, rows packed).
pub fn write(
    queue: &wgpu::Queue,
    texture: &wgpu::Texture,
    [x, y, width, height]: [u32; 4],
    bytes: &[u8],
    texel: u32,
) {
    if width == 0 || height == 0 {
        return;
    }
    queue.write_texture(
        wgpu::TexelCopyTextureInfo {
            texture,
            mip_level: 0,
            origin: wgpu::Origin3d { x, y, z: 0 },
            aspect: wgpu::TextureAspect::All,
        },
        bytes,
        wgpu::TexelCopyBufferLayout {
            offset: 0,
            bytes_per_row: Some(width * texel),
            rows_per_image: Some(height),
        },
        wgpu::Extent3d {
            width,
            height,
            depth_or_array_layers: 1,
        },
    );
}

/// Writes the part of `source` (one byte a pixel, covering `src` of the image) that falls in a
/// texture covering `target` of the image.
pub fn write_part(
    queue: &wgpu::Queue,
    texture: &wgpu::Texture,
    target: DirtyRect,
    src: DirtyRect,
    source: &[u8],
) {
    write_region(queue, texture, target, src, source, 1);
}

pub fn write_part_rgba(
    queue: &wgpu::Queue,
    texture: &wgpu::Texture,
    target: DirtyRect,
    src: DirtyRect,
    source: &[u8],
) {
    write_region(queue, texture, target, src, source, 4);
}

fn write_region(
    queue: &wgpu::Queue,
    texture: &wgpu::Texture,
    target: DirtyRect,
    src: DirtyRect,
    source: &[u8],
    texel: u32,
) {
    let x0 = target.x.max(src.x);
    let y0 = target.y.max(src.y);
    let x1 = target.right().min(src.right());
    let y1 = target.bottom().min(src.bottom());
    if x1 <= x0 || y1 <= y0 {
        return;
    }
    let (w, t) = ((x1 - x0) as usize, texel as usize);
    let rows = if (x0, x1) == (src.x, src.right()) {
        // Whole rows of the source: one slice, no copy.
        let start = ((y0 - src.y) as usize * src.width as usize) * t;
        std::borrow::Cow::Borrowed(&source[start..start + (y1 - y0) as usize * w * t])
    } else {
        let mut out = Vec::with_capacity((y1 - y0) as usize * w * t);
        for y in y0..y1 {
            let start = ((y - src.y) as usize * src.width as usize + (x0 - src.x) as usize) * t;
            out.extend_from_slice(&source[start..start + w * t]);
        }
        std::borrow::Cow::Owned(out)
    };
    write(
        queue,
        texture,
        [x0 - target.x, y0 - target.y, x1 - x0, y1 - y0],
        &rows,
        texel,
    );
}
