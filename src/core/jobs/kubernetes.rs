//! Kubernetes: a batch/v1 Job of one pod that runs `roadseg train --resume RUN` in the user's
//! image, with the run folder on a PersistentVolumeClaim the user names. The manifest is JSON
//! (kubectl reads JSON as it reads YAML) written into the run folder as `job.k8s.json`, then
//! `kubectl apply -f`'d; `kubectl get job -o json` says where it stands, `kubectl delete job`
//! stops it (the pod gets SIGTERM and its grace period, 60 s, to checkpoint), and pause is the
//! Job's own `spec.suspend` (suspending deletes the pod, which checkpoints; resuming starts a
//! new pod, which resumes from the checkpoint).
//!
//! The volume: `--volume CLAIM:PATH` mounts the claim at PATH in the pod, where PATH is also
//! where the same storage is mounted here, so the run folder's paths (its own and its
//! dataset's, in config.json) mean the same inside the pod. Both must lie under PATH.
//!
//! `backoffLimit` is 3: a pod that dies (a node drained, OOM) is replaced and the replacement
//! continues from the last checkpoint rather than starting over.

use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};

use super::job_file::check_dns_name;
use super::tool::{args, run, run_ok};
use super::{EngineState, EngineStatus, JobError};

const HINT: &str = "kubectl must be on PATH, with a context for the cluster";
const LIMIT: Duration = Duration::from_secs(60);
/// Seconds the pod has between SIGTERM and SIGKILL: one step and a checkpoint, with margin.
pub const GRACE_SECS: u64 = 60;
/// Pods replaced after a failure before the Job fails.
pub const BACKOFF_LIMIT: u32 = 3;

/// What a Kubernetes submission needs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KubeOptions {
    pub image: String,
    pub namespace: Option<String>,
    /// The claim's name and where it is mounted (in the pod and here).
    pub claim: String,
    pub mount: String,
    pub gpus: Option<u32>,
}

impl KubeOptions {
    /// Parses `--volume CLAIM:PATH`.
    pub fn parse_volume(text: &str) -> Result<(String, String), JobError> {
        let Some((claim, mount)) = text.split_once(':') else {
            return Err(JobError::Invalid(format!(
                "--volume {text:?}: expected CLAIM:PATH (a PersistentVolumeClaim and where it is mounted)"
            )));
        };
        check_dns_name(claim, 253).map_err(|e| JobError::Invalid(format!("--volume: {e}")))?;
        if !mount.starts_with('/') {
            return Err(JobError::Invalid(format!(
                "--volume {text:?}: the mount path must be absolute"
            )));
        }
        Ok((claim.to_string(), mount.trim_end_matches('/').to_string()))
    }
}

/// A Job name for `run_name`: `roadseg-<name>-<suffix>`, lowercase, at most 63 characters.
pub fn job_name(run_name: &str, suffix: &str) -> String {
    let mut name: String = run_name
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    name = name
        .split('-')
        .filter(|p| !p.is_empty())
        .collect::<Vec<_>>()
        .join("-");
    let room = 63 - "roadseg-".len() - 1 - suffix.len();
    name.truncate(room);
    let name = name.trim_end_matches('-');
    match name {
        "" => format!("roadseg-{suffix}"),
        n => format!("roadseg-{n}-{suffix}"),
    }
}

/// The Job manifest that trains `run` (its path as the pod sees it).
pub fn manifest(
    name: &str,
    options: &KubeOptions,
    run: &str,
    device: &str,
    skip_bad: bool,
) -> Value {
    let mut command = vec!["roadseg", "train", "--resume", run, "--device", device];
    if skip_bad {
        command.push("--skip-bad");
    }
    let mut container = json!({
        "name": "train",
        "image": options.image,
        "command": command,
        "volumeMounts": [{"name": "runs", "mountPath": options.mount}],
    });
    if let Some(gpus) = options.gpus {
        container["resources"] = json!({"limits": {"nvidia.com/gpu": gpus}});
    }
    let mut metadata = json!({
        "name": name,
        "labels": {"app.kubernetes.io/name": "roadseg", "app.kubernetes.io/component": "train"},
    });
    if let Some(ns) = &options.namespace {
        metadata["namespace"] = json!(ns);
    }
    json!({
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": metadata,
        "spec": {
            "backoffLimit": BACKOFF_LIMIT,
            "template": {
                "metadata": {"labels": {"app.kubernetes.io/name": "roadseg"}},
                "spec": {
                    "restartPolicy": "Never",
                    "terminationGracePeriodSeconds": GRACE_SECS,
                    "containers": [container],
                    "volumes": [{"name": "runs", "persistentVolumeClaim": {"claimName": options.claim}}],
                },
            },
        },
    })
}

fn namespaced(mut a: Vec<String>, namespace: Option<&str>) -> Vec<String> {
    if let Some(ns) = namespace {
        a.push("--namespace".into());
        a.push(ns.to_string());
    }
    a
}

/// `kubectl apply -f manifest`; returns the argument vector run.
pub fn apply(manifest: &Path, namespace: Option<&str>) -> Result<Vec<String>, JobError> {
    let mut a = args(["apply", "-f"]);
    a.push(manifest.to_string_lossy().into_owned());
    let a = namespaced(a, namespace);
    run_ok("kubectl", &a, None, LIMIT, HINT)?;
    let mut command = vec!["kubectl".to_string()];
    command.extend(a);
    Ok(command)
}

/// Where Job `name` stands; `cancelled`: whether we deleted it (a missing Job is then
/// cancelled, not unknown).
pub fn status(
    name: &str,
    namespace: Option<&str>,
    cancelled: bool,
) -> Result<EngineStatus, JobError> {
    check_dns_name(name, 63).map_err(JobError::Invalid)?;
    let a = namespaced(args(["get", "job", name, "--output", "json"]), namespace);
    let ran = run("kubectl", &a, None, LIMIT, HINT)?;
    if !ran.success {
        if ran.stderr.contains("NotFound") || ran.stderr.contains("not found") {
            return Ok(match cancelled {
                true => {
                    EngineStatus::new(EngineState::Cancelled, Some("the Job was deleted".into()))
                }
                false => EngineStatus::new(
                    EngineState::Unknown,
                    Some("the Job no longer exists".into()),
                ),
            });
        }
        return Err(JobError::Failed {
            command: format!("kubectl get job {name}"),
            status: ran.status,
            stderr: ran.stderr,
        });
    }
    let value: Value = serde_json::from_slice(&ran.stdout).map_err(|e| JobError::Unexpected {
        command: format!("kubectl get job {name} -o json"),
        reason: e.to_string(),
    })?;
    Ok(parse_job(&value))
}

/// A Job's state from `kubectl get job -o json`.
pub fn parse_job(job: &Value) -> EngineStatus {
    let status = &job["status"];
    let condition = |kind: &str| {
        status["conditions"].as_array().and_then(|c| {
            c.iter()
                .find(|c| c["type"] == kind && c["status"] == "True")
                .map(|c| {
                    let reason = c["reason"].as_str().unwrap_or("");
                    let message = c["message"].as_str().unwrap_or("");
                    match (reason, message) {
                        ("", m) => m.to_string(),
                        (r, "") => r.to_string(),
                        (r, m) => format!("{r}: {m}"),
                    }
                })
        })
    };
    let count = |key: &str| status[key].as_u64().unwrap_or(0);
    if let Some(detail) = condition("Complete").or_else(|| condition("SuccessCriteriaMet")) {
        return EngineStatus::new(
            EngineState::Completed,
            Some(detail).filter(|d| !d.is_empty()),
        );
    }
    if let Some(detail) = condition("Failed").or_else(|| condition("FailureTarget")) {
        let state = match detail.starts_with("DeadlineExceeded") {
            true => EngineState::Timeout,
            false => EngineState::Failed,
        };
        return EngineStatus::new(state, Some(detail).filter(|d| !d.is_empty()));
    }
    if job["spec"]["suspend"] == true || condition("Suspended").is_some() {
        return EngineStatus::new(EngineState::Suspended, Some("spec.suspend".into()));
    }
    let (active, ready, failed) = (count("active"), count("ready"), count("failed"));
    let retries = match failed {
        0 => None,
        n => Some(format!("{n} pod(s) failed, retrying from the checkpoint")),
    };
    match (active, ready) {
        (0, _) => EngineStatus::new(EngineState::Queued, retries.or(Some("no pod yet".into()))),
        (_, 0) => EngineStatus::new(
            EngineState::Queued,
            retries.or(Some("pod scheduled or starting".into())),
        ),
        _ => EngineStatus::new(EngineState::Running, retries),
    }
}

/// Deletes Job `name` (and its pod, which gets SIGTERM and [`GRACE_SECS`] to checkpoint).
pub fn cancel(name: &str, namespace: Option<&str>) -> Result<(), JobError> {
    check_dns_name(name, 63).map_err(JobError::Invalid)?;
    let a = namespaced(args(["delete", "job", name, "--wait=false"]), namespace);
    run_ok("kubectl", &a, None, LIMIT, HINT).map(drop)
}

/// Suspends (`pause`) or resumes Job `name` through `spec.suspend`.
pub fn pause(name: &str, namespace: Option<&str>, pause: bool) -> Result<(), JobError> {
    check_dns_name(name, 63).map_err(JobError::Invalid)?;
    let patch = json!({"spec": {"suspend": pause}}).to_string();
    let mut a = args(["patch", "job", name, "--type=merge", "--patch"]);
    a.push(patch);
    run_ok("kubectl", &namespaced(a, namespace), None, LIMIT, HINT).map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_names_are_dns_labels() {
        assert_eq!(job_name("run-3", "1a2b3c"), "roadseg-run-3-1a2b3c");
        assert_eq!(job_name("My Run_ (2)", "x1"), "roadseg-my-run-2-x1");
        assert_eq!(job_name("$$$", "ab"), "roadseg-ab");
        let long = job_name(&"a".repeat(200), "123456");
        assert!(long.len() <= 63);
        check_dns_name(&long, 63).unwrap();
    }

    /// `.status` of real Jobs as `kubectl get job -o json` printed them: a pod failing and
    /// being replaced, then the Job failed (kubernetes/kubernetes#93559), and a completed Job
    /// (kubernetes-client/java#673).
    const RETRYING: &str = r#"{"active": 1, "failed": 1, "startTime": "2020-07-30T06:45:37Z"}"#;
    const FAILED: &str = r#"{
      "conditions": [
        {
          "lastProbeTime": "2020-07-30T06:53:10Z",
          "lastTransitionTime": "2020-07-30T06:53:10Z",
          "message": "Job has reached the specified backoff limit",
          "reason": "BackoffLimitExceeded",
          "status": "True",
          "type": "Failed"
        }
      ],
      "failed": 5,
      "startTime": "2020-07-30T06:45:37Z"
    }"#;
    const COMPLETE: &str = r#"{
        "completionTime": "2019-08-22T14:34:58Z",
        "conditions": [
            {
                "lastProbeTime": "2019-08-22T14:34:58Z",
                "lastTransitionTime": "2019-08-22T14:34:58Z",
                "status": "True",
                "type": "Complete"
            }
        ],
        "startTime": "2019-08-22T14:34:40Z",
        "succeeded": 1
    }"#;

    fn with_status(status: &str) -> Value {
        json!({"kind": "Job", "spec": {}, "status": serde_json::from_str::<Value>(status).unwrap()})
    }

    #[test]
    fn job_states_come_from_conditions_and_counts() {
        let retrying = parse_job(&with_status(RETRYING));
        assert_eq!(retrying.state, EngineState::Queued);
        assert!(retrying.detail.unwrap().contains("1 pod(s) failed"));
        let failed = parse_job(&with_status(FAILED));
        assert_eq!(failed.state, EngineState::Failed);
        assert_eq!(
            failed.detail.as_deref(),
            Some("BackoffLimitExceeded: Job has reached the specified backoff limit")
        );
        assert_eq!(
            parse_job(&with_status(COMPLETE)).state,
            EngineState::Completed
        );
        let running = parse_job(&with_status(r#"{"active": 1, "ready": 1}"#));
        assert_eq!(running.state, EngineState::Running);
        let mut suspended = with_status(r#"{}"#);
        suspended["spec"]["suspend"] = json!(true);
        assert_eq!(parse_job(&suspended).state, EngineState::Suspended);
    }

    #[test]
    fn the_manifest_runs_the_run_in_the_image_on_the_claim() {
        let options = KubeOptions {
            image: "registry.example/roadseg:0.1".into(),
            namespace: Some("ml".into()),
            claim: "runs-pvc".into(),
            mount: "/mnt/shared".into(),
            gpus: Some(1),
        };
        let m = manifest(
            "roadseg-run-3-abc",
            &options,
            "/mnt/shared/runs/run 3",
            "auto",
            false,
        );
        let golden: Value =
            serde_json::from_str(include_str!("../../../tests/fixtures/jobs/job.k8s.json"))
                .unwrap();
        assert_eq!(m, golden, "{}", serde_json::to_string_pretty(&m).unwrap());
    }

    #[test]
    fn volumes_parse() {
        assert_eq!(
            KubeOptions::parse_volume("runs-pvc:/mnt/shared/").unwrap(),
            ("runs-pvc".to_string(), "/mnt/shared".to_string())
        );
        assert!(KubeOptions::parse_volume("runs-pvc").is_err());
        assert!(KubeOptions::parse_volume("Runs:/x").is_err());
        assert!(KubeOptions::parse_volume("runs:relative").is_err());
    }
}
