//! The one rayon pool shared by every task of the process. libuv workers only
//! wait on it, so concurrent solves never run more numeric threads than it has.

use std::sync::OnceLock;

static POOL: OnceLock<rayon::ThreadPool> = OnceLock::new();

/// Threads of the pool: `SOT_NUM_THREADS` when set to a positive integer,
/// otherwise the available parallelism.
pub fn pool() -> &'static rayon::ThreadPool {
    POOL.get_or_init(|| {
        let threads = std::env::var("SOT_NUM_THREADS")
            .ok()
            .and_then(|v| v.trim().parse::<usize>().ok())
            .filter(|n| *n > 0)
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("sot-worker-{i}"))
            .build()
            .expect("failed to start the SOT thread pool")
    })
}
