//! Property-based tests of the numeric entry points (proptest).
//!
//! Each property runs `PROPTEST_CASES` cases (default below: a few seconds in
//! all on two cores) from proptest's deterministic default seed, so CI runs are
//! reproducible. Run longer with e.g.
//! `PROPTEST_CASES=5000 cargo test -p sot-core --release --test prop_numerics`;
//! a failure prints the shrunk counter-example and is saved under
//! `proptest-regressions/` for replay.

mod common;

use common::{naive_cost, naive_sinkhorn};
use ndarray::Array2;
use proptest::prelude::*;
use sot_core::{
    cost_matrix, embed_texts, learn_weights, select_top_k, sinkhorn, sinkhorn_divergence, Control,
    CostKind, DivergenceWarmStart, EmbedOptions, ErrorKind, Keep, LearnerOptions, Reference, Sets,
    SinkhornOptions, WarmStart,
};

fn cases(default: u32) -> ProptestConfig {
    let n = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default);
    ProptestConfig {
        cases: n,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// An `n x d` matrix with coordinates in [-scale, scale] and no zero row.
fn points(
    n: std::ops::RangeInclusive<usize>,
    d: usize,
    scale: f32,
) -> impl Strategy<Value = Array2<f32>> {
    n.prop_flat_map(move |n| proptest::collection::vec(-scale..scale, n * d))
        .prop_map(move |v| {
            let n = v.len() / d;
            let mut m = Array2::from_shape_vec((n, d), v).unwrap();
            for mut r in m.outer_iter_mut() {
                r[0] += scale * 1.5; // keeps every row away from zero (a direction for the cosine cost)
            }
            m
        })
}

fn weights(n: usize) -> impl Strategy<Value = Vec<f64>> {
    proptest::collection::vec(0.05f64..1.0, n).prop_map(|w| {
        let s: f64 = w.iter().sum();
        w.into_iter().map(|v| v / s).collect()
    })
}

/// Two point sets of a common dimension.
fn pair() -> impl Strategy<Value = (Array2<f32>, Array2<f32>)> {
    (1usize..=6).prop_flat_map(|d| (points(1..=12, d, 3.0), points(1..=12, d, 3.0)))
}

fn ctl() -> Control<'static> {
    Control::default()
}

proptest! {
    #![proptest_config(cases(256))]

    /// The GEMM-tiled cost matrix equals the pair-by-pair f64 definition.
    #[test]
    fn cost_matrix_matches_naive((x, y) in pair(), cosine in any::<bool>()) {
        let kind = if cosine { CostKind::Cosine } else { CostKind::SqEuclidean };
        let c = cost_matrix(x.view(), y.view(), kind, &ctl()).unwrap();
        let r = naive_cost(&x, &y, cosine);
        prop_assert_eq!(c.dim(), r.dim());
        for ((i, j), v) in r.indexed_iter() {
            let tol = if cosine { 2e-5 } else { 1e-5 * (1.0 + v.abs() + 4.0 * x.row(i).iter().chain(y.row(j).iter()).map(|a| (*a as f64).powi(2)).sum::<f64>()) };
            let got = c[[i, j]] as f64;
            prop_assert!((got - v.max(0.0)).abs() <= tol, "C[{i}][{j}] = {got}, naive {v}");
            prop_assert!(got >= 0.0 && got.is_finite());
            if cosine { prop_assert!(got <= 2.0); }
        }
    }

    /// A converged solve has both marginals right and the same value as a textbook f64 solver.
    #[test]
    fn sinkhorn_marginals_and_value((x, y, a, b) in weighted_pair(), eps in 0.05f64..2.0) {
        let (n, m) = (x.nrows(), y.nrows());
        let c = cost_matrix(x.view(), y.view(), CostKind::Cosine, &ctl()).unwrap();
        let opts = SinkhornOptions { eps, tol: 1e-9, max_iter: 20_000, ..SinkhornOptions::default() };
        let r = sinkhorn(c.view(), Some(&a), Some(&b), &opts, WarmStart::default(), &ctl()).unwrap();
        prop_assert!(r.converged, "did not converge: error {}", r.marginal_error);
        let p = |i: usize, j: usize| a[i] * b[j] * ((r.f[i] + r.g[j] - c[[i, j]] as f64) / eps).exp();
        let row_err: f64 = (0..n).map(|i| ((0..m).map(|j| p(i, j)).sum::<f64>() - a[i]).abs()).sum();
        let col_err: f64 = (0..m).map(|j| ((0..n).map(|i| p(i, j)).sum::<f64>() - b[j]).abs()).sum();
        prop_assert!(row_err < 1e-7 && col_err < 1e-7, "marginal errors {row_err} {col_err}");
        let c64 = c.mapv(|v| v as f64);
        let (value, _, _) = naive_sinkhorn(&c64, &a, &b, eps);
        prop_assert!((r.value - value).abs() <= 1e-7 * (1.0 + value.abs()), "value {} vs naive {}", r.value, value);
        prop_assert!(r.value.is_finite() && r.f.iter().chain(r.g.iter()).all(|v| v.is_finite()));
        // The gradient is centred.
        prop_assert!(r.grad_a().iter().sum::<f64>().abs() < 1e-9 * n as f64);
    }

    /// The debiased divergence is ~0 on identical inputs, symmetric, and not (meaningfully) negative.
    #[test]
    fn divergence_zero_symmetric_nonnegative((x, y) in pair(), eps in 0.05f64..1.0) {
        let opts = SinkhornOptions { eps, tol: 1e-10, max_iter: 20_000, ..SinkhornOptions::default() };
        let div = |p: &Array2<f32>, q: &Array2<f32>| {
            sinkhorn_divergence(p.view(), q.view(), None, None, CostKind::Cosine, &opts, DivergenceWarmStart::default(), &ctl()).unwrap()
        };
        let s_xx = div(&x, &x);
        prop_assert!(s_xx.value.abs() < 1e-7, "S(x, x) = {}", s_xx.value);
        let s_xy = div(&x, &y);
        let s_yx = div(&y, &x);
        prop_assert!(s_xy.converged && s_yx.converged);
        prop_assert!((s_xy.value - s_yx.value).abs() < 1e-7 * (1.0 + s_xy.value.abs()), "S(x,y) = {} but S(y,x) = {}", s_xy.value, s_yx.value);
        prop_assert!(s_xy.value > -1e-7, "S(x, y) = {}", s_xy.value);
    }

    /// Top-K: exactly K kept, ranks a permutation, every kept score >= every dropped one,
    /// training weights mean 1 over the kept and 0 elsewhere; K = 0 and K > n are option errors.
    #[test]
    fn selection_invariants(
        scores in proptest::collection::vec(prop_oneof![8 => -1e6f64..1e6, 1 => Just(f64::INFINITY), 1 => Just(f64::NEG_INFINITY), 1 => Just(0.0)], 1..60),
        kf in 0.0f64..1.0,
        with_weights in any::<bool>(),
    ) {
        let n = scores.len();
        let k = 1 + ((kf * n as f64) as usize).min(n - 1);
        let w: Vec<f64> = scores.iter().enumerate().map(|(i, _)| 0.1 + (i % 7) as f64).collect();
        let sel = select_top_k(&scores, Keep::Count(k), with_weights.then_some(&w[..])).unwrap();
        prop_assert_eq!(sel.k, k);
        prop_assert_eq!(sel.kept.iter().filter(|v| **v).count(), k);
        let mut seen = vec![false; n];
        for (r, &i) in sel.order.iter().enumerate() {
            prop_assert!(!seen[i]);
            seen[i] = true;
            prop_assert_eq!(sel.rank[i], r);
            prop_assert_eq!(sel.kept[i], r < k);
        }
        let min_kept = (0..n).filter(|&i| sel.kept[i]).map(|i| scores[i]).fold(f64::INFINITY, f64::min);
        let max_dropped = (0..n).filter(|&i| !sel.kept[i]).map(|i| scores[i]).fold(f64::NEG_INFINITY, f64::max);
        prop_assert!(min_kept >= max_dropped);
        let mean: f64 = (0..n).filter(|&i| sel.kept[i]).map(|i| sel.train_weight[i]).sum::<f64>() / k as f64;
        prop_assert!((mean - 1.0).abs() < 1e-9);
        prop_assert!((0..n).all(|i| sel.kept[i] || sel.train_weight[i] == 0.0));
        for bad in [0, n + 1] {
            let e = select_top_k(&scores, Keep::Count(bad), None).unwrap_err();
            prop_assert_eq!(e.kind, ErrorKind::InvalidOption);
        }
    }

    /// The learner returns positive finite weights summing to 1, with finite pull/push.
    #[test]
    fn learner_weights_on_simplex(d in 2usize..5, seed in any::<u64>(), lambda in 0.0f64..3.0, tau in 0.05f64..1.0) {
        let mut r = common::rng(seed);
        let (x, a, h) = (common::gaussian(&mut r, 24, d), common::gaussian(&mut r, 6, d), common::gaussian(&mut r, 6, d));
        prop_assume!(x.outer_iter().chain(a.outer_iter()).chain(h.outer_iter()).all(|row| row.iter().any(|v| *v != 0.0)));
        let sets = Sets { downstream: x.view(), anchor: Some(Reference { points: a.view(), weights: None }), harmful: Reference { points: h.view(), weights: None } };
        let res = learn_weights(&sets, &LearnerOptions { lambda, tau, max_steps: 60, ..LearnerOptions::default() }, &ctl()).unwrap();
        prop_assert_eq!(res.weights.len(), 24);
        prop_assert!(res.weights.iter().all(|w| w.is_finite() && *w > 0.0));
        prop_assert!((res.weights.iter().sum::<f64>() - 1.0).abs() < 1e-9);
        prop_assert!(res.pull.iter().chain(res.push.iter()).all(|v| v.is_finite()));
    }

    /// The embedder is a function of the text alone: the same bits on every call, in any
    /// batch and on any thread count; rows are unit vectors; a text without words is ERR_EMPTY.
    #[test]
    fn embedder_deterministic(texts in proptest::collection::vec("\\PC{0,40}", 1..12), dim in 8usize..64) {
        let refs: Vec<&str> = texts.iter().map(|s| s.as_str()).collect();
        let opts = EmbedOptions { dim, ..EmbedOptions::default() };
        let has_word = |t: &str| t.chars().any(char::is_alphanumeric);
        match refs.iter().position(|t| !has_word(t)) {
            Some(i) => {
                let e = embed_texts(&refs, &opts, None, &ctl()).unwrap_err();
                prop_assert_eq!(e.kind, ErrorKind::Empty);
                prop_assert_eq!(e.index, Some(i));
            }
            None => {
                let one = rayon::ThreadPoolBuilder::new().num_threads(1).build().unwrap();
                let e1 = one.install(|| embed_texts(&refs, &opts, None, &ctl()).unwrap());
                let e2 = embed_texts(&refs, &opts, None, &ctl()).unwrap();
                prop_assert_eq!(&e1, &e2);
                for (i, t) in refs.iter().enumerate() {
                    let alone = embed_texts(&[t], &opts, None, &ctl()).unwrap();
                    prop_assert_eq!(alone.row(0), e1.row(i));
                    let norm: f64 = e1.row(i).iter().map(|v| (*v as f64).powi(2)).sum::<f64>().sqrt();
                    prop_assert!((norm - 1.0).abs() < 1e-5, "row {i} has norm {norm}");
                }
            }
        }
    }

    /// Points too large for the squared Euclidean cost are refused up front (ERR_NON_FINITE
    /// naming the row) instead of giving inf or 0 costs.
    #[test]
    fn huge_points_are_refused_not_overflowed(exp in 19i32..38, row in 0usize..4) {
        let mut x = Array2::<f32>::from_elem((4, 3), 1.0);
        x[[row, 1]] = 10f32.powi(exp);
        let y = Array2::<f32>::from_elem((2, 3), -1.0);
        match cost_matrix(x.view(), y.view(), CostKind::SqEuclidean, &ctl()) {
            Ok(c) => {
                prop_assert!(c.iter().all(|v| v.is_finite()));
                prop_assert!(c[[row, 0]] > 0.5 * 10f32.powi(exp).powi(2));
            }
            Err(e) => {
                prop_assert_eq!(e.kind, ErrorKind::NonFinite);
                prop_assert_eq!(e.index, Some(row));
            }
        }
        // The cosine cost is scale-free: always fine.
        let c = cost_matrix(x.view(), y.view(), CostKind::Cosine, &ctl()).unwrap();
        prop_assert!(c.iter().all(|v| v.is_finite() && (0.0..=2.0).contains(v)));
    }
}

/// Two point sets with random positive weights.
fn weighted_pair() -> impl Strategy<Value = (Array2<f32>, Array2<f32>, Vec<f64>, Vec<f64>)> {
    pair().prop_flat_map(|(x, y)| {
        let (n, m) = (x.nrows(), y.nrows());
        (Just(x), Just(y), weights(n), weights(m))
    })
}
