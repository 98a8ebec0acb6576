//! "Run on": where the training panel's Train button sends a run — this computer, a Slurm
//! cluster, an SSH host or Kubernetes — with each engine's options, remembered per dataset
//! (`DatasetPrefs::run_on`). The options are the command line's (`roadseg train --submit`).

use serde::{Deserialize, Serialize};

use crate::core::jobs::kubernetes::KubeOptions;
use crate::core::jobs::slurm::SlurmOptions;
use crate::core::jobs::ssh::SshTarget;
use crate::core::jobs::submit::Target;

/// Where runs train.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Engine {
    #[default]
    ThisComputer,
    Slurm,
    Ssh,
    Kubernetes,
}

impl Engine {
    pub const ALL: [(Engine, &'static str); 4] = [
        (Engine::ThisComputer, "this computer"),
        (Engine::Slurm, "Slurm"),
        (Engine::Ssh, "SSH host"),
        (Engine::Kubernetes, "Kubernetes"),
    ];

    pub fn label(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(e, _)| *e == self)
            .map_or("", |(_, l)| l)
    }
}

/// The choice and every engine's options (kept when switching, so nothing typed is lost).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct RunOnPrefs {
    pub engine: Engine,
    pub partition: String,
    /// GPUs per job (Slurm, Kubernetes); 0: none asked for.
    pub gpus: u32,
    /// Slurm time limit, `[D-]HH:MM:SS`; empty: the partition's default.
    pub time: String,
    /// More sbatch arguments, one per line.
    pub sbatch_args: String,
    /// `HOST` or `user@host` (an alias of ~/.ssh/config works).
    pub ssh_host: String,
    /// Where runs are copied on the host; empty: in place when the host sees the folder, else
    /// `roadseg-runs` in its home.
    pub ssh_dir: String,
    pub image: String,
    pub namespace: String,
    /// `CLAIM:PATH`.
    pub volume: String,
    /// The roadseg program on the other side; empty: the engine's default.
    pub roadseg_bin: String,
}

impl RunOnPrefs {
    /// The engine to submit to (`None`: train on this computer), or what is missing.
    pub fn target(&self) -> Result<Option<Target>, String> {
        let text = |s: &str| Some(s.trim().to_string()).filter(|s| !s.is_empty());
        Ok(Some(match self.engine {
            Engine::ThisComputer => return Ok(None),
            Engine::Slurm => Target::Slurm(SlurmOptions {
                partition: text(&self.partition),
                gpus: (self.gpus > 0).then_some(self.gpus),
                time: text(&self.time),
                extra: self
                    .sbatch_args
                    .lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty())
                    .map(str::to_string)
                    .collect(),
            }),
            Engine::Ssh => {
                let Some(host) = text(&self.ssh_host) else {
                    return Err("Run on SSH host: type the host".into());
                };
                let spec = match text(&self.ssh_dir) {
                    Some(dir) => format!("{host}:{dir}"),
                    None => host,
                };
                Target::Ssh(SshTarget::parse(&spec).map_err(|e| e.to_string())?)
            }
            Engine::Kubernetes => {
                let Some(image) = text(&self.image) else {
                    return Err("Run on Kubernetes: type the image (one with roadseg in it)".into());
                };
                let (claim, mount) =
                    KubeOptions::parse_volume(self.volume.trim()).map_err(|e| e.to_string())?;
                Target::Kubernetes(KubeOptions {
                    image,
                    namespace: text(&self.namespace),
                    claim,
                    mount,
                    gpus: (self.gpus > 0).then_some(self.gpus),
                })
            }
        }))
    }

    /// The program to run on the other side, when one is typed.
    pub fn program(&self) -> Option<String> {
        Some(self.roadseg_bin.trim().to_string()).filter(|s| !s.is_empty())
    }
}

/// The "Run on" picker and the chosen engine's options; true when something changed.
pub fn ui(ui: &mut egui::Ui, prefs: &mut RunOnPrefs) -> bool {
    let before = prefs.clone();
    egui::ComboBox::from_label("Run on")
        .selected_text(prefs.engine.label())
        .show_ui(ui, |ui| {
            for (engine, label) in Engine::ALL {
                ui.selectable_value(&mut prefs.engine, engine, label);
            }
        });
    let field = |ui: &mut egui::Ui, label: &str, value: &mut String, hint: &str| {
        ui.horizontal(|ui| {
            let name = ui.label(label);
            ui.add(
                egui::TextEdit::singleline(value)
                    .hint_text(hint)
                    .desired_width(150.0),
            )
            .labelled_by(name.id);
        });
    };
    let gpus = |ui: &mut egui::Ui, value: &mut u32| {
        ui.horizontal(|ui| {
            let name = ui.label("GPUs");
            ui.add(egui::DragValue::new(value).range(0..=16))
                .labelled_by(name.id);
        });
    };
    match prefs.engine {
        Engine::ThisComputer => {}
        Engine::Slurm => {
            field(ui, "Partition", &mut prefs.partition, "default");
            gpus(ui, &mut prefs.gpus);
            field(ui, "Time limit", &mut prefs.time, "HH:MM:SS");
            let name = ui.label("More sbatch arguments, one per line:");
            ui.add(
                egui::TextEdit::multiline(&mut prefs.sbatch_args)
                    .hint_text("--requeue")
                    .desired_rows(2)
                    .desired_width(230.0),
            )
            .labelled_by(name.id);
        }
        Engine::Ssh => {
            field(ui, "Host", &mut prefs.ssh_host, "user@gpu-server");
            field(ui, "Folder", &mut prefs.ssh_dir, "shared or roadseg-runs");
        }
        Engine::Kubernetes => {
            field(ui, "Image", &mut prefs.image, "registry/roadseg:tag");
            field(ui, "Namespace", &mut prefs.namespace, "current");
            field(ui, "Volume", &mut prefs.volume, "CLAIM:/mount/path");
            gpus(ui, &mut prefs.gpus);
        }
    }
    if prefs.engine != Engine::ThisComputer {
        field(ui, "roadseg there", &mut prefs.roadseg_bin, "default");
    }
    *prefs != before
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_prefs_make_the_command_line_s_targets() {
        let mut prefs = RunOnPrefs::default();
        assert_eq!(prefs.target(), Ok(None));
        prefs.engine = Engine::Slurm;
        prefs.gpus = 2;
        prefs.sbatch_args = "--requeue\n\n --qos=low \n".into();
        let Ok(Some(Target::Slurm(slurm))) = prefs.target() else {
            panic!("{:?}", prefs.target())
        };
        assert_eq!(slurm.gpus, Some(2));
        assert_eq!(slurm.extra, ["--requeue", "--qos=low"]);
        prefs.engine = Engine::Ssh;
        assert!(prefs.target().unwrap_err().contains("host"));
        prefs.ssh_host = "me@gpu1".into();
        prefs.ssh_dir = "/scratch/runs".into();
        let Ok(Some(Target::Ssh(ssh))) = prefs.target() else {
            panic!()
        };
        assert_eq!(ssh.dir.as_deref(), Some("/scratch/runs"));
        prefs.ssh_host = "-oProxyCommand=x".into();
        assert!(prefs.target().is_err());
        prefs.engine = Engine::Kubernetes;
        prefs.image = "roadseg:1".into();
        assert!(prefs.target().unwrap_err().contains("CLAIM:PATH"));
    }
}
