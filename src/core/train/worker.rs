//! The training worker: a named thread that runs [`train`] for the studio. Commands go in,
//! events come out over a bounded channel, and a wake-up closure (the GUI passes its
//! `request_repaint`) tells the receiver there is something to read. Pause, resume, stop and
//! predictions act on the run in progress at once, between two steps.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::SyncSender;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use super::control::{Control, PredictRequest};
use super::run_dir::Summary;
use super::trainer::{TrainEvent, TrainOptions, TrainStart, train};
use crate::core::worker::{self, Events, Outbox, panic_message};

/// What the worker is asked to do.
#[derive(Debug, Clone)]
pub enum WorkerCommand {
    Start(Box<TrainStart>, TrainOptions),
    Pause,
    Resume,
    /// Finish the current step, write a checkpoint, end the run.
    Stop,
    /// Predict this image with the current weights, once.
    Predict(PredictRequest),
    /// Predict this image after every epoch (`None`: stop doing so).
    PredictEachEpoch(Option<PredictRequest>),
}

/// What the worker reports, in order.
#[derive(Debug, Clone)]
pub enum WorkerEvent {
    Train(TrainEvent),
    Paused,
    Resumed,
    /// A Start arrived while a run was going; it was ignored.
    Busy,
    /// The run ended: its summary, or why it failed (errors and panics alike).
    Finished(Result<Summary, String>),
}

/// Events waiting for the receiver before the worker blocks (back-pressure, bounded memory).
const EVENT_CAPACITY: usize = 4096;

pub struct TrainWorker {
    starts: Option<SyncSender<(TrainStart, TrainOptions)>>,
    outbox: Outbox<WorkerEvent>,
    events: Events<WorkerEvent>,
    control: Arc<Mutex<Arc<Control>>>,
    running: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl TrainWorker {
    /// Starts the worker thread; `wake` is called after each event is queued.
    pub fn spawn(wake: impl Fn() + Send + Sync + 'static) -> std::io::Result<Self> {
        let (starts, start_rx) = std::sync::mpsc::sync_channel::<(TrainStart, TrainOptions)>(1);
        let (outbox, events) = worker::channel(EVENT_CAPACITY, worker::wake(wake));
        let control = Arc::new(Mutex::new(Arc::new(Control::default())));
        let running = Arc::new(AtomicBool::new(false));
        let thread = {
            let (outbox, control, running) = (outbox.clone(), control.clone(), running.clone());
            worker::spawn("train-worker", move || {
                while let Ok((start, options)) = start_rx.recv() {
                    let run_control = control.lock().map(|c| c.clone()).unwrap_or_default();
                    let send = |event: WorkerEvent| {
                        // The receiver is gone when the studio closes: nothing to tell.
                        outbox.send(event);
                    };
                    let outcome = catch_unwind(AssertUnwindSafe(|| {
                        train(
                            start,
                            &options,
                            &mut |e| send(WorkerEvent::Train(e)),
                            &run_control,
                        )
                    }));
                    let result = match outcome {
                        Ok(Ok(summary)) => Ok(summary),
                        Ok(Err(e)) => Err(e.to_string()),
                        Err(panic) => Err(format!(
                            "the training worker crashed: {}",
                            panic_message(panic.as_ref())
                        )),
                    };
                    running.store(false, Ordering::SeqCst);
                    send(WorkerEvent::Finished(result));
                }
            })?
        };
        Ok(Self {
            starts: Some(starts),
            outbox,
            events,
            control,
            running,
            thread: Some(thread),
        })
    }

    /// Whether a run is in progress.
    pub fn is_running(&self) -> bool {
        self.running.load(Ordering::SeqCst)
    }

    fn current(&self) -> Option<Arc<Control>> {
        self.control.lock().ok().map(|c| c.clone())
    }

    fn notify(&self, event: WorkerEvent) {
        // When the queue is full of progress the UI has not read, the event is dropped: the
        // UI sees the state change through the next events anyway.
        self.outbox.offer(event);
    }

    pub fn send(&self, command: WorkerCommand) {
        match command {
            WorkerCommand::Start(start, options) => {
                if self.is_running() {
                    self.notify(WorkerEvent::Busy);
                    return;
                }
                // A fresh control per run: a stop or pause of the last run must not leak in.
                if let Ok(mut slot) = self.control.lock() {
                    *slot = Arc::new(Control::default());
                }
                self.running.store(true, Ordering::SeqCst);
                let sent = self
                    .starts
                    .as_ref()
                    .is_some_and(|s| s.send((*start, options)).is_ok());
                if !sent {
                    self.running.store(false, Ordering::SeqCst);
                    self.notify(WorkerEvent::Finished(Err(
                        "the training worker is not running".into(),
                    )));
                }
            }
            WorkerCommand::Pause => {
                if let Some(c) = self.current() {
                    c.pause();
                    self.notify(WorkerEvent::Paused);
                }
            }
            WorkerCommand::Resume => {
                if let Some(c) = self.current() {
                    c.resume();
                    self.notify(WorkerEvent::Resumed);
                }
            }
            WorkerCommand::Stop => {
                if let Some(c) = self.current() {
                    c.stop();
                }
            }
            WorkerCommand::Predict(request) => {
                if let Some(c) = self.current() {
                    c.predict_now(request);
                }
            }
            WorkerCommand::PredictEachEpoch(request) => {
                if let Some(c) = self.current() {
                    c.predict_each_epoch(request);
                }
            }
        }
    }

    /// Events received within `budget` (the UI calls this once a frame with a few ms).
    pub fn drain(&self, budget: Duration) -> Vec<WorkerEvent> {
        self.events.drain(budget)
    }

    /// Waits up to `timeout` for the next event (tests and headless callers).
    pub fn recv_timeout(&self, timeout: Duration) -> Option<WorkerEvent> {
        self.events.recv_timeout(timeout)
    }
}

impl Drop for TrainWorker {
    fn drop(&mut self) {
        // Stop the run (it checkpoints), close the start channel, and let the thread end. The
        // event receiver is dropped with `self`, so a blocked send fails and returns.
        if let Some(c) = self.current() {
            c.stop();
            c.resume();
        }
        self.starts = None;
        if let Some(thread) = self.thread.take() {
            // Unblock a worker waiting on a full event queue before joining it.
            self.events.join_discarding(thread);
        }
    }
}
