//! Process memory policy: training allocates and frees the same large buffers every step, and
//! glibc's defaults hand them back to the kernel and fault them in again (zeroed) each time. The
//! binary calls [`keep_freed_memory`] at start; the studio calls [`return_freed_memory`] when a
//! run ends so that an idle window does not hold a run's peak.

/// Serve every allocation from the heap instead of fresh `mmap`s (a 90 MB activation at
/// 480x368 would otherwise be mapped, faulted in page by page and unmapped every step), and
/// never trim the heap: freed buffers are reused by the next step. No-op off glibc.
pub fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator parameters; the values are in their valid ranges.
    unsafe {
        libc::mallopt(libc::M_MMAP_MAX, 0);
        libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX);
    }
}

/// Give freed heap memory back to the kernel now. No-op off glibc.
pub fn return_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases free memory of the allocator's own arenas.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Peak resident memory of this process so far, in bytes (Linux: VmHWM), if known.
pub fn peak_resident_bytes() -> Option<u64> {
    status_bytes("VmHWM:")
}

/// Resident memory of this process now, in bytes (Linux: VmRSS), if known.
pub fn resident_bytes() -> Option<u64> {
    status_bytes("VmRSS:")
}

/// A `kB` field of /proc/self/status, in bytes.
fn status_bytes(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[cfg(target_os = "linux")]
    fn resident_memory_is_reported_and_below_the_peak() {
        let now = resident_bytes().expect("VmRSS on Linux");
        let peak = peak_resident_bytes().expect("VmHWM on Linux");
        assert!(now > 0 && now <= peak, "{now} vs peak {peak}");
    }
}
