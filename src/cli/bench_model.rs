//! `roadseg bench --model RUN [--compare RUN2...]`: inference latency (p50/p95, images/s) at
//! each size and the process's peak resident memory, for a run and its quantized or pruned
//! variants side by side.
//!
//! Each run is measured in a child process of its own (`bench --model RUN --isolated --json`):
//! peak resident memory is a high-water mark of the whole process, so only a fresh process
//! gives each model its own figure.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::Context;
use roadseg::core::device::{DeviceChoice, resolve};
use roadseg::core::export::measure::{Latency, checkpoint_bytes, latency, size_figures};
use roadseg::core::memory::{peak_resident_bytes, resident_bytes};
use roadseg::core::predict::Predictor;
use roadseg::core::train::run_dir::CheckpointKind;
use serde::{Deserialize, Serialize};

/// One run's figures.
#[derive(Serialize, Deserialize, Debug, Clone)]
pub struct RunBench {
    pub run: PathBuf,
    pub checkpoint: PathBuf,
    pub device: String,
    /// Parameters of the inference model (batch norm folded), as `quantize` and `prune` count.
    pub params: usize,
    pub file_bytes: u64,
    /// Convolution GFLOPs per image, at each size.
    pub gflops: Vec<f64>,
    pub latency: Vec<Latency>,
    /// Resident memory once the model is loaded, and the process's peak after the timed runs.
    pub resident_after_load_bytes: Option<u64>,
    pub peak_resident_bytes: Option<u64>,
}

/// What a child answers on stdout when it cannot measure its run: the parent quotes `error`
/// (never the child's stderr, whose "error: " prefix would repeat inside its own message).
#[derive(Serialize, Deserialize)]
struct ChildError {
    error: String,
}

/// The child's side (`bench --model RUN --isolated`): the figures as JSON on stdout, or a
/// [`ChildError`].
pub fn isolated(
    run: &Path,
    sizes: &[[u32; 2]],
    device: DeviceChoice,
    runs: usize,
) -> anyhow::Result<()> {
    match measure(run, sizes, device, runs) {
        Ok(bench) => {
            println!("{}", serde_json::to_string_pretty(&bench)?);
            Ok(())
        }
        Err(e) => {
            let answer = ChildError {
                error: format!("{e:#}"),
            };
            println!("{}", serde_json::to_string(&answer)?);
            Err(e)
        }
    }
}

/// Measures `run` in this process.
fn measure(
    run: &Path,
    sizes: &[[u32; 2]],
    device: DeviceChoice,
    runs: usize,
) -> anyhow::Result<RunBench> {
    let (device, device_name) = resolve(device)?;
    // Its errors name the run's files already.
    let predictor = Predictor::load(run, CheckpointKind::Best, device.clone())?;
    let resident_after_load_bytes = resident_bytes();
    let sizes = match sizes {
        [] => vec![predictor.config().train.size],
        sizes => sizes.to_vec(),
    };
    let config = predictor.config();
    let model = predictor.model();
    let mut out = RunBench {
        run: run.to_path_buf(),
        checkpoint: predictor.checkpoint().to_path_buf(),
        device: device_name,
        params: 0,
        file_bytes: checkpoint_bytes(predictor.checkpoint()),
        gflops: Vec::new(),
        latency: Vec::new(),
        resident_after_load_bytes,
        peak_resident_bytes: None,
    };
    for size in sizes {
        let (params, gflops) = size_figures(model, &config.segmenter(), size);
        out.params = params;
        out.gflops.push(gflops);
        out.latency.push(latency(
            model,
            config.model.in_channels,
            &device,
            size,
            runs,
        )?);
    }
    out.peak_resident_bytes = peak_resident_bytes();
    Ok(out)
}

/// Measures each run in a child process and prints them side by side (or as JSON).
pub fn run(
    runs: &[PathBuf],
    sizes: &[[u32; 2]],
    device: DeviceChoice,
    timed: usize,
    json: bool,
) -> anyhow::Result<()> {
    let exe = std::env::current_exe().context("finding the roadseg executable")?;
    let mut results = Vec::new();
    for run in runs {
        let mut command = Command::new(&exe);
        command
            .arg("bench")
            .arg("--model")
            .arg(run)
            .arg("--isolated")
            .arg("--json")
            .arg("--device")
            .arg(device.to_string())
            .arg("--runs")
            .arg(timed.to_string());
        for [w, h] in sizes {
            command.arg("--size").arg(format!("{w}x{h}"));
        }
        let output = command
            .output()
            .with_context(|| format!("running {}", exe.display()))?;
        if !output.status.success() {
            let reason = match serde_json::from_slice::<ChildError>(&output.stdout) {
                Ok(answer) => answer.error,
                // It did not get as far as answering (a crash, a refused argument): its stderr,
                // without the prefix our own message adds.
                Err(_) => {
                    let stderr = String::from_utf8_lossy(&output.stderr);
                    let stderr = stderr.trim();
                    stderr.strip_prefix("error: ").unwrap_or(stderr).to_string()
                }
            };
            anyhow::bail!("measuring {}: {reason}", run.display());
        }
        let bench: RunBench = serde_json::from_slice(&output.stdout)
            .with_context(|| format!("reading the figures of {}", run.display()))?;
        results.push(bench);
    }
    if json {
        let out = serde_json::json!({
            "runs": results,
            "gpu_memory": "not reported: burn 0.22 exposes no device memory figures",
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    print_side_by_side(&results);
    Ok(())
}

fn print_side_by_side(results: &[RunBench]) {
    let name = |r: &RunBench| {
        r.run.file_name().map_or_else(
            || r.run.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        )
    };
    let mib = |b: Option<u64>| {
        b.map_or_else(
            || "-".into(),
            |b| format!("{:.1} MiB", b as f64 / (1 << 20) as f64),
        )
    };
    print!("{:<28}", "");
    for r in results {
        print!(" {:>16}", name(r));
    }
    println!();
    let row = |label: String, cells: Vec<String>| {
        print!("{label:<28}");
        for c in cells {
            print!(" {c:>16}");
        }
        println!();
    };
    // Device descriptions are long: one line when the runs share it, else the short name.
    match results.first() {
        Some(first) if results.iter().all(|r| r.device == first.device) => {
            println!("device: {}", first.device);
        }
        _ => row(
            "device".into(),
            results
                .iter()
                .map(|r| r.device.split(" (").next().unwrap_or_default().to_string())
                .collect(),
        ),
    }
    row(
        "parameters (BN folded)".into(),
        results.iter().map(|r| r.params.to_string()).collect(),
    );
    row(
        "weights file".into(),
        results.iter().map(|r| mib(Some(r.file_bytes))).collect(),
    );
    let Some(first) = results.first() else { return };
    for (i, size) in first.latency.iter().map(|l| l.size).enumerate() {
        let [w, h] = size;
        let cell = |f: &dyn Fn(&Latency, f64) -> String| {
            results
                .iter()
                .map(|r| match (r.latency.get(i), r.gflops.get(i)) {
                    (Some(l), Some(g)) => f(l, *g),
                    _ => "-".into(),
                })
                .collect()
        };
        row(
            format!("{w}x{h} conv GFLOPs"),
            cell(&|_, g| format!("{g:.3}")),
        );
        row(
            format!("{w}x{h} latency p50"),
            cell(&|l, _| format!("{:.2} ms", l.p50_ms)),
        );
        row(
            format!("{w}x{h} latency p95"),
            cell(&|l, _| format!("{:.2} ms", l.p95_ms)),
        );
        row(
            format!("{w}x{h} images/s"),
            cell(&|l, _| format!("{:.1}", l.images_per_sec)),
        );
    }
    row(
        "resident after load".into(),
        results
            .iter()
            .map(|r| mib(r.resident_after_load_bytes))
            .collect(),
    );
    row(
        "peak resident".into(),
        results.iter().map(|r| mib(r.peak_resident_bytes)).collect(),
    );
    println!(
        "(batch 1, median of the timed runs; each run measured in its own process; GPU memory is not reported: burn 0.22 exposes no device memory figures)"
    );
}
