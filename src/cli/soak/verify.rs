//! What a killed session left on disk, checked against its journal: every mask decodes, and
//! each image's mask is exactly its state after some prefix of that image's edits (a save
//! writes the whole mask as it was), so the edits past the longest matching prefix are the ones
//! the kill lost.

use std::collections::BTreeMap;
use std::path::Path;

use roadseg::core::dataset::IGNORE;
use roadseg::core::dataset::image_io::{read_index, read_rgb};

use super::driver::{cell_centre, cell_count};

/// The cell values of every image's mask, by image name. An image without a mask has all cells
/// unlabelled. Fails on any mask that does not decode or has the wrong size.
pub fn snapshot(data: &Path) -> anyhow::Result<BTreeMap<String, Vec<u8>>> {
    let mut cells = BTreeMap::new();
    for entry in std::fs::read_dir(data.join("images"))? {
        let image = entry?.path();
        let name = image
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let (w, h) = read_rgb(&image)?.dimensions();
        let mask_path = data.join("masks").join(format!("{name}.png"));
        let values = if mask_path.exists() {
            let mask = read_index(&mask_path)?;
            anyhow::ensure!(
                mask.dimensions() == (w, h),
                "{}: mask is {:?}, image {w}x{h}",
                mask_path.display(),
                mask.dimensions()
            );
            (0..cell_count(w, h))
                .map(|i| {
                    let (x, y) = cell_centre(w, i);
                    mask.get_pixel(x, y).0[0]
                })
                .collect()
        } else {
            vec![IGNORE; cell_count(w, h)]
        };
        cells.insert(name, values);
    }
    Ok(cells)
}

/// One journaled edit: the cell, the value it was set to, and the simulated second.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Edit {
    pub cell: usize,
    pub value: u8,
    pub at: f64,
}

/// A session's journal: when its simulated clock started (Unix nanoseconds) and each image's
/// edits in order.
#[derive(Debug, Default)]
pub struct Journal {
    pub started_unix_nanos: Option<u128>,
    pub edits: BTreeMap<String, Vec<Edit>>,
}

/// Reads a journal. A torn last line (the kill landed in the middle of a write) is ignored: its
/// edit was never made.
pub fn read_journal(path: &Path) -> anyhow::Result<Journal> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e.into()),
    };
    let mut journal = Journal::default();
    for line in text.split_inclusive('\n').filter(|l| l.ends_with('\n')) {
        let parts: Vec<&str> = line.split_whitespace().collect();
        match parts.as_slice() {
            ["T0", nanos] => journal.started_unix_nanos = Some(nanos.parse()?),
            [kind, name, cell, value, at] if matches!(*kind, "S" | "U") => {
                journal
                    .edits
                    .entry(name.to_string())
                    .or_default()
                    .push(Edit {
                        cell: cell.parse()?,
                        value: value.parse()?,
                        at: at.parse()?,
                    });
            }
            _ => anyhow::bail!("{}: bad journal line {line:?}", path.display()),
        }
    }
    Ok(journal)
}

/// How many of `edits` (made on `before`) are missing from `after`: the edits past the longest
/// prefix whose result is `after`. `None` when no prefix gives `after` (a torn or mixed mask).
pub fn lost_edits(before: &[u8], edits: &[Edit], after: &[u8]) -> Option<usize> {
    if before.len() != after.len() {
        return None;
    }
    let mut state = before.to_vec();
    let mut differ = state.iter().zip(after).filter(|(a, b)| a != b).count();
    let mut best = (differ == 0).then_some(0);
    for (k, &Edit { cell, value, .. }) in edits.iter().enumerate() {
        let slot = state.get_mut(cell)?;
        differ -= usize::from(*slot != after[cell]);
        *slot = value;
        differ += usize::from(*slot != after[cell]);
        if differ == 0 {
            best = Some(k + 1);
        }
    }
    best.map(|k| edits.len() - k)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn edits(list: &[(usize, u8)]) -> Vec<Edit> {
        list.iter()
            .enumerate()
            .map(|(i, &(cell, value))| Edit {
                cell,
                value,
                at: i as f64,
            })
            .collect()
    }

    #[test]
    fn the_longest_matching_prefix_counts_the_lost_edits() {
        let before = [0, 0, 0];
        let list = edits(&[(0, 1), (1, 2), (0, 3), (2, 4)]);
        assert_eq!(lost_edits(&before, &list, &[3, 2, 4]), Some(0));
        assert_eq!(lost_edits(&before, &list, &[3, 2, 0]), Some(1));
        assert_eq!(lost_edits(&before, &list, &[0, 0, 0]), Some(4));
        // An undo brings an earlier state back: the later prefix is the one that counts.
        let undo = edits(&[(0, 1), (0, 0)]);
        assert_eq!(lost_edits(&before, &undo, &[0, 0, 0]), Some(0));
        // A state no prefix produces: something other than a clean save was written.
        assert_eq!(lost_edits(&before, &list, &[0, 2, 4]), None);
    }
}
