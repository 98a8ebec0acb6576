//! The training loader: a burn [`Dataset`] of prepared pairs, a [`Batcher`] into tensors, and a
//! deterministic multi-worker loader driving them.
//!
//! Decoding, augmentation and batching run on named loader threads, never on the training
//! thread. burn's own multi-threaded loader hands out batches in whichever order its workers
//! finish; ours puts them back in order, and seeds each item's augmentation from
//! (seed, epoch, index), so a run (and a resumed run) sees exactly the same batches.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, Sender, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use burn::data::dataloader::batcher::Batcher;
use burn::data::dataset::Dataset;
use burn::tensor::{Device, Int, Tensor, TensorData};
use serde::{Deserialize, Serialize};

use super::augment::{AugmentConfig, Frame, Normalize, prepare_with};
use super::decoded::{CACHE_BYTES, Decoded, DecodedCache};
use super::{DatasetIndex, IGNORE, LabelEncoding, Problem, Sample, drivable, image_io};
use crate::core::boundary::{BAND_RADIUS, band};
use crate::core::rng::{Rng, derive_seed};

impl std::error::Error for Problem {}

/// How samples become batches.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct LoaderConfig {
    /// Input size (width, height): the whole image is seen at this size.
    pub size: [u32; 2],
    /// Training crops of the image at that scale (width, height); `None`: the whole image.
    pub crop: Option<[u32; 2]>,
    /// `None`: resize only (validation).
    pub augment: Option<AugmentConfig>,
    pub normalize: Normalize,
    pub batch_size: usize,
    pub num_workers: usize,
    pub seed: u64,
    pub shuffle: bool,
    /// Drop a last, smaller batch (keeps BatchNorm statistics sane in training).
    pub drop_last: bool,
}

impl Default for LoaderConfig {
    fn default() -> Self {
        Self {
            size: [256, 192],
            crop: None,
            augment: Some(AugmentConfig::default()),
            normalize: Normalize::default(),
            batch_size: 8,
            num_workers: default_workers(),
            seed: 42,
            shuffle: true,
            drop_last: true,
        }
    }
}

/// One loader worker per core, at least one.
pub fn default_workers() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// One prepared pair.
#[derive(Clone, Debug)]
pub struct SegItem {
    /// `[3, h, w]` normalised.
    pub image: Vec<f32>,
    /// `[h, w]` class ids, 255 = ignore.
    pub mask: Vec<u8>,
    pub size: [u32; 2],
    /// `[h, w]` the second head's target, 255 = ignore (see [`AuxSource`]).
    pub aux: Option<Vec<u8>>,
}

/// Where a multi-task run's second target comes from.
#[derive(Clone, Debug, PartialEq)]
pub enum AuxSource {
    /// The band around class `road` ([`band`]), drawn on the prepared mask, so its width is
    /// in training pixels whatever the augmentation did.
    Boundary { road: u8 },
    /// Drivable-area maps, one per sample (`None`: all ignored), warped like the mask.
    Drivable { labels: Vec<Option<PathBuf>> },
}

impl AuxSource {
    /// The drivable-area maps of `samples` (see [`DatasetIndex::drivable_label`]).
    pub fn drivable(index: &DatasetIndex, samples: &[&Sample]) -> Self {
        Self::Drivable {
            labels: samples.iter().map(|s| index.drivable_label(s)).collect(),
        }
    }
}

/// Samples of a dataset prepared at the input size (whole, or cropped).
pub struct SegDataset {
    items: Vec<(PathBuf, Option<PathBuf>)>,
    encoding: LabelEncoding,
    frame: Frame,
    augment: Option<AugmentConfig>,
    normalize: Normalize,
    seed: u64,
    /// Epoch used by [`Dataset::get`] (augmentation differs per epoch).
    epoch: AtomicUsize,
    aux: Option<AuxSource>,
    /// Decoded items, reduced for the input size (see [`crate::core::dataset::decoded`]).
    cache: DecodedCache,
}

impl SegDataset {
    pub fn new(index: &DatasetIndex, samples: &[&Sample], cfg: &LoaderConfig) -> Self {
        Self {
            items: samples
                .iter()
                .map(|s| (s.image.clone(), s.label.clone()))
                .collect(),
            encoding: index.encoding.clone(),
            frame: Frame {
                input: (cfg.size[0], cfg.size[1]),
                out: cfg.crop.map_or((cfg.size[0], cfg.size[1]), |[w, h]| (w, h)),
            },
            augment: cfg.augment.clone(),
            normalize: cfg.normalize,
            seed: cfg.seed,
            epoch: AtomicUsize::new(0),
            aux: None,
            cache: DecodedCache::new(CACHE_BYTES),
        }
    }

    /// Items also carry the second head's target.
    pub fn with_aux(self, aux: AuxSource) -> Self {
        Self {
            aux: Some(aux),
            ..self
        }
    }

    pub fn set_epoch(&self, epoch: usize) {
        self.epoch.store(epoch, Ordering::Relaxed);
    }

    /// Decodes (or takes from memory) and prepares item `index` as augmented in `epoch`.
    pub fn load(&self, index: usize, epoch: usize) -> Result<SegItem, Problem> {
        let decoded = match self.cache.get(index) {
            Some(decoded) => decoded,
            None => self
                .cache
                .keep(index, self.decode(index)?.reduced(self.frame.input)),
        };
        let Decoded {
            image,
            mask,
            extra: drivable,
        } = &*decoded;
        let mut rng = Rng::new(derive_seed(&[self.seed, epoch as u64, index as u64]));
        let aug = self.augment.as_ref().map(|cfg| (cfg, &mut rng));
        let (prepared, drivable) = prepare_with(
            image,
            mask.as_ref(),
            drivable.as_ref(),
            self.frame,
            aug,
            &self.normalize,
        );
        let (w, h) = (self.frame.out.0 as usize, self.frame.out.1 as usize);
        let aux = match &self.aux {
            None => None,
            Some(AuxSource::Boundary { road }) => {
                Some(band(&prepared.mask, [w, h], *road, BAND_RADIUS))
            }
            Some(AuxSource::Drivable { .. }) => {
                Some(drivable.unwrap_or_else(|| vec![IGNORE; w * h]))
            }
        };
        Ok(SegItem {
            image: prepared.image,
            mask: prepared.mask,
            size: [self.frame.out.0, self.frame.out.1],
            aux,
        })
    }

    /// Item `index` from its files, checked (a mask or map of another size is an error naming it).
    fn decode(&self, index: usize) -> Result<Decoded, Problem> {
        let (image_path, label_path) = &self.items[index];
        let image = image_io::read_rgb(image_path)?;
        let mask = match label_path {
            Some(label) => {
                let mask = self.encoding.decode(label)?;
                if (mask.width, mask.height) != image.dimensions() {
                    return Err(Problem::new(
                        label,
                        format!(
                            "mask is {}x{} but its image is {}x{}",
                            mask.width,
                            mask.height,
                            image.width(),
                            image.height()
                        ),
                    ));
                }
                Some(mask)
            }
            None => None,
        };
        let extra = match &self.aux {
            Some(AuxSource::Drivable { labels }) => match &labels[index] {
                Some(path) => Some(drivable::load(path, image.dimensions())?),
                None => None,
            },
            _ => None,
        };
        Ok(Decoded { image, mask, extra })
    }

    /// Bytes of decoded images held in memory.
    pub fn cached_bytes(&self) -> usize {
        self.cache.used()
    }
}

impl Dataset<SegItem> for SegDataset {
    fn get(&self, index: usize) -> Result<SegItem, burn::data::dataset::DatasetError> {
        self.load(index, self.epoch.load(Ordering::Relaxed))
            .map_err(burn::data::dataset::DatasetError::new)
    }

    fn len(&self) -> usize {
        self.items.len()
    }
}

/// A batch on the training device.
#[derive(Clone, Debug)]
pub struct SegBatch {
    /// `[batch, 3, h, w]`
    pub images: Tensor<4>,
    /// `[batch, h, w]` class ids, 255 = ignore.
    pub masks: Tensor<3, Int>,
    /// `[batch, h, w]` the second head's targets, 255 = ignore.
    pub aux: Option<Tensor<3, Int>>,
}

#[derive(Clone, Copy, Debug, Default)]
pub struct SegBatcher;

impl Batcher<SegItem, SegBatch> for SegBatcher {
    fn batch(&self, items: Vec<SegItem>, device: &Device) -> SegBatch {
        let [w, h] = items.first().map_or([0, 0], |i| i.size);
        let (w, h, b) = (w as usize, h as usize, items.len());
        let mut images = Vec::with_capacity(b * 3 * h * w);
        let mut masks = Vec::with_capacity(b * h * w);
        let with_aux = !items.is_empty() && items.iter().all(|i| i.aux.is_some());
        let mut aux = Vec::with_capacity(if with_aux { b * h * w } else { 0 });
        for item in &items {
            images.extend_from_slice(&item.image);
            masks.extend(item.mask.iter().map(|&v| v as i64));
            if let (true, Some(targets)) = (with_aux, &item.aux) {
                aux.extend(targets.iter().map(|&v| v as i64));
            }
        }
        SegBatch {
            images: Tensor::from_data(TensorData::new(images, [b, 3, h, w]), device),
            masks: Tensor::from_data(TensorData::new(masks, [b, h, w]), device),
            aux: with_aux.then(|| Tensor::from_data(TensorData::new(aux, [b, h, w]), device)),
        }
    }
}

type BatchResult = Result<SegBatch, Problem>;

struct Job {
    batch: usize,
    indices: Vec<usize>,
    epoch: usize,
    reply: SyncSender<(usize, BatchResult)>,
}

/// Deterministic, prefetching, multi-worker loader over a [`SegDataset`].
pub struct SegLoader {
    dataset: Arc<SegDataset>,
    batch_size: usize,
    shuffle: bool,
    drop_last: bool,
    seed: u64,
    workers: usize,
    jobs: Option<Sender<Job>>,
    handles: Vec<JoinHandle<()>>,
}

impl SegLoader {
    pub fn new(dataset: SegDataset, cfg: &LoaderConfig, device: Device) -> Self {
        let dataset = Arc::new(dataset);
        let workers = cfg.num_workers.max(1);
        let (jobs, queue) = std::sync::mpsc::channel::<Job>();
        let queue = Arc::new(Mutex::new(queue));
        let handles = (0..workers)
            .map(|i| {
                let (dataset, queue, device) = (dataset.clone(), queue.clone(), device.clone());
                std::thread::Builder::new()
                    .name(format!("loader-{i}"))
                    .spawn(move || worker(&dataset, &queue, &device))
                    .expect("spawning a loader thread")
            })
            .collect();
        Self {
            dataset,
            batch_size: cfg.batch_size.max(1),
            shuffle: cfg.shuffle,
            drop_last: cfg.drop_last,
            seed: cfg.seed,
            workers,
            jobs: Some(jobs),
            handles,
        }
    }

    pub fn len_items(&self) -> usize {
        self.dataset.len()
    }

    /// Batch index lists of `epoch`, in the order they will be yielded.
    fn plan(&self, epoch: usize) -> Vec<Vec<usize>> {
        let mut order: Vec<usize> = (0..self.dataset.len()).collect();
        if self.shuffle {
            Rng::new(derive_seed(&[self.seed, epoch as u64, 0x5_4F_FF_1E])).shuffle(&mut order);
        }
        let mut batches: Vec<Vec<usize>> = order
            .chunks(self.batch_size)
            .map(<[usize]>::to_vec)
            .collect();
        if self.drop_last
            && batches.len() > 1
            && batches.last().is_some_and(|b| b.len() < self.batch_size)
        {
            batches.pop();
        }
        batches
    }

    pub fn batches_per_epoch(&self) -> usize {
        self.plan(0).len()
    }

    /// Iterates the batches of `epoch` in a fixed order while workers prepare the next ones.
    pub fn epoch(&self, epoch: usize) -> EpochIter<'_> {
        self.epoch_from(epoch, 0)
    }

    /// Like [`SegLoader::epoch`], starting at batch `first` (resuming inside an epoch sees the
    /// same remaining batches as an uninterrupted run).
    pub fn epoch_from(&self, epoch: usize, first: usize) -> EpochIter<'_> {
        let prefetch = self.workers * 2;
        let (reply, results) = std::sync::mpsc::sync_channel(prefetch);
        EpochIter {
            loader: self,
            plan: self.plan(epoch),
            epoch,
            next_dispatch: first,
            next_yield: first,
            prefetch,
            pending: BTreeMap::new(),
            reply,
            results,
        }
    }
}

impl Drop for SegLoader {
    fn drop(&mut self) {
        // Closing the job queue ends the workers.
        self.jobs = None;
        for handle in self.handles.drain(..) {
            let _ = handle.join();
        }
    }
}

fn worker(dataset: &SegDataset, queue: &Mutex<Receiver<Job>>, device: &Device) {
    loop {
        let job = {
            let Ok(queue) = queue.lock() else { return };
            match queue.recv() {
                Ok(job) => job,
                Err(_) => return,
            }
        };
        let items: Result<Vec<SegItem>, Problem> = job
            .indices
            .iter()
            .map(|&i| dataset.load(i, job.epoch))
            .collect();
        let result = items.map(|items| SegBatcher.batch(items, device));
        // The epoch iterator may be gone (stopped early): nothing to do then.
        let _ = job.reply.send((job.batch, result));
    }
}

pub struct EpochIter<'a> {
    loader: &'a SegLoader,
    plan: Vec<Vec<usize>>,
    epoch: usize,
    next_dispatch: usize,
    next_yield: usize,
    prefetch: usize,
    pending: BTreeMap<usize, BatchResult>,
    reply: SyncSender<(usize, BatchResult)>,
    results: Receiver<(usize, BatchResult)>,
}

impl EpochIter<'_> {
    pub fn len(&self) -> usize {
        self.plan.len()
    }

    pub fn is_empty(&self) -> bool {
        self.plan.is_empty()
    }
}

impl Iterator for EpochIter<'_> {
    type Item = BatchResult;

    fn next(&mut self) -> Option<Self::Item> {
        if self.next_yield >= self.plan.len() {
            return None;
        }
        let jobs = self.loader.jobs.as_ref()?;
        while self.next_dispatch < self.plan.len()
            && self.next_dispatch < self.next_yield + self.prefetch
        {
            let job = Job {
                batch: self.next_dispatch,
                indices: std::mem::take(&mut self.plan[self.next_dispatch]),
                epoch: self.epoch,
                reply: self.reply.clone(),
            };
            jobs.send(job).ok()?;
            self.next_dispatch += 1;
        }
        loop {
            if let Some(result) = self.pending.remove(&self.next_yield) {
                self.next_yield += 1;
                return Some(result);
            }
            let (batch, result) = self.results.recv().ok()?;
            self.pending.insert(batch, result);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::dataset::sample::{SampleConfig, generate};
    use crate::core::dataset::{DatasetIndex, Split};

    fn sample_index(dir: &std::path::Path) -> DatasetIndex {
        let cfg = SampleConfig {
            count: 10,
            seed: 2,
            width: 80,
            height: 60,
            ..Default::default()
        };
        generate(dir, &cfg).unwrap();
        DatasetIndex::open(dir, None).unwrap()
    }

    fn batches(index: &DatasetIndex, workers: usize, epoch: usize) -> Vec<(Vec<f32>, Vec<i64>)> {
        let cfg = LoaderConfig {
            size: [32, 24],
            batch_size: 3,
            num_workers: workers,
            ..Default::default()
        };
        let samples: Vec<&Sample> = index.labelled().collect();
        let loader = SegLoader::new(SegDataset::new(index, &samples, &cfg), &cfg, Device::flex());
        loader
            .epoch(epoch)
            .map(|b| {
                let b = b.unwrap();
                assert_eq!(b.images.dims(), [3, 3, 24, 32]);
                assert_eq!(b.masks.dims(), [3, 24, 32]);
                (
                    b.images.into_data().try_to_vec::<f32>().unwrap(),
                    b.masks
                        .into_data()
                        .convert::<i64>()
                        .try_to_vec::<i64>()
                        .unwrap(),
                )
            })
            .collect()
    }

    #[test]
    fn same_batches_in_same_order_whatever_the_worker_count() {
        let dir = tempfile::tempdir().unwrap();
        let index = sample_index(dir.path());
        let one = batches(&index, 1, 0);
        let three = batches(&index, 3, 0);
        assert_eq!(
            one.len(),
            3,
            "10 items / 3 per batch, last partial batch dropped"
        );
        assert_eq!(one, three);
        let next_epoch = batches(&index, 2, 1);
        assert_ne!(one, next_epoch, "augmentation and order change per epoch");
        // Masks hold only class ids and ignore.
        assert!(
            one.iter()
                .flat_map(|b| &b.1)
                .all(|&v| (0..7).contains(&v) || v == 255)
        );
    }

    #[test]
    fn burn_dataloader_drives_the_same_dataset_and_batcher() {
        let dir = tempfile::tempdir().unwrap();
        let index = sample_index(dir.path());
        let cfg = LoaderConfig {
            size: [32, 24],
            augment: None,
            ..Default::default()
        };
        let samples = index.labelled_in(Split::Train);
        let n = samples.len();
        let loader = burn::data::dataloader::DataLoaderBuilder::new(SegBatcher)
            .batch_size(2)
            .num_workers(2)
            .set_device(Device::flex())
            .build(SegDataset::new(&index, &samples, &cfg));
        let total: usize = loader.iter().map(|b| b.unwrap().images.dims()[0]).sum();
        assert_eq!(total, n);
    }

    #[test]
    fn a_corrupt_image_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let index = sample_index(dir.path());
        let victim = index.samples[0].image.clone();
        std::fs::write(&victim, b"not a png").unwrap();
        let cfg = LoaderConfig {
            size: [32, 24],
            shuffle: false,
            ..Default::default()
        };
        let samples: Vec<&Sample> = index.labelled().collect();
        let dataset = SegDataset::new(&index, &samples, &cfg);
        let err = dataset.load(0, 0).unwrap_err();
        assert_eq!(err.file, victim);
    }
}
