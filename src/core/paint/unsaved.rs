//! Masks whose save failed (a full disk, a folder that cannot be written), kept in memory with
//! their undo history and saved again on a timer, so that moving to another image or dataset
//! never drops strokes that are not on disk yet. Coming back to such an image shows the kept
//! document, not the older file.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::MaskDocument;
use crate::core::dataset::DatasetError;

/// How often kept masks are saved again.
pub const RETRY_INTERVAL: Duration = Duration::from_secs(2);

#[derive(Debug, Default)]
pub struct Unsaved {
    docs: Vec<MaskDocument>,
    next_retry: Option<Instant>,
}

impl Unsaved {
    /// Keeps `doc` (replacing a kept document of the same file) and schedules a retry.
    pub fn keep(&mut self, doc: MaskDocument, now: Instant) {
        self.docs.retain(|d| d.path() != doc.path());
        self.docs.push(doc);
        self.next_retry.get_or_insert(now + RETRY_INTERVAL);
    }

    /// The kept document of `path`, taken back (to show it again).
    pub fn take(&mut self, path: &Path) -> Option<MaskDocument> {
        let i = self.docs.iter().position(|d| d.path() == path)?;
        Some(self.docs.remove(i))
    }

    /// The kept document of `path`, left kept.
    pub fn get(&self, path: &Path) -> Option<&MaskDocument> {
        self.docs.iter().find(|d| d.path() == path)
    }

    pub fn is_empty(&self) -> bool {
        self.docs.is_empty()
    }

    pub fn len(&self) -> usize {
        self.docs.len()
    }

    /// Whether a retry is due.
    pub fn due(&self, now: Instant) -> bool {
        !self.docs.is_empty() && self.next_retry.is_none_or(|t| now >= t)
    }

    /// Saves every kept document. Returns the files written and the first error; documents
    /// that failed again stay, for the next retry.
    pub fn retry(&mut self, now: Instant) -> (Vec<PathBuf>, Option<DatasetError>) {
        let mut saved = Vec::new();
        let mut error = None;
        self.docs.retain_mut(|doc| match doc.save() {
            Ok(_) => {
                saved.push(doc.path().to_path_buf());
                false
            }
            Err(e) => {
                error.get_or_insert(e);
                true
            }
        });
        self.next_retry = (!self.docs.is_empty()).then_some(now + RETRY_INTERVAL);
        (saved, error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::fault::fail_writes_under;

    #[test]
    fn kept_masks_are_retried_until_the_disk_takes_them() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("masks/a.png");
        let mut doc = MaskDocument::open(&path, 8, 8).unwrap();
        doc.stroke([2.0, 2.0], [5.0, 2.0], 1.0, 1);
        let full = fail_writes_under(tmp.path());
        assert!(doc.save().is_err());
        let t0 = Instant::now();
        let mut unsaved = Unsaved::default();
        unsaved.keep(doc, t0);
        assert!(!unsaved.due(t0) && unsaved.due(t0 + RETRY_INTERVAL));
        let (saved, error) = unsaved.retry(t0 + RETRY_INTERVAL);
        assert!(saved.is_empty() && error.is_some());
        assert_eq!(unsaved.len(), 1, "still kept");
        assert!(!path.exists());
        drop(full);
        let (saved, error) = unsaved.retry(t0 + 2 * RETRY_INTERVAL);
        assert_eq!((saved, error.is_none()), (vec![path.clone()], true));
        assert!(unsaved.is_empty());
        let on_disk = MaskDocument::open(&path, 8, 8).unwrap();
        assert_eq!(on_disk.pick(3, 2), Some(1));
    }

    #[test]
    fn a_kept_document_is_taken_back_by_its_file() {
        let tmp = tempfile::tempdir().unwrap();
        let mut unsaved = Unsaved::default();
        let now = Instant::now();
        for name in ["a", "b"] {
            let mut doc =
                MaskDocument::open(&tmp.path().join(format!("{name}.png")), 4, 4).unwrap();
            doc.stroke([1.0, 1.0], [1.0, 1.0], 1.0, 2);
            unsaved.keep(doc, now);
        }
        let b = unsaved.take(&tmp.path().join("b.png")).unwrap();
        assert!(b.is_modified() && b.history().undo_steps() == 1);
        assert!(unsaved.take(&tmp.path().join("b.png")).is_none());
        assert_eq!(unsaved.len(), 1);
    }
}
