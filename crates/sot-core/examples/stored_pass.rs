//! Time of the Sinkhorn passes served by a stored kernel, against the
//! memory-bandwidth bound measured in the same process (the probe of
//! `membw`), round after round so that both see the same machine.
//!
//! `cargo run --release -p sot-core --example stored_pass [n] [m] [d] [eps] [rounds]`
//! (default 20000 2000 384 0.01 5): random unit vectors, cosine cost, one
//! solve to tol 1e-6 per round. Prints one JSON line per round and the best
//! ratio. The bound is `4 n m` bytes (one read of the f32 kernel) at the
//! best read rate of 1.5 GiB.

mod common;

use common::{array, read_rates, sot_pool};
use ndarray::Array2;
use sot_core::{cost_matrix, sinkhorn, Control, CostKind, SinkhornOptions, WarmStart};
use std::time::Instant;

/// Unit vectors of a rough gaussian (a sum of uniforms from xorshift64*).
fn points(rows: usize, d: usize, seed: u64) -> Array2<f32> {
    let mut s = seed.max(1);
    let mut uniform = move || {
        s ^= s >> 12;
        s ^= s << 25;
        s ^= s >> 27;
        (s.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 40) as f32 / (1u64 << 24) as f32
    };
    let mut x = Array2::from_shape_fn((rows, d), |_| (0..4).map(|_| uniform()).sum::<f32>() - 2.0);
    for mut r in x.rows_mut() {
        let norm = r.dot(&r).sqrt();
        r /= norm;
    }
    x
}

fn main() {
    let a: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize, def: f64| {
        a.get(i).map_or(def, |v| {
            v.parse()
                .expect("usage: stored_pass [n] [m] [d] [eps] [rounds]")
        })
    };
    let (n, m, d) = (
        arg(0, 20000.0) as usize,
        arg(1, 2000.0) as usize,
        arg(2, 384.0) as usize,
    );
    let (eps, rounds) = (arg(3, 0.01), arg(4, 5.0) as usize);
    let pool = sot_pool();
    let probe = array(&pool, 1536);
    let ctl = Control::default();
    let (x, y) = (points(n, d, 1), points(m, d, 2));
    let c = pool
        .install(|| cost_matrix(x.view(), y.view(), CostKind::Cosine, &ctl))
        .expect("costs");
    let opts = SinkhornOptions {
        eps,
        ..SinkhornOptions::default()
    };
    let mut best = f64::INFINITY;
    for round in 0..rounds {
        let t0 = Instant::now();
        let r = pool
            .install(|| sinkhorn(c.view(), None, None, &opts, WarmStart::default(), &ctl))
            .expect("solve");
        let solve = t0.elapsed().as_secs_f64();
        let st = &r.storage;
        let stored = st.kernel_seconds / st.kernel_passes.max(1) as f64;
        // the other passes form the kernel by an exp per entry
        let others = r.passes - st.kernel_passes;
        let exp_pass = (solve - st.kernel_seconds) / others.max(1) as f64;
        let gbps = read_rates(&pool, &probe, 3).into_iter().fold(0.0, f64::max);
        let bound = (4 * n * m) as f64 / (gbps * 1e9);
        best = best.min(stored / bound);
        println!(
            r#"{{"round": {round}, "iterations": {}, "passes": {}, "solve_s": {solve:.4}, "stored_passes": {}, "stored_pass_s": {stored:.5}, "exp_pass_s": {exp_pass:.5}, "read_gbps": {gbps:.1}, "bound_s": {bound:.5}, "stored_vs_bound": {:.2}}}"#,
            r.iterations,
            r.passes,
            st.kernel_passes,
            stored / bound
        );
    }
    println!(r#"{{"best_stored_vs_bound": {best:.2}}}"#);
}
