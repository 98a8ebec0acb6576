//! `roadseg assist --image IMG --clicks CLICKS.json --out MASK.png [--model RUN] [--class C]
//! [--fill-holes] [--json]`: click-to-segment without the studio, the same core function as its
//! Smart region tool.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use roadseg::core::assist::clicks::read_clicks;
use roadseg::core::assist::{ClassPrior, Params, Prepared, fills_holes, prior, smart_region_with};
use roadseg::core::dataset::image_io::{read_rgb, write_gray_png};
use roadseg::core::device::{DeviceChoice, resolve};
use roadseg::core::predict::Predictor;

#[derive(clap::Args)]
pub struct Args {
    /// The image (PNG or JPEG).
    #[arg(long)]
    image: PathBuf,
    /// The clicks, in order: `[{"x": 120, "y": 300, "positive": true}, ...]` in image pixels.
    #[arg(long)]
    clicks: PathBuf,
    /// Where the region goes: an 8-bit PNG, 1 inside and 0 elsewhere.
    #[arg(long)]
    out: PathBuf,
    /// A run whose prediction guides the region (its probability for --class).
    #[arg(long)]
    model: Option<PathBuf>,
    /// With --model: the class being labelled, by name or id (default: the class the model
    /// predicts under the first positive click).
    #[arg(long, requires = "model")]
    class: Option<String>,
    /// Fill the region's holes, except those holding a negative click (the default when
    /// --model's class is a countable object: a vehicle, car, person...).
    #[arg(long)]
    fill_holes: bool,
    /// Print what was done and the time spent as JSON.
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let clicks = read_clicks(&args.clicks)?;
    let image = read_rgb(&args.image)?;
    let start = Instant::now();
    let prepared = Prepared::new(&image);
    let prepare_ms = start.elapsed().as_secs_f64() * 1e3;
    let mut class = None;
    let prior = match &args.model {
        None => None,
        Some(run) => {
            let predictor = Predictor::load_best_or_last(run, resolve(DeviceChoice::Cpu)?.0)
                .with_context(|| format!("{}: this run cannot guide the region", run.display()))?;
            let prediction = predictor.predict_full(&image)?;
            let id = match &args.class {
                Some(name) => class_id(predictor.classes(), name)
                    .with_context(|| format!("--class {name:?}: not a class of this run"))?,
                None => match clicks.iter().find(|c| c.positive) {
                    Some(c) if c.x < image.width() && c.y < image.height() => {
                        prediction.mask.get(c.x, c.y)
                    }
                    _ => 0,
                },
            };
            class = predictor.classes().get(id as usize).map(|c| c.name.clone());
            let values = prior::class_prior(&prediction.mask, &prediction.confidence, id);
            Some(ClassPrior::new(&prepared, values)?)
        }
    };
    let start = Instant::now();
    let params = Params {
        fill_holes: args.fill_holes || class.as_deref().is_some_and(fills_holes),
        ..Params::default()
    };
    let region = smart_region_with(&prepared, &clicks, prior.as_ref(), &params)
        .with_context(|| format!("{}", args.clicks.display()))?;
    let region_ms = start.elapsed().as_secs_f64() * 1e3;
    write_gray_png(&args.out, &region.to_gray_image())?;
    let pixels = region.data.iter().filter(|&&v| v == 1).count();
    if args.json {
        let out = serde_json::json!({
            "out": args.out,
            "width": region.width,
            "height": region.height,
            "region_pixels": pixels,
            "clicks": clicks.len(),
            "class": class,
            "fill_holes": params.fill_holes,
            "prepare_ms": prepare_ms,
            "region_ms": region_ms,
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        println!(
            "wrote {} ({pixels} pixels in the region, {} clicks; prepare {prepare_ms:.0} ms, \
             region {region_ms:.1} ms)",
            args.out.display(),
            clicks.len()
        );
    }
    Ok(())
}

fn class_id(classes: &[roadseg::core::dataset::ClassInfo], name: &str) -> Option<u8> {
    classes
        .iter()
        .find(|c| c.name.eq_ignore_ascii_case(name))
        .map(|c| c.id)
        .or_else(|| {
            name.parse::<u8>()
                .ok()
                .filter(|&id| (id as usize) < classes.len())
        })
}
