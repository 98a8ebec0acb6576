//! `roadseg train ... --submit ENGINE`: prepare the run folder here and hand it to Slurm, an SSH
//! host or Kubernetes (see `core::jobs` and docs/cluster.md); `--sweep KEY=V1,V2` makes one run
//! per value (a Slurm job array).

use anyhow::Context;
use roadseg::core::device::DeviceChoice;
use roadseg::core::jobs::kubernetes::KubeOptions;
use roadseg::core::jobs::script::word;
use roadseg::core::jobs::slurm::SlurmOptions;
use roadseg::core::jobs::ssh::SshTarget;
use roadseg::core::jobs::submit::{SubmitOptions, Submitted, Target, submit};
use roadseg::core::train::config::TrainConfig;
use roadseg::core::train::trainer::TrainStart;

/// The flags of a submission (part of `roadseg train`).
#[derive(clap::Args, Debug, Default)]
#[command(next_help_heading = "Run elsewhere (see docs/cluster.md)")]
pub struct SubmitArgs {
    /// Prepare the run here and train it elsewhere: slurm, ssh:HOST[:DIR] or kubernetes.
    #[arg(long, value_name = "ENGINE")]
    pub submit: Option<String>,
    /// Slurm partition.
    #[arg(long, requires = "submit")]
    pub partition: Option<String>,
    /// GPUs for the job (Slurm --gpus, Kubernetes nvidia.com/gpu).
    #[arg(long, requires = "submit")]
    pub gpus: Option<u32>,
    /// Slurm time limit, [D-]HH:MM:SS; at the limit the run checkpoints (resume it with
    /// --resume RUN --submit slurm).
    #[arg(long, value_name = "HH:MM:SS", requires = "submit")]
    pub time: Option<String>,
    /// One more sbatch argument, as it is (repeatable): --sbatch-arg=--requeue.
    #[arg(
        long = "sbatch-arg",
        value_name = "ARG",
        allow_hyphen_values = true,
        requires = "submit"
    )]
    pub sbatch_args: Vec<String>,
    /// Kubernetes: the container image with roadseg on its PATH.
    #[arg(long, requires = "submit")]
    pub image: Option<String>,
    /// Kubernetes namespace (default: kubectl's current one).
    #[arg(long, requires = "submit")]
    pub namespace: Option<String>,
    /// Kubernetes: a PersistentVolumeClaim mounted at PATH in the pod, where the same storage
    /// is mounted here (the run folder and the dataset must lie under PATH).
    #[arg(long, value_name = "CLAIM:PATH", requires = "submit")]
    pub volume: Option<String>,
    /// The roadseg program on the other side (default: this program's path for Slurm and a
    /// shared SSH folder, `roadseg` on the host's PATH or in the image otherwise).
    #[arg(long, value_name = "PATH", requires = "submit")]
    pub roadseg_bin: Option<String>,
    /// One run per value of a config key (repeatable: every combination), each in its own
    /// folder with a suffix: --sweep lr=0.01,0.001. A Slurm job array; one job each elsewhere.
    #[arg(long, value_name = "KEY=V1,V2", requires = "submit")]
    pub sweep: Vec<String>,
}

impl SubmitArgs {
    /// The engine and its options, from the flags; flags of another engine are refused.
    pub fn target(&self) -> anyhow::Result<Target> {
        let engine = self.submit.as_deref().unwrap_or_default();
        let misplaced =
            |flags: &[(&str, bool)], engine: &str| match flags.iter().find(|(_, given)| *given) {
                Some((flag, _)) => anyhow::bail!("{flag} is not an option of --submit {engine}"),
                None => Ok(()),
            };
        let slurm_flags = [
            ("--partition", self.partition.is_some()),
            ("--time", self.time.is_some()),
            ("--sbatch-arg", !self.sbatch_args.is_empty()),
        ];
        let kube_flags = [
            ("--image", self.image.is_some()),
            ("--namespace", self.namespace.is_some()),
            ("--volume", self.volume.is_some()),
        ];
        Ok(match engine {
            "slurm" => {
                misplaced(&kube_flags, engine)?;
                Target::Slurm(SlurmOptions {
                    partition: self.partition.clone(),
                    gpus: self.gpus,
                    time: self.time.clone(),
                    extra: self.sbatch_args.clone(),
                })
            }
            "kubernetes" | "k8s" => {
                misplaced(&slurm_flags, engine)?;
                let Some(image) = self.image.clone() else {
                    anyhow::bail!(
                        "--submit kubernetes needs --image IMG (an image with roadseg in it)"
                    );
                };
                let Some(volume) = &self.volume else {
                    anyhow::bail!(
                        "--submit kubernetes needs --volume CLAIM:PATH (the claim that holds the run folder and the dataset, and where it is mounted)"
                    );
                };
                let (claim, mount) = KubeOptions::parse_volume(volume)?;
                Target::Kubernetes(KubeOptions {
                    image,
                    namespace: self.namespace.clone(),
                    claim,
                    mount,
                    gpus: self.gpus,
                })
            }
            other => match other.strip_prefix("ssh:") {
                Some(rest) => {
                    misplaced(&slurm_flags, "ssh")?;
                    misplaced(&kube_flags, "ssh")?;
                    if self.gpus.is_some() {
                        anyhow::bail!(
                            "--gpus is not an option of --submit ssh (the run uses the host's GPU with --device gpu)"
                        );
                    }
                    Target::Ssh(SshTarget::parse(rest)?)
                }
                None => anyhow::bail!(
                    "--submit {other:?}: expected slurm, ssh:HOST[:DIR] or kubernetes"
                ),
            },
        })
    }
}

/// Submits `start` (one run per sweep combination) and prints the job ids.
pub fn run(
    start: TrainStart,
    target: Target,
    args: &SubmitArgs,
    device: DeviceChoice,
    skip_bad: bool,
    json: bool,
) -> anyhow::Result<()> {
    let starts = expand_sweep(start, &args.sweep)?;
    let options = SubmitOptions {
        target,
        device,
        skip_bad,
        program: args.roadseg_bin.clone(),
    };
    let submitted = submit(starts, &options, &mut |line| eprintln!("{line}"))?;
    for Submitted { run, job } in &submitted {
        let path = word(&run.to_string_lossy());
        eprintln!(
            "{}: submitted to {} as job {} (follow it: roadseg status {path}; stop it: roadseg cancel {path})",
            run.display(),
            job.engine.name(),
            job.job_id,
        );
    }
    let rows: Vec<serde_json::Value> = submitted
        .iter()
        .map(|s| serde_json::json!({"job_id": s.job.job_id, "run": s.run, "engine": s.job.engine}))
        .collect();
    match (json, rows.as_slice()) {
        (true, [one]) => println!("{}", serde_json::to_string_pretty(one)?),
        (true, _) => println!("{}", serde_json::to_string_pretty(&rows)?),
        (false, _) => submitted.iter().for_each(|s| println!("{}", s.job.job_id)),
    }
    Ok(())
}

/// One start per combination of the sweeps' values; each new run's folder gets a suffix
/// (`run-3-lr0.01`).
fn expand_sweep(start: TrainStart, sweeps: &[String]) -> anyhow::Result<Vec<TrainStart>> {
    if sweeps.is_empty() {
        return Ok(vec![start]);
    }
    let TrainStart::New { data, config, out } = start else {
        anyhow::bail!("--sweep makes new runs; it cannot be combined with --resume");
    };
    let mut combos: Vec<(TrainConfig, String)> = vec![(*config, String::new())];
    for sweep in sweeps {
        let (key, values) = sweep
            .split_once('=')
            .with_context(|| format!("--sweep {sweep:?}: expected KEY=V1,V2"))?;
        let values: Vec<&str> = values
            .split(',')
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .collect();
        if values.len() < 2 {
            anyhow::bail!("--sweep {sweep:?}: give at least two values, separated by commas");
        }
        let mut next = Vec::new();
        for (config, suffix) in &combos {
            for value in &values {
                let changed =
                    set_key(config, key, value).with_context(|| format!("--sweep {sweep:?}"))?;
                let leaf = key.rsplit('.').next().unwrap_or(key);
                next.push((changed, format!("{suffix}-{leaf}{value}")));
            }
        }
        combos = next;
    }
    let name = out
        .file_name()
        .map_or_else(|| "run".into(), |n| n.to_string_lossy().into_owned());
    Ok(combos
        .into_iter()
        .map(|(config, suffix)| {
            let clean: String = suffix
                .chars()
                .map(|c| match c.is_ascii_alphanumeric() || "._-".contains(c) {
                    true => c,
                    false => '_',
                })
                .collect();
            TrainStart::New {
                data: data.clone(),
                config: Box::new(config),
                out: out.with_file_name(format!("{name}{clean}")),
            }
        })
        .collect())
}

/// `config` with the (dotted) `key` set to `value`, read as JSON when it parses (numbers,
/// booleans) and as a string otherwise; the key must exist and the result must still be a
/// config.
fn set_key(config: &TrainConfig, key: &str, value: &str) -> anyhow::Result<TrainConfig> {
    let mut tree = serde_json::to_value(config)?;
    let mut slot = &mut tree;
    for part in key.split('.') {
        slot = slot.get_mut(part).with_context(|| {
            format!("{key:?} is not a config key (see `roadseg train --config`)")
        })?;
    }
    *slot = serde_json::from_str(value).unwrap_or_else(|_| serde_json::Value::String(value.into()));
    serde_path_to_error::deserialize(tree)
        .map_err(|e| anyhow::anyhow!("{key}={value}: {}", e.inner()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use roadseg::core::train::trainer::DataSpec;
    use std::path::PathBuf;

    /// The run folders a sweep would make, for tests of the naming.
    fn outs(starts: &[TrainStart]) -> Vec<PathBuf> {
        starts
            .iter()
            .filter_map(|s| match s {
                TrainStart::New { out, .. } => Some(out.clone()),
                _ => None,
            })
            .collect()
    }

    fn new_start() -> TrainStart {
        TrainStart::New {
            data: DataSpec {
                root: "/data".into(),
                format: None,
            },
            config: Box::new(TrainConfig::default()),
            out: "/runs/run-3".into(),
        }
    }

    #[test]
    fn a_sweep_makes_one_run_per_combination() {
        let starts = expand_sweep(
            new_start(),
            &["lr=0.01,0.001".into(), "model.base_width=4,8".into()],
        )
        .unwrap();
        assert_eq!(
            outs(&starts),
            [
                "/runs/run-3-lr0.01-base_width4",
                "/runs/run-3-lr0.01-base_width8",
                "/runs/run-3-lr0.001-base_width4",
                "/runs/run-3-lr0.001-base_width8"
            ]
            .map(PathBuf::from)
        );
        let TrainStart::New { config, .. } = &starts[3] else {
            unreachable!()
        };
        assert_eq!((config.lr, config.model.base_width), (0.001, 8));
    }

    #[test]
    fn sweeps_name_what_is_wrong() {
        let err = |s: &str| {
            format!(
                "{:#}",
                expand_sweep(new_start(), &[s.into()]).err().unwrap()
            )
        };
        assert!(err("nokey=1,2").contains("not a config key"));
        assert!(err("lr=0.1").contains("at least two values"));
        assert!(err("lr").contains("KEY=V1,V2"));
        let e = format!(
            "{:#}",
            expand_sweep(new_start(), &["epochs=two,3".into()])
                .err()
                .unwrap()
        );
        assert!(e.contains("epochs=two"), "{e}");
    }
}
