//! The model worker: a named thread that holds one trained run's weights and answers the
//! studio's questions about them — the prediction of the image on the canvas, and the error
//! analysis of a dataset (per-image scores, confusion, uncertainty of the unlabelled images).
//!
//! One thread for both, so the weights are loaded once; an analysis checks for new commands
//! between two images, so a prediction for the canvas waits for at most one image, and a new
//! analysis or a new run cancels the one in progress. Commands and events go over bounded
//! channels; a wake-up closure (the GUI's `request_repaint`) says when to read events.

use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, SyncSender, TryRecvError, TrySendError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::core::worker::{self, Events, Outbox};

use image::RgbImage;

use super::scores::{ImageScore, SortKey, sort_scores};
use super::uncertainty::{Uncertainty, rank_by_uncertainty};
use crate::core::dataset::info::load_pair;
use crate::core::dataset::{DatasetIndex, Format, Problem, Split};
use crate::core::device::{DeviceChoice, resolve};
use crate::core::metrics::ConfusionMatrix;
use crate::core::predict::{Prediction, Predictor};

/// `f()` and the seconds it took.
fn timed<T>(f: impl FnOnce() -> T) -> (T, f64) {
    let start = Instant::now();
    let out = f();
    (out, start.elapsed().as_secs_f64())
}

/// Which labelled images an analysis scores.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Scope {
    /// The validation split (what the run did not train on).
    #[default]
    Validation,
    /// Every labelled image.
    AllLabelled,
}

impl Scope {
    pub fn label(self) -> &'static str {
        match self {
            Scope::Validation => "validation split",
            Scope::AllLabelled => "all labelled images",
        }
    }
}

/// An analysis to run with the loaded weights.
#[derive(Clone, Debug)]
pub struct AnalysisRequest {
    /// Returned with the result, so the caller can file it (e.g. under its label revision).
    pub tag: u64,
    pub data: PathBuf,
    pub format: Option<Format>,
    pub scope: Scope,
}

/// The answer to an [`AnalysisRequest`].
#[derive(Clone, Debug)]
pub struct Analysis {
    pub tag: u64,
    pub run: PathBuf,
    pub scope: Scope,
    /// Class names, by id.
    pub classes: Vec<String>,
    /// Worst first by mean IoU.
    pub images: Vec<ImageScore>,
    /// All scored images together.
    pub confusion: ConfusionMatrix,
    /// Unlabelled images, most uncertain first.
    pub uncertain: Vec<Uncertainty>,
    /// Files that could not be read (left out).
    pub skipped: Vec<Problem>,
    pub elapsed: Duration,
}

/// What the worker is asked to do.
#[derive(Clone, Debug)]
pub enum ModelCommand {
    /// Load a run's best weights (its last ones when it has no best yet).
    Load {
        run: PathBuf,
        device: DeviceChoice,
    },
    /// Predict an image; `tag` comes back with the answer.
    Predict {
        tag: u64,
        image: RgbImage,
    },
    Analyse(AnalysisRequest),
    /// Stop the analysis in progress.
    Cancel,
}

/// What the worker reports.
#[derive(Clone, Debug)]
pub enum ModelEvent {
    Loaded {
        run: PathBuf,
        checkpoint: PathBuf,
        classes: Vec<String>,
        device: String,
    },
    /// The run could not be loaded (not a run, no checkpoint, corrupt weights).
    LoadFailed {
        run: PathBuf,
        error: String,
    },
    Prediction {
        tag: u64,
        prediction: Box<Prediction>,
        /// How long the prediction took (preparation, forward pass, resize to the image).
        seconds: f64,
    },
    /// An analysis advanced: `done` of `total` images.
    Progress {
        tag: u64,
        done: usize,
        total: usize,
    },
    Analysis(Box<Analysis>),
    /// A prediction or an analysis failed; the worker goes on.
    Failed {
        tag: u64,
        error: String,
    },
}

/// Commands waiting before `send` drops the oldest prediction request: a few, since the UI
/// sends one per image change at most.
const COMMAND_CAPACITY: usize = 16;
/// Events waiting for the UI (progress, results); the worker blocks beyond that.
const EVENT_CAPACITY: usize = 256;

pub struct ModelWorker {
    commands: Option<SyncSender<ModelCommand>>,
    events: Events<ModelEvent>,
    thread: Option<JoinHandle<()>>,
}

impl ModelWorker {
    /// Starts the thread; `wake` is called after each event is queued.
    pub fn spawn(wake: impl Fn() + Send + Sync + 'static) -> std::io::Result<Self> {
        let (commands, command_rx) = std::sync::mpsc::sync_channel(COMMAND_CAPACITY);
        let (outbox, events) = worker::channel(EVENT_CAPACITY, worker::wake(wake));
        let thread = worker::spawn("model-worker", move || {
            let mut state = State {
                predictor: None,
                commands: command_rx,
                outbox,
            };
            state.run();
        })?;
        Ok(Self {
            commands: Some(commands),
            events,
            thread: Some(thread),
        })
    }

    /// Queues a command; when the queue is full the command is dropped and `false` returned
    /// (the UI sends again on the next change).
    pub fn send(&self, command: ModelCommand) -> bool {
        let Some(commands) = &self.commands else {
            return false;
        };
        match commands.try_send(command) {
            Ok(()) => true,
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => false,
        }
    }

    /// Events received within `budget`.
    pub fn drain(&self, budget: Duration) -> Vec<ModelEvent> {
        self.events.drain(budget)
    }

    /// Waits up to `timeout` for the next event (tests and headless callers).
    pub fn recv_timeout(&self, timeout: Duration) -> Option<ModelEvent> {
        self.events.recv_timeout(timeout)
    }
}

impl Drop for ModelWorker {
    fn drop(&mut self) {
        // Closing the command channel ends the thread's loop; an analysis sees it between two
        // images. Drain events so a worker blocked on a full queue can finish.
        self.commands = None;
        if let Some(thread) = self.thread.take() {
            self.events.join_discarding(thread);
        }
    }
}

struct State {
    predictor: Option<(PathBuf, Predictor)>,
    commands: Receiver<ModelCommand>,
    outbox: Outbox<ModelEvent>,
}

/// Why an analysis ended early.
enum Interrupted {
    /// A command that replaces it (new run, new analysis, cancel).
    By(ModelCommand),
    /// The studio closed.
    Closed,
}

impl State {
    /// The receiver is gone when the studio closes: nothing to tell.
    fn send(&self, event: ModelEvent) {
        self.outbox.send(event);
    }

    fn run(&mut self) {
        let mut next = None;
        loop {
            let command = match next.take() {
                Some(c) => c,
                None => match self.commands.recv() {
                    Ok(c) => c,
                    Err(_) => return,
                },
            };
            match command {
                ModelCommand::Analyse(request) => match self.analyse(&request) {
                    Ok(Some(interrupt)) => match interrupt {
                        Interrupted::By(command) => next = Some(command),
                        Interrupted::Closed => return,
                    },
                    Ok(None) => {}
                    Err(error) => self.send(ModelEvent::Failed {
                        tag: request.tag,
                        error,
                    }),
                },
                other => self.handle(other),
            }
        }
    }

    /// Everything but an analysis (which [`State::run`] handles).
    fn handle(&mut self, command: ModelCommand) {
        match command {
            ModelCommand::Load { run, device } => self.load(&run, device),
            ModelCommand::Predict { tag, image } => {
                let event = match &self.predictor {
                    None => ModelEvent::Failed {
                        tag,
                        error: "no model loaded".into(),
                    },
                    Some((_, predictor)) => match timed(|| predictor.predict_full(&image)) {
                        (Ok(prediction), seconds) => ModelEvent::Prediction {
                            tag,
                            prediction: Box::new(prediction),
                            seconds,
                        },
                        (Err(e), _) => ModelEvent::Failed {
                            tag,
                            error: format!("prediction failed: {e}"),
                        },
                    },
                };
                self.send(event);
            }
            ModelCommand::Cancel | ModelCommand::Analyse(_) => {}
        }
    }

    fn load(&mut self, run: &Path, device: DeviceChoice) {
        self.predictor = None;
        let loaded = resolve(device)
            .map_err(|e| e.to_string())
            .and_then(|(device, name)| {
                Predictor::load_best_or_last(run, device)
                    .map(|p| (p, name))
                    .map_err(|e| e.to_string())
            });
        match loaded {
            Ok((predictor, device)) => {
                self.send(ModelEvent::Loaded {
                    run: run.to_path_buf(),
                    checkpoint: predictor.checkpoint().to_path_buf(),
                    classes: predictor.classes().iter().map(|c| c.name.clone()).collect(),
                    device,
                });
                self.predictor = Some((run.to_path_buf(), predictor));
            }
            Err(error) => self.send(ModelEvent::LoadFailed {
                run: run.to_path_buf(),
                error,
            }),
        }
    }

    /// Runs `request`; `Ok(Some(_))` when a command interrupted it.
    fn analyse(&mut self, request: &AnalysisRequest) -> Result<Option<Interrupted>, String> {
        let start = Instant::now();
        let Some((run, _)) = &self.predictor else {
            return Err("no model loaded".into());
        };
        let run = run.clone();
        let index = DatasetIndex::open(&request.data, request.format).map_err(|e| e.to_string())?;
        let classes: Vec<String> = self
            .predictor
            .as_ref()
            .map(|(_, p)| p.classes().iter().map(|c| c.name.clone()).collect())
            .unwrap_or_default();
        let ours: Vec<String> = index.classes.names();
        if ours != classes {
            return Err(format!(
                "{}: its classes {ours:?} differ from the model's {classes:?}",
                index.root.display()
            ));
        }
        let scored: Vec<_> = index
            .samples
            .iter()
            .filter(|s| s.label.is_some())
            .filter(|s| request.scope == Scope::AllLabelled || s.split == Split::Val)
            .collect();
        let unlabelled: Vec<_> = index.samples.iter().filter(|s| s.label.is_none()).collect();
        let total = scored.len() + unlabelled.len();
        let mut images = Vec::with_capacity(scored.len());
        let mut uncertain = Vec::with_capacity(unlabelled.len());
        let mut confusion = ConfusionMatrix::new(classes.len());
        let mut skipped = Vec::new();
        let progress = |done| ModelEvent::Progress {
            tag: request.tag,
            done,
            total,
        };
        self.send(progress(0));
        for (done, sample) in scored.iter().chain(&unlabelled).enumerate() {
            if let Some(interrupt) = self.between_images() {
                return Ok(Some(interrupt));
            }
            let Some((_, predictor)) = &self.predictor else {
                return Err("the model was unloaded".into());
            };
            match load_pair(&index, sample) {
                Ok((image, truth)) => {
                    let prediction = predictor.predict_full(&image).map_err(|e| e.to_string())?;
                    match truth {
                        Some(truth) => {
                            let score = ImageScore::new(
                                &sample.name,
                                sample.split.as_str(),
                                classes.len(),
                                &truth.data,
                                &prediction.mask.data,
                            );
                            confusion.merge(&score.confusion);
                            images.push(score);
                        }
                        None => uncertain.push(Uncertainty {
                            name: sample.name.clone(),
                            mean_entropy: prediction.mean_entropy,
                        }),
                    }
                }
                Err(problem) => skipped.push(problem),
            }
            self.send(progress(done + 1));
        }
        sort_scores(&mut images, SortKey::MeanIou);
        rank_by_uncertainty(&mut uncertain);
        self.send(ModelEvent::Analysis(Box::new(Analysis {
            tag: request.tag,
            run,
            scope: request.scope,
            classes,
            images,
            confusion,
            uncertain,
            skipped,
            elapsed: start.elapsed(),
        })));
        Ok(None)
    }

    /// Handles predictions that arrived meanwhile; returns a command that ends the analysis.
    fn between_images(&mut self) -> Option<Interrupted> {
        loop {
            match self.commands.try_recv() {
                Ok(ModelCommand::Predict { tag, image }) => {
                    self.handle(ModelCommand::Predict { tag, image })
                }
                Ok(other) => return Some(Interrupted::By(other)),
                Err(TryRecvError::Empty) => return None,
                Err(TryRecvError::Disconnected) => return Some(Interrupted::Closed),
            }
        }
    }
}
