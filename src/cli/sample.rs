//! `roadseg sample --out DIR [--count N] [--seed S] [--size WxH] [--look plain|hard]`

use std::path::PathBuf;

use anyhow::{Context, bail};
use roadseg::core::dataset::sample::{Look, SampleConfig, generate};

#[derive(clap::Args)]
pub struct Args {
    /// Folder to write (must not exist or be empty).
    #[arg(long)]
    out: PathBuf,
    /// Number of images (at least 1).
    #[arg(long, default_value_t = 100)]
    count: usize,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Image size, WIDTHxHEIGHT: 16 to 16384 a side, at most 32 megapixels.
    #[arg(long, default_value = "480x360", value_parser = super::parse_size)]
    size: [u32; 2],
    /// plain (clean surfaces, PNG: the bundled sample) or hard (textured asphalt, shadows
    /// across road and sidewalk, sidewalk close to the road's grey, heavy noise, JPEG images:
    /// the scenes `bench --assist` measures on). The masks are the same for a seed.
    #[arg(long, default_value_t = Look::Plain)]
    look: Look,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let cfg = SampleConfig {
        count: args.count,
        seed: args.seed,
        width: args.size[0],
        height: args.size[1],
        look: args.look,
    };
    // Before looking at --out: nothing is written for a sample roadseg could not use.
    if let Err(reason) = cfg.check() {
        bail!("sample not written: {reason} (--count, --size)");
    }
    if args.out.exists() && !args.out.is_dir() {
        bail!(
            "{}: is a file; --out takes a new folder",
            args.out.display()
        );
    }
    if args.out.exists()
        && std::fs::read_dir(&args.out)
            .with_context(|| format!("{}: cannot read folder", args.out.display()))?
            .next()
            .is_some()
    {
        bail!("{}: folder exists and is not empty", args.out.display());
    }
    let start = std::time::Instant::now();
    let samples = generate(&args.out, &cfg)?;
    println!(
        "wrote {} images and masks to {} in {:.1} s",
        samples.len(),
        args.out.display(),
        start.elapsed().as_secs_f64()
    );
    Ok(())
}
