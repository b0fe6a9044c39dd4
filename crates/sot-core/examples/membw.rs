//! Read bandwidth of main memory, the bound of a pass over a large f32 matrix
//! (used by bench/sinkhorn-vs-pot.sh).
//!
//! `cargo run --release -p sot-core --example membw [MiB] [repeats]`
//! sums an f32 array of `MiB` mebibytes (default 1536, far beyond the caches
//! of the machines this ran on) with all the threads SOT uses
//! (`SOT_NUM_THREADS`, else the available parallelism, as in sot-node's pool)
//! and with one thread, `repeats` times each (default 10), and prints one
//! JSON line: the best and median rates in GB/s (1e9 bytes per second) and
//! every run. The sum is the fastest plain read this CPU does (its widest
//! vectors, four chains), so the bound it gives is as tight as it can be.

mod common;

use common::{array, pool, read_rates, sot_pool};

fn summary(rates: &[f64]) -> String {
    let mut sorted = rates.to_vec();
    sorted.sort_by(f64::total_cmp);
    let all: Vec<String> = rates.iter().map(|r| format!("{r:.3}")).collect();
    format!(
        r#"{{"best": {:.3}, "median": {:.3}, "all": [{}]}}"#,
        sorted[sorted.len() - 1],
        sorted[sorted.len() / 2],
        all.join(", ")
    )
}

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("usage: membw [MiB] [repeats]"))
        .collect();
    let mib = args.first().copied().unwrap_or(1536);
    let repeats = args.get(1).copied().unwrap_or(10).max(1);
    let all = sot_pool();
    let data = array(&all, mib);
    let multi = read_rates(&all, &data, repeats);
    let single = read_rates(&pool(1), &data, repeats);
    println!(
        r#"{{"bytes": {}, "threads": {}, "repeats": {repeats}, "read_gbps": {}, "read_gbps_1thread": {}}}"#,
        data.len() * 4,
        all.current_num_threads(),
        summary(&multi),
        summary(&single)
    );
}
