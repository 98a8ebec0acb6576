//! Dataset-panel thumbnails and "% labelled", decoded on a background thread and cached.
//!
//! The panel asks only for the rows on screen; requests go through a bounded channel (a full
//! queue just means "ask again next frame"), results come back as small RGB images that the UI
//! uploads under a time budget. The cache keeps the most recently shown entries, so memory
//! stays bounded however large the folder.

use std::collections::{HashMap, HashSet, VecDeque};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::time::{Duration, Instant};

use egui::{ColorImage, TextureHandle, TextureOptions};

use crate::core::dataset::LabelEncoding;
use crate::core::dataset::image_io::read_rgb;

/// Thumbnail size in pixels (4:3, like most road cameras).
pub const THUMB_SIZE: [u32; 2] = [64, 48];
/// Entries kept (64x48 RGBA: 12 KiB each, so about 6 MiB).
const CAPACITY: usize = 512;

struct Request {
    generation: u64,
    index: usize,
    image: PathBuf,
    label: Option<PathBuf>,
    encoding: Arc<LabelEncoding>,
}

struct Done {
    generation: u64,
    index: usize,
    /// `None` when the image could not be decoded.
    thumbnail: Option<ColorImage>,
    labelled: Option<f32>,
}

/// A cached entry.
pub struct Thumb {
    pub texture: Option<TextureHandle>,
    /// Fraction of the mask's pixels that carry a class; `None` without a mask.
    pub labelled: Option<f32>,
}

pub struct Thumbnails {
    requests: SyncSender<Request>,
    results: Receiver<Done>,
    cache: HashMap<usize, Thumb>,
    /// Least recently shown first.
    order: VecDeque<usize>,
    pending: HashSet<usize>,
    /// Bumped when the dataset changes, so late results for the old one are dropped.
    generation: u64,
    /// Labelled fractions of masks the studio wrote itself: they win over a decoding that
    /// was asked for before the write and arrives after it.
    written: HashMap<usize, Option<f32>>,
}

impl Default for Thumbnails {
    fn default() -> Self {
        Self::new()
    }
}

impl Thumbnails {
    pub fn new() -> Self {
        let (requests, queue) = std::sync::mpsc::sync_channel::<Request>(64);
        let (done, results) = std::sync::mpsc::sync_channel::<Done>(64);
        let spawned = std::thread::Builder::new()
            .name("thumbnails".into())
            .spawn(move || {
                while let Ok(request) = queue.recv() {
                    if done.send(make(request)).is_err() {
                        return;
                    }
                }
            });
        if let Err(e) = spawned {
            eprintln!("roadseg: no thumbnail thread ({e}); the list shows names only");
        }
        Self {
            requests,
            results,
            cache: HashMap::new(),
            order: VecDeque::new(),
            pending: HashSet::new(),
            generation: 0,
            written: HashMap::new(),
        }
    }

    /// Drops everything (another dataset was opened).
    pub fn reset(&mut self) {
        self.generation += 1;
        self.cache.clear();
        self.order.clear();
        self.pending.clear();
        self.written.clear();
    }

    /// Forgets one entry (its mask changed on disk), so it is decoded again.
    pub fn forget(&mut self, index: usize) {
        self.cache.remove(&index);
        self.order.retain(|&i| i != index);
        self.written.remove(&index);
    }

    /// The studio just wrote entry `index`'s mask, `labelled` of it (`None`: no mask). The row
    /// shows it at once: the picture is the same, only the figure changed.
    pub fn set_labelled(&mut self, index: usize, labelled: Option<f32>) {
        self.written.insert(index, labelled);
        if let Some(thumb) = self.cache.get_mut(&index) {
            thumb.labelled = labelled;
        }
    }

    /// The entry for a row on screen; queues its decoding when it is not cached.
    pub fn get(
        &mut self,
        index: usize,
        image: &std::path::Path,
        label: Option<&std::path::Path>,
        encoding: &Arc<LabelEncoding>,
    ) -> Option<&Thumb> {
        if self.cache.contains_key(&index) {
            // Most recently shown last.
            if self.order.back() != Some(&index) {
                self.order.retain(|&i| i != index);
                self.order.push_back(index);
            }
            return self.cache.get(&index);
        }
        if !self.pending.contains(&index) {
            let request = Request {
                generation: self.generation,
                index,
                image: image.to_path_buf(),
                label: label.map(std::path::Path::to_path_buf),
                encoding: encoding.clone(),
            };
            match self.requests.try_send(request) {
                Ok(()) => {
                    self.pending.insert(index);
                }
                // Busy: the row asks again next frame.
                Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {}
            }
        }
        None
    }

    /// Uploads finished thumbnails for at most `budget`; returns whether more are pending.
    pub fn drain(&mut self, ctx: &egui::Context, budget: Duration) -> bool {
        let start = Instant::now();
        while start.elapsed() < budget {
            let Ok(done) = self.results.try_recv() else {
                break;
            };
            if done.generation != self.generation {
                continue;
            }
            self.pending.remove(&done.index);
            let texture = done.thumbnail.map(|image| {
                ctx.load_texture(
                    format!("thumbnail-{}", done.index),
                    image,
                    TextureOptions::LINEAR,
                )
            });
            self.cache.insert(
                done.index,
                Thumb {
                    texture,
                    labelled: self
                        .written
                        .get(&done.index)
                        .copied()
                        .unwrap_or(done.labelled),
                },
            );
            self.order.push_back(done.index);
            while self.order.len() > CAPACITY {
                if let Some(old) = self.order.pop_front() {
                    self.cache.remove(&old);
                }
            }
        }
        !self.pending.is_empty()
    }

    pub fn cached(&self) -> usize {
        self.cache.len()
    }
}

fn make(request: Request) -> Done {
    let thumbnail = read_rgb(&request.image).ok().map(|image| {
        let [w, h] = THUMB_SIZE;
        let small = image::imageops::thumbnail(&image, w, h);
        ColorImage::from_rgb(
            [small.width() as usize, small.height() as usize],
            small.as_raw(),
        )
    });
    let labelled = request
        .label
        .as_deref()
        .and_then(|label| request.encoding.decode(label).ok())
        .map(|mask| mask.labelled_fraction());
    Done {
        generation: request.generation,
        index: request.index,
        thumbnail,
        labelled,
    }
}
