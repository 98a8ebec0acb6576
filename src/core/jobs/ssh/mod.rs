//! SSH: a run on a host the user reaches with their own OpenSSH client (`ssh`, `scp`; keys from
//! the agent or `~/.ssh/config`; `BatchMode`, so nothing ever waits for a password). Nothing
//! listens on a port of ours: every exchange is one `ssh` or `scp` command.
//!
//! - **Shared or copied.** `ssh:HOST` first checks whether the host sees this very run folder
//!   (a random token written here is read back there). If it does, the run trains in place. If
//!   not, or with `ssh:HOST:DIR`, the dataset and the run folder (with its label snapshot) are
//!   copied under `DIR` (default `roadseg-runs` in the remote home): `DIR/data/<dataset>-<hash>`
//!   (copied once, then reused while its fingerprint matches) and `DIR/runs/<run>-<hash>`, whose
//!   config.json names the remote dataset.
//! - **Start.** `setsid nohup sh job.sh` in the remote run folder, detached from the session,
//!   with its output in `train.log`; the script `exec`s roadseg, so the pid printed is
//!   roadseg's, recorded in job.json.
//! - **Follow.** [`pull`] asks the host in one `ssh` call whether the pid lives, the checksums
//!   of the checkpoints' state files and the summary, and metrics.jsonl's bytes past what this
//!   side has; new bytes are appended to the local copy (which the [`super::tailer`] follows as
//!   any local run) and changed checkpoints are fetched with `scp` and swapped in.
//! - **Stop.** `kill -TERM <pid>`: roadseg finishes its step and checkpoints; pause is
//!   `kill -STOP` / `kill -CONT`.
//!
//! Remote commands are strings a remote shell parses, so every word in them is quoted
//! ([`super::script::quote`]), and the values job.json gives (host, folder, pid) are checked
//! before use (see [`super::job_file`]). `ROADSEG_SSH_CONFIG=FILE` passes `-F FILE` to ssh and
//! scp (the tests use a config of their own; users normally rely on `~/.ssh/config`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::JobError;
use super::job_file::{JobFile, check_host, check_remote_path};
use super::script::quote;
use super::tool::{Ran, args, run, run_ok};

mod pull;

pub use pull::{Pulled, pull};

const HINT: &str = "the OpenSSH client (ssh, scp) must be on PATH";
/// A command on the host (not a copy) answers within this or the host is unreachable.
const COMMAND_LIMIT: Duration = Duration::from_secs(60);
/// Copying a dataset can take long; beyond this, something is wrong.
const COPY_LIMIT: Duration = Duration::from_secs(6 * 3600);

/// `ssh:HOST[:DIR]` as the user wrote it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SshTarget {
    pub host: String,
    /// Where runs are copied on the host; `None`: in place when shared, else `roadseg-runs`.
    pub dir: Option<String>,
}

impl SshTarget {
    /// Parses what follows `ssh:` (`HOST` or `HOST:DIR`).
    pub fn parse(text: &str) -> Result<Self, JobError> {
        let (host, dir) = match text.split_once(':') {
            Some((host, dir)) => (host, Some(dir.to_string()).filter(|d| !d.is_empty())),
            None => (text, None),
        };
        check_host(host).map_err(|e| JobError::Invalid(format!("ssh:{text}: {e}")))?;
        if let Some(dir) = &dir
            && dir.chars().any(char::is_control)
        {
            return Err(JobError::Invalid(format!(
                "ssh:{text}: the folder holds control characters"
            )));
        }
        Ok(Self {
            host: host.to_string(),
            dir,
        })
    }
}

/// The user's ssh client aimed at one host.
#[derive(Clone, Debug)]
pub struct Ssh {
    host: String,
    config: Option<PathBuf>,
}

impl Ssh {
    pub fn new(host: &str) -> Result<Self, JobError> {
        check_host(host).map_err(JobError::Invalid)?;
        Ok(Self {
            host: host.to_string(),
            config: std::env::var_os("ROADSEG_SSH_CONFIG").map(PathBuf::from),
        })
    }

    pub fn host(&self) -> &str {
        &self.host
    }

    /// Options for both ssh and scp.
    fn options(&self) -> Vec<String> {
        let mut a = args(["-o", "BatchMode=yes", "-o", "ConnectTimeout=20"]);
        if let Some(config) = &self.config {
            a.push("-F".into());
            a.push(config.to_string_lossy().into_owned());
        }
        a
    }

    /// Runs `command` (a string the remote shell parses: quote every word) on the host.
    pub fn exec(&self, command: &str, stdin: Option<&[u8]>) -> Result<Ran, JobError> {
        let mut a = self.options();
        a.extend(["--".to_string(), self.host.clone(), command.to_string()]);
        run("ssh", &a, stdin, COMMAND_LIMIT, HINT)
    }

    /// [`Ssh::exec`], a non-zero exit being an error with the remote stderr.
    pub fn exec_ok(&self, command: &str, stdin: Option<&[u8]>) -> Result<Ran, JobError> {
        let mut a = self.options();
        a.extend(["--".to_string(), self.host.clone(), command.to_string()]);
        run_ok("ssh", &a, stdin, COMMAND_LIMIT, HINT)
    }

    /// `scp -r local host:remote` (remote must not exist: it becomes the copy).
    pub fn copy_to(&self, local: &Path, remote: &str) -> Result<(), JobError> {
        let mut a = args(["-r", "-q", "-p"]);
        a.extend(self.options());
        a.push("--".into());
        a.push(local.to_string_lossy().into_owned());
        a.push(format!("{}:{remote}", self.host));
        run_ok("scp", &a, None, COPY_LIMIT, HINT).map(drop)
    }

    /// `scp -r host:remote local` (local must not exist: it becomes the copy).
    pub fn copy_from(&self, remote: &str, local: &Path) -> Result<(), JobError> {
        let mut a = args(["-r", "-q", "-p"]);
        a.extend(self.options());
        a.push("--".into());
        a.push(format!("{}:{remote}", self.host));
        a.push(local.to_string_lossy().into_owned());
        run_ok("scp", &a, None, COPY_LIMIT, HINT).map(drop)
    }
}

/// `name` with everything but letters, digits and `._-` turned into `_`: a remote folder name
/// that needs no quoting anywhere (scp, shells, logs).
pub fn safe_name(name: &str) -> String {
    let s: String = name
        .chars()
        .map(|c| match c.is_ascii_alphanumeric() || "._-".contains(c) {
            true => c,
            false => '_',
        })
        .collect();
    match s.trim_start_matches('.') {
        "" => "run".into(),
        t => t.chars().take(80).collect(),
    }
}

/// 8 hex digits of FNV-1a of `text`: tells apart folders of the same name from different places.
pub fn short_hash(text: &str) -> String {
    let mut h: u32 = 0x811c_9dc5;
    for b in text.bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    format!("{h:08x}")
}

/// Whether the host sees the local folder `dir` at the same path.
pub fn sees_same_folder(ssh: &Ssh, dir: &Path) -> Result<bool, JobError> {
    let token = format!(
        "{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos())
    );
    let probe = dir.join(".roadseg-shared-check");
    std::fs::write(&probe, &token).map_err(JobError::io(&probe))?;
    let Some(path) = probe.to_str() else {
        let _ = std::fs::remove_file(&probe);
        return Ok(false);
    };
    let ran = ssh.exec(&format!("cat -- {} 2>/dev/null", quote(path)), None);
    let _ = std::fs::remove_file(&probe);
    let ran = ran?;
    if ran.status.contains("255") {
        // ssh itself failed (no connection, no key): say so rather than guess.
        return Err(JobError::Failed {
            command: format!("ssh {}", ssh.host()),
            status: ran.status,
            stderr: ran.stderr,
        });
    }
    Ok(ran.success && ran.stdout_text() == token)
}

/// The remote folder `dir` (relative to the remote home, or absolute), created, as an
/// absolute path.
pub fn remote_folder(ssh: &Ssh, dir: &str) -> Result<String, JobError> {
    let dir = dir.strip_prefix("~/").unwrap_or(dir);
    let ran = ssh.exec_ok(
        &format!("mkdir -p -- {d} && cd -- {d} && pwd -P", d = quote(dir)),
        None,
    )?;
    let path = ran.stdout_text().trim().to_string();
    check_remote_path(&path).map_err(|reason| JobError::Unexpected {
        command: format!("ssh {} pwd", ssh.host()),
        reason,
    })?;
    Ok(path)
}

/// What identifies a dataset's content cheaply: file count, bytes and newest modification.
pub fn fingerprint(dir: &Path) -> String {
    let (mut files, mut bytes, mut newest) = (0u64, 0u64, 0u64);
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            let Ok(meta) = entry.metadata() else { continue };
            if meta.is_dir() {
                stack.push(entry.path());
            } else {
                files += 1;
                bytes += meta.len();
                let modified = meta
                    .modified()
                    .ok()
                    .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                    .map_or(0, |d| d.as_secs());
                newest = newest.max(modified);
            }
        }
    }
    format!("{files} files, {bytes} bytes, newest {newest}")
}

/// Copies the local dataset `data` to `remote` unless the copy there has the same fingerprint.
/// Returns whether it copied.
pub fn sync_dataset(ssh: &Ssh, data: &Path, remote: &str) -> Result<bool, JobError> {
    let marker = format!("{remote}/.roadseg-copy");
    let print = fingerprint(data);
    let there = ssh.exec(&format!("cat -- {} 2>/dev/null", quote(&marker)), None)?;
    if there.success && there.stdout_text().trim() == print {
        return Ok(false);
    }
    ssh.exec_ok(&format!("rm -rf -- {}", quote(remote)), None)?;
    ssh.copy_to(data, remote)?;
    ssh.exec_ok(&format!("cat > {}", quote(&marker)), Some(print.as_bytes()))?;
    Ok(true)
}

/// Writes `bytes` to the remote file `path` (through a temporary file and a rename).
pub fn write_remote(ssh: &Ssh, path: &str, bytes: &[u8]) -> Result<(), JobError> {
    let tmp = format!("{path}.tmp");
    ssh.exec_ok(
        &format!(
            "cat > {t} && mv -f -- {t} {p}",
            t = quote(&tmp),
            p = quote(path)
        ),
        Some(bytes),
    )
    .map(drop)
}

/// Starts `sh job.sh` detached in the remote run folder; returns roadseg's pid.
pub fn start(ssh: &Ssh, remote_run: &str) -> Result<u32, JobError> {
    let command = format!(
        "cd -- {r} || exit 1; command -v setsid >/dev/null 2>&1 && S=setsid || S=; \
         $S nohup sh job.sh >/dev/null 2>&1 </dev/null & echo $!",
        r = quote(remote_run)
    );
    let ran = ssh.exec_ok(&command, None)?;
    let text = ran.stdout_text();
    text.trim()
        .parse::<u32>()
        .ok()
        .filter(|&pid| pid > 1)
        .ok_or_else(|| JobError::Unexpected {
            command: format!("ssh {} (start)", ssh.host()),
            reason: format!("expected the started process's id, got {:?}", text.trim()),
        })
}

/// Sends `signal` (TERM, STOP, CONT) to the job's process.
pub fn signal(job: &JobFile, signal: &str) -> Result<(), JobError> {
    let (ssh, _) = job_ssh(job)?;
    let pid: u32 = job
        .job_id
        .parse()
        .map_err(|_| JobError::Invalid(format!("{:?} is not a process id", job.job_id)))?;
    let ran = ssh.exec(&format!("kill -{signal} {pid}"), None)?;
    if ran.success {
        return Ok(());
    }
    Err(JobError::Failed {
        command: format!("ssh {} kill -{signal} {pid}", ssh.host()),
        status: ran.status,
        stderr: match ran.stderr.is_empty() {
            true => "the process is gone".into(),
            false => ran.stderr,
        },
    })
}

pub(super) fn job_ssh(job: &JobFile) -> Result<(Ssh, &super::job_file::SshJob), JobError> {
    let Some(remote) = &job.ssh else {
        return Err(JobError::Invalid(
            "an ssh job without its \"ssh\" entry".into(),
        ));
    };
    Ok((Ssh::new(&remote.host)?, remote))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_parse_and_hostile_hosts_are_refused() {
        assert_eq!(
            SshTarget::parse("gpu1").unwrap(),
            SshTarget {
                host: "gpu1".into(),
                dir: None
            }
        );
        assert_eq!(
            SshTarget::parse("me@gpu1:/scratch/me/runs").unwrap(),
            SshTarget {
                host: "me@gpu1".into(),
                dir: Some("/scratch/me/runs".into())
            }
        );
        assert_eq!(SshTarget::parse("gpu1:").unwrap().dir, None);
        for bad in ["-oProxyCommand=x", "", "a b", "h;rm", "h$(x)"] {
            assert!(SshTarget::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn names_and_hashes_are_plain() {
        assert_eq!(safe_name("run 1 'x'"), "run_1__x_");
        assert_eq!(safe_name("..."), "run");
        assert_eq!(safe_name("$(rm -rf ~)"), "__rm_-rf___");
        assert_eq!(short_hash("a"), "e40c292c");
        assert_ne!(short_hash("/data/a"), short_hash("/data/b"));
    }
}
