//! `roadseg`: the studio and the headless engine (sample, info, convert, train, eval, predict,
//! bench).

mod cli;

fn main() -> std::process::ExitCode {
    // burn materialises loaded optimiser state on its default device, which is wgpu whenever
    // that backend is compiled in; without a GPU that would start a (software) Vulkan device
    // just to hold a checkpoint. Our own devices are always chosen explicitly, so pin burn's
    // default to the CPU unless the user set it. Nothing else runs yet, so this is the one
    // moment changing the environment is sound.
    if std::env::var_os("BURN_DEVICE").is_none() {
        // SAFETY: single-threaded here, before any thread is spawned.
        unsafe { std::env::set_var("BURN_DEVICE", "flex") };
    }
    roadseg::core::memory::keep_freed_memory();
    cli::main()
}
