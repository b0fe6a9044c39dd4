//! The rayon pool shared by every task of the process. libuv workers only
//! wait on it, so concurrent solves never run more numeric threads than it
//! has. Copies of JS arrays, made on the JS thread while it waits, run on a
//! second pool of the same size: on the first one they would wait for a
//! running solve to give up a thread, and the event loop with them.

use std::sync::OnceLock;

static POOL: OnceLock<rayon::ThreadPool> = OnceLock::new();
static COPY_POOL: OnceLock<rayon::ThreadPool> = OnceLock::new();
static THREADS: OnceLock<usize> = OnceLock::new();

/// Most pool threads per available core: more only add switching, and an
/// unbounded `SOT_NUM_THREADS` spawned thousands of threads for a tiny solve.
const MAX_THREADS_PER_CORE: usize = 4;

/// The pool that runs every task's numerics.
pub fn pool() -> &'static rayon::ThreadPool {
    POOL.get_or_init(|| build("sot-worker"))
}

/// A copy of a JS array's values, made while the JS thread waits: on the
/// copy pool (idle between calls), never behind a running solve.
pub fn copy_for_js<T: Copy + Send + Sync>(src: &[T]) -> sot_core::Result<Vec<T>> {
    COPY_POOL
        .get_or_init(|| build("sot-copy"))
        .install(|| sot_core::copy_of(src))
}

fn build(name: &'static str) -> rayon::ThreadPool {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads())
        .thread_name(move |i| format!("{name}-{i}"))
        .build()
        .expect("failed to start a SOT thread pool")
}

/// Threads of each pool: `SOT_NUM_THREADS` when set (see `threads_from`),
/// otherwise the available parallelism.
fn threads() -> usize {
    *THREADS.get_or_init(|| {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        match std::env::var("SOT_NUM_THREADS") {
            Ok(value) => {
                let (threads, warning) = threads_from(&value, cores);
                if let Some(w) = warning {
                    eprintln!("sot: {w}");
                }
                threads
            }
            Err(_) => cores,
        }
    })
}

/// The pool size for `SOT_NUM_THREADS=value` on `cores` cores: a positive
/// integer up to `MAX_THREADS_PER_CORE * cores` as is, a larger one capped
/// there, anything else the core count; with a warning when not taken as is.
fn threads_from(value: &str, cores: usize) -> (usize, Option<String>) {
    let max = cores * MAX_THREADS_PER_CORE;
    match value.trim().parse::<u128>() {
        Ok(n) if n > 0 && n <= max as u128 => (n as usize, None),
        Ok(n) if n > 0 => (max, Some(format!("SOT_NUM_THREADS={n} capped at {max} threads ({MAX_THREADS_PER_CORE} per available core)"))),
        _ => (cores, Some(format!("SOT_NUM_THREADS={value:?} is not a positive integer; using {cores} threads"))),
    }
}

#[cfg(test)]
mod tests {
    use super::{copy_for_js, pool, threads_from};
    use std::sync::mpsc::channel;
    use std::time::Duration;

    #[test]
    fn copies_run_while_every_pool_thread_is_busy() {
        // Hold every thread of the solvers' pool until the copy is done.
        let (release, held) = channel::<()>();
        let held = std::sync::Arc::new(std::sync::Mutex::new(held));
        for _ in 0..pool().current_num_threads() {
            let held = held.clone();
            pool().spawn(move || {
                let _ = held.lock().unwrap().recv_timeout(Duration::from_secs(30));
            });
        }
        let (done, copied) = channel();
        std::thread::spawn(move || {
            let src: Vec<f32> = (0..(4 << 20)).map(|i| i as f32).collect();
            done.send(copy_for_js(&src).unwrap() == src).unwrap();
        });
        let result = copied.recv_timeout(Duration::from_secs(10));
        for _ in 0..pool().current_num_threads() {
            let _ = release.send(());
        }
        assert_eq!(result, Ok(true), "the copy waited for the solvers' pool");
    }

    #[test]
    fn thread_counts_are_capped() {
        assert_eq!(threads_from("3", 2), (3, None));
        assert_eq!(threads_from(" 8 ", 2), (8, None));
        assert_eq!(threads_from("9", 2).0, 8);
        assert_eq!(threads_from("1000000", 16).0, 64);
        assert!(threads_from("1000000", 2)
            .1
            .unwrap()
            .contains("capped at 8"));
        assert_eq!(threads_from("99999999999999999999999999", 2).0, 8);
        for bad in ["0", "-1", "many", "", "1e6"] {
            let (n, warning) = threads_from(bad, 2);
            assert_eq!(n, 2, "{bad}");
            assert!(warning.unwrap().contains("not a positive integer"), "{bad}");
        }
    }
}
