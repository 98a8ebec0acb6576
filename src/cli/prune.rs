//! `roadseg prune`: magnitude pruning of a run, written as a new run (optionally fine-tuned),
//! with parameters, FLOPs, size, validation mIoU and latency before and after.

use std::path::{Path, PathBuf};

use anyhow::Context;
use burn::module::Module;
use burn::tensor::Device;
use roadseg::core::device::{DeviceChoice, resolve};
use roadseg::core::export::derive::{self, Derivation};
use roadseg::core::export::load_run;
use roadseg::core::model::prune::{prune_structured, prune_unstructured, sparsity};
use roadseg::core::train::config::RunConfig;
use roadseg::core::train::control::Control;
use roadseg::core::train::run_dir::{CheckpointKind, RunDir};
use roadseg::core::train::trainer::{TrainOptions, TrainStart, load_model, train};

use super::progress::Progress;
use super::variant::{measure_pair, print_table};

#[derive(clap::Args)]
pub struct Args {
    /// Run directory written by `roadseg train`.
    #[arg(long)]
    model: PathBuf,
    /// The new run to write.
    #[arg(long)]
    out: PathBuf,
    /// Fraction to remove, in [0, 1): of each convolution's weights, or with --structured of
    /// each stage's channels.
    #[arg(long, value_parser = parse_amount)]
    amount: f64,
    /// Remove whole filters: a narrower UNet (per-stage widths in its config), faster on every
    /// backend. Without it the smallest weights are set to zero: sparse, not faster.
    #[arg(long)]
    structured: bool,
    /// Then train the pruned model this many epochs on the run's data (its training set,
    /// validated each epoch; the best epoch is kept).
    #[arg(long, default_value_t = 0)]
    finetune_epochs: usize,
    /// Fine-tuning learning rate (default: the run's; on the sample, 5 epochs at a third of it
    /// recovered less: mIoU 0.31 against 0.43).
    #[arg(long)]
    lr: Option<f64>,
    /// Which weights of RUN: best (by validation mIoU) or last.
    #[arg(long, default_value = "best", value_parser = super::eval::parse_checkpoint)]
    checkpoint: CheckpointKind,
    /// Device for fine-tuning and the latency figures.
    #[arg(long, default_value = "cpu")]
    device: DeviceChoice,
    /// Latency size, WIDTHxHEIGHT (default: the training size).
    #[arg(long, value_parser = super::parse_size)]
    size: Option<[u32; 2]>,
    /// Timed inference runs per model.
    #[arg(long, default_value_t = 20)]
    runs: usize,
    #[arg(long)]
    json: bool,
}

fn parse_amount(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(v) if (0.0..1.0).contains(&v) => Ok(v),
        _ => Err(format!("{text:?}: expected a fraction in [0, 1), e.g. 0.3")),
    }
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let source = load_run(&args.model, args.checkpoint, &Device::flex())?;
    let kind = if args.structured {
        "structured"
    } else {
        "unstructured"
    };
    let mut method = format!("prune {kind} {}", args.amount);
    if args.finetune_epochs > 0 {
        method += &format!(", fine-tuned {} epochs", args.finetune_epochs);
    }
    let (model, model_config) = match args.structured {
        true => prune_structured(&source.model, &source.config.model, args.amount),
        false => (
            prune_unstructured(source.model.clone(), args.amount),
            source.config.model.clone(),
        ),
    };
    let mut config = RunConfig {
        model: model_config.clone(),
        ..source.config.clone()
    };
    config.train.model.widths = model_config.widths.clone();
    if args.finetune_epochs > 0 {
        config.train.epochs = args.finetune_epochs;
        config.train.lr = args.lr.unwrap_or(source.config.train.lr);
    }
    let run = derive::create(
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
    derive::write_weights(&run, &config, &model, &derive::state(None))?;

    if args.finetune_epochs > 0 {
        finetune(&args.out, args.finetune_epochs, args.device)?;
        if !args.structured {
            // Training moved the zeros; prune the trained weights again to the same sparsity.
            reprune(&run, &config, args.amount)?;
        }
    }

    let (device, _) = resolve(args.device)?;
    let [before, after] = measure_pair(
        &args.model,
        &args.out,
        CheckpointKind::Best,
        &device,
        args.size,
        args.runs,
    )?;
    if args.finetune_epochs == 0 {
        run.write_summary(&derive::summary(&method, Some(after.val_miou)))?;
    }
    let pruned = load_run(&args.out, CheckpointKind::Best, &Device::flex())?;
    let sparse = sparsity(&pruned.model);
    let original = sparsity(&source.model);
    if args.json {
        let json = serde_json::json!({
            "method": method,
            "widths": { "before": source.config.model.stage_widths(), "after": pruned.config.model.stage_widths() },
            "sparsity": { "before": original.fraction(), "after": sparse.fraction() },
            "before": before,
            "after": after,
        });
        println!("{}", serde_json::to_string_pretty(&json)?);
        return Ok(());
    }
    println!("wrote {} ({method})", args.out.display());
    let widths = |w: Vec<usize>| format!("{w:?}");
    let extra = [
        (
            "stage widths".to_string(),
            widths(source.config.model.stage_widths()),
            widths(pruned.config.model.stage_widths()),
        ),
        (
            "zero conv weights".to_string(),
            format!("{:.1}%", 100.0 * original.fraction()),
            format!("{:.1}%", 100.0 * sparse.fraction()),
        ),
    ];
    print_table(&before, &after, &extra);
    if !args.structured {
        println!("per layer:");
        for layer in &sparse.layers {
            println!(
                "  {:<34} {:>6.1}% of {} weights zero",
                layer.name,
                100.0 * layer.zeros as f64 / layer.total.max(1) as f64,
                layer.total
            );
        }
        println!(
            "note: dense convolution kernels multiply the zeros too, so unstructured pruning \
             does not make inference faster; it makes the weights compress better. Use \
             --structured for a smaller, faster model."
        );
    }
    Ok(())
}

/// Trains the derived run `run` (which starts from its pruned weights) `epochs` epochs.
fn finetune(run: &Path, epochs: usize, device: DeviceChoice) -> anyhow::Result<()> {
    let options = TrainOptions {
        device,
        skip_bad: true,
        snapshot_labels: false,
        cpu_fallback: false,
    };
    let start = TrainStart::Resume {
        run: run.to_path_buf(),
        epochs: Some(epochs),
    };
    let mut progress = Progress::new();
    let result = train(
        start,
        &options,
        &mut |e| progress.on_event(e),
        &Control::default(),
    );
    progress.finish();
    let summary = result.context("fine-tuning")?;
    eprintln!(
        "fine-tuned {} epochs in {:.1} s; best val mIoU {}",
        summary.epochs,
        summary.elapsed_secs,
        summary
            .best_mean_iou
            .map_or_else(|| "-".into(), |m| format!("{m:.4}"))
    );
    Ok(())
}

/// Zeroes the smallest weights of both checkpoints of `run` again.
fn reprune(run: &RunDir, config: &RunConfig, amount: f64) -> anyhow::Result<()> {
    let device = Device::flex();
    for kind in [CheckpointKind::Best, CheckpointKind::Last] {
        let Some(dir) = run.existing_checkpoint(kind) else {
            continue;
        };
        let path = dir.join("model.bpk");
        let model = load_model(config.model.init(&device), &path)?;
        let pruned = prune_unstructured(model, amount);
        let tmp = dir.join("model.tmp.bpk");
        pruned
            .save_file(&tmp)
            .map_err(|e| anyhow::anyhow!("writing {}: {e}", tmp.display()))?;
        std::fs::rename(&tmp, &path).with_context(|| format!("replacing {}", path.display()))?;
    }
    Ok(())
}
