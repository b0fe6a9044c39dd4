use napi_derive::napi;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// A flag a running solve polls between iterations; `cancel()` makes it stop
/// with an `ERR_ABORTED` error. The TypeScript layer ties it to an `AbortSignal`.
#[napi]
#[derive(Default)]
pub struct CancelToken {
    pub(crate) flag: Arc<AtomicBool>,
}

#[napi]
impl CancelToken {
    #[napi(constructor)]
    pub fn new() -> Self {
        Self::default()
    }

    #[napi]
    pub fn cancel(&self) {
        self.flag.store(true, Ordering::Relaxed);
    }

    #[napi(getter)]
    pub fn cancelled(&self) -> bool {
        self.flag.load(Ordering::Relaxed)
    }
}
