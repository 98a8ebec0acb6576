//! The central canvas: the image with its mask over it, zoom and pan, and the painting tools.
//!
//! The mask lives in a GPU texture. Every edit returns the rectangle it changed and only that
//! rectangle is re-uploaded (`TextureHandle::set_partial`), so painting on a 4K image moves a
//! few KiB per stroke segment instead of 48 MiB. Opacity is a draw-time tint, not a re-upload.

use egui::{Color32, ColorImage, Pos2, Rect, Sense, Stroke, TextureHandle, TextureOptions, Vec2};
use image::RgbImage;
use serde::{Deserialize, Serialize};

use crate::core::dataset::{ClassTable, IGNORE};
use crate::core::paint::{DirtyRect, MaskDocument};

/// The painting tools.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Tool {
    Brush,
    /// Paints "unlabelled" (ignore).
    Eraser,
    /// Fills the connected region of one class.
    Fill,
    /// Click points, Enter closes and fills.
    Polygon,
    /// Picks the class under the cursor (eyedropper).
    Picker,
}

impl Tool {
    pub const ALL: [Tool; 5] = [
        Tool::Brush,
        Tool::Eraser,
        Tool::Fill,
        Tool::Polygon,
        Tool::Picker,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Tool::Brush => "Brush",
            Tool::Eraser => "Eraser",
            Tool::Fill => "Fill",
            Tool::Polygon => "Polygon",
            Tool::Picker => "Picker",
        }
    }
}

/// What the canvas needs from the rest of the studio each frame.
pub struct CanvasSettings {
    pub tool: Tool,
    pub brush_radius: f32,
    pub class: u8,
    pub opacity: f32,
    pub show_mask: bool,
    /// False for datasets that are not in the native layout (view only).
    pub editable: bool,
}

/// Things the canvas reports back.
#[derive(Debug, Clone, PartialEq)]
pub enum CanvasEvent {
    /// The picker chose this class.
    Picked(u8),
    /// An edit was attempted on a read-only dataset.
    ReadOnly,
}

/// Zoom limits, in screen points per image pixel.
const MIN_ZOOM: f32 = 0.02;
const MAX_ZOOM: f32 = 64.0;

pub struct Canvas {
    image_texture: Option<TextureHandle>,
    mask_texture: Option<TextureHandle>,
    pub document: Option<MaskDocument>,
    size: [u32; 2],
    /// Screen points per image pixel.
    zoom: f32,
    /// Image origin relative to the canvas' top-left corner, in points.
    offset: Vec2,
    fit_pending: bool,
    /// Last point of the brush stroke in progress, in image pixels.
    stroke_last: Option<[f32; 2]>,
    /// Points of the polygon being drawn, in image pixels.
    pub polygon: Vec<[f32; 2]>,
    /// Image pixel under the pointer.
    pub cursor: Option<[u32; 2]>,
    lut: Vec<Color32>,
    /// Pixels sent to the GPU by mask updates since the image was loaded (partial uploads
    /// included), to check that painting uploads only dirty rectangles.
    pub uploaded_pixels: u64,
    canvas_rect: Rect,
}

impl Default for Canvas {
    fn default() -> Self {
        Self {
            image_texture: None,
            mask_texture: None,
            document: None,
            size: [0, 0],
            zoom: 1.0,
            offset: Vec2::ZERO,
            fit_pending: true,
            stroke_last: None,
            polygon: Vec::new(),
            cursor: None,
            lut: vec![Color32::TRANSPARENT; 256],
            uploaded_pixels: 0,
            canvas_rect: Rect::NOTHING,
        }
    }
}

/// Mask texture options: crisp pixels when zoomed in.
const MASK_OPTIONS: TextureOptions = TextureOptions {
    magnification: egui::TextureFilter::Nearest,
    ..TextureOptions::LINEAR
};

impl Canvas {
    /// Shows `image` with `document` (none: no mask yet, read-only datasets without labels).
    pub fn set_image(
        &mut self,
        ctx: &egui::Context,
        image: &RgbImage,
        document: Option<MaskDocument>,
        classes: &ClassTable,
    ) {
        let (w, h) = image.dimensions();
        let pixels = ColorImage::from_rgb([w as usize, h as usize], image.as_raw());
        self.image_texture = Some(ctx.load_texture("canvas-image", pixels, MASK_OPTIONS));
        self.size = [w, h];
        self.document = document;
        self.stroke_last = None;
        self.polygon.clear();
        self.fit_pending = true;
        self.uploaded_pixels = 0;
        self.set_classes(classes);
        let blank = ColorImage::filled([w as usize, h as usize], Color32::TRANSPARENT);
        self.mask_texture = Some(ctx.load_texture("canvas-mask", blank, MASK_OPTIONS));
        self.upload(DirtyRect {
            x: 0,
            y: 0,
            width: w,
            height: h,
        });
    }

    /// Forgets the image (closing a dataset).
    pub fn clear(&mut self) {
        *self = Self::default();
    }

    pub fn has_image(&self) -> bool {
        self.image_texture.is_some()
    }

    pub fn image_size(&self) -> [u32; 2] {
        self.size
    }

    pub fn zoom(&self) -> f32 {
        self.zoom
    }

    /// Where the canvas was drawn last frame.
    pub fn rect(&self) -> Rect {
        self.canvas_rect
    }

    /// Rebuilds the colour table (after classes change) and re-uploads the whole mask.
    pub fn set_classes(&mut self, classes: &ClassTable) {
        self.lut = (0..=255u8)
            .map(|id| match classes.0.get(id as usize) {
                Some(c) => Color32::from_rgb(c.color[0], c.color[1], c.color[2]),
                None if id == IGNORE => Color32::TRANSPARENT,
                // An id without a class: loud, so it gets noticed and fixed.
                None => Color32::from_rgb(255, 0, 255),
            })
            .collect();
        if self.mask_texture.is_some() {
            self.upload(DirtyRect {
                x: 0,
                y: 0,
                width: self.size[0],
                height: self.size[1],
            });
        }
    }

    /// Sends the mask pixels of `rect` to the GPU.
    fn upload(&mut self, rect: DirtyRect) {
        let (Some(texture), Some(doc)) = (&mut self.mask_texture, &self.document) else {
            return;
        };
        let mask = doc.mask();
        let mut pixels = Vec::with_capacity(rect.area() as usize);
        for y in rect.y..rect.bottom() {
            let start = (y * mask.width + rect.x) as usize;
            pixels.extend(
                mask.data[start..start + rect.width as usize]
                    .iter()
                    .map(|&id| self.lut[id as usize]),
            );
        }
        let region = ColorImage::new([rect.width as usize, rect.height as usize], pixels);
        texture.set_partial([rect.x as usize, rect.y as usize], region, MASK_OPTIONS);
        self.uploaded_pixels += rect.area();
    }

    fn after_edit(&mut self, changed: Option<DirtyRect>) -> bool {
        match changed {
            Some(rect) => {
                self.upload(rect);
                true
            }
            None => false,
        }
    }

    pub fn undo(&mut self) -> bool {
        let changed = self.document.as_mut().and_then(MaskDocument::undo);
        self.after_edit(changed)
    }

    pub fn redo(&mut self) -> bool {
        let changed = self.document.as_mut().and_then(MaskDocument::redo);
        self.after_edit(changed)
    }

    /// Closes the polygon being drawn and fills it.
    pub fn close_polygon(&mut self, class: u8) -> bool {
        let points = std::mem::take(&mut self.polygon);
        let changed = self
            .document
            .as_mut()
            .and_then(|doc| doc.polygon_fill(&points, class));
        self.after_edit(changed)
    }

    pub fn fit(&mut self) {
        self.fit_pending = true;
    }

    /// One screen point per image pixel, keeping the view centre.
    pub fn one_to_one(&mut self) {
        self.zoom_around(self.canvas_rect.center(), 1.0);
    }

    fn apply_fit(&mut self, rect: Rect) {
        let [w, h] = self.size;
        if w == 0 || h == 0 {
            return;
        }
        self.zoom = (rect.width() / w as f32)
            .min(rect.height() / h as f32)
            .clamp(MIN_ZOOM, MAX_ZOOM);
        let shown = Vec2::new(w as f32, h as f32) * self.zoom;
        self.offset = (rect.size() - shown) / 2.0;
    }

    fn zoom_around(&mut self, screen: Pos2, zoom: f32) {
        let zoom = zoom.clamp(MIN_ZOOM, MAX_ZOOM);
        let anchor = self.screen_to_image(screen);
        self.zoom = zoom;
        // Keep the image point under `screen` where it was.
        self.offset = screen - self.canvas_rect.min - Vec2::new(anchor[0], anchor[1]) * zoom;
    }

    /// Screen position to image pixel coordinates (continuous).
    pub fn screen_to_image(&self, pos: Pos2) -> [f32; 2] {
        let p = (pos - self.canvas_rect.min - self.offset) / self.zoom;
        [p.x, p.y]
    }

    /// Image pixel coordinates to screen position.
    pub fn image_to_screen(&self, p: [f32; 2]) -> Pos2 {
        self.canvas_rect.min + self.offset + Vec2::new(p[0], p[1]) * self.zoom
    }

    fn image_rect(&self) -> Rect {
        Rect::from_min_size(
            self.canvas_rect.min + self.offset,
            Vec2::new(self.size[0] as f32, self.size[1] as f32) * self.zoom,
        )
    }

    fn pixel_at(&self, p: [f32; 2]) -> Option<[u32; 2]> {
        let inside =
            p[0] >= 0.0 && p[1] >= 0.0 && p[0] < self.size[0] as f32 && p[1] < self.size[1] as f32;
        inside.then(|| [p[0] as u32, p[1] as u32])
    }

    pub fn ui(&mut self, ui: &mut egui::Ui, settings: &CanvasSettings) -> Vec<CanvasEvent> {
        let mut events = Vec::new();
        let (rect, response) = ui.allocate_exact_size(ui.available_size(), Sense::click_and_drag());
        self.canvas_rect = rect;
        let Some(image) = &self.image_texture else {
            ui.painter().text(
                rect.center(),
                egui::Align2::CENTER_CENTER,
                "Select an image in the dataset panel",
                egui::FontId::proportional(16.0),
                ui.visuals().weak_text_color(),
            );
            return events;
        };
        let image_id = image.id();
        if self.fit_pending {
            self.apply_fit(rect);
            self.fit_pending = false;
        }

        // Zoom with the wheel (or pinch) around the cursor; pan with the middle button or
        // space + drag.
        let pointer = response.hover_pos();
        if let Some(pos) = pointer {
            let (scroll, pinch) = ui.input(|i| (i.smooth_scroll_delta.y, i.zoom_delta()));
            let factor = pinch * (scroll / 200.0).exp();
            if (factor - 1.0).abs() > 1e-4 {
                self.zoom_around(pos, self.zoom * factor);
            }
        }
        let space = ui.input(|i| i.key_down(egui::Key::Space));
        let panning = response.dragged_by(egui::PointerButton::Middle)
            || (space && response.dragged_by(egui::PointerButton::Primary));
        if panning {
            self.offset += response.drag_delta();
        }

        self.cursor = pointer.and_then(|p| self.pixel_at(self.screen_to_image(p)));
        if !panning {
            self.handle_tools(ui, &response, settings, &mut events);
        }

        // Draw: image, mask, brush outline, polygon in progress.
        let painter = ui.painter_at(rect);
        painter.rect_filled(rect, 0.0, ui.visuals().extreme_bg_color);
        let image_rect = self.image_rect();
        let uv = Rect::from_min_max(Pos2::ZERO, Pos2::new(1.0, 1.0));
        painter.image(image_id, image_rect, uv, Color32::WHITE);
        if settings.show_mask
            && let Some(mask) = &self.mask_texture
        {
            let alpha = (settings.opacity.clamp(0.0, 1.0) * 255.0) as u8;
            painter.image(mask.id(), image_rect, uv, Color32::from_white_alpha(alpha));
        }
        if let Some(pos) = pointer
            && matches!(settings.tool, Tool::Brush | Tool::Eraser)
        {
            painter.circle_stroke(
                pos,
                settings.brush_radius * self.zoom,
                Stroke::new(1.0, Color32::WHITE),
            );
        }
        if !self.polygon.is_empty() {
            let mut points: Vec<Pos2> = self
                .polygon
                .iter()
                .map(|p| self.image_to_screen(*p))
                .collect();
            if let Some(pos) = pointer {
                points.push(pos);
            }
            painter.add(egui::Shape::line(points, Stroke::new(1.5, Color32::YELLOW)));
        }
        events
    }

    fn handle_tools(
        &mut self,
        ui: &egui::Ui,
        response: &egui::Response,
        settings: &CanvasSettings,
        events: &mut Vec<CanvasEvent>,
    ) {
        let pointer = response.interact_pointer_pos().or(response.hover_pos());
        let Some(pos) = pointer else {
            return;
        };
        let p = self.screen_to_image(pos);
        let editing_tool = !matches!(settings.tool, Tool::Picker);
        let wants_edit = editing_tool
            && (response.drag_started_by(egui::PointerButton::Primary)
                || response.clicked_by(egui::PointerButton::Primary));
        if wants_edit && !settings.editable {
            events.push(CanvasEvent::ReadOnly);
            return;
        }
        match settings.tool {
            Tool::Brush | Tool::Eraser => {
                let value = match settings.tool {
                    Tool::Eraser => IGNORE,
                    _ => settings.class,
                };
                let Some(doc) = self.document.as_mut() else {
                    return;
                };
                let down =
                    response.is_pointer_button_down_on() && ui.input(|i| i.pointer.primary_down());
                let mut changed = None;
                if down {
                    // One stroke = one undo step, however many segments it has.
                    let from = match self.stroke_last {
                        Some(last) => last,
                        None => {
                            doc.begin_edit();
                            p
                        }
                    };
                    changed = doc.stroke(from, p, settings.brush_radius, value);
                    self.stroke_last = Some(p);
                } else if self.stroke_last.take().is_some() {
                    doc.end_edit();
                } else if response.clicked_by(egui::PointerButton::Primary) {
                    // Press and release within one frame: a single dab.
                    changed = doc.stroke(p, p, settings.brush_radius, value);
                }
                self.after_edit(changed);
            }
            Tool::Fill => {
                if response.clicked_by(egui::PointerButton::Primary)
                    && let Some([x, y]) = self.pixel_at(p)
                {
                    let changed = self
                        .document
                        .as_mut()
                        .and_then(|doc| doc.flood_fill(x, y, settings.class));
                    self.after_edit(changed);
                }
            }
            Tool::Polygon => {
                if response.clicked_by(egui::PointerButton::Primary) {
                    self.polygon.push(p);
                }
            }
            Tool::Picker => {
                if response.clicked_by(egui::PointerButton::Primary)
                    && let Some([x, y]) = self.pixel_at(p)
                    && let Some(id) = self.document.as_ref().and_then(|d| d.pick(x, y))
                    && id != IGNORE
                {
                    events.push(CanvasEvent::Picked(id));
                }
            }
        }
    }
}
