//! The core library's end-to-end flows without the GUI: the training worker, a failing disk,
//! killed mask saves, and fuzzing of every reader (the clicks file of `roadseg assist` included) (see `tests/cli/main.rs` for why one binary).

#[path = "../fuzz/mod.rs"]
mod fuzz;

/// The fuzz tests' allocation meter (per thread: the other tests' allocations are not counted).
#[global_allocator]
static METER: fuzz::Meter = fuzz::Meter;

mod failing_disk;
mod fuzz_clicks;
mod fuzz_dataset;
mod fuzz_formats;
mod fuzz_jobs;
mod fuzz_run_dir;
mod mask_save_kill;
mod train_worker;
