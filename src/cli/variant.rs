//! Before/after figures of a run and the variant made from it (`quantize`, `prune`): weights
//! file, parameters, FLOPs, validation mIoU and inference latency, measured the same way for
//! both, the latency runs interleaved.

use std::path::{Path, PathBuf};

use anyhow::Context;
use burn::tensor::Device;
use roadseg::core::dataset::DatasetIndex;
use roadseg::core::export::measure::{
    Latency, checkpoint_bytes, latencies, size_figures, validation_miou,
};
use roadseg::core::predict::Predictor;
use roadseg::core::train::run_dir::CheckpointKind;
use serde::Serialize;

/// The figures of one run.
#[derive(Serialize)]
pub struct Figures {
    pub run: PathBuf,
    pub checkpoint: PathBuf,
    /// Parameters of the inference model (batch norm folded into the convolutions: its
    /// statistics gone, a bias per filter instead).
    pub params: usize,
    /// Convolution GFLOPs for one image at the latency size.
    pub gflops: f64,
    pub file_bytes: u64,
    pub val_miou: f64,
    /// What the mIoU was measured on.
    pub miou_scope: String,
    pub latency: Latency,
}

/// Measures the `before` run's `kind` checkpoint and the `after` run's best one on `device` at
/// `size` (default: `before`'s training size), both scored on `index` (the source run's
/// dataset, [`open_dataset`](roadseg::core::export::measure::open_dataset)).
pub fn measure_pair(
    (before, kind): (&Path, CheckpointKind),
    after: &Path,
    index: &DatasetIndex,
    device: &Device,
    size: Option<[u32; 2]>,
    runs: usize,
) -> anyhow::Result<[Figures; 2]> {
    // Its errors name the run already.
    let load = |run: &Path, kind| Predictor::load(run, kind, device.clone());
    let predictors = [load(before, kind)?, load(after, CheckpointKind::Best)?];
    let size = size.unwrap_or(predictors[0].config().train.size);
    let in_channels = predictors[0].config().model.in_channels;
    let models = [predictors[0].model(), predictors[1].model()];
    let mut timed = latencies(&models, in_channels, device, size, runs)?.into_iter();
    let mut figures = Vec::new();
    for (predictor, run) in predictors.iter().zip([before, after]) {
        let (params, gflops) =
            size_figures(predictor.model(), &predictor.config().segmenter(), size);
        let (val_miou, scope) = validation_miou(predictor, index)
            .with_context(|| format!("evaluating {}", run.display()))?;
        figures.push(Figures {
            run: run.to_path_buf(),
            checkpoint: predictor.checkpoint().to_path_buf(),
            params,
            gflops,
            file_bytes: checkpoint_bytes(predictor.checkpoint()),
            val_miou,
            miou_scope: scope.to_string(),
            latency: timed.next().expect("one latency per model"),
        });
    }
    let after = figures.pop().expect("two");
    let before = figures.pop().expect("two");
    Ok([before, after])
}

/// `value` in MiB.
pub fn mib(bytes: u64) -> String {
    format!("{:.2} MiB", bytes as f64 / (1 << 20) as f64)
}

/// The before/after table; `extra` rows go after the standard ones.
pub fn print_table(before: &Figures, after: &Figures, extra: &[(String, String, String)]) {
    let ratio = |a: f64, b: f64| {
        if b > 0.0 {
            format!("{:.2}x", a / b)
        } else {
            "-".into()
        }
    };
    let [w, h] = before.latency.size;
    let mut rows = vec![
        (
            "weights file".to_string(),
            mib(before.file_bytes),
            mib(after.file_bytes),
            format!(
                "{} smaller",
                ratio(before.file_bytes as f64, after.file_bytes as f64)
            ),
        ),
        (
            "parameters (batch norm folded)".into(),
            before.params.to_string(),
            after.params.to_string(),
            ratio(after.params as f64, before.params as f64),
        ),
        (
            format!("conv GFLOPs ({w}x{h})"),
            format!("{:.3}", before.gflops),
            format!("{:.3}", after.gflops),
            ratio(after.gflops, before.gflops),
        ),
        (
            format!("val mIoU ({})", before.miou_scope),
            format!("{:.4}", before.val_miou),
            format!("{:.4}", after.val_miou),
            format!("{:+.4}", after.val_miou - before.val_miou),
        ),
        (
            format!("latency p50 ({w}x{h}, batch 1)"),
            format!("{:.2} ms", before.latency.p50_ms),
            format!("{:.2} ms", after.latency.p50_ms),
            format!(
                "{} faster",
                ratio(before.latency.p50_ms, after.latency.p50_ms)
            ),
        ),
        (
            "latency p95".into(),
            format!("{:.2} ms", before.latency.p95_ms),
            format!("{:.2} ms", after.latency.p95_ms),
            String::new(),
        ),
    ];
    rows.extend(
        extra
            .iter()
            .map(|(a, b, c)| (a.clone(), b.clone(), c.clone(), String::new())),
    );
    println!("{:<34} {:>14} {:>14}", "", "before", "after");
    for (name, b, a, note) in rows {
        println!("{name:<34} {b:>14} {a:>14}  {note}");
    }
}
