//! Time spent in each kernel, by operation and shape, when `ROADSEG_KERNEL_PROFILE` is set:
//! what `roadseg bench --train` prints to show where a step's time goes.

use std::collections::BTreeMap;
use std::sync::{Mutex, OnceLock};
use std::time::Instant;

static TOTALS: Mutex<BTreeMap<String, (u64, f64)>> = Mutex::new(BTreeMap::new());

/// Whether timings are being collected.
pub fn enabled() -> bool {
    static ON: OnceLock<bool> = OnceLock::new();
    *ON.get_or_init(|| std::env::var_os("ROADSEG_KERNEL_PROFILE").is_some())
}

/// Runs `f`, adding its duration to `label()`'s total when profiling.
pub fn time<R>(label: impl FnOnce() -> String, f: impl FnOnce() -> R) -> R {
    if !enabled() {
        return f();
    }
    let start = Instant::now();
    let result = f();
    let seconds = start.elapsed().as_secs_f64();
    let mut totals = TOTALS.lock().unwrap_or_else(|e| e.into_inner());
    let entry = totals.entry(label()).or_default();
    entry.0 += 1;
    entry.1 += seconds;
    result
}

/// The totals so far, largest first: (label, calls, seconds); clears them.
pub fn take() -> Vec<(String, u64, f64)> {
    let mut totals = TOTALS.lock().unwrap_or_else(|e| e.into_inner());
    let mut rows: Vec<_> = std::mem::take(&mut *totals)
        .into_iter()
        .map(|(label, (calls, seconds))| (label, calls, seconds))
        .collect();
    rows.sort_by(|a, b| b.2.total_cmp(&a.2));
    rows
}
