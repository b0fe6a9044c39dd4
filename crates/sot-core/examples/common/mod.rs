//! The memory-bandwidth probe shared by the examples: the rate of the
//! fastest plain read of an array this CPU can do.

use rayon::prelude::*;
use rayon::ThreadPool;
use std::hint::black_box;
use std::time::Instant;

/// Elements of work handed to a thread at a time: 4 MiB.
const CHUNK: usize = 1 << 20;
/// Independent partial sums: four 16-lane vectors, so that neither the adds'
/// latency nor the loop's length limits the read (one chain read at 2/3 of
/// the rate on a 2-core Xeon).
const LANES: usize = 64;

#[inline(always)]
fn sum_impl(v: &[f32]) -> f32 {
    let mut acc = [0.0f32; LANES];
    let chunks = v.chunks_exact(LANES);
    let tail: f32 = chunks.remainder().iter().sum();
    for c in chunks {
        for l in 0..LANES {
            acc[l] += c[l];
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// The sum of `v`, compiled for the widest vectors the CPU has.
fn sum(v: &[f32]) -> f32 {
    #[cfg(target_arch = "x86_64")]
    {
        #[target_feature(enable = "avx512f")]
        unsafe fn avx512(v: &[f32]) -> f32 {
            sum_impl(v)
        }
        #[target_feature(enable = "avx2")]
        unsafe fn avx2(v: &[f32]) -> f32 {
            sum_impl(v)
        }
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU has the feature the function was compiled for.
            return unsafe { avx512(v) };
        }
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: as above.
            return unsafe { avx2(v) };
        }
    }
    sum_impl(v)
}

/// GB/s (1e9 bytes per second) of each of `repeats` timed reads of `data`
/// on `pool`, after one untimed read.
pub fn read_rates(pool: &ThreadPool, data: &[f32], repeats: usize) -> Vec<f64> {
    let read = || pool.install(|| data.par_chunks(CHUNK).map(sum).sum::<f32>());
    black_box(read());
    (0..repeats)
        .map(|_| {
            let t0 = Instant::now();
            black_box(read());
            (data.len() * 4) as f64 / t0.elapsed().as_secs_f64() / 1e9
        })
        .collect()
}

/// An f32 array of `mib` mebibytes, written (untouched pages would all read
/// the same zero page) by the threads of `pool`.
pub fn array(pool: &ThreadPool, mib: usize) -> Vec<f32> {
    let mut data = vec![0.0f32; mib << 18];
    pool.install(|| {
        data.par_chunks_mut(CHUNK)
            .enumerate()
            .for_each(|(k, c)| c.fill((k % 7) as f32))
    });
    data
}

/// A pool of SOT's thread count: `SOT_NUM_THREADS`, else the available
/// parallelism (as sot-node's pool).
pub fn sot_pool() -> ThreadPool {
    let threads = std::env::var("SOT_NUM_THREADS")
        .ok()
        .and_then(|v| v.trim().parse::<usize>().ok())
        .filter(|n| *n > 0)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    pool(threads)
}

pub fn pool(threads: usize) -> ThreadPool {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .expect("thread pool")
}
