//! The left panel: the dataset's images with split and label state, a filter, a search, and
//! an order by the model's uncertainty (active learning).

use std::collections::HashMap;

use crate::studio::app::Command;
use crate::studio::session::Session;
use crate::studio::thumbnails::{THUMB_SIZE, Thumbnails};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Filter {
    #[default]
    All,
    Labelled,
    Unlabelled,
}

/// The order of the list.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Order {
    /// As the dataset lists them.
    #[default]
    Name,
    /// Most uncertain first (the model's mean predictive entropy, from the Errors panel's
    /// analysis); images without a value follow in name order.
    Uncertainty,
}

#[derive(Default)]
pub struct DatasetPanel {
    pub filter: Filter,
    pub search: String,
    pub order: Order,
    /// Mean predictive entropy by image name, from the last analysis.
    pub uncertainty: HashMap<String, f64>,
    pub thumbnails: Thumbnails,
    /// Scroll the list to this entry next frame (keyboard navigation moved to it).
    pub reveal: Option<usize>,
}

impl DatasetPanel {
    /// Indices of the entries the filter and search let through, in order. `current` (the
    /// image on the canvas) always stays: labelling it under the Unlabelled filter must not
    /// take it out of the list until the user moves on.
    pub fn visible(&self, session: &Session, current: Option<usize>) -> Vec<usize> {
        let needle = self.search.trim().to_lowercase();
        let mut list: Vec<usize> = session
            .entries
            .iter()
            .enumerate()
            .filter(|(i, e)| {
                let passes = match self.filter {
                    Filter::All => true,
                    Filter::Labelled => e.labelled,
                    Filter::Unlabelled => !e.labelled,
                };
                let found = needle.is_empty() || e.name.to_lowercase().contains(&needle);
                Some(*i) == current || (passes && found)
            })
            .map(|(i, _)| i)
            .collect();
        if self.order == Order::Uncertainty {
            // Stable: equal or unknown values keep the dataset's order.
            let value = |i: &usize| self.uncertainty.get(&session.entries[*i].name).copied();
            list.sort_by(|a, b| match (value(a), value(b)) {
                (Some(x), Some(y)) => y.total_cmp(&x),
                (Some(_), None) => std::cmp::Ordering::Less,
                (None, Some(_)) => std::cmp::Ordering::Greater,
                (None, None) => std::cmp::Ordering::Equal,
            });
        }
        list
    }

    pub fn ui(
        &mut self,
        ui: &mut egui::Ui,
        session: Option<&Session>,
        selected: Option<usize>,
        commands: &mut Vec<Command>,
    ) {
        let Some(session) = session else {
            ui.label("No dataset open.");
            if ui.button("Open dataset...").clicked() {
                commands.push(Command::PickDataset);
            }
            return;
        };
        ui.strong(session.root.file_name().map_or_else(
            || session.root.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        ));
        let labelled = session.entries.iter().filter(|e| e.labelled).count();
        ui.label(format!(
            "{} layout - {} images - {} labelled",
            session.format,
            session.entries.len(),
            labelled
        ));
        if !session.editable() {
            ui.colored_label(
                ui.visuals().warn_fg_color,
                "View only: this layout is never written to; strokes stay in memory until Convert to native copies the dataset with them.",
            );
            if ui.button("Convert to native to label...").clicked() {
                commands.push(Command::ConvertToNative);
            }
        }
        ui.horizontal(|ui| {
            ui.selectable_value(&mut self.filter, Filter::All, "All");
            ui.selectable_value(&mut self.filter, Filter::Labelled, "Labelled");
            ui.selectable_value(&mut self.filter, Filter::Unlabelled, "Unlabelled");
        });
        ui.add(egui::TextEdit::singleline(&mut self.search).hint_text("Search names"));
        ui.horizontal(|ui| {
            ui.label("Order:");
            ui.selectable_value(&mut self.order, Order::Name, "name");
            ui.add_enabled_ui(!self.uncertainty.is_empty(), |ui| {
                ui.selectable_value(&mut self.order, Order::Uncertainty, "uncertainty")
                    .on_disabled_hover_text("after an analysis in the Errors panel");
            });
        });
        ui.separator();
        let visible = self.visible(session, selected);
        let [tw, th] = THUMB_SIZE.map(|v| v as f32);
        let row_height = th + ui.spacing().item_spacing.y;
        // Only the rows on screen are laid out (and decoded): a 10,000-image folder scrolls like
        // a short one.
        let mut area = egui::ScrollArea::vertical().auto_shrink(false);
        // Only rows on screen are laid out, so a row cannot scroll itself into view: the offset
        // that centres it is set instead.
        if let Some(target) = self.reveal.take()
            && let Some(row) = visible.iter().position(|&i| i == target)
        {
            let top = row as f32 * row_height - (ui.available_height() - row_height) / 2.0;
            area = area.vertical_scroll_offset(top.max(0.0));
        }
        area.show_rows(ui, row_height, visible.len(), |ui, rows| {
            for &index in &visible[rows] {
                let entry = &session.entries[index];
                let thumb = self.thumbnails.get(
                    index,
                    &entry.image,
                    entry.label.as_deref(),
                    &session.encoding,
                );
                let labelled = match (thumb.and_then(|t| t.labelled), entry.labelled) {
                    (Some(f), _) => format!("{:.0}% labelled", f * 100.0),
                    (None, true) => "labelled".to_string(),
                    (None, false) => "unlabelled".to_string(),
                };
                let state = match self.uncertainty.get(&entry.name) {
                    Some(h) => format!("{}, {labelled}, uncertainty {h:.2}", entry.split),
                    None => format!("{}, {labelled}", entry.split),
                };
                let texture = thumb.and_then(|t| t.texture.as_ref()).map(|t| t.id());
                let row = Row {
                    name: &entry.name,
                    state: &state,
                    texture,
                    thumb: egui::vec2(tw, th),
                    selected: selected == Some(index),
                };
                if row.ui(ui).clicked() {
                    commands.push(Command::Select(index));
                }
            }
        });
    }
}

/// One image in the list: thumbnail, name, state. As wide as the panel, whatever the text: the
/// name and state are cut with an ellipsis (the whole text on hover) instead of widening the
/// panel into the canvas.
struct Row<'a> {
    name: &'a str,
    state: &'a str,
    texture: Option<egui::TextureId>,
    thumb: egui::Vec2,
    selected: bool,
}

impl Row<'_> {
    fn ui(self, ui: &mut egui::Ui) -> egui::Response {
        let size = egui::vec2(ui.available_width(), self.thumb.y);
        let (rect, response) = ui.allocate_exact_size(size, egui::Sense::click());
        let text = format!("{}\n{}", self.name, self.state);
        response.widget_info(|| {
            egui::WidgetInfo::selected(egui::Role::Button, ui.is_enabled(), self.selected, &text)
        });
        if !ui.is_rect_visible(rect) {
            return response;
        }
        let visuals = ui.style().interact_selectable(&response, self.selected);
        let painter = ui.painter_at(rect);
        if self.selected || response.hovered() {
            painter.rect(
                rect,
                visuals.corner_radius,
                visuals.weak_bg_fill,
                visuals.bg_stroke,
                egui::StrokeKind::Inside,
            );
        }
        let thumb = egui::Rect::from_min_size(rect.min, self.thumb);
        match self.texture {
            Some(id) => {
                egui::Image::new(egui::load::SizedTexture::new(id, self.thumb)).paint_at(ui, thumb);
            }
            None => {
                painter.rect_filled(thumb, 2.0, ui.visuals().faint_bg_color);
            }
        }
        let gap = ui.spacing().item_spacing.x;
        let left = thumb.max.x + gap;
        let width = (rect.max.x - left - gap).max(0.0);
        let line = |text: &str, style: egui::TextStyle| {
            egui::WidgetText::from(text).into_galley(
                ui,
                Some(egui::TextWrapMode::Truncate),
                width,
                style,
            )
        };
        let name = line(self.name, egui::TextStyle::Body);
        let state = line(self.state, egui::TextStyle::Small);
        let elided = name.elided || state.elided;
        let height = name.size().y + state.size().y;
        let top = rect.center().y - height / 2.0;
        let colour = visuals.text_color();
        let name_height = name.size().y;
        painter.galley(egui::pos2(left, top), name, colour);
        painter.galley(egui::pos2(left, top + name_height), state, colour);
        match elided {
            true => response.on_hover_text(text),
            false => response,
        }
    }
}
