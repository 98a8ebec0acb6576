//! Labelling helpers that reach beyond the canvas: the open dataset's locks (its preferences,
//! given to every mask document) and starting a mask from the previous image's.

use super::Studio;
use crate::core::dataset::image_io::read_index;
use crate::core::mask::Mask;
use crate::core::paint::Locks;

impl Studio {
    /// The locks of the open dataset, as its saved preferences say (none without a dataset).
    pub fn current_locks(&self) -> Locks {
        self.session
            .as_ref()
            .map(|s| self.state.prefs(&s.root).locks())
            .unwrap_or_default()
    }

    /// Gives the canvas (and so the document on it) the open dataset's locks.
    pub(super) fn sync_locks(&mut self) {
        let locks = self.current_locks();
        self.canvas.set_locks(locks);
    }

    /// Copies the mask of the image above this one in the list, as shown (filter, search and
    /// order applied), into this one: one undo step, the locks honoured. A previous image
    /// without a mask, or of another size, is said in the status line and nothing changes.
    pub(super) fn start_from_previous(&mut self) {
        let (text, is_error) = match self.previous_mask() {
            Ok((name, mask)) => match self.canvas.copy_mask_from(&mask) {
                true => (
                    format!("started from the mask of {name} (Ctrl+Z undoes)"),
                    false,
                ),
                false => (
                    format!("the mask of {name} changes nothing here (the same, or locked)"),
                    false,
                ),
            },
            Err(why) => (format!("{why}: nothing copied"), true),
        };
        self.message = Some((text, is_error));
    }

    /// The previous row's name and mask: a document kept in memory (a save that failed, strokes
    /// on a view-only dataset) before its file, since it is newer. The studio saves a mask
    /// when it leaves its image, so the file is otherwise current.
    fn previous_mask(&self) -> Result<(String, Mask), String> {
        let session = self.session.as_ref().ok_or("no dataset is open")?;
        let current = self.selected.ok_or("no image is open")?;
        if self.canvas.document.is_none() {
            return Err("this image has no mask to paint on".into());
        }
        let visible = self.dataset_panel.visible(session, Some(current));
        let position = visible.iter().position(|&i| i == current);
        let Some(previous) = position.and_then(|p| p.checked_sub(1)).map(|p| visible[p]) else {
            return Err("this is the first image in the list".into());
        };
        let entry = &session.entries[previous];
        let name = entry.name.clone();
        let path = entry.mask_path.as_ref().or(entry.label.as_ref());
        let kept = path.and_then(|p| self.unsaved.get(p).or_else(|| self.view_only_edits.get(p)));
        let mask = match (kept, &entry.mask_path, &entry.label) {
            (Some(doc), _, _) => doc.mask().clone(),
            (None, Some(file), _) if file.is_file() => {
                Mask::from_gray_image(read_index(file).map_err(|p| p.to_string())?)
            }
            (None, None, Some(label)) => {
                session.encoding.decode(label).map_err(|p| p.to_string())?
            }
            _ => return Err(format!("{name} has no mask")),
        };
        let [width, height] = self.canvas.image_size();
        if [mask.width, mask.height] != [width, height] {
            return Err(format!(
                "the mask of {name} is {}x{}, this image {width}x{height}",
                mask.width, mask.height
            ));
        }
        Ok((name, mask))
    }
}
