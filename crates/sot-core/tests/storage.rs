//! How costs are held: the stored kernel, truncated costs with their bound and
//! verification, blocked costs, and the plan under a memory budget, each
//! against an independent f64 reference.

mod common;

use common::*;
use ndarray::Array2;
use sot_core::*;

fn opts(eps: f64, storage: StorageOptions) -> SinkhornOptions {
    SinkhornOptions {
        eps,
        tol: 1e-9,
        max_iter: 50_000,
        storage,
        ..Default::default()
    }
}

fn storage(mode: Storage, neighbours: usize, store_kernel: bool) -> StorageOptions {
    StorageOptions {
        storage: mode,
        neighbours,
        store_kernel,
        ..Default::default()
    }
}

type Points = (Array2<f32>, Array2<f32>, Array2<f64>, Vec<f64>, Vec<f64>);

/// Points, their f32 cost matrix as the solver computes it (in f64), and weights.
fn points(seed: u64, n: usize, m: usize, d: usize) -> Points {
    let mut r = rng(seed);
    let (x, y) = (gaussian(&mut r, n, d), gaussian(&mut r, m, d));
    let c = cost_matrix(x.view(), y.view(), CostKind::Cosine, &Control::default())
        .unwrap()
        .mapv(|v| v as f64);
    let (a, b) = (weights(&mut r, n), weights(&mut r, m));
    (x, y, c, a, b)
}

/// The problem truncated costs stand for, built here independently: each
/// row's `k` smallest costs (ties by column), the others replaced by their
/// `b`-weighted log-mean-exp at `eps`.
fn mean_field_costs(c: &Array2<f64>, b: &[f64], k: usize, eps: f64) -> Array2<f64> {
    let mut out = c.clone();
    for (i, mut row) in out.outer_iter_mut().enumerate() {
        let mut order: Vec<usize> = (0..c.ncols()).collect();
        order.sort_by(|&p, &q| c[[i, p]].partial_cmp(&c[[i, q]]).unwrap().then(p.cmp(&q)));
        let dropped = &order[k..];
        let mass: f64 = dropped.iter().map(|&j| b[j]).sum();
        let mean: f64 = dropped
            .iter()
            .map(|&j| b[j] * (-c[[i, j]] / eps).exp())
            .sum::<f64>()
            / mass;
        for &j in dropped {
            row[j] = -eps * mean.ln();
        }
    }
    out
}

/// Exact soft-min of `g` per row: `-eps ln sum_j b_j exp((g_j - C_ij) / eps)`.
fn c_transform(c: &Array2<f64>, b: &[f64], g: &[f64], eps: f64) -> Vec<f64> {
    c.outer_iter()
        .map(|row| {
            let args: Vec<f64> = row
                .iter()
                .zip(b)
                .zip(g)
                .map(|((c, b), g)| b.ln() + (g - c) / eps)
                .collect();
            let top = args.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            -eps * (top + args.iter().map(|v| (v - top).exp()).sum::<f64>().ln())
        })
        .collect()
}

fn shifted(f: &[f64], by: f64) -> Vec<f64> {
    f.iter().map(|v| v + by).collect()
}

#[test]
fn the_stored_kernel_gives_the_answer_of_the_kernel_formed_at_every_pass() {
    for (seed, eps) in [(1, 0.05), (2, 0.01), (3, 2e-3)] {
        let (_, _, c, a, b) = points(seed, 300, 200, 16);
        let c32 = to_f32(&c);
        let solve = |store_kernel| {
            let o = SinkhornOptions {
                tol: 1e-7,
                ..opts(eps, storage(Storage::Auto, 256, store_kernel))
            };
            sinkhorn(
                c32.view(),
                Some(&a),
                Some(&b),
                &o,
                WarmStart::default(),
                &Control::default(),
            )
            .unwrap()
        };
        let (stored, formed) = (solve(true), solve(false));
        assert!(stored.converged && formed.converged, "eps {eps}");
        assert_eq!(
            (stored.storage.storage, formed.storage.storage),
            ("dense+kernel", "dense")
        );
        assert!(
            stored.storage.kernel_passes > stored.storage.kernel_builds,
            "eps {eps}: {:?}",
            stored.storage
        );
        assert!(
            (stored.value - formed.value).abs() < 1e-9 * formed.value.abs().max(1.0),
            "eps {eps}"
        );
        let k = formed.f[0] - stored.f[0];
        assert!(
            max_abs_diff(&shifted(&stored.f, k), &formed.f) < 1e-6,
            "eps {eps}: f"
        );
        // f32 entries: the marginals on the given costs are within ~1e-7 of the reported ones
        let (exact, other) =
            exact_and_reported(&c32.mapv(|v| v as f64), &a, &b, &stored.f, &stored.g, eps);
        assert!(
            (other - stored.marginal_error).abs() < 1e-7 && exact < 1e-7,
            "eps {eps}: {exact} {other}"
        );
    }
}

#[test]
fn truncated_costs_solve_the_mean_field_problem_exactly() {
    for (seed, k, eps, store_kernel) in [
        (10, 8, 0.05, false),
        (11, 20, 0.02, true),
        (12, 50, 0.01, true),
        (13, 5, 2e-3, false),
    ] {
        let (x, y, c, a, b) = points(seed, 90, 70, 8);
        let reference = mean_field_costs(&c, &b, k, eps);
        let (v_ref, f_ref, g_ref) = naive_sinkhorn(&reference, &a, &b, eps);
        // a stored kernel serves tolerances down to 1e-7
        let tol = if store_kernel { 1e-7 } else { 1e-9 };
        let o = SinkhornOptions {
            tol,
            ..opts(eps, storage(Storage::Truncated, k, store_kernel))
        };
        let r = sinkhorn_points(
            x.view(),
            y.view(),
            CostKind::Cosine,
            Some(&a),
            Some(&b),
            &o,
            WarmStart::default(),
            &Control::default(),
        )
        .unwrap();
        assert!(r.converged, "seed {seed}");
        assert_eq!(
            (r.storage.storage, r.storage.neighbours),
            (
                if store_kernel {
                    "truncated+kernel"
                } else {
                    "truncated"
                },
                k
            )
        );
        assert_eq!(
            r.storage.kernel_passes > 0,
            store_kernel,
            "seed {seed}: {:?}",
            r.storage
        );
        assert!(
            (r.value - v_ref).abs() < 10.0 * tol,
            "seed {seed}: value {} vs {v_ref}",
            r.value
        );
        let s = f_ref[0] - r.f[0];
        assert!(
            max_abs_diff(&shifted(&r.f, s), &f_ref) < 1e-5,
            "seed {seed}: f"
        );
        assert!(
            max_abs_diff(&shifted(&r.g, -s), &g_ref) < 1e-5,
            "seed {seed}: g"
        );
    }
}

#[test]
fn verification_measures_the_truncation_error_and_the_bound_holds() {
    for (seed, k) in [(20, 4), (21, 10), (22, 20)] {
        let (x, y, c, a, b) = points(seed, 120, 60, 6);
        let eps = 0.03;
        let o = opts(eps, storage(Storage::Truncated, k, true));
        let r = sinkhorn_points(
            x.view(),
            y.view(),
            CostKind::Cosine,
            Some(&a),
            Some(&b),
            &o,
            WarmStart::default(),
            &Control::default(),
        )
        .unwrap();
        let v = r.storage.verification.expect("verified by default");
        let exact = c_transform(&c, &b, &r.g, eps);
        let dev: Vec<f64> = r.f.iter().zip(&exact).map(|(p, q)| (p - q).abs()).collect();
        let max = dev.iter().cloned().fold(0.0, f64::max);
        let mean: f64 = dev.iter().zip(&a).map(|(d, w)| d * w).sum();
        assert!(
            (v.max_error - max).abs() < 1e-9 && (v.mean_error - mean).abs() < 1e-9,
            "seed {seed}: {v:?} vs {max} {mean}"
        );
        // the row errors of the returned potentials on the exact costs
        let (rows, _) = marginals(&c, &a, &b, &r.f, &r.g, eps);
        let row_err: f64 = rows.iter().zip(&a).map(|(p, q)| (p - q).abs()).sum();
        assert!(
            (v.row_error - row_err).abs() < 1e-9,
            "seed {seed}: rows {} vs {row_err}",
            v.row_error
        );
        assert!(
            max > 1e-6,
            "seed {seed}: truncation should cost something, got {max}"
        );
        assert!(
            max <= r.storage.bound + 1e-12,
            "seed {seed}: measured {max} over the bound {}",
            r.storage.bound
        );
    }
}

#[test]
fn keeping_all_but_one_reference_is_exact() {
    let (x, y, c, a, b) = points(30, 50, 12, 5);
    let o = opts(0.05, storage(Storage::Truncated, 11, false));
    let r = sinkhorn_points(
        x.view(),
        y.view(),
        CostKind::Cosine,
        Some(&a),
        Some(&b),
        &o,
        WarmStart::default(),
        &Control::default(),
    )
    .unwrap();
    let (v_ref, _, _) = naive_sinkhorn(&c, &a, &b, 0.05);
    assert!((r.value - v_ref).abs() < 1e-7);
    assert!(r.storage.bound < 1e-9 && r.storage.verification.unwrap().max_error < 1e-6);
}

#[test]
fn blocked_costs_give_the_dense_answer() {
    for kind in [CostKind::Cosine, CostKind::SqEuclidean] {
        let (x, y, _, a, b) = points(40, 700, 90, 12);
        let solve = |mode| {
            let o = SinkhornOptions {
                eps: 0.5,
                ..opts(0.05, storage(mode, 256, false))
            };
            let o = if kind == CostKind::Cosine {
                SinkhornOptions { eps: 0.05, ..o }
            } else {
                o
            };
            sinkhorn_points(
                x.view(),
                y.view(),
                kind,
                Some(&a),
                Some(&b),
                &o,
                WarmStart::default(),
                &Control::default(),
            )
            .unwrap()
        };
        let (blocked, dense) = (solve(Storage::Blocked), solve(Storage::Dense));
        assert_eq!(
            (blocked.storage.storage, dense.storage.storage),
            ("blocked", "dense")
        );
        assert!(blocked.storage.bytes < dense.storage.bytes);
        assert_eq!(
            (&blocked.f, &blocked.g, blocked.iterations),
            (&dense.f, &dense.g, dense.iterations),
            "{kind:?}"
        );
    }
}

#[test]
fn the_plan_fits_the_budget() {
    let gib = 1usize << 30;
    let shapes = [(1_000_000, 50), (1_000_000, 5_000)];
    let fit = |budget: usize, mode| {
        plan(
            &shapes,
            &StorageOptions {
                storage: mode,
                budget,
                ..Default::default()
            },
        )
    };
    let within = |plans: &[Plan], budget: usize| {
        plans
            .iter()
            .zip(&shapes)
            .map(|(p, &(n, m))| p.bytes(n, m))
            .sum::<usize>()
            <= budget
    };

    // 8 GiB: the anchor dense with its kernel, the harmful reference truncated to 256 with its kernel
    let p = fit(8 * gib, Storage::Auto).unwrap();
    assert_eq!(
        p,
        vec![
            Plan::Dense { kernel: true },
            Plan::Truncated {
                k: 256,
                kernel: true
            }
        ]
    );
    assert!(within(&p, 8 * gib));
    // 1 GiB: fewer neighbours, no room for their kernel
    let p = fit(gib, Storage::Auto).unwrap();
    assert!(
        matches!(p[1], Plan::Truncated { k, kernel: false } if (8..256).contains(&k)),
        "{p:?}"
    );
    assert!(within(&p, gib));
    // too small even for 8 neighbours: blocks
    let p = fit(50 << 20, Storage::Auto).unwrap();
    assert_eq!(p[1], Plan::Blocked);
    assert!(within(&p, 50 << 20));
    // everything dense when it fits
    let small = [(1_000, 50), (1_000, 5_000)];
    let p = plan(&small, &StorageOptions::default()).unwrap();
    assert_eq!(p, vec![Plan::Dense { kernel: true }; 2]);

    let err = fit(8 * gib, Storage::Dense).unwrap_err();
    assert_eq!(err.kind, ErrorKind::InvalidOption);
    assert!(
        err.message.contains("19073 MiB") && err.message.contains("memory budget"),
        "{}",
        err.message
    );
    let o = StorageOptions {
        storage: Storage::Truncated,
        budget: 10 << 20,
        neighbours: 16,
        ..Default::default()
    };
    let err = plan(&shapes, &o).unwrap_err();
    assert!(
        err.message.contains("needs 76 MiB for 8 neighbours"),
        "{}",
        err.message
    );
    assert!(plan(
        &shapes,
        &StorageOptions {
            neighbours: 0,
            ..Default::default()
        }
    )
    .is_err());
}

#[test]
fn truncated_and_stored_results_do_not_depend_on_the_thread_count() {
    let (x, y, _, a, b) = points(50, 900, 120, 10);
    let o = SinkhornOptions {
        tol: 1e-6,
        ..opts(0.02, storage(Storage::Truncated, 24, true))
    };
    let solve = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        pool.install(|| {
            sinkhorn_points(
                x.view(),
                y.view(),
                CostKind::Cosine,
                Some(&a),
                Some(&b),
                &o,
                WarmStart::default(),
                &Control::default(),
            )
            .unwrap()
        })
    };
    let one = solve(1);
    for threads in [2, 5] {
        let r = solve(threads);
        assert_eq!(
            (r.value, &r.f, &r.g, r.iterations),
            (one.value, &one.f, &one.g, one.iterations),
            "{threads} threads"
        );
    }
}
