//! Errors that make a whole dataset unreadable (per-file trouble is a [`super::Problem`]).

use std::path::PathBuf;

use super::{Format, Problem};

#[derive(Debug, thiserror::Error)]
pub enum DatasetError {
    #[error("{0}: no such folder")]
    NotFound(PathBuf),
    #[error("{0}: is a file, not a folder (give the dataset's folder)")]
    NotAFolder(PathBuf),
    // Listed from `Format::ALL`, so a new layout cannot be left out of the message.
    #[error(
        "{dir}: no known dataset layout found (expected one of: {})",
        Format::layouts()
    )]
    UnknownLayout { dir: PathBuf },
    /// `problems`: what the scan found wrong, listed since it may say why no image is left (each
    /// one listed in two splits of splits.json, say).
    #[error(
        "{dir}: no images found for the {format} layout{}",
        problem_list(problems)
    )]
    Empty {
        dir: PathBuf,
        format: Format,
        problems: Vec<Problem>,
    },
    #[error("{file}: class table is missing")]
    MissingClassTable { file: PathBuf },
    #[error("{file}: bad class table: {reason}")]
    BadClassTable { file: PathBuf, reason: String },
    #[error("{file}: {reason}")]
    BadFile { file: PathBuf, reason: String },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

fn problem_list(problems: &[Problem]) -> String {
    let lines: Vec<String> = problems.iter().map(|p| format!("\n  {p}")).collect();
    match lines.is_empty() {
        true => String::new(),
        false => format!("; problems:{}", lines.concat()),
    }
}

impl DatasetError {
    /// The file or folder the error is about.
    pub fn path(&self) -> &std::path::Path {
        match self {
            Self::NotFound(dir) | Self::NotAFolder(dir) => dir,
            Self::UnknownLayout { dir } | Self::Empty { dir, .. } => dir,
            Self::MissingClassTable { file }
            | Self::BadClassTable { file, .. }
            | Self::BadFile { file, .. } => file,
            Self::Io { path, .. } => path,
        }
    }

    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }
}
