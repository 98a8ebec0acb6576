//! How a caller steers a running training loop from another thread: stop, pause, and ask for
//! predictions of an image with the weights as they are now.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use image::RgbImage;

/// An image to predict, with a tag the caller uses to match the answer.
#[derive(Clone, Debug)]
pub struct PredictRequest {
    pub tag: u64,
    pub image: RgbImage,
}

/// Shared between the loop and whoever drives it. All methods take `&self`.
#[derive(Debug, Default)]
pub struct Control {
    stop: AtomicBool,
    paused: AtomicBool,
    /// Predict once, at the next step boundary.
    now: Mutex<Option<PredictRequest>>,
    /// Predict after every epoch (the image on the studio's canvas).
    each_epoch: Mutex<Option<PredictRequest>>,
}

impl Control {
    /// Finish the current step, write a checkpoint, end the run with status `stopped`.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }

    pub fn stop_requested(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    pub fn pause(&self) {
        self.paused.store(true, Ordering::Relaxed);
    }

    pub fn resume(&self) {
        self.paused.store(false, Ordering::Relaxed);
    }

    pub fn is_paused(&self) -> bool {
        self.paused.load(Ordering::Relaxed)
    }

    /// Blocks while paused; returns early when stopped. Returns whether it waited.
    pub fn wait_while_paused(&self) -> bool {
        let mut waited = false;
        while self.is_paused() && !self.stop_requested() {
            waited = true;
            std::thread::sleep(Duration::from_millis(20));
        }
        waited
    }

    /// Asks for one prediction as soon as the current step ends.
    pub fn predict_now(&self, request: PredictRequest) {
        if let Ok(mut slot) = self.now.lock() {
            *slot = Some(request);
        }
    }

    /// Sets (or clears) the image predicted after every epoch.
    pub fn predict_each_epoch(&self, request: Option<PredictRequest>) {
        if let Ok(mut slot) = self.each_epoch.lock() {
            *slot = request;
        }
    }

    pub(crate) fn take_now(&self) -> Option<PredictRequest> {
        self.now.lock().ok()?.take()
    }

    pub(crate) fn epoch_request(&self) -> Option<PredictRequest> {
        self.each_epoch.lock().ok()?.clone()
    }
}
