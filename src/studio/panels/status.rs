//! The bottom bar: image, size, cursor, class (and predicted class) under the cursor, zoom,
//! save state, the model's inference time for this image, memory while training, the last
//! message.

use crate::core::dataset::{ClassTable, IGNORE};
use crate::studio::canvas::Canvas;

/// Measured figures the bar shows when they are known.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Figures {
    /// The current model's prediction time for the image on the canvas.
    pub inference_seconds: Option<f64>,
    /// The process's resident memory, while a run trains.
    pub training_memory: Option<u64>,
}

pub fn ui(
    ui: &mut egui::Ui,
    name: Option<&str>,
    canvas: &Canvas,
    classes: Option<&ClassTable>,
    message: Option<&(String, bool)>,
    figures: &Figures,
) {
    ui.horizontal(|ui| {
        let Some(name) = name else {
            ui.label("No image");
            return;
        };
        ui.label(name);
        let [w, h] = canvas.image_size();
        ui.separator();
        ui.label(format!("{w}x{h}"));
        ui.separator();
        match canvas.cursor {
            Some([x, y]) => {
                let name = |id: Option<u8>| match id {
                    Some(IGNORE) | None => "unlabelled".to_string(),
                    Some(id) => classes
                        .and_then(|c| c.0.get(id as usize))
                        .map_or_else(|| format!("unknown id {id}"), |c| c.name.clone()),
                };
                let class = name(canvas.document.as_ref().and_then(|d| d.pick(x, y)));
                match canvas.predicted_at(x, y) {
                    Some((id, confidence)) => ui.label(format!(
                        "({x}, {y}) {class}, predicted {} ({:.0}%)",
                        name(Some(id)),
                        confidence as f32 / 2.55
                    )),
                    None => ui.label(format!("({x}, {y}) {class}")),
                };
            }
            None => {
                ui.label("-");
            }
        }
        ui.separator();
        ui.label(format!("{:.0}%", canvas.zoom() * 100.0));
        ui.separator();
        let saved = canvas.document.as_ref().is_none_or(|d| !d.is_modified());
        ui.label(if saved { "saved" } else { "unsaved changes" });
        if let Some(seconds) = figures.inference_seconds {
            ui.separator();
            ui.label(format!("inference {:.0} ms", seconds * 1000.0))
                .on_hover_text("the model's prediction of this image, at its full size");
        }
        if let Some(bytes) = figures.training_memory {
            ui.separator();
            ui.label(format!("memory {:.0} MiB", bytes as f64 / (1 << 20) as f64))
                .on_hover_text("resident memory of the studio while the run trains");
        }
        if let Some((text, is_error)) = message {
            ui.separator();
            // Elided to the bar's width; the whole text on hover and in View > Messages.
            let text = match is_error {
                true => egui::RichText::new(text).color(ui.visuals().error_fg_color),
                false => egui::RichText::new(text),
            };
            ui.add(egui::Label::new(text.clone()).truncate())
                .on_hover_text(text);
        }
    });
}
