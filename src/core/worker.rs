//! The plumbing every background worker shares (training, the model worker, the assists'
//! preparation, the run follower): a bounded event channel whose sender calls a wake-up closure
//! after each event (the studio passes its `request_repaint`, the core never sees egui), a named
//! thread, the receiver's drain under a time budget (a frame spends at most a few ms on events),
//! and a shutdown that keeps draining while the thread finishes, so a worker blocked on a full
//! channel can end.

use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender, TryRecvError, TrySendError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The wake-up closure: tells the receiver there is something to read.
pub type Wake = Arc<dyn Fn() + Send + Sync>;

/// The sending half of an event channel.
pub struct Outbox<E> {
    tx: SyncSender<E>,
    wake: Wake,
}

impl<E> Clone for Outbox<E> {
    fn clone(&self) -> Self {
        Self {
            tx: self.tx.clone(),
            wake: self.wake.clone(),
        }
    }
}

impl<E> Outbox<E> {
    /// Queues `event`, waiting while the channel is full (back-pressure), and wakes the
    /// receiver. `false` when the receiver is gone (the studio closed): nothing to tell.
    pub fn send(&self, event: E) -> bool {
        let sent = self.tx.send(event).is_ok();
        (self.wake)();
        sent
    }

    /// Queues `event` unless the channel is full (then it is dropped: the receiver learns the
    /// news from the events already waiting), and wakes the receiver.
    pub fn offer(&self, event: E) {
        if let Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) = self.tx.try_send(event)
        {
            // Dropped on purpose, see above.
        }
        (self.wake)();
    }
}

/// The receiving half of an event channel.
pub struct Events<E> {
    rx: Receiver<E>,
}

impl<E> Events<E> {
    /// Events received within `budget` (the UI calls this once a frame with a few ms).
    pub fn drain(&self, budget: Duration) -> Vec<E> {
        let start = Instant::now();
        let mut out = Vec::new();
        while start.elapsed() < budget {
            match self.rx.try_recv() {
                Ok(event) => out.push(event),
                Err(TryRecvError::Empty | TryRecvError::Disconnected) => break,
            }
        }
        out
    }

    /// Waits up to `timeout` for the next event (tests and headless callers).
    pub fn recv_timeout(&self, timeout: Duration) -> Option<E> {
        self.rx.recv_timeout(timeout).ok()
    }

    /// The next event if one is waiting; `Err(Disconnected)` once every sender is gone.
    pub fn try_recv(&self) -> Result<E, TryRecvError> {
        self.rx.try_recv()
    }

    /// Waits for `thread` to end, discarding events meanwhile so that a worker blocked on a
    /// full channel can send and finish (what a worker's `Drop` does after telling it to stop).
    pub fn join_discarding(&self, thread: JoinHandle<()>) {
        while !thread.is_finished() {
            while self.rx.try_recv().is_ok() {}
            std::thread::sleep(Duration::from_millis(5));
        }
        let _ = thread.join();
    }
}

/// A channel of `capacity` events whose sender calls `wake` after each event.
pub fn channel<E>(capacity: usize, wake: Wake) -> (Outbox<E>, Events<E>) {
    let (tx, rx) = std::sync::mpsc::sync_channel(capacity);
    (Outbox { tx, wake }, Events { rx })
}

/// `wake` as the shared closure [`channel`] takes.
pub fn wake(f: impl Fn() + Send + Sync + 'static) -> Wake {
    Arc::new(f)
}

/// Starts `body` on a thread named `name` (named threads show in debuggers and panics).
pub fn spawn(name: &str, body: impl FnOnce() + Send + 'static) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new().name(name.into()).spawn(body)
}

/// A panic's message, for the event that reports a worker's crash.
pub fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "unknown panic".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn events_arrive_in_order_and_each_wakes_the_receiver() {
        let woken = Arc::new(AtomicUsize::new(0));
        let count = woken.clone();
        let (outbox, events) = channel(
            4,
            wake(move || {
                count.fetch_add(1, Ordering::SeqCst);
            }),
        );
        let thread = spawn("test-worker", move || {
            for i in 0..10 {
                assert!(outbox.send(i));
            }
        })
        .unwrap();
        let mut got = Vec::new();
        while got.len() < 10 {
            got.extend(events.recv_timeout(Duration::from_secs(5)));
        }
        thread.join().unwrap();
        assert_eq!(got, (0..10).collect::<Vec<_>>());
        assert_eq!(woken.load(Ordering::SeqCst), 10);
    }

    #[test]
    fn a_full_channel_drops_offers_and_shutdown_unblocks_a_sender() {
        let (outbox, events) = channel(2, wake(|| {}));
        for i in 0..5 {
            outbox.offer(i);
        }
        assert_eq!(events.drain(Duration::from_millis(50)), [0, 1]);
        // A sender blocked on a full channel finishes once the receiver discards.
        let blocked = outbox.clone();
        let thread = spawn("blocked", move || {
            for i in 0..100 {
                blocked.send(i);
            }
        })
        .unwrap();
        events.join_discarding(thread);
        drop(events);
        assert!(!outbox.send(1), "the receiver is gone");
    }
}
