//! Peak resident memory of this process, from `/proc/self/status` (Linux), for the corpus
//! replay's per-case measurement.

/// The peak resident set size so far (`VmHWM`), in bytes; `None` where `/proc` lacks it.
pub fn peak_bytes() -> Option<u64> {
    status_kib("VmHWM:").map(|k| k * 1024)
}

/// The resident set size now (`VmRSS`), in bytes.
pub fn current_bytes() -> Option<u64> {
    status_kib("VmRSS:").map(|k| k * 1024)
}

/// Resets the peak to the current size (writes 5 to `/proc/self/clear_refs`); false where the
/// kernel does not allow it, in which case [`peak_bytes`] is the peak since the process started.
pub fn reset_peak() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

fn status_kib(key: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(key))?;
    line[key.len()..]
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}
