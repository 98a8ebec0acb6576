//! The training panel: hyper-parameters with presets, Start / Pause / Stop, progress, and live
//! curves (egui_plot) of the run the core's [`TrainWorker`] is running, or of a past run.

use std::path::{Path, PathBuf};
use std::time::Duration;

use egui_plot::{Corner, Legend, Line, Plot};

use crate::core::device::DeviceChoice;
use crate::core::model::segmenter::Encoder;
use crate::core::train::budget::{Auto, FULL_SECS, QUICK_SECS};
use crate::core::train::config::TrainConfig;
use crate::core::train::run_dir::{MetricRecord, RunDir, Summary, read_metrics};
use crate::core::train::trainer::{StartInfo, TrainEvent};
use crate::core::train::worker::WorkerEvent;
use crate::studio::app::Command;
use crate::studio::panels::hyper;
use crate::studio::panels::iou_classes::{ALL_UP_TO, IouClasses};
use crate::studio::panels::run_on::{self, RunOnPrefs};

/// Starting points for the hyper-parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Preset {
    /// A first look: epochs, input size and width picked to train in about a minute here.
    Quick,
    /// A model that sees thin classes: picked to train in about ten minutes on a 2-core CPU
    /// (the same budget buys more on a GPU).
    Full,
    /// A UNet decoder on a ResNet-18 whose ImageNet weights come from a file the user picks:
    /// the encoder frozen for two epochs, then fine-tuned at a tenth of the rate; the input
    /// size picked for its twelve epochs to fit Full's budget.
    ResNet18Pretrained,
}

impl Preset {
    pub const ALL: [(Preset, &'static str); 3] = [
        (Preset::Quick, "Quick"),
        (Preset::Full, "Full"),
        (Preset::ResNet18Pretrained, "ResNet-18, pretrained file"),
    ];

    /// What the preset does, shown on hover.
    pub fn hint(self) -> &'static str {
        match self {
            Preset::Quick => "epochs, input size and width picked to train in about a minute",
            Preset::Full => {
                "epochs, input size and width picked to train in about ten minutes (a 2-core \
                 CPU sees thin classes such as lane markings; a GPU trains more in that time)"
            }
            Preset::ResNet18Pretrained => {
                "twelve epochs of a ResNet-18 from your ImageNet weights file, the input size \
                 picked to fit ten minutes"
            }
        }
    }

    pub fn config(self) -> TrainConfig {
        let within = |secs| TrainConfig {
            auto: Some(Auto::within(secs)),
            ..TrainConfig::default()
        };
        match self {
            Preset::Quick => within(QUICK_SECS),
            Preset::Full => within(FULL_SECS),
            Preset::ResNet18Pretrained => TrainConfig {
                epochs: 12,
                lr: 1e-3,
                encoder: Encoder::Resnet18,
                freeze_encoder_epochs: 2,
                encoder_lr_mult: 0.1,
                auto: Some(Auto {
                    epochs: false,
                    width: false,
                    ..Auto::within(FULL_SECS)
                }),
                ..TrainConfig::default()
            },
        }
    }
}

/// The curves of one run.
#[derive(Default, Clone)]
pub struct Curves {
    pub train_loss: Vec<[f64; 2]>,
    pub val_loss: Vec<[f64; 2]>,
    pub mean_iou: Vec<[f64; 2]>,
    /// Road edges found within 2 pixels (validation).
    pub boundary_f1: Vec<[f64; 2]>,
    /// Per class: name and (step, IoU) points.
    pub class_iou: Vec<(String, Vec<[f64; 2]>)>,
    pub lr: Vec<[f64; 2]>,
}

impl Curves {
    pub fn add(&mut self, record: &MetricRecord) {
        let x = record.step as f64;
        match record.split.as_str() {
            "train" => {
                self.train_loss.push([x, record.loss]);
                self.lr.push([x, record.lr]);
            }
            _ => {
                self.val_loss.push([x, record.loss]);
                if let Some(miou) = record.mean_iou {
                    self.mean_iou.push([x, miou]);
                }
                if let Some(f1) = record.boundary_f1 {
                    self.boundary_f1.push([x, f1]);
                }
                // Ids past the 254 a class table can hold come from a damaged file: skipped,
                // not allocated for.
                let classes = record.classes.iter().flatten();
                for class in classes.filter(|c| c.id < crate::core::dataset::IGNORE as usize) {
                    if self.class_iou.len() <= class.id {
                        self.class_iou
                            .resize(class.id + 1, (String::new(), Vec::new()));
                    }
                    let slot = &mut self.class_iou[class.id];
                    slot.0.clone_from(&class.name);
                    if let Some(iou) = class.iou {
                        slot.1.push([x, iou]);
                    }
                }
            }
        }
    }

    /// Exponential moving average of the training loss (what the eye wants on noisy steps).
    pub fn smoothed_loss(&self) -> Vec<[f64; 2]> {
        let mut avg = None;
        self.train_loss
            .iter()
            .map(|&[x, y]| {
                let v = match avg {
                    Some(a) => 0.9 * a + 0.1 * y,
                    None => y,
                };
                avg = Some(v);
                [x, v]
            })
            .collect()
    }

    /// Curves of a run directory from its metrics.jsonl.
    pub fn load(run: &Path) -> Result<Self, String> {
        let records = read_metrics(&run.join("metrics.jsonl")).map_err(|e| e.to_string())?;
        let mut curves = Self::default();
        records.iter().for_each(|r| curves.add(r));
        Ok(curves)
    }
}

/// Where the run stands, for the progress bar.
#[derive(Default, Clone)]
pub struct Progress {
    pub start: Option<StartInfo>,
    pub step: usize,
    pub epoch: usize,
    pub images_per_sec: Option<f64>,
}

impl Progress {
    /// Moves to a logged step's place, smoothing its speed (what the ETA uses).
    pub fn add(&mut self, record: &MetricRecord) {
        self.step = record.step;
        self.epoch = record.epoch;
        if let Some(ips) = record.images_per_sec {
            self.images_per_sec = Some(match self.images_per_sec {
                Some(s) => 0.9 * s + 0.1 * ips,
                None => ips,
            });
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum RunState {
    #[default]
    Idle,
    Running,
    Paused,
}

pub struct TrainingPanel {
    pub preset: Preset,
    pub config: TrainConfig,
    pub device: DeviceChoice,
    pub state: RunState,
    pub curves: Curves,
    pub progress: Progress,
    pub last_summary: Option<Result<Summary, String>>,
    pub run_dir: Option<PathBuf>,
    /// Log lines from the worker (newest last, bounded).
    pub log: Vec<String>,
    /// Where new runs go (default: the user's data folder, `runs/<dataset>`).
    pub runs_root: Option<PathBuf>,
    /// The past runs of this dataset, as last scanned.
    pub runs: Vec<RunRow>,
    /// A second run drawn dashed over the current curves.
    pub compare: Option<(String, Curves)>,
    /// Which per-class IoU curves are drawn.
    pub iou_classes: IouClasses,
    /// Run waiting for a second click on Delete.
    delete_armed: Option<PathBuf>,
    /// What the device picker found (hardware adapters; software rasteriser present).
    gpus: Option<(Vec<String>, bool)>,
    /// Open the model settings on the next frame (a preset that needs a file was chosen).
    reveal_model: bool,
    /// Where Train sends the run (this computer, Slurm, an SSH host, Kubernetes).
    pub run_on: RunOnPrefs,
    /// The run followed rather than trained here (its Pause and Stop go to its engine).
    pub following: Option<PathBuf>,
}

/// One past run in the runs list.
#[derive(Clone, Debug)]
pub struct RunRow {
    pub dir: PathBuf,
    pub name: String,
    /// summary.json, when the run ended.
    pub summary: Option<Summary>,
    /// One line about the config (model, size, epochs, optimiser).
    pub config: String,
    /// Why the run folder cannot be used (bad config, damaged checkpoint, cut metrics).
    pub broken: Option<String>,
}

/// The runs in `folder`, newest name last.
pub fn scan_runs(folder: &Path) -> Vec<RunRow> {
    let Ok(entries) = std::fs::read_dir(folder) else {
        return Vec::new();
    };
    let mut rows: Vec<RunRow> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|dir| RunDir::new(dir).exists())
        .map(|dir| {
            let run = RunDir::new(&dir);
            let config = run.read_config().map_or_else(
                |e| e.to_string(),
                |c| {
                    let model = match c.train.encoder {
                        Encoder::Unet => format!("UNet w{} d{}", c.model.base_width, c.model.depth),
                        e => format!("{e} (decoder w{})", c.model.base_width),
                    };
                    let aux = c
                        .train
                        .aux
                        .map(|a| format!(", +{a} head"))
                        .unwrap_or_default();
                    format!(
                        "{model}{aux}, {}x{}, {} epochs, lr {}",
                        c.train.size[0], c.train.size[1], c.train.epochs, c.train.lr
                    )
                },
            );
            RunRow {
                name: dir
                    .file_name()
                    .map_or_else(String::new, |n| n.to_string_lossy().into_owned()),
                summary: run.read_summary().ok(),
                config,
                broken: crate::core::train::run_check::check(&run)
                    .err()
                    .map(|b| b.to_string()),
                dir,
            }
        })
        .collect();
    // run-2 before run-10.
    rows.sort_by_key(|r| {
        let number = r
            .name
            .rsplit('-')
            .next()
            .and_then(|n| n.parse::<u64>().ok());
        (number.unwrap_or(u64::MAX), r.name.clone())
    });
    rows
}

impl Default for TrainingPanel {
    fn default() -> Self {
        Self {
            preset: Preset::Quick,
            config: Preset::Quick.config(),
            device: DeviceChoice::Auto,
            state: RunState::Idle,
            curves: Curves::default(),
            progress: Progress::default(),
            last_summary: None,
            run_dir: None,
            log: Vec::new(),
            runs_root: None,
            runs: Vec::new(),
            compare: None,
            iou_classes: IouClasses::default(),
            delete_armed: None,
            gpus: None,
            reveal_model: false,
            run_on: RunOnPrefs::default(),
            following: None,
        }
    }
}

impl TrainingPanel {
    /// Applies one worker event to the panel's state; predictions are the app's business.
    pub fn on_event(&mut self, event: &WorkerEvent) {
        match event {
            WorkerEvent::Train(TrainEvent::Started(info)) => {
                if !info.resumed {
                    self.curves = Curves::default();
                }
                self.run_dir = Some(info.run_dir.clone());
                // The line under the buttons is this run's from now on, not the last run's end.
                let name = info
                    .run_dir
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned());
                let verb = if info.resumed { "resuming" } else { "training" };
                self.push_log(format!("{verb} {}", name.unwrap_or_default()));
                self.progress = Progress {
                    start: Some((**info).clone()),
                    step: info.start_step,
                    epoch: info.start_epoch,
                    images_per_sec: None,
                };
                self.state = RunState::Running;
            }
            WorkerEvent::Train(TrainEvent::Step(record)) => {
                self.curves.add(record);
                self.progress.add(record);
            }
            WorkerEvent::Train(TrainEvent::Validation(record)) => self.curves.add(record),
            WorkerEvent::Train(TrainEvent::Log(line)) => self.push_log(line.clone()),
            WorkerEvent::Train(TrainEvent::Checkpoint { .. } | TrainEvent::Prediction { .. }) => {}
            WorkerEvent::Paused => self.state = RunState::Paused,
            WorkerEvent::Resumed => self.state = RunState::Running,
            WorkerEvent::Busy => self.push_log("a run is already going".into()),
            WorkerEvent::Finished(result) => {
                self.state = RunState::Idle;
                match result {
                    Ok(s) => self.push_log(format!(
                        "{}: {} epochs, best mIoU {:.4}",
                        s.status,
                        s.epochs,
                        s.best_mean_iou.unwrap_or(0.0)
                    )),
                    Err(e) => self.push_log(format!("training failed: {e}")),
                }
                self.last_summary = Some(result.clone());
            }
        }
    }

    pub fn push_log(&mut self, line: String) {
        self.log.push(line);
        if self.log.len() > 200 {
            self.log.remove(0);
        }
    }

    /// Fraction done and the text of the progress bar.
    pub fn progress_text(&self) -> (f32, String) {
        let Some(start) = &self.progress.start else {
            return (0.0, "not started".into());
        };
        let total = start.total_steps.max(1);
        let done = self.progress.step.min(total);
        let speed = self.progress.images_per_sec.unwrap_or(0.0);
        let eta = start
            .eta_secs(done, self.progress.images_per_sec)
            .map_or_else(|| "?".to_string(), |s| format!("{s:.0} s"));
        (
            done as f32 / total as f32,
            format!(
                "epoch {}/{}  step {done}/{total}  {speed:.1} img/s  ETA {eta}",
                self.progress.epoch.max(1),
                start.epochs
            ),
        )
    }

    pub fn ui(&mut self, ui: &mut egui::Ui, commands: &mut Vec<Command>) {
        ui.horizontal_top(|ui| {
            // The controls scroll in the panel's height: opening a section does not grow it.
            egui::ScrollArea::vertical()
                .id_salt("training-controls")
                .max_height(ui.available_height())
                .auto_shrink([true, false])
                .show(ui, |ui| {
                    ui.vertical(|ui| {
                        ui.set_width(260.0);
                        self.controls(ui, commands);
                    });
                });
            ui.separator();
            self.plots(ui);
        });
    }

    fn controls(&mut self, ui: &mut egui::Ui, commands: &mut Vec<Command>) {
        let idle = self.state == RunState::Idle;
        ui.horizontal(|ui| {
            if ui.add_enabled(idle, egui::Button::new("Train")).clicked() {
                commands.push(Command::StartTraining);
            }
            match self.state {
                RunState::Running => {
                    if ui.button("Pause").clicked() {
                        commands.push(Command::PauseTraining);
                    }
                }
                RunState::Paused => {
                    if ui.button("Resume").clicked() {
                        commands.push(Command::ResumeTraining);
                    }
                }
                RunState::Idle => {}
            }
            if ui.add_enabled(!idle, egui::Button::new("Stop")).clicked() {
                commands.push(Command::StopTraining);
            }
        });
        let (fraction, text) = self.progress_text();
        ui.add(egui::ProgressBar::new(fraction).text(text));
        if let Some(start) = &self.progress.start {
            // Says which device runs, and why when the GPU was not used.
            ui.label(egui::RichText::new(&start.device).small());
            // What the time budget picked, and why.
            if let Some(choice) = &start.choice {
                ui.label(egui::RichText::new(choice).small());
            }
        }
        if ui
            .add_enabled(
                !idle && self.following.is_none(),
                egui::Button::new("Predict this image now"),
            )
            .clicked()
        {
            commands.push(Command::PredictNow);
        }
        ui.add_enabled_ui(idle, |ui| {
            if run_on::ui(ui, &mut self.run_on) {
                commands.push(Command::RememberRunOn);
            }
            ui.horizontal_wrapped(|ui| {
                for (preset, name) in Preset::ALL {
                    let label = ui.selectable_label(self.preset == preset, name);
                    if label.on_hover_text(preset.hint()).clicked() {
                        self.preset = preset;
                        self.config = preset.config();
                        self.reveal_model = preset == Preset::ResNet18Pretrained;
                    }
                }
                egui::ComboBox::from_label("Device")
                    .selected_text(self.device.to_string())
                    .show_ui(ui, |ui| {
                        // Listed when the picker opens: enumerating adapters opens nothing
                        // but is not free, so not every frame.
                        let (gpus, software) = self
                            .gpus
                            .get_or_insert_with(crate::core::device::list_gpus)
                            .clone();
                        ui.selectable_value(&mut self.device, DeviceChoice::Auto, "auto");
                        for (i, gpu) in gpus.iter().enumerate() {
                            let label = match i {
                                0 => format!("gpu: {gpu}"),
                                _ => format!("({gpu}: not used)"),
                            };
                            ui.add_enabled_ui(i == 0, |ui| {
                                ui.selectable_value(&mut self.device, DeviceChoice::Gpu, label);
                            });
                        }
                        if gpus.is_empty() {
                            let why = match software {
                                true => "no GPU (only a software rasteriser)",
                                false => "no GPU found",
                            };
                            ui.add_enabled(false, egui::Button::new(why));
                        }
                        ui.selectable_value(&mut self.device, DeviceChoice::Cpu, "cpu");
                    });
            });
            egui::CollapsingHeader::new("Hyper-parameters").show(ui, |ui| {
                hyper::hyper_parameters(ui, &mut self.config);
            });
            // Choosing the ResNet preset opens the section where its file is picked.
            let reveal = std::mem::take(&mut self.reveal_model);
            egui::CollapsingHeader::new("Model and fine-tuning")
                .open(reveal.then_some(true))
                .show(ui, |ui| hyper::model_settings(ui, &mut self.config));
        });
        if let Some(line) = self.log.last() {
            ui.label(line);
        }
        egui::CollapsingHeader::new("Runs").show(ui, |ui| self.runs_ui(ui, commands));
    }

    fn runs_ui(&mut self, ui: &mut egui::Ui, commands: &mut Vec<Command>) {
        if ui.button("Refresh").clicked() {
            commands.push(Command::RefreshRuns);
        }
        let idle = self.state == RunState::Idle;
        for row in self.runs.clone() {
            ui.separator();
            let result = match &row.summary {
                Some(s) => format!(
                    "{}, best mIoU {:.3}, {:.0} s",
                    s.status,
                    s.best_mean_iou.unwrap_or(0.0),
                    s.elapsed_secs
                ),
                None => "unfinished".to_string(),
            };
            let running_here = !idle && self.run_dir.as_ref() == Some(&row.dir);
            // The run whose curves are shown (open, or training now).
            let shown = self.run_dir.as_ref() == Some(&row.dir);
            let name = match (running_here, shown) {
                (true, _) => format!("{} (training)", row.name),
                (false, true) => format!("{} (open)", row.name),
                _ => row.name.clone(),
            };
            ui.label(egui::RichText::new(name).strong());
            ui.label(egui::RichText::new(format!("{result}\n{}", row.config)).small());
            if let Some(reason) = row.broken.as_ref().filter(|_| !running_here) {
                let text = egui::RichText::new(format!("broken: {reason}")).small();
                ui.colored_label(ui.visuals().error_fg_color, text);
            }
            ui.horizontal(|ui| {
                if ui.add_enabled(idle, egui::Button::new("Open")).clicked() {
                    match Curves::load(&row.dir) {
                        Ok(curves) => {
                            self.curves = curves;
                            self.run_dir = Some(row.dir.clone());
                            // Its predictions and errors too.
                            commands.push(Command::UseModel(row.dir.clone()));
                        }
                        Err(e) => self.push_log(e),
                    }
                }
                if ui
                    .add_enabled(
                        idle && row.summary.is_some(),
                        egui::Button::new("Start from"),
                    )
                    .on_hover_text("The next run starts from this run's weights")
                    .clicked()
                {
                    self.config.init_from = Some(row.dir.clone());
                }
                // A run stopped (or killed) before its end continues from its checkpoint.
                let resumable = idle
                    && row.broken.is_none()
                    && row.summary.as_ref().is_none_or(|s| s.status == "stopped");
                if ui
                    .add_enabled(resumable, egui::Button::new("Resume"))
                    .on_hover_text("Continue this run from its checkpoint, where Run on says")
                    .clicked()
                {
                    commands.push(Command::ResumeRun(row.dir.clone()));
                }
                if ui.button("Compare").clicked() {
                    match Curves::load(&row.dir) {
                        Ok(curves) => self.compare = Some((row.name.clone(), curves)),
                        Err(e) => self.push_log(e),
                    }
                }
                let armed = self.delete_armed.as_ref() == Some(&row.dir);
                let label = if armed { "Really delete" } else { "Delete" };
                if ui
                    .add_enabled(!running_here, egui::Button::new(label))
                    .clicked()
                {
                    if armed {
                        self.delete_armed = None;
                        commands.push(Command::DeleteRun(row.dir.clone()));
                    } else {
                        self.delete_armed = Some(row.dir.clone());
                    }
                }
            });
        }
        if self.compare.is_some() && ui.button("Clear comparison").clicked() {
            self.compare = None;
        }
    }

    fn plots(&mut self, ui: &mut egui::Ui) {
        let height = (ui.available_height() - 8.0).max(80.0);
        let width = ((ui.available_width() - 24.0) / 3.0).max(100.0);
        let link = ui.make_persistent_id("training-x");
        let curves = &self.curves;
        // Each plot's y range always holds `y_range` (no negative axes before any data), and
        // its legend sits, small and see-through, in the corner its curves leave free.
        let plot = |ui: &mut egui::Ui,
                    id: &str,
                    title: &str,
                    y: &str,
                    (y_range, corner): ([f64; 2], Corner),
                    lines: Vec<Line<'static>>| {
            ui.vertical(|ui| {
                ui.set_width(width);
                ui.strong(title);
                Plot::new(id)
                    .height(
                        ui.available_height()
                            .min(height - ui.spacing().interact_size.y),
                    )
                    .include_x(0.0)
                    .include_y(y_range[0])
                    .include_y(y_range[1])
                    .legend(
                        Legend::default()
                            .position(corner)
                            .background_alpha(0.6)
                            .text_style(egui::TextStyle::Small),
                    )
                    .link_axis(link, [true, false])
                    .x_axis_label("step")
                    .y_axis_label(y)
                    .show(ui, |plot| {
                        for line in lines {
                            plot.line(line);
                        }
                    });
            });
        };
        let dashed = egui_plot::LineStyle::dashed_loose();
        let mut loss = vec![
            Line::new("train loss", curves.train_loss.clone()),
            Line::new("smoothed", curves.smoothed_loss()),
            Line::new("val loss", curves.val_loss.clone()),
        ];
        let mut iou = vec![Line::new("mIoU", curves.mean_iou.clone()).width(2.5)];
        if !curves.boundary_f1.is_empty() {
            iou.push(
                Line::new("boundary F1", curves.boundary_f1.clone())
                    .width(2.0)
                    .style(egui_plot::LineStyle::dotted_dense()),
            );
        }
        if let Some((name, other)) = &self.compare {
            loss.push(Line::new(format!("{name} smoothed"), other.smoothed_loss()).style(dashed));
            loss.push(Line::new(format!("{name} val loss"), other.val_loss.clone()).style(dashed));
            iou.push(
                Line::new(format!("{name} mIoU"), other.mean_iou.clone())
                    .width(2.5)
                    .style(dashed),
            );
        }
        // Loss falls (top right is free), IoU rises (top left), the rate only goes down.
        plot(
            ui,
            "loss",
            "Loss",
            "loss",
            ([0.0, 0.1], Corner::RightTop),
            loss,
        );
        let shown = self.iou_classes.shown(&curves.class_iou);
        iou.extend(shown.iter().map(|&i| {
            let (name, points) = &curves.class_iou[i];
            // By class id: adding a comparison run or hiding a class keeps every colour.
            Line::new(name.clone(), points.clone()).color(class_colour(i))
        }));
        let classes = curves.class_iou.len();
        ui.vertical(|ui| {
            ui.set_width(width);
            if classes > ALL_UP_TO {
                self.iou_classes.ui(ui, classes, shown.len());
            }
            plot(
                ui,
                "iou",
                "IoU (validation)",
                "IoU",
                ([0.0, 1.0], Corner::LeftTop),
                iou,
            );
        });
        plot(
            ui,
            "lr",
            "Learning rate",
            "learning rate",
            ([0.0, 0.0], Corner::RightTop),
            vec![Line::new("learning rate", curves.lr.clone())],
        );
    }
}

/// The colour of class `id`'s IoU curve: hues a golden angle apart, so that neighbouring ids
/// differ and no colour depends on which other curves are drawn.
pub fn class_colour(id: usize) -> egui::Color32 {
    let hue = (id as f32 * 0.618_034).fract();
    egui::ecolor::Hsva::new(hue, 0.75, 0.95, 1.0).into()
}

/// How long the UI spends on worker events per frame.
pub const EVENT_BUDGET: Duration = Duration::from_millis(4);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_run_replaces_the_last_runs_closing_line() {
        let mut panel = TrainingPanel::default();
        let summary = Summary {
            status: "completed".into(),
            epochs: 2,
            steps: 6,
            best_epoch: Some(2),
            best_mean_iou: Some(0.1031),
            last_validation: None,
            elapsed_secs: 4.0,
            device: "cpu".into(),
            message: None,
        };
        panel.on_event(&WorkerEvent::Finished(Ok(summary)));
        assert!(panel.log.last().unwrap().contains("0.1031"));
        let info = StartInfo {
            run_dir: "runs/quick-2".into(),
            device: "cpu".into(),
            resumed: false,
            epochs: 2,
            start_epoch: 0,
            steps_per_epoch: 3,
            total_steps: 6,
            start_step: 0,
            train_images: 8,
            val_images: 2,
            batch_size: 4,
            class_names: vec!["road".into()],
            choice: None,
        };
        panel.on_event(&WorkerEvent::Train(TrainEvent::Started(Box::new(info))));
        assert_eq!(
            panel.log.last().map(String::as_str),
            Some("training quick-2")
        );
        assert_eq!(panel.run_dir.as_deref(), Some(Path::new("runs/quick-2")));
    }

    #[test]
    fn class_colours_are_fixed_by_id_and_tell_neighbours_apart() {
        // The sample's seven classes, CamVid's 31: no two ids within 31 share a colour, and
        // neighbours differ clearly in hue.
        let colours: Vec<egui::Color32> = (0..31).map(class_colour).collect();
        for (i, a) in colours.iter().enumerate() {
            for b in &colours[i + 1..] {
                assert_ne!(a, b);
            }
        }
        for id in 0..30 {
            let (a, b) = (class_colour(id), class_colour(id + 1));
            let distance: i32 = [
                a.r() as i32 - b.r() as i32,
                a.g() as i32 - b.g() as i32,
                a.b() as i32 - b.b() as i32,
            ]
            .iter()
            .map(|d| d.abs())
            .sum();
            assert!(distance > 120, "ids {id} and {}: {a:?} vs {b:?}", id + 1);
        }
    }
}
