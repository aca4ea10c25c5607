//! Progress of long runs (occlusion, RISE, Score-CAM, Ablation-CAM): methods report units of work
//! done; the CLI draws a bar with an ETA from them, the web app a progress bar. A front end may also
//! cancel: the next report then fails with [`ExplainError::Cancelled`], so a long method stops
//! between two batches instead of running to its end. A method without a hook reports to nobody.

use crate::{ExplainError, Result};
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

type Hook = Arc<dyn Fn(usize, usize) + Send + Sync>;

/// A hook called with `(done, total)` units of one method's work on one request, and a flag that
/// cancels the work.
#[derive(Clone, Default)]
pub struct Progress {
    hook: Option<Hook>,
    cancel: Option<Arc<AtomicBool>>,
}

impl Progress {
    /// Reports to `f`.
    pub fn new(f: impl Fn(usize, usize) + Send + Sync + 'static) -> Progress {
        Progress {
            hook: Some(Arc::new(f)),
            cancel: None,
        }
    }

    /// The same hook, and the work stops at its next report once `flag` is set.
    pub fn cancelled_by(self, flag: Arc<AtomicBool>) -> Progress {
        Progress {
            cancel: Some(flag),
            ..self
        }
    }

    /// Whether the work was cancelled.
    pub fn is_cancelled(&self) -> bool {
        self.cancel.as_ref().is_some_and(|c| c.load(Ordering::Relaxed))
    }

    /// Reports `done` of `total`; fails once the work is cancelled.
    pub fn report(&self, done: usize, total: usize) -> Result<()> {
        if self.is_cancelled() {
            return Err(ExplainError::Cancelled);
        }
        if let Some(f) = &self.hook {
            f(done, total);
        }
        Ok(())
    }
}

impl fmt::Debug for Progress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.hook.is_some() {
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
