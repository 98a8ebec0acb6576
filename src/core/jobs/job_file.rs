//! `job.json`: how a run was submitted, so that `roadseg status`, `roadseg cancel` and the
//! studio can find its job again.
//!
//! ```json
//! {
//!   "version": 1,
//!   "engine": "slurm",                 // slurm | ssh | kubernetes
//!   "job_id": "4242_1",                // Slurm job (array task), SSH pid, Kubernetes Job name
//!   "script": "job.sh",                // a file in the run folder
//!   "submitted_at": "2026-12-05T10:00:00Z",
//!   "command": ["sbatch", "--parsable", "..."],
//!   "ssh": {"host": "gpu1", "remote_run": "/home/me/roadseg-runs/runs/run-3", "copied": true},
//!   "kubernetes": {"name": "roadseg-run-3-1a2b3c", "namespace": "ml"},
//!   "cancel_requested_at": "2026-12-05T11:00:00Z"
//! }
//! ```
//!
//! A run folder can come from a shared disk, so this file is read as untrusted input: it is
//! bounded in size, every field is checked against what the engines accept (a job id that is
//! digits, a host that cannot pass for an ssh option, an absolute remote path, a DNS name), and
//! its `command` is a record for people, never run. Errors name the file and the field.

use std::io::Read;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::JobError;
use crate::core::dataset::image_io::write_atomic;

/// The file's name in a run folder.
pub const FILE_NAME: &str = "job.json";
/// The format written; a newer one is refused with a clear message.
pub const VERSION: u32 = 1;
/// A real job.json is a few hundred bytes; anything past this is not one.
const MAX_BYTES: u64 = 64 << 10;

/// Which engine ran the job.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EngineKind {
    Slurm,
    Ssh,
    Kubernetes,
}

impl EngineKind {
    pub fn name(self) -> &'static str {
        match self {
            Self::Slurm => "slurm",
            Self::Ssh => "ssh",
            Self::Kubernetes => "kubernetes",
        }
    }
}

/// Where an SSH job runs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SshJob {
    /// The host as the user's ssh knows it (an alias of ~/.ssh/config, `user@host`, ...).
    pub host: String,
    /// The run folder on the host (absolute).
    pub remote_run: String,
    /// Whether the run folder was copied to the host (else the host sees this very folder).
    pub copied: bool,
}

/// Which Kubernetes Job.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KubeJob {
    pub name: String,
    /// `None`: the namespace of kubectl's current context.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

/// The content of job.json.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobFile {
    pub version: u32,
    pub engine: EngineKind,
    pub job_id: String,
    /// The script or manifest, a file name in the run folder.
    pub script: String,
    /// RFC 3339, UTC.
    pub submitted_at: String,
    /// The submission's argument vector, for the record.
    pub command: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssh: Option<SshJob>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubernetes: Option<KubeJob>,
    /// Set by `roadseg cancel` (and the studio's Stop): an SSH job that then ends is reported
    /// cancelled, not failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cancel_requested_at: Option<String>,
}

impl JobFile {
    /// `job.json` of the run folder `run`.
    pub fn path(run: &Path) -> PathBuf {
        run.join(FILE_NAME)
    }

    /// Reads and checks `run/job.json`; [`JobError::NotSubmitted`] when there is none.
    pub fn read(run: &Path) -> Result<Self, JobError> {
        let path = Self::path(run);
        let file = match std::fs::File::open(&path) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(JobError::NotSubmitted(run.to_path_buf()));
            }
            Err(e) => return Err(JobError::io(&path)(e)),
        };
        let mut bytes = Vec::new();
        file.take(MAX_BYTES + 1)
            .read_to_end(&mut bytes)
            .map_err(JobError::io(&path))?;
        Self::parse(&bytes, &path)
    }

    /// Parses and checks job.json's bytes (`path` names the file in errors).
    pub fn parse(bytes: &[u8], path: &Path) -> Result<Self, JobError> {
        let bad = |reason: String| JobError::BadJobFile {
            path: path.to_path_buf(),
            reason,
        };
        if bytes.len() as u64 > MAX_BYTES {
            return Err(bad(format!(
                "larger than {} KiB: not a roadseg job file",
                MAX_BYTES >> 10
            )));
        }
        let mut de = serde_json::Deserializer::from_slice(bytes);
        let job: JobFile = serde_path_to_error::deserialize(&mut de).map_err(|e| {
            let at = e.path().to_string();
            match at.as_str() {
                "." => bad(e.inner().to_string()),
                _ => bad(format!("{at}: {}", e.inner())),
            }
        })?;
        job.check().map_err(bad)?;
        Ok(job)
    }

    /// Writes `run/job.json` atomically.
    pub fn write(&self, run: &Path) -> Result<(), JobError> {
        let path = Self::path(run);
        self.check().map_err(|reason| JobError::BadJobFile {
            path: path.clone(),
            reason,
        })?;
        let mut text = serde_json::to_string_pretty(self).map_err(|e| JobError::BadJobFile {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        text.push('\n');
        write_atomic(&path, text.as_bytes()).map_err(|e| JobError::BadJobFile {
            path,
            reason: e.to_string(),
        })
    }

    /// Every field against what its engine accepts (see the module comment).
    fn check(&self) -> Result<(), String> {
        if self.version != VERSION {
            return Err(format!(
                "version {} (this roadseg reads version {VERSION}; a newer roadseg wrote it)",
                self.version
            ));
        }
        check_file_name(&self.script).map_err(|e| format!("script: {e}"))?;
        check_timestamp(&self.submitted_at).map_err(|e| format!("submitted_at: {e}"))?;
        if let Some(at) = &self.cancel_requested_at {
            check_timestamp(at).map_err(|e| format!("cancel_requested_at: {e}"))?;
        }
        if self.command.len() > 10_000 || self.command.iter().any(|a| a.len() > 10_000) {
            return Err("command: too long to be a submission".into());
        }
        match self.engine {
            EngineKind::Slurm => {
                check_slurm_id(&self.job_id).map_err(|e| format!("job_id: {e}"))?;
            }
            EngineKind::Ssh => {
                let Some(ssh) = &self.ssh else {
                    return Err("an ssh job needs its \"ssh\" entry (host, remote_run)".into());
                };
                check_pid(&self.job_id).map_err(|e| format!("job_id: {e}"))?;
                check_host(&ssh.host).map_err(|e| format!("ssh.host: {e}"))?;
                check_remote_path(&ssh.remote_run).map_err(|e| format!("ssh.remote_run: {e}"))?;
            }
            EngineKind::Kubernetes => {
                let Some(kube) = &self.kubernetes else {
                    return Err("a kubernetes job needs its \"kubernetes\" entry (name)".into());
                };
                check_dns_name(&kube.name, 63).map_err(|e| format!("kubernetes.name: {e}"))?;
                if kube.name != self.job_id {
                    return Err("job_id: differs from kubernetes.name".into());
                }
                if let Some(ns) = &kube.namespace {
                    check_dns_name(ns, 63).map_err(|e| format!("kubernetes.namespace: {e}"))?;
                }
            }
        }
        let stray = match self.engine {
            EngineKind::Slurm => self.ssh.is_some() || self.kubernetes.is_some(),
            EngineKind::Ssh => self.kubernetes.is_some(),
            EngineKind::Kubernetes => self.ssh.is_some(),
        };
        if stray {
            return Err(format!(
                "entries of another engine in a {} job",
                self.engine.name()
            ));
        }
        Ok(())
    }
}

/// A Slurm job id: `123` or an array task `123_4`.
pub fn check_slurm_id(id: &str) -> Result<(), String> {
    let digits = |s: &str| !s.is_empty() && s.len() <= 18 && s.bytes().all(|b| b.is_ascii_digit());
    let ok = match id.split_once('_') {
        Some((job, task)) => digits(job) && digits(task),
        None => digits(id),
    };
    match ok {
        true => Ok(()),
        false => Err(format!(
            "{id:?} is not a Slurm job id (digits, or digits_digits)"
        )),
    }
}

fn check_pid(id: &str) -> Result<(), String> {
    match id.parse::<u32>() {
        Ok(pid) if pid > 1 && id.bytes().all(|b| b.is_ascii_digit()) => Ok(()),
        _ => Err(format!("{id:?} is not a process id")),
    }
}

/// A host for `ssh`: letters, digits and `.-_@:[]%` (user@host, IPv6 in brackets), not starting
/// with `-` (which ssh would read as an option).
pub fn check_host(host: &str) -> Result<(), String> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || "._-@:[]%".contains(c);
    if host.is_empty() || host.len() > 255 || host.starts_with('-') || !host.chars().all(allowed) {
        return Err(format!(
            "{host:?} is not a host name (letters, digits, '.-_@:', not starting with '-')"
        ));
    }
    Ok(())
}

/// A remote folder: absolute, no control characters.
pub fn check_remote_path(path: &str) -> Result<(), String> {
    if !path.starts_with('/') || path.len() > 4096 || path.chars().any(char::is_control) {
        return Err(format!(
            "{path:?} is not an absolute path without control characters"
        ));
    }
    Ok(())
}

/// A Kubernetes name: lowercase letters, digits and '-', starting and ending with a letter or
/// digit, at most `max` characters (RFC 1123 label).
pub fn check_dns_name(name: &str, max: usize) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= max
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-');
    match ok {
        true => Ok(()),
        false => Err(format!(
            "{name:?} is not a Kubernetes name (lowercase letters, digits and '-', at most {max})"
        )),
    }
}

/// A plain file name: no folder, no `..`, nothing hidden.
fn check_file_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 255
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
    match ok {
        true => Ok(()),
        false => Err(format!("{name:?} is not a file name in the run folder")),
    }
}

/// `YYYY-MM-DDTHH:MM:SSZ` as [`rfc3339_utc`] writes it.
fn check_timestamp(text: &str) -> Result<(), String> {
    let b = text.as_bytes();
    let shape = b.len() == 20
        && b.iter().enumerate().all(|(i, &c)| match i {
            4 | 7 => c == b'-',
            10 => c == b'T',
            13 | 16 => c == b':',
            19 => c == b'Z',
            _ => c.is_ascii_digit(),
        });
    match shape {
        true => Ok(()),
        false => Err(format!("{text:?} is not a time like 2026-12-05T10:00:00Z")),
    }
}

/// `time` as RFC 3339 in UTC, to the second (`2026-12-05T10:00:00Z`).
pub fn rfc3339_utc(time: std::time::SystemTime) -> String {
    let secs = time
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (year, month, day) = civil_from_days(days as i64);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// The proleptic Gregorian date of `days` since 1970-01-01 (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn slurm_job() -> JobFile {
        JobFile {
            version: VERSION,
            engine: EngineKind::Slurm,
            job_id: "4242_1".into(),
            script: "job.sh".into(),
            submitted_at: "2026-12-05T10:00:00Z".into(),
            command: vec!["sbatch".into(), "--parsable".into()],
            ssh: None,
            kubernetes: None,
            cancel_requested_at: None,
        }
    }

    #[test]
    fn dates_are_utc_calendar_dates() {
        use std::time::{Duration, UNIX_EPOCH};
        assert_eq!(rfc3339_utc(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        // `date -u -d @1796429448 +%FT%TZ`
        let t = UNIX_EPOCH + Duration::from_secs(1_796_429_448);
        assert_eq!(rfc3339_utc(t), "2026-12-05T00:10:48Z");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400); // 2000-02-29
        assert_eq!(rfc3339_utc(leap), "2000-02-29T00:00:00Z");
        check_timestamp(&rfc3339_utc(std::time::SystemTime::now())).unwrap();
    }

    #[test]
    fn a_written_job_file_reads_back() {
        let tmp = std::env::temp_dir().join(format!("roadseg-jobfile-{}", std::process::id()));
        std::fs::create_dir_all(&tmp).unwrap();
        let job = slurm_job();
        job.write(&tmp).unwrap();
        assert_eq!(JobFile::read(&tmp).unwrap(), job);
        let _ = std::fs::remove_dir_all(&tmp);
        assert!(matches!(
            JobFile::read(&tmp),
            Err(JobError::NotSubmitted(_))
        ));
    }

    #[test]
    fn hostile_fields_are_refused_naming_the_field() {
        let path = Path::new("/runs/x/job.json");
        let with = |edit: &dyn Fn(&mut serde_json::Value)| {
            let mut value = serde_json::to_value(slurm_job()).unwrap();
            edit(&mut value);
            JobFile::parse(value.to_string().as_bytes(), path)
                .unwrap_err()
                .to_string()
        };
        type Edit = Box<dyn Fn(&mut serde_json::Value)>;
        let cases: Vec<(Edit, &str)> = vec![
            (Box::new(|v| v["job_id"] = "12; rm -rf ~".into()), "job_id"),
            (Box::new(|v| v["job_id"] = "--signal=KILL".into()), "job_id"),
            (Box::new(|v| v["script"] = "../../.bashrc".into()), "script"),
            (Box::new(|v| v["version"] = 7.into()), "version 7"),
            (Box::new(|v| v["engine"] = "lsf".into()), "engine"),
            (
                Box::new(|v| v["submitted_at"] = "yesterday".into()),
                "submitted_at",
            ),
            (Box::new(|v| v["extra"] = 1.into()), "extra"),
            (
                Box::new(|v| {
                    v["engine"] = "ssh".into();
                    v["job_id"] = "123".into();
                    v["ssh"] = serde_json::json!({"host": "-oProxyCommand=touch /tmp/x",
                        "remote_run": "/r", "copied": false});
                }),
                "ssh.host",
            ),
            (
                Box::new(|v| {
                    v["engine"] = "ssh".into();
                    v["job_id"] = "123".into();
                    v["ssh"] = serde_json::json!({"host": "gpu1", "remote_run": "relative",
                        "copied": true});
                }),
                "ssh.remote_run",
            ),
            (
                Box::new(|v| {
                    v["engine"] = "kubernetes".into();
                    v["job_id"] = "Bad_Name".into();
                    v["kubernetes"] = serde_json::json!({"name": "Bad_Name"});
                }),
                "kubernetes.name",
            ),
        ];
        for (edit, field) in cases {
            let err = with(&*edit);
            assert!(err.starts_with("/runs/x/job.json: "), "{err}");
            assert!(err.contains(field), "{field}: {err}");
        }
        let err = JobFile::parse(&vec![b' '; 70_000], path)
            .unwrap_err()
            .to_string();
        assert!(err.contains("larger than"), "{err}");
    }
}
