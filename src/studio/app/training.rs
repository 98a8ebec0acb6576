//! The studio's training side: starting runs in the core's worker, its events (curves,
//! progress, live predictions), and the list of past runs.

use std::path::PathBuf;

use super::{Command, Studio};
use crate::core::dataset::workspace;
use crate::core::train::control::PredictRequest;
use crate::core::train::trainer::{DataSpec, TrainEvent, TrainOptions, TrainStart};
use crate::core::train::worker::{TrainWorker, WorkerCommand, WorkerEvent};
use crate::studio::panels::training::EVENT_BUDGET;

impl Studio {
    pub(super) fn to_worker(&self, command: WorkerCommand) {
        if let Some(worker) = &self.worker {
            worker.send(command);
        }
    }

    /// Starts a run on the masks saved so far, in the user's data folder (the dataset folder
    /// only ever receives masks and classes).
    pub(super) fn start_training(&mut self) {
        if let Some(start) = self.new_run() {
            self.train_here(start);
        }
    }

    /// A new run of the open dataset with the panel's settings, its masks saved first; `None`
    /// (said) without a dataset.
    pub(super) fn new_run(&mut self) -> Option<TrainStart> {
        self.save_current();
        let (Some(session), Some(runs)) = (&self.session, self.runs_folder()) else {
            self.report("open a dataset first".into(), true);
            return None;
        };
        Some(TrainStart::New {
            data: DataSpec {
                root: session.root.clone(),
                format: Some(session.format),
            },
            config: Box::new(self.training.config.clone()),
            out: crate::core::train::run_dir::next_run_dir(&runs),
        })
    }

    /// The training thread, started now if needed; false (said) when it cannot start.
    fn ensure_worker(&mut self) -> bool {
        if self.worker.is_some() {
            return true;
        }
        let ctx = self.ctx.clone();
        match TrainWorker::spawn(move || {
            if let Some(ctx) = &ctx {
                ctx.request_repaint();
            }
        }) {
            Ok(worker) => {
                self.worker = Some(worker);
                true
            }
            Err(e) => {
                self.report(format!("could not start the training thread: {e}"), true);
                false
            }
        }
    }

    /// Trains `start` in this process's worker, predicting the canvas's image each epoch.
    pub(super) fn train_here(&mut self, start: TrainStart) {
        if !self.ensure_worker() {
            return;
        }
        let options = TrainOptions {
            device: self.training.device,
            // Painting in progress may leave odd files: train on the rest, say how many.
            skip_bad: true,
            // The user keeps painting: this run trains on the masks as they are now.
            snapshot_labels: true,
            // A GPU that fails to start must not stop the user: the CPU takes over, said in
            // the panel's log line.
            cpu_fallback: true,
        };
        let Some(worker) = &self.worker else { return };
        worker.send(WorkerCommand::Start(Box::new(start), options));
        if let (Some(index), Some(image)) = (self.selected, self.canvas_image()) {
            worker.send(WorkerCommand::PredictEachEpoch(Some(PredictRequest {
                tag: index as u64,
                image,
            })));
        }
    }

    /// Where this dataset's runs go: `<runs root>/<dataset folder name>`.
    pub fn runs_folder(&self) -> Option<PathBuf> {
        let session = self.session.as_ref()?;
        let name = session
            .root
            .file_name()
            .map_or_else(|| "dataset".into(), |n| n.to_string_lossy().into_owned());
        let root = self
            .training
            .runs_root
            .clone()
            .unwrap_or_else(|| workspace::data_dir().join("runs"));
        Some(root.join(name))
    }

    pub(super) fn refresh_runs(&mut self) {
        self.training.runs = self
            .runs_folder()
            .map(|f| crate::studio::panels::training::scan_runs(&f))
            .unwrap_or_default();
    }

    /// While a run trains: the process's resident memory for the status bar, read once a
    /// second.
    pub(super) fn sample_memory(&mut self, ctx: &egui::Context) {
        const EVERY: std::time::Duration = std::time::Duration::from_secs(1);
        if !self.worker.as_ref().is_some_and(|w| w.is_running()) {
            self.memory = None;
            return;
        }
        let now = std::time::Instant::now();
        if self
            .memory
            .is_none_or(|(at, _)| now.duration_since(at) >= EVERY)
        {
            self.memory = crate::core::memory::resident_bytes().map(|bytes| (now, bytes));
        }
        ctx.request_repaint_after(EVERY);
    }

    /// Applies the worker's events, within a small time budget per frame.
    pub(super) fn drain_worker(&mut self) {
        let Some(worker) = &self.worker else { return };
        for event in worker.drain(EVENT_BUDGET) {
            if let WorkerEvent::Train(TrainEvent::Prediction {
                tag,
                mask,
                confidence,
                aux,
            }) = event
            {
                if self.selected.map(|s| s as u64) == Some(tag) {
                    self.canvas.set_prediction(mask, confidence);
                    self.canvas.set_aux(aux);
                }
                continue;
            }
            // A finished run becomes the model the canvas and the Errors panel compare with.
            if let WorkerEvent::Finished(Ok(_)) = &event
                && let Some(run) = self.training.run_dir.clone()
            {
                self.commands.push(Command::UseModel(run));
            }
            if let WorkerEvent::Finished(Err(e)) = &event {
                self.message = Some((format!("training failed: {e}"), true));
            }
            if let WorkerEvent::Finished(_) = &event {
                // An idle window should not hold the run's peak (see core::memory).
                crate::core::memory::return_freed_memory();
            }
            let refresh = matches!(
                event,
                WorkerEvent::Finished(_) | WorkerEvent::Train(TrainEvent::Started(_))
            );
            self.training.on_event(&event);
            if refresh {
                self.refresh_runs();
            }
        }
    }
}
