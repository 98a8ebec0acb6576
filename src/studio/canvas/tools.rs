//! What the pointer does on the canvas with each tool: paint, erase, fill, polygon points, pick
//! a class, accept the prediction under a brush or for a region, the magic wand.

use super::{Canvas, CanvasEvent, CanvasSettings, Tool};
use crate::core::assist::wand::wand;
use crate::core::dataset::IGNORE;
use crate::core::paint::accept::AcceptScope;

impl Canvas {
    /// Ends the brush stroke under way, if any (one stroke, one undo step).
    pub(super) fn end_stroke(&mut self) {
        if self.stroke_last.take().is_some()
            && let Some(doc) = self.document.as_mut()
        {
            doc.end_edit();
        }
    }

    pub(super) fn handle_tools(
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
        // A view-only dataset is painted in memory (Convert to native carries the strokes over);
        // the event says so.
        if wants_edit && !settings.editable {
            events.push(CanvasEvent::ReadOnly);
        }
        let model_tool = matches!(settings.tool, Tool::AcceptBrush | Tool::AcceptRegion);
        if wants_edit && model_tool && self.prediction.is_none() {
            events.push(CanvasEvent::NoPrediction);
            return;
        }
        match settings.tool {
            Tool::Brush | Tool::Eraser | Tool::AcceptBrush | Tool::SuperpixelBrush => {
                let down =
                    response.is_pointer_button_down_on() && ui.input(|i| i.pointer.primary_down());
                let clicked = response.clicked_by(egui::PointerButton::Primary);
                let segment = if down {
                    // One stroke = one undo step, however many segments it has.
                    let from = match self.stroke_last {
                        Some(last) => last,
                        None => {
                            let Some(doc) = self.document.as_mut() else {
                                return;
                            };
                            doc.begin_edit();
                            p
                        }
                    };
                    self.stroke_last = Some(p);
                    Some((from, p))
                } else if self.stroke_last.is_some() {
                    self.end_stroke();
                    None
                } else if clicked {
                    // Press and release within one frame: a single dab.
                    Some((p, p))
                } else {
                    None
                };
                let Some((a, b)) = segment else { return };
                let radius = settings.brush_radius;
                match settings.tool {
                    Tool::AcceptBrush => {
                        let _ = self.accept(
                            AcceptScope::Brush { a, b, radius },
                            settings.accept_threshold,
                        );
                    }
                    Tool::SuperpixelBrush => {
                        let changed = self.superpixel_stroke(
                            a,
                            b,
                            radius,
                            settings.superpixel_size,
                            settings.class,
                        );
                        self.after_edit(changed);
                    }
                    tool => {
                        let value = match tool {
                            Tool::Eraser => IGNORE,
                            _ => settings.class,
                        };
                        let changed = self
                            .document
                            .as_mut()
                            .and_then(|doc| doc.stroke(a, b, radius, value));
                        self.after_edit(changed);
                    }
                }
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
            Tool::AcceptRegion => {
                if response.clicked_by(egui::PointerButton::Primary)
                    && let Some([x, y]) = self.pixel_at(p)
                {
                    let _ = self.accept(AcceptScope::Component { x, y }, settings.accept_threshold);
                }
            }
            Tool::Wand => {
                if response.clicked_by(egui::PointerButton::Primary)
                    && let Some([x, y]) = self.pixel_at(p)
                    && let Some(image) = &self.image
                {
                    let region = wand(image, x, y, settings.wand_tolerance);
                    self.paint_region(&region, settings.class);
                }
            }
            Tool::Polygon => {
                if response.clicked_by(egui::PointerButton::Primary) {
                    self.polygon.push(p);
                }
            }
            Tool::SmartRegion => {
                let primary = response.clicked_by(egui::PointerButton::Primary);
                let secondary = response.clicked_by(egui::PointerButton::Secondary);
                if (primary || secondary)
                    && let Some([x, y]) = self.pixel_at(p)
                {
                    let alt = ui.input(|i| i.modifiers.alt);
                    let positive = primary && !alt;
                    self.smart_click(
                        crate::core::assist::Click { x, y, positive },
                        settings.smart_target(),
                    );
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
