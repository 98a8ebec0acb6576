//! `roadseg prune`: magnitude pruning of a run, written as a new run (optionally fine-tuned),
//! with parameters, FLOPs, size, validation mIoU and latency before and after.

use std::path::{Path, PathBuf};

use anyhow::Context;
use burn::data::dataloader::batcher::Batcher;
use burn::tensor::Device;
use burn::tensor::Tensor;
use roadseg::core::dataset::loader::{LoaderConfig, SegBatcher, SegDataset};
use roadseg::core::dataset::{DatasetIndex, Sample, Split};
use roadseg::core::device::{DeviceChoice, resolve};
use roadseg::core::export::derive::{self, Derivation};
use roadseg::core::export::load_run;
use roadseg::core::export::measure::open_dataset;
use roadseg::core::model::prune::{
    Allocation, filters, prune_structured, prune_unstructured, sparsity,
};
use roadseg::core::train::config::{Distill, RunConfig};
use roadseg::core::train::control::Control;
use roadseg::core::train::run_dir::{CheckpointKind, RunDir, load_model, replace_model};
use roadseg::core::train::trainer::{TrainOptions, TrainStart, train};

use super::progress::Progress;
use super::variant::{measure_pair, print_table};

#[derive(clap::Args)]
pub struct Args {
    /// Run directory written by `roadseg train`.
    #[arg(long)]
    model: PathBuf,
    /// The new run to write (a new or empty folder).
    #[arg(long)]
    out: PathBuf,
    /// Fraction to remove, in [0, 1): of each convolution's weights, or with --structured of
    /// the filters it narrows (convolution output channels, the heads' outputs aside).
    #[arg(long, value_parser = parse_amount, required_unless_present = "widths")]
    amount: Option<f64>,
    /// Remove whole filters: a narrower network (per-stage widths in its config), faster on
    /// every backend. A plain UNet narrows everywhere, a ResNet UNet its decoder, a second head
    /// with the last stage. Without it the smallest weights are set to zero: sparse, not
    /// faster.
    #[arg(long)]
    structured: bool,
    /// With --structured, how the filters to remove are shared among stages: `measured` (cut
    /// where the predictions on training images change least per filter removed: the wide deep
    /// stages lose most) or `uniform` (the same fraction of every stage).
    #[arg(long, value_enum, default_value_t = Share::Measured, requires = "structured",
        conflicts_with = "widths")]
    allocation: Share,
    /// With --structured, the widths to keep, one per stage, shallowest first (e.g.
    /// 8,16,24,32,32: a UNet's stages with the bottleneck last, or a ResNet decoder's five),
    /// instead of --amount and --allocation.
    #[arg(
        long,
        value_delimiter = ',',
        requires = "structured",
        conflicts_with = "amount"
    )]
    widths: Option<Vec<usize>>,
    /// Then train the pruned model this many epochs on the run's data (its training set,
    /// validated each epoch; the best epoch is kept).
    #[arg(long, value_parser = super::parse_count)]
    finetune_epochs: Option<usize>,
    /// Fine-tuning learning rate (default: the run's; on the sample, 5 epochs at a third of it
    /// recovered less: mIoU 0.31 against 0.43).
    #[arg(long, value_parser = super::parse_positive, requires = "finetune_epochs")]
    lr: Option<f64>,
    /// Weight of distillation from the original model while fine-tuning (its softened
    /// predictions as a second target next to the labels; 0: off). Off by default: on the
    /// sample, weight 1 at temperature 2 ended 0.008 and 0.007 mIoU lower than the labels alone.
    #[arg(long, default_value_t = 0.0, value_parser = parse_weight,
        requires = "finetune_epochs")]
    distill_weight: f32,
    /// Softmax temperature of the distillation.
    #[arg(long, default_value_t = 2.0, value_parser = parse_temperature,
        requires = "distill_weight")]
    distill_temperature: f32,
    /// Which weights of RUN: best (by validation mIoU) or last; the "before" figures are
    /// measured on the same ones.
    #[arg(long, default_value = "best", value_parser = super::eval::parse_checkpoint)]
    checkpoint: CheckpointKind,
    /// Dataset to measure on and fine-tune with (default: the run's own; give its new place if
    /// it moved). The new run records it.
    #[arg(long)]
    data: Option<PathBuf>,
    /// Device for fine-tuning and the latency figures.
    #[arg(long, default_value = "cpu")]
    device: DeviceChoice,
    /// Latency size, WIDTHxHEIGHT (default: the training size).
    #[arg(long, value_parser = super::parse_size)]
    size: Option<[u32; 2]>,
    /// Timed inference runs per model.
    #[arg(long, default_value_t = 20, value_parser = super::parse_count)]
    runs: usize,
    #[arg(long)]
    json: bool,
}

fn parse_weight(text: &str) -> Result<f32, String> {
    match text.trim().parse::<f32>() {
        Ok(v) if v.is_finite() && v >= 0.0 => Ok(v),
        _ => Err(format!("{text:?}: expected a weight of 0 or more")),
    }
}

fn parse_temperature(text: &str) -> Result<f32, String> {
    super::parse_positive(text).map(|v| v as f32)
}

fn parse_amount(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(v) if (0.0..1.0).contains(&v) => Ok(v),
        _ => Err(format!("{text:?}: expected a fraction in [0, 1), e.g. 0.3")),
    }
}

#[derive(Clone, Copy, Debug, PartialEq, clap::ValueEnum)]
enum Share {
    Measured,
    Uniform,
}

/// Images the measured allocation compares predictions on: up to `PROBE_IMAGES` of the run's
/// training split (its validation split stays unseen), at the training size, normalised like
/// training.
fn probe_images(
    index: &DatasetIndex,
    config: &RunConfig,
    device: &Device,
) -> anyhow::Result<Tensor<4>> {
    const PROBE_IMAGES: usize = 32;
    let mut samples = index.labelled_in(Split::Train);
    if samples.is_empty() {
        samples = index.labelled().collect();
    }
    let stride = samples.len().div_ceil(PROBE_IMAGES).max(1);
    let picked: Vec<&Sample> = samples.into_iter().step_by(stride).collect();
    anyhow::ensure!(
        !picked.is_empty(),
        "{}: no labelled images to measure the pruning on",
        index.root.display()
    );
    let loader = LoaderConfig {
        size: config.train.size,
        augment: None,
        normalize: config.train.normalize,
        ..LoaderConfig::default()
    };
    let dataset = SegDataset::new(index, &picked, &loader);
    let items = (0..picked.len())
        .filter_map(|i| dataset.load(i, 0).ok())
        .collect::<Vec<_>>();
    anyhow::ensure!(
        !items.is_empty(),
        "{}: none of the probe images could be read",
        index.root.display()
    );
    Ok(SegBatcher.batch(items, device).images)
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let source = load_run(&args.model, args.checkpoint, &Device::flex())?;
    // Before anything is written: the figures, the measured allocation and fine-tuning all
    // need the dataset.
    let index = open_dataset(&source.config, args.data.as_deref())?;
    let (device, _) = resolve(args.device)?;
    let amount = args.amount.unwrap_or(0.0);
    let epochs = args.finetune_epochs.unwrap_or(0);
    let teacher = std::path::absolute(&args.model)?;
    let architecture = source.config.segmenter();
    let (model, model_config, mut method) = if args.structured {
        let (allocation, how) = match &args.widths {
            Some(widths) => {
                let full = architecture.stage_widths();
                let stages = match architecture.encoder.resnet() {
                    None => "stages",
                    Some(_) => "decoder stages",
                };
                anyhow::ensure!(
                    widths.len() == full.len(),
                    "--widths lists {} stages; this model has {} {stages}",
                    widths.len(),
                    full.len()
                );
                anyhow::ensure!(
                    widths
                        .iter()
                        .zip(&full)
                        .all(|(&w, &f)| (1..=f).contains(&w)),
                    "--widths {widths:?}: each stage keeps 1 to its {full:?} channels"
                );
                (
                    Allocation::Widths(widths.clone()),
                    format!("to widths {widths:?}"),
                )
            }
            None if args.allocation == Share::Uniform => {
                (Allocation::Uniform, format!("{amount} (uniform)"))
            }
            None => (
                Allocation::Measured(Box::new(probe_images(
                    &index,
                    &source.config,
                    &Device::flex(),
                )?)),
                format!("{amount} (measured)"),
            ),
        };
        let (model, config) = prune_structured(&source.model, &architecture, &allocation, amount);
        (model, config.unet, format!("prune structured {how}"))
    } else {
        (
            prune_unstructured(source.model.clone(), amount),
            source.config.model.clone(),
            format!("prune unstructured {amount}"),
        )
    };
    if epochs > 0 {
        method += &format!(", fine-tuned {epochs} epochs");
    }
    let mut config = RunConfig {
        model: model_config.clone(),
        ..source.config.clone()
    };
    if let Some(data) = &args.data {
        config.data = std::path::absolute(data)?;
    }
    config.train.model.widths = model_config.widths.clone();
    if epochs > 0 {
        config.train.epochs = epochs;
        config.train.lr = args.lr.unwrap_or(source.config.train.lr);
        config.train.distill = (args.distill_weight > 0.0).then(|| Distill {
            teacher: teacher.clone(),
            checkpoint: args.checkpoint,
            weight: args.distill_weight,
            temperature: args.distill_temperature,
        });
    }
    let pending = derive::create(
        &args.model,
        &args.out,
        &config,
        &Derivation {
            from: teacher.clone(),
            checkpoint: source.checkpoint.clone(),
            method: method.clone(),
            roadseg_version: env!("CARGO_PKG_VERSION").into(),
        },
    )?;
    let run = pending.run();
    derive::write_weights(run, &config, &model, &derive::state(None))?;

    if epochs > 0 {
        finetune(&args.out, epochs, args.device)?;
        if !args.structured {
            // Training moved the zeros; prune the trained weights again to the same sparsity.
            reprune(run, &config, amount)?;
        }
    }

    let [before, after] = measure_pair(
        (&args.model, args.checkpoint),
        &args.out,
        &index,
        &device,
        args.size,
        args.runs,
    )?;
    if epochs == 0 {
        run.write_summary(&derive::summary(&method, Some(after.val_miou)))?;
    }
    let pruned = load_run(&args.out, CheckpointKind::Best, &Device::flex())?;
    pending.keep();
    let sparse = sparsity(&pruned.model);
    let original = sparsity(&source.model);
    let pruned_architecture = pruned.config.segmenter();
    let (widths_before, widths_after) = (
        architecture.stage_widths(),
        pruned_architecture.stage_widths(),
    );
    let (filters_before, filters_after) = (
        filters(&architecture, &widths_before),
        filters(&pruned_architecture, &widths_after),
    );
    if args.json {
        let json = serde_json::json!({
            "method": method,
            "widths": { "before": widths_before, "after": widths_after },
            "filters": { "before": filters_before, "after": filters_after },
            "sparsity": { "before": original.fraction(), "after": sparse.fraction() },
            "before": before,
            "after": after,
        });
        println!("{}", serde_json::to_string_pretty(&json)?);
        return Ok(());
    }
    println!("wrote {} ({method})", args.out.display());
    let extra = [
        (
            "stage widths".to_string(),
            format!("{widths_before:?}"),
            format!("{widths_after:?}"),
        ),
        (
            "filters".to_string(),
            filters_before.to_string(),
            filters_after.to_string(),
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
        config: None,
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

/// Zeroes the smallest weights of both checkpoints of `run` again (the network's and the
/// second head's).
fn reprune(run: &RunDir, config: &RunConfig, amount: f64) -> anyhow::Result<()> {
    let device = Device::flex();
    for kind in [CheckpointKind::Best, CheckpointKind::Last] {
        let Some(dir) = run.existing_checkpoint(kind) else {
            continue;
        };
        let model = load_model(config.segmenter().init(&device), &dir)?;
        replace_model(&dir, &prune_unstructured(model, amount))?;
    }
    Ok(())
}
