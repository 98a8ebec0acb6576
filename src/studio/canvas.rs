//! The central canvas: the image with its ground truth, prediction, their difference or the
//! model's confidence over it; zoom and pan; the painting tools and model-assisted labelling.
//!
//! Drawing goes through [`compare::gpu`](super::compare::gpu) (our wgpu pipeline, the default)
//! or, where the window runs on OpenGL, [`compare::cpu`](super::compare::cpu). Either way every
//! edit returns the rectangle it changed and only that rectangle travels to the GPU, so painting
//! on a 4K image moves a few KiB per stroke segment in any view mode.

use egui::{Color32, Pos2, Rect, Sense, Stroke, Vec2};
use image::RgbImage;
use serde::{Deserialize, Serialize};

use super::compare::blend::{self, BlendParams, Layers, Lut, ViewMode};
use super::compare::cpu::CpuOverlay;
use super::compare::gpu::{Frame, GpuOverlay};
use crate::core::dataset::ClassTable;
use crate::core::mask::Mask;
use crate::core::paint::accept::{self, AcceptScope, Suggestion};
use crate::core::paint::{DirtyRect, Locks, MaskDocument};

mod aux_layer;
mod smart;
mod tools;

pub use aux_layer::aux_colour;
pub use smart::SmartTarget;

/// The painting tools.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Tool {
    Brush,
    /// Paints "unlabelled" (ignore).
    Eraser,
    /// Fills the connected region of one class.
    Fill,
    /// Click points, Enter closes and fills (Shift+Enter: accepts the prediction inside).
    Polygon,
    /// Picks the class under the cursor (eyedropper).
    Picker,
    /// A brush that copies the prediction under it.
    AcceptBrush,
    /// A click accepts the predicted region under the cursor.
    AcceptRegion,
    /// Click-to-segment: clicks inside (left) and outside (right or Alt) make a candidate
    /// region; Enter commits it.
    SmartRegion,
    /// A brush that paints whole superpixels.
    SuperpixelBrush,
    /// A click paints the connected pixels of about the clicked colour (magic wand).
    Wand,
}

impl Tool {
    pub const ALL: [Tool; 10] = [
        Tool::Brush,
        Tool::Eraser,
        Tool::Fill,
        Tool::Polygon,
        Tool::Picker,
        Tool::AcceptBrush,
        Tool::AcceptRegion,
        Tool::SmartRegion,
        Tool::SuperpixelBrush,
        Tool::Wand,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Tool::Brush => "Brush",
            Tool::Eraser => "Eraser",
            Tool::Fill => "Fill",
            Tool::Polygon => "Polygon",
            Tool::Picker => "Picker",
            Tool::AcceptBrush => "Accept brush",
            Tool::AcceptRegion => "Accept region",
            Tool::SmartRegion => "Smart region",
            Tool::SuperpixelBrush => "Superpixel brush",
            Tool::Wand => "Wand",
        }
    }

    /// The key that picks the tool (B is blink and G, I, P, D, C, S the views; Ctrl+Y, Z, S
    /// are taken too).
    pub fn key(self) -> egui::Key {
        match self {
            Tool::Brush => egui::Key::R,
            Tool::Eraser => egui::Key::E,
            Tool::Fill => egui::Key::F,
            Tool::Polygon => egui::Key::L,
            Tool::Picker => egui::Key::K,
            Tool::AcceptBrush => egui::Key::A,
            Tool::AcceptRegion => egui::Key::W,
            Tool::SmartRegion => egui::Key::Q,
            Tool::SuperpixelBrush => egui::Key::U,
            Tool::Wand => egui::Key::M,
        }
    }

    /// What the tool does, for its tooltip.
    pub fn hint(self) -> &'static str {
        match self {
            Tool::Brush => "Paints the current class; [ and ] change the radius.",
            Tool::Eraser => "Paints unlabelled (ignore).",
            Tool::Fill => "Fills the connected region of one class with the current class.",
            Tool::Polygon => {
                "Click points; Enter fills, Shift+Enter accepts the prediction inside, Esc cancels."
            }
            Tool::Picker => "Click: picks the class under the cursor.",
            Tool::AcceptBrush => "Paints the prediction where the model is confident enough.",
            Tool::AcceptRegion => "Click: accepts the predicted region under the cursor.",
            Tool::SmartRegion => {
                "Left click: inside, right or Alt+click: outside; Enter commits, Backspace \
                 removes the last click, Esc discards."
            }
            Tool::SuperpixelBrush => "Paints whole superpixels with the current class.",
            Tool::Wand => {
                "Click: paints the connected pixels of about the clicked colour (Wand tolerance)."
            }
        }
    }

    /// Whether the brush radius applies.
    pub fn is_brush(self) -> bool {
        matches!(
            self,
            Tool::Brush | Tool::Eraser | Tool::AcceptBrush | Tool::SuperpixelBrush
        )
    }
}

/// What the canvas needs from the rest of the studio each frame.
pub struct CanvasSettings {
    pub tool: Tool,
    pub brush_radius: f32,
    pub class: u8,
    pub opacity: f32,
    /// What to show (blink already applied).
    pub view: ViewMode,
    /// Difference view: this class's errors, or [`blend::ANY_CLASS`].
    pub diff_class: u8,
    /// Split view: the divider's position across the canvas, 0..=1.
    pub divider: f32,
    /// Draw class boundaries only.
    pub outline: bool,
    /// Model-assisted labelling leaves pixels below this confidence alone.
    pub accept_threshold: u8,
    /// False for datasets that are not in the native layout (view only).
    pub editable: bool,
    /// Draw the second head's map (road boundary, drivable area) on top.
    pub show_aux: bool,
    /// The current class's colour (the Smart region's candidate is drawn in it).
    pub class_colour: [u8; 3],
    /// The superpixel brush's superpixels are about this many pixels across.
    pub superpixel_size: u32,
    /// Draw the edges of those superpixels.
    pub show_superpixels: bool,
    /// The wand's colour distance (largest channel difference).
    pub wand_tolerance: u8,
    /// Smart region fills its region's holes (the current class is a countable object).
    pub smart_fill_holes: bool,
}

impl CanvasSettings {
    /// What Smart region labels.
    pub fn smart_target(&self) -> SmartTarget {
        SmartTarget {
            class: self.class,
            fill_holes: self.smart_fill_holes,
        }
    }
}

/// Things the canvas reports back.
#[derive(Debug, Clone, PartialEq)]
pub enum CanvasEvent {
    /// The picker chose this class.
    Picked(u8),
    /// An edit began on a view-only dataset (it stays in memory until Convert to native).
    ReadOnly,
    /// The split divider was dragged here (fraction of the canvas width).
    Divider(f32),
    /// A model-assisted tool was used without a prediction for this image.
    NoPrediction,
}

/// Zoom limits, in screen points per image pixel.
const MIN_ZOOM: f32 = 0.02;
const MAX_ZOOM: f32 = 64.0;

/// The zooms a wheel notch steps through: round percentages, about 1.25-1.5x apart.
pub const ZOOM_STEPS: [f32; 25] = [
    0.02, 0.05, 0.1, 0.125, 0.167, 0.25, 0.333, 0.5, 0.667, 0.75, 1.0, 1.25, 1.5, 2.0, 2.5, 3.0,
    4.0, 5.0, 6.0, 8.0, 12.0, 16.0, 24.0, 32.0, 64.0,
];

/// Trackpad scrolling in points that makes one wheel notch.
const POINTS_PER_NOTCH: f32 = 50.0;

/// The next round zoom above (`up`) or below `zoom`: a fitted 142% goes to 150% or 125%.
pub fn step_zoom(zoom: f32, up: bool) -> f32 {
    // A zoom within 1% of a step counts as on it.
    let next = match up {
        true => ZOOM_STEPS.iter().find(|&&z| z > zoom * 1.01),
        false => ZOOM_STEPS.iter().rev().find(|&&z| z < zoom / 1.01),
    };
    next.copied().unwrap_or(zoom)
}

/// The model's prediction for the image on the canvas.
#[derive(Clone, Debug, PartialEq)]
pub struct PredictionLayer {
    pub ids: Mask,
    /// Winning-class probability per pixel, `round(p * 255)`.
    pub confidence: Vec<u8>,
}

/// Draws a texture of the image's size over the image (`shown`: its rectangle on screen), as the
/// layers above the overlay are drawn.
fn paint_layer(painter: &egui::Painter, texture: egui::TextureId, shown: Rect) {
    let uv = Rect::from_min_max(Pos2::ZERO, Pos2::new(1.0, 1.0));
    painter.image(texture, shown, uv, Color32::WHITE);
}

/// How the canvas reaches the screen.
enum Renderer {
    /// Our wgpu pipeline (`shaders/overlay.wgsl`).
    Gpu(GpuOverlay),
    /// CPU compositing into egui textures (OpenGL windows).
    Cpu(CpuOverlay),
}

pub struct Canvas {
    /// The photo (the CPU path composites from it; the GPU path uploads it once).
    image: Option<RgbImage>,
    pub document: Option<MaskDocument>,
    /// What no edit may overwrite; every document shown gets them.
    locks: Locks,
    prediction: Option<PredictionLayer>,
    aux: Option<aux_layer::AuxLayer>,
    renderer: Renderer,
    lut: Box<Lut>,
    size: [u32; 2],
    /// Screen points per image pixel.
    zoom: f32,
    /// Wheel movement not yet a whole notch (trackpads), in notches.
    scroll_pending: f32,
    /// Image origin relative to the canvas' top-left corner, in points.
    offset: Vec2,
    fit_pending: bool,
    /// The canvas rectangle the view was last fitted to, while the user has not zoomed or
    /// panned since: a resized canvas (a panel opened or closed) is fitted again.
    fitted_to: Option<Rect>,
    /// Last point of the brush stroke in progress, in image pixels.
    stroke_last: Option<[f32; 2]>,
    /// Points of the polygon being drawn, in image pixels.
    pub polygon: Vec<[f32; 2]>,
    /// Image pixel under the pointer.
    pub cursor: Option<[u32; 2]>,
    /// Edits not yet composited (CPU path).
    dirty: Option<DirtyRect>,
    /// Outline setting of the last frame (an edit then also changes its neighbours).
    outline: bool,
    /// Pixels sent to the GPU by mask updates since the image was loaded (partial uploads
    /// included), to check that painting uploads only dirty rectangles.
    pub uploaded_pixels: u64,
    canvas_rect: Rect,
    /// The assists' state for this image (superpixels, Smart region clicks and candidate).
    smart: smart::SmartState,
}

impl Default for Canvas {
    fn default() -> Self {
        Self {
            image: None,
            document: None,
            locks: Locks::default(),
            prediction: None,
            aux: None,
            renderer: Renderer::Cpu(CpuOverlay::default()),
            lut: Box::new(blend::lut(&[])),
            size: [0, 0],
            zoom: 1.0,
            scroll_pending: 0.0,
            offset: Vec2::ZERO,
            fit_pending: true,
            fitted_to: None,
            stroke_last: None,
            polygon: Vec::new(),
            cursor: None,
            dirty: None,
            outline: false,
            uploaded_pixels: 0,
            canvas_rect: Rect::NOTHING,
            smart: smart::SmartState::default(),
        }
    }
}

impl Canvas {
    /// Draws with our wgpu pipeline from now on (it must be installed in the renderer's
    /// callback resources: [`super::compare::gpu::install`]).
    pub fn use_gpu(&mut self) {
        self.renderer = Renderer::Gpu(GpuOverlay::default());
    }

    /// Whether the wgpu pipeline draws the canvas (else the CPU compositor).
    pub fn uses_gpu(&self) -> bool {
        matches!(self.renderer, Renderer::Gpu(_))
    }

    /// Shows `image` with `document` (none: no mask yet, read-only datasets without labels).
    pub fn set_image(
        &mut self,
        ctx: &egui::Context,
        image: &RgbImage,
        document: Option<MaskDocument>,
        classes: &ClassTable,
    ) {
        let (w, h) = image.dimensions();
        self.size = [w, h];
        self.document = document;
        if let Some(doc) = self.document.as_mut() {
            doc.set_locks(self.locks.clone());
        }
        self.prediction = None;
        self.aux = None;
        self.stroke_last = None;
        self.polygon.clear();
        self.reset_smart();
        self.fit_pending = true;
        self.uploaded_pixels = 0;
        self.dirty = None;
        match &mut self.renderer {
            Renderer::Gpu(gpu) => {
                gpu.set_image(image, self.document.as_ref().map(MaskDocument::mask));
            }
            Renderer::Cpu(cpu) => cpu.set_image(ctx, [w, h]),
        }
        self.image = Some(image.clone());
        self.set_classes(classes);
    }

    /// Forgets the image (closing a dataset); keeps the renderer.
    pub fn clear(&mut self) {
        let renderer = std::mem::replace(&mut self.renderer, Renderer::Cpu(CpuOverlay::default()));
        *self = Self::default();
        self.renderer = match renderer {
            Renderer::Gpu(_) => Renderer::Gpu(GpuOverlay::default()),
            Renderer::Cpu(_) => Renderer::Cpu(CpuOverlay::default()),
        };
    }

    /// The photo on the canvas.
    pub fn image(&self) -> Option<&RgbImage> {
        self.image.as_ref()
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

    /// Rebuilds the colour table (after classes change).
    pub fn set_classes(&mut self, classes: &ClassTable) {
        let colours: Vec<[u8; 3]> = classes.iter().map(|c| c.color).collect();
        *self.lut = blend::lut(&colours);
        match &mut self.renderer {
            Renderer::Gpu(gpu) => gpu.set_lut(&self.lut),
            Renderer::Cpu(cpu) => cpu.invalidate(),
        }
    }

    /// Shows `ids` and `confidence` (for the image on the canvas) as the prediction layer.
    /// A prediction of another size (another image) is ignored.
    pub fn set_prediction(&mut self, ids: Mask, confidence: Vec<u8>) -> bool {
        if [ids.width, ids.height] != self.size || confidence.len() != ids.data.len() {
            return false;
        }
        match &mut self.renderer {
            Renderer::Gpu(gpu) => gpu.set_prediction(Some((&ids, &confidence))),
            Renderer::Cpu(cpu) => cpu.invalidate(),
        }
        self.prediction = Some(PredictionLayer { ids, confidence });
        self.forget_smart_prior();
        true
    }

    pub fn has_prediction(&self) -> bool {
        self.prediction.is_some()
    }

    pub fn prediction(&self) -> Option<&PredictionLayer> {
        self.prediction.as_ref()
    }

    /// Predicted class and confidence at a pixel.
    pub fn predicted_at(&self, x: u32, y: u32) -> Option<(u8, u8)> {
        let p = self.prediction.as_ref()?;
        (x < p.ids.width && y < p.ids.height).then(|| {
            let i = (y * p.ids.width + x) as usize;
            (p.ids.data[i], p.confidence[i])
        })
    }

    /// Sends the ground truth of `rect` on its way to the screen.
    fn upload(&mut self, rect: DirtyRect) {
        let Some(doc) = &self.document else {
            return;
        };
        match &mut self.renderer {
            Renderer::Gpu(gpu) => self.uploaded_pixels += gpu.update_truth(doc.mask(), rect),
            Renderer::Cpu(_) => {
                // In outline mode an edit also changes whether its neighbours are on a boundary.
                let rect = match self.outline {
                    true => DirtyRect::clipped(
                        rect.x as i64 - 1,
                        rect.y as i64 - 1,
                        rect.right() as i64 + 1,
                        rect.bottom() as i64 + 1,
                        self.size[0],
                        self.size[1],
                    )
                    .unwrap_or(rect),
                    false => rect,
                };
                self.dirty = DirtyRect::merge(self.dirty, Some(rect));
            }
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

    /// What edits may not overwrite, for the document shown and every later one.
    pub fn set_locks(&mut self, locks: Locks) {
        if let Some(doc) = self.document.as_mut()
            && doc.locks() != &locks
        {
            doc.set_locks(locks.clone());
        }
        self.locks = locks;
    }

    pub fn locks(&self) -> &Locks {
        &self.locks
    }

    /// Paints `region` (the image's size, nonzero inside) with `value` as one undo step: how
    /// an assist's region is committed. Returns whether anything changed (the locks may
    /// refuse all of it).
    pub fn paint_region(&mut self, region: &Mask, value: u8) -> bool {
        if [region.width, region.height] != self.size {
            return false;
        }
        let changed = self
            .document
            .as_mut()
            .and_then(|doc| doc.paint_region(region, value));
        self.after_edit(changed)
    }

    /// Makes the mask a copy of `source` (same size) as one undo step; whether anything
    /// changed.
    pub fn copy_mask_from(&mut self, source: &Mask) -> bool {
        if [source.width, source.height] != self.size {
            return false;
        }
        let changed = self.document.as_mut().and_then(|doc| doc.copy_from(source));
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

    /// Copies the prediction into the mask within `scope` where its confidence reaches
    /// `threshold`: one undo step (or part of the open one, for the accept brush). `Err` when
    /// there is no mask or no prediction; `Ok(false)` when nothing changed.
    pub fn accept(&mut self, scope: AcceptScope, threshold: u8) -> Result<bool, CanvasEvent> {
        let (Some(doc), Some(prediction)) = (self.document.as_mut(), self.prediction.as_ref())
        else {
            return Err(CanvasEvent::NoPrediction);
        };
        let bounds = accept::accept_bounds(doc.mask(), &scope);
        let Some(bounds) = bounds else {
            return Ok(false);
        };
        let suggestion = Suggestion {
            ids: &prediction.ids,
            confidence: &prediction.confidence,
            threshold,
        };
        let changed = doc.edit(Some(bounds), |mask| {
            accept::accept(mask, suggestion, &scope)
        });
        Ok(self.after_edit(changed))
    }

    /// Accepts the prediction inside the polygon being drawn.
    pub fn accept_polygon(&mut self, threshold: u8) -> Result<bool, CanvasEvent> {
        let points = std::mem::take(&mut self.polygon);
        self.accept(AcceptScope::Polygon(points), threshold)
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
        self.fitted_to = Some(rect);
    }

    fn zoom_around(&mut self, screen: Pos2, zoom: f32) {
        self.fitted_to = None;
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

    /// Where the whole image lies on the screen at the current zoom and pan.
    fn image_screen_rect(&self) -> Rect {
        let size = Vec2::new(self.size[0] as f32, self.size[1] as f32) * self.zoom;
        Rect::from_min_size(self.image_to_screen([0.0, 0.0]), size)
    }

    /// Where the split divider is drawn for `fraction` of the canvas width.
    pub fn divider_screen_x(&self, fraction: f32) -> f32 {
        self.canvas_rect.min.x + fraction.clamp(0.0, 1.0) * self.canvas_rect.width()
    }

    fn pixel_at(&self, p: [f32; 2]) -> Option<[u32; 2]> {
        let inside =
            p[0] >= 0.0 && p[1] >= 0.0 && p[0] < self.size[0] as f32 && p[1] < self.size[1] as f32;
        inside.then(|| [p[0] as u32, p[1] as u32])
    }

    /// What is really shown: views that need a prediction show the ground truth until one
    /// arrives.
    pub fn effective_view(&self, view: ViewMode) -> ViewMode {
        match view.needs_prediction() && self.prediction.is_none() {
            true => ViewMode::Truth,
            false => view,
        }
    }

    pub fn ui(&mut self, ui: &mut egui::Ui, settings: &CanvasSettings) -> Vec<CanvasEvent> {
        let mut events = Vec::new();
        let (rect, _) = ui.allocate_exact_size(ui.available_size(), Sense::hover());
        // The panels' resize handles reach a few points into the canvas; the canvas, laid out
        // last, would win a press there and paint instead of resizing. It leaves them that band.
        let grab = ui.style().interaction.resize_grab_radius_side + 1.0;
        let response = ui.interact(
            rect.shrink(grab),
            ui.make_persistent_id("canvas"),
            Sense::click_and_drag(),
        );
        self.canvas_rect = rect;
        if self.outline != settings.outline {
            self.outline = settings.outline;
            if let Renderer::Cpu(cpu) = &mut self.renderer {
                cpu.invalidate();
            }
        }
        if self.image.is_none() {
            ui.painter().text(
                rect.center(),
                egui::Align2::CENTER_CENTER,
                "Select an image in the dataset panel",
                egui::FontId::proportional(16.0),
                ui.visuals().weak_text_color(),
            );
            return events;
        }
        if self.fit_pending || self.fitted_to.is_some_and(|r| r != rect) {
            self.apply_fit(rect);
            self.fit_pending = false;
        }

        // Zoom with the wheel (or pinch) around the cursor; pan with the middle button or
        // space + drag.
        let pointer = response.hover_pos();
        if let Some(pos) = pointer {
            // A wheel notch (a line) steps to the next round zoom; a trackpad's point deltas add
            // up to a notch first. Pinching stays continuous.
            let (notches, pinch) = ui.input(|i| {
                let notches: f32 = i
                    .raw
                    .events
                    .iter()
                    .map(|e| match e {
                        egui::Event::MouseWheel { unit, delta, .. } => match unit {
                            egui::MouseWheelUnit::Point => delta.y / POINTS_PER_NOTCH,
                            egui::MouseWheelUnit::Line | egui::MouseWheelUnit::Page => delta.y,
                        },
                        _ => 0.0,
                    })
                    .sum();
                (notches, i.zoom_delta())
            });
            self.scroll_pending += notches;
            while self.scroll_pending.abs() >= 1.0 {
                let up = self.scroll_pending > 0.0;
                self.scroll_pending -= self.scroll_pending.signum();
                self.zoom_around(pos, step_zoom(self.zoom, up));
            }
            if (pinch - 1.0).abs() > 1e-4 {
                self.zoom_around(pos, self.zoom * pinch);
            }
        }
        let space = ui.input(|i| i.key_down(egui::Key::Space));
        let panning = response.dragged_by(egui::PointerButton::Middle)
            || (space && response.dragged_by(egui::PointerButton::Primary));
        if panning {
            self.offset += response.drag_delta();
            self.fitted_to = None;
        }

        // The split divider: a handle on top of the canvas, dragged left and right.
        let view = self.effective_view(settings.view);
        let mut on_divider = false;
        if view == ViewMode::Split {
            let x = self.divider_screen_x(settings.divider);
            let handle = Rect::from_min_max(
                Pos2::new(x - 6.0, rect.min.y),
                Pos2::new(x + 6.0, rect.max.y),
            );
            let divider = ui
                .interact(
                    handle,
                    ui.make_persistent_id("split-divider"),
                    Sense::drag(),
                )
                .on_hover_cursor(egui::CursorIcon::ResizeHorizontal);
            if divider.dragged()
                && let Some(p) = divider.interact_pointer_pos()
            {
                events.push(CanvasEvent::Divider(
                    ((p.x - rect.min.x) / rect.width()).clamp(0.0, 1.0),
                ));
            }
            on_divider = divider.hovered() || divider.dragged();
        }

        // The assists' superpixels, computed in the background once a tool needs them.
        if settings.tool == Tool::SmartRegion {
            let size = self.smart_size();
            if self.prepare(ui.ctx(), size) {
                self.update_candidate(settings.smart_target());
            }
        }
        if settings.tool == Tool::SuperpixelBrush || settings.show_superpixels {
            self.prepare(ui.ctx(), settings.superpixel_size);
        }

        self.cursor = pointer.and_then(|p| self.pixel_at(self.screen_to_image(p)));
        // Space held means the hand: no tool acts, not even on the press before a drag starts
        // (that press used to leave a dab), and a stroke under way ends.
        if space {
            self.end_stroke();
        } else if !panning && !on_divider {
            self.handle_tools(ui, &response, settings, &mut events);
        }

        // Draw: image and overlay, then brush outline, polygon in progress, divider.
        let painter = ui.painter_at(rect);
        painter.rect_filled(rect, 0.0, ui.visuals().extreme_bg_color);
        let divider_x = self.divider_screen_x(settings.divider);
        let blend = BlendParams {
            mode: view,
            opacity: settings.opacity.clamp(0.0, 1.0),
            class: settings.diff_class,
            divider: self.screen_to_image(Pos2::new(divider_x, rect.min.y))[0],
            outline: settings.outline,
        };
        self.draw_layers(&painter, rect, blend);
        if settings.show_aux {
            self.draw_aux(ui.ctx(), &painter);
        }
        if settings.show_superpixels {
            self.draw_superpixel_edges(ui.ctx(), &painter, settings.superpixel_size);
        }
        if settings.tool == Tool::SmartRegion {
            self.draw_smart(ui.ctx(), &painter, settings.class_colour);
        }
        let preparing = match settings.tool {
            Tool::SmartRegion => !self.smart_ready(),
            Tool::SuperpixelBrush => !self.superpixels_ready(settings.superpixel_size),
            _ => false,
        };
        let message = match (&self.smart.problem, preparing) {
            (Some(problem), _) if settings.tool == Tool::SmartRegion => Some(problem.clone()),
            (_, true) => Some("Computing superpixels…".to_string()),
            _ => None,
        };
        if let Some(message) = message {
            painter.text(
                rect.center_bottom() - Vec2::new(0.0, 8.0),
                egui::Align2::CENTER_BOTTOM,
                message,
                egui::FontId::proportional(14.0),
                ui.visuals().warn_fg_color,
            );
        }
        if let Some(pos) = pointer
            && settings.tool.is_brush()
            && !on_divider
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
        if view == ViewMode::Split {
            painter.vline(divider_x, rect.y_range(), Stroke::new(2.0, Color32::WHITE));
            painter.circle_filled(Pos2::new(divider_x, rect.center().y), 6.0, Color32::WHITE);
            let label = |x: f32, align: egui::Align2, text: &str| {
                painter.text(
                    Pos2::new(x, rect.min.y + 6.0),
                    align,
                    text,
                    egui::FontId::proportional(13.0),
                    Color32::WHITE,
                );
            };
            label(divider_x - 8.0, egui::Align2::RIGHT_TOP, "ground truth");
            label(divider_x + 8.0, egui::Align2::LEFT_TOP, "prediction");
        }
        if settings.view.needs_prediction() && self.prediction.is_none() {
            painter.text(
                rect.center_top() + Vec2::new(0.0, 8.0),
                egui::Align2::CENTER_TOP,
                "No prediction for this image yet: train, or open a run (Runs > Open)",
                egui::FontId::proportional(14.0),
                ui.visuals().warn_fg_color,
            );
        }
        events
    }

    /// The photo and its overlay, by whichever renderer draws this canvas.
    fn draw_layers(&mut self, painter: &egui::Painter, rect: Rect, blend: BlendParams) {
        let origin = self.image_to_screen([0.0, 0.0]);
        let zoom = self.zoom;
        match &mut self.renderer {
            Renderer::Gpu(gpu) => {
                painter.add(gpu.callback(Frame {
                    canvas: rect,
                    origin,
                    zoom,
                    blend,
                }));
            }
            Renderer::Cpu(cpu) => {
                let Some(image) = &self.image else { return };
                let layers = Layers {
                    width: self.size[0],
                    height: self.size[1],
                    image: image.as_raw(),
                    truth: self.document.as_ref().map(|d| d.mask().data.as_slice()),
                    prediction: self.prediction.as_ref().map(|p| p.ids.data.as_slice()),
                    confidence: self.prediction.as_ref().map(|p| p.confidence.as_slice()),
                };
                self.uploaded_pixels += cpu.refresh(&layers, &blend, &self.lut, self.dirty.take());
                cpu.paint(painter, |p| origin + Vec2::new(p[0], p[1]) * zoom);
            }
        }
    }
}
