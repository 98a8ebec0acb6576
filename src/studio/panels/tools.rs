//! The right panel: tools, brush size, class palette, mask display.

use crate::core::dataset::ClassTable;
use crate::studio::app::Command;
use crate::studio::canvas::Tool;
use crate::studio::state::PersistedState;

#[derive(Default)]
pub struct ToolsPanel {
    /// The class the brush, fill and polygon paint.
    pub class: u8,
}

pub const MAX_BRUSH_RADIUS: f32 = 256.0;

impl ToolsPanel {
    pub fn ui(
        &mut self,
        ui: &mut egui::Ui,
        state: &mut PersistedState,
        classes: Option<&ClassTable>,
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
        ui.separator();
        ui.heading("Mask");
        ui.checkbox(&mut state.show_mask, "Show mask");
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
