//! The open dataset and the image being labelled: loads images off the UI thread, owns the
//! mask document, saves it atomically.

use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, TryRecvError};

use image::RgbImage;

use crate::core::dataset::image_io::read_rgb;
use crate::core::dataset::{ClassTable, DatasetIndex, Format, LabelEncoding, Split};
use crate::core::paint::MaskDocument;

/// One row of the dataset list.
#[derive(Clone, Debug)]
pub struct Entry {
    pub name: String,
    pub image: PathBuf,
    pub split: Split,
    /// The label file as the dataset has it (any layout).
    pub label: Option<PathBuf>,
    /// Where painted masks are written (native layout only).
    pub mask_path: Option<PathBuf>,
    pub labelled: bool,
}

/// An image decoded on a loader thread, with its mask document.
pub struct Loaded {
    pub index: usize,
    pub image: RgbImage,
    pub document: Option<MaskDocument>,
}

type LoadResult = Result<Loaded, String>;

/// A dataset open in the studio.
pub struct Session {
    pub root: PathBuf,
    pub format: Format,
    pub classes: ClassTable,
    /// How the layout's labels decode into class ids (shared with the thumbnail thread).
    pub encoding: std::sync::Arc<LabelEncoding>,
    pub entries: Vec<Entry>,
    /// Problems found while scanning (shown, never fatal).
    pub problems: Vec<String>,
    pending: Option<(usize, Receiver<LoadResult>)>,
}

impl Session {
    pub fn open(root: &Path) -> Result<Self, String> {
        let index = DatasetIndex::open(root, None).map_err(|e| e.to_string())?;
        let native = index.format == Format::Native;
        let entries = index
            .samples
            .iter()
            .map(|s| Entry {
                name: s.name.clone(),
                image: s.image.clone(),
                split: s.split,
                label: s.label.clone(),
                mask_path: native.then(|| native_mask_path(&index.root, &s.name)),
                labelled: s.label.is_some(),
            })
            .collect();
        Ok(Self {
            root: index.root.clone(),
            format: index.format,
            classes: index.classes.clone(),
            encoding: std::sync::Arc::new(index.encoding.clone()),
            entries,
            problems: index.problems.iter().map(|p| p.to_string()).collect(),
            pending: None,
        })
    }

    /// Whether masks can be painted here (only the native layout is written to).
    pub fn editable(&self) -> bool {
        self.format == Format::Native
    }

    /// Starts decoding entry `index` on a loader thread (replacing any load in flight).
    pub fn request(&mut self, index: usize, wake: impl Fn() + Send + 'static) {
        let Some(entry) = self.entries.get(index).cloned() else {
            return;
        };
        let encoding = self.encoding.clone();
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        let spawned = std::thread::Builder::new()
            .name("image-loader".into())
            .spawn(move || {
                let _ = tx.send(load(&encoding, index, &entry));
                wake();
            });
        match spawned {
            Ok(_) => self.pending = Some((index, rx)),
            Err(e) => self
                .problems
                .push(format!("could not start a loader thread: {e}")),
        }
    }

    pub fn loading(&self) -> Option<usize> {
        self.pending.as_ref().map(|(i, _)| *i)
    }

    /// The finished load, if any.
    pub fn poll(&mut self) -> Option<LoadResult> {
        let (_, rx) = self.pending.as_ref()?;
        match rx.try_recv() {
            Ok(result) => {
                self.pending = None;
                Some(result)
            }
            Err(TryRecvError::Empty) => None,
            Err(TryRecvError::Disconnected) => {
                self.pending = None;
                Some(Err("the image loader stopped unexpectedly".into()))
            }
        }
    }

    /// Blocks until the load in flight finishes (tests, and closing).
    pub fn wait(&mut self) -> Option<LoadResult> {
        let (_, rx) = self.pending.take()?;
        Some(
            rx.recv()
                .unwrap_or_else(|_| Err("the image loader stopped unexpectedly".into())),
        )
    }
}

fn native_mask_path(root: &Path, name: &str) -> PathBuf {
    root.join("masks").join(format!("{name}.png"))
}

/// Decodes the image and its mask: editable for native datasets (a missing mask is an empty
/// one), read-only (decoded from the layout's labels) otherwise.
fn load(encoding: &LabelEncoding, index: usize, entry: &Entry) -> LoadResult {
    let image = read_rgb(&entry.image).map_err(|p| p.to_string())?;
    let (w, h) = image.dimensions();
    let document = match (&entry.mask_path, &entry.label) {
        (Some(path), _) => Some(MaskDocument::open(path, w, h).map_err(|p| p.to_string())?),
        (None, Some(label)) => {
            let mask = encoding.decode(label).map_err(|p| p.to_string())?;
            if (mask.width, mask.height) != (w, h) {
                return Err(format!(
                    "{}: mask is {}x{} but its image is {w}x{h}",
                    label.display(),
                    mask.width,
                    mask.height
                ));
            }
            Some(MaskDocument::new(label.clone(), mask))
        }
        (None, None) => None,
    };
    Ok(Loaded {
        index,
        image,
        document,
    })
}
