#![cfg(feature = "gui")]
//! The CI part of the studio soak (`roadseg bench --soak`, `--soak-kills`; the full run is in
//! the README's Reliability section): a few simulated minutes of scripted use with training and
//! dataset switches, and three sessions killed with SIGKILL at random moments. Every mask must
//! decode and hold exactly what some prefix of the user's edits made (nothing torn or mixed),
//! lost edits must be younger than the autosave bound, and no run folder may be left broken.

use serde_json::Value;

fn bench(args: &[&str]) -> Value {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_roadseg"))
        .arg("bench")
        .args(args)
        .arg("--json")
        .env(
            "ROADSEG_DATA_DIR",
            std::env::temp_dir().join("roadseg-test-data"),
        )
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "roadseg bench {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn a_short_scripted_session_paints_trains_and_reports_memory() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("soak");
    let report = bench(&[
        "--soak",
        "--minutes",
        "3",
        "--speed",
        "30",
        "--soak-size",
        "96x64",
        "--soak-dir",
        dir.to_str().unwrap(),
    ]);
    let soak = &report["soak"];
    let activity = &soak["activity"];
    for what in ["strokes", "page_changes", "dataset_switches"] {
        assert!(activity[what].as_u64().unwrap() > 0, "{what}: {soak}");
    }
    let memory = soak["memory"].as_array().unwrap();
    assert!(memory.len() >= 3, "{soak}");
    assert!(
        memory
            .iter()
            .all(|s| s["resident_mib"].as_f64().unwrap() > 1.0),
        "{soak}"
    );
    // A training run was started from the window at some point.
    assert!(
        memory.iter().any(|s| s["training"] != "idle") || dir.join("runs").exists(),
        "{soak}"
    );
}

#[test]
fn killed_sessions_lose_only_recent_strokes_and_never_tear_a_mask() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("kills");
    let report = bench(&[
        "--soak-kills",
        "3",
        "--speed",
        "10",
        "--seed",
        "7",
        "--soak-dir",
        dir.to_str().unwrap(),
    ]);
    let kills = &report["kills"];
    assert_eq!(kills["kills"], 3);
    assert_eq!(kills["inconsistent_masks"], 0, "{kills}");
    assert_eq!(kills["broken_runs"].as_array().unwrap().len(), 0, "{kills}");
    assert_eq!(
        kills["masks_checked"], 36,
        "every mask decoded after every kill"
    );
    assert!(kills["edits_journaled"].as_u64().unwrap() > 0, "{kills}");
    // Autosave every 10 simulated seconds; a loaded CI machine may delay the frame that saves,
    // so the bound here is two intervals (the full run reports the real figure).
    let age = kills["oldest_lost_age_secs"].as_f64().unwrap();
    assert!(age <= 20.0, "an edit {age} s old was lost: {kills}");
}
