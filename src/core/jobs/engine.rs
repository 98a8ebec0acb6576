//! One entry point per action for whichever engine a run's job.json names: look (state, and
//! for a copied SSH run, bring the local copy up to date), cancel, pause and resume.

use std::path::Path;
use std::time::SystemTime;

use super::job_file::{EngineKind, JobFile, rfc3339_utc};
use super::{EngineStatus, JobError, kubernetes, slurm, ssh};

/// What a look at a job found.
#[derive(Clone, Debug, PartialEq)]
pub struct Look {
    pub status: EngineStatus,
    /// Checkpoints (`last`, `best`) that arrived in the local run folder with this look.
    pub new_checkpoints: Vec<String>,
}

/// The job's state; for an SSH run copied to its host, also fetches the new metrics,
/// checkpoints and summary into `run`.
pub fn look(run: &Path, job: &JobFile) -> Result<Look, JobError> {
    let cancelled = job.cancel_requested_at.is_some();
    Ok(match job.engine {
        EngineKind::Slurm => Look {
            status: slurm::status(&job.job_id)?,
            new_checkpoints: Vec::new(),
        },
        EngineKind::Ssh => {
            let pulled = ssh::pull(job, run)?;
            Look {
                status: pulled.status,
                new_checkpoints: pulled.checkpoints,
            }
        }
        EngineKind::Kubernetes => {
            let kube = job.kubernetes.as_ref();
            Look {
                status: kubernetes::status(
                    &job.job_id,
                    kube.and_then(|k| k.namespace.as_deref()),
                    cancelled,
                )?,
                new_checkpoints: Vec::new(),
            }
        }
    })
}

/// Asks the engine to stop the job gracefully (roadseg gets SIGTERM: it finishes its step and
/// checkpoints), and records the request in job.json.
pub fn cancel(run: &Path) -> Result<JobFile, JobError> {
    let mut job = JobFile::read(run)?;
    match job.engine {
        EngineKind::Slurm => slurm::cancel(&job.job_id)?,
        EngineKind::Ssh => ssh::signal(&job, "TERM")?,
        EngineKind::Kubernetes => kubernetes::cancel(
            &job.job_id,
            job.kubernetes.as_ref().and_then(|k| k.namespace.as_deref()),
        )?,
    }
    job.cancel_requested_at = Some(rfc3339_utc(SystemTime::now()));
    job.write(run)?;
    Ok(job)
}

/// Pauses (`true`) or resumes the job through its engine.
pub fn pause(job: &JobFile, pause: bool) -> Result<(), JobError> {
    match job.engine {
        EngineKind::Slurm => slurm::pause(&job.job_id, pause),
        EngineKind::Ssh => ssh::signal(job, if pause { "STOP" } else { "CONT" }),
        EngineKind::Kubernetes => kubernetes::pause(
            &job.job_id,
            job.kubernetes.as_ref().and_then(|k| k.namespace.as_deref()),
            pause,
        ),
    }
}
