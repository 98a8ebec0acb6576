//! The Errors panel: where the current run is wrong. A table of images (worst first, sortable
//! by mean IoU, one class's IoU or wrong pixels; a click opens the image in the difference
//! view), per-class IoU bars and the confusion matrix of the same images, and the unlabelled
//! images ranked by the model's uncertainty.
//!
//! The numbers come from the core's model worker, in the background; results are cached per
//! run (and checkpoint) and per label revision, so coming back to the panel costs nothing until
//! a mask is saved or the run trains further.

use std::path::PathBuf;
use std::sync::Arc;

use egui::{Color32, Rect, Sense, Vec2};

use crate::core::analysis::SortKey;
use crate::core::analysis::worker::{Analysis, Scope};
use crate::studio::app::Command;

/// What an analysis was computed for.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct AnalysisKey {
    pub run: PathBuf,
    /// The checkpoint's modification time, so a run that trained further is analysed again.
    pub checkpoint_stamp: u128,
    pub scope: Scope,
    /// The studio's label revision (bumped by every mask or class table it writes).
    pub labels: u64,
}

/// Results kept (a few runs and revisions back).
const CACHE: usize = 8;

/// The column of class bars and confusion, and the column of uncertain images.
const SIDE_WIDTH: f32 = 280.0;
const UNCERTAIN_WIDTH: f32 = 190.0;
/// The table with its five columns seen whole; it never gets less than the minimum (it
/// scrolls sideways then).
const WHOLE_TABLE_WIDTH: f32 = 340.0;
const MIN_TABLE_WIDTH: f32 = 200.0;
/// The class bars' name column; longer names are cut (whole on hover).
const CLASS_NAME_WIDTH: f32 = 96.0;

#[derive(Default)]
pub struct ErrorsPanel {
    pub scope: Scope,
    pub sort: SortKey,
    cache: Vec<(AnalysisKey, Arc<Analysis>)>,
    /// The analysis in flight: its tag, key and progress (done, total).
    pub running: Option<(u64, AnalysisKey, usize, usize)>,
    next_tag: u64,
    /// Why the last analysis failed.
    pub error: Option<String>,
}

impl ErrorsPanel {
    /// The cached result for `key`.
    pub fn result(&self, key: &AnalysisKey) -> Option<Arc<Analysis>> {
        self.cache
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, a)| a.clone())
    }

    /// The newest result for `run` whatever its revision (the uncertainty ranking stays
    /// useful while a new one is computed).
    pub fn latest_for(&self, run: &std::path::Path) -> Option<Arc<Analysis>> {
        self.cache
            .iter()
            .rev()
            .find(|(k, _)| k.run == run)
            .map(|(_, a)| a.clone())
    }

    /// Whether an analysis should start by itself for `key`: nothing cached for this run,
    /// checkpoint and scope (at any label revision), none in flight, no failure shown. After
    /// labels change, the last result stays on screen, marked, until Recompute.
    pub fn needs_auto(&self, key: &AnalysisKey) -> bool {
        let same_model = |k: &AnalysisKey| {
            k.run == key.run && k.checkpoint_stamp == key.checkpoint_stamp && k.scope == key.scope
        };
        !self.cache.iter().any(|(k, _)| same_model(k))
            && self
                .running
                .as_ref()
                .is_none_or(|(_, k, _, _)| !same_model(k))
            && self.error.is_none()
    }

    /// Registers a new analysis for `key`; returns its tag.
    pub fn start(&mut self, key: AnalysisKey) -> u64 {
        self.next_tag += 1;
        self.running = Some((self.next_tag, key, 0, 0));
        self.error = None;
        self.next_tag
    }

    pub fn progress(&mut self, tag: u64, done: usize, total: usize) {
        if let Some(running) = self.running.as_mut().filter(|r| r.0 == tag) {
            running.2 = done;
            running.3 = total;
        }
    }

    /// Files a finished analysis under the key it was started for.
    pub fn finished(&mut self, analysis: Analysis) -> Option<Arc<Analysis>> {
        let (tag, key, _, _) = self.running.take_if(|r| r.0 == analysis.tag)?;
        debug_assert_eq!(tag, analysis.tag);
        let analysis = Arc::new(analysis);
        self.cache.retain(|(k, _)| *k != key);
        self.cache.push((key, analysis.clone()));
        if self.cache.len() > CACHE {
            self.cache.remove(0);
        }
        Some(analysis)
    }

    pub fn failed(&mut self, tag: u64, error: String) {
        if self.running.as_ref().is_some_and(|r| r.0 == tag) {
            self.running = None;
            self.error = Some(error);
        }
    }

    /// Forgets everything (another dataset).
    pub fn reset(&mut self) {
        *self = Self {
            scope: self.scope,
            sort: self.sort,
            next_tag: self.next_tag,
            ..Self::default()
        };
    }

    /// The panel. `key` is the analysis wanted now (`None`: no model loaded), `model` a line
    /// about the model.
    pub fn ui(
        &mut self,
        ui: &mut egui::Ui,
        key: Option<&AnalysisKey>,
        model: &str,
        commands: &mut Vec<Command>,
    ) {
        ui.horizontal(|ui| {
            ui.strong("Errors");
            for scope in [Scope::Validation, Scope::AllLabelled] {
                if ui
                    .selectable_label(self.scope == scope, scope.label())
                    .clicked()
                {
                    self.scope = scope;
                    self.error = None;
                }
            }
            if ui
                .add_enabled(key.is_some(), egui::Button::new("Recompute"))
                .clicked()
            {
                commands.push(Command::Analyse { force: true });
            }
            ui.separator();
            // Last, in what is left: a long run name is cut (whole on hover), never the buttons.
            ui.add(egui::Label::new(model).truncate());
        });
        let Some(key) = key else {
            ui.label("No model: train one, or open a run (Runs > Open), or start with `roadseg studio DIR --model RUN`.");
            return;
        };
        if let Some((_, k, done, total)) = &self.running
            && k == key
        {
            let fraction = if *total > 0 {
                *done as f32 / *total as f32
            } else {
                0.0
            };
            ui.add(
                egui::ProgressBar::new(fraction).text(format!("analysing: {done}/{total} images")),
            );
        }
        if let Some(error) = &self.error {
            ui.colored_label(ui.visuals().error_fg_color, error);
        }
        let Some(analysis) = self.result(key).or_else(|| self.latest_for(&key.run)) else {
            return;
        };
        let stale = self.result(key).is_none();
        let running = self.running.as_ref().is_some_and(|(_, k, _, _)| k == key);
        ui.label(
            egui::RichText::new(format!(
                "{} images of the {}, {:.1} s{}{}",
                analysis.images.len(),
                analysis.scope.label(),
                analysis.elapsed.as_secs_f64(),
                if analysis.skipped.is_empty() {
                    String::new()
                } else {
                    format!(", {} unreadable file(s) left out", analysis.skipped.len())
                },
                match (stale, running) {
                    (false, _) => "",
                    (true, true) => " (older result: recomputing)",
                    (true, false) => " (labels or weights changed since: Recompute)",
                }
            ))
            .small(),
        );
        // Three columns: the table takes what the two fixed-width ones (their text wrapped)
        // leave, and scrolls inside itself, so nothing is cut at the panel's right edge; the
        // uncertain images and their button sit at the top, seen without scrolling.
        // Narrower than that, the uncertain images go on top of the middle column.
        let gaps = 6.0 * ui.spacing().item_spacing.x;
        let three = ui.available_width() >= WHOLE_TABLE_WIDTH + SIDE_WIDTH + UNCERTAIN_WIDTH + gaps;
        let table_width = match three {
            true => ui.available_width() - SIDE_WIDTH - UNCERTAIN_WIDTH - gaps,
            false => (ui.available_width() - SIDE_WIDTH - gaps / 2.0).max(MIN_TABLE_WIDTH),
        };
        ui.horizontal_top(|ui| {
            ui.vertical(|ui| {
                ui.set_width(table_width);
                self.table(ui, &analysis, commands);
            });
            ui.separator();
            ui.vertical(|ui| {
                ui.set_width(SIDE_WIDTH);
                if !three {
                    uncertainty(ui, &analysis, commands);
                    ui.add_space(6.0);
                }
                class_bars(ui, &analysis);
                ui.add_space(6.0);
                confusion_heat_map(ui, &analysis);
            });
            if three {
                ui.separator();
                ui.vertical(|ui| {
                    ui.set_width(UNCERTAIN_WIDTH);
                    uncertainty(ui, &analysis, commands);
                });
            }
        });
    }

    fn table(&mut self, ui: &mut egui::Ui, analysis: &Analysis, commands: &mut Vec<Command>) {
        let road = road_class(&analysis.classes);
        let road_name = analysis.classes.get(road).cloned().unwrap_or_default();
        let mut rows: Vec<_> = analysis.images.clone();
        crate::core::analysis::sort_scores(&mut rows, self.sort);
        ui.horizontal_wrapped(|ui| {
            ui.label("Sort (worst first):");
            ui.selectable_value(&mut self.sort, SortKey::MeanIou, "mean IoU");
            ui.selectable_value(
                &mut self.sort,
                SortKey::ClassIou(road),
                format!("{road_name} IoU"),
            );
            ui.selectable_value(&mut self.sort, SortKey::WrongPixels, "wrong pixels");
        });
        let show = |v: Option<f64>| v.map_or_else(|| "-".to_string(), |v| format!("{v:.3}"));
        egui::ScrollArea::both()
            .id_salt("errors-table")
            .max_height(ui.available_height().max(120.0))
            .show(ui, |ui| {
                egui::Grid::new("errors-grid")
                    .striped(true)
                    .num_columns(5)
                    .show(ui, |ui| {
                        ui.strong("image");
                        ui.strong("split");
                        ui.strong("mean IoU");
                        ui.strong(format!("{road_name} IoU"));
                        ui.strong("wrong px");
                        ui.end_row();
                        for row in &rows {
                            if ui
                                .button(&row.name)
                                .on_hover_text("open in the difference view")
                                .clicked()
                            {
                                commands.push(Command::OpenError(row.name.clone()));
                            }
                            ui.label(&row.split);
                            ui.label(show(row.mean_iou));
                            ui.label(show(row.iou.get(road).copied().flatten()));
                            ui.label(row.wrong_pixels.to_string());
                            ui.end_row();
                        }
                    });
            });
    }
}

/// The class the "road IoU" column shows: one named road, else class 0.
pub fn road_class(classes: &[String]) -> usize {
    classes
        .iter()
        .position(|c| c.eq_ignore_ascii_case("road"))
        .unwrap_or(0)
}

/// One horizontal bar per class: IoU over the analysed images.
fn class_bars(ui: &mut egui::Ui, analysis: &Analysis) {
    ui.strong("IoU per class");
    let iou = analysis.confusion.iou();
    let bar_width = SIDE_WIDTH - CLASS_NAME_WIDTH - 60.0;
    egui::Grid::new("errors-class-bars")
        .num_columns(3)
        .show(ui, |ui| {
            for (name, value) in analysis.classes.iter().zip(iou) {
                ui.allocate_ui_with_layout(
                    Vec2::new(CLASS_NAME_WIDTH, 12.0),
                    egui::Layout::left_to_right(egui::Align::Center),
                    |ui| {
                        ui.set_width(CLASS_NAME_WIDTH);
                        ui.add(egui::Label::new(name).truncate());
                    },
                );
                let (rect, response) =
                    ui.allocate_exact_size(Vec2::new(bar_width, 12.0), Sense::hover());
                let painter = ui.painter();
                painter.rect_filled(rect, 2.0, ui.visuals().faint_bg_color);
                if let Some(v) = value {
                    let filled = Rect::from_min_size(
                        rect.min,
                        Vec2::new(rect.width() * v as f32, rect.height()),
                    );
                    painter.rect_filled(filled, 2.0, ui.visuals().selection.bg_fill);
                }
                response.on_hover_text(match value {
                    Some(v) => format!("{name}: IoU {v:.4}"),
                    None => format!("{name}: in neither ground truth nor prediction"),
                });
                ui.label(value.map_or_else(|| "-".to_string(), |v| format!("{v:.3}")));
                ui.end_row();
            }
        });
}

/// Rows ground truth, columns prediction, each row normalised (the fraction of a true class
/// predicted as each class); hovering a cell shows its pixel count.
fn confusion_heat_map(ui: &mut egui::Ui, analysis: &Analysis) {
    ui.strong("Confusion (rows: truth, columns: prediction)");
    let n = analysis.confusion.num_classes;
    if n == 0 {
        return;
    }
    let cell = (180.0 / n as f32).clamp(8.0, 24.0);
    let (rect, response) = ui.allocate_exact_size(Vec2::splat(cell * n as f32), Sense::hover());
    let painter = ui.painter_at(rect);
    let base = ui.visuals().extreme_bg_color;
    let hot = Color32::from_rgb(255, 140, 20);
    for t in 0..n {
        let row_total: u64 = (0..n).map(|p| analysis.confusion.get(t, p)).sum();
        for p in 0..n {
            let count = analysis.confusion.get(t, p);
            let f = if row_total > 0 {
                count as f32 / row_total as f32
            } else {
                0.0
            };
            let colour = base.lerp_to_gamma(hot, f);
            let min = rect.min + Vec2::new(p as f32 * cell, t as f32 * cell);
            painter.rect_filled(
                Rect::from_min_size(min, Vec2::splat(cell - 1.0)),
                0.0,
                colour,
            );
        }
    }
    if let Some(pos) = response.hover_pos() {
        let p = ((pos.x - rect.min.x) / cell) as usize;
        let t = ((pos.y - rect.min.y) / cell) as usize;
        if t < n && p < n {
            let count = analysis.confusion.get(t, p);
            let row_total: u64 = (0..n).map(|q| analysis.confusion.get(t, q)).sum();
            let name = |i: usize| {
                analysis
                    .classes
                    .get(i)
                    .cloned()
                    .unwrap_or_else(|| format!("class {i}"))
            };
            let share = if row_total > 0 {
                100.0 * count as f64 / row_total as f64
            } else {
                0.0
            };
            response.on_hover_text_at_pointer(format!(
                "truth {} -> predicted {}: {count} px ({share:.1}% of {})",
                name(t),
                name(p),
                name(t)
            ));
        }
    }
}

/// Active learning: the unlabelled images the model is least sure about.
fn uncertainty(ui: &mut egui::Ui, analysis: &Analysis, commands: &mut Vec<Command>) {
    ui.strong("Most uncertain unlabelled images");
    if analysis.uncertain.is_empty() {
        ui.label("none: every image has a mask");
        return;
    }
    if ui.button("Label next most uncertain").clicked() {
        commands.push(Command::LabelNextUncertain);
    }
    for u in analysis.uncertain.iter().take(5) {
        ui.label(format!("{}  entropy {:.3}", u.name, u.mean_entropy));
    }
}
