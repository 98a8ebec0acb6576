//! The studio's compare side: which run the canvas compares with, its predictions, the Errors
//! panel's analyses, active learning and model-assisted labelling.

use std::path::PathBuf;

use super::{Command, NO_PREDICTION, Studio};
use crate::core::analysis::uncertainty::next_to_label;
use crate::core::analysis::worker::{AnalysisRequest, ModelEvent};
use crate::core::paint::accept::AcceptScope;
use crate::studio::compare::ViewMode;
use crate::studio::compare::errors::AnalysisKey;
use crate::studio::panels::training::EVENT_BUDGET;
use crate::studio::session::Session;

impl Studio {
    pub(super) fn apply_compare(&mut self, command: Command) {
        match command {
            Command::SetView(view) => self.state.view = view,
            Command::UseModel(run) => self.use_model(run),
            Command::SelectByName(name) => {
                let Some(session) = &self.session else { return };
                match session.entries.iter().position(|e| e.name == name) {
                    Some(index) => self.apply(Command::Select(index)),
                    None => {
                        let root = session.root.display().to_string();
                        self.report(format!("no image named {name:?} in {root}"), true);
                    }
                }
            }
            Command::OpenError(name) => {
                self.state.view = ViewMode::Difference;
                self.apply(Command::SelectByName(name));
            }
            Command::Accept(scope) => self.accept(Some(scope)),
            Command::AcceptPolygon => self.accept(None),
            Command::LabelNextUncertain => self.label_next_uncertain(),
            Command::Analyse { force } => self.request_analysis(force),
            _ => {}
        }
    }

    fn use_model(&mut self, run: PathBuf) {
        let ctx = self.ctx.clone();
        let wake = move || {
            if let Some(ctx) = &ctx {
                ctx.request_repaint();
            }
        };
        match self.model.load(&run, self.training.device, wake) {
            Ok(()) => self.message = Some((format!("loading the run {}", run.display()), false)),
            Err(e) => self.report(e, true),
        }
    }

    /// Applies the model worker's events.
    pub(super) fn drain_model(&mut self) {
        for event in self.model.drain(EVENT_BUDGET) {
            match event {
                ModelEvent::Loaded { run, device, .. } => {
                    self.message = Some((
                        format!("comparing with {} ({device})", run.display()),
                        false,
                    ));
                    if let (Some(index), Some(image)) = (self.selected, self.canvas_image()) {
                        self.model.predict(index as u64, image);
                    }
                }
                ModelEvent::LoadFailed { run, error } => {
                    let _ = run;
                    self.report(format!("could not open the run: {error}"), true);
                }
                ModelEvent::Prediction {
                    tag,
                    prediction,
                    seconds,
                } => {
                    if self.selected.map(|s| s as u64) == Some(tag) {
                        self.inference = Some((tag, seconds));
                        let prediction = *prediction;
                        self.canvas
                            .set_prediction(prediction.mask, prediction.confidence);
                        self.canvas.set_aux(prediction.aux);
                    }
                }
                ModelEvent::Progress { tag, done, total } => self.errors.progress(tag, done, total),
                ModelEvent::Analysis(analysis) => {
                    if let Some(analysis) = self.errors.finished(*analysis) {
                        self.dataset_panel.uncertainty = analysis
                            .uncertain
                            .iter()
                            .map(|u| (u.name.clone(), u.mean_entropy))
                            .collect();
                    }
                }
                ModelEvent::Failed { tag, error } => {
                    let analysing = self.errors.running.as_ref().is_some_and(|r| r.0 == tag);
                    match analysing {
                        true => self.errors.failed(tag, error),
                        false => self.report(error, true),
                    }
                }
            }
        }
    }

    /// What the Errors panel should show now: the loaded run at this label revision.
    pub fn analysis_key(&self) -> Option<AnalysisKey> {
        let loaded = self.model.loaded.as_ref()?;
        Some(AnalysisKey {
            run: loaded.run.clone(),
            checkpoint_stamp: loaded.stamp,
            scope: self.errors.scope,
            labels: self.label_revision,
        })
    }

    /// Starts an analysis when the Errors panel is on screen and has none for this run.
    pub(super) fn keep_analysis_current(&mut self) {
        let visible = self.state.show_training && self.bottom == super::BottomTab::Errors;
        if visible
            && self
                .analysis_key()
                .is_some_and(|k| self.errors.needs_auto(&k))
        {
            self.request_analysis(false);
        }
    }

    fn request_analysis(&mut self, force: bool) {
        // The analysis reads masks from disk: write the one being painted first.
        self.save_current();
        let (Some(key), Some(session)) = (self.analysis_key(), &self.session) else {
            return;
        };
        if force {
            self.errors.error = None;
        } else if !self.errors.needs_auto(&key) {
            return;
        }
        let request = AnalysisRequest {
            tag: 0,
            data: session.root.clone(),
            format: Some(session.format),
            scope: key.scope,
        };
        let tag = self.errors.start(key);
        if !self.model.analyse(AnalysisRequest { tag, ..request }) {
            self.errors.failed(
                tag,
                "the model thread is busy: press Recompute again".into(),
            );
        }
    }

    /// The Errors tab under the canvas.
    pub(super) fn errors_ui(&mut self, ui: &mut egui::Ui) {
        let key = self.analysis_key();
        let model = match (&self.model.loaded, &self.model.requested) {
            (Some(m), _) => format!("{} on {}", m.describe(), m.device),
            (None, Some(run)) => format!("loading {}", run.display()),
            (None, None) => "no model".into(),
        };
        self.errors.ui(ui, key.as_ref(), &model, &mut self.commands);
    }

    /// Accepts the prediction within `scope` (`None`: the polygon being drawn).
    fn accept(&mut self, scope: Option<AcceptScope>) {
        if !self.session.as_ref().is_some_and(Session::editable) {
            self.report(
                "this dataset is view only: use File > Convert to native to label it".into(),
                true,
            );
            return;
        }
        let threshold = self.state.accept_threshold_byte();
        let result = match scope {
            Some(scope) => self.canvas.accept(scope, threshold),
            None => self.canvas.accept_polygon(threshold),
        };
        self.message = Some(match result {
            Ok(true) => ("accepted the prediction (Ctrl+Z undoes it)".into(), false),
            Ok(false) => ("nothing to accept there at this confidence".into(), false),
            Err(_) => (NO_PREDICTION.into(), true),
        });
    }

    /// Active learning: opens the unlabelled image the model is least sure about.
    fn label_next_uncertain(&mut self) {
        let Some(run) = self.model.loaded.as_ref().map(|m| m.run.clone()) else {
            self.report("no model: open a run first".into(), true);
            return;
        };
        let Some(analysis) = self.errors.latest_for(&run) else {
            self.report("no analysis yet: open the Errors panel".into(), true);
            return;
        };
        let Some(session) = &self.session else { return };
        let selected = self.selected;
        let next = next_to_label(&analysis.uncertain, |name| {
            session
                .entries
                .iter()
                .enumerate()
                .any(|(i, e)| e.name == name && !e.labelled && Some(i) != selected)
        });
        match next {
            Some(u) => {
                let name = u.name.clone();
                self.message = Some((
                    format!(
                        "{name}: the most uncertain unlabelled image (entropy {:.3})",
                        u.mean_entropy
                    ),
                    false,
                ));
                self.apply(Command::SelectByName(name));
            }
            None => self.report(
                "every image the model was unsure about is labelled now".into(),
                false,
            ),
        }
    }
}
