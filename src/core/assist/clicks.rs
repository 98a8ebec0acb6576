//! The clicks file of `roadseg assist --clicks`: a JSON list of clicks in image pixels, applied
//! in order,
//!
//! ```json
//! [{"x": 120, "y": 300, "positive": true}, {"x": 400, "y": 310, "positive": false}]
//! ```
//!
//! Read whole (it is small: [`MAX_CLICKS_FILE`] bounds what a hostile file can make us hold);
//! every problem is an error naming the file. Whether the clicks fall inside the image is
//! [`super::smart`]'s check, which knows the image.

use std::io::Read;
use std::path::{Path, PathBuf};

use thiserror::Error;

use super::Click;

/// The largest clicks file read: some 25,000 clicks, far more than anyone clicks on one object.
pub const MAX_CLICKS_FILE: u64 = 1 << 20;

#[derive(Debug, Error)]
pub enum ClicksError {
    #[error("{}: cannot read the clicks: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: {size} bytes or more; a clicks file holds at most {MAX_CLICKS_FILE}", path.display())]
    TooLarge { path: PathBuf, size: u64 },
    #[error(
        "{}: expected a list of clicks, [{{\"x\": 120, \"y\": 300, \"positive\": true}}, ...]: {reason}",
        path.display()
    )]
    Parse { path: PathBuf, reason: String },
    #[error("{}: no clicks", path.display())]
    Empty { path: PathBuf },
}

/// The clicks in `path`, in order.
pub fn read_clicks(path: &Path) -> Result<Vec<Click>, ClicksError> {
    let read = |source| ClicksError::Read {
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::File::open(path).map_err(read)?;
    // One byte past the limit tells a file at the limit from a larger one.
    let mut bytes = Vec::new();
    file.take(MAX_CLICKS_FILE + 1)
        .read_to_end(&mut bytes)
        .map_err(read)?;
    if bytes.len() as u64 > MAX_CLICKS_FILE {
        return Err(ClicksError::TooLarge {
            path: path.to_path_buf(),
            size: bytes.len() as u64,
        });
    }
    let clicks: Vec<Click> = serde_json::from_slice(&bytes).map_err(|e| ClicksError::Parse {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    if clicks.is_empty() {
        return Err(ClicksError::Empty {
            path: path.to_path_buf(),
        });
    }
    Ok(clicks)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(text: &[u8]) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("clicks.json");
        std::fs::write(&path, text).unwrap();
        (dir, path)
    }

    #[test]
    fn a_list_of_clicks_reads_in_order() {
        let (_dir, path) =
            write(br#"[{"x": 3, "y": 4, "positive": true}, {"x": 0, "y": 9, "positive": false}]"#);
        let clicks = read_clicks(&path).unwrap();
        assert_eq!(
            clicks,
            [
                Click {
                    x: 3,
                    y: 4,
                    positive: true
                },
                Click {
                    x: 0,
                    y: 9,
                    positive: false
                }
            ]
        );
    }

    #[test]
    fn bad_files_are_errors_naming_them() {
        for text in [
            &b"[]"[..],
            b"",
            b"{\"x\": 1}",
            b"[{\"x\": -1, \"y\": 2, \"positive\": true}]",
            b"[{\"x\": 1.5, \"y\": 2, \"positive\": true}]",
            b"[{\"x\": 1, \"y\": 2}]",
            b"\xff\xfe",
        ] {
            let (_dir, path) = write(text);
            let error = read_clicks(&path).unwrap_err().to_string();
            assert!(error.contains("clicks.json"), "{error}");
        }
        let (_dir, path) = write(&vec![b' '; MAX_CLICKS_FILE as usize + 10]);
        assert!(matches!(
            read_clicks(&path),
            Err(ClicksError::TooLarge { .. })
        ));
        let missing = Path::new("/nonexistent/clicks.json");
        assert!(
            read_clicks(missing)
                .unwrap_err()
                .to_string()
                .contains("clicks.json")
        );
    }
}
