//! Command-line front end: one file per subcommand; errors are printed once, here.

mod assist;
mod bench;
mod bench_assist;
mod bench_model;
#[cfg(feature = "gui")]
mod bench_studio;
mod convert;
mod eval;
mod export;
mod info;
mod predict;
mod progress;
mod prune;
mod quantize;
mod sample;
mod signals;
#[cfg(feature = "gui")]
mod soak;
mod status;
mod submit;
mod train;
mod variant;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "roadseg",
    version,
    about = "Road segmentation: paint, train, compare — offline"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Open the studio window on DIR (default: the last folder, or the bundled sample).
    #[cfg(feature = "gui")]
    Studio(StudioArgs),
    /// Draw the procedural road dataset (native layout).
    Sample(sample::Args),
    /// Describe a dataset: format, classes, splits, pixels per class, problems.
    Info(info::Args),
    /// Convert any readable layout to the native one.
    Convert(convert::Args),
    /// Train a UNet (on the bundled sample by default), or resume a run.
    Train(Box<train::Args>),
    /// Metrics of a trained run on a dataset split.
    Eval(eval::Args),
    /// Class masks for images with a trained run.
    Predict(predict::Args),
    /// Measure data pipeline, training and inference speed, or a run's latency and memory.
    Bench(bench::Args),
    /// Write a trained run as an ONNX file (opset 18) with its preprocessing metadata.
    Export(export::Args),
    /// Quantize a run's convolution weights to int8 (a new run; smaller file, same speed on CPU).
    Quantize(quantize::Args),
    /// Prune a run: zero its smallest weights, or with --structured remove channels (a new,
    /// smaller and faster run), optionally fine-tuned.
    Prune(prune::Args),
    /// Click-to-segment: the region a list of clicks asks for on an image, as a 0/1 PNG.
    Assist(assist::Args),
    /// Where a run stands: its job engine's state (Slurm, SSH, Kubernetes) and its progress.
    Status(status::Args),
    /// Stop a submitted run through its job engine (it checkpoints; resume it later).
    Cancel(status::CancelArgs),
}

#[cfg(feature = "gui")]
#[derive(clap::Args)]
struct StudioArgs {
    /// Dataset folder, any readable layout.
    dir: Option<std::path::PathBuf>,
    /// A run directory: its predictions on the canvas, its errors in the Errors panel.
    #[arg(long)]
    model: Option<std::path::PathBuf>,
    /// The image to open (its name in the dataset list).
    #[arg(long)]
    image: Option<String>,
    /// image, gt, pred, diff, confidence or split.
    #[arg(long)]
    view: Option<roadseg::studio::compare::ViewMode>,
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Some(Command::Sample(args)) => sample::run(args),
        Some(Command::Info(args)) => info::run(args),
        Some(Command::Convert(args)) => convert::run(args),
        Some(Command::Train(args)) => train::run(*args),
        Some(Command::Eval(args)) => eval::run(args),
        Some(Command::Predict(args)) => predict::run(args),
        Some(Command::Bench(args)) => bench::run(args),
        Some(Command::Export(args)) => export::run(args),
        Some(Command::Quantize(args)) => quantize::run(args),
        Some(Command::Prune(args)) => prune::run(args),
        Some(Command::Assist(args)) => assist::run(args),
        Some(Command::Status(args)) => status::run(args),
        Some(Command::Cancel(args)) => status::cancel(args),
        #[cfg(feature = "gui")]
        Some(Command::Studio(args)) => roadseg::studio::run(roadseg::studio::StartOptions {
            dir: args.dir,
            model: args.model,
            image: args.image,
            view: args.view,
        }),
        #[cfg(feature = "gui")]
        None => roadseg::studio::run(Default::default()),
        #[cfg(not(feature = "gui"))]
        None => {
            eprintln!("roadseg: built without the studio (feature \"gui\"); try `roadseg --help`");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            if let Some(stopped) = err.downcast_ref::<signals::StoppedBySignal>() {
                return ExitCode::from(stopped.exit_code());
            }
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// Parses `WxH` (e.g. `480x360`).
pub fn parse_size(text: &str) -> Result<[u32; 2], String> {
    let (w, h) = text
        .split_once(['x', 'X'])
        .ok_or_else(|| format!("{text:?}: expected WIDTHxHEIGHT, e.g. 480x360"))?;
    let parse = |v: &str| {
        v.trim()
            .parse::<u32>()
            .ok()
            .filter(|&v| v > 0)
            .ok_or_else(|| format!("{text:?}: {v:?} is not a positive whole number"))
    };
    Ok([parse(w)?, parse(h)?])
}

/// Parses a whole number of at least 1: a count (batches, steps, timed runs, epochs) of zero
/// would print figures of nothing.
pub fn parse_count(text: &str) -> Result<usize, String> {
    match text.trim().parse::<usize>() {
        Ok(0) => Err(format!("{text:?}: must be at least 1")),
        Ok(v) => Ok(v),
        Err(_) => Err(format!("{text:?}: expected a whole number of at least 1")),
    }
}

/// Parses a finite number above 0 (a learning rate, a temperature).
pub fn parse_positive(text: &str) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 => Ok(v),
        _ => Err(format!("{text:?}: expected a number above 0")),
    }
}
