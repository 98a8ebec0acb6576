//! Graceful stop of `roadseg train`: SIGTERM (`kill`, Slurm's `scancel` and time limit,
//! Kubernetes deleting the pod), SIGINT (Ctrl-C) and SIGUSR1 (Slurm's `--signal` warning) ask the
//! loop to stop through its [`Control`]: it finishes the step in progress, writes the `last`
//! checkpoint with its batch position and `summary.json` (status `stopped`), and the process
//! exits with 128 + the signal's number, as a shell reports a process ended by that signal.
//! Schedulers follow SIGTERM with SIGKILL after a grace period (Slurm's KillWait, 30 s by
//! default; Kubernetes' terminationGracePeriodSeconds, 30 s), so all of that must take seconds,
//! which it does: one step and one checkpoint.
//!
//! The handler itself only stores the signal's number in an atomic (the one thing a signal
//! handler may safely do); a watcher thread polls it and calls [`Control::stop`]. A second
//! Ctrl-C leaves at once, without a checkpoint, for a user who does not want to wait; repeated
//! SIGTERMs or SIGUSR1s change nothing (the stop is under way).

use std::sync::Arc;
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::Duration;

use roadseg::core::train::control::Control;

/// The first stop signal received (0: none yet).
static RECEIVED: AtomicI32 = AtomicI32::new(0);

/// How often the watcher looks for a signal: well under a step, and costs nothing.
const POLL: Duration = Duration::from_millis(50);

/// The signals that stop a run, and their names for the log line.
#[cfg(unix)]
const STOP_SIGNALS: [(libc::c_int, &str); 3] = [
    (libc::SIGTERM, "SIGTERM"),
    (libc::SIGINT, "SIGINT"),
    (libc::SIGUSR1, "SIGUSR1"),
];

#[cfg(unix)]
extern "C" fn on_signal(signal: libc::c_int) {
    let first = RECEIVED.compare_exchange(0, signal, Ordering::SeqCst, Ordering::SeqCst);
    if first.is_err() && signal == libc::SIGINT {
        // SAFETY: _exit is async-signal-safe; nothing else runs in the handler.
        unsafe { libc::_exit(128 + signal) };
    }
}

/// Routes the stop signals to `control` for the rest of the process's life; `log` gets one
/// line when a signal arrives. Where signals cannot be handled (not Unix) this does nothing and
/// the signals keep their default action.
pub fn stop_on_signals(control: Arc<Control>, log: impl Fn(String) + Send + 'static) {
    #[cfg(unix)]
    {
        // The watcher first: without it a handled signal would stop nothing, so the signals
        // keep their default action (end the process) unless it runs.
        let watcher = std::thread::Builder::new()
            .name("stop-signals".into())
            .spawn(move || {
                loop {
                    let signal = RECEIVED.load(Ordering::SeqCst);
                    if signal != 0 {
                        let name = STOP_SIGNALS
                            .iter()
                            .find(|(s, _)| *s == signal)
                            .map_or("a signal", |(_, n)| n);
                        log(format!(
                            "{name}: finishing this step, then writing a checkpoint (a second \
                             Ctrl-C leaves at once, without one)"
                        ));
                        control.resume();
                        control.stop();
                        return;
                    }
                    std::thread::sleep(POLL);
                }
            });
        if let Err(e) = watcher {
            eprintln!("signals will end the run without a checkpoint: no watcher thread ({e})");
            return;
        }
        for (signal, name) in STOP_SIGNALS {
            // SAFETY: `on_signal` has the signature sigaction expects for a plain handler
            // (no SA_SIGINFO) and only touches an atomic and _exit.
            let installed = unsafe {
                let mut action: libc::sigaction = std::mem::zeroed();
                action.sa_sigaction = on_signal as *const () as libc::sighandler_t;
                // Restart interrupted reads and writes: the loop's file I/O must not fail
                // with EINTR because a stop was asked for.
                action.sa_flags = libc::SA_RESTART;
                libc::sigemptyset(&mut action.sa_mask);
                libc::sigaction(signal, &action, std::ptr::null_mut()) == 0
            };
            if !installed {
                eprintln!("{name} will end the run without a checkpoint: sigaction failed");
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = (control, log);
    }
}

/// `roadseg train` ended early because of a stop signal, after its checkpoint and summary: the
/// process exits with [`StoppedBySignal::exit_code`] and prints nothing more.
#[derive(Debug, thiserror::Error)]
#[error("stopped by signal {0}")]
pub struct StoppedBySignal(pub i32);

impl StoppedBySignal {
    /// 128 + the signal's number (143 for SIGTERM, 130 for SIGINT, 138 for SIGUSR1).
    pub fn exit_code(&self) -> u8 {
        u8::try_from(128 + self.0).unwrap_or(1)
    }
}

/// The stop signal received so far, if any: the process then exits with 128 + its number.
pub fn received() -> Option<i32> {
    match RECEIVED.load(Ordering::SeqCst) {
        n if n > 0 => Some(n),
        _ => None,
    }
}
