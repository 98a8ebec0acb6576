//! The studio: one app holding the persisted state and a struct per panel; panels emit
//! [`Command`]s that are applied at the end of the frame. The compare side (the model's
//! predictions, the Errors panel, model-assisted labelling) is in [`compare`].

mod compare;
mod destination;
mod export;
mod follow;
mod keys;
mod labelling;
mod labels_export;
mod messages;
mod open_folder;
mod training;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::canvas::{Canvas, CanvasEvent, CanvasSettings, SmartTarget};
use super::compare::ViewMode;
use super::compare::errors::ErrorsPanel;
use super::model::ModelLink;
use super::panels::dataset::DatasetPanel;
use super::panels::status;
use super::panels::tools::ToolsPanel;
use super::panels::training::TrainingPanel;
use super::session::{Loaded, Session};
use super::state::PersistedState;
use crate::core::assist::fills_holes;
use crate::core::dataset::{ClassInfo, ClassTable, DatasetIndex, Format, convert, workspace};
use crate::core::jobs::follow::{FollowCommand, Follower};
use crate::core::paint::accept::AcceptScope;
use crate::core::paint::unsaved::RETRY_INTERVAL;
use crate::core::paint::{AutosavePolicy, MaskDocument, Unsaved};
use crate::core::train::control::PredictRequest;
use crate::core::train::worker::{TrainWorker, WorkerCommand};
pub use messages::MessageLog;
pub use open_folder::completions as open_folder_completions;

/// Cross-panel actions, applied after the panels have drawn.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// Ask for a folder with the file dialog.
    PickDataset,
    OpenDataset(PathBuf),
    Select(usize),
    /// Move through the visible list by this many rows.
    Step(i32),
    Save,
    Undo,
    Redo,
    /// Copy the previous image's mask (the row above in the list) into this one.
    StartFromPrevious,
    /// Ask where the native copy of this view-only dataset goes.
    ConvertToNative,
    /// Copy the dataset, with the strokes painted on it, into this new folder and open it.
    ConvertToNativeAt(PathBuf),
    /// Ask where the open dataset's labels go in another layout.
    ExportLabels(Format),
    /// Write the open dataset's labels in this layout into this new folder.
    ExportLabelsAt(Format, PathBuf),
    /// Replace the class table of a native dataset (names and colours; new classes appended).
    SetClasses(ClassTable),
    Fit,
    OneToOne,
    StartTraining,
    PauseTraining,
    ResumeTraining,
    StopTraining,
    /// Predict the image on the canvas with the weights of the run in progress.
    PredictNow,
    /// Re-read the list of past runs of this dataset.
    RefreshRuns,
    DeleteRun(PathBuf),
    /// Show ground truth, prediction, difference, confidence or split.
    SetView(ViewMode),
    /// Predict with this run, and analyse its errors.
    UseModel(PathBuf),
    /// Select the image of this name.
    SelectByName(String),
    /// Open this image in the difference view (a row of the Errors table).
    OpenError(String),
    /// Copy the prediction into the mask (one undo step).
    Accept(AcceptScope),
    /// Accept the prediction inside the polygon being drawn.
    AcceptPolygon,
    /// Select the unlabelled image the model is least sure about.
    LabelNextUncertain,
    /// Analyse the current run's errors (`force`: even when a result is cached).
    Analyse {
        force: bool,
    },
    /// Ask where to export the current run as ONNX (save dialog).
    PickExport,
    /// Export the current run's best weights to this ONNX file.
    ExportModel(PathBuf),
    /// File > Open run…: ask for a run folder to follow.
    PickRun,
    /// Follow this run folder live (whoever trains it).
    FollowRun(PathBuf),
    /// Remember the training panel's "Run on" choice for the open dataset.
    RememberRunOn,
    /// Continue a stopped run from its checkpoint, where "Run on" says.
    ResumeRun(PathBuf),
}

/// What the panel under the canvas shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum BottomTab {
    #[default]
    Training,
    Errors,
}

/// How the studio starts (`roadseg studio DIR --model RUN --image NAME --view MODE`).
#[derive(Clone, Debug, Default)]
pub struct StartOptions {
    pub dir: Option<PathBuf>,
    pub model: Option<PathBuf>,
    pub image: Option<String>,
    pub view: Option<ViewMode>,
}

/// Why a model-assisted action did nothing.
const NO_PREDICTION: &str =
    "no prediction for this image yet: train a model, or open a run (Runs > Open)";

/// Said when a view-only dataset is painted on.
const VIEW_ONLY_STROKES: &str = "this dataset is view only: strokes stay in memory until File > Convert to native copies the dataset with them";

/// How long unsaved strokes may wait before being written.
/// The training and errors panel: never shorter than its tabs and a control row, never so tall
/// that less than this is left to the canvas.
const BOTTOM_PANEL_MIN: f32 = 120.0;
const MIN_CANVAS_HEIGHT: f32 = 160.0;

pub const AUTOSAVE_INTERVAL: Duration = Duration::from_secs(10);

pub struct Studio {
    pub state: PersistedState,
    pub session: Option<Session>,
    pub canvas: Canvas,
    pub dataset_panel: DatasetPanel,
    pub tools: ToolsPanel,
    pub training: TrainingPanel,
    pub errors: ErrorsPanel,
    pub bottom: BottomTab,
    /// The training thread, started with the first run.
    pub worker: Option<TrainWorker>,
    /// The run followed rather than trained here (submitted elsewhere, or File > Open run…).
    pub follower: Option<Follower>,
    /// A submission to a job engine in progress.
    submission: Option<follow::Submission>,
    /// The run whose predictions and errors are shown.
    pub model: ModelLink,
    /// Bumped whenever the studio writes a mask or the class table: analyses are cached per
    /// label revision.
    pub label_revision: u64,
    /// B held: ground truth and prediction swap places.
    pub blink: bool,
    /// Entry shown on the canvas.
    pub selected: Option<usize>,
    /// Last message for the status bar, and whether it is an error.
    pub message: Option<(String, bool)>,
    /// Every message said this session, oldest first (View > Messages).
    pub messages: MessageLog,
    /// View > Messages is open.
    pub show_messages: bool,
    /// File > Open dataset…'s window.
    pub open_folder: open_folder::OpenFolder,
    /// File > Convert to native… and Export labels as…: where the copy goes.
    pub destination: destination::Destination,
    /// How long the model took for an image: (entry index, seconds).
    pub inference: Option<(u64, f64)>,
    /// The process's resident memory while training runs, and when it was read.
    pub memory: Option<(Instant, u64)>,
    /// An ONNX export in progress.
    pub export: Option<export::ExportJob>,
    /// A labels export (File > Export labels as) in progress.
    pub labels_export: Option<labels_export::LabelsExport>,
    autosave: AutosavePolicy,
    /// Masks of other images whose save failed, kept and retried (see `core::paint::unsaved`).
    pub unsaved: Unsaved,
    /// Masks painted on a view-only dataset: never written to its label files (another
    /// tool's format), kept here until File > Convert to native carries them into the copy.
    pub view_only_edits: Unsaved,
    commands: Vec<Command>,
    /// Set by the first frame; loaders use it to wake the UI.
    ctx: Option<egui::Context>,
}

impl Studio {
    /// Opens `dir`, else the last folder, else the bundled sample (generated on first run),
    /// during the first frame.
    pub fn new(state: PersistedState, dir: Option<PathBuf>) -> Self {
        Self::with_options(
            state,
            StartOptions {
                dir,
                ..Default::default()
            },
        )
    }

    /// As [`Studio::new`], then selects `image`, loads `model` and shows `view`; a bad name or
    /// run is a message in the status line.
    pub fn with_options(mut state: PersistedState, options: StartOptions) -> Self {
        if let Some(view) = options.view {
            state.view = view;
        }
        let dir = options.dir;
        let mut studio = Self {
            state,
            session: None,
            canvas: Canvas::default(),
            dataset_panel: DatasetPanel::default(),
            tools: ToolsPanel::default(),
            training: TrainingPanel::default(),
            errors: ErrorsPanel::default(),
            bottom: BottomTab::default(),
            worker: None,
            follower: None,
            submission: None,
            model: ModelLink::default(),
            label_revision: 0,
            blink: false,
            selected: None,
            message: None,
            messages: MessageLog::default(),
            show_messages: false,
            open_folder: Default::default(),
            destination: Default::default(),
            inference: None,
            memory: None,
            export: None,
            labels_export: None,
            autosave: AutosavePolicy::new(AUTOSAVE_INTERVAL, Instant::now()),
            unsaved: Unsaved::default(),
            view_only_edits: Unsaved::default(),
            commands: Vec::new(),
            ctx: None,
        };
        let folder = dir
            .or_else(|| studio.state.last_folder.clone().filter(|p| p.is_dir()))
            .map(Ok)
            .unwrap_or_else(workspace::default_sample);
        match folder {
            Ok(folder) => studio.push(Command::OpenDataset(folder)),
            Err(e) => studio.report(format!("could not prepare the sample dataset: {e}"), true),
        }
        if let Some(name) = options.image {
            studio.push(Command::SelectByName(name));
        }
        if let Some(run) = options.model {
            // Its curves too, as Runs > Open shows them (a folder that is no run is said by
            // UseModel).
            if let Ok(curves) = crate::studio::panels::training::Curves::load(&run) {
                studio.training.curves = curves;
                studio.training.run_dir = Some(run.clone());
            }
            studio.push(Command::UseModel(run));
        }
        studio
    }

    /// Draws the canvas with our wgpu overlay pipeline (built now, once) instead of compositing
    /// on the CPU. Call with the window's (or a test harness') render state.
    pub fn use_gpu_overlay(&mut self, render_state: &eframe::egui_wgpu::RenderState) {
        super::compare::gpu::install(render_state);
        self.canvas.use_gpu();
    }

    fn report(&mut self, text: String, is_error: bool) {
        if is_error {
            eprintln!("roadseg: {text}");
        }
        self.message = Some((text, is_error));
    }

    /// Changes how long unsaved strokes may wait (the soak runs the studio in compressed time).
    pub fn set_autosave_interval(&mut self, interval: Duration) {
        self.autosave = AutosavePolicy::new(interval, Instant::now());
    }

    /// Queues a command (what panels do; tests use it too).
    pub fn push(&mut self, command: Command) {
        self.commands.push(command);
    }

    /// The class being labelled, from the open dataset's table.
    fn current_class(&self) -> Option<&ClassInfo> {
        let session = self.session.as_ref()?;
        session.classes.iter().find(|c| c.id == self.tools.class)
    }

    /// What Smart region labels: the current class, its holes filled when it names a
    /// countable object.
    pub(super) fn smart_target(&self) -> SmartTarget {
        SmartTarget {
            class: self.tools.class,
            fill_holes: self.current_class().is_some_and(|c| fills_holes(&c.name)),
        }
    }

    pub fn selected_name(&self) -> Option<&str> {
        let session = self.session.as_ref()?;
        Some(session.entries.get(self.selected?)?.name.as_str())
    }

    /// Blocks until the image being loaded is on the canvas (tests; the UI never waits).
    pub fn wait_for_image(&mut self) {
        if let Some(result) = self.session.as_mut().and_then(Session::wait) {
            self.install(result);
        }
    }

    /// Blocks until the thumbnails asked for so far are decoded and shown (tests).
    pub fn wait_for_thumbnails(&mut self) {
        let Some(ctx) = self.ctx.clone() else { return };
        let deadline = Instant::now() + Duration::from_secs(10);
        while self
            .dataset_panel
            .thumbnails
            .drain(&ctx, Duration::from_millis(50))
            && Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Writes the current mask if it has unsaved changes. Errors are shown, never fatal: the
    /// strokes stay in memory and the next save tries again.
    pub fn save_current(&mut self) -> bool {
        let editable = self.session.as_ref().is_some_and(Session::editable);
        let Some(doc) = self.canvas.document.as_mut().filter(|_| editable) else {
            return true;
        };
        match doc.save() {
            Ok(wrote) => {
                self.autosave.saved(Instant::now());
                if wrote {
                    self.label_revision += 1;
                    let path = doc.path().to_path_buf();
                    // What is on disk now: a mask without labels is no file.
                    let labelled = doc.has_labels();
                    let fraction = labelled.then(|| doc.mask().labelled_fraction());
                    if let (Some(session), Some(i)) = (self.session.as_mut(), self.selected)
                        && let Some(entry) = session.entries.get_mut(i)
                    {
                        entry.labelled = labelled;
                        entry.label = labelled.then(|| path.clone());
                        self.dataset_panel.thumbnails.set_labelled(i, fraction);
                    }
                    self.message = Some((format!("saved {}", path.display()), false));
                }
                true
            }
            Err(e) => {
                self.autosave.failed(Instant::now(), RETRY_INTERVAL);
                self.report(
                    format!(
                        "could not save the mask: {e}; the strokes are kept and saving is retried every {} s",
                        RETRY_INTERVAL.as_secs()
                    ),
                    true,
                );
                false
            }
        }
    }

    /// The mask leaving the canvas: with changes a failed save left, it is kept for retries.
    fn keep_unsaved(&mut self) {
        let editable = self.session.as_ref().is_some_and(Session::editable);
        if let Some(doc) = self.canvas.document.take_if(|d| d.is_modified()) {
            match editable {
                true => self.unsaved.keep(doc, Instant::now()),
                false => self.view_only_edits.keep(doc, Instant::now()),
            }
        }
    }

    /// Saves the kept masks again; says what happened in the status bar.
    fn retry_unsaved(&mut self) {
        let (saved, error) = self.unsaved.retry(Instant::now());
        if let Some(session) = self.session.as_mut() {
            for path in &saved {
                let row = session
                    .entries
                    .iter()
                    .position(|e| e.mask_path.as_ref() == Some(path));
                if let Some(i) = row {
                    let labelled = path.is_file();
                    session.entries[i].labelled = labelled;
                    session.entries[i].label = labelled.then(|| path.clone());
                    self.dataset_panel.thumbnails.forget(i);
                }
            }
        }
        match error {
            Some(e) => self.report(
                format!(
                    "could not save {} kept mask(s): {e}; retrying every {} s",
                    self.unsaved.len(),
                    RETRY_INTERVAL.as_secs()
                ),
                true,
            ),
            None if !saved.is_empty() => {
                self.message = Some((format!("saved {} kept mask(s)", saved.len()), false));
            }
            None => {}
        }
    }

    fn install(&mut self, result: Result<Loaded, String>) {
        match result {
            Ok(loaded) => {
                if self.session.is_none() || self.ctx.is_none() {
                    return;
                }
                self.keep_unsaved();
                // Strokes kept from a failed save are newer than the file: they come back.
                let document: Option<MaskDocument> = match loaded.document {
                    Some(doc) => Some(
                        self.unsaved
                            .take(doc.path())
                            .or_else(|| self.view_only_edits.take(doc.path()))
                            .unwrap_or(doc),
                    ),
                    None => None,
                };
                let (Some(session), Some(ctx)) = (&self.session, &self.ctx) else {
                    return;
                };
                self.canvas
                    .set_image(ctx, &loaded.image, document, &session.classes);
                self.selected = Some(loaded.index);
                self.sync_locks();
                let image = self.canvas.image().cloned();
                if let Some(image) = image.clone() {
                    self.model.predict(loaded.index as u64, image);
                }
                // A run in progress predicts the new image now and after each epoch.
                if let Some(worker) = self.worker.as_ref().filter(|w| w.is_running())
                    && let Some(image) = image
                {
                    let request = PredictRequest {
                        tag: loaded.index as u64,
                        image,
                    };
                    worker.send(WorkerCommand::PredictEachEpoch(Some(request.clone())));
                    worker.send(WorkerCommand::Predict(request));
                }
            }
            Err(e) => self.report(e, true),
        }
    }

    fn apply(&mut self, command: Command) {
        match command {
            Command::PickDataset => self.ask_for_folder(),
            Command::OpenDataset(dir) => {
                self.save_current();
                match Session::open(&dir) {
                    Ok(session) => {
                        let problems = session.problems.len();
                        self.keep_unsaved();
                        self.canvas.clear();
                        self.dataset_panel.thumbnails.reset();
                        self.tools.reset_draft();
                        self.training.compare = None;
                        self.errors.reset();
                        self.dataset_panel.uncertainty.clear();
                        self.selected = None;
                        self.state.last_folder = Some(dir.clone());
                        self.remember_folder(&dir);
                        self.training.run_on = self.state.prefs(&dir).run_on;
                        self.session = Some(session);
                        self.message = Some((
                            match problems {
                                0 => format!("opened {}", dir.display()),
                                n => format!("opened {} ({n} problem(s) found)", dir.display()),
                            },
                            problems > 0,
                        ));
                        self.refresh_runs();
                        self.apply(Command::Select(0));
                    }
                    Err(e) => self.report(e, true),
                }
            }
            Command::Select(index) => {
                if self.selected == Some(index) {
                    return;
                }
                self.save_current();
                let ctx = self.ctx.clone();
                if let Some(session) = self.session.as_mut() {
                    session.request(index, move || {
                        if let Some(ctx) = &ctx {
                            ctx.request_repaint();
                        }
                    });
                }
            }
            Command::Step(delta) => {
                let Some(session) = &self.session else { return };
                // From the image asked for last: presses faster than loads are not lost.
                let current = session.loading().or(self.selected);
                let visible = self.dataset_panel.visible(session, current);
                let position = current.and_then(|s| visible.iter().position(|&i| i == s));
                let next = match position {
                    Some(p) => (p as i64 + delta as i64).clamp(0, visible.len() as i64 - 1),
                    None => 0,
                };
                if let Some(&index) = visible.get(next as usize) {
                    self.dataset_panel.reveal = Some(index);
                    self.apply(Command::Select(index));
                }
            }
            Command::Save => {
                if !self.unsaved.is_empty() {
                    self.retry_unsaved();
                }
                if self.save_current() && self.message.is_none() {
                    self.message = Some(("nothing to save".into(), false));
                }
            }
            Command::Undo => {
                self.canvas.undo();
            }
            Command::Redo => {
                self.canvas.redo();
            }
            Command::StartFromPrevious => self.start_from_previous(),
            Command::ConvertToNative => {
                self.ask_for_destination(destination::Purpose::ConvertToNative);
            }
            Command::ConvertToNativeAt(out) => self.convert_to_native(out),
            Command::ExportLabels(format) => {
                self.ask_for_destination(destination::Purpose::ExportLabels(format));
            }
            Command::ExportLabelsAt(format, out) => self.export_labels(format, out),
            Command::SetClasses(classes) => self.set_classes(classes),
            Command::Fit => self.canvas.fit(),
            Command::OneToOne => self.canvas.one_to_one(),
            Command::StartTraining => {
                if !self.submit_training() {
                    self.unfollow();
                    self.start_training();
                }
            }
            Command::PauseTraining => {
                if !self.send_follower(FollowCommand::Pause) {
                    self.to_worker(WorkerCommand::Pause);
                }
            }
            Command::ResumeTraining => {
                if !self.send_follower(FollowCommand::Resume) {
                    self.to_worker(WorkerCommand::Resume);
                }
            }
            Command::StopTraining => {
                if !self.send_follower(FollowCommand::Cancel) {
                    self.to_worker(WorkerCommand::Stop);
                }
            }
            Command::PickRun => self.pick_run(),
            Command::FollowRun(run) => self.follow_run(run),
            Command::ResumeRun(run) => self.resume_run(run),
            Command::RememberRunOn => {
                if let Some(root) = self.session.as_ref().map(|s| s.root.clone()) {
                    let mut prefs = self.state.prefs(&root);
                    prefs.run_on = self.training.run_on.clone();
                    self.state.set_prefs(&root, prefs);
                }
            }
            Command::RefreshRuns => self.refresh_runs(),
            Command::DeleteRun(dir) => {
                // Only folders that are runs, and only inside this dataset's runs folder.
                let inside = self.runs_folder().is_some_and(|f| dir.starts_with(f));
                let is_run = crate::core::train::run_dir::RunDir::new(&dir).exists();
                if inside && is_run {
                    match std::fs::remove_dir_all(&dir) {
                        Ok(()) => {
                            self.message = Some((format!("deleted {}", dir.display()), false))
                        }
                        Err(e) => {
                            self.report(format!("could not delete {}: {e}", dir.display()), true)
                        }
                    }
                }
                self.refresh_runs();
            }
            command @ (Command::SetView(_)
            | Command::UseModel(_)
            | Command::SelectByName(_)
            | Command::OpenError(_)
            | Command::Accept(_)
            | Command::AcceptPolygon
            | Command::LabelNextUncertain
            | Command::Analyse { .. }) => self.apply_compare(command),
            Command::PickExport => self.pick_export_path(),
            Command::ExportModel(out) => self.export_model(out),
            Command::PredictNow => {
                if let (Some(index), Some(image)) = (self.selected, self.canvas_image()) {
                    self.state.view = ViewMode::Prediction;
                    self.to_worker(WorkerCommand::Predict(PredictRequest {
                        tag: index as u64,
                        image,
                    }));
                }
            }
        }
    }

    /// The image on the canvas.
    fn canvas_image(&self) -> Option<image::RgbImage> {
        self.canvas.image().cloned()
    }

    /// Validates and writes a new class table (atomically), then redraws with its colours.
    fn set_classes(&mut self, classes: ClassTable) {
        let Some(session) = self.session.as_mut().filter(|s| s.editable()) else {
            return;
        };
        let file = session.root.join("classes.json");
        let result = classes
            .validate(&file)
            .and_then(|()| classes.write_json(&file))
            .map_err(|e| e.to_string());
        match result {
            Ok(()) => {
                self.label_revision += 1;
                session.classes = classes;
                self.canvas.set_classes(&session.classes);
                self.tools.reset_draft();
                self.message = Some((format!("saved {}", file.display()), false));
            }
            Err(e) => self.report(format!("classes not changed: {e}"), true),
        }
    }

    /// Converts the open (non-native) dataset into a new sibling folder and opens that; the
    /// original is never written to.
    fn convert_to_native(&mut self, out: PathBuf) {
        let Some(session) = &self.session else { return };
        let root = session.root.clone();
        let result = DatasetIndex::open(&root, Some(session.format))
            .map_err(|e| e.to_string())
            .and_then(|index| convert::to_native(&index, &out, true).map_err(|e| e.to_string()));
        match result {
            Ok(report) => {
                let (carried, failed) = self.carry_view_only_edits(&out);
                self.apply(Command::OpenDataset(out.clone()));
                let strokes = match carried {
                    0 => String::new(),
                    n => format!("; the strokes of {n} image(s) carried over"),
                };
                let (text, error) = match failed {
                    Some(e) => (format!("; {e}"), true),
                    None => (String::new(), !report.skipped.is_empty()),
                };
                self.message = Some((
                    format!(
                        "converted to {} ({} images, {} masks, {} skipped){strokes}{text}",
                        out.display(),
                        report.images,
                        report.masks,
                        report.skipped.len()
                    ),
                    error,
                ));
            }
            Err(e) => self.report(format!("conversion failed: {e}"), true),
        }
    }

    /// Writes the masks painted on this view-only dataset (the canvas's and the kept ones) into
    /// its native copy at `out`, over the converted masks. Returns how many, and the first
    /// error; a mask that could not be written is kept and retried like any unsaved mask.
    fn carry_view_only_edits(&mut self, out: &Path) -> (usize, Option<String>) {
        self.keep_unsaved();
        let Some(session) = &self.session else {
            return (0, None);
        };
        let mut carried = 0;
        let mut error = None;
        for entry in &session.entries {
            let Some(label) = &entry.label else { continue };
            let Some(mut doc) = self.view_only_edits.take(label) else {
                continue;
            };
            doc.move_to(out.join("masks").join(format!("{}.png", entry.name)));
            match doc.save() {
                Ok(_) => carried += 1,
                Err(e) => {
                    error.get_or_insert(format!("could not write {}: {e}", doc.path().display()));
                    self.unsaved.keep(doc, Instant::now());
                }
            }
        }
        (carried, error)
    }

    /// The whole window, one frame.
    pub fn ui(&mut self, ui: &mut egui::Ui) {
        let ctx = ui.ctx().clone();
        self.ctx.get_or_insert_with(|| ctx.clone());
        if let Some(result) = self.session.as_mut().and_then(Session::poll) {
            self.install(result);
        }
        self.drain_worker();
        self.drain_follower();
        self.poll_submission();
        self.drain_model();
        self.poll_export();
        self.poll_labels_export();
        self.sample_memory(&ctx);
        // A small budget per frame keeps scrolling smooth while thumbnails stream in.
        if self
            .dataset_panel
            .thumbnails
            .drain(&ctx, Duration::from_millis(3))
        {
            ctx.request_repaint_after(Duration::from_millis(30));
        }
        self.shortcuts(&ctx);

        egui::Panel::top("menu").show(ui, |ui| {
            egui::MenuBar::new().ui(ui, |ui| {
                ui.menu_button("File", |ui| {
                    if ui.button("Open dataset...").clicked() {
                        self.commands.push(Command::PickDataset);
                    }
                    if ui
                        .button("Open run...")
                        .on_hover_text(
                            "Follow a run folder live: curves, progress, its best checkpoint \
                             (a run on a cluster, another process, a shared disk)",
                        )
                        .clicked()
                    {
                        self.commands.push(Command::PickRun);
                    }
                    if ui.button("Save mask (Ctrl+S)").clicked() {
                        self.commands.push(Command::Save);
                    }
                    let convertible = self.session.as_ref().is_some_and(|s| !s.editable());
                    if ui
                        .add_enabled(convertible, egui::Button::new("Convert to native..."))
                        .clicked()
                    {
                        self.commands.push(Command::ConvertToNative);
                    }
                    let open = self.session.is_some() && self.labels_export.is_none();
                    ui.add_enabled_ui(open, |ui| {
                        ui.menu_button("Export labels as...", |ui| {
                            for format in Format::WRITABLE {
                                let hint = match format {
                                    Format::Native => "roadseg's own layout",
                                    Format::Voc => "Pascal VOC palette masks; CVAT imports it as Segmentation mask 1.1",
                                    Format::Coco => "COCO panoptic PNGs and RLE instances json",
                                    Format::Labelme => "one json of polygons per image",
                                    _ => "gtFine labelIds (classes named as Cityscapes' own)",
                                };
                                if ui.button(format.as_str()).on_hover_text(hint).clicked() {
                                    self.commands.push(Command::ExportLabels(format));
                                }
                            }
                        });
                    });
                    if ui
                        .add_enabled(
                            self.model.loaded.is_some() && self.export.is_none(),
                            egui::Button::new("Export model..."),
                        )
                        .on_hover_text("The run the canvas compares with, as an ONNX file")
                        .clicked()
                    {
                        self.commands.push(Command::PickExport);
                    }
                });
                ui.menu_button("Edit", |ui| {
                    if ui.button("Undo (Ctrl+Z)").clicked() {
                        self.commands.push(Command::Undo);
                    }
                    if ui.button("Redo (Ctrl+Shift+Z)").clicked() {
                        self.commands.push(Command::Redo);
                    }
                    let previous = egui::Button::new("Start from previous image");
                    if ui.add_enabled(self.session.is_some(), previous).clicked() {
                        self.commands.push(Command::StartFromPrevious);
                    }
                });
                ui.menu_button("View", |ui| {
                    if ui.button("Fit").clicked() {
                        self.commands.push(Command::Fit);
                    }
                    if ui.button("1:1").clicked() {
                        self.commands.push(Command::OneToOne);
                    }
                    for mode in ViewMode::ALL {
                        if ui
                            .selectable_label(
                                self.state.view == mode,
                                format!("{} ({:?})", mode.label(), mode.key()),
                            )
                            .clicked()
                        {
                            self.commands.push(Command::SetView(mode));
                        }
                    }
                    ui.separator();
                    ui.checkbox(&mut self.state.show_training, "Training and errors panel");
                    ui.checkbox(&mut self.show_messages, "Messages");
                });
            });
        });
        egui::Panel::bottom("status").show(ui, |ui| {
            let classes = self.session.as_ref().map(|s| &s.classes);
            let figures = status::Figures {
                inference_seconds: self
                    .inference
                    .filter(|(tag, _)| self.selected.map(|s| s as u64) == Some(*tag))
                    .map(|(_, seconds)| seconds),
                training_memory: self.memory.map(|(_, bytes)| bytes),
            };
            status::ui(
                ui,
                self.selected_name(),
                &self.canvas,
                classes,
                self.message.as_ref(),
                &figures,
            );
        });
        let left = egui::Panel::left("dataset")
            .resizable(true)
            .default_size(self.state.left_panel_width)
            .show(ui, |ui| {
                self.dataset_panel
                    .ui(ui, self.session.as_ref(), self.selected, &mut self.commands);
            });
        self.state.left_panel_width = left.response.rect.width();
        let right = egui::Panel::right("tools")
            .resizable(true)
            .default_size(self.state.right_panel_width)
            .show(ui, |ui| {
                let classes = self.session.as_ref().map(|s| &s.classes);
                let dataset = self.session.as_ref().map(|s| s.root.as_path());
                let editable = self.session.as_ref().is_some_and(Session::editable);
                let has_prediction = self.canvas.has_prediction();
                let aux = self.canvas.aux().map(|a| a.task);
                egui::ScrollArea::vertical().show(ui, |ui| {
                    self.tools.ui(
                        ui,
                        &mut self.state,
                        dataset,
                        classes,
                        editable,
                        has_prediction,
                        aux,
                        &mut self.commands,
                    );
                });
            });
        self.state.right_panel_width = right.response.rect.width();
        // Under the canvas only: the dataset and tool panels keep their full height.
        // Its height is the user's (the border drags it, up to most of the window): what does
        // not fit scrolls inside, so opening a section never takes the canvas's space.
        if self.state.show_training {
            let most = (ui.available_height() - MIN_CANVAS_HEIGHT).max(BOTTOM_PANEL_MIN);
            let bottom = egui::Panel::bottom("training")
                .resizable(true)
                .default_size(self.state.bottom_panel_height.min(most))
                .min_size(BOTTOM_PANEL_MIN)
                .max_size(most)
                .show(ui, |ui| {
                    ui.horizontal(|ui| {
                        ui.selectable_value(&mut self.bottom, BottomTab::Training, "Training");
                        ui.selectable_value(&mut self.bottom, BottomTab::Errors, "Errors");
                    });
                    match self.bottom {
                        BottomTab::Training => self.training.ui(ui, &mut self.commands),
                        BottomTab::Errors => {
                            egui::ScrollArea::both()
                                .id_salt("errors-tab")
                                .auto_shrink(false)
                                .show(ui, |ui| self.errors_ui(ui));
                        }
                    }
                });
            self.state.bottom_panel_height = bottom.response.rect.height();
        }
        // The tools panel may have changed them this frame: the canvas edits with them now.
        self.sync_locks();
        egui::CentralPanel::no_frame().show(ui, |ui| {
            let settings = CanvasSettings {
                tool: self.state.tool,
                brush_radius: self.state.brush_radius,
                class: self.tools.class,
                opacity: self.state.opacity,
                view: self.shown_view(),
                diff_class: self.state.diff_class,
                divider: self.state.divider,
                outline: self.state.outline,
                accept_threshold: self.state.accept_threshold_byte(),
                editable: self.session.as_ref().is_some_and(Session::editable),
                show_aux: self.state.show_aux,
                class_colour: self.current_class().map_or([255, 255, 255], |c| c.color),
                superpixel_size: self.state.superpixel_size,
                show_superpixels: self.state.show_superpixels,
                wand_tolerance: self.state.wand_tolerance,
                smart_fill_holes: self.smart_target().fill_holes,
            };
            let canvas_rect = ui.max_rect();
            if self.blink {
                // Holding B swaps the layers; say so where the eyes are.
                let shown = self.shown_view().label();
                egui::Area::new(egui::Id::unique("blink"))
                    .fixed_pos(canvas_rect.min + egui::vec2(8.0, 8.0))
                    .show(ui.ctx(), |ui| {
                        egui::Frame::popup(ui.style()).show(ui, |ui| {
                            ui.label(format!("B held: showing {shown}"));
                        });
                    });
            }
            for event in self.canvas.ui(ui, &settings) {
                match event {
                    CanvasEvent::Picked(id) => {
                        self.tools.class = id;
                        let name = self
                            .session
                            .as_ref()
                            .and_then(|s| s.classes.iter().find(|c| c.id == id))
                            .map_or_else(|| format!("class id {id}"), |c| c.name.clone());
                        let key = crate::studio::panels::tools::class_key(id)
                            .map_or_else(String::new, |k| format!(" (key {k})"));
                        self.message = Some((format!("picked {name}{key}"), false));
                    }
                    CanvasEvent::ReadOnly => self.message = Some((VIEW_ONLY_STROKES.into(), true)),
                    CanvasEvent::Divider(fraction) => self.state.divider = fraction,
                    CanvasEvent::NoPrediction => {
                        self.message = Some((NO_PREDICTION.into(), true));
                    }
                }
            }
        });

        self.messages.note(self.message.as_ref());
        if self.show_messages {
            self.messages.window(&ctx, &mut self.show_messages);
        }
        self.open_folder_window(&ctx);
        self.destination_window(&ctx);
        // Commands change the state after this frame was drawn: the next frame shows it.
        let commands = std::mem::take(&mut self.commands);
        if !commands.is_empty() {
            ctx.request_repaint();
        }
        for command in commands {
            self.apply(command);
        }
        self.keep_analysis_current();

        // Timed autosave: a killed process loses at most AUTOSAVE_INTERVAL of strokes.
        let modified = self
            .canvas
            .document
            .as_ref()
            .is_some_and(|d| d.is_modified());
        let now = Instant::now();
        if self.autosave.due(modified, now) {
            self.save_current();
            // The status bar and the list were drawn before the save: show what is on disk.
            ctx.request_repaint();
        } else if modified {
            ctx.request_repaint_after(self.autosave.remaining(now));
        }
        if self.unsaved.due(now) {
            self.retry_unsaved();
            ctx.request_repaint();
        }
        if !self.unsaved.is_empty() {
            ctx.request_repaint_after(RETRY_INTERVAL);
        }
    }

    /// Saves everything before the window closes; what still cannot be written is said on
    /// stderr (there is no later).
    pub fn save_all(&mut self) {
        self.save_current();
        if !self.unsaved.is_empty() {
            self.retry_unsaved();
        }
        if !self.unsaved.is_empty() {
            eprintln!(
                "roadseg: {} mask(s) could not be saved before closing",
                self.unsaved.len()
            );
        }
        self.keep_unsaved();
        if !self.view_only_edits.is_empty() {
            eprintln!(
                "roadseg: the strokes on {} image(s) of a view-only dataset were not kept: File > Convert to native carries them into a native copy",
                self.view_only_edits.len()
            );
        }
    }
}

impl eframe::App for Studio {
    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut eframe::Frame) {
        Studio::ui(self, ui);
    }

    fn save(&mut self, storage: &mut dyn eframe::Storage) {
        eframe::set_value(storage, eframe::APP_KEY, &self.state);
        self.save_all();
    }

    fn on_exit(&mut self, _gl: Option<&eframe::glow::Context>) {
        self.save_all();
    }
}
