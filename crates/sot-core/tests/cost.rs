mod common;

use common::*;
use ndarray::Array2;
use sot_core::{cost_matrix, Control, CostKind, ErrorKind};
use std::sync::atomic::AtomicBool;

#[test]
fn cosine_and_sqeuclidean_match_pairwise_f64() {
    let mut r = rng(3);
    // sizes that straddle the GEMM tile height
    for (n, m, d) in [(1, 1, 1), (7, 300, 5), (513, 33, 64), (260, 260, 384)] {
        let (x, y) = (gaussian(&mut r, n, d), gaussian(&mut r, m, d));
        for (kind, cosine) in [(CostKind::Cosine, true), (CostKind::SqEuclidean, false)] {
            let got = cost_matrix(x.view(), y.view(), kind, &Control::default()).unwrap();
            let want = naive_cost(&x, &y, cosine);
            let scale = if cosine { 1.0 } else { 2.0 * d as f64 };
            let worst = got
                .iter()
                .zip(want.iter())
                .map(|(g, w)| (*g as f64 - w).abs())
                .fold(0.0, f64::max);
            assert!(
                worst < 1e-5 * scale,
                "{kind:?} {n}x{m}x{d}: worst error {worst}"
            );
        }
    }
}

#[test]
fn cosine_costs_hold_at_any_scale_and_are_each_others_transpose() {
    // raw dot products where the norms allow, unit copies where they would
    // over- or underflow f32: the same costs either way
    let mut r = rng(11);
    let (x, y) = (gaussian(&mut r, 300, 48), gaussian(&mut r, 70, 48));
    let want = naive_cost(&x, &y, true);
    for (sx, sy) in [
        (1.0f32, 1.0f32),
        (1e-3, 1e4),
        (1e-30, 1.0),
        (1.0, 1e30),
        (1e-20, 1e20),
    ] {
        let (xs, ys) = (x.mapv(|v| v * sx), y.mapv(|v| v * sy));
        let ctl = Control::default();
        let got = cost_matrix(xs.view(), ys.view(), CostKind::Cosine, &ctl).unwrap();
        let worst = got
            .iter()
            .zip(want.iter())
            .map(|(g, w)| (*g as f64 - w).abs())
            .fold(0.0, f64::max);
        assert!(worst < 1e-5, "scales {sx:e}, {sy:e}: worst error {worst}");
        let back = cost_matrix(ys.view(), xs.view(), CostKind::Cosine, &ctl).unwrap();
        assert_eq!(got, back.t(), "scales {sx:e}, {sy:e}");
    }
}

#[test]
fn costs_are_clamped_to_their_ranges() {
    let x = Array2::from_shape_vec((2, 3), vec![1.0, 2.0, 3.0, -1.0, -2.0, -3.0]).unwrap();
    let c = cost_matrix(x.view(), x.view(), CostKind::Cosine, &Control::default()).unwrap();
    assert!(c.iter().all(|v| (0.0..=2.0).contains(v)));
    assert_eq!(c[[0, 0]], 0.0);
    assert_eq!(c[[0, 1]], 2.0);
    let e = cost_matrix(
        x.view(),
        x.view(),
        CostKind::SqEuclidean,
        &Control::default(),
    )
    .unwrap();
    assert_eq!(e[[1, 1]], 0.0);
    assert!((e[[0, 1]] - 56.0).abs() < 1e-4);
}

#[test]
fn bad_inputs_are_rejected_with_the_offending_index() {
    let mut r = rng(5);
    let x = gaussian(&mut r, 10, 4);
    let y = gaussian(&mut r, 6, 3);
    let ctl = Control::default();
    let e = cost_matrix(x.view(), y.view(), CostKind::Cosine, &ctl).unwrap_err();
    assert_eq!((e.kind, e.code()), (ErrorKind::Shape, "ERR_SHAPE"));

    let mut bad = gaussian(&mut r, 10, 4);
    bad[[7, 2]] = f32::NAN;
    let e = cost_matrix(x.view(), bad.view(), CostKind::Cosine, &ctl).unwrap_err();
    assert_eq!((e.kind, e.index), (ErrorKind::NonFinite, Some(7)));
    assert!(e.message.contains("y[7][2]"), "{}", e.message);

    let mut zero = gaussian(&mut r, 5, 4);
    zero.row_mut(3).fill(0.0);
    let e = cost_matrix(zero.view(), x.view(), CostKind::Cosine, &ctl).unwrap_err();
    assert_eq!((e.kind, e.index), (ErrorKind::ZeroNorm, Some(3)));
    // a zero vector is fine for the Euclidean cost
    assert!(cost_matrix(zero.view(), x.view(), CostKind::SqEuclidean, &ctl).is_ok());

    let empty = Array2::<f32>::zeros((0, 4));
    assert_eq!(
        cost_matrix(empty.view(), x.view(), CostKind::Cosine, &ctl)
            .unwrap_err()
            .kind,
        ErrorKind::Empty
    );
    assert_eq!(
        CostKind::parse("manhattan").unwrap_err().kind,
        ErrorKind::InvalidOption
    );
}

#[test]
fn cancellation_is_honoured() {
    let mut r = rng(6);
    let x = gaussian(&mut r, 2000, 8);
    let flag = AtomicBool::new(true);
    let e = cost_matrix(
        x.view(),
        x.view(),
        CostKind::Cosine,
        &Control::default().with_cancel(&flag),
    )
    .unwrap_err();
    assert_eq!(e.kind, ErrorKind::Aborted);
}
