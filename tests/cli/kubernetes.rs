//! `roadseg train --submit kubernetes`: the run folder and its dataset must lie on the volume
//! named by --volume; the Job manifest written into the run folder runs the run on it. No
//! cluster answers on this machine (kubectl's client-side dry run needs one for its API
//! discovery), so the apply fails with kubectl's own words and the manifest is checked here and
//! against a golden file in the unit tests (`core::jobs::kubernetes`).

use crate::common;

use std::path::Path;

use common::fails;
use serde_json::Value;

fn args(data: &Path, out: &Path, volume: &str) -> Vec<String> {
    let flags = [
        "--submit",
        "kubernetes",
        "--image",
        "registry.example/roadseg:0.1",
        "--namespace",
        "ml",
        "--volume",
        volume,
        "--gpus",
        "1",
    ];
    common::tiny_args(data, out, 1, &flags)
}

#[test]
fn the_manifest_runs_the_run_on_the_named_volume() {
    let tmp = tempfile::tempdir().unwrap();
    let shared = tmp.path().join("shared");
    let data = common::tiny_sample(&shared, 41);
    let run = shared.join("runs/run 1");
    let volume = format!("runs-pvc:{}", shared.display());

    // A run folder off the volume is refused before anything is prepared.
    let elsewhere = tmp.path().join("elsewhere");
    let err = fails(&common::refs(&args(&data, &elsewhere, &volume)));
    assert!(
        err.contains("is not under") && err.contains("--volume"),
        "{err}"
    );

    let err = fails(&common::refs(&args(&data, &run, &volume)));
    // kubectl ran (and found no cluster here): its own error is what the user reads.
    assert!(err.contains("kubectl"), "{err}");
    let manifest: Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("job.k8s.json")).unwrap()).unwrap();
    assert_eq!(manifest["kind"], "Job");
    assert_eq!(manifest["metadata"]["namespace"], "ml");
    let name = manifest["metadata"]["name"].as_str().unwrap();
    assert!(
        name.starts_with("roadseg-run-1-") && name.len() <= 63,
        "{name}"
    );
    let pod = &manifest["spec"]["template"]["spec"];
    assert_eq!(pod["restartPolicy"], "Never");
    let container = &pod["containers"][0];
    assert_eq!(container["image"], "registry.example/roadseg:0.1");
    assert_eq!(
        container["command"],
        serde_json::json!([
            "roadseg",
            "train",
            "--resume",
            run.to_str().unwrap(),
            "--device",
            "cpu"
        ])
    );
    assert_eq!(container["resources"]["limits"]["nvidia.com/gpu"], 1);
    assert_eq!(
        container["volumeMounts"][0]["mountPath"],
        shared.to_str().unwrap()
    );
    assert_eq!(
        pod["volumes"][0]["persistentVolumeClaim"]["claimName"],
        "runs-pvc"
    );
    // The run was prepared as a local run would be: it can be submitted again.
    assert!(run.join("config.json").is_file() && run.join("labels").is_dir());
    assert!(!run.join("job.json").exists(), "no job was made");
}

#[test]
fn flags_of_another_engine_are_refused() {
    let err = fails(&["train", "--submit", "slurm", "--image", "x"]);
    assert!(
        err.contains("--image is not an option of --submit slurm"),
        "{err}"
    );
    let err = fails(&["train", "--submit", "ssh:gpu1", "--partition", "p"]);
    assert!(
        err.contains("--partition is not an option of --submit ssh"),
        "{err}"
    );
    let err = fails(&["train", "--submit", "lsf"]);
    assert!(
        err.contains("expected slurm, ssh:HOST[:DIR] or kubernetes"),
        "{err}"
    );
    let err = fails(&["train", "--submit", "ssh:-oProxyCommand=x"]);
    assert!(err.contains("not a host name"), "{err}");
    let err = fails(&["train", "--submit", "kubernetes", "--image", "x"]);
    assert!(err.contains("--volume CLAIM:PATH"), "{err}");
    let err = fails(&["train", "--partition", "p"]);
    assert!(err.contains("--submit"), "{err}");
}
