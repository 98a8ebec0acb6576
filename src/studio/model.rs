//! The studio's link to a trained run: the core's [`ModelWorker`] thread, started on first use,
//! which predicts the image on the canvas and analyses the dataset for the Errors panel.

use std::path::{Path, PathBuf};
use std::time::Duration;

use image::RgbImage;

use crate::core::analysis::worker::{AnalysisRequest, ModelCommand, ModelEvent, ModelWorker};
use crate::core::device::DeviceChoice;
use crate::core::train::run_dir::RunDir;

/// A run whose weights the worker holds.
#[derive(Clone, Debug, PartialEq)]
pub struct LoadedModel {
    pub run: PathBuf,
    pub checkpoint: PathBuf,
    pub classes: Vec<String>,
    pub device: String,
    /// The weights file's modification time (ns since the epoch): a run that trained further
    /// is a new model for the caches.
    pub stamp: u128,
}

impl LoadedModel {
    /// One line for the panels: run and checkpoint names.
    pub fn describe(&self) -> String {
        let name = |p: &Path| {
            p.file_name()
                .map_or_else(String::new, |n| n.to_string_lossy().into_owned())
        };
        format!("{} ({} weights)", name(&self.run), name(&self.checkpoint))
    }
}

#[derive(Default)]
pub struct ModelLink {
    worker: Option<ModelWorker>,
    /// The run asked for last (loaded or not yet).
    pub requested: Option<PathBuf>,
    pub loaded: Option<LoadedModel>,
}

impl ModelLink {
    /// Asks the worker (started now if needed) to load `run`. A folder that is not a run is
    /// refused at once, with the reason.
    pub fn load(
        &mut self,
        run: &Path,
        device: DeviceChoice,
        wake: impl Fn() + Send + Sync + 'static,
    ) -> Result<(), String> {
        if !RunDir::new(run).exists() {
            return Err(format!(
                "{}: not a roadseg run (no config.json)",
                run.display()
            ));
        }
        if self.worker.is_none() {
            let worker = ModelWorker::spawn(wake)
                .map_err(|e| format!("could not start the model thread: {e}"))?;
            self.worker = Some(worker);
        }
        self.loaded = None;
        self.requested = Some(run.to_path_buf());
        self.send(ModelCommand::Load {
            run: run.to_path_buf(),
            device,
        });
        Ok(())
    }

    fn send(&self, command: ModelCommand) -> bool {
        self.worker.as_ref().is_some_and(|w| w.send(command))
    }

    /// Predicts `image` with the loaded run; the answer comes back tagged.
    pub fn predict(&self, tag: u64, image: RgbImage) -> bool {
        self.loaded.is_some() && self.send(ModelCommand::Predict { tag, image })
    }

    pub fn analyse(&self, request: AnalysisRequest) -> bool {
        self.loaded.is_some() && self.send(ModelCommand::Analyse(request))
    }

    /// The worker's events of this frame; keeps track of what is loaded.
    pub fn drain(&mut self, budget: Duration) -> Vec<ModelEvent> {
        let Some(worker) = &self.worker else {
            return Vec::new();
        };
        let events = worker.drain(budget);
        for event in &events {
            match event {
                ModelEvent::Loaded {
                    run,
                    checkpoint,
                    classes,
                    device,
                } if self.requested.as_ref() == Some(run) => {
                    let stamp = std::fs::metadata(checkpoint.join("model.bpk"))
                        .and_then(|m| m.modified())
                        .ok()
                        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                        .map_or(0, |d| d.as_nanos());
                    self.loaded = Some(LoadedModel {
                        run: run.clone(),
                        checkpoint: checkpoint.clone(),
                        classes: classes.clone(),
                        device: device.clone(),
                        stamp,
                    });
                }
                ModelEvent::LoadFailed { run, .. } if self.requested.as_ref() == Some(run) => {
                    self.requested = None;
                }
                _ => {}
            }
        }
        events
    }
}
