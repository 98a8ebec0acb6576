//! A mask being edited: its pixels, its undo history, and its file.
//!
//! Saves are atomic (temp file, fsync, rename: see `write_atomic`), so a process killed during
//! a save leaves the old or the new mask on disk, never a torn one. The studio saves when the
//! user leaves an image, on Ctrl+S, on close and whenever [`AutosavePolicy`] says so.
//!
//! A mask without a single labelled pixel is no label: saving it removes the file, so that the
//! image counts as unlabelled everywhere (the native layout's rule: an image without a mask is
//! unlabelled), as it does after undoing every stroke.
//!
//! Every edit goes through [`MaskDocument::edit`], which is where the [`Locks`] hold: a pixel
//! whose old value they protect is put back before the undo step closes, whatever tool wrote it.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::history::{History, copy_rect};
use super::locks::Locks;
use super::ops::{self, Point};
use super::rect::DirtyRect;
use crate::core::dataset::image_io::{read_index, write_gray_png};
use crate::core::dataset::{DatasetError, IGNORE, Problem};
use crate::core::mask::Mask;

/// A mask bound to its file, with undo/redo.
#[derive(Debug)]
pub struct MaskDocument {
    path: PathBuf,
    mask: Mask,
    history: History,
    /// What edits may not overwrite (set by the studio; none by default).
    locks: Locks,
    /// Bumped by every change (edits, undo, redo).
    revision: u64,
    saved_revision: u64,
}

impl MaskDocument {
    /// Opens the mask at `path` for an image of `width` x `height`; a missing file is an empty
    /// (all-unlabelled) mask. A mask of another size or an unreadable file is an error naming
    /// the file, and the file is left alone.
    pub fn open(path: &Path, width: u32, height: u32) -> Result<Self, Problem> {
        let mask = if path.exists() {
            let mask = Mask::from_gray_image(read_index(path)?);
            if (mask.width, mask.height) != (width, height) {
                return Err(Problem::new(
                    path,
                    format!(
                        "mask is {}x{} but its image is {width}x{height}",
                        mask.width, mask.height
                    ),
                ));
            }
            mask
        } else {
            Mask::unlabelled(width, height)
        };
        Ok(Self::new(path.to_path_buf(), mask))
    }

    /// A document for `mask`, to be saved at `path`; counts as saved.
    pub fn new(path: PathBuf, mask: Mask) -> Self {
        Self {
            path,
            mask,
            history: History::default(),
            locks: Locks::default(),
            revision: 0,
            saved_revision: 0,
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Points the document at another file, its changes and undo history kept and unsaved: a
    /// view-only dataset's mask (never written to its own file) carried into the dataset's
    /// native copy.
    pub fn move_to(&mut self, path: PathBuf) {
        self.path = path;
        self.saved_revision = self.revision.wrapping_sub(1);
    }

    pub fn mask(&self) -> &Mask {
        &self.mask
    }

    pub fn history(&self) -> &History {
        &self.history
    }

    /// What every later edit must leave alone (undo and redo are not edits: they restore).
    pub fn set_locks(&mut self, locks: Locks) {
        self.locks = locks;
    }

    pub fn locks(&self) -> &Locks {
        &self.locks
    }

    /// Whether there are changes not yet on disk.
    pub fn is_modified(&self) -> bool {
        self.revision != self.saved_revision
    }

    /// Class id at a pixel (the eyedropper), `None` outside the mask.
    pub fn pick(&self, x: u32, y: u32) -> Option<u8> {
        (x < self.mask.width && y < self.mask.height).then(|| self.mask.get(x, y))
    }

    /// Starts a multi-part edit (a brush stroke of many segments) that undoes as one step.
    pub fn begin_edit(&mut self) {
        self.history.begin();
    }

    /// Ends the edit started by [`MaskDocument::begin_edit`].
    pub fn end_edit(&mut self) {
        self.history.end(&self.mask);
    }

    /// One brush segment (a dab when `a == b`); `value = IGNORE` erases. Inside an open edit it
    /// joins that edit, otherwise it is an undo step of its own.
    pub fn stroke(&mut self, a: Point, b: Point, radius: f32, value: u8) -> Option<DirtyRect> {
        let bounds = ops::stroke_bounds(&self.mask, a, b, radius)?;
        self.edit(Some(bounds), |mask| ops::stroke(mask, a, b, radius, value))
    }

    pub fn flood_fill(&mut self, x: u32, y: u32, value: u8) -> Option<DirtyRect> {
        // The region is unknown before filling: offer every tile; unchanged ones are dropped.
        self.edit(None, |mask| ops::flood_fill(mask, x, y, value))
    }

    pub fn polygon_fill(&mut self, points: &[Point], value: u8) -> Option<DirtyRect> {
        let bounds = ops::polygon_bounds(&self.mask, points)?;
        self.edit(Some(bounds), |mask| ops::polygon_fill(mask, points, value))
    }

    /// Writes `value` wherever `region` (the mask's size, nonzero inside) is set: how a region
    /// found by an assist (the wand, click-to-segment) is committed, as one undo step (or part
    /// of the open edit). Returns the rectangle changed.
    ///
    /// # Panics
    /// If `region` is not the mask's size.
    pub fn paint_region(&mut self, region: &Mask, value: u8) -> Option<DirtyRect> {
        assert_eq!(
            (region.width, region.height),
            (self.mask.width, self.mask.height),
            "a region of another image"
        );
        let bounds = ops::region_bounds(region)?;
        self.edit(Some(bounds), |mask| ops::paint_region(mask, region, value))
    }

    /// Makes the mask `source` (another image's mask of the same size: "start from the
    /// previous image"), as one undo step. Returns the rectangle changed.
    ///
    /// # Panics
    /// If `source` is not the mask's size.
    pub fn copy_from(&mut self, source: &Mask) -> Option<DirtyRect> {
        self.edit(None, |mask| ops::copy_mask(mask, source))
    }

    /// Runs `op` on the mask as an edit: its own undo step, or part of the open one. `bounds`
    /// must hold every pixel `op` may change (`None`: the whole mask); `op` returns what it
    /// changed. Pixels the [`Locks`] protect are then put back, and the result is what really
    /// changed: `None` (no undo step, no revision) when the locks refused everything.
    pub fn edit(
        &mut self,
        bounds: Option<DirtyRect>,
        op: impl FnOnce(&mut Mask) -> Option<DirtyRect>,
    ) -> Option<DirtyRect> {
        let own_step = !self.history.in_edit();
        if own_step {
            self.history.begin();
        }
        let all = DirtyRect {
            x: 0,
            y: 0,
            width: self.mask.width,
            height: self.mask.height,
        };
        let saved = bounds.unwrap_or(all);
        if all.area() > 0 {
            self.history.touch(&self.mask, saved);
        }
        // With locks, the pixels `op` may change are kept to compare with (a few KiB for a
        // brush segment; the whole mask, one copy, for a fill or an accept).
        let before =
            (!self.locks.is_empty() && all.area() > 0).then(|| copy_rect(&self.mask, saved));
        let changed = op(&mut self.mask);
        let changed = match (before, changed) {
            (Some(before), Some(rect)) => self.locks.restore(&mut self.mask, saved, &before, rect),
            (_, changed) => changed,
        };
        if own_step {
            self.history.end(&self.mask);
        }
        if changed.is_some() {
            self.revision += 1;
        }
        changed
    }

    pub fn undo(&mut self) -> Option<DirtyRect> {
        let rect = self.history.undo(&mut self.mask);
        if rect.is_some() {
            self.revision += 1;
        }
        rect
    }

    pub fn redo(&mut self) -> Option<DirtyRect> {
        let rect = self.history.redo(&mut self.mask);
        if rect.is_some() {
            self.revision += 1;
        }
        rect
    }

    /// Whether any pixel has a class (an all-unlabelled mask is saved as no file).
    pub fn has_labels(&self) -> bool {
        self.mask.data.iter().any(|&v| v != IGNORE)
    }

    /// Writes the mask atomically if it changed since the last save (or removes its file when
    /// no pixel is labelled); returns whether it wrote.
    pub fn save(&mut self) -> Result<bool, DatasetError> {
        if !self.is_modified() {
            return Ok(false);
        }
        if self.has_labels() {
            write_gray_png(&self.path, &self.mask.to_gray_image())?;
        } else {
            let removed = crate::core::fault::check_write(&self.path)
                .and_then(|()| std::fs::remove_file(&self.path));
            match removed {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(DatasetError::io(&self.path, e));
                }
                _ => {}
            }
        }
        self.saved_revision = self.revision;
        Ok(true)
    }
}

/// When to save a modified mask on a timer: at most `interval` after the last save, so a killed
/// process loses at most that much work.
#[derive(Debug, Clone)]
pub struct AutosavePolicy {
    pub interval: Duration,
    last_save: Instant,
}

impl AutosavePolicy {
    pub fn new(interval: Duration, now: Instant) -> Self {
        Self {
            interval,
            last_save: now,
        }
    }

    /// Whether a save is due now for a document with unsaved changes.
    pub fn due(&self, modified: bool, now: Instant) -> bool {
        modified && now.duration_since(self.last_save) >= self.interval
    }

    /// Call after every save (timed or not).
    pub fn saved(&mut self, now: Instant) {
        self.last_save = now;
    }

    /// Call after a failed save: the next attempt is due `retry` from `now` rather than a whole
    /// interval (and not every frame).
    pub fn failed(&mut self, now: Instant, retry: Duration) {
        self.last_save = now
            .checked_sub(self.interval.saturating_sub(retry))
            .unwrap_or(now);
    }

    /// Time until the next check is worth making (for scheduling a repaint).
    pub fn remaining(&self, now: Instant) -> Duration {
        self.interval
            .saturating_sub(now.duration_since(self.last_save))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::dataset::IGNORE;

    #[test]
    fn a_mask_emptied_by_undo_saves_as_no_file() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("masks/a.png");
        let mut doc = MaskDocument::open(&path, 8, 8).unwrap();
        doc.stroke([2.0, 2.0], [5.0, 2.0], 1.0, 1);
        assert!(doc.save().unwrap() && path.is_file() && doc.has_labels());
        doc.undo();
        assert!(doc.save().unwrap(), "the change is saved");
        assert!(!path.exists() && !doc.has_labels());
        assert!(!doc.is_modified());
        // A failing disk keeps the file and the change.
        doc.redo();
        doc.save().unwrap();
        doc.undo();
        let full = crate::core::fault::fail_writes_under(tmp.path());
        assert!(doc.save().is_err() && path.is_file() && doc.is_modified());
        drop(full);
    }

    #[test]
    fn edits_undo_and_save_atomically() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("masks/a.png");
        let mut doc = MaskDocument::open(&path, 40, 30).unwrap();
        assert!(!doc.is_modified());
        assert_eq!(doc.pick(3, 3), Some(IGNORE));
        assert_eq!(doc.pick(40, 3), None);

        // A stroke of three segments undoes as one step.
        doc.begin_edit();
        doc.stroke([5.0, 5.0], [15.0, 5.0], 2.0, 1);
        doc.stroke([15.0, 5.0], [15.0, 20.0], 2.0, 1);
        doc.stroke([15.0, 20.0], [30.0, 20.0], 2.0, 1);
        doc.end_edit();
        assert_eq!(doc.history().undo_steps(), 1);
        assert!(doc.is_modified());
        assert!(doc.save().unwrap());
        assert!(!doc.save().unwrap(), "nothing new to write");
        let on_disk = MaskDocument::open(&path, 40, 30).unwrap();
        assert_eq!(on_disk.mask(), doc.mask());

        doc.flood_fill(0, 29, 2).unwrap();
        assert_eq!(doc.pick(0, 29), Some(2));
        doc.polygon_fill(&[[20.0, 0.0], [39.0, 0.0], [39.0, 10.0]], 3)
            .unwrap();
        assert_eq!(doc.history().undo_steps(), 3);
        doc.undo();
        doc.undo();
        assert_eq!(doc.mask(), on_disk.mask());
        assert!(doc.is_modified(), "undo is a change like any other");
        doc.redo();
        assert_eq!(doc.pick(0, 29), Some(2));
        // No temp files are left beside the mask.
        let names: Vec<_> = std::fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["a.png"]);
    }

    #[test]
    fn a_mask_of_the_wrong_size_is_refused_with_its_file() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("m.png");
        let mut doc = MaskDocument::open(&path, 10, 10).unwrap();
        doc.stroke([1.0, 1.0], [1.0, 1.0], 1.0, 0);
        doc.save().unwrap();
        let before = std::fs::read(&path).unwrap();
        let err = MaskDocument::open(&path, 12, 10).unwrap_err();
        assert!(err.to_string().contains("m.png"), "{err}");
        assert!(
            err.to_string().contains("10x10 but its image is 12x10"),
            "{err}"
        );
        assert_eq!(std::fs::read(&path).unwrap(), before, "left untouched");
        std::fs::write(&path, b"junk").unwrap();
        assert!(MaskDocument::open(&path, 10, 10).is_err());
    }

    #[test]
    fn autosave_is_due_only_with_changes_after_the_interval() {
        let t0 = Instant::now();
        let mut policy = AutosavePolicy::new(Duration::from_secs(10), t0);
        assert!(!policy.due(true, t0 + Duration::from_secs(9)));
        assert!(!policy.due(false, t0 + Duration::from_secs(11)));
        assert!(policy.due(true, t0 + Duration::from_secs(10)));
        policy.saved(t0 + Duration::from_secs(10));
        assert!(!policy.due(true, t0 + Duration::from_secs(15)));
        assert_eq!(
            policy.remaining(t0 + Duration::from_secs(15)),
            Duration::from_secs(5)
        );
    }
}
