//! Fuzzing what the job engines read from a run folder (see `tests/fuzz/mod.rs` for the
//! properties and knobs): `job.json` mutated field by field and byte by byte for each engine,
//! and metrics.jsonl written, cut, replaced and garbled under a tailer that follows it.
//!
//! job.json can come from a shared disk, so whatever it holds must be refused with an error
//! naming the file, or accepted only with values that cannot pass for an option or a shell
//! word where the engines use them (nothing in it is ever run).

use crate::fuzz;
use crate::fuzz_run_dir::mutation;

use fuzz::{apply, assert_names, damage, peak_of, text};
use proptest::prelude::*;
use roadseg::core::jobs::job_file::{EngineKind, JobFile};
use roadseg::core::jobs::tailer::MetricsTailer;
use roadseg::core::train::run_dir::MetricRecord;
use serde_json::{Value, json};

/// Cases per target in CI: each is a small file read, so many are cheap.
const CASES: u32 = 2_000;
/// A job.json read holds the file (at most 64 KiB) and its parse.
const JOB_READ_BOUND: u64 = 1 << 20;

/// A valid job.json of each engine.
fn valid(engine: usize) -> Value {
    let common = json!({
        "version": 1,
        "submitted_at": "2026-12-05T10:00:00Z",
        "script": "job.sh",
        "command": ["sbatch", "--parsable", "/runs/run-1/job.sh"],
    });
    let mut v = common;
    match engine % 3 {
        0 => {
            v["engine"] = json!("slurm");
            v["job_id"] = json!("4242_1");
        }
        1 => {
            v["engine"] = json!("ssh");
            v["job_id"] = json!("31337");
            v["ssh"] = json!({"host": "me@gpu1", "remote_run": "/home/me/roadseg-runs/runs/run-1", "copied": true});
        }
        _ => {
            v["engine"] = json!("kubernetes");
            v["job_id"] = json!("roadseg-run-1-abc123");
            v["script"] = json!("job.k8s.json");
            v["kubernetes"] = json!({"name": "roadseg-run-1-abc123", "namespace": "ml"});
        }
    }
    v
}

/// What an accepted job.json may hold: the values the engines pass to sbatch, ssh, kubectl.
fn assert_harmless(job: &JobFile) {
    let plain = |s: &str| {
        !s.is_empty()
            && !s.starts_with('-')
            && !s
                .chars()
                .any(|c| c.is_whitespace() || c.is_control() || "'\"$`;&|<>()\\*?!{}".contains(c))
    };
    assert!(plain(&job.job_id), "job_id {:?}", job.job_id);
    assert!(
        plain(&job.script) && !job.script.contains('/'),
        "script {:?}",
        job.script
    );
    match job.engine {
        EngineKind::Slurm => assert!(job.job_id.bytes().all(|b| b.is_ascii_digit() || b == b'_')),
        EngineKind::Ssh => {
            let ssh = job.ssh.as_ref().expect("an ssh job has its entry");
            assert!(plain(&ssh.host), "host {:?}", ssh.host);
            assert!(
                ssh.remote_run.starts_with('/') && !ssh.remote_run.chars().any(char::is_control)
            );
            assert!(job.job_id.parse::<u32>().is_ok());
        }
        EngineKind::Kubernetes => {
            let kube = job
                .kubernetes
                .as_ref()
                .expect("a kubernetes job has its entry");
            assert!(plain(&kube.name) && kube.name.len() <= 63);
            assert!(kube.namespace.as_deref().is_none_or(plain));
        }
    }
}

fn read_job(bytes: &[u8]) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("job.json");
    std::fs::write(&path, bytes).unwrap();
    let (read, peak) = peak_of(|| JobFile::read(dir.path()));
    assert!(peak <= JOB_READ_BOUND, "reading held {peak} bytes");
    match read {
        Ok(job) => assert_harmless(&job),
        Err(e) => assert_names(&e.to_string(), &path),
    }
}

/// One thing that happens to a metrics file under a tailer.
#[derive(Debug, Clone)]
enum Write {
    /// Whole records appended.
    Records(Vec<u8>),
    /// Raw bytes appended (garbage, or half a line).
    Bytes(Vec<u8>),
    /// Cut to a fraction of its length (a resumed run cuts to its checkpoint).
    Cut(f64),
    /// Replaced by a new file holding these bytes.
    Replace(Vec<u8>),
}

fn record_line(step: usize) -> Vec<u8> {
    let r = MetricRecord::new("train", 1, step, 0.5, 1e-3);
    let mut line = serde_json::to_vec(&r).unwrap();
    line.push(b'\n');
    line
}

fn write() -> impl Strategy<Value = Write> {
    prop_oneof![
        4 => proptest::collection::vec(0..1000usize, 1..5)
            .prop_map(|steps| Write::Records(steps.into_iter().flat_map(record_line).collect())),
        2 => text(80).prop_map(|t| Write::Bytes(t.into_bytes())),
        1 => (0.0..1.0f64).prop_map(Write::Cut),
        1 => proptest::collection::vec(0..1000usize, 0..4)
            .prop_map(|steps| Write::Replace(steps.into_iter().flat_map(record_line).collect())),
    ]
}

proptest! {
    #![proptest_config(fuzz::config(CASES))]

    #[test]
    fn job_files(engine in 0..3usize, mutations in proptest::collection::vec(mutation(), 0..4), bytes in damage()) {
        let mut value = valid(engine);
        for m in &mutations {
            m.apply(&mut value);
        }
        let text = serde_json::to_vec_pretty(&value).unwrap();
        read_job(&apply(text, &bytes));
    }

    #[test]
    fn job_files_of_any_text(t in text(400)) {
        read_job(t.as_bytes());
    }

    /// Whatever happens to the file, the tailer never panics, and what it has handed out since
    /// its last reset is exactly the records of the file's complete lines.
    #[test]
    fn tailed_metrics(writes in proptest::collection::vec((write(), any::<bool>()), 1..12)) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("metrics.jsonl");
        let mut tailer = MetricsTailer::new(&path);
        let mut seen: Vec<MetricRecord> = Vec::new();
        let poll = |tailer: &mut MetricsTailer, seen: &mut Vec<MetricRecord>| {
            let update = tailer.poll().unwrap();
            if update.reset {
                seen.clear();
            }
            seen.extend(update.records);
        };
        for (w, poll_now) in &writes {
            match w {
                Write::Records(b) | Write::Bytes(b) => {
                    use std::io::Write as _;
                    let mut f = std::fs::OpenOptions::new().create(true).append(true).open(&path).unwrap();
                    f.write_all(b).unwrap();
                }
                Write::Cut(f) => {
                    if let Ok(file) = std::fs::OpenOptions::new().write(true).open(&path) {
                        let len = file.metadata().unwrap().len();
                        file.set_len((len as f64 * f) as u64).unwrap();
                    }
                }
                Write::Replace(b) => {
                    let tmp = dir.path().join("new");
                    std::fs::write(&tmp, b).unwrap();
                    std::fs::rename(&tmp, &path).unwrap();
                }
            }
            if *poll_now {
                poll(&mut tailer, &mut seen);
            }
        }
        poll(&mut tailer, &mut seen);
        // The reference: every complete line of the file that is a record.
        let bytes = std::fs::read(&path).unwrap_or_default();
        let complete = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        let expected: Vec<MetricRecord> = bytes[..complete]
            .split(|&b| b == b'\n')
            .filter_map(|l| serde_json::from_slice(l).ok())
            .collect();
        prop_assert_eq!(seen.len(), expected.len(), "tailer {:?}", seen.iter().map(|r| r.step).collect::<Vec<_>>());
        prop_assert_eq!(seen, expected);
    }
}

#[test]
fn a_hostile_job_file_from_a_shared_disk_is_refused_before_anything_runs() {
    // Each of these would run something if a field went into a shell or an option unchecked.
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("PWNED");
    let m = marker.to_str().unwrap();
    let mut cases = Vec::new();
    let mut ssh = valid(1);
    ssh["ssh"]["host"] = json!(format!("-oProxyCommand=touch {m}"));
    cases.push(ssh);
    let mut ssh = valid(1);
    ssh["ssh"]["remote_run"] = json!(format!("/x\ntouch {m}"));
    cases.push(ssh);
    let mut ssh = valid(1);
    ssh["job_id"] = json!(format!("1; touch {m}"));
    cases.push(ssh);
    let mut slurm = valid(0);
    slurm["job_id"] = json!("--signal=KILL");
    cases.push(slurm);
    let mut kube = valid(2);
    kube["kubernetes"]["namespace"] = json!("--all-namespaces");
    cases.push(kube);
    for case in cases {
        std::fs::write(dir.path().join("job.json"), case.to_string()).unwrap();
        let err = roadseg::core::jobs::engine::cancel(dir.path())
            .unwrap_err()
            .to_string();
        assert_names(&err, &dir.path().join("job.json"));
        assert!(!marker.exists());
    }
}
