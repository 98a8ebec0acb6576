//! `roadseg sample --out DIR [--count N] [--seed S] [--size WxH]`

use std::path::PathBuf;

use anyhow::{Context, bail};
use roadseg::core::dataset::sample::{SampleConfig, generate};

#[derive(clap::Args)]
pub struct Args {
    /// Folder to write (must not exist or be empty).
    #[arg(long)]
    out: PathBuf,
    #[arg(long, default_value_t = 100)]
    count: usize,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Image size, WIDTHxHEIGHT.
    #[arg(long, default_value = "480x360", value_parser = super::parse_size)]
    size: [u32; 2],
}

pub fn run(args: Args) -> anyhow::Result<()> {
    if args.out.exists()
        && std::fs::read_dir(&args.out)
            .with_context(|| format!("{}: cannot read folder", args.out.display()))?
            .next()
            .is_some()
    {
        bail!("{}: folder exists and is not empty", args.out.display());
    }
    let cfg = SampleConfig {
        count: args.count,
        seed: args.seed,
        width: args.size[0],
        height: args.size[1],
    };
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
