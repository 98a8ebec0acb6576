//! `roadseg eval`: metrics of a trained run on a dataset split, at full image resolution.

use std::path::{Path, PathBuf};

use anyhow::Context;
use roadseg::core::dataset::{DatasetIndex, Format, Sample, Split};
use roadseg::core::device::{DeviceChoice, resolve};
use roadseg::core::predict::Predictor;
use roadseg::core::train::run_check::{Broken, check};
use roadseg::core::train::run_dir::{CheckpointKind, RunDir};

#[derive(clap::Args)]
pub struct Args {
    /// Run directory written by `roadseg train`.
    #[arg(long)]
    model: PathBuf,
    /// Dataset folder (default: the one the run was trained on).
    #[arg(long)]
    data: Option<PathBuf>,
    #[arg(long)]
    format: Option<Format>,
    /// train, val or test.
    #[arg(long, default_value = "val", value_parser = parse_split)]
    split: Split,
    /// Which weights: best (by validation mIoU) or last.
    #[arg(long, default_value = "best", value_parser = parse_checkpoint)]
    checkpoint: CheckpointKind,
    #[arg(long, default_value = "auto")]
    device: DeviceChoice,
    /// Evaluate without the files that cannot be read.
    #[arg(long)]
    skip_bad: bool,
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    check_run(&args.model)?;
    let (device, device_name) = resolve(args.device)?;
    let predictor = Predictor::load(&args.model, args.checkpoint, device)?;
    let root = args
        .data
        .clone()
        .unwrap_or_else(|| predictor.config().data.clone());
    let index = DatasetIndex::open(&root, args.format)?;
    check_classes(&index, &predictor)?;
    let samples: Vec<&Sample> = index.labelled_in(args.split);
    anyhow::ensure!(
        !samples.is_empty(),
        "{}: no labelled images in the {} split",
        root.display(),
        args.split
    );
    let (confusion, skipped) = predictor
        .evaluate(&index, &samples, args.skip_bad)
        .with_context(|| format!("evaluating {}", root.display()))?;
    if !skipped.is_empty() {
        eprintln!("skipped {} bad file(s)", skipped.len());
    }
    let names: Vec<String> = predictor.classes().iter().map(|c| c.name.clone()).collect();
    let report = confusion.report(&names);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    println!(
        "{} images of the {} split, {} weights from {}, on {device_name}",
        samples.len() - skipped.len(),
        args.split,
        match args.checkpoint {
            CheckpointKind::Best => "best",
            CheckpointKind::Last => "last",
        },
        predictor.checkpoint().display()
    );
    println!(
        "pixel accuracy {:.4}  mean IoU {:.4}  mean F1 {:.4}",
        report.pixel_accuracy, report.mean_iou, report.mean_f1
    );
    println!("   id  name               IoU      F1");
    for c in &report.classes {
        let show = |v: Option<f64>| v.map_or_else(|| "     -".to_string(), |v| format!("{v:.4}"));
        println!(
            "  {:>3}  {:<16} {}  {}",
            c.id,
            c.name,
            show(c.iou),
            show(c.f1)
        );
    }
    Ok(())
}

/// Refuses a run that nothing can use (config or checkpoints broken); a run whose history alone
/// is damaged is used with a warning, since its weights load.
pub fn check_run(run: &Path) -> anyhow::Result<()> {
    match check(&RunDir::new(run)) {
        Ok(_) => Ok(()),
        Err(Broken::NotResumable(e)) => {
            eprintln!("warning: {e} (the weights load and are used)");
            Ok(())
        }
        Err(Broken::Unusable(e)) => {
            anyhow::bail!("{}: this run cannot be used: {e}", run.display())
        }
    }
}

/// The dataset must use the class table the model was trained with.
fn check_classes(index: &DatasetIndex, predictor: &Predictor) -> anyhow::Result<()> {
    let theirs: Vec<&str> = index.classes.iter().map(|c| c.name.as_str()).collect();
    let ours: Vec<&str> = predictor
        .classes()
        .iter()
        .map(|c| c.name.as_str())
        .collect();
    anyhow::ensure!(
        theirs == ours,
        "{}: its classes {theirs:?} differ from the model's {ours:?}",
        index.root.display()
    );
    Ok(())
}

pub fn parse_split(text: &str) -> Result<Split, String> {
    Split::ALL
        .into_iter()
        .find(|s| s.as_str() == text)
        .ok_or_else(|| format!("{text:?}: expected train, val or test"))
}

pub fn parse_checkpoint(text: &str) -> Result<CheckpointKind, String> {
    match text {
        "best" => Ok(CheckpointKind::Best),
        "last" => Ok(CheckpointKind::Last),
        _ => Err(format!("{text:?}: expected best or last")),
    }
}
