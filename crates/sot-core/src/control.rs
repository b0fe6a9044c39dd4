//! Cooperative cancellation and throttled progress reporting, shared by every
//! long-running routine. Both are optional: `Control::default()` does nothing.

use crate::error::{Result, SotError};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// A snapshot of a running solve, handed to the progress callback.
#[derive(Debug, Clone, PartialEq)]
pub struct Progress {
    /// What is running, e.g. "sinkhorn" or "divergence:xx".
    pub stage: &'static str,
    pub iteration: usize,
    pub max_iterations: usize,
    /// Current L1 marginal error (NaN before the first measurement).
    pub error: f64,
    /// The eps in force (differs from the target while eps-scaling).
    pub eps: f64,
}

pub type ProgressFn<'a> = dyn Fn(&Progress) + Sync + 'a;

pub struct Control<'a> {
    cancel: Option<&'a AtomicBool>,
    progress: Option<&'a ProgressFn<'a>>,
    interval: Duration,
}

impl Default for Control<'_> {
    fn default() -> Self {
        Control {
            cancel: None,
            progress: None,
            interval: Duration::from_millis(100),
        }
    }
}

impl<'a> Control<'a> {
    pub fn with_cancel(mut self, flag: &'a AtomicBool) -> Self {
        self.cancel = Some(flag);
        self
    }

    /// Calls `f` at most once per `interval` while a solve runs, and once at its end.
    pub fn with_progress(mut self, f: &'a ProgressFn<'a>, interval: Duration) -> Self {
        self.progress = Some(f);
        self.interval = interval;
        self
    }

    /// The same cancellation without progress: for the inner solves of a
    /// routine that reports its own progress.
    pub fn cancel_only(&self) -> Control<'a> {
        Control {
            cancel: self.cancel,
            progress: None,
            interval: self.interval,
        }
    }

    pub fn check(&self) -> Result<()> {
        match self.cancel {
            Some(flag) if flag.load(Ordering::Relaxed) => Err(SotError::aborted()),
            _ => Ok(()),
        }
    }

    pub(crate) fn reporter(&self) -> Reporter<'_, 'a> {
        Reporter {
            control: self,
            last: None,
        }
    }
}

/// Throttles progress calls for one solve.
pub(crate) struct Reporter<'c, 'a> {
    control: &'c Control<'a>,
    last: Option<Instant>,
}

impl Reporter<'_, '_> {
    pub fn report(&mut self, p: Progress, force: bool) {
        let Some(f) = self.control.progress else {
            return;
        };
        let now = Instant::now();
        let due = match self.last {
            None => true,
            Some(t) => now.duration_since(t) >= self.control.interval,
        };
        if due || force {
            self.last = Some(now);
            f(&p);
        }
    }
}
