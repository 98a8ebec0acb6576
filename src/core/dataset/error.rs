//! Errors that make a whole dataset unreadable (per-file trouble is a [`super::Problem`]).

use std::path::PathBuf;

use super::Format;

#[derive(Debug, thiserror::Error)]
pub enum DatasetError {
    #[error("{0}: no such folder")]
    NotFound(PathBuf),
    #[error(
        "{dir}: no known dataset layout found (expected one of: native images/+masks/+classes.json, \
         CamVid, CamVid-11 (SegNet), KITTI road, Cityscapes)"
    )]
    UnknownLayout { dir: PathBuf },
    #[error("{dir}: no images found for the {format} layout")]
    Empty { dir: PathBuf, format: Format },
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

impl DatasetError {
    /// The file or folder the error is about.
    pub fn path(&self) -> &std::path::Path {
        match self {
            Self::NotFound(dir) => dir,
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
