//! Preparing an image for the assists off the UI thread: one named thread per request, its
//! answer on a channel of one, and a wake-up closure so the caller redraws when it lands.

use std::sync::mpsc::TryRecvError;

use image::RgbImage;

use super::region::Prepared;
use super::superpixels::SlicParams;
use crate::core::worker::{self, Events};

/// What a look at a [`PrepareJob`] finds.
pub enum Taken {
    /// Boxed: a prepared image is large beside the other answers.
    Ready(Box<Prepared>),
    Pending,
    /// The thread died without a result (it panicked).
    Lost,
}

/// A preparation under way.
pub struct PrepareJob {
    params: SlicParams,
    rx: Events<Prepared>,
}

impl PrepareJob {
    /// Starts preparing `image` with `params`; `wake` is called once the result is ready.
    pub fn spawn(
        image: RgbImage,
        params: SlicParams,
        wake: impl Fn() + Send + Sync + 'static,
    ) -> std::io::Result<Self> {
        // One result, sent once: the thread never blocks on it.
        let (tx, rx) = worker::channel(1, worker::wake(wake));
        worker::spawn("assist-prepare", move || {
            // The receiver is gone when the user moved on: nothing to do.
            tx.send(Prepared::with_params(&image, params));
        })?;
        Ok(Self { params, rx })
    }

    pub fn params(&self) -> SlicParams {
        self.params
    }

    /// The result, once ready.
    pub fn try_take(&self) -> Taken {
        match self.rx.try_recv() {
            Ok(prepared) => Taken::Ready(Box::new(prepared)),
            Err(TryRecvError::Empty) => Taken::Pending,
            Err(TryRecvError::Disconnected) => Taken::Lost,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    #[test]
    fn the_result_arrives_and_wakes_the_caller() {
        let woken = Arc::new(AtomicBool::new(false));
        let flag = woken.clone();
        let image = RgbImage::from_pixel(64, 48, image::Rgb([10, 20, 30]));
        let job = PrepareJob::spawn(image, SlicParams::default(), move || {
            flag.store(true, Ordering::SeqCst)
        })
        .unwrap();
        let prepared = loop {
            if let Taken::Ready(p) = job.try_take() {
                break p;
            }
            std::thread::sleep(std::time::Duration::from_millis(2));
        };
        assert_eq!(prepared.size(), [64, 48]);
        // The wake-up follows the send; give it a moment.
        for _ in 0..500 {
            if woken.load(Ordering::SeqCst) {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
        panic!("never woken");
    }
}
