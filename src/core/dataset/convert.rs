//! Any readable layout to native, losslessly for the labels: masks as train ids, and
//! drivable-area maps (BDD100K's) into `drivable/`. The source is only read.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use rayon::prelude::*;

use super::split::SplitsFile;
use super::{DatasetError, DatasetIndex, Problem, drivable, image_io, info};

#[derive(Debug, thiserror::Error)]
pub enum ConvertError {
    #[error(transparent)]
    Dataset(#[from] DatasetError),
    #[error("{0}: output folder exists and is not empty; choose a new folder")]
    OutputNotEmpty(std::path::PathBuf),
    #[error("{0}: output is a file; choose a new folder")]
    OutputIsFile(std::path::PathBuf),
    #[error("{0}: output is inside the source dataset; choose a folder outside it")]
    OutputInsideSource(std::path::PathBuf),
    #[error("{} bad file(s); fix them or pass --skip-bad:\n{}", .0.len(), list(.0))]
    BadFiles(Vec<Problem>),
}

fn list(problems: &[Problem]) -> String {
    problems
        .iter()
        .map(|p| format!("  {p}"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[derive(Debug)]
pub struct ConvertReport {
    pub images: usize,
    pub masks: usize,
    /// Drivable-area maps written to `drivable/`.
    pub drivable: usize,
    /// Problems of files left out (`--skip-bad`).
    pub skipped: Vec<Problem>,
    /// Problems of images written without a label (their label is missing).
    pub unlabelled: Vec<Problem>,
}

/// `path` made absolute with links resolved as far as it exists, so that a relative or
/// not-yet-created output is compared with the source by where it really is.
fn resolved(path: &Path) -> PathBuf {
    let path = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let mut existing = path.as_path();
    let mut rest = Vec::new();
    while !existing.exists() {
        match (existing.parent(), existing.file_name()) {
            (Some(parent), Some(name)) => {
                rest.push(name.to_os_string());
                existing = parent;
            }
            _ => return path,
        }
    }
    let mut out = existing
        .canonicalize()
        .unwrap_or_else(|_| existing.to_path_buf());
    out.extend(rest.iter().rev());
    out
}

pub fn to_native(
    index: &DatasetIndex,
    out: &Path,
    skip_bad: bool,
) -> Result<ConvertReport, ConvertError> {
    if out.exists() && !out.is_dir() {
        return Err(ConvertError::OutputIsFile(out.to_path_buf()));
    }
    if out.exists()
        && std::fs::read_dir(out)
            .map_err(|e| DatasetError::io(out, e))?
            .next()
            .is_some()
    {
        return Err(ConvertError::OutputNotEmpty(out.to_path_buf()));
    }
    if resolved(out).starts_with(resolved(&index.root)) {
        return Err(ConvertError::OutputInsideSource(out.to_path_buf()));
    }
    let all: Vec<_> = index.samples.iter().collect();
    let info::Validated {
        good, mut problems, ..
    } = info::validate(index, &all);
    let mut all_problems = index.problems.clone();
    all_problems.append(&mut problems);
    if !all_problems.is_empty() && !skip_bad {
        return Err(ConvertError::BadFiles(all_problems));
    }
    // A scan problem about an image that still converts (no label where one is required) is
    // reported apart: that image is written, unlabelled, not skipped.
    let converted: HashSet<&Path> = good.iter().map(|s| s.image.as_path()).collect();
    let (unlabelled, skipped): (Vec<Problem>, Vec<Problem>) = all_problems
        .into_iter()
        .partition(|p| converted.contains(p.file.as_path()));

    std::fs::create_dir_all(out.join("images")).map_err(|e| DatasetError::io(out, e))?;
    std::fs::create_dir_all(out.join("masks")).map_err(|e| DatasetError::io(out, e))?;
    index.classes.write_json(&out.join("classes.json"))?;
    let kept: Vec<_> = good.iter().map(|s| (*s).clone()).collect();
    SplitsFile::from_samples(&kept).write(&out.join("splits.json"))?;

    let written = good
        .par_iter()
        .map(|sample| -> Result<(usize, usize), DatasetError> {
            let ext = sample
                .image
                .extension()
                .map(|e| e.to_string_lossy().to_ascii_lowercase())
                .unwrap_or_else(|| "png".into());
            let bytes =
                std::fs::read(&sample.image).map_err(|e| DatasetError::io(&sample.image, e))?;
            // Images are copied byte for byte: no re-encoding loss.
            image_io::write_atomic(
                &out.join("images").join(format!("{}.{ext}", sample.name)),
                &bytes,
            )?;
            let bad = |p: Problem| DatasetError::BadFile {
                file: p.file,
                reason: p.error,
            };
            let mask = match index.load_mask(sample).map_err(bad)? {
                Some(mask) => {
                    image_io::write_gray_png(
                        &out.join("masks").join(format!("{}.png", sample.name)),
                        &mask.to_gray_image(),
                    )?;
                    1
                }
                None => 0,
            };
            // Validated above with its image; decoded again here for the values alone.
            let map = match index.drivable_label(sample) {
                Some(path) => {
                    let map = drivable::encoding().decode(&path).map_err(bad)?;
                    image_io::write_gray_png(
                        &out.join("drivable").join(format!("{}.png", sample.name)),
                        &map.to_gray_image(),
                    )?;
                    1
                }
                None => 0,
            };
            Ok((mask, map))
        })
        .collect::<Result<Vec<(usize, usize)>, _>>()?;
    Ok(ConvertReport {
        images: good.len(),
        masks: written.iter().map(|w| w.0).sum(),
        drivable: written.iter().map(|w| w.1).sum(),
        skipped,
        unlabelled,
    })
}
