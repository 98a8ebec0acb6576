//! Runs the studio follows rather than trains: a run submitted from the training panel to
//! Slurm, an SSH host or Kubernetes ("Run on"), or any run folder opened with File > Open run…
//! (whoever trains it). The core's [`Follower`] tails its metrics and asks its engine; its
//! events drive the same progress bar and curves as a run trained here, Pause and Stop act
//! through the engine, and each new best checkpoint becomes the model the compare views use.

use std::path::{Path, PathBuf};
use std::sync::mpsc::TryRecvError;

use super::{Command, Studio};
use crate::core::jobs::follow::{FollowCommand, FollowEvent, Follower};
use crate::core::jobs::submit::{SubmitOptions, Submitted, submit};
use crate::core::jobs::{EngineState, job_file::JobFile};
use crate::core::train::run_dir::{CheckpointKind, RunDir};
use crate::core::train::trainer::{StartInfo, TrainStart};
use crate::core::worker::{self, Events};
use crate::studio::panels::training::{Curves, EVENT_BUDGET, Progress, RunState};

/// A submission in progress (preparing the run folder, copying, sbatch): off the UI thread.
pub struct Submission {
    result: Events<SubmissionAnswer>,
}

/// What a submission thread answers: its log lines (copying, sharing) and its outcome.
type SubmissionAnswer = (Vec<String>, Result<Vec<Submitted>, String>);

impl Studio {
    fn wake(&self) -> impl Fn() + Send + Sync + 'static {
        let ctx = self.ctx.clone();
        move || {
            if let Some(ctx) = &ctx {
                ctx.request_repaint();
            }
        }
    }

    /// Train, when "Run on" is not this computer: prepares and submits a new run in the
    /// background, then follows it. Returns false when the run is for this computer.
    pub(super) fn submit_training(&mut self) -> bool {
        if !matches!(self.training.run_on.target(), Ok(Some(_)) | Err(_)) {
            return false;
        }
        if let Some(start) = self.new_run() {
            self.submit_start(start);
        }
        true
    }

    /// Runs > Resume: continues `run` from its checkpoint, here or where "Run on" says.
    pub(super) fn resume_run(&mut self, run: PathBuf) {
        let start = TrainStart::Resume {
            run,
            epochs: None,
            config: None,
        };
        match self.training.run_on.target() {
            Ok(None) => {
                self.unfollow();
                self.train_here(start);
            }
            _ => self.submit_start(start),
        }
    }

    /// Prepares and submits `start` where "Run on" says, off the UI thread.
    fn submit_start(&mut self, start: TrainStart) {
        let target = match self.training.run_on.target() {
            Ok(Some(target)) => target,
            Ok(None) => return,
            Err(e) => {
                self.report(e, true);
                return;
            }
        };
        if self.submission.is_some() {
            self.report("a submission is already under way".into(), true);
            return;
        }
        let options = SubmitOptions {
            target,
            device: self.training.device,
            // As a run here: painting in progress may leave odd files.
            skip_bad: true,
            program: self.training.run_on.program(),
        };
        let (outbox, events) = worker::channel(1, worker::wake(self.wake()));
        let spawned = worker::spawn("submit", move || {
            let mut lines = Vec::new();
            let result = submit(vec![start], &options, &mut |line| lines.push(line))
                .map_err(|e| e.to_string());
            outbox.send((lines, result));
        });
        match spawned {
            Ok(_) => {
                self.training.push_log(format!(
                    "submitting to {} ...",
                    self.training.run_on.engine.label()
                ));
                self.training.state = RunState::Running;
                self.submission = Some(Submission { result: events });
            }
            Err(e) => self.report(format!("could not start the submission: {e}"), true),
        }
    }

    /// Picks up a finished submission: its run is followed from now on.
    pub(super) fn poll_submission(&mut self) {
        let Some(submission) = &self.submission else {
            return;
        };
        let (lines, result) = match submission.result.try_recv() {
            Ok(answer) => answer,
            Err(TryRecvError::Empty) => return,
            Err(TryRecvError::Disconnected) => {
                (Vec::new(), Err("the submission thread died".into()))
            }
        };
        self.submission = None;
        for line in lines {
            self.training.push_log(line);
        }
        match result {
            Ok(submitted) => {
                for Submitted { run, job } in &submitted {
                    self.training.push_log(format!(
                        "{} job {}: {}",
                        job.engine.name(),
                        job.job_id,
                        run.display()
                    ));
                }
                if let Some(first) = submitted.into_iter().next() {
                    self.follow_run(first.run);
                }
                self.refresh_runs();
            }
            Err(e) => {
                self.training.state = RunState::Idle;
                self.training.push_log(format!("submission failed: {e}"));
                self.report(format!("submission failed: {e}"), true);
            }
        }
    }

    /// File > Open run…: asks for a run folder and follows it.
    pub(super) fn pick_run(&mut self) {
        if let Some(dir) = rfd::FileDialog::new().pick_folder() {
            self.follow_run(dir);
        }
    }

    /// Follows the run folder `run` live: curves from its metrics, progress, its engine's
    /// state when it has a job, the compare views on its best checkpoint.
    pub(super) fn follow_run(&mut self, run: PathBuf) {
        let dir = RunDir::new(&run);
        let config = match dir.read_config() {
            Ok(config) => config,
            Err(e) => {
                self.report(format!("cannot follow {}: {e}", run.display()), true);
                return;
            }
        };
        if self.worker.as_ref().is_some_and(|w| w.is_running()) {
            self.report(
                "a run is training here: stop it before following another".into(),
                true,
            );
            return;
        }
        let follower = match Follower::spawn(run.clone(), self.wake()) {
            Ok(f) => f,
            Err(e) => {
                self.report(format!("could not start following: {e}"), true);
                return;
            }
        };
        let engine = JobFile::read(&run).ok();
        // Until the first validation says how many steps an epoch has: the label snapshot's
        // training images (what the run trains on) per batch.
        let train_images = count_files(&run.join("labels").join("train"));
        let batch = config.train.batch_size.max(1);
        let steps_per_epoch = (train_images / batch).max(1);
        let what = match &engine {
            Some(job) => format!("{} job {}", job.engine.name(), job.job_id),
            None => "followed (no job engine)".into(),
        };
        self.training.curves = Curves::default();
        self.training.run_dir = Some(run.clone());
        self.training.following = Some(run.clone());
        // A run with a job is ours to pause and stop (through its engine): the panel shows it
        // running until the engine says otherwise. One without is only watched: the panel
        // stays idle, free to train here.
        self.training.state = match engine {
            Some(_) => RunState::Running,
            None => RunState::Idle,
        };
        self.training.progress = Progress {
            start: Some(StartInfo {
                run_dir: run.clone(),
                device: what,
                resumed: false,
                epochs: config.train.epochs,
                start_epoch: 0,
                steps_per_epoch,
                total_steps: steps_per_epoch * config.train.epochs,
                start_step: 0,
                train_images,
                val_images: 0,
                batch_size: batch,
                class_names: config.classes.iter().map(|c| c.name.clone()).collect(),
                // A followed run was picked by whoever started it; its log says how.
                choice: None,
            }),
            ..Progress::default()
        };
        let name = run
            .file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
        self.training.push_log(format!("following {name}"));
        self.follower = Some(follower);
        if dir.best_or_last().is_ok() {
            self.commands.push(Command::UseModel(run));
        }
    }

    /// Pause, Resume and Stop of a followed run go to its engine; `false` when no followed run
    /// takes them (a run trained here does).
    pub(super) fn send_follower(&mut self, command: FollowCommand) -> bool {
        let Some(follower) = &self.follower else {
            return false;
        };
        let has_job = JobFile::read(follower.run()).is_ok();
        if !has_job {
            self.report(
                "this run was not started by a job engine: stop it where it runs".into(),
                true,
            );
            return true;
        }
        if !follower.send(command) {
            self.report("the follower is busy: try again".into(), true);
        }
        true
    }

    /// Applies the follower's events, within the frame's budget.
    pub(super) fn drain_follower(&mut self) {
        let Some(follower) = &self.follower else {
            return;
        };
        let run = follower.run().to_path_buf();
        for event in follower.drain(EVENT_BUDGET) {
            self.on_follow_event(&run, event);
        }
    }

    fn on_follow_event(&mut self, run: &Path, event: FollowEvent) {
        let panel = &mut self.training;
        match event {
            FollowEvent::Records { reset, records } => {
                if reset {
                    panel.curves = Curves::default();
                }
                for record in &records {
                    panel.curves.add(record);
                    panel.progress.add(record);
                    // The first validation closes epoch 1: the exact steps per epoch.
                    if let Some(start) = panel.progress.start.as_mut()
                        && record.split == "val"
                        && record.epoch == 1
                        && record.step > 0
                    {
                        start.steps_per_epoch = record.step;
                        start.total_steps = record.step * start.epochs;
                    }
                }
            }
            FollowEvent::Engine(Ok(status)) => {
                panel.state = match status.state {
                    EngineState::Queued | EngineState::Running => RunState::Running,
                    EngineState::Suspended => RunState::Paused,
                    _ => RunState::Idle,
                };
                if let (Some(start), Ok(job)) = (panel.progress.start.as_mut(), JobFile::read(run))
                {
                    start.device = format!(
                        "{} job {}: {}{}",
                        job.engine.name(),
                        job.job_id,
                        status.state,
                        status.detail.map(|d| format!(" ({d})")).unwrap_or_default()
                    );
                }
            }
            FollowEvent::Engine(Err(e)) => panel.push_log(e),
            FollowEvent::Checkpoint(CheckpointKind::Best) => {
                // The compare views show the newest best weights.
                self.commands.push(Command::UseModel(run.to_path_buf()));
            }
            FollowEvent::Checkpoint(CheckpointKind::Last) => {}
            FollowEvent::Finished(summary) => {
                panel.push_log(format!(
                    "{}: {} epochs, best mIoU {:.4}",
                    summary.status,
                    summary.epochs,
                    summary.best_mean_iou.unwrap_or(0.0)
                ));
                panel.last_summary = Some(Ok(*summary));
                self.refresh_runs();
            }
            FollowEvent::Log(line) => panel.push_log(line),
        }
    }

    /// Stops following (a new run here, another dataset).
    pub(super) fn unfollow(&mut self) {
        self.follower = None;
        self.training.following = None;
    }
}

fn count_files(dir: &Path) -> usize {
    std::fs::read_dir(dir).map_or(0, |entries| entries.flatten().count())
}
