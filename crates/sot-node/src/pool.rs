//! The one rayon pool shared by every task of the process. libuv workers only
//! wait on it, so concurrent solves never run more numeric threads than it has.

use std::sync::OnceLock;

static POOL: OnceLock<rayon::ThreadPool> = OnceLock::new();

/// Most pool threads per available core: more only add switching, and an
/// unbounded `SOT_NUM_THREADS` spawned thousands of threads for a tiny solve.
const MAX_THREADS_PER_CORE: usize = 4;

/// Threads of the pool: `SOT_NUM_THREADS` when set (see `threads_from`),
/// otherwise the available parallelism.
pub fn pool() -> &'static rayon::ThreadPool {
    POOL.get_or_init(|| {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let threads = match std::env::var("SOT_NUM_THREADS") {
            Ok(value) => {
                let (threads, warning) = threads_from(&value, cores);
                if let Some(w) = warning {
                    eprintln!("sot: {w}");
                }
                threads
            }
            Err(_) => cores,
        };
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("sot-worker-{i}"))
            .build()
            .expect("failed to start the SOT thread pool")
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
    use super::threads_from;

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
