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
    /// Draw class boundaries only.
    pub outline: bool,
    /// Draw the latest prediction (instead of the mask).
    pub show_prediction: bool,
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
    /// The image and its mask, cut into tiles no GPU refuses (see [`TILE`]).
    tiles: Vec<Tile>,
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
    /// Draw only class boundaries.
    outline: bool,
    /// Pixels sent to the GPU by mask updates since the image was loaded (partial uploads
    /// included), to check that painting uploads only dirty rectangles.
    pub uploaded_pixels: u64,
    canvas_rect: Rect,
}

impl Default for Canvas {
    fn default() -> Self {
        Self {
            tiles: Vec::new(),
            document: None,
            size: [0, 0],
            zoom: 1.0,
            offset: Vec2::ZERO,
            fit_pending: true,
            stroke_last: None,
            polygon: Vec::new(),
            cursor: None,
            lut: vec![Color32::TRANSPARENT; 256],
            outline: false,
            uploaded_pixels: 0,
            canvas_rect: Rect::NOTHING,
        }
    }
}

/// Texture tile edge: every GPU takes 2048x2048 textures, and a 4K or panoramic image simply
/// becomes several tiles.
const TILE: u32 = 2048;

/// One tile of the image and of the mask, covering `rect` of the image.
struct Tile {
    rect: DirtyRect,
    image: TextureHandle,
    mask: TextureHandle,
    /// The model's prediction for this image, when training has sent one.
    prediction: Option<TextureHandle>,
}

/// Texture options: crisp pixels when zoomed in.
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
        self.tiles.clear();
        for ty in (0..h).step_by(TILE as usize) {
            for tx in (0..w).step_by(TILE as usize) {
                let rect = DirtyRect {
                    x: tx,
                    y: ty,
                    width: TILE.min(w - tx),
                    height: TILE.min(h - ty),
                };
                let (tw, th) = (rect.width as usize, rect.height as usize);
                let mut rgb = Vec::with_capacity(tw * th * 3);
                for y in rect.y..rect.bottom() {
                    let start = ((y * w + rect.x) * 3) as usize;
                    rgb.extend_from_slice(&image.as_raw()[start..start + tw * 3]);
                }
                let name = format!("canvas-{tx}-{ty}");
                let pixels = ColorImage::from_rgb([tw, th], &rgb);
                let blank = ColorImage::filled([tw, th], Color32::TRANSPARENT);
                self.tiles.push(Tile {
                    rect,
                    image: ctx.load_texture(format!("{name}-image"), pixels, MASK_OPTIONS),
                    mask: ctx.load_texture(format!("{name}-mask"), blank, MASK_OPTIONS),
                    prediction: None,
                });
            }
        }
        self.size = [w, h];
        self.document = document;
        self.stroke_last = None;
        self.polygon.clear();
        self.fit_pending = true;
        self.uploaded_pixels = 0;
        // Uploads the whole mask once.
        self.set_classes(classes);
    }

    /// Forgets the image (closing a dataset).
    pub fn clear(&mut self) {
        *self = Self::default();
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
        if !self.tiles.is_empty() {
            self.upload(DirtyRect {
                x: 0,
                y: 0,
                width: self.size[0],
                height: self.size[1],
            });
        }
    }

    /// Shows `prediction` (class ids for the image on the canvas) as a layer of its own.
    pub fn set_prediction(&mut self, ctx: &egui::Context, prediction: &crate::core::mask::Mask) {
        if [prediction.width, prediction.height] != self.size {
            return;
        }
        for tile in &mut self.tiles {
            let r = tile.rect;
            let image = coloured(prediction, r, |_, _, id| self.lut[id as usize]);
            match &mut tile.prediction {
                Some(texture) => texture.set(image, MASK_OPTIONS),
                None => {
                    tile.prediction = Some(ctx.load_texture(
                        format!("canvas-{}-{}-prediction", r.x, r.y),
                        image,
                        MASK_OPTIONS,
                    ));
                }
            }
        }
    }

    pub fn has_prediction(&self) -> bool {
        self.tiles.iter().any(|t| t.prediction.is_some())
    }

    /// Shows only the pixels on a class boundary (re-uploads the mask when it changes).
    pub fn set_outline(&mut self, outline: bool) {
        if outline != self.outline {
            self.outline = outline;
            self.upload(DirtyRect {
                x: 0,
                y: 0,
                width: self.size[0],
                height: self.size[1],
            });
        }
    }

    /// Sends the mask pixels of `rect` to the GPU, tile by tile.
    fn upload(&mut self, rect: DirtyRect) {
        let Some(doc) = &self.document else {
            return;
        };
        let mask = doc.mask();
        // In outline mode an edit also changes whether its neighbours are on a boundary.
        let rect = match self.outline {
            true => DirtyRect::clipped(
                rect.x as i64 - 1,
                rect.y as i64 - 1,
                rect.right() as i64 + 1,
                rect.bottom() as i64 + 1,
                mask.width,
                mask.height,
            )
            .unwrap_or(rect),
            false => rect,
        };
        let (w, h) = (mask.width, mask.height);
        let boundary = |x: u32, y: u32, id: u8| {
            (x > 0 && mask.get(x - 1, y) != id)
                || (x + 1 < w && mask.get(x + 1, y) != id)
                || (y > 0 && mask.get(x, y - 1) != id)
                || (y + 1 < h && mask.get(x, y + 1) != id)
        };
        for tile in &mut self.tiles {
            let Some(part) = DirtyRect::clipped(
                rect.x.max(tile.rect.x) as i64,
                rect.y.max(tile.rect.y) as i64,
                rect.right().min(tile.rect.right()) as i64,
                rect.bottom().min(tile.rect.bottom()) as i64,
                w,
                h,
            ) else {
                continue;
            };
            let (lut, outline) = (&self.lut, self.outline);
            let region = coloured(mask, part, |x, y, id| {
                match !outline || boundary(x, y, id) {
                    true => lut[id as usize],
                    false => Color32::TRANSPARENT,
                }
            });
            let at = [
                (part.x - tile.rect.x) as usize,
                (part.y - tile.rect.y) as usize,
            ];
            tile.mask.set_partial(at, region, MASK_OPTIONS);
            self.uploaded_pixels += part.area();
        }
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

    fn pixel_at(&self, p: [f32; 2]) -> Option<[u32; 2]> {
        let inside =
            p[0] >= 0.0 && p[1] >= 0.0 && p[0] < self.size[0] as f32 && p[1] < self.size[1] as f32;
        inside.then(|| [p[0] as u32, p[1] as u32])
    }

    pub fn ui(&mut self, ui: &mut egui::Ui, settings: &CanvasSettings) -> Vec<CanvasEvent> {
        let mut events = Vec::new();
        let (rect, response) = ui.allocate_exact_size(ui.available_size(), Sense::click_and_drag());
        self.canvas_rect = rect;
        self.set_outline(settings.outline);
        if self.tiles.is_empty() {
            ui.painter().text(
                rect.center(),
                egui::Align2::CENTER_CENTER,
                "Select an image in the dataset panel",
                egui::FontId::proportional(16.0),
                ui.visuals().weak_text_color(),
            );
            return events;
        }
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
        let uv = Rect::from_min_max(Pos2::ZERO, Pos2::new(1.0, 1.0));
        let alpha = (settings.opacity.clamp(0.0, 1.0) * 255.0) as u8;
        for tile in &self.tiles {
            let r = tile.rect;
            let screen = Rect::from_min_max(
                self.image_to_screen([r.x as f32, r.y as f32]),
                self.image_to_screen([r.right() as f32, r.bottom() as f32]),
            );
            painter.image(tile.image.id(), screen, uv, Color32::WHITE);
            match (&tile.prediction, settings.show_prediction) {
                (Some(prediction), true) => {
                    painter.image(
                        prediction.id(),
                        screen,
                        uv,
                        Color32::from_white_alpha(alpha),
                    );
                }
                _ if settings.show_mask => {
                    painter.image(tile.mask.id(), screen, uv, Color32::from_white_alpha(alpha));
                }
                _ => {}
            }
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

/// The colours of `rect` of `mask`, one per pixel from `colour(x, y, id)`, ready to upload.
fn coloured(
    mask: &crate::core::mask::Mask,
    rect: DirtyRect,
    colour: impl Fn(u32, u32, u8) -> Color32,
) -> ColorImage {
    let mut pixels = Vec::with_capacity(rect.area() as usize);
    for y in rect.y..rect.bottom() {
        let start = (y * mask.width + rect.x) as usize;
        let row = &mask.data[start..start + rect.width as usize];
        pixels.extend((rect.x..).zip(row).map(|(x, &id)| colour(x, y, id)));
    }
    ColorImage::new([rect.width as usize, rect.height as usize], pixels)
}
