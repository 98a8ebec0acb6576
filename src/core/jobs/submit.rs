//! Submitting runs: each run folder is prepared here as a local run would be (dataset checked,
//! config validated, labels snapshot taken), then handed to the engine, and its job.json
//! written. Shared by `roadseg train --submit` and the studio's Train button.
//!
//! Several runs at once (a sweep) make one Slurm job array (one script that picks its run by
//! `SLURM_ARRAY_TASK_ID`) or one job each on the other engines.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use super::job_file::{EngineKind, JobFile, KubeJob, SshJob, VERSION, rfc3339_utc};
use super::kubernetes::{self, KubeOptions};
use super::script::{ScriptSpec, job_script};
use super::slurm::{self, SlurmOptions};
use super::ssh::{self, Ssh, SshTarget};
use super::{JobError, engine};
use crate::core::device::DeviceChoice;
use crate::core::train::config::RunConfig;
use crate::core::train::prepare_run;
use crate::core::train::run_dir::RunDir;
use crate::core::train::trainer::{TrainOptions, TrainStart};

/// Where runs go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    Slurm(SlurmOptions),
    Ssh(SshTarget),
    Kubernetes(KubeOptions),
}

impl Target {
    pub fn kind(&self) -> EngineKind {
        match self {
            Self::Slurm(_) => EngineKind::Slurm,
            Self::Ssh(_) => EngineKind::Ssh,
            Self::Kubernetes(_) => EngineKind::Kubernetes,
        }
    }
}

/// How to submit.
#[derive(Clone, Debug)]
pub struct SubmitOptions {
    pub target: Target,
    /// `--device` of the job's `roadseg train` (resolved there, on its hardware).
    pub device: DeviceChoice,
    pub skip_bad: bool,
    /// The roadseg program on the other side; default: this program's path for Slurm and a
    /// shared SSH folder (the node sees the same files), `roadseg` on the host's PATH for a
    /// copied SSH run, `roadseg` in the image for Kubernetes.
    pub program: Option<String>,
}

/// One submitted run.
#[derive(Clone, Debug)]
pub struct Submitted {
    pub run: PathBuf,
    pub job: JobFile,
}

/// Prepares every start's run folder, then submits them all to `options.target`. A resumed
/// run whose job is still queued or running is refused (cancel it first).
pub fn submit(
    starts: Vec<TrainStart>,
    options: &SubmitOptions,
    log: &mut dyn FnMut(String),
) -> Result<Vec<Submitted>, JobError> {
    let train_options = TrainOptions {
        device: options.device,
        skip_bad: options.skip_bad,
        // The job trains on the labels as they are now, wherever and whenever it starts.
        snapshot_labels: true,
        cpu_fallback: false,
    };
    if let Target::Kubernetes(kube) = &options.target {
        for start in &starts {
            on_the_volume(start, kube)?;
        }
    }
    let mut runs = Vec::with_capacity(starts.len());
    for start in starts {
        if let TrainStart::Resume { run, .. } = &start {
            refuse_active(run)?;
        }
        let run = prepare_run(start, &train_options, log).map_err(Box::new)?;
        runs.push(run);
    }
    let submitted_at = rfc3339_utc(SystemTime::now());
    let submitted = (|| -> Result<Vec<Submitted>, JobError> {
        Ok(match &options.target {
            Target::Slurm(slurm) => submit_slurm(&runs, slurm, options, &submitted_at)?,
            Target::Ssh(target) => {
                let mut out = Vec::new();
                for run in &runs {
                    out.push(submit_ssh(run, target, options, &submitted_at, log)?);
                }
                out
            }
            Target::Kubernetes(kube) => {
                let mut out = Vec::new();
                for run in &runs {
                    out.push(submit_kubernetes(run, kube, options, &submitted_at)?);
                }
                out
            }
        })
    })()
    .map_err(|cause| JobError::PreparedOnly {
        runs: runs.clone(),
        cause: Box::new(cause),
    })?;
    for s in &submitted {
        s.job.write(&s.run)?;
    }
    Ok(submitted)
}

/// A run whose last job is still queued, running or suspended is not submitted again.
fn refuse_active(run: &Path) -> Result<(), JobError> {
    let job = match JobFile::read(run) {
        Ok(job) => job,
        Err(JobError::NotSubmitted(_)) => return Ok(()),
        Err(e) => return Err(e),
    };
    let look = engine::look(run, &job)?;
    if look.status.state.is_active() {
        return Err(JobError::Invalid(format!(
            "{}: its {} job {} is still {}; `roadseg cancel {}` first",
            run.display(),
            job.engine.name(),
            job.job_id,
            look.status.state,
            run.display()
        )));
    }
    Ok(())
}

fn utf8(path: &Path) -> Result<String, JobError> {
    path.to_str().map(str::to_string).ok_or_else(|| {
        JobError::Invalid(format!("{}: the path is not valid UTF-8", path.display()))
    })
}

fn this_program() -> Result<String, JobError> {
    let exe = std::env::current_exe().map_err(JobError::io("the roadseg program"))?;
    utf8(&exe)
}

fn run_name(run: &Path) -> String {
    run.file_name()
        .map_or_else(|| "run".into(), |n| n.to_string_lossy().into_owned())
}

fn write_file(path: &Path, text: &str) -> Result<(), JobError> {
    crate::core::dataset::image_io::write_atomic(path, text.as_bytes()).map_err(|e| JobError::Io {
        path: path.to_path_buf(),
        source: std::io::Error::other(e.to_string()),
    })
}

fn submit_slurm(
    runs: &[PathBuf],
    slurm: &SlurmOptions,
    options: &SubmitOptions,
    submitted_at: &str,
) -> Result<Vec<Submitted>, JobError> {
    let program = match &options.program {
        Some(p) => p.clone(),
        None => this_program()?,
    };
    let paths: Vec<String> = runs.iter().map(|r| utf8(r)).collect::<Result<_, _>>()?;
    let text = job_script(&ScriptSpec {
        program: &program,
        runs: &paths,
        device: &options.device.to_string(),
        skip_bad: options.skip_bad,
        engine: "slurm",
    });
    for run in runs {
        write_file(&run.join("job.sh"), &text)?;
    }
    let first = &runs[0];
    let (output, array) = match runs.len() {
        1 => (first.join("slurm-%j.out"), None),
        n => (
            first.parent().unwrap_or(first).join("slurm-%A_%a.out"),
            Some(n - 1),
        ),
    };
    let args = slurm::sbatch_args(
        slurm,
        &format!("roadseg-{}", run_name(first)),
        &output,
        array,
        &first.join("job.sh"),
    )?;
    let (id, command) = slurm::submit(args)?;
    Ok(runs
        .iter()
        .enumerate()
        .map(|(i, run)| Submitted {
            run: run.clone(),
            job: JobFile {
                version: VERSION,
                engine: EngineKind::Slurm,
                job_id: match array {
                    Some(_) => format!("{id}_{i}"),
                    None => id.clone(),
                },
                script: "job.sh".into(),
                submitted_at: submitted_at.to_string(),
                command: command.clone(),
                ssh: None,
                kubernetes: None,
                cancel_requested_at: None,
            },
        })
        .collect())
}

fn submit_ssh(
    run: &Path,
    target: &SshTarget,
    options: &SubmitOptions,
    submitted_at: &str,
    log: &mut dyn FnMut(String),
) -> Result<Submitted, JobError> {
    let remote = Ssh::new(&target.host)?;
    let config = RunDir::new(run).read_config()?;
    let shared = target.dir.is_none() && ssh::sees_same_folder(&remote, run)?;
    let device = options.device.to_string();
    let (remote_run, program) = if shared {
        log(format!(
            "{}: sees this run folder; it trains in place",
            target.host
        ));
        let program = match &options.program {
            Some(p) => p.clone(),
            None => this_program()?,
        };
        (utf8(run)?, program)
    } else {
        refuse_local_starting_points(&config, run)?;
        let base = ssh::remote_folder(&remote, target.dir.as_deref().unwrap_or("roadseg-runs"))?;
        let data_name = config
            .data
            .file_name()
            .map_or_else(|| "data".into(), |n| n.to_string_lossy().into_owned());
        let remote_data = format!(
            "{base}/data/{}-{}",
            ssh::safe_name(&data_name),
            ssh::short_hash(&config.data.to_string_lossy())
        );
        let remote_run = format!(
            "{base}/runs/{}-{}",
            ssh::safe_name(&run_name(run)),
            ssh::short_hash(&run.to_string_lossy())
        );
        remote.exec_ok(
            &format!(
                "mkdir -p -- {}",
                super::script::quote(&format!("{base}/data"))
            ),
            None,
        )?;
        remote.exec_ok(
            &format!(
                "mkdir -p -- {}",
                super::script::quote(&format!("{base}/runs"))
            ),
            None,
        )?;
        log(format!(
            "copying the dataset to {}:{remote_data} (once)",
            target.host
        ));
        if ssh::sync_dataset(&remote, &config.data, &remote_data)? {
            log("dataset copied".into());
        }
        let exists = remote
            .exec(
                &format!("test -f {}/config.json", super::script::quote(&remote_run)),
                None,
            )?
            .success;
        if !exists {
            log(format!(
                "copying the run folder to {}:{remote_run}",
                target.host
            ));
            remote.copy_to(run, &remote_run)?;
        }
        // The run's config as the host reads it: its dataset is the copy there.
        let there = RunConfig {
            data: PathBuf::from(&remote_data),
            ..config
        };
        let text = serde_json::to_string_pretty(&there).map_err(|e| {
            JobError::Invalid(format!("{}: {e}", run.join("config.json").display()))
        })?;
        ssh::write_remote(
            &remote,
            &format!("{remote_run}/config.json"),
            text.as_bytes(),
        )?;
        (
            remote_run,
            options.program.clone().unwrap_or_else(|| "roadseg".into()),
        )
    };
    let text = job_script(&ScriptSpec {
        program: &program,
        runs: std::slice::from_ref(&remote_run),
        device: &device,
        skip_bad: options.skip_bad,
        engine: "ssh",
    });
    write_file(&run.join("job.sh"), &text)?;
    if !shared {
        ssh::write_remote(&remote, &format!("{remote_run}/job.sh"), text.as_bytes())?;
    }
    let pid = ssh::start(&remote, &remote_run)?;
    let command = vec![
        "ssh".to_string(),
        target.host.clone(),
        format!("cd {remote_run} && setsid nohup sh job.sh &"),
    ];
    Ok(Submitted {
        run: run.to_path_buf(),
        job: JobFile {
            version: VERSION,
            engine: EngineKind::Ssh,
            job_id: pid.to_string(),
            script: "job.sh".into(),
            submitted_at: submitted_at.to_string(),
            command,
            ssh: Some(SshJob {
                host: target.host.clone(),
                remote_run,
                copied: !shared,
            }),
            kubernetes: None,
            cancel_requested_at: None,
        },
    })
}

/// A run copied to another machine cannot read files of this one: a pretrained encoder, an
/// `--init-from` run or a distillation teacher named by path.
fn refuse_local_starting_points(config: &RunConfig, run: &Path) -> Result<(), JobError> {
    let t = &config.train;
    let named = t
        .pretrained
        .iter()
        .chain(t.init_from.iter())
        .chain(t.distill.iter().map(|d| &d.teacher))
        .next();
    match named {
        Some(path)
            if RunDir::new(run)
                .existing_checkpoint(crate::core::train::run_dir::CheckpointKind::Last)
                .is_none() =>
        {
            Err(JobError::Invalid(format!(
                "{}: the run starts from {}, a file of this computer that a copied run cannot read; \
                 put it on storage the host shares (ssh:HOST without :DIR) or train the first epoch here",
                run.display(),
                path.display()
            )))
        }
        _ => Ok(()),
    }
}

/// The pod sees the run folder and its dataset only on the volume: both must lie under its
/// mount path (checked before anything is prepared).
fn on_the_volume(start: &TrainStart, kube: &KubeOptions) -> Result<(), JobError> {
    let (run, data) = match start {
        TrainStart::New { data, out, .. } => (out.clone(), data.root.clone()),
        TrainStart::Resume { run, .. } => (run.clone(), RunDir::new(run).read_config()?.data),
    };
    let mount = Path::new(&kube.mount);
    for (what, path) in [("run folder", run), ("dataset", data)] {
        let path = std::path::absolute(&path).unwrap_or(path);
        if !path.starts_with(mount) {
            return Err(JobError::Invalid(format!(
                "{}: the {what} is not under {} (--volume CLAIM:PATH mounts the claim there in \
                 the pod; the run folder and its dataset must lie on it)",
                path.display(),
                kube.mount
            )));
        }
    }
    Ok(())
}

fn submit_kubernetes(
    run: &Path,
    kube: &KubeOptions,
    options: &SubmitOptions,
    submitted_at: &str,
) -> Result<Submitted, JobError> {
    let run_text = utf8(run)?;
    let name = kubernetes::job_name(
        &run_name(run),
        &ssh::short_hash(&format!("{run_text}{submitted_at}"))[..6],
    );
    let mut manifest = kubernetes::manifest(
        &name,
        kube,
        &run_text,
        &options.device.to_string(),
        options.skip_bad,
    );
    if let Some(program) = &options.program {
        manifest["spec"]["template"]["spec"]["containers"][0]["command"][0] =
            serde_json::json!(program);
    }
    let path = run.join("job.k8s.json");
    let text = serde_json::to_string_pretty(&manifest)
        .map_err(|e| JobError::Invalid(format!("{}: {e}", path.display())))?;
    write_file(&path, &(text + "\n"))?;
    let command = kubernetes::apply(&path, kube.namespace.as_deref())?;
    Ok(Submitted {
        run: run.to_path_buf(),
        job: JobFile {
            version: VERSION,
            engine: EngineKind::Kubernetes,
            job_id: name.clone(),
            script: "job.k8s.json".into(),
            submitted_at: submitted_at.to_string(),
            command,
            ssh: None,
            kubernetes: Some(KubeJob {
                name,
                namespace: kube.namespace.clone(),
            }),
            cancel_requested_at: None,
        },
    })
}
