mod common;

use common::*;
use sot_core::{sinkhorn_divergence, Control, CostKind, DivergenceWarmStart, SinkhornOptions};

fn opts(eps: f64) -> SinkhornOptions {
    SinkhornOptions {
        eps,
        tol: 1e-9,
        max_iter: 20_000,
        ..Default::default()
    }
}

fn div(
    x: &ndarray::Array2<f32>,
    y: &ndarray::Array2<f32>,
    a: Option<&[f64]>,
    b: Option<&[f64]>,
    eps: f64,
) -> sot_core::DivergenceResult {
    sinkhorn_divergence(
        x.view(),
        y.view(),
        a,
        b,
        CostKind::Cosine,
        &opts(eps),
        DivergenceWarmStart::default(),
        &Control::default(),
    )
    .unwrap()
}

#[test]
fn is_zero_on_identical_inputs_and_positive_otherwise() {
    let mut r = rng(11);
    let x = gaussian(&mut r, 40, 6);
    let y = gaussian(&mut r, 30, 6);
    let a = weights(&mut r, 40);
    let same = div(&x, &x, Some(&a), Some(&a), 0.1);
    assert!(same.converged);
    assert!(same.value.abs() < 1e-8, "S(a, a) = {}", same.value);
    assert!(
        same.grad_a.iter().all(|g| g.abs() < 1e-6),
        "{:?}",
        same.grad_a
    );
    let other = div(&x, &y, Some(&a), None, 0.05);
    assert!(other.value > 1e-3 && other.converged);
}

#[test]
fn is_symmetric() {
    for seed in 0..4 {
        let mut r = rng(100 + seed);
        let (x, y) = (gaussian(&mut r, 25, 5), gaussian(&mut r, 35, 5));
        let (a, b) = (weights(&mut r, 25), weights(&mut r, 35));
        let xy = div(&x, &y, Some(&a), Some(&b), 0.1);
        let yx = div(&y, &x, Some(&b), Some(&a), 0.1);
        assert!((xy.value - yx.value).abs() < 1e-8);
        assert!(max_abs_diff(&xy.grad_a, &yx.grad_b) < 1e-6);
    }
}

#[test]
fn matches_the_naive_reference_and_its_gradient_matches_finite_differences() {
    let mut r = rng(7);
    let (x, y) = (gaussian(&mut r, 20, 4), gaussian(&mut r, 15, 4));
    let (a, b) = (weights(&mut r, 20), weights(&mut r, 15));
    let eps = 0.1;
    let reference = |a: &[f64]| {
        let ot = |p: &ndarray::Array2<f32>, q: &ndarray::Array2<f32>, wp: &[f64], wq: &[f64]| {
            naive_sinkhorn(&naive_cost(p, q, true), wp, wq, eps).0
        };
        ot(&x, &y, a, &b) - 0.5 * ot(&x, &x, a, a) - 0.5 * ot(&y, &y, &b, &b)
    };
    let got = div(&x, &y, Some(&a), Some(&b), eps);
    let want = reference(&a);
    assert!((got.value - want).abs() < 1e-6, "{} vs {want}", got.value);
    for (i, k) in [(0, 1), (4, 19), (11, 7)] {
        let h = 2e-3 * a[i].min(a[k]); // truncation error ~h^2, value noise ~1e-12 / h
        let step = |t: f64| {
            let mut w = a.clone();
            w[i] += t;
            w[k] -= t;
            div(&x, &y, Some(&w), Some(&b), eps).value
        };
        let fd = (step(h) - step(-h)) / (2.0 * h);
        let an = got.grad_a[i] - got.grad_a[k];
        assert!(
            (fd - an).abs() <= 1e-4 * an.abs().max(1e-2),
            "pair ({i},{k}): fd {fd} vs {an}"
        );
    }
}

#[test]
fn refuses_cost_matrices_over_the_budget_before_any_work() {
    let mut r = rng(40);
    let (x, y) = (gaussian(&mut r, 3000, 2), gaussian(&mut r, 200, 2));
    let mut o = opts(0.1);
    o.storage.budget = 8 << 20;
    let e = sinkhorn_divergence(
        x.view(),
        y.view(),
        None,
        None,
        CostKind::Cosine,
        &o,
        DivergenceWarmStart::default(),
        &Control::default(),
    )
    .unwrap_err();
    assert_eq!(e.kind, sot_core::ErrorKind::InvalidOption);
    // the cross term fits; the 3000 x 3000 self term (34 MiB) does not
    assert!(
        e.message
            .contains("3000 x 3000 costs needs 34 MiB, over the memory budget of 8 MiB"),
        "{}",
        e.message
    );
}
