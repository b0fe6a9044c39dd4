mod common;

use common::*;
use ndarray::Array2;
use sot_core::{
    sinkhorn, Control, EpsScaling, ErrorKind, SinkhornOptions, StorageOptions, WarmStart,
};
use std::sync::atomic::AtomicBool;
use std::sync::Mutex;

fn opts(eps: f64) -> SinkhornOptions {
    SinkhornOptions {
        eps,
        tol: 1e-9,
        max_iter: 20_000,
        ..Default::default()
    }
}

fn problem(seed: u64, n: usize, m: usize, d: usize) -> (Array2<f64>, Vec<f64>, Vec<f64>) {
    let mut r = rng(seed);
    let (x, y) = (gaussian(&mut r, n, d), gaussian(&mut r, m, d));
    let c = naive_cost(&x, &y, true);
    (c, weights(&mut r, n), weights(&mut r, m))
}

#[test]
fn agrees_with_a_naive_f64_reference_on_random_problems() {
    for (seed, n, m, d, eps) in [
        (1, 30, 20, 8, 0.1),
        (2, 50, 64, 16, 0.05),
        (3, 17, 90, 4, 0.02),
        (4, 64, 3, 32, 0.2),
    ] {
        let (c, a, b) = problem(seed, n, m, d);
        let (v_ref, f_ref, g_ref) = naive_sinkhorn(&c, &a, &b, eps);
        let r = sinkhorn(
            to_f32(&c).view(),
            Some(&a),
            Some(&b),
            &opts(eps),
            WarmStart::default(),
            &Control::default(),
        )
        .unwrap();
        assert!(
            r.converged,
            "seed {seed}: not converged, error {}",
            r.marginal_error
        );
        assert!(
            (r.value - v_ref).abs() < 1e-6 * v_ref.abs().max(1.0),
            "seed {seed}: value {} vs {v_ref}",
            r.value
        );
        // potentials are defined up to (f + k, g - k): compare after fixing that constant
        let k = f_ref[0] - r.f[0];
        let f_shift: Vec<f64> = r.f.iter().map(|v| v + k).collect();
        let g_shift: Vec<f64> = r.g.iter().map(|v| v - k).collect();
        assert!(
            max_abs_diff(&f_shift, &f_ref) < 1e-5,
            "seed {seed}: f differs"
        );
        assert!(
            max_abs_diff(&g_shift, &g_ref) < 1e-5,
            "seed {seed}: g differs"
        );
    }
}

#[test]
fn marginals_are_met_at_convergence() {
    for seed in 10..16 {
        let (c, a, b) = problem(seed, 40 + seed as usize, 25, 12);
        let o = SinkhornOptions {
            eps: 0.05,
            tol: 1e-7,
            ..Default::default()
        };
        let r = sinkhorn(
            to_f32(&c).view(),
            Some(&a),
            Some(&b),
            &o,
            WarmStart::default(),
            &Control::default(),
        )
        .unwrap();
        assert!(r.converged);
        let c32 = to_f32(&c).mapv(|v| v as f64);
        let (exact, other) = exact_and_reported(&c32, &a, &b, &r.f, &r.g, r.eps);
        // exact to the stored kernel's f32 rounding
        assert!(
            exact < 1e-7,
            "seed {seed}: neither marginal is exact ({exact})"
        );
        assert!(other < 2e-7, "seed {seed}: marginal error {other}");
        assert!(
            (other - r.marginal_error).abs() < 1e-7,
            "reported error {} vs {other}",
            r.marginal_error
        );
    }
}

#[test]
fn a_pair_with_exact_rows_is_returned_when_its_pass_measured_it_within_tol() {
    let mut rows_exact = 0;
    for seed in 30..36 {
        let (c, a, b) = problem(seed, 60, 40, 8);
        let (c32, c64) = (to_f32(&c), to_f32(&c).mapv(|v| v as f64));
        for eps in [0.2, 0.05, 0.01] {
            // the kernel formed from the costs at every pass: no f32 rounding of its entries
            let storage = StorageOptions {
                store_kernel: false,
                ..Default::default()
            };
            let o = SinkhornOptions {
                eps,
                tol: 1e-6,
                storage,
                ..Default::default()
            };
            let r = sinkhorn(
                c32.view(),
                Some(&a),
                Some(&b),
                &o,
                WarmStart::default(),
                &Control::default(),
            )
            .unwrap();
            assert!(r.converged, "seed {seed} eps {eps}");
            let (row_err, col_err) = marginal_errors(&c64, &a, &b, &r.f, &r.g, eps);
            let (exact, reported) = if r.passes == r.iterations {
                // the last pass made f from g and measured the columns of (f, g)
                rows_exact += 1;
                (row_err, col_err)
            } else {
                // the last pass only measured the rows of the pair before it
                assert_eq!(r.passes, r.iterations + 1, "seed {seed} eps {eps}");
                (col_err, row_err)
            };
            // exact to the rounding of the exp (1e-11 relative) and of the sums
            assert!(
                exact < 1e-10,
                "seed {seed} eps {eps}: exact side off by {exact}"
            );
            assert!(
                reported < 1e-6 && (reported - r.marginal_error).abs() < 1e-9,
                "seed {seed} eps {eps}: {reported} vs {}",
                r.marginal_error
            );
        }
    }
    assert!(rows_exact > 0, "no solve ended on a pair with exact rows");
    // the returned half update counts as an iteration, never past maxIter
    // (on this problem the columns of the last pass at maxIter 3 meet tol where the rows it measured did not)
    let (c, a, b) = problem(30, 60, 40, 8);
    for max_iter in 1..=4 {
        let o = SinkhornOptions {
            eps: 0.5,
            tol: 1e-4,
            max_iter,
            ..Default::default()
        };
        let r = sinkhorn(
            to_f32(&c).view(),
            Some(&a),
            Some(&b),
            &o,
            WarmStart::default(),
            &Control::default(),
        )
        .unwrap();
        assert!(
            r.iterations <= max_iter && r.passes <= max_iter + 1,
            "maxIter {max_iter}: {} iterations, {} passes",
            r.iterations,
            r.passes
        );
    }
}

#[test]
fn gradient_matches_finite_differences_of_the_value() {
    let (c, a, b) = problem(21, 24, 18, 6);
    let c32 = to_f32(&c);
    let eps = 0.1;
    let value = |w: &[f64]| {
        sinkhorn(
            c32.view(),
            Some(w),
            Some(&b),
            &opts(eps),
            WarmStart::default(),
            &Control::default(),
        )
        .unwrap()
        .value
    };
    let r = sinkhorn(
        c32.view(),
        Some(&a),
        Some(&b),
        &opts(eps),
        WarmStart::default(),
        &Control::default(),
    )
    .unwrap();
    let grad = r.grad_a();
    assert!(
        grad.iter().sum::<f64>().abs() < 1e-9,
        "centred gradient sums to zero"
    );
    // move mass from sample k to sample i: the derivative is grad_i - grad_k
    for (i, k) in [(0, 1), (5, 17), (23, 2), (9, 12)] {
        let h = 2e-3 * a[i].min(a[k]); // truncation error ~h^2, value noise ~1e-12 / h
        let step = |t: f64| {
            let mut w = a.clone();
            w[i] += t;
            w[k] -= t;
            value(&w)
        };
        let fd = (step(h) - step(-h)) / (2.0 * h);
        let an = grad[i] - grad[k];
        assert!(
            (fd - an).abs() <= 1e-4 * an.abs().max(1e-2),
            "pair ({i},{k}): fd {fd} vs analytic {an}"
        );
    }
}

#[test]
fn stays_finite_and_accurate_at_eps_1e_3() {
    for seed in 30..33 {
        let (c, a, b) = problem(seed, 60, 45, 10);
        let o = SinkhornOptions {
            eps: 1e-3,
            tol: 1e-6,
            max_iter: 50_000,
            ..Default::default()
        };
        let r = sinkhorn(
            to_f32(&c).view(),
            Some(&a),
            Some(&b),
            &o,
            WarmStart::default(),
            &Control::default(),
        )
        .unwrap();
        assert!(r.f.iter().chain(&r.g).all(|v| v.is_finite()));
        assert!(
            r.value.is_finite() && r.converged,
            "seed {seed}: error {}",
            r.marginal_error
        );
        let (v_ref, _, _) = naive_sinkhorn(&c, &a, &b, 1e-3);
        assert!(
            (r.value - v_ref).abs() < 1e-5,
            "seed {seed}: {} vs {v_ref}",
            r.value
        );
    }
}

#[test]
fn eps_scaling_reaches_the_same_solution() {
    let (c, a, b) = problem(40, 80, 70, 8);
    let c32 = to_f32(&c);
    let plain = SinkhornOptions {
        eps: 2e-3,
        tol: 1e-7,
        max_iter: 50_000,
        ..Default::default()
    };
    let scaled = SinkhornOptions {
        eps_scaling: Some(EpsScaling {
            start: None,
            factor: 0.5,
        }),
        ..plain.clone()
    };
    let p = sinkhorn(
        c32.view(),
        Some(&a),
        Some(&b),
        &plain,
        WarmStart::default(),
        &Control::default(),
    )
    .unwrap();
    let s = sinkhorn(
        c32.view(),
        Some(&a),
        Some(&b),
        &scaled,
        WarmStart::default(),
        &Control::default(),
    )
    .unwrap();
    assert!(p.converged && s.converged);
    assert!((p.value - s.value).abs() < 1e-6);
    assert_eq!(s.eps, 2e-3);
}

#[test]
fn warm_start_from_a_solution_converges_at_once() {
    let (c, a, b) = problem(50, 100, 60, 16);
    let c32 = to_f32(&c);
    let o = SinkhornOptions {
        eps: 0.02,
        tol: 1e-7,
        ..Default::default()
    };
    let cold = sinkhorn(
        c32.view(),
        Some(&a),
        Some(&b),
        &o,
        WarmStart::default(),
        &Control::default(),
    )
    .unwrap();
    let warm = WarmStart {
        f: Some(&cold.f),
        g: Some(&cold.g),
    };
    let hot = sinkhorn(
        c32.view(),
        Some(&a),
        Some(&b),
        &o,
        warm,
        &Control::default(),
    )
    .unwrap();
    assert!(cold.iterations > 5);
    assert!(
        hot.converged && hot.iterations <= 2,
        "warm start took {} iterations",
        hot.iterations
    );
    assert!((hot.value - cold.value).abs() < 1e-8);
}

#[test]
fn non_convergence_is_reported_not_thrown() {
    let (c, a, b) = problem(60, 50, 50, 8);
    let o = SinkhornOptions {
        eps: 1e-3,
        tol: 1e-12,
        max_iter: 3,
        ..Default::default()
    };
    let r = sinkhorn(
        to_f32(&c).view(),
        Some(&a),
        Some(&b),
        &o,
        WarmStart::default(),
        &Control::default(),
    )
    .unwrap();
    assert!(!r.converged);
    assert_eq!(r.iterations, 3);
    assert!(r.marginal_error > 1e-12 && r.marginal_error.is_finite());
}

#[test]
fn uniform_weights_by_default_and_weights_are_normalised() {
    let (c, _, _) = problem(70, 20, 30, 4);
    let c32 = to_f32(&c);
    let o = SinkhornOptions {
        tol: 1e-8,
        ..Default::default()
    };
    let none = sinkhorn(
        c32.view(),
        None,
        None,
        &o,
        WarmStart::default(),
        &Control::default(),
    )
    .unwrap();
    let ones = sinkhorn(
        c32.view(),
        Some(&[3.0; 20]),
        Some(&[7.0; 30]),
        &o,
        WarmStart::default(),
        &Control::default(),
    )
    .unwrap();
    assert!((none.value - ones.value).abs() < 1e-9);
}

#[test]
fn cancellation_stops_a_running_solve() {
    let (c, a, b) = problem(80, 60, 60, 8);
    let flag = AtomicBool::new(false);
    let calls = Mutex::new(0usize);
    let cb = |_: &sot_core::Progress| {
        *calls.lock().unwrap() += 1;
        flag.store(true, std::sync::atomic::Ordering::Relaxed);
    };
    let ctl = Control::default()
        .with_cancel(&flag)
        .with_progress(&cb, std::time::Duration::ZERO);
    let o = SinkhornOptions {
        eps: 1e-3,
        tol: 1e-12,
        max_iter: 100_000,
        ..Default::default()
    };
    let err = sinkhorn(
        to_f32(&c).view(),
        Some(&a),
        Some(&b),
        &o,
        WarmStart::default(),
        &ctl,
    )
    .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Aborted);
    assert_eq!(
        *calls.lock().unwrap(),
        1,
        "stopped right after the first report"
    );
}

#[test]
fn progress_is_throttled_and_reports_the_end() {
    let (c, a, b) = problem(90, 40, 40, 8);
    let seen = Mutex::new(Vec::new());
    let cb = |p: &sot_core::Progress| seen.lock().unwrap().push((p.iteration, p.error));
    let ctl = Control::default().with_progress(&cb, std::time::Duration::from_secs(3600));
    let o = SinkhornOptions {
        eps: 0.01,
        tol: 1e-8,
        ..Default::default()
    };
    let r = sinkhorn(
        to_f32(&c).view(),
        Some(&a),
        Some(&b),
        &o,
        WarmStart::default(),
        &ctl,
    )
    .unwrap();
    let seen = seen.into_inner().unwrap();
    assert!(r.iterations > 2);
    assert_eq!(
        seen.len(),
        2,
        "first call, then the forced final one: {seen:?}"
    );
    assert_eq!(seen[1], (r.iterations, r.marginal_error));
}

#[test]
fn symmetric_solver_agrees_with_the_reference_and_is_fast() {
    let mut r = rng(95);
    let x = gaussian(&mut r, 40, 6);
    let a = weights(&mut r, 40);
    let c = naive_cost(&x, &x, true);
    let (v_ref, f_ref, _) = naive_sinkhorn(&c, &a, &a, 0.05);
    let res = sot_core::sinkhorn_symmetric(
        to_f32(&c).view(),
        Some(&a),
        &opts(0.05),
        None,
        &Control::default(),
    )
    .unwrap();
    assert!(
        res.converged && res.iterations < 100,
        "{} iterations",
        res.iterations
    );
    assert_eq!(res.f, res.g);
    assert!((res.value - v_ref).abs() < 1e-7);
    assert!(max_abs_diff(&centred(&res.f), &centred(&f_ref)) < 1e-5);
    let rect = Array2::<f32>::zeros((3, 4));
    let e = sot_core::sinkhorn_symmetric(rect.view(), None, &opts(0.05), None, &Control::default())
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::Shape);
}

#[test]
fn overrelaxation_reaches_the_plain_answer_in_fewer_iterations() {
    let (c, a, b) = problem(97, 90, 70, 10);
    let c32 = to_f32(&c);
    for eps in [0.01, 2e-3] {
        // exact columns need the kernel formed from the costs at every pass (see the stored-kernel test)
        let storage = StorageOptions {
            store_kernel: false,
            ..Default::default()
        };
        let on = SinkhornOptions {
            eps,
            tol: 1e-7,
            max_iter: 100_000,
            storage,
            ..Default::default()
        };
        let off = SinkhornOptions {
            overrelax: false,
            ..on.clone()
        };
        let fast = sinkhorn(
            c32.view(),
            Some(&a),
            Some(&b),
            &on,
            WarmStart::default(),
            &Control::default(),
        )
        .unwrap();
        let slow = sinkhorn(
            c32.view(),
            Some(&a),
            Some(&b),
            &off,
            WarmStart::default(),
            &Control::default(),
        )
        .unwrap();
        assert!(fast.converged && slow.converged, "eps {eps}");
        assert!(
            2 * fast.iterations < slow.iterations,
            "eps {eps}: {} vs {} iterations",
            fast.iterations,
            slow.iterations
        );
        assert!((fast.value - slow.value).abs() < 1e-7, "eps {eps}");
        // the returned pair comes from a plain update: one marginal exact, the other's error reported
        let (exact, other) =
            exact_and_reported(&c32.mapv(|v| v as f64), &a, &b, &fast.f, &fast.g, eps);
        assert!(
            exact < 1e-9 && (other - fast.marginal_error).abs() < 1e-9,
            "eps {eps}: {exact} {other}"
        );
    }
}

#[test]
fn results_do_not_depend_on_the_thread_count() {
    let (c, a, b) = problem(98, 700, 300, 12);
    let c32 = to_f32(&c);
    let solve = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        pool.install(|| {
            sinkhorn(
                c32.view(),
                Some(&a),
                Some(&b),
                &opts(0.01),
                WarmStart::default(),
                &Control::default(),
            )
            .unwrap()
        })
    };
    let one = solve(1);
    for threads in [2, 3, 8] {
        let r = solve(threads);
        assert_eq!(
            (r.value, &r.f, &r.g, r.iterations),
            (one.value, &one.f, &one.g, one.iterations),
            "{threads} threads"
        );
    }
}
