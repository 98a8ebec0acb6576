//! The left panel: the dataset's images with split and label state, a filter and a search.

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

#[derive(Default)]
pub struct DatasetPanel {
    pub filter: Filter,
    pub search: String,
    pub thumbnails: Thumbnails,
}

impl DatasetPanel {
    /// Indices of the entries the filter and search let through, in order.
    pub fn visible(&self, session: &Session) -> Vec<usize> {
        let needle = self.search.trim().to_lowercase();
        session
            .entries
            .iter()
            .enumerate()
            .filter(|(_, e)| match self.filter {
                Filter::All => true,
                Filter::Labelled => e.labelled,
                Filter::Unlabelled => !e.labelled,
            })
            .filter(|(_, e)| needle.is_empty() || e.name.to_lowercase().contains(&needle))
            .map(|(i, _)| i)
            .collect()
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
                "View only: this layout is never written to.",
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
        ui.separator();
        let visible = self.visible(session);
        let [tw, th] = THUMB_SIZE.map(|v| v as f32);
        let row_height = th + ui.spacing().item_spacing.y;
        // Only the rows on screen are laid out (and decoded): a 10,000-image folder scrolls like
        // a short one.
        egui::ScrollArea::vertical().auto_shrink(false).show_rows(
            ui,
            row_height,
            visible.len(),
            |ui, rows| {
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
                    ui.horizontal(|ui| {
                        let size = egui::vec2(tw, th);
                        match thumb.and_then(|t| t.texture.as_ref()) {
                            Some(texture) => {
                                ui.add(egui::Image::new(egui::load::SizedTexture::new(
                                    texture.id(),
                                    size,
                                )));
                            }
                            None => {
                                let (rect, _) = ui.allocate_exact_size(size, egui::Sense::hover());
                                ui.painter()
                                    .rect_filled(rect, 2.0, ui.visuals().faint_bg_color);
                            }
                        }
                        let text = format!("{}\n{}, {labelled}", entry.name, entry.split);
                        let response = ui.selectable_label(selected == Some(index), text);
                        if response.clicked() {
                            commands.push(Command::Select(index));
                        }
                    });
                }
            },
        );
    }
}
