//! Any readable layout to native, losslessly for the labels. The source is only read.

use std::path::Path;

use rayon::prelude::*;

use super::split::SplitsFile;
use super::{DatasetError, DatasetIndex, Problem, image_io, info};

#[derive(Debug, thiserror::Error)]
pub enum ConvertError {
    #[error(transparent)]
    Dataset(#[from] DatasetError),
    #[error("{0}: output folder exists and is not empty; choose a new folder")]
    OutputNotEmpty(std::path::PathBuf),
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
    pub skipped: Vec<Problem>,
}

pub fn to_native(
    index: &DatasetIndex,
    out: &Path,
    skip_bad: bool,
) -> Result<ConvertReport, ConvertError> {
    if out.exists()
        && std::fs::read_dir(out)
            .map_err(|e| DatasetError::io(out, e))?
            .next()
            .is_some()
    {
        return Err(ConvertError::OutputNotEmpty(out.to_path_buf()));
    }
    if let (Ok(src), Some(parent)) = (index.root.canonicalize(), out.parent()) {
        let parent = parent
            .canonicalize()
            .unwrap_or_else(|_| parent.to_path_buf());
        if parent.starts_with(&src) {
            return Err(ConvertError::OutputInsideSource(out.to_path_buf()));
        }
    }
    let all: Vec<_> = index.samples.iter().collect();
    let info::Validated {
        good, mut problems, ..
    } = info::validate(index, &all);
    // Scan problems that make a sample unusable (no label where one is required) are reported;
    // the image itself still converts as unlabelled.
    let mut skipped = index.problems.clone();
    skipped.append(&mut problems);
    if !skipped.is_empty() && !skip_bad {
        return Err(ConvertError::BadFiles(skipped));
    }

    std::fs::create_dir_all(out.join("images")).map_err(|e| DatasetError::io(out, e))?;
    std::fs::create_dir_all(out.join("masks")).map_err(|e| DatasetError::io(out, e))?;
    index.classes.write_json(&out.join("classes.json"))?;
    let kept: Vec<_> = good.iter().map(|s| (*s).clone()).collect();
    SplitsFile::from_samples(&kept).write(&out.join("splits.json"))?;

    let masks = good
        .par_iter()
        .map(|sample| -> Result<usize, DatasetError> {
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
            match index.load_mask(sample) {
                Ok(Some(mask)) => {
                    image_io::write_gray_png(
                        &out.join("masks").join(format!("{}.png", sample.name)),
                        &mask.to_gray_image(),
                    )?;
                    Ok(1)
                }
                Ok(None) => Ok(0),
                Err(p) => Err(DatasetError::BadFile {
                    file: p.file,
                    reason: p.error,
                }),
            }
        })
        .collect::<Result<Vec<usize>, _>>()?
        .into_iter()
        .sum();
    Ok(ConvertReport {
        images: good.len(),
        masks,
        skipped,
    })
}
