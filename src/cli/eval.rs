//! `roadseg eval`: metrics of a trained run on a dataset split, at full image resolution, and
//! with `--per-image` the score of every image, worst first.

use std::path::{Path, PathBuf};

use anyhow::Context;
use roadseg::core::analysis::{ImageScore, SortKey, sort_scores};
use roadseg::core::boundary::{BAND_RADIUS, BoundaryScore, band, road_class};
use roadseg::core::dataset::{DatasetIndex, Format, Sample, Split};
use roadseg::core::device::{DeviceChoice, resolve};
use roadseg::core::export::measure::open_dataset;
use roadseg::core::model::segmenter::AuxTask;
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
    /// Which weights: best (by validation mIoU) or last; a run without that checkpoint is
    /// refused (as in predict, export, quantize and prune), never swapped for the other.
    #[arg(long, default_value = "best", value_parser = parse_checkpoint)]
    checkpoint: CheckpointKind,
    #[arg(long, default_value = "auto")]
    device: DeviceChoice,
    /// Evaluate without the files that cannot be read.
    #[arg(long)]
    skip_bad: bool,
    /// Also score each image (worst mean IoU first): a table of the worst 20, or every image
    /// in the JSON's "images" list.
    #[arg(long)]
    per_image: bool,
    #[arg(long)]
    json: bool,
}

/// Rows of the `--per-image` table.
const WORST_SHOWN: usize = 20;

pub fn run(args: Args) -> anyhow::Result<()> {
    check_run(&args.model)?;
    let (device, device_name) = resolve(args.device)?;
    let predictor = Predictor::load(&args.model, args.checkpoint, device)?;
    let root = args
        .data
        .clone()
        .unwrap_or_else(|| predictor.config().data.clone());
    let index = match (&args.data, args.format) {
        // The run's own dataset, in its layout; an error says if it moved.
        (None, None) => open_dataset(predictor.config(), None)?,
        _ => DatasetIndex::open(&root, args.format)?,
    };
    check_classes(&index, &predictor)?;
    let samples: Vec<&Sample> = index.labelled_in(args.split);
    anyhow::ensure!(
        !samples.is_empty(),
        "{}: no labelled images in the {} split",
        root.display(),
        args.split
    );
    let classes = predictor.classes().len();
    let road = road_class(predictor.classes().iter().map(|c| c.name.as_str()));
    let boundary_head = predictor.config().train.aux == Some(AuxTask::Boundary);
    let mut images = Vec::new();
    let (mut boundary, mut head) = (BoundaryScore::default(), BoundaryScore::default());
    let (confusion, skipped) = predictor
        .evaluate_each(&index, &samples, args.skip_bad, |sample, truth, pred| {
            let size = [truth.width as usize, truth.height as usize];
            if let Some(road) = road {
                boundary.add(&BoundaryScore::of_masks(
                    &truth.data,
                    &pred.mask.data,
                    size,
                    road,
                ));
                if let (true, Some(aux)) = (boundary_head, &pred.aux) {
                    let target = band(&truth.data, size, road, BAND_RADIUS);
                    head.add(&BoundaryScore::of_bands(&target, &aux.map.data, size));
                }
            }
            if args.per_image {
                images.push(ImageScore::new(
                    &sample.name,
                    sample.split.as_str(),
                    classes,
                    &truth.data,
                    &pred.mask.data,
                ));
            }
        })
        .with_context(|| format!("evaluating {}", root.display()))?;
    sort_scores(&mut images, SortKey::MeanIou);
    if !skipped.is_empty() {
        eprintln!("skipped {} bad file(s)", skipped.len());
    }
    let names: Vec<String> = predictor.classes().iter().map(|c| c.name.clone()).collect();
    let report = confusion.report(&names);
    let head_f1 = boundary_head.then(|| head.f1()).flatten();
    if args.json {
        let mut json = serde_json::to_value(&report)?;
        json["boundary_f1"] = serde_json::json!(boundary.f1());
        if boundary_head {
            json["boundary_head_f1"] = serde_json::json!(head_f1);
        }
        if args.per_image {
            json["images"] = images.iter().map(|s| s.to_json(&names)).collect();
        }
        println!("{}", serde_json::to_string_pretty(&json)?);
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
    let show = |v: Option<f64>| v.map_or_else(|| "-".to_string(), |v| format!("{v:.4}"));
    match road {
        Some(_) => println!(
            "boundary F1 (road edges within 2 px) {}{}",
            show(boundary.f1()),
            if boundary_head {
                format!("  boundary head F1 {}", show(head_f1))
            } else {
                String::new()
            }
        ),
        None => println!("boundary F1: - (no class named road)"),
    }
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
    if args.per_image {
        print_worst(&images, &names);
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

/// The worst images as a table: mean IoU, the road class's IoU, wrong pixels.
fn print_worst(images: &[ImageScore], names: &[String]) {
    let road = names
        .iter()
        .position(|n| n.eq_ignore_ascii_case("road"))
        .unwrap_or(0);
    let road_name = names.get(road).map_or("class 0", String::as_str);
    let show = |v: Option<f64>| v.map_or_else(|| "     -".to_string(), |v| format!("{v:.4}"));
    println!();
    println!(
        "worst {} of {} images by mean IoU:",
        images.len().min(WORST_SHOWN),
        images.len()
    );
    println!(
        "  {:<24} {:<5} {:>8} {:>8} {:>12}",
        "image",
        "split",
        "mIoU",
        format!("{road_name:.8}"),
        "wrong px"
    );
    for s in images.iter().take(WORST_SHOWN) {
        println!(
            "  {:<24} {:<5} {:>8} {:>8} {:>12}",
            s.name,
            s.split,
            show(s.mean_iou),
            show(s.iou.get(road).copied().flatten()),
            s.wrong_pixels
        );
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
