//! `roadseg quantize`: a run with int8 convolution weights (burn's post-training quantization),
//! written as a new run, with size, validation mIoU and CPU latency before and after.

use std::path::PathBuf;

use burn::tensor::Device;
use roadseg::core::export::derive::{self, Derivation};
use roadseg::core::export::load_run;
use roadseg::core::export::measure::open_dataset;
use roadseg::core::export::quantize::{Scheme, quantize_weights, quantized_params};

use super::variant::{measure_pair, print_table};
use roadseg::core::train::run_dir::CheckpointKind;

/// Printed with every result: what a smaller file does and does not buy.
const NOTE: &str = "burn's CPU backend (flex) stores the int8 weights but dequantizes them to \
    f32 for every convolution: the weights file is smaller, inference is not faster. Training \
    from this run (train --init-from or --resume) goes on in f32 from the dequantized weights.";

#[derive(clap::Args)]
pub struct Args {
    /// Run directory written by `roadseg train`.
    #[arg(long)]
    model: PathBuf,
    /// The new run to write (a new or empty folder).
    #[arg(long)]
    out: PathBuf,
    /// int8-tensor (one scale per weight tensor) or int8-block (one per block of input
    /// channels of a filter).
    #[arg(long, default_value = "int8-tensor")]
    scheme: Scheme,
    /// Which weights of RUN: best (by validation mIoU) or last; the "before" figures are
    /// measured on the same ones.
    #[arg(long, default_value = "best", value_parser = super::eval::parse_checkpoint)]
    checkpoint: CheckpointKind,
    /// Dataset to measure the validation mIoU on (default: the run's own; give its new place
    /// if it moved). The new run records it.
    #[arg(long)]
    data: Option<PathBuf>,
    /// Latency size, WIDTHxHEIGHT (default: the training size).
    #[arg(long, value_parser = super::parse_size)]
    size: Option<[u32; 2]>,
    /// Timed inference runs per model.
    #[arg(long, default_value_t = 20, value_parser = super::parse_count)]
    runs: usize,
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let device = Device::flex();
    let source = load_run(&args.model, args.checkpoint, &device)?;
    // Before anything is written: the figures need the dataset.
    let index = open_dataset(&source.config, args.data.as_deref())?;
    let mut config = source.config.clone();
    if let Some(data) = &args.data {
        config.data = std::path::absolute(data)?;
    }
    let method = format!("quantize {}", args.scheme);
    let quantized = quantize_weights(source.model, args.scheme);
    let (q, _) = quantized_params(&quantized);
    let pending = derive::create(
        &args.model,
        &args.out,
        &config,
        &Derivation {
            from: std::path::absolute(&args.model)?,
            checkpoint: source.checkpoint.clone(),
            method: method.clone(),
            roadseg_version: env!("CARGO_PKG_VERSION").into(),
        },
    )?;
    derive::write_weights(pending.run(), &config, &quantized, &derive::state(None))?;

    let [before, after] = measure_pair(
        (&args.model, args.checkpoint),
        &args.out,
        &index,
        &device,
        args.size,
        args.runs,
    )?;
    pending
        .run()
        .write_summary(&derive::summary(&method, Some(after.val_miou)))?;
    pending.keep();
    if args.json {
        let json = serde_json::json!({
            "scheme": args.scheme.to_string(),
            "quantized_params": q,
            // The table's count (the inference model's), so the two agree.
            "params": after.params,
            "before": before,
            "after": after,
            "note": NOTE,
        });
        println!("{}", serde_json::to_string_pretty(&json)?);
        return Ok(());
    }
    println!(
        "wrote {} ({}: the convolution weights, {q} of the {} parameters counted below, are \
         stored as int8; biases and batch norm stay f32)",
        args.out.display(),
        args.scheme,
        after.params
    );
    print_table(&before, &after, &[]);
    println!("note: {NOTE}");
    Ok(())
}
