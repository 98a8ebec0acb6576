//! The canvas without our wgpu pipeline (the OpenGL fallback): the same view modes composited
//! on the CPU by [`blend`](super::blend) into egui textures, cut into tiles no GPU refuses.
//!
//! Only what changed is composited again: a brush dab's dirty rectangle, the columns a split
//! divider crossed; a new mode, class or opacity redoes the whole image once.

use egui::{Color32, ColorImage, TextureHandle, TextureOptions};

use super::blend::{BlendParams, Layers, Lut, ViewMode};
use crate::core::paint::DirtyRect;

/// Texture tile edge: every GPU takes 2048x2048 textures, and a 4K or panoramic image simply
/// becomes several tiles.
const TILE: u32 = 2048;

/// Crisp pixels when zoomed in, smooth when zoomed out.
const OPTIONS: TextureOptions = TextureOptions {
    magnification: egui::TextureFilter::Nearest,
    ..TextureOptions::LINEAR
};

#[derive(Default)]
pub struct CpuOverlay {
    tiles: Vec<(DirtyRect, TextureHandle)>,
    size: [u32; 2],
    /// The settings the textures show.
    shown: Option<BlendParams>,
}

impl CpuOverlay {
    /// Creates the tiles for an image of `size` (contents come with the first `refresh`).
    pub fn set_image(&mut self, ctx: &egui::Context, size: [u32; 2]) {
        let [w, h] = size;
        self.tiles.clear();
        for ty in (0..h).step_by(TILE as usize) {
            for tx in (0..w).step_by(TILE as usize) {
                let rect = DirtyRect {
                    x: tx,
                    y: ty,
                    width: TILE.min(w - tx),
                    height: TILE.min(h - ty),
                };
                let blank =
                    ColorImage::filled([rect.width as usize, rect.height as usize], Color32::BLACK);
                let texture = ctx.load_texture(format!("canvas-{tx}-{ty}"), blank, OPTIONS);
                self.tiles.push((rect, texture));
            }
        }
        self.size = size;
        self.shown = None;
    }

    /// Brings the textures up to date with `params`, compositing at least `dirty` again.
    /// Returns the pixels composited and uploaded.
    pub fn refresh(
        &mut self,
        layers: &Layers<'_>,
        params: &BlendParams,
        lut: &Lut,
        dirty: Option<DirtyRect>,
    ) -> u64 {
        let whole = DirtyRect {
            x: 0,
            y: 0,
            width: self.size[0],
            height: self.size[1],
        };
        let changed = match self.shown {
            None => Some(whole),
            Some(shown) if shown == *params => dirty,
            Some(shown) => {
                let only_divider = BlendParams {
                    divider: params.divider,
                    ..shown
                } == *params;
                match only_divider && params.mode == ViewMode::Split {
                    // The columns between the old and the new divider change sides.
                    true => {
                        let (a, b) = (
                            shown.divider.min(params.divider),
                            shown.divider.max(params.divider),
                        );
                        let cols = DirtyRect::clipped(
                            a.floor() as i64 - 1,
                            0,
                            b.ceil() as i64 + 1,
                            whole.height as i64,
                            whole.width,
                            whole.height,
                        );
                        DirtyRect::merge(cols, dirty)
                    }
                    false => Some(whole),
                }
            }
        };
        self.shown = Some(*params);
        let Some(rect) = changed else { return 0 };
        let mut uploaded = 0;
        for (tile, texture) in &mut self.tiles {
            let Some(part) = DirtyRect::clipped(
                rect.x.max(tile.x) as i64,
                rect.y.max(tile.y) as i64,
                rect.right().min(tile.right()) as i64,
                rect.bottom().min(tile.bottom()) as i64,
                whole.width,
                whole.height,
            ) else {
                continue;
            };
            let pixels: Vec<Color32> = layers
                .composite(part, params, lut)
                .into_iter()
                .map(|[r, g, b, _]| Color32::from_rgb(r, g, b))
                .collect();
            let image = ColorImage::new([part.width as usize, part.height as usize], pixels);
            let at = [(part.x - tile.x) as usize, (part.y - tile.y) as usize];
            texture.set_partial(at, image, OPTIONS);
            uploaded += part.area();
        }
        uploaded
    }

    /// Forces a full composite next time (new layers under unchanged settings).
    pub fn invalidate(&mut self) {
        self.shown = None;
    }

    /// Draws the tiles; `to_screen` maps image pixels to screen points.
    pub fn paint(&self, painter: &egui::Painter, to_screen: impl Fn([f32; 2]) -> egui::Pos2) {
        let uv = egui::Rect::from_min_max(egui::Pos2::ZERO, egui::Pos2::new(1.0, 1.0));
        for (r, texture) in &self.tiles {
            let screen = egui::Rect::from_min_max(
                to_screen([r.x as f32, r.y as f32]),
                to_screen([r.right() as f32, r.bottom() as f32]),
            );
            painter.image(texture.id(), screen, uv, Color32::WHITE);
        }
    }
}
