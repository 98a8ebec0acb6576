//! The canvas' side of the assists: the image prepared in the background (superpixels and
//! their graph), the Smart region tool's clicks and candidate, the superpixel brush, and the
//! superpixel edges drawn on demand.

use egui::{Color32, ColorImage, TextureHandle, TextureOptions};

use super::Canvas;
use crate::core::assist::region::region_size_for;
use crate::core::assist::superpixels::SlicParams;
use crate::core::assist::worker::{PrepareJob, Taken};
use crate::core::assist::{ClassPrior, Click, Params, Prepared, Session, prior};
use crate::core::paint::DirtyRect;

/// What Smart region is labelling: the class (the model's prior is for it) and whether the
/// region's holes are filled ([`crate::core::assist::fills_holes`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SmartTarget {
    pub class: u8,
    pub fill_holes: bool,
}

/// What the assists hold for the image on the canvas.
#[derive(Default)]
pub(super) struct SmartState {
    /// Prepared images by superpixel size (the Smart region's own, the brush's slider), at most
    /// two, for the image on the canvas only.
    prepared: Vec<Prepared>,
    jobs: Vec<PrepareJob>,
    /// Smart region: the clicks so far, in order.
    pub clicks: Vec<Click>,
    /// Smart region: the region after each click (a new click costs one step), for `params`.
    session: Session,
    params: Params,
    /// Smart region: the model's prior for a class, from the prediction shown; dropped when
    /// either changes.
    prior: Option<(u8, ClassPrior)>,
    /// Smart region: the region the clicks ask for (1 inside), and its overlay texture.
    pub candidate: Option<crate::core::mask::Mask>,
    candidate_texture: Option<TextureHandle>,
    /// Superpixel edges, for the size they were drawn at.
    edges_texture: Option<(u32, TextureHandle)>,
    /// Why the last candidate could not be made (shown on the canvas).
    pub problem: Option<String>,
}

impl SmartState {
    fn get(&self, region_size: u32) -> Option<&Prepared> {
        self.prepared
            .iter()
            .find(|p| p.params().region_size == region_size)
    }
}

impl Canvas {
    /// The Smart region tool's superpixel size for this image.
    pub(super) fn smart_size(&self) -> u32 {
        region_size_for(self.size[0], self.size[1])
    }

    /// Makes sure the image is prepared (or being prepared) at `region_size`, and takes
    /// results that have landed. Returns whether a new result arrived.
    pub(super) fn prepare(&mut self, ctx: &egui::Context, region_size: u32) -> bool {
        let mut arrived = false;
        let smart = &mut self.smart;
        smart.jobs.retain(|job| match job.try_take() {
            Taken::Ready(prepared) => {
                smart.prepared.push(*prepared);
                arrived = true;
                false
            }
            Taken::Pending => true,
            Taken::Lost => false,
        });
        let busy = smart
            .jobs
            .iter()
            .any(|j| j.params().region_size == region_size);
        if smart.get(region_size).is_none()
            && !busy
            && let Some(image) = &self.image
        {
            let params = SlicParams {
                region_size,
                ..SlicParams::default()
            };
            let ctx = ctx.clone();
            if let Ok(job) = PrepareJob::spawn(image.clone(), params, move || ctx.request_repaint())
            {
                self.smart.jobs.push(job);
            }
        }
        // Keep the two most recent sizes (the Smart region's and the brush's).
        if self.smart.prepared.len() > 2 {
            let keep = self.smart_size();
            let index = self
                .smart
                .prepared
                .iter()
                .position(|p| {
                    p.params().region_size != keep && p.params().region_size != region_size
                })
                .unwrap_or(0);
            self.smart.prepared.remove(index);
        }
        arrived
    }

    /// Forgets everything prepared for the previous image.
    pub(super) fn reset_smart(&mut self) {
        self.smart = SmartState::default();
    }

    /// Forgets the model's prior (a new prediction arrived); the clicks stay.
    pub(super) fn forget_smart_prior(&mut self) {
        self.smart.prior = None;
        self.smart.session = Session::new();
    }

    /// Whether the image is prepared for the Smart region tool.
    pub fn smart_ready(&self) -> bool {
        self.smart.get(self.smart_size()).is_some()
    }

    /// Whether the superpixel brush's superpixels of `region_size` are ready.
    pub fn superpixels_ready(&self, region_size: u32) -> bool {
        self.smart.get(region_size).is_some()
    }

    /// The Smart region's clicks so far.
    pub fn smart_clicks(&self) -> &[Click] {
        &self.smart.clicks
    }

    /// The Smart region's candidate (1 inside), once computed.
    pub fn smart_candidate(&self) -> Option<&crate::core::mask::Mask> {
        self.smart.candidate.as_ref()
    }

    /// Adds a Smart region click and recomputes the candidate.
    pub fn smart_click(&mut self, click: Click, target: SmartTarget) {
        self.smart.clicks.push(click);
        self.update_candidate(target);
    }

    /// Removes the last click (Backspace).
    pub fn smart_undo_click(&mut self, target: SmartTarget) {
        if self.smart.clicks.pop().is_some() {
            self.update_candidate(target);
        }
    }

    /// Drops the clicks and the candidate (Esc).
    pub fn smart_discard(&mut self) {
        self.smart.clicks.clear();
        self.smart.session = Session::new();
        self.smart.candidate = None;
        self.smart.candidate_texture = None;
        self.smart.problem = None;
    }

    pub(super) fn update_candidate(&mut self, SmartTarget { class, fill_holes }: SmartTarget) {
        self.smart.candidate = None;
        self.smart.candidate_texture = None;
        self.smart.problem = None;
        if self.smart.clicks.is_empty() {
            return;
        }
        let size = self.smart_size();
        let SmartState {
            prepared,
            clicks,
            session,
            prior: cached,
            candidate,
            problem,
            params,
            ..
        } = &mut self.smart;
        if params.fill_holes != fill_holes {
            *session = Session::new();
            params.fill_holes = fill_holes;
        }
        let Some(prepared) = prepared.iter().find(|p| p.params().region_size == size) else {
            // Computed when the preparation lands.
            return;
        };
        // The prior for this class, from the prediction shown, made once.
        let wanted = self.prediction.as_ref().map(|p| (class, p));
        if cached.as_ref().map(|(c, _)| *c) != wanted.map(|(c, _)| c) {
            *session = Session::new();
            *cached = match wanted {
                None => None,
                Some((class, p)) => {
                    let values = prior::class_prior(&p.ids, &p.confidence, class);
                    match ClassPrior::new(prepared, values) {
                        Ok(made) => Some((class, made)),
                        Err(e) => {
                            *problem = Some(e.to_string());
                            return;
                        }
                    }
                }
            };
        }
        let prior = cached.as_ref().map(|(_, p)| p);
        match session.region(prepared, clicks, prior, params) {
            Ok(region) => *candidate = Some(region),
            Err(e) => *problem = Some(e.to_string()),
        }
    }

    /// Writes the candidate into the mask as `class`, one undo step; the clicks are cleared.
    pub fn smart_commit(&mut self, class: u8) -> bool {
        let Some(region) = self.smart.candidate.take() else {
            return false;
        };
        self.smart_discard();
        self.paint_region(&region, class)
    }

    /// One superpixel-brush segment: every superpixel of `region_size` it touches, whole.
    pub(super) fn superpixel_stroke(
        &mut self,
        a: [f32; 2],
        b: [f32; 2],
        radius: f32,
        region_size: u32,
        value: u8,
    ) -> Option<DirtyRect> {
        let prepared = self.smart.get(region_size)?;
        let touched = prepared.touched(a, b, radius)?;
        let doc = self.document.as_mut()?;
        doc.edit(Some(touched.bounds), |mask| {
            prepared.paint_touched(mask, &touched, value)
        })
    }

    /// Draws the candidate (a light fill and its outline, in `colour`) and the clicks.
    pub(super) fn draw_smart(
        &mut self,
        ctx: &egui::Context,
        painter: &egui::Painter,
        colour: [u8; 3],
    ) {
        let shown = self.image_screen_rect();
        if let Some(region) = &self.smart.candidate {
            let (w, h) = (region.width as usize, region.height as usize);
            if w.max(h) <= ctx.input(|i| i.max_texture_side) {
                let texture = self.smart.candidate_texture.get_or_insert_with(|| {
                    let [r, g, b] = colour;
                    let fill = Color32::from_rgba_unmultiplied(r, g, b, 90);
                    let line = Color32::from_rgb(255, 255, 255);
                    let inside = |x: usize, y: usize| region.data[y * w + x] == 1;
                    let pixels = (0..w * h)
                        .map(|i| {
                            let (x, y) = (i % w, i / w);
                            if !inside(x, y) {
                                return Color32::TRANSPARENT;
                            }
                            let edge = x == 0
                                || y == 0
                                || x + 1 == w
                                || y + 1 == h
                                || !inside(x - 1, y)
                                || !inside(x + 1, y)
                                || !inside(x, y - 1)
                                || !inside(x, y + 1);
                            if edge { line } else { fill }
                        })
                        .collect();
                    let image = ColorImage {
                        size: [w, h],
                        source_size: egui::vec2(w as f32, h as f32),
                        pixels,
                    };
                    ctx.load_texture("smart-candidate", image, TextureOptions::NEAREST)
                });
                super::paint_layer(painter, texture.id(), shown);
            }
        }
        for c in &self.smart.clicks {
            let at = self.image_to_screen([c.x as f32 + 0.5, c.y as f32 + 0.5]);
            let colour = match c.positive {
                true => Color32::from_rgb(40, 220, 80),
                false => Color32::from_rgb(235, 50, 50),
            };
            painter.circle_filled(at, 5.0, colour);
            painter.circle_stroke(at, 5.0, egui::Stroke::new(1.5, Color32::WHITE));
        }
    }

    /// Draws the edges of the superpixels of `region_size`, once they are computed.
    pub(super) fn draw_superpixel_edges(
        &mut self,
        ctx: &egui::Context,
        painter: &egui::Painter,
        region_size: u32,
    ) {
        let shown = self.image_screen_rect();
        if self
            .smart
            .edges_texture
            .as_ref()
            .is_some_and(|(s, _)| *s != region_size)
        {
            self.smart.edges_texture = None;
        }
        let SmartState {
            prepared,
            edges_texture,
            ..
        } = &mut self.smart;
        let Some(prepared) = prepared
            .iter()
            .find(|p| p.params().region_size == region_size)
        else {
            return;
        };
        let sp = prepared.superpixels();
        let (w, h) = (sp.width as usize, sp.height as usize);
        if w.max(h) > ctx.input(|i| i.max_texture_side) {
            return;
        }
        let (_, texture) = edges_texture.get_or_insert_with(|| {
            let line = Color32::from_rgba_unmultiplied(255, 255, 255, 150);
            let pixels = (0..w * h)
                .map(|i| {
                    let (x, y) = (i % w, i / w);
                    let l = sp.labels[i];
                    let edge = (x + 1 < w && sp.labels[i + 1] != l)
                        || (y + 1 < h && sp.labels[i + w] != l);
                    if edge { line } else { Color32::TRANSPARENT }
                })
                .collect();
            let image = ColorImage {
                size: [w, h],
                source_size: egui::vec2(w as f32, h as f32),
                pixels,
            };
            (
                region_size,
                ctx.load_texture("superpixel-edges", image, TextureOptions::NEAREST),
            )
        });
        super::paint_layer(painter, texture.id(), shown);
    }
}
