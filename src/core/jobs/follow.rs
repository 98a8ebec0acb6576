//! The run follower: a named thread that follows one run folder, whoever trains it (a job on
//! Slurm, an SSH host or Kubernetes, a `roadseg train` in a terminal, another studio), for the
//! studio's progress bar, curves and compare views. Commands in (cancel, pause, resume through
//! the run's engine), events out, over the shared worker plumbing ([`crate::core::worker`]).
//!
//! Every [`TICK`] it polls metrics.jsonl through the [`MetricsTailer`] and looks for new
//! checkpoints and a summary; every [`LOOK_EVERY`] it asks the run's engine (job.json) where
//! the job stands, which for a copied SSH run also brings the new metrics and checkpoints here.
//! Once the engine says the job is over it stops asking (a re-submission makes a new follower).

use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, SyncSender, TryRecvError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use super::job_file::JobFile;
use super::tailer::MetricsTailer;
use super::{EngineStatus, JobError, engine};
use crate::core::train::run_dir::{CheckpointKind, MetricRecord, RunDir, Summary};
use crate::core::worker::{self, Events, Outbox};

/// How often the local files are looked at.
pub const TICK: Duration = Duration::from_millis(500);
/// How often the engine is asked (squeue, ssh, kubectl cost a process and a round trip).
pub const LOOK_EVERY: Duration = Duration::from_secs(3);
/// Events waiting for the studio: records come in batches, so few are needed.
const EVENT_CAPACITY: usize = 256;

/// What the follower is asked to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FollowCommand {
    /// Stop the job gracefully through its engine (it checkpoints).
    Cancel,
    Pause,
    Resume,
}

/// What the follower reports.
#[derive(Clone, Debug)]
pub enum FollowEvent {
    /// Records completed since the last event; `reset`: the file started over, so what the
    /// caller drew before is void.
    Records {
        reset: bool,
        records: Vec<MetricRecord>,
    },
    /// The engine's answer (`None` for a run without job.json: nothing to ask).
    Engine(Result<EngineStatus, String>),
    /// A checkpoint was written anew (the compare views reload the best one).
    Checkpoint(CheckpointKind),
    /// summary.json appeared or changed: the run ended (or stopped).
    Finished(Box<Summary>),
    /// A line for the user (a command's outcome, a damaged file).
    Log(String),
}

/// The follower of one run folder.
pub struct Follower {
    run: PathBuf,
    commands: Option<SyncSender<FollowCommand>>,
    events: Events<FollowEvent>,
    thread: Option<JoinHandle<()>>,
}

impl Follower {
    /// Starts following `run`; `wake` is called after each event is queued.
    pub fn spawn(run: PathBuf, wake: impl Fn() + Send + Sync + 'static) -> std::io::Result<Self> {
        let (commands, command_rx) = std::sync::mpsc::sync_channel(8);
        let (outbox, events) = worker::channel(EVENT_CAPACITY, worker::wake(wake));
        let thread = {
            let run = run.clone();
            worker::spawn("run-follower", move || follow(&run, &command_rx, &outbox))?
        };
        Ok(Self {
            run,
            commands: Some(commands),
            events,
            thread: Some(thread),
        })
    }

    pub fn run(&self) -> &Path {
        &self.run
    }

    /// Queues a command; `false` when the queue is full (the user clicks again).
    pub fn send(&self, command: FollowCommand) -> bool {
        self.commands
            .as_ref()
            .is_some_and(|c| c.try_send(command).is_ok())
    }

    /// Events received within `budget`.
    pub fn drain(&self, budget: Duration) -> Vec<FollowEvent> {
        self.events.drain(budget)
    }

    /// Waits up to `timeout` for the next event (tests and headless callers).
    pub fn recv_timeout(&self, timeout: Duration) -> Option<FollowEvent> {
        self.events.recv_timeout(timeout)
    }
}

impl Drop for Follower {
    fn drop(&mut self) {
        // Closing the command channel ends the loop at its next tick.
        self.commands = None;
        if let Some(thread) = self.thread.take() {
            self.events.join_discarding(thread);
        }
    }
}

/// A file's modification time, to notice a rewrite.
fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// The follower's loop; ends when the studio drops the follower.
fn follow(run: &Path, commands: &Receiver<FollowCommand>, outbox: &Outbox<FollowEvent>) {
    let dir = RunDir::new(run);
    let mut tailer = MetricsTailer::new(dir.metrics_path());
    let mut seen: [(CheckpointKind, Option<SystemTime>); 2] =
        [(CheckpointKind::Last, None), (CheckpointKind::Best, None)];
    for (kind, at) in &mut seen {
        *at = modified(&dir.checkpoint_dir(*kind).join("state.json"));
    }
    // A summary newer than the metrics says the run ended: reported at once. An older one
    // is a previous end of a run that goes on (resumed): reported when it is rewritten.
    let mut summary_at = match (modified(&dir.summary_path()), modified(&dir.metrics_path())) {
        (Some(summary), Some(metrics)) if summary < metrics => Some(summary),
        _ => None,
    };
    let mut last_look: Option<Instant> = None;
    let mut engine_over = false;
    loop {
        // Commands first: a Stop must not wait for a slow look.
        loop {
            match commands.try_recv() {
                Ok(command) => outbox.send(FollowEvent::Log(act(run, &command))),
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => return,
            };
        }
        if !engine_over && last_look.is_none_or(|at| at.elapsed() >= LOOK_EVERY) {
            last_look = Some(Instant::now());
            match JobFile::read(run) {
                Ok(job) => {
                    let answer = engine::look(run, &job);
                    if let Ok(look) = &answer {
                        engine_over = !look.status.state.is_active();
                    }
                    let event = answer.map(|l| l.status).map_err(|e| e.to_string());
                    if !outbox.send(FollowEvent::Engine(event)) {
                        return;
                    }
                }
                Err(JobError::NotSubmitted(_)) => engine_over = true,
                Err(e) => {
                    engine_over = true;
                    outbox.send(FollowEvent::Engine(Err(e.to_string())));
                }
            }
        }
        match tailer.poll() {
            Ok(update) if update.reset || !update.records.is_empty() => {
                if update.skipped > 0 {
                    outbox.send(FollowEvent::Log(format!(
                        "{}: {} damaged line(s) skipped",
                        tailer.path().display(),
                        update.skipped
                    )));
                }
                let event = FollowEvent::Records {
                    reset: update.reset,
                    records: update.records,
                };
                if !outbox.send(event) {
                    return;
                }
            }
            Ok(_) => {}
            Err(e) => {
                outbox.send(FollowEvent::Log(e.to_string()));
            }
        }
        for (kind, at) in &mut seen {
            let now = modified(&dir.checkpoint_dir(*kind).join("state.json"));
            if now.is_some() && now != *at {
                *at = now;
                outbox.send(FollowEvent::Checkpoint(*kind));
            }
        }
        let now = modified(&dir.summary_path());
        if now.is_some() && now != summary_at {
            summary_at = now;
            if let Ok(summary) = dir.read_summary() {
                outbox.send(FollowEvent::Finished(Box::new(summary)));
            }
        }
        std::thread::sleep(TICK);
    }
}

/// Carries out a command through the run's engine; the line says how it went.
fn act(run: &Path, command: &FollowCommand) -> String {
    let outcome = match command {
        FollowCommand::Cancel => engine::cancel(run).map(|job| {
            format!(
                "asked {} to stop job {} (it finishes its step and checkpoints)",
                job.engine.name(),
                job.job_id
            )
        }),
        FollowCommand::Pause | FollowCommand::Resume => {
            let pause = *command == FollowCommand::Pause;
            JobFile::read(run).and_then(|job| {
                engine::pause(&job, pause).map(|()| {
                    format!(
                        "{} job {} {}",
                        job.engine.name(),
                        job.job_id,
                        if pause { "paused" } else { "resumed" }
                    )
                })
            })
        }
    };
    let verb = match command {
        FollowCommand::Cancel => "cancel",
        FollowCommand::Pause => "pause",
        FollowCommand::Resume => "resume",
    };
    outcome.unwrap_or_else(|e| format!("could not {verb} the job: {e}"))
}
