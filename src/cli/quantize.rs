//! `roadseg quantize`: a run with int8 convolution weights (burn's post-training quantization),
//! written as a new run, with size, validation mIoU and CPU latency before and after.

use std::path::PathBuf;

use burn::tensor::Device;
use roadseg::core::export::derive::{self, Derivation};
use roadseg::core::export::load_run;
use roadseg::core::export::quantize::{Scheme, quantize_weights, quantized_params};

use super::variant::{measure_pair, print_table};
use roadseg::core::train::run_dir::CheckpointKind;

/// Printed with every result: what a smaller file does and does not buy.
const NOTE: &str = "burn's CPU backend (flex) stores the int8 weights but dequantizes them to \
    f32 for every convolution: the weights file is smaller, inference is not faster.";

#[derive(clap::Args)]
pub struct Args {
    /// Run directory written by `roadseg train`.
    #[arg(long)]
    model: PathBuf,
    /// The new run to write.
    #[arg(long)]
    out: PathBuf,
    /// int8-tensor (one scale per weight tensor) or int8-block (one per block of input
    /// channels of a filter).
    #[arg(long, default_value = "int8-tensor")]
    scheme: Scheme,
    /// Which weights of RUN: best (by validation mIoU) or last.
    #[arg(long, default_value = "best", value_parser = super::eval::parse_checkpoint)]
    checkpoint: CheckpointKind,
    /// Latency size, WIDTHxHEIGHT (default: the training size).
    #[arg(long, value_parser = super::parse_size)]
    size: Option<[u32; 2]>,
    /// Timed inference runs per model.
    #[arg(long, default_value_t = 20)]
    runs: usize,
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let device = Device::flex();
    let source = load_run(&args.model, args.checkpoint, &device)?;
    let method = format!("quantize {}", args.scheme);
    let quantized = quantize_weights(source.model, args.scheme);
    let (q, all) = quantized_params(&quantized);
    let run = derive::create(
        &args.model,
        &args.out,
        &source.config,
        &Derivation {
            from: std::path::absolute(&args.model)?,
            checkpoint: source.checkpoint.clone(),
            method: method.clone(),
            roadseg_version: env!("CARGO_PKG_VERSION").into(),
        },
    )?;
    derive::write_weights(&run, &source.config, &quantized, &derive::state(None))?;

    let [before, after] = measure_pair(
        &args.model,
        &args.out,
        CheckpointKind::Best,
        &device,
        args.size,
        args.runs,
    )?;
    run.write_summary(&derive::summary(&method, Some(after.val_miou)))?;
    if args.json {
        let json = serde_json::json!({
            "scheme": args.scheme.to_string(),
            "quantized_params": q,
            "params": all,
            "before": before,
            "after": after,
            "note": NOTE,
        });
        println!("{}", serde_json::to_string_pretty(&json)?);
        return Ok(());
    }
    println!(
        "wrote {} ({}: {q} of {all} parameters stored as int8, the convolution weights)",
        args.out.display(),
        args.scheme
    );
    print_table(&before, &after, &[]);
    println!("note: {NOTE}");
    Ok(())
}
