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

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::job_file::{JobFile, check_host, check_remote_path};
use super::script::quote;
use super::tool::{Ran, args, run, run_ok};
use super::{EngineState, EngineStatus, JobError};

const HINT: &str = "the OpenSSH client (ssh, scp) must be on PATH";
/// A command on the host (not a copy) answers within this or the host is unreachable.
const COMMAND_LIMIT: Duration = Duration::from_secs(60);
/// Copying a dataset can take long; beyond this, something is wrong.
const COPY_LIMIT: Duration = Duration::from_secs(6 * 3600);
/// Metrics bytes fetched per pull at most (the rest comes with the next pull).
const PULL_BYTES: u64 = 8 << 20;
/// Bytes before the local copy's end fetched again to check the remote file was not rewritten.
const OVERLAP: u64 = 64;

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

fn job_ssh(job: &JobFile) -> Result<(Ssh, &super::job_file::SshJob), JobError> {
    let Some(remote) = &job.ssh else {
        return Err(JobError::Invalid(
            "an ssh job without its \"ssh\" entry".into(),
        ));
    };
    Ok((Ssh::new(&remote.host)?, remote))
}

/// What one look at the host found.
#[derive(Clone, Debug, PartialEq)]
pub struct Pulled {
    pub status: EngineStatus,
    /// Metrics bytes appended to (or, after a rewrite, written anew into) the local copy.
    pub new_metrics_bytes: u64,
    /// Checkpoints fetched anew (`last`, `best`).
    pub checkpoints: Vec<String>,
}

/// The answer of the probe script, split into its sections.
#[derive(Debug, Default, PartialEq)]
struct Probe {
    /// `ps -o stat=` of the pid when it lives (`S`, `R`, `T`...), `None` when gone.
    process: Option<String>,
    last: Option<String>,
    best: Option<String>,
    summary: Option<String>,
    log: String,
    size: u64,
    metrics: Vec<u8>,
}

/// The shell script that reports on a remote run (see [`Probe`]); `from`: first byte of
/// metrics.jsonl wanted, `None` to leave metrics out (a shared folder).
fn probe_script(remote_run: &str, pid: u32, from: Option<u64>) -> String {
    let mut s = format!("cd -- {} || exit 3\n", quote(remote_run));
    // ps says how the process is (running, stopped, a zombie); where ps cannot, or the
    // process went between the two questions, kill -0 decides.
    s.push_str(&format!(
        "echo @@process; s=$(ps -o stat= -p {pid} 2>/dev/null); if [ -n \"$s\" ]; then echo \"$s\"; \
         elif kill -0 {pid} 2>/dev/null; then echo R; else echo gone; fi\n"
    ));
    for (name, file) in [
        ("last", "checkpoints/last/state.json"),
        ("best", "checkpoints/best/state.json"),
        ("summary", "summary.json"),
    ] {
        s.push_str(&format!(
            "echo @@{name}; if [ -f {file} ]; then cksum < {file}; else echo none; fi\n"
        ));
    }
    s.push_str("echo @@log; tail -n 5 train.log 2>/dev/null\n");
    if let Some(from) = from {
        s.push_str(
            "echo @@size; if [ -f metrics.jsonl ]; then wc -c < metrics.jsonl; else echo 0; fi\n",
        );
        s.push_str(&format!(
            "echo @@metrics; if [ -f metrics.jsonl ]; then tail -c +{} metrics.jsonl | head -c {PULL_BYTES}; fi\n",
            from + 1
        ));
    }
    s
}

fn parse_probe(out: &[u8]) -> Result<Probe, String> {
    let marker = b"@@metrics\n";
    let (head, metrics) = match out.windows(marker.len()).position(|w| w == marker) {
        Some(at) => (&out[..at], out[at + marker.len()..].to_vec()),
        None => (out, Vec::new()),
    };
    let head = String::from_utf8_lossy(head);
    let mut probe = Probe {
        metrics,
        ..Probe::default()
    };
    let mut section = "";
    let mut seen = 0;
    for line in head.lines() {
        if let Some(name) = line.strip_prefix("@@") {
            section = match name {
                "process" | "last" | "best" | "summary" | "log" | "size" => name,
                other => return Err(format!("unknown section {other:?}")),
            };
            seen += 1;
            continue;
        }
        let text = line.trim();
        let value = (text != "none").then(|| text.to_string());
        match section {
            "process" => probe.process = (text != "gone").then(|| text.to_string()),
            "last" => probe.last = value,
            "best" => probe.best = value,
            "summary" => probe.summary = value,
            "log" => {
                probe.log.push_str(line);
                probe.log.push('\n');
            }
            "size" => probe.size = text.parse().map_err(|_| format!("size {text:?}"))?,
            _ => return Err(format!("text before the first section: {line:?}")),
        }
    }
    if seen < 5 {
        return Err("the report is incomplete".into());
    }
    Ok(probe)
}

/// Where the job stands by its process and the run's summary (`summary`: its status when the
/// run wrote one).
fn state_of(
    process: Option<&str>,
    summary: Option<&str>,
    cancelled: bool,
    log: &str,
) -> EngineStatus {
    // A zombie (exited, not yet reaped by its new parent) still answers kill -0.
    let process = process.filter(|stat| !stat.starts_with('Z'));
    match (process, summary) {
        (Some(stat), _) if stat.starts_with('T') => {
            EngineStatus::new(EngineState::Suspended, Some("stopped with SIGSTOP".into()))
        }
        (Some(_), _) => EngineStatus::new(EngineState::Running, None),
        (None, Some("completed" | "early_stopped")) => {
            EngineStatus::new(EngineState::Completed, None)
        }
        (None, Some("stopped")) => EngineStatus::new(
            EngineState::Cancelled,
            Some(match cancelled {
                true => "stopped by roadseg cancel".into(),
                false => "stopped by a signal on the host".into(),
            }),
        ),
        (None, Some(other)) => EngineStatus::new(EngineState::Failed, Some(format!("run {other}"))),
        (None, None) => EngineStatus::new(
            EngineState::Failed,
            Some(match log.trim() {
                "" => "the process ended without a summary".into(),
                tail => format!("the process ended without a summary; train.log ends:\n{tail}"),
            }),
        ),
    }
}

/// Looks at the job on its host; for a copied run, brings this side's copy up to date
/// (metrics, summary, changed checkpoints). `local_run` is the run folder here.
pub fn pull(job: &JobFile, local_run: &Path) -> Result<Pulled, JobError> {
    let (ssh, remote) = job_ssh(job)?;
    let pid: u32 = job
        .job_id
        .parse()
        .map_err(|_| JobError::Invalid(format!("{:?} is not a process id", job.job_id)))?;
    let metrics_path = local_run.join("metrics.jsonl");
    let have = match remote.copied {
        true => std::fs::metadata(&metrics_path).map_or(0, |m| m.len()),
        false => 0,
    };
    let from = have.saturating_sub(OVERLAP);
    let command = probe_script(&remote.remote_run, pid, remote.copied.then_some(from));
    let ran = ssh.exec_ok(&command, None)?;
    let probe = parse_probe(&ran.stdout).map_err(|reason| JobError::Unexpected {
        command: format!("ssh {} (status)", ssh.host()),
        reason,
    })?;
    let mut pulled = Pulled {
        status: EngineStatus::new(EngineState::Unknown, None),
        new_metrics_bytes: 0,
        checkpoints: Vec::new(),
    };
    if remote.copied {
        pulled.new_metrics_bytes = mirror_metrics(
            &ssh,
            remote,
            pid,
            &metrics_path,
            have,
            probe.size,
            &probe.metrics,
        )?;
        let mut seen = PulledSums::read(local_run);
        for (name, sum) in [("last", &probe.last), ("best", &probe.best)] {
            if sum.is_some() && seen.get(name) != sum.as_deref() {
                let folder = format!("{}/checkpoints/{name}", remote.remote_run);
                if fetch_checkpoint(&ssh, &folder, &local_run.join("checkpoints").join(name))
                    .is_ok()
                {
                    seen.set(name, sum.clone());
                    pulled.checkpoints.push(name.to_string());
                }
            }
        }
        if probe.summary.is_some() && seen.get("summary") != probe.summary.as_deref() {
            let tmp = local_run.join(".summary.json.pull");
            let _ = std::fs::remove_file(&tmp);
            ssh.copy_from(&format!("{}/summary.json", remote.remote_run), &tmp)?;
            std::fs::rename(&tmp, local_run.join("summary.json"))
                .map_err(JobError::io(local_run.join("summary.json")))?;
            seen.set("summary", probe.summary.clone());
        }
        seen.write(local_run);
    }
    let summary = crate::core::train::run_dir::RunDir::new(local_run)
        .read_summary()
        .ok()
        .map(|s| s.status);
    let summary = match (remote.copied, probe.summary.is_some()) {
        // A copied run's summary here may be an old one: the remote says whether there is one.
        (true, false) => None,
        _ => summary,
    };
    pulled.status = state_of(
        probe.process.as_deref(),
        summary.as_deref(),
        job.cancel_requested_at.is_some(),
        &probe.log,
    );
    Ok(pulled)
}

/// Appends the new bytes of the remote metrics.jsonl to the local copy (`have` bytes long);
/// when the remote file was cut or rewritten, fetches it whole into a new local file.
fn mirror_metrics(
    ssh: &Ssh,
    remote: &super::job_file::SshJob,
    pid: u32,
    local: &Path,
    have: u64,
    size: u64,
    fetched: &[u8],
) -> Result<u64, JobError> {
    let from = have.saturating_sub(OVERLAP);
    let overlap = (have - from) as usize;
    let local_tail = match overlap {
        0 => Vec::new(),
        n => {
            let bytes = std::fs::read(local).map_err(JobError::io(local))?;
            bytes[bytes.len().saturating_sub(n)..].to_vec()
        }
    };
    let intact = size >= have && fetched.len() >= overlap && fetched[..overlap] == local_tail[..];
    if intact {
        let new = &fetched[overlap..];
        if !new.is_empty() {
            let mut file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(local)
                .map_err(JobError::io(local))?;
            file.write_all(new).map_err(JobError::io(local))?;
        }
        return Ok(new.len() as u64);
    }
    // Rewritten there (a resumed run cut it): fetch from the start into a new file that
    // replaces ours, so followers see a new file and start over.
    let command = probe_script(&remote.remote_run, pid, Some(0));
    let ran = ssh.exec_ok(&command, None)?;
    let probe = parse_probe(&ran.stdout).map_err(|reason| JobError::Unexpected {
        command: format!("ssh {} (metrics)", ssh.host()),
        reason,
    })?;
    let tmp = local.with_extension("jsonl.pull");
    std::fs::write(&tmp, &probe.metrics).map_err(JobError::io(&tmp))?;
    std::fs::rename(&tmp, local).map_err(JobError::io(local))?;
    Ok(probe.metrics.len() as u64)
}

/// Fetches the remote checkpoint folder into a temporary folder and swaps it in, keeping the
/// old one until the new one is complete.
fn fetch_checkpoint(ssh: &Ssh, remote: &str, local: &Path) -> Result<(), JobError> {
    let parent = local.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).map_err(JobError::io(parent))?;
    let name = local
        .file_name()
        .map_or_else(|| "c".into(), |n| n.to_string_lossy().into_owned());
    let tmp = parent.join(format!(".{name}.pull"));
    let old = parent.join(format!(".{name}.old"));
    let _ = std::fs::remove_dir_all(&tmp);
    ssh.copy_from(remote, &tmp)?;
    if !(tmp.join("state.json").is_file() && tmp.join("model.bpk").is_file()) {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(JobError::Invalid(format!(
            "{remote}: incomplete checkpoint (written while it was copied); trying again later"
        )));
    }
    let _ = std::fs::remove_dir_all(&old);
    if local.exists() {
        std::fs::rename(local, &old).map_err(JobError::io(local))?;
    }
    std::fs::rename(&tmp, local).map_err(JobError::io(local))?;
    let _ = std::fs::remove_dir_all(&old);
    Ok(())
}

/// The remote checksums of what was last fetched, in `RUN/.roadseg-pulled.json`.
#[derive(Default, serde::Serialize, serde::Deserialize)]
struct PulledSums(std::collections::BTreeMap<String, String>);

impl PulledSums {
    const FILE: &'static str = ".roadseg-pulled.json";

    fn read(run: &Path) -> Self {
        std::fs::read(run.join(Self::FILE))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    fn set(&mut self, name: &str, sum: Option<String>) {
        match sum {
            Some(sum) => self.0.insert(name.to_string(), sum),
            None => self.0.remove(name),
        };
    }

    fn write(&self, run: &Path) {
        if let Ok(text) = serde_json::to_vec(self) {
            let _ = crate::core::dataset::image_io::write_atomic(&run.join(Self::FILE), &text);
        }
    }
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

    /// The probe's answers from a host (OpenSSH 9.2, dash, procps), captured while a resumed
    /// run trained and after it had exited (a zombie until its new parent reaps it: kill -0
    /// still succeeds), each cut after its second metrics line.
    const PROBE_RUNNING: &[u8] =
        include_bytes!("../../../tests/fixtures/jobs/ssh-probe-running.txt");
    const PROBE_EXITED: &[u8] = include_bytes!("../../../tests/fixtures/jobs/ssh-probe-exited.txt");

    #[test]
    fn the_probe_answer_is_read_section_by_section() {
        let p = parse_probe(PROBE_RUNNING).unwrap();
        assert_eq!(p.process.as_deref(), Some("Ssl"));
        assert_eq!(p.last.as_deref(), Some("2264234319 203"));
        assert_eq!(p.summary.as_deref(), Some("3137137237 1133"));
        assert_eq!(p.size, 5954);
        assert!(p.log.starts_with("warm-up: 1 step") && p.log.lines().count() == 5);
        // The overlap (the end of an earlier line), then complete lines.
        let lines: Vec<&[u8]> = p.metrics.split(|&b| b == b'\n').collect();
        assert!(lines[1].starts_with(b"{\"split\":\"train\",\"epoch\":4,\"step\":7"));
        assert_eq!(
            state_of(p.process.as_deref(), None, false, "").state,
            EngineState::Running
        );

        let exited = parse_probe(PROBE_EXITED).unwrap();
        assert_eq!(exited.process.as_deref(), Some("Zs"));
        let state = state_of(exited.process.as_deref(), Some("completed"), false, "");
        assert_eq!(
            state.state,
            EngineState::Completed,
            "a zombie is not running"
        );

        assert!(parse_probe(b"Permission denied\n").is_err());
        assert!(parse_probe(b"@@process\ngone\n@@evil\n").is_err());
    }

    #[test]
    fn states_come_from_the_process_and_the_summary() {
        let s = |p, sum, c| state_of(p, sum, c, "").state;
        assert_eq!(s(Some("Ss"), None, false), EngineState::Running);
        assert_eq!(s(Some("T"), None, false), EngineState::Suspended);
        assert_eq!(s(None, Some("completed"), false), EngineState::Completed);
        assert_eq!(s(None, Some("stopped"), true), EngineState::Cancelled);
        assert_eq!(s(None, Some("diverged"), false), EngineState::Failed);
        let crashed = state_of(None, None, false, "error: no such file\n");
        assert_eq!(crashed.state, EngineState::Failed);
        assert!(crashed.detail.unwrap().contains("no such file"));
    }

    #[test]
    fn the_probe_script_quotes_the_folder() {
        let script = probe_script("/r/it's $(x)", 42, Some(10));
        assert!(
            script.starts_with("cd -- '/r/it'\\''s $(x)' || exit 3\n"),
            "{script}"
        );
        assert!(script.contains("tail -c +11 metrics.jsonl"));
        assert!(!probe_script("/r", 42, None).contains("@@metrics"));
    }
}
