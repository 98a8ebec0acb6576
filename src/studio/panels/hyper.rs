//! The training panel's settings: hyper-parameters, and where the model starts (encoder,
//! pretrained file, freezing, the encoder's learning rate, a second head).

use crate::core::model::segmenter::{AuxTask, Encoder};
use crate::core::train::budget::Auto;
use crate::core::train::config::TrainConfig;
use crate::core::train::optim::{OptimizerKind, ScheduleConfig};

/// Epochs, batch, size, widths, learning rate, loss, augmentation, optimiser, schedule; the
/// time budget and which of epochs, size and width it picks ("auto": the value is the run's
/// choice when it starts, shown in the log).
pub fn hyper_parameters(ui: &mut egui::Ui, c: &mut TrainConfig) {
    egui::Grid::new("hyper").num_columns(2).show(ui, |ui| {
        ui.label("Time budget (s)");
        ui.horizontal(|ui| {
            let mut on = c.auto.is_some();
            if ui.checkbox(&mut on, "pick").changed() {
                c.auto = on.then(Auto::default);
            }
            if let Some(auto) = c.auto.as_mut() {
                let mut secs = auto.seconds(0.0);
                let from_data = auto.budget_secs.is_none();
                let drag = egui::DragValue::new(&mut secs).range(10.0..=86_400.0);
                let response = ui.add(drag);
                if response.changed() {
                    auto.budget_secs = Some(secs);
                }
                if from_data {
                    response.on_hover_text("the default: grows with the training images' pixels");
                }
            }
        });
        ui.end_row();
        ui.label("Epochs");
        ui.horizontal(|ui| {
            let picked = auto_toggle(ui, &mut c.auto, |a| &mut a.epochs);
            ui.add_enabled(
                !picked,
                egui::DragValue::new(&mut c.epochs).range(1..=10_000),
            );
        });
        ui.end_row();
        ui.label("Batch size");
        ui.add(egui::DragValue::new(&mut c.batch_size).range(1..=256));
        ui.end_row();
        ui.label("Size (w x h)");
        ui.horizontal(|ui| {
            let picked = auto_toggle(ui, &mut c.auto, |a| &mut a.size);
            ui.add_enabled(
                !picked,
                egui::DragValue::new(&mut c.size[0]).range(16..=4096),
            );
            ui.add_enabled(
                !picked,
                egui::DragValue::new(&mut c.size[1]).range(16..=4096),
            );
        });
        ui.end_row();
        ui.label("UNet width / depth");
        ui.horizontal(|ui| {
            let picked = auto_toggle(ui, &mut c.auto, |a| &mut a.width);
            ui.add_enabled(
                !picked,
                egui::DragValue::new(&mut c.model.base_width).range(1..=128),
            );
            ui.add(egui::DragValue::new(&mut c.model.depth).range(1..=6));
        });
        ui.end_row();
        ui.label("Learning rate");
        ui.add(
            egui::DragValue::new(&mut c.lr)
                .speed(1e-4)
                .range(1e-6..=1.0),
        );
        ui.end_row();
        ui.label("Loss CE / Dice / Focal");
        ui.horizontal(|ui| {
            ui.add(
                egui::DragValue::new(&mut c.loss.ce)
                    .speed(0.05)
                    .range(0.0..=10.0),
            );
            ui.add(
                egui::DragValue::new(&mut c.loss.dice)
                    .speed(0.05)
                    .range(0.0..=10.0),
            );
            ui.add(
                egui::DragValue::new(&mut c.loss.focal)
                    .speed(0.05)
                    .range(0.0..=10.0),
            );
        });
        ui.end_row();
        ui.label("Augmentation");
        let mut on = c.augment.is_some();
        if ui.checkbox(&mut on, "on").changed() {
            c.augment = on.then(Default::default);
        }
        ui.end_row();
    });
    optimizer_picker(ui, &mut c.optimizer.kind);
    schedule_picker(ui, &mut c.schedule);
}

/// An "auto" checkbox for one of the budget's picks (none without a budget); whether the value
/// is picked.
fn auto_toggle(
    ui: &mut egui::Ui,
    auto: &mut Option<Auto>,
    pick: fn(&mut Auto) -> &mut bool,
) -> bool {
    let Some(auto) = auto.as_mut() else {
        return false;
    };
    let flag = pick(auto);
    ui.checkbox(flag, "auto")
        .on_hover_text("picked from the time budget when the run starts");
    *flag
}

/// The encoder, its pretrained weights file, freezing and learning rate, and the second head.
pub fn model_settings(ui: &mut egui::Ui, c: &mut TrainConfig) {
    egui::Grid::new("model").num_columns(2).show(ui, |ui| {
        ui.label("Encoder");
        egui::ComboBox::from_id_salt("encoder")
            .selected_text(encoder_name(c.encoder))
            .show_ui(ui, |ui| {
                for encoder in Encoder::ALL {
                    ui.selectable_value(&mut c.encoder, encoder, encoder_name(encoder));
                }
            });
        ui.end_row();
        let resnet = c.encoder.resnet().is_some();
        if !resnet {
            c.pretrained = None;
        }
        ui.label("Pretrained");
        ui.add_enabled_ui(resnet, |ui| {
            ui.horizontal(|ui| {
                let name = c.pretrained.as_ref().and_then(|p| p.file_name()).map_or_else(
                    || "none (.pth or .safetensors)".to_string(),
                    |n| n.to_string_lossy().into_owned(),
                );
                ui.label(name).on_hover_text(
                    "torchvision ImageNet weights for the ResNet; see the README for where they come from",
                );
                if ui.button("Choose…").clicked()
                    && let Some(file) = rfd::FileDialog::new()
                        .add_filter("weights", &["pth", "pt", "safetensors"])
                        .pick_file()
                {
                    c.pretrained = Some(file);
                }
                if c.pretrained.is_some() && ui.button("Clear").clicked() {
                    c.pretrained = None;
                }
            });
        });
        ui.end_row();
        ui.label("Frozen encoder epochs");
        ui.add(egui::DragValue::new(&mut c.freeze_encoder_epochs).range(0..=1000));
        ui.end_row();
        ui.label("Encoder learning rate x");
        ui.add(
            egui::DragValue::new(&mut c.encoder_lr_mult)
                .speed(0.01)
                .range(0.001..=10.0),
        );
        ui.end_row();
        ui.label("Second head");
        egui::ComboBox::from_id_salt("aux")
            .selected_text(c.aux.map_or("none", AuxTask::as_str))
            .show_ui(ui, |ui| {
                ui.selectable_value(&mut c.aux, None, "none");
                ui.selectable_value(&mut c.aux, Some(AuxTask::Boundary), "boundary")
                    .on_hover_text("road edges, derived from the masks");
                ui.selectable_value(&mut c.aux, Some(AuxTask::Drivable), "drivable")
                    .on_hover_text("BDD100K's drivable-area maps");
            });
        ui.end_row();
        ui.label("Second head weight");
        ui.add_enabled(
            c.aux.is_some(),
            egui::DragValue::new(&mut c.aux_weight)
                .speed(0.05)
                .range(0.0..=10.0),
        );
        ui.end_row();
        if let Some(run) = c.init_from.clone() {
            ui.label("Start from");
            ui.horizontal(|ui| {
                let name = run.file_name().map_or_else(
                    || run.display().to_string(),
                    |n| n.to_string_lossy().into_owned(),
                );
                ui.label(name);
                if ui.button("Clear").clicked() {
                    c.init_from = None;
                }
            });
            ui.end_row();
        }
    });
}

fn encoder_name(encoder: Encoder) -> &'static str {
    match encoder {
        Encoder::Unet => "UNet",
        Encoder::Resnet18 => "ResNet-18",
        Encoder::Resnet34 => "ResNet-34",
        Encoder::Resnet50 => "ResNet-50",
    }
}

fn optimizer_picker(ui: &mut egui::Ui, kind: &mut OptimizerKind) {
    let name = |k: &OptimizerKind| match k {
        OptimizerKind::Sgd { .. } => "SGD, momentum 0.9",
        OptimizerKind::Adam { .. } => "Adam",
        OptimizerKind::AdamW { .. } => "AdamW",
        OptimizerKind::RmsProp { .. } => "RMSprop",
    };
    egui::ComboBox::from_label("Optimiser")
        .selected_text(name(kind))
        .show_ui(ui, |ui| {
            for option in [
                OptimizerKind::sgd(),
                OptimizerKind::adam(),
                OptimizerKind::adamw(),
                OptimizerKind::rmsprop(),
            ] {
                let selected = std::mem::discriminant(kind) == std::mem::discriminant(&option);
                if ui.selectable_label(selected, name(&option)).clicked() {
                    *kind = option;
                }
            }
        });
}

fn schedule_picker(ui: &mut egui::Ui, schedule: &mut ScheduleConfig) {
    let name = |s: &ScheduleConfig| match s {
        ScheduleConfig::Constant => "constant",
        ScheduleConfig::Step { .. } => "step (x0.5 every 100)",
        ScheduleConfig::Cosine { .. } => "cosine",
        ScheduleConfig::WarmupCosine { .. } => "warm-up + cosine",
    };
    let options = [
        ScheduleConfig::Constant,
        ScheduleConfig::Step {
            step_size: 100,
            gamma: 0.5,
        },
        ScheduleConfig::Cosine { min_lr: 1e-5 },
        ScheduleConfig::WarmupCosine {
            warmup_steps: 20,
            min_lr: 1e-5,
        },
    ];
    egui::ComboBox::from_label("Schedule")
        .selected_text(name(schedule))
        .show_ui(ui, |ui| {
            for option in options {
                let selected = std::mem::discriminant(schedule) == std::mem::discriminant(&option);
                if ui.selectable_label(selected, name(&option)).clicked() {
                    *schedule = option;
                }
            }
        });
}
