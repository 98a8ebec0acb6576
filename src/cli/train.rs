//! `roadseg train`: train a UNet on a dataset (the bundled sample by default), or resume a run.

use std::path::{Path, PathBuf};

use anyhow::Context;
use roadseg::core::dataset::{Format, workspace};
use roadseg::core::device::DeviceChoice;
use roadseg::core::model::segmenter::{AuxTask, Encoder};
use roadseg::core::train::budget::{Auto, FULL_SECS, QUICK_SECS};
use roadseg::core::train::config::TrainConfig;
use roadseg::core::train::control::Control;
use roadseg::core::train::loss::LossConfig;
use roadseg::core::train::optim::OptimizerKind;
use roadseg::core::train::run_dir::{RunDir, next_run_dir};
use roadseg::core::train::trainer::{DataSpec, TrainOptions, TrainStart, train};

use super::progress::Progress;

#[derive(clap::Args)]
pub struct Args {
    /// Dataset folder, any readable layout (default: the bundled sample, generated on first use).
    #[arg(long)]
    data: Option<PathBuf>,
    /// Force the dataset layout instead of detecting it.
    #[arg(long)]
    format: Option<Format>,
    /// JSON config (partial is fine: it overrides the defaults); flags below override it.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Time the run may take: quick (1 min), full (10 min), or seconds (90, 90s, 5m). Epochs,
    /// input size and width are picked to fit it from a few timed steps, except those given
    /// (default: from the training images' pixels, between quick and full).
    #[arg(long, value_parser = parse_budget)]
    budget: Option<f64>,
    #[arg(long)]
    epochs: Option<usize>,
    #[arg(long)]
    batch_size: Option<usize>,
    /// Input size, WIDTHxHEIGHT: images are seen whole at this size (multiples of 2^depth avoid
    /// padding).
    #[arg(long, value_parser = super::parse_size)]
    size: Option<[u32; 2]>,
    /// Train on random crops of WIDTHxHEIGHT of the images at the input size (--size).
    #[arg(long, value_parser = super::parse_size)]
    crop: Option<[u32; 2]>,
    /// Base learning rate.
    #[arg(long)]
    lr: Option<f64>,
    /// sgd, adam, adamw or rmsprop.
    #[arg(long, value_parser = parse_optimizer)]
    optimizer: Option<OptimizerKind>,
    /// Loss terms joined by '+', each optionally weighted: ce, dice, focal, "ce+0.5dice".
    #[arg(long, value_parser = parse_loss)]
    loss: Option<LossConfig>,
    /// `auto`: weigh classes by inverse pixel frequency; `none`: equal weights.
    #[arg(long, value_parser = ["auto", "none"])]
    class_weights: Option<String>,
    /// unet (default), resnet18, resnet34 or resnet50 (a UNet decoder on a ResNet).
    #[arg(long)]
    encoder: Option<Encoder>,
    /// torchvision ImageNet weights for a ResNet encoder: a .pth/.pt checkpoint or the same
    /// tensors as .safetensors (see the README; nothing is downloaded).
    #[arg(long)]
    pretrained: Option<PathBuf>,
    /// Start from an earlier run's weights (and its architecture); with other classes the head
    /// starts fresh.
    #[arg(long, conflicts_with_all = ["encoder", "width", "depth"])]
    init_from: Option<PathBuf>,
    /// Keep the encoder's weights and batch-norm statistics frozen for the first K epochs.
    #[arg(long, value_name = "K")]
    freeze_encoder_epochs: Option<usize>,
    /// The encoder's learning rate as a multiple of the base rate (once unfrozen).
    #[arg(long, value_name = "X")]
    encoder_lr_mult: Option<f64>,
    /// A second head trained jointly: boundary (road edges, derived from the masks) or
    /// drivable (BDD100K's drivable-area maps).
    #[arg(long)]
    aux: Option<AuxTask>,
    /// Weight of the second head's loss.
    #[arg(long)]
    aux_weight: Option<f32>,
    /// UNet channels of the first stage (with a ResNet: of the decoder's last stage).
    #[arg(long)]
    width: Option<usize>,
    /// UNet down-sampling stages.
    #[arg(long)]
    depth: Option<usize>,
    #[arg(long)]
    seed: Option<u64>,
    /// Loader threads (default: one per core).
    #[arg(long)]
    workers: Option<usize>,
    /// Run directory to create (default: ./runs/run-N).
    #[arg(long)]
    out: Option<PathBuf>,
    /// cpu, gpu or auto (GPU if a hardware adapter exists, else CPU).
    #[arg(long, default_value = "auto")]
    device: DeviceChoice,
    /// Continue the run in this directory from its last checkpoint.
    #[arg(long, conflicts_with_all = ["data", "format", "config", "out", "encoder", "pretrained",
        "init_from", "aux", "budget"])]
    resume: Option<PathBuf>,
    /// Train without the files that cannot be read (their count is printed).
    #[arg(long)]
    skip_bad: bool,
    /// Print the run's summary (summary.json) on stdout when it ends (with --submit: the job
    /// id and the run folder).
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    submit: super::submit::SubmitArgs,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let options = TrainOptions {
        device: args.device,
        skip_bad: args.skip_bad,
        snapshot_labels: false,
        cpu_fallback: false,
    };
    if args.submit.submit.is_some() {
        // The engine's flags are checked before anything is prepared.
        let target = args.submit.target()?;
        let start = train_start(&args)?;
        return super::submit::run(
            start,
            target,
            &args.submit,
            args.device,
            args.skip_bad,
            args.json,
        );
    }
    let start = train_start(&args)?;
    let mut progress = Progress::new();
    let control = std::sync::Arc::new(Control::default());
    super::signals::stop_on_signals(control.clone(), |line| eprintln!("\n{line}"));
    let result = train(start, &options, &mut |e| progress.on_event(e), &control);
    progress.finish();
    let summary = result?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    }
    let best = match (summary.best_mean_iou, summary.best_epoch) {
        (Some(miou), Some(epoch)) => format!("best val mIoU {miou:.4} at epoch {epoch}"),
        _ => "no validation yet".to_string(),
    };
    let road = summary
        .last_validation
        .as_ref()
        .and_then(|v| v.classes.as_ref())
        .and_then(|c| c.iter().find(|c| c.name.eq_ignore_ascii_case("road")))
        .and_then(|c| c.iou)
        .map(|iou| format!(", last val road IoU {iou:.4}"))
        .unwrap_or_default();
    let boundary = summary
        .last_validation
        .as_ref()
        .and_then(|v| v.boundary_f1)
        .map(|f1| format!(", boundary F1 {f1:.4}"))
        .unwrap_or_default();
    eprintln!(
        "{}: {} epochs, {} steps in {:.1} s on {}; {best}{road}{boundary}",
        summary.status, summary.epochs, summary.steps, summary.elapsed_secs, summary.device
    );
    match super::signals::received() {
        Some(signal) if summary.status == "stopped" => {
            Err(super::signals::StoppedBySignal(signal).into())
        }
        _ => Ok(()),
    }
}

/// The run the command line asks for: a new one from the flags, or `--resume RUN`.
fn train_start(args: &Args) -> anyhow::Result<TrainStart> {
    Ok(match &args.resume {
        Some(run) => TrainStart::Resume {
            run: run.clone(),
            epochs: args.epochs,
            config: resumed_config(run, args)?.map(Box::new),
        },
        None => {
            let (config, run_data) = match &args.config {
                Some(file) => {
                    let file = TrainConfig::load(file)?;
                    (file.train, file.run_data)
                }
                None => (TrainConfig::default(), None),
            };
            let config = apply_flags(config, args)?;
            let (root, format) = match (&args.data, run_data) {
                (Some(dir), _) => (dir.clone(), args.format),
                // A run's own config.json reproduces that run, on its dataset.
                (None, Some((dir, format))) => {
                    eprintln!(
                        "dataset: {} ({format}), from the run's config",
                        dir.display()
                    );
                    (dir, args.format.or_else(|| format.parse().ok()))
                }
                (None, None) => (
                    workspace::default_sample().context("preparing the bundled sample")?,
                    args.format,
                ),
            };
            let out = match &args.out {
                Some(out) => out.clone(),
                None => next_run_dir(Path::new("runs")),
            };
            TrainStart::New {
                data: DataSpec { root, format },
                config: Box::new(config),
                out,
            }
        }
    })
}

/// The config `--resume RUN` asks for: the run's own with this command's flags applied (the
/// loop refuses the settings a resumed run cannot change). `None` when the run's config cannot
/// be read: the loop's check of the run then says why.
fn resumed_config(run: &Path, args: &Args) -> anyhow::Result<Option<TrainConfig>> {
    let Ok(saved) = RunDir::new(run).read_config() else {
        return Ok(None);
    };
    apply_flags(saved.train, args).map(Some)
}

/// `config` with the command line's flags applied over it: a flag's value is never picked by
/// the budget.
fn apply_flags(mut config: TrainConfig, args: &Args) -> anyhow::Result<TrainConfig> {
    if let Some(secs) = args.budget {
        let auto = config.auto.get_or_insert_with(Auto::default);
        auto.budget_secs = Some(secs);
    }
    if let Some(auto) = config.auto.as_mut() {
        auto.epochs &= args.epochs.is_none();
        auto.size &= args.size.is_none() && args.crop.is_none();
        auto.width &= args.width.is_none() && args.init_from.is_none();
        if !auto.picks_anything() {
            anyhow::ensure!(
                args.budget.is_none(),
                "--budget has nothing to pick: the epochs, the input size and the width are all \
                 given"
            );
            config.auto = None;
        }
    }
    if let Some(v) = args.epochs {
        config.epochs = v;
    }
    if let Some(v) = args.batch_size {
        config.batch_size = v;
    }
    if let Some(v) = args.size {
        config.size = v;
    }
    if let Some(v) = args.crop {
        config.crop = Some(v);
    }
    if let Some(v) = args.lr {
        config.lr = v;
    }
    if let Some(v) = &args.optimizer {
        config.optimizer.kind = v.clone();
    }
    if let Some(v) = &args.loss {
        // The flag sets the terms; what it cannot say stays as configured.
        config.loss = LossConfig {
            class_weights: config.loss.class_weights.take(),
            ignore_index: config.loss.ignore_index,
            focal_gamma: config.loss.focal_gamma,
            ..v.clone()
        };
    }
    match args.class_weights.as_deref() {
        Some("auto") => config.class_weights_auto = true,
        Some(_) => {
            config.class_weights_auto = false;
            config.loss.class_weights = None;
        }
        None => {}
    }
    if let Some(v) = args.encoder {
        config.encoder = v;
    }
    if let Some(v) = &args.pretrained {
        config.pretrained = Some(v.clone());
    }
    if let Some(v) = &args.init_from {
        config.init_from = Some(v.clone());
    }
    if let Some(v) = args.freeze_encoder_epochs {
        config.freeze_encoder_epochs = v;
    }
    if let Some(v) = args.encoder_lr_mult {
        config.encoder_lr_mult = v;
    }
    if let Some(v) = args.aux {
        config.aux = Some(v);
    }
    if let Some(v) = args.aux_weight {
        config.aux_weight = v;
    }
    if let Some(v) = args.width {
        config.model.base_width = v;
    }
    if let Some(v) = args.depth {
        config.model.depth = v;
    }
    if let Some(v) = args.seed {
        config.seed = v;
    }
    if let Some(v) = args.workers {
        config.num_workers = v;
    }
    // Flags that would be accepted and then do nothing.
    if args.depth.is_some() && config.encoder.resnet().is_some() {
        anyhow::bail!(
            "--depth sets the plain UNet's stages; a {} encoder has its own (5): leave --depth out",
            config.encoder
        );
    }
    if args.aux_weight.is_some() && config.aux.is_none() {
        anyhow::bail!("--aux-weight weighs a second head: add --aux boundary or --aux drivable");
    }
    Ok(config)
}

/// `quick`, `full`, or seconds: `90`, `90s`, `5m`.
fn parse_budget(text: &str) -> Result<f64, String> {
    let t = text.trim().to_ascii_lowercase();
    let secs = match t.as_str() {
        "quick" => Some(QUICK_SECS),
        "full" => Some(FULL_SECS),
        _ => match t.strip_suffix('m') {
            Some(minutes) => minutes.trim().parse::<f64>().ok().map(|m| m * 60.0),
            None => t.trim_end_matches('s').trim().parse::<f64>().ok(),
        },
    };
    secs.filter(|s| s.is_finite() && *s > 0.0)
        .ok_or_else(|| format!("{text:?}: expected quick, full, or seconds (90, 90s, 5m)"))
}

fn parse_optimizer(text: &str) -> Result<OptimizerKind, String> {
    OptimizerKind::from_name(text)
        .ok_or_else(|| format!("{text:?}: expected sgd, adam, adamw or rmsprop"))
}

/// `ce`, `dice+ce`, `0.5dice+ce`, `focal`: weights default to 1.
fn parse_loss(text: &str) -> Result<LossConfig, String> {
    let mut loss = LossConfig {
        ce: 0.0,
        dice: 0.0,
        focal: 0.0,
        ..LossConfig::default()
    };
    for term in text.split('+') {
        let term = term.trim().to_ascii_lowercase();
        let split = term
            .find(|c: char| c.is_ascii_alphabetic())
            .ok_or_else(|| format!("{text:?}: {term:?} names no loss"))?;
        let (weight, name) = term.split_at(split);
        let weight: f32 = match weight.trim().trim_end_matches('*') {
            "" => 1.0,
            w => w
                .parse()
                .map_err(|_| format!("{text:?}: {w:?} is not a weight"))?,
        };
        match name {
            "ce" | "cross-entropy" | "crossentropy" => loss.ce += weight,
            "dice" => loss.dice += weight,
            "focal" => loss.focal += weight,
            other => {
                return Err(format!(
                    "{text:?}: unknown loss {other:?} (ce, dice, focal)"
                ));
            }
        }
    }
    Ok(loss)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budgets_parse_by_name_and_duration() {
        assert_eq!(parse_budget("quick"), Ok(QUICK_SECS));
        assert_eq!(parse_budget("Full"), Ok(FULL_SECS));
        assert_eq!(parse_budget("90"), Ok(90.0));
        assert_eq!(parse_budget("90s"), Ok(90.0));
        assert_eq!(parse_budget("2.5m"), Ok(150.0));
        for bad in ["0", "-5", "soon", "nan"] {
            assert!(parse_budget(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn loss_mixes_parse() {
        let l = parse_loss("ce+0.5dice").unwrap();
        assert_eq!((l.ce, l.dice, l.focal), (1.0, 0.5, 0.0));
        let l = parse_loss("focal").unwrap();
        assert_eq!((l.ce, l.dice, l.focal), (0.0, 0.0, 1.0));
        assert!(parse_loss("ce+hinge").is_err());
        assert!(parse_loss("0.5").is_err());
    }
}
