//! `roadseg predict`: class masks for an image, a folder of images (searched recursively), or
//! one split of a dataset in any layout.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::Context;
use image::{GrayImage, RgbImage};
use roadseg::core::dataset::image_io::{self, is_image, write_gray_png, write_rgb_png};
use roadseg::core::dataset::{DatasetIndex, Format, Split};
use roadseg::core::device::{DeviceChoice, resolve};
use roadseg::core::mask::Mask;
use roadseg::core::predict::Predictor;
use roadseg::core::train::run_dir::CheckpointKind;

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Output {
    /// 8-bit PNG of train class ids, at the input's resolution.
    Index,
    /// RGB PNG in the class colours.
    Color,
    /// The input with the class colours blended over it.
    Overlay,
}

#[derive(clap::Args)]
#[command(group(clap::ArgGroup::new("source").required(true).args(["input", "data"])))]
pub struct Args {
    /// Run directory written by `roadseg train`.
    #[arg(long)]
    model: PathBuf,
    /// An image, or a folder of images searched recursively (sub-folders are mirrored under
    /// --out).
    #[arg(long)]
    input: Option<PathBuf>,
    /// A dataset folder in any readable layout: predicts the images of --split.
    #[arg(long)]
    data: Option<PathBuf>,
    /// Force the dataset's layout instead of detecting it (with --data).
    #[arg(long)]
    format: Option<Format>,
    /// train, val or test (with --data; default val).
    #[arg(long, value_parser = super::eval::parse_split)]
    split: Option<Split>,
    #[arg(long)]
    out: PathBuf,
    #[arg(long, value_enum, default_value = "index")]
    output: Output,
    /// Which weights: best (by validation mIoU) or last.
    #[arg(long, default_value = "best", value_parser = super::eval::parse_checkpoint)]
    checkpoint: CheckpointKind,
    #[arg(long, default_value = "auto")]
    device: DeviceChoice,
}

/// One image to predict and where its prediction goes.
struct Job {
    input: PathBuf,
    output: PathBuf,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    // clap's `requires = "data"` does not hold here (the source group satisfies it), so the
    // flags that only choose among a dataset's images are checked by hand.
    if args.input.is_some() {
        for (flag, given) in [
            ("--split", args.split.is_some()),
            ("--format", args.format.is_some()),
        ] {
            anyhow::ensure!(
                !given,
                "{flag} chooses a dataset's images: it goes with --data, not with --input"
            );
        }
    }
    super::eval::check_run(&args.model)?;
    // Else every image fails alike, each blaming its own output file.
    anyhow::ensure!(
        !args.out.exists() || args.out.is_dir(),
        "{}: is a file; --out takes a folder",
        args.out.display()
    );
    let jobs = match (&args.input, &args.data) {
        (Some(input), _) => input_jobs(input, &args.out)?,
        (None, Some(data)) => {
            let split = args.split.unwrap_or(Split::Val);
            dataset_jobs(data, args.format, split, &args.out)?
        }
        (None, None) => anyhow::bail!("give --input or --data"),
    };
    let (device, _) = resolve(args.device)?;
    let predictor = Predictor::load(&args.model, args.checkpoint, device)?;
    let mut failed = 0;
    for job in &jobs {
        let result = image_io::read_rgb(&job.input)
            .map_err(anyhow::Error::from)
            .and_then(|image| {
                let mask = predictor.predict(&image)?;
                write_output(&predictor, &image, &mask, args.output, &job.output)
            });
        if let Err(e) = result {
            eprintln!("error: {e:#}");
            failed += 1;
        }
    }
    eprintln!(
        "wrote {} prediction(s) to {}",
        jobs.len() - failed,
        args.out.display()
    );
    anyhow::ensure!(failed == 0, "{failed} of {} image(s) failed", jobs.len());
    Ok(())
}

/// An image, or every image below a folder (`out` itself skipped when it lies inside), each to
/// `out/<its folder relative to the input>/<stem>.png`.
fn input_jobs(input: &Path, out: &Path) -> anyhow::Result<Vec<Job>> {
    if input.is_file() {
        return Ok(vec![Job {
            input: input.to_path_buf(),
            output: out.join(format!("{}.png", stem(input))),
        }]);
    }
    anyhow::ensure!(
        input.is_dir(),
        "{}: no such file or folder",
        input.display()
    );
    let mut files = Vec::new();
    walk(input, out, &mut files)?;
    anyhow::ensure!(
        !files.is_empty(),
        "{}: no images found (searched every sub-folder)",
        input.display()
    );
    files.sort();
    let jobs: Vec<Job> = files
        .into_iter()
        .map(|file| {
            let relative = file.strip_prefix(input).unwrap_or(&file);
            let folder = relative.parent().unwrap_or(Path::new(""));
            Job {
                output: out.join(folder).join(format!("{}.png", stem(&file))),
                input: file,
            }
        })
        .collect();
    distinct_outputs(jobs)
}

/// Image files below `dir`, not following links (a link loop cannot trap the walk), skipping
/// `out`.
fn walk(dir: &Path, out: &Path, files: &mut Vec<PathBuf>) -> anyhow::Result<()> {
    let entries = std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))?;
    for entry in entries.flatten() {
        let path = entry.path();
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        if kind.is_dir() {
            let is_out = std::path::absolute(&path).ok() == std::path::absolute(out).ok();
            if !is_out {
                walk(&path, out, files)?;
            }
        } else if kind.is_file() && is_image(&path) {
            files.push(path);
        }
    }
    Ok(())
}

/// The images of one split of a dataset in any layout, each to `out/<sample name>.png` (names
/// are unique within a dataset).
fn dataset_jobs(
    data: &Path,
    format: Option<Format>,
    split: Split,
    out: &Path,
) -> anyhow::Result<Vec<Job>> {
    let index = DatasetIndex::open(data, format)?;
    let jobs: Vec<Job> = index
        .samples
        .iter()
        .filter(|s| s.split == split)
        .map(|s| Job {
            input: s.image.clone(),
            output: out.join(format!("{}.png", s.name)),
        })
        .collect();
    anyhow::ensure!(
        !jobs.is_empty(),
        "{}: no images in the {split} split ({} layout)",
        data.display(),
        index.format
    );
    Ok(jobs)
}

/// `a.png` and `a.jpg` in one folder would both write `a.png`: each image of such a group
/// keeps its extension in its output's name (`a.jpg.png`, `a.png.png`), none taking the plain
/// name by the luck of sorting, and a note on stderr says so. Outputs that still collide (an
/// `a.png.png` input beside them) are refused before anything is predicted.
fn distinct_outputs(mut jobs: Vec<Job>) -> anyhow::Result<Vec<Job>> {
    let mut by_output: HashMap<PathBuf, Vec<usize>> = HashMap::new();
    for (i, job) in jobs.iter().enumerate() {
        by_output.entry(job.output.clone()).or_default().push(i);
    }
    let mut shared: Vec<(PathBuf, Vec<usize>)> =
        by_output.into_iter().filter(|(_, g)| g.len() > 1).collect();
    shared.sort();
    for (output, group) in &shared {
        for &i in group {
            let name = jobs[i]
                .input
                .file_name()
                .map_or_else(|| "prediction".into(), |n| n.to_string_lossy().into_owned());
            jobs[i].output.set_file_name(format!("{name}.png"));
        }
        let names: Vec<String> = group
            .iter()
            .map(|&i| {
                format!(
                    "{} -> {}",
                    jobs[i].input.display(),
                    jobs[i].output.display()
                )
            })
            .collect();
        eprintln!(
            "note: {} images would all write {}; each keeps its extension in its name: {}",
            group.len(),
            output.display(),
            names.join(", ")
        );
    }
    let mut seen: HashMap<&Path, &Path> = HashMap::new();
    for job in &jobs {
        if let Some(other) = seen.insert(&job.output, &job.input) {
            anyhow::bail!(
                "{} and {} would both write {}; rename one of them",
                other.display(),
                job.input.display(),
                job.output.display()
            );
        }
    }
    Ok(jobs)
}

fn stem(path: &Path) -> String {
    path.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "prediction".into())
}

fn write_output(
    predictor: &Predictor,
    image: &RgbImage,
    mask: &Mask,
    output: Output,
    path: &Path,
) -> anyhow::Result<()> {
    let colour = |id: u8| {
        predictor
            .classes()
            .get(id as usize)
            .map_or([0, 0, 0], |c| c.color)
    };
    match output {
        Output::Index => {
            let img = GrayImage::from_raw(mask.width, mask.height, mask.data.clone())
                .context("mask buffer size")?;
            write_gray_png(path, &img)?;
        }
        Output::Color | Output::Overlay => {
            let mut img = RgbImage::new(mask.width, mask.height);
            for (i, px) in img.pixels_mut().enumerate() {
                let c = colour(mask.data[i]);
                px.0 = match output {
                    Output::Overlay => {
                        let under = &image.as_raw()[i * 3..i * 3 + 3];
                        [0, 1, 2].map(|k| ((under[k] as u16 + c[k] as u16) / 2) as u8)
                    }
                    _ => c,
                };
            }
            write_rgb_png(path, &img)?;
        }
    }
    Ok(())
}
