//! Progress of long runs (occlusion, RISE, Score-CAM): methods report units of work done; the CLI
//! draws a bar with an ETA from them. A method without a hook reports to nobody.

use std::fmt;
use std::sync::Arc;

/// A hook called with `(done, total)` units of one method's work on one request.
#[derive(Clone, Default)]
pub struct Progress(Option<Arc<dyn Fn(usize, usize) + Send + Sync>>);

impl Progress {
    /// Reports to `f`.
    pub fn new(f: impl Fn(usize, usize) + Send + Sync + 'static) -> Progress {
        Progress(Some(Arc::new(f)))
    }

    /// Reports `done` of `total`.
    pub fn report(&self, done: usize, total: usize) {
        if let Some(f) = &self.0 {
            f(done, total);
        }
    }
}

impl fmt::Debug for Progress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_some() {
            "Progress(hook)"
        } else {
            "Progress(none)"
        })
    }
}

impl PartialEq for Progress {
    /// Hooks do not change results: any two are equal.
    fn eq(&self, _: &Progress) -> bool {
        true
    }
}
