//! Job engines: run `roadseg train` somewhere else (a Slurm cluster, a host over SSH, a
//! Kubernetes cluster) and watch it from here. An engine only starts, watches and stops
//! `roadseg train`; it never trains. The run folder is the whole interface, as submitit's job
//! folder is (facebookincubator/submitit): the job prepares it here exactly as a local run
//! would (validated `config.json`, label snapshot), writes its script and `job.json` into it,
//! and the job on the other side runs `roadseg train --resume RUN`, which starts the run or
//! continues it from its checkpoint (so a requeue or a re-submission continues the run).
//!
//! ```text
//! RUN/job.json        JobFile: engine, job id, script, submitted at, the submission command
//! RUN/job.sh          the script the job runs (Slurm, SSH); RUN/job.k8s.json for Kubernetes
//! RUN/train.log       what `roadseg train` printed on the other side
//! ```
//!
//! - [`job_file`]: `job.json`, read back as untrusted input (a run folder on a shared disk).
//! - [`tailer`]: follows `metrics.jsonl` from the last offset read (the studio and `status`).
//! - [`progress`]: where a run stands, from its folder alone.
//! - [`script`]: the job script, every argument quoted.
//! - [`slurm`], [`ssh`], [`kubernetes`]: submission, state, cancel, pause, each parsing its
//!   engine's own commands' output; [`engine`] picks one from a job file.
//! - [`submit`]: prepare the run folders and submit them (the CLI and the studio).
//! - [`follow`]: the studio's follower thread: engine state and new metrics of one run.

pub mod engine;
pub mod follow;
pub mod job_file;
pub mod kubernetes;
pub mod progress;
pub mod script;
pub mod slurm;
pub mod ssh;
pub mod submit;
pub mod tailer;
mod tool;

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Why a job could not be submitted, watched or stopped.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error("{path}: {reason}")]
    BadJobFile { path: PathBuf, reason: String },
    #[error(
        "{0}: no job.json: the run was not submitted to a job engine (a local run stops with Ctrl-C or the studio's Stop)"
    )]
    NotSubmitted(PathBuf),
    /// A program the engine needs is not installed or not on PATH.
    #[error("`{program}` was not found ({source}); {hint}")]
    Missing {
        program: String,
        hint: &'static str,
        #[source]
        source: std::io::Error,
    },
    /// A command ran and failed: its own words.
    #[error("`{command}` failed ({status}): {stderr}")]
    Failed {
        command: String,
        status: String,
        stderr: String,
    },
    /// A command's output could not be understood.
    #[error("`{command}` answered something unexpected: {reason}")]
    Unexpected { command: String, reason: String },
    #[error("{0}")]
    Invalid(String),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    RunDir(#[from] crate::core::train::run_dir::RunDirError),
    #[error(transparent)]
    Train(#[from] Box<crate::core::train::trainer::TrainError>),
    /// The run folders were prepared, then the engine refused or could not be reached. (The
    /// cause is part of the message, not a `source`: the studio shows one line.)
    #[error("{cause}; prepared, not submitted: {}; once that is fixed, submit with `roadseg train --resume RUN --submit ...`", list(.runs))]
    PreparedOnly {
        runs: Vec<PathBuf>,
        cause: Box<JobError>,
    },
}

fn list(runs: &[PathBuf]) -> String {
    runs.iter()
        .map(|r| r.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

impl JobError {
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| Self::Io { path, source }
    }
}

/// Where a job stands, as its engine says.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EngineState {
    /// Waiting for resources (Slurm PENDING, a pod not scheduled or starting).
    Queued,
    Running,
    /// Paused through the engine (Slurm SIGSTOP, a suspended Kubernetes Job, kill -STOP).
    Suspended,
    /// Ended by itself with exit code 0.
    Completed,
    /// Ended with an error (a non-zero exit, a lost node, out of memory).
    Failed,
    /// Cancelled (scancel, `roadseg cancel`, the Job deleted).
    Cancelled,
    /// Reached its time limit.
    Timeout,
    /// The engine no longer knows the job (it left the queue and nothing keeps its record).
    Unknown,
}

impl EngineState {
    pub fn is_active(self) -> bool {
        matches!(self, Self::Queued | Self::Running | Self::Suspended)
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Suspended => "suspended",
            Self::Completed => "completed",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
            Self::Timeout => "timeout",
            Self::Unknown => "unknown",
        }
    }
}

impl std::fmt::Display for EngineState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// An engine's answer about one job.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EngineStatus {
    pub state: EngineState,
    /// The engine's own word for it (`PENDING (Priority)`, `BackoffLimitExceeded`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

impl EngineStatus {
    pub fn new(state: EngineState, detail: Option<String>) -> Self {
        Self { state, detail }
    }
}
