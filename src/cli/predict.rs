//! `roadseg predict`: class masks for an image or a folder of images.

use std::path::{Path, PathBuf};

use anyhow::Context;
use image::{GrayImage, RgbImage};
use roadseg::core::dataset::image_io::{self, is_image, write_gray_png, write_rgb_png};
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
pub struct Args {
    /// Run directory written by `roadseg train`.
    #[arg(long)]
    model: PathBuf,
    /// An image, or a folder of images (not recursive).
    #[arg(long)]
    input: PathBuf,
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

pub fn run(args: Args) -> anyhow::Result<()> {
    super::eval::check_run(&args.model)?;
    let inputs = list_inputs(&args.input)?;
    let (device, _) = resolve(args.device)?;
    let predictor = Predictor::load(&args.model, args.checkpoint, device)?;
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let mut failed = 0;
    for input in &inputs {
        let result = image_io::read_rgb(input)
            .map_err(anyhow::Error::from)
            .and_then(|image| {
                let mask = predictor.predict(&image)?;
                write_output(&predictor, &image, &mask, args.output, &args.out, input)
            });
        if let Err(e) = result {
            eprintln!("error: {e:#}");
            failed += 1;
        }
    }
    eprintln!(
        "wrote {} prediction(s) to {}",
        inputs.len() - failed,
        args.out.display()
    );
    anyhow::ensure!(failed == 0, "{failed} of {} image(s) failed", inputs.len());
    Ok(())
}

fn list_inputs(input: &Path) -> anyhow::Result<Vec<PathBuf>> {
    if input.is_file() {
        return Ok(vec![input.to_path_buf()]);
    }
    let entries =
        std::fs::read_dir(input).with_context(|| format!("reading {}", input.display()))?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && is_image(p))
        .collect();
    files.sort();
    anyhow::ensure!(!files.is_empty(), "{}: no images found", input.display());
    Ok(files)
}

fn write_output(
    predictor: &Predictor,
    image: &RgbImage,
    mask: &Mask,
    output: Output,
    out_dir: &Path,
    input: &Path,
) -> anyhow::Result<()> {
    let stem = input
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "prediction".into());
    let path = out_dir.join(format!("{stem}.png"));
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
            write_gray_png(&path, &img)?;
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
            write_rgb_png(&path, &img)?;
        }
    }
    Ok(())
}
