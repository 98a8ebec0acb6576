//! `roadseg status RUN`: where a run stands — its job engine's state (queued, running,
//! completed, failed, cancelled, ... from squeue/sacct, ssh or kubectl) beside the run's own
//! progress (epoch, step, best mIoU, last record's age). For a run copied to an SSH host this
//! also brings its new metrics and checkpoints here. `roadseg cancel RUN` stops it.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use roadseg::core::jobs::job_file::JobFile;
use roadseg::core::jobs::progress::RunProgress;
use roadseg::core::jobs::{EngineStatus, JobError, engine};
use serde_json::json;

#[derive(clap::Args)]
pub struct Args {
    /// A run folder.
    run: PathBuf,
    /// Print JSON: {"run", "engine", "job_id", "state", "detail", "progress"}.
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args)]
pub struct CancelArgs {
    /// A run folder submitted with `roadseg train --submit`.
    run: PathBuf,
    /// Wait (up to 10 minutes) until the engine says the job is over.
    #[arg(long)]
    wait: bool,
}

/// The job's state, or `None` for a run that no engine ran.
fn engine_state(run: &std::path::Path) -> anyhow::Result<Option<(JobFile, EngineStatus)>> {
    let job = match JobFile::read(run) {
        Ok(job) => job,
        Err(JobError::NotSubmitted(_)) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let look = engine::look(run, &job)?;
    Ok(Some((job, look.status)))
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let engine = engine_state(&args.run)?;
    let progress = RunProgress::read(&args.run)?;
    if args.json {
        let (kind, id, state, detail) = match &engine {
            Some((job, status)) => (
                Some(job.engine.name()),
                Some(job.job_id.clone()),
                Some(status.state),
                status.detail.clone(),
            ),
            None => (None, None, None, None),
        };
        let value = json!({
            "run": args.run,
            "engine": kind,
            "job_id": id,
            "state": state,
            "detail": detail,
            "progress": progress,
        });
        println!("{}", serde_json::to_string_pretty(&value)?);
        return Ok(());
    }
    let head = match &engine {
        Some((job, status)) => format!(
            "{} job {}: {}{}",
            job.engine.name(),
            job.job_id,
            status.state,
            status
                .detail
                .as_ref()
                .map(|d| format!(" ({d})"))
                .unwrap_or_default()
        ),
        None => "no job engine (a local run)".to_string(),
    };
    println!("{}: {head}", args.run.display());
    println!("  {}", progress.line());
    Ok(())
}

pub fn cancel(args: CancelArgs) -> anyhow::Result<()> {
    let job = engine::cancel(&args.run)?;
    eprintln!(
        "asked {} to stop job {}: roadseg finishes its step, writes a checkpoint and exits \
         (continue it with: roadseg train --resume {} --submit ...)",
        job.engine.name(),
        job.job_id,
        roadseg::core::jobs::script::word(&args.run.to_string_lossy())
    );
    if !args.wait {
        return Ok(());
    }
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let look = engine::look(&args.run, &job)?;
        if !look.status.state.is_active() {
            eprintln!("job {}: {}", job.job_id, look.status.state);
            return Ok(());
        }
        if Instant::now() > deadline {
            anyhow::bail!(
                "job {} is still {} after 10 minutes",
                job.job_id,
                look.status.state
            );
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}
