//! Where the bundled sample lives: generated once into the user's data folder.

use std::path::{Path, PathBuf};

use super::DatasetError;
use super::sample::{SampleConfig, generate};

/// roadseg's data folder: `$ROADSEG_DATA_DIR`, else `$XDG_DATA_HOME/roadseg`, else
/// `~/.local/share/roadseg`, else `./roadseg-data`.
pub fn data_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("ROADSEG_DATA_DIR") {
        return PathBuf::from(dir);
    }
    if let Some(dir) = std::env::var_os("XDG_DATA_HOME") {
        return PathBuf::from(dir).join("roadseg");
    }
    if let Some(home) = std::env::var_os("HOME") {
        return PathBuf::from(home).join(".local/share/roadseg");
    }
    PathBuf::from("roadseg-data")
}

/// The bundled sample dataset, generated on first use. Generation writes into a temp folder
/// that is renamed into place, so a killed first run never leaves half a dataset behind.
pub fn default_sample() -> Result<PathBuf, DatasetError> {
    ensure_sample(&data_dir().join("sample"), &SampleConfig::default())
}

pub fn ensure_sample(dir: &Path, cfg: &SampleConfig) -> Result<PathBuf, DatasetError> {
    if dir.join("classes.json").is_file() {
        return Ok(dir.to_path_buf());
    }
    let parent = dir.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).map_err(|e| DatasetError::io(parent, e))?;
    let tmp = parent.join(format!(".sample-{}.tmp", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    generate(&tmp, cfg)?;
    match std::fs::rename(&tmp, dir) {
        Ok(()) => Ok(dir.to_path_buf()),
        // Another process won the race: use its copy.
        Err(_) if dir.join("classes.json").is_file() => {
            let _ = std::fs::remove_dir_all(&tmp);
            Ok(dir.to_path_buf())
        }
        Err(e) => Err(DatasetError::io(dir, e)),
    }
}
