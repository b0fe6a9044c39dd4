//! Read bandwidth of main memory, the bound of a pass over a large f32 matrix
//! (used by bench/sinkhorn-vs-pot.sh).
//!
//! `cargo run --release -p sot-core --example membw [MiB] [repeats]`
//! sums an f32 array of `MiB` mebibytes (default 1536, far beyond any cache)
//! with all the threads SOT uses (`SOT_NUM_THREADS`, else the available
//! parallelism, as in sot-node's pool) and with one thread, `repeats` times
//! each (default 10), and prints one JSON line: the best and median rates in
//! GB/s (1e9 bytes per second) and every run.

use rayon::prelude::*;
use rayon::ThreadPool;
use std::hint::black_box;
use std::time::Instant;

/// Rows of work handed to a thread at a time: 4 MiB.
const CHUNK: usize = 1 << 20;
/// Independent partial sums, so that the loop vectorises.
const LANES: usize = 16;

fn sum(v: &[f32]) -> f32 {
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

/// GB/s of each of `repeats` timed reads of `data`, after one untimed read.
fn read_rates(pool: &ThreadPool, data: &[f32], repeats: usize) -> Vec<f64> {
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

fn pool(threads: usize) -> ThreadPool {
    rayon::ThreadPoolBuilder::new().num_threads(threads).build().expect("thread pool")
}

fn summary(rates: &[f64]) -> String {
    let mut sorted = rates.to_vec();
    sorted.sort_by(f64::total_cmp);
    let all: Vec<String> = rates.iter().map(|r| format!("{r:.3}")).collect();
    format!(r#"{{"best": {:.3}, "median": {:.3}, "all": [{}]}}"#, sorted[sorted.len() - 1], sorted[sorted.len() / 2], all.join(", "))
}

fn main() {
    let args: Vec<usize> = std::env::args().skip(1).map(|a| a.parse().expect("usage: membw [MiB] [repeats]")).collect();
    let mib = args.first().copied().unwrap_or(1536);
    let repeats = args.get(1).copied().unwrap_or(10).max(1);
    let threads = std::env::var("SOT_NUM_THREADS")
        .ok()
        .and_then(|v| v.trim().parse::<usize>().ok())
        .filter(|n| *n > 0)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));

    let all = pool(threads);
    // Written, not just allocated: untouched pages would all read the same zero page.
    let mut data = vec![0.0f32; mib << 18];
    all.install(|| data.par_chunks_mut(CHUNK).enumerate().for_each(|(k, c)| c.fill((k % 7) as f32)));

    let multi = read_rates(&all, &data, repeats);
    let single = read_rates(&pool(1), &data, repeats);
    println!(
        r#"{{"bytes": {}, "threads": {threads}, "repeats": {repeats}, "read_gbps": {}, "read_gbps_1thread": {}}}"#,
        data.len() * 4,
        summary(&multi),
        summary(&single)
    );
}
