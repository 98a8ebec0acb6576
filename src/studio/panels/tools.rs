//! The right panel: tools, brush size, class palette, mask display.

use crate::core::dataset::ClassTable;
use crate::studio::app::Command;
use crate::studio::canvas::Tool;
use crate::studio::state::PersistedState;

#[derive(Default)]
pub struct ToolsPanel {
    /// The class the brush, fill and polygon paint.
    pub class: u8,
    /// Class table being edited (native datasets), applied with a button.
    draft: Option<ClassTable>,
}

pub const MAX_BRUSH_RADIUS: f32 = 256.0;

impl ToolsPanel {
    pub fn ui(
        &mut self,
        ui: &mut egui::Ui,
        state: &mut PersistedState,
        classes: Option<&ClassTable>,
        editable: bool,
        commands: &mut Vec<Command>,
    ) {
        ui.heading("Tools");
        ui.horizontal_wrapped(|ui| {
            for tool in Tool::ALL {
                ui.selectable_value(&mut state.tool, tool, tool.label());
            }
        });
        ui.add(
            egui::Slider::new(&mut state.brush_radius, 0.5..=MAX_BRUSH_RADIUS)
                .logarithmic(true)
                .text("Brush radius"),
        );
        if state.tool == Tool::Polygon {
            ui.label("Click points; Enter fills, Esc cancels.");
        }
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
        ui.separator();
        ui.heading("Classes");
        if let Some(classes) = classes {
            for class in classes.iter() {
                ui.horizontal(|ui| {
                    let [r, g, b] = class.color;
                    let (rect, _) =
                        ui.allocate_exact_size(egui::vec2(14.0, 14.0), egui::Sense::hover());
                    ui.painter()
                        .rect_filled(rect, 2.0, egui::Color32::from_rgb(r, g, b));
                    let key = if class.id < 9 {
                        format!("{} ", class.id + 1)
                    } else {
                        String::new()
                    };
                    ui.selectable_value(&mut self.class, class.id, format!("{key}{}", class.name));
                });
            }
        }
        if let (Some(classes), true) = (classes, editable) {
            self.class_editor(ui, classes, commands);
        }
        ui.separator();
        ui.heading("Mask");
        ui.checkbox(&mut state.show_mask, "Show mask");
        ui.checkbox(&mut state.outline, "Outline only");
        ui.checkbox(&mut state.show_prediction, "Show prediction");
        ui.add(egui::Slider::new(&mut state.opacity, 0.0..=1.0).text("Opacity"));
        ui.horizontal(|ui| {
            if ui.button("Fit").clicked() {
                commands.push(Command::Fit);
            }
            if ui.button("1:1").clicked() {
                commands.push(Command::OneToOne);
            }
        });
    }
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
                        name: format!("class {id}"),
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
