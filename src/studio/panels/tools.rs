//! The right panel: tools, brush size, class palette with its locks, the view (ground truth,
//! prediction, difference, confidence, split) and model-assisted labelling.

use std::path::Path;

use crate::core::dataset::ClassTable;
use crate::core::model::segmenter::AuxTask;
use crate::core::paint::accept::AcceptScope;
use crate::studio::app::Command;
use crate::studio::canvas::{Tool, aux_colour};
use crate::studio::compare::blend::{ANY_CLASS, FALSE_NEGATIVE, FALSE_POSITIVE, HEAT, ViewMode};
use crate::studio::state::PersistedState;

/// The class list's lock toggle: a padlock, highlighted while locked and dim while not (the
/// open padlock, U+1F513, reads as a chain link at this size). Noto Emoji, egui's emoji font,
/// has it.
pub const LOCK: &str = "\u{1F512}";

/// The button under Undo/Redo that starts a mask from the previous image's.
pub const FROM_PREVIOUS: &str = "From previous image";

#[derive(Default)]
pub struct ToolsPanel {
    /// The class the brush, fill and polygon paint.
    pub class: u8,
    /// Class table being edited (native datasets), applied with a button.
    draft: Option<ClassTable>,
}

pub const MAX_BRUSH_RADIUS: f32 = 256.0;

/// The brush radii `[` and `]` step through: round sizes, about 1.25x apart (a factor of 1.25
/// gave sizes like 24.41).
const RADII: [f32; 24] = [
    0.5,
    1.0,
    2.0,
    3.0,
    4.0,
    5.0,
    6.0,
    8.0,
    10.0,
    12.0,
    16.0,
    20.0,
    24.0,
    32.0,
    40.0,
    48.0,
    64.0,
    80.0,
    96.0,
    128.0,
    160.0,
    192.0,
    224.0,
    MAX_BRUSH_RADIUS,
];

/// The next round radius above (`up`) or below `radius`, within the slider's range; a radius
/// set by the slider in between steps to its neighbour.
pub fn step_radius(radius: f32, up: bool) -> f32 {
    let next = match up {
        true => RADII.iter().find(|&&r| r > radius + 1e-3),
        false => RADII.iter().rev().find(|&&r| r < radius - 1e-3),
    };
    *next.unwrap_or(if up { &MAX_BRUSH_RADIUS } else { &RADII[0] })
}

/// The digit key that selects class `id` (ids 0..8 sit on keys 1..9).
pub fn class_key(id: u8) -> Option<u8> {
    (id < 9).then_some(id + 1)
}

/// The name a new class gets: after its key (see [`class_key`]) or position.
pub fn new_class_name(id: u8) -> String {
    format!("class {}", id as u16 + 1)
}

impl ToolsPanel {
    // Each argument is one piece of app state the panel reads; a struct would only rename them.
    #[allow(clippy::too_many_arguments)]
    pub fn ui(
        &mut self,
        ui: &mut egui::Ui,
        state: &mut PersistedState,
        dataset: Option<&Path>,
        classes: Option<&ClassTable>,
        editable: bool,
        has_prediction: bool,
        aux: Option<AuxTask>,
        commands: &mut Vec<Command>,
    ) {
        ui.heading("Tools");
        ui.horizontal_wrapped(|ui| {
            for tool in Tool::ALL {
                ui.selectable_value(&mut state.tool, tool, tool.label())
                    .on_hover_text(format!("{} ({:?})", tool.hint(), tool.key()));
            }
        });
        // Greyed out rather than hidden for tools without a radius: the panel keeps its layout.
        ui.add_enabled(
            state.tool.is_brush(),
            egui::Slider::new(&mut state.brush_radius, 0.5..=MAX_BRUSH_RADIUS)
                .logarithmic(true)
                .text("Brush radius"),
        )
        .on_disabled_hover_text(format!("{} has no radius", state.tool.label()));
        ui.horizontal(|ui| {
            ui.add_enabled(
                state.tool == Tool::SuperpixelBrush || state.show_superpixels,
                egui::Slider::new(&mut state.superpixel_size, 6..=64)
                    .logarithmic(true)
                    .suffix(" px")
                    .text("Superpixels"),
            )
            .on_hover_text("The superpixel brush's granularity: superpixels about this wide");
        });
        ui.checkbox(&mut state.show_superpixels, "Show superpixel edges");
        ui.add_enabled(
            state.tool == Tool::Wand,
            egui::Slider::new(&mut state.wand_tolerance, 0..=255).text("Wand tolerance"),
        )
        .on_hover_text(
            "The wand takes the connected pixels whose colour differs from the clicked one by at \
             most this much in every channel (0: the same colour only)",
        )
        .on_disabled_hover_text("for the Wand tool");
        // The chosen tool's hint in one line (its tooltip has it whole), so switching tools
        // never moves the panel.
        ui.add(egui::Label::new(egui::RichText::new(state.tool.hint()).weak()).truncate());
        ui.horizontal(|ui| {
            if ui.button("Undo").clicked() {
                commands.push(Command::Undo);
            }
            if ui.button("Redo").clicked() {
                commands.push(Command::Redo);
            }
            if ui.button("Save").clicked() {
                commands.push(Command::Save);
            }
        });
        if ui
            .add_enabled(dataset.is_some(), egui::Button::new(FROM_PREVIOUS))
            .on_hover_text(
                "Copies the mask of the image above this one in the list (same size) into this \
                 one, as one undo step; locked classes stay",
            )
            .clicked()
        {
            commands.push(Command::StartFromPrevious);
        }
        ui.separator();
        ui.heading("Classes");
        if let Some(classes) = classes {
            let before = dataset.map(|root| state.prefs(root)).unwrap_or_default();
            let mut prefs = before.clone();
            for class in classes.iter() {
                ui.horizontal(|ui| {
                    let mut locked = prefs.is_locked(class.id);
                    let glyph = match locked {
                        true => egui::RichText::new(LOCK),
                        false => egui::RichText::new(LOCK).weak(),
                    };
                    let lock = ui
                        .toggle_value(&mut locked, glyph)
                        .on_hover_text(match locked {
                            true => {
                                format!("{} is locked: no tool overwrites its pixels", class.name)
                            }
                            false => {
                                format!("Lock {}: no tool will overwrite its pixels", class.name)
                            }
                        });
                    if lock.changed() {
                        prefs.set_locked(class.id, locked);
                    }
                    let [r, g, b] = class.color;
                    let (rect, _) =
                        ui.allocate_exact_size(egui::vec2(14.0, 14.0), egui::Sense::hover());
                    ui.painter()
                        .rect_filled(rect, 2.0, egui::Color32::from_rgb(r, g, b));
                    let key = class_key(class.id).map_or_else(String::new, |k| format!("{k} "));
                    ui.selectable_value(&mut self.class, class.id, format!("{key}{}", class.name));
                });
            }
            ui.checkbox(&mut prefs.unlabelled_only, "Paint only unlabelled pixels")
                .on_hover_text("No tool changes a pixel that has a class (the eraser neither)");
            if let Some(root) = dataset.filter(|_| prefs != before) {
                state.set_prefs(root, prefs);
            }
        }
        if let (Some(classes), true) = (classes, editable) {
            self.class_editor(ui, classes, commands);
        }
        ui.separator();
        ui.heading("View");
        ui.horizontal_wrapped(|ui| {
            for mode in ViewMode::ALL {
                let enabled = has_prediction || !mode.needs_prediction();
                let key = format!("{:?}", mode.key());
                let button = egui::Button::selectable(state.view == mode, mode.label());
                if ui
                    .add_enabled(enabled, button)
                    .on_hover_text(format!("key {key}"))
                    .on_disabled_hover_text("needs a prediction: train, or open a run")
                    .clicked()
                {
                    commands.push(Command::SetView(mode));
                }
            }
        });
        ui.label(
            egui::RichText::new("Hold B to blink between ground truth and prediction.").small(),
        );
        if state.view == ViewMode::Difference {
            let name = |id: u8| match (id, classes) {
                (ANY_CLASS, _) => "any wrong class".to_string(),
                (id, Some(c)) => {
                    c.0.get(id as usize)
                        .map_or_else(|| format!("class {id}"), |c| c.name.clone())
                }
                (id, None) => format!("class {id}"),
            };
            egui::ComboBox::from_label("Errors of")
                .selected_text(name(state.diff_class))
                .show_ui(ui, |ui| {
                    ui.selectable_value(&mut state.diff_class, ANY_CLASS, name(ANY_CLASS));
                    for class in classes.iter().flat_map(|c| c.iter()) {
                        ui.selectable_value(&mut state.diff_class, class.id, name(class.id));
                    }
                });
            legend(
                ui,
                FALSE_POSITIVE,
                match state.diff_class {
                    ANY_CLASS => "wrong class",
                    _ => "false positive (predicted, not true)",
                },
            );
            if state.diff_class != ANY_CLASS {
                legend(ui, FALSE_NEGATIVE, "false negative (true, missed)");
            }
            ui.label(egui::RichText::new("Correct pixels dimmed, unlabelled grey.").small());
        }
        if state.view == ViewMode::Confidence {
            // The heat map's stops (`blend::HEAT`), as the canvas draws them.
            for (colour, text) in HEAT.iter().zip([
                "0%: the model is unsure",
                "33%",
                "67%",
                "100%: the model is sure",
            ]) {
                legend(ui, *colour, text);
            }
        }
        ui.checkbox(&mut state.outline, "Outline only");
        if let Some(task) = aux {
            let (name, key) = match task {
                AuxTask::Boundary => ("Road boundary layer", 1),
                AuxTask::Drivable => ("Drivable area layer", 0),
            };
            ui.horizontal(|ui| {
                ui.checkbox(&mut state.show_aux, name);
                let (rect, _) =
                    ui.allocate_exact_size(egui::vec2(12.0, 12.0), egui::Sense::hover());
                ui.painter().rect_filled(rect, 2.0, aux_colour(task, key));
            })
            .response
            .on_hover_text("The model's second head, drawn over the canvas");
        }
        ui.add(egui::Slider::new(&mut state.opacity, 0.0..=1.0).text("Opacity"));
        ui.horizontal(|ui| {
            if ui.button("Fit").clicked() {
                commands.push(Command::Fit);
            }
            if ui.button("1:1").clicked() {
                commands.push(Command::OneToOne);
            }
        });
        ui.separator();
        ui.heading("Accept prediction");
        ui.add_enabled_ui(has_prediction && editable, |ui| {
            ui.add(
                egui::Slider::new(&mut state.accept_threshold, 0.0..=1.0).text("Min. confidence"),
            );
            ui.horizontal_wrapped(|ui| {
                if ui.button("Whole image").clicked() {
                    commands.push(Command::Accept(AcceptScope::Whole));
                }
                if ui.button("Unlabelled only").clicked() {
                    commands.push(Command::Accept(AcceptScope::Unlabelled));
                }
                if ui.button("Inside polygon").clicked() {
                    commands.push(Command::AcceptPolygon);
                }
            });
            ui.label(
                egui::RichText::new(
                    "Or the Accept brush / Accept region tools. Each acceptance is one undo step.",
                )
                .small(),
            );
        });
    }
}

/// A colour swatch and what it means.
fn legend(ui: &mut egui::Ui, colour: [u8; 3], text: &str) {
    ui.horizontal(|ui| {
        let (rect, _) = ui.allocate_exact_size(egui::vec2(14.0, 14.0), egui::Sense::hover());
        ui.painter().rect_filled(
            rect,
            2.0,
            egui::Color32::from_rgb(colour[0], colour[1], colour[2]),
        );
        ui.label(text);
    });
}

impl ToolsPanel {
    /// Add, rename and recolour classes (ids never change, so painted masks stay valid).
    fn class_editor(
        &mut self,
        ui: &mut egui::Ui,
        classes: &ClassTable,
        commands: &mut Vec<Command>,
    ) {
        egui::CollapsingHeader::new("Edit classes").show(ui, |ui| {
            let draft = self.draft.get_or_insert_with(|| classes.clone());
            for class in &mut draft.0 {
                ui.horizontal(|ui| {
                    ui.color_edit_button_srgb(&mut class.color);
                    ui.add(egui::TextEdit::singleline(&mut class.name).desired_width(110.0));
                });
            }
            ui.horizontal(|ui| {
                if ui.button("Add class").clicked() && draft.len() < 255 {
                    let id = draft.len() as u8;
                    draft.0.push(crate::core::dataset::ClassInfo {
                        id,
                        name: new_class_name(id),
                        color: [
                            (id as u32 * 97 % 256) as u8,
                            (id as u32 * 57 % 256) as u8,
                            200,
                        ],
                    });
                }
                let changed = draft != classes;
                if ui
                    .add_enabled(changed, egui::Button::new("Apply"))
                    .clicked()
                {
                    commands.push(Command::SetClasses(draft.clone()));
                }
                if ui
                    .add_enabled(changed, egui::Button::new("Revert"))
                    .clicked()
                {
                    *draft = classes.clone();
                }
            });
        });
    }

    /// Drops the draft (another dataset was opened, or the edit was applied).
    pub fn reset_draft(&mut self) {
        self.draft = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn brackets_step_through_round_radii() {
        let mut r = 0.5;
        let mut seen = vec![r];
        while r < MAX_BRUSH_RADIUS {
            r = step_radius(r, true);
            seen.push(r);
        }
        assert_eq!(seen, RADII.to_vec());
        assert_eq!(step_radius(MAX_BRUSH_RADIUS, true), MAX_BRUSH_RADIUS);
        assert_eq!(step_radius(0.5, false), 0.5);
        // From a slider value in between, to its neighbours.
        assert_eq!(
            (step_radius(13.7, true), step_radius(13.7, false)),
            (16.0, 12.0)
        );
        assert_eq!(step_radius(16.0, false), 12.0);
    }

    #[test]
    fn a_new_class_is_named_after_its_key() {
        assert_eq!(new_class_name(7), "class 8");
        assert_eq!(new_class_name(0), "class 1");
        assert_eq!(new_class_name(254), "class 255");
    }
}
