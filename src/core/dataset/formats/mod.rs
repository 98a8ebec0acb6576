//! One module per published layout; each scans file names into a [`super::DatasetIndex`], and
//! those `convert --to` writes also own their writer.

pub mod bdd100k;
pub mod camvid;
pub mod camvid11;
pub mod cityscapes;
pub mod coco;
pub mod kitti;
pub mod labelme;
pub mod native;
pub mod vistas;
pub mod voc;

use std::path::{Path, PathBuf};

use super::{DatasetError, Problem, image_io};

/// Image files directly in `dir`, sorted by name; a missing folder is empty.
pub(crate) fn list_images(dir: &Path) -> Result<Vec<PathBuf>, DatasetError> {
    list_files(dir, image_io::is_image)
}

/// Files directly in `dir` passing `keep`, sorted; a missing folder is empty.
pub(crate) fn list_files(
    dir: &Path,
    keep: impl Fn(&Path) -> bool,
) -> Result<Vec<PathBuf>, DatasetError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(DatasetError::io(dir, e)),
    };
    let mut files: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_file() && keep(p))
        .collect();
    files.sort();
    Ok(files)
}

/// Sub-folders of `dir`, sorted; a missing folder has none.
pub(crate) fn list_dirs(dir: &Path) -> Result<Vec<PathBuf>, DatasetError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(DatasetError::io(dir, e)),
    };
    let mut dirs: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    Ok(dirs)
}

pub(crate) fn stem(path: &Path) -> String {
    path.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}

pub(crate) fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// The largest annotation json read whole (COCO's instances_train2017.json is about 450 MB).
pub const MAX_JSON_BYTES: u64 = 1 << 30;

/// Reads and parses a json file of at most `max_bytes`, errors naming the file and, for a
/// parse error, the line and column.
pub(crate) fn read_json<T: serde::de::DeserializeOwned>(
    file: &Path,
    max_bytes: u64,
) -> Result<T, Problem> {
    let size = std::fs::metadata(file)
        .map_err(|e| Problem::new(file, format!("cannot open: {e}")))?
        .len();
    if size > max_bytes {
        return Err(Problem::new(
            file,
            format!(
                "{} MiB: larger than roadseg reads as json (at most {} MiB)",
                size >> 20,
                max_bytes >> 20
            ),
        ));
    }
    let bytes = std::fs::read(file).map_err(|e| Problem::new(file, format!("cannot read: {e}")))?;
    serde_json::from_slice(&bytes).map_err(|e| Problem::new(file, format!("bad json: {e}")))
}
