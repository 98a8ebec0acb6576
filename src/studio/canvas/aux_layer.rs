//! The second head's map (the road boundary, or the drivable area) drawn over the canvas as a
//! layer of its own, in colours the class overlay does not use.

use egui::{Color32, ColorImage, TextureHandle, TextureOptions};

use super::Canvas;
use crate::core::model::segmenter::AuxTask;
use crate::core::predict::AuxMap;

/// The map and, once drawn, its texture.
pub(super) struct AuxLayer {
    map: AuxMap,
    texture: Option<TextureHandle>,
}

/// Colour of a map value: the boundary in bright yellow; the drivable area's direct lane in
/// translucent red and alternative lanes in translucent blue; the rest clear.
pub fn aux_colour(task: AuxTask, value: u8) -> Color32 {
    match (task, value) {
        (AuxTask::Boundary, 1) => Color32::from_rgb(255, 230, 0),
        (AuxTask::Drivable, 0) => Color32::from_rgba_unmultiplied(230, 40, 40, 120),
        (AuxTask::Drivable, 1) => Color32::from_rgba_unmultiplied(40, 90, 230, 120),
        _ => Color32::TRANSPARENT,
    }
}

impl Canvas {
    /// Shows `map` (for the image on the canvas) as the second head's layer; `None` clears
    /// it. A map of another size (another image) is ignored.
    pub fn set_aux(&mut self, map: Option<AuxMap>) -> bool {
        let Some(map) = map else {
            self.aux = None;
            return true;
        };
        if [map.map.width, map.map.height] != self.size {
            return false;
        }
        self.aux = Some(AuxLayer { map, texture: None });
        true
    }

    /// The second head's map on the canvas, if any.
    pub fn aux(&self) -> Option<&AuxMap> {
        self.aux.as_ref().map(|a| &a.map)
    }

    /// Paints the layer over the image.
    pub(super) fn draw_aux(&mut self, ctx: &egui::Context, painter: &egui::Painter) {
        let shown = self.image_screen_rect();
        let Some(layer) = &mut self.aux else { return };
        let [w, h] = [layer.map.map.width as usize, layer.map.map.height as usize];
        if w.max(h) > ctx.input(|i| i.max_texture_side) {
            return;
        }
        let texture = layer.texture.get_or_insert_with(|| {
            let task = layer.map.task;
            let pixels = layer
                .map
                .map
                .data
                .iter()
                .map(|&v| aux_colour(task, v))
                .collect();
            let image = ColorImage {
                size: [w, h],
                source_size: egui::vec2(w as f32, h as f32),
                pixels,
            };
            ctx.load_texture("aux-layer", image, TextureOptions::NEAREST)
        });
        super::paint_layer(painter, texture.id(), shown);
    }
}
