//! The process's allocation budget: every size that a user's file or argument decides (an
//! image's pixels, a resize target, a layer's activation) is checked against it before anything
//! is allocated, so that a few hundred hostile bytes get a one-line refusal instead of an abort.
//!
//! The defaults fit a 2 GiB process; a front end raises them from a flag
//! (`--max-pixels`, `--max-tensor-gib`).

use std::sync::atomic::{AtomicU64, Ordering};

/// Default: no decoded or resized image above 100 megapixels.
pub const DEFAULT_MAX_PIXELS: u64 = 100_000_000;
/// Default: no single tensor above 2 GiB.
pub const DEFAULT_MAX_TENSOR_BYTES: u64 = 2 << 30;

static MAX_PIXELS: AtomicU64 = AtomicU64::new(DEFAULT_MAX_PIXELS);
static MAX_TENSOR_BYTES: AtomicU64 = AtomicU64::new(DEFAULT_MAX_TENSOR_BYTES);

/// The most pixels an image may have, decoded or resized.
pub fn max_pixels() -> u64 {
    MAX_PIXELS.load(Ordering::Relaxed)
}

/// Sets [`max_pixels`] for the whole process (0 is read as the default).
pub fn set_max_pixels(pixels: u64) {
    let v = if pixels == 0 { DEFAULT_MAX_PIXELS } else { pixels };
    MAX_PIXELS.store(v, Ordering::Relaxed);
}

/// The most bytes one tensor may take.
pub fn max_tensor_bytes() -> u64 {
    MAX_TENSOR_BYTES.load(Ordering::Relaxed)
}

/// Sets [`max_tensor_bytes`] for the whole process (0 is read as the default).
pub fn set_max_tensor_bytes(bytes: u64) {
    let v = if bytes == 0 {
        DEFAULT_MAX_TENSOR_BYTES
    } else {
        bytes
    };
    MAX_TENSOR_BYTES.store(v, Ordering::Relaxed);
}

/// Refuses a `width x height` image over [`max_pixels`]; `what` names it ("the image", "the
/// resized image").
pub fn check_pixels(what: &str, width: u64, height: u64) -> Result<(), String> {
    let n = width.saturating_mul(height);
    let max = max_pixels();
    if n > max {
        return Err(format!(
            "{what} is {width}x{height} = {n} pixels, more than the limit of {max} \
             (raise it with --max-pixels)"
        ));
    }
    Ok(())
}

/// Refuses a tensor of `dims` 4-byte values over [`max_tensor_bytes`], or whose size overflows.
pub fn check_tensor(what: &str, dims: &[usize]) -> Result<(), String> {
    check_tensor_of(dims, || what.to_string())
}

/// [`check_tensor`] naming the tensor only when it is refused: shape inference runs before every
/// forward pass, and a name built per layer per pass would be work thrown away.
pub fn check_tensor_of(dims: &[usize], what: impl FnOnce() -> String) -> Result<(), String> {
    let bytes = dims
        .iter()
        .try_fold(4u64, |acc, &d| acc.checked_mul(d as u64))
        .unwrap_or(u64::MAX);
    let max = max_tensor_bytes();
    if bytes > max {
        return Err(format!(
            "{} of shape {dims:?} would take {:.1} GiB, more than the limit of {:.1} GiB \
             (raise it with --max-tensor-gib)",
            what(),
            bytes as f64 / (1u64 << 30) as f64,
            max as f64 / (1u64 << 30) as f64
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budgets_refuse_over_the_limit_and_overflow() {
        assert!(check_pixels("the image", 10_000, 10_000).is_ok());
        let e = check_pixels("the image", 1, 100_000_001).unwrap_err();
        assert!(e.contains("1x100000001") && e.contains("--max-pixels"), "{e}");
        assert!(check_pixels("the image", u64::MAX, 2).is_err());
        assert!(check_tensor("layer 'x'", &[1, 3, 224, 224]).is_ok());
        // 512 Mi values of 4 bytes is exactly 2 GiB: allowed; one more is not.
        assert!(check_tensor("t", &[512, 1024, 1024]).is_ok());
        assert!(check_tensor("t", &[512, 1024, 1025]).is_err());
        assert!(check_tensor("t", &[usize::MAX, usize::MAX]).is_err());
    }
}
