//! Fault injection for the save paths, so tests can prove what a full disk does: a mask save
//! keeps the strokes and the old file, a checkpoint save keeps the previous checkpoint.
//!
//! Root ignores file permissions (the tests and CI run as root), so a read-only folder cannot
//! stand in for a failing disk; instead every write roadseg makes to a file it must not lose
//! (atomic writes, checkpoint files, metrics lines) first asks [`check_write`], which fails with
//! "No space left on device" for paths under a folder switched to failing:
//! - in-process, with [`fail_writes_under`] (until its guard is dropped);
//! - for a whole process, with `ROADSEG_FAIL_WRITES_UNDER=DIR` in its environment.
//!
//! Nothing is switched on unless a test asks; the check is a lock and a prefix compare.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

static FAILING: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

/// Makes writes under `dir` fail until the returned guard is dropped.
#[must_use = "writes fail only while the guard lives"]
pub fn fail_writes_under(dir: impl Into<PathBuf>) -> FailingWrites {
    let dir = dir.into();
    if let Ok(mut failing) = FAILING.lock() {
        failing.push(dir.clone());
    }
    FailingWrites { dir }
}

/// See [`fail_writes_under`].
pub struct FailingWrites {
    dir: PathBuf,
}

impl Drop for FailingWrites {
    fn drop(&mut self) {
        if let Ok(mut failing) = FAILING.lock()
            && let Some(i) = failing.iter().position(|d| *d == self.dir)
        {
            failing.remove(i);
        }
    }
}

fn from_env() -> Option<&'static Path> {
    static DIR: OnceLock<Option<PathBuf>> = OnceLock::new();
    DIR.get_or_init(|| std::env::var_os("ROADSEG_FAIL_WRITES_UNDER").map(PathBuf::from))
        .as_deref()
}

/// Fails like a full disk when `path` is under a folder switched to failing.
pub fn check_write(path: &Path) -> std::io::Result<()> {
    let under = |dir: &Path| path.starts_with(dir);
    let failing = from_env().is_some_and(under)
        || FAILING
            .lock()
            .is_ok_and(|dirs| dirs.iter().any(|d| under(d)));
    if failing {
        // ENOSPC: what a full disk answers (the text the user would see).
        return Err(std::io::Error::from_raw_os_error(28));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_paths_under_the_folder_fail_and_only_while_switched_on() {
        let tmp = tempfile::tempdir().unwrap();
        let inside = tmp.path().join("masks/a.png");
        let beside = tmp.path().join("other/a.png");
        check_write(&inside).unwrap();
        let guard = fail_writes_under(tmp.path().join("masks"));
        let err = check_write(&inside).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(28));
        check_write(&beside).unwrap();
        drop(guard);
        check_write(&inside).unwrap();
    }
}
