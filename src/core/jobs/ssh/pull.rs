//! Following an SSH job: one `ssh` call asks the host whether the pid lives, the checksums of
//! the checkpoints' state files and the summary, the last lines of train.log, and
//! metrics.jsonl's bytes past what this side has (a probe script whose answer comes in
//! `@@section` parts); new bytes are appended to the local copy, changed checkpoints fetched
//! with `scp` and swapped in.

use std::io::Write;
use std::path::Path;

use super::super::job_file::{JobFile, SshJob};
use super::super::script::quote;
use super::super::{EngineState, EngineStatus, JobError};
use super::{Ssh, job_ssh};

/// Metrics bytes fetched per pull at most (the rest comes with the next pull).
const PULL_BYTES: u64 = 8 << 20;
/// Bytes before the local copy's end fetched again to check the remote file was not rewritten.
const OVERLAP: u64 = 64;

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
    remote: &SshJob,
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

    /// The probe's answers from a host (OpenSSH 9.2, dash, procps), captured while a resumed
    /// run trained and after it had exited (a zombie until its new parent reaps it: kill -0
    /// still succeeds), each cut after its second metrics line.
    const PROBE_RUNNING: &[u8] =
        include_bytes!("../../../../tests/fixtures/jobs/ssh-probe-running.txt");
    const PROBE_EXITED: &[u8] =
        include_bytes!("../../../../tests/fixtures/jobs/ssh-probe-exited.txt");

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
