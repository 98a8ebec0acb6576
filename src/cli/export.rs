//! `roadseg export`: a trained run as an ONNX file (see `core::export::onnx`).

use std::path::PathBuf;

use roadseg::core::export::onnx::export_run;
use roadseg::core::train::run_dir::CheckpointKind;

#[derive(clap::Args)]
pub struct Args {
    /// Run directory written by `roadseg train`.
    #[arg(long)]
    model: PathBuf,
    /// The ONNX file to write (replaced atomically if it exists).
    #[arg(long)]
    onnx: PathBuf,
    /// Which weights: best (by validation mIoU) or last.
    #[arg(long, default_value = "best", value_parser = super::eval::parse_checkpoint)]
    checkpoint: CheckpointKind,
    /// Symbolic height and width (multiples of 2^depth) instead of the training size; the
    /// batch axis is always symbolic.
    #[arg(long)]
    dynamic: bool,
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let report = export_run(&args.model, args.checkpoint, &args.onnx, args.dynamic)?;
    if args.json {
        let json = serde_json::json!({
            "path": report.path,
            "bytes": report.bytes,
            "checkpoint": report.checkpoint,
            "traced": report.traced,
            "size_multiple": report.size_multiple,
            "dynamic": report.dynamic,
            "operators": report.operators.iter().cloned().collect::<std::collections::BTreeMap<_, _>>(),
            "metadata": report.metadata.iter().cloned().collect::<std::collections::BTreeMap<_, _>>(),
        });
        println!("{}", serde_json::to_string_pretty(&json)?);
        return Ok(());
    }
    let [h, w] = report.traced;
    let (height, width) = match report.dynamic {
        true => ("height".to_string(), "width".to_string()),
        false => (h.to_string(), w.to_string()),
    };
    println!(
        "wrote {} ({:.1} KiB, ONNX opset 18) from {}",
        report.path.display(),
        report.bytes as f64 / 1024.0,
        report.checkpoint.display()
    );
    println!("  input  image  float32 [batch, 3, {height}, {width}]  RGB/255, (x - mean) / std");
    println!("  output logits float32 [batch, classes, {height}, {width}]  arg-max over axis 1");
    if report.dynamic {
        println!(
            "  height and width: any multiples of {} (traced at {h}x{w})",
            report.size_multiple
        );
    }
    let ops: Vec<String> = report
        .operators
        .iter()
        .map(|(op, n)| format!("{op} x{n}"))
        .collect();
    println!("  operators: {}", ops.join(", "));
    for (key, value) in &report.metadata {
        println!("  {key}: {value}");
    }
    Ok(())
}
