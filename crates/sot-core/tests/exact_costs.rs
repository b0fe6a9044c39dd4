//! Solves from points that finish on their exact costs (`ExactCosts`): the
//! marginal error they report, and meet, is the one on the float64 costs
//! computed pair by pair from the points.
mod common;

use common::*;
use ndarray::Array2;
use sot_core::{
    sinkhorn_points, Control, CostKind, ExactCosts, SinkhornOptions, StorageOptions, WarmStart,
};

struct Case {
    x: Array2<f32>,
    y: Array2<f32>,
    /// The float64 costs from the points, pair by pair.
    c: Array2<f64>,
    a: Vec<f64>,
    b: Vec<f64>,
}

fn case(seed: u64, n: usize, m: usize, d: usize, kind: CostKind) -> Case {
    let mut r = rng(seed);
    let (x, y) = (gaussian(&mut r, n, d), gaussian(&mut r, m, d));
    let c = naive_cost(&x, &y, kind == CostKind::Cosine);
    let (a, b) = (weights(&mut r, n), weights(&mut r, m));
    Case { x, y, c, a, b }
}

fn solve(k: &Case, kind: CostKind, o: &SinkhornOptions) -> sot_core::SinkhornResult {
    sinkhorn_points(
        k.x.view(),
        k.y.view(),
        kind,
        Some(&k.a),
        Some(&k.b),
        o,
        WarmStart::default(),
        &Control::default(),
    )
    .unwrap()
}

/// Small eps against the costs' scale: the f32 rounding of the costs, over
/// eps, then moves the marginals by more than `TOL`.
const CASES: [(u64, CostKind, f64); 4] = [
    (1, CostKind::Cosine, 2e-3),
    (2, CostKind::Cosine, 5e-3),
    (3, CostKind::SqEuclidean, 0.05),
    (4, CostKind::SqEuclidean, 0.1),
];
const TOL: f64 = 1e-8;

#[test]
fn the_exact_finish_meets_tol_on_the_float64_costs_where_f32_costs_miss_it() {
    for (seed, kind, eps) in CASES {
        let k = case(seed, 240, 160, 24, kind);
        let o = |exact| SinkhornOptions {
            eps,
            tol: TOL,
            max_iter: 20_000,
            exact,
            ..Default::default()
        };
        // on the f32 costs alone, the tolerance is met there but not on the exact costs
        let held = solve(&k, kind, &o(ExactCosts::Off));
        assert!(held.converged && held.exact_passes == 0, "seed {seed}");
        let (_, off) = exact_and_reported(&k.c, &k.a, &k.b, &held.f, &held.g, eps);
        assert!(
            off > TOL,
            "seed {seed}: f32 costs already within tol ({off:.2e})"
        );

        let r = solve(&k, kind, &o(ExactCosts::On));
        assert!(r.converged, "seed {seed}: not converged");
        assert!(r.exact_passes >= 1 && r.passes > held.passes, "seed {seed}");
        let (exact, other) = exact_and_reported(&k.c, &k.a, &k.b, &r.f, &r.g, eps);
        assert!(
            exact < 1e-10,
            "seed {seed}: no exact marginal ({exact:.2e})"
        );
        assert!(
            other <= TOL,
            "seed {seed}: {other:.2e} on the float64 costs"
        );
        assert!(
            (other - r.marginal_error).abs() < 1e-12,
            "seed {seed}: reported {:.3e}, measured {other:.3e}",
            r.marginal_error
        );
        // the value is the dual objective of the returned pair
        let value = dot(&k.a, &r.f) + dot(&k.b, &r.g);
        assert!((value - r.value).abs() < 1e-12 * value.abs().max(1.0));
    }
}

#[test]
fn auto_finishes_on_the_exact_costs_only_below_what_f32_costs_vouch_for() {
    let k = case(5, 120, 90, 16, CostKind::Cosine);
    let run = |eps: f64, tol: f64, storage: StorageOptions| {
        let o = SinkhornOptions {
            eps,
            tol,
            storage,
            ..Default::default()
        };
        solve(&k, CostKind::Cosine, &o).exact_passes
    };
    // the cosine costs lie in [0, 2]: f32 vouches for tol >= 2 * 2^-23 / eps
    assert!(run(0.01, 1e-6, StorageOptions::default()) >= 1);
    assert!(run(0.1, 1e-6, StorageOptions::default()) >= 1);
    assert_eq!(run(0.1, 1e-5, StorageOptions::default()), 0);
    assert_eq!(run(0.05, 1e-4, StorageOptions::default()), 0);
    // truncated costs are approximations: their verification reports, no exact passes
    let truncated = StorageOptions {
        storage: sot_core::Storage::Truncated,
        neighbours: 16,
        ..Default::default()
    };
    assert_eq!(run(0.01, 1e-6, truncated), 0);
}

#[test]
fn the_exact_finish_counts_within_max_iter() {
    let k = case(6, 200, 150, 24, CostKind::Cosine);
    let o = |max_iter| SinkhornOptions {
        eps: 5e-3,
        tol: 1e-10,
        max_iter,
        exact: ExactCosts::On,
        ..Default::default()
    };
    // out of iterations on the held costs: returned as it stands
    let short = solve(&k, CostKind::Cosine, &o(5));
    assert!(!short.converged);
    assert_eq!((short.iterations, short.exact_passes), (5, 0));
    // one iteration left for the exact passes: the error reported is still on the exact costs
    let held = solve(
        &k,
        CostKind::Cosine,
        &SinkhornOptions {
            exact: ExactCosts::Off,
            ..o(20_000)
        },
    );
    let r = solve(&k, CostKind::Cosine, &o(held.iterations + 1));
    assert!(!r.converged);
    assert_eq!(r.iterations, held.iterations + 1);
    assert!(r.exact_passes >= 1);
    let (_, other) = exact_and_reported(&k.c, &k.a, &k.b, &r.f, &r.g, r.eps);
    assert!((other - r.marginal_error).abs() < 1e-12 + 1e-6 * other);
}

fn dot(x: &[f64], y: &[f64]) -> f64 {
    x.iter().zip(y).map(|(a, b)| a * b).sum()
}
