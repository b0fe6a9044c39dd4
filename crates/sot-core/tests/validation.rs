mod common;

use common::*;
use ndarray::Array2;
use sot_core::{sinkhorn, Control, EpsScaling, SinkhornOptions, WarmStart};

fn run(c: &Array2<f32>, a: Option<&[f64]>, b: Option<&[f64]>, o: &SinkhornOptions, w: WarmStart) -> sot_core::SotError {
    sinkhorn(c.view(), a, b, o, w, &Control::default()).unwrap_err()
}

#[test]
fn every_invalid_input_class_has_its_code_and_index() {
    let c = Array2::<f32>::from_elem((4, 3), 0.5);
    let o = SinkhornOptions::default();
    let none = WarmStart::default();

    let e = run(&c, Some(&[0.25; 3]), None, &o, none);
    assert_eq!(e.code(), "ERR_SHAPE");
    assert!(e.message.contains("a has 3 entries but there are 4 points"), "{}", e.message);

    let e = run(&c, Some(&[0.25, 0.25, -1.0, 0.25]), None, &o, none);
    assert_eq!((e.code(), e.index), ("ERR_WEIGHT", Some(2)));
    let e = run(&c, None, Some(&[1.0, 0.0, 1.0]), &o, none);
    assert_eq!((e.code(), e.index), ("ERR_WEIGHT", Some(1)));
    let e = run(&c, None, Some(&[1.0, f64::NAN, 1.0]), &o, none);
    assert_eq!(e.code(), "ERR_WEIGHT");

    let mut bad = c.clone();
    bad[[3, 1]] = f32::INFINITY;
    let e = run(&bad, None, None, &o, none);
    assert_eq!((e.code(), e.index), ("ERR_NON_FINITE", Some(3)));
    assert!(e.message.contains("cost[3][1]"));

    let empty = Array2::<f32>::zeros((0, 3));
    assert_eq!(run(&empty, None, None, &o, none).code(), "ERR_EMPTY");

    for bad in [
        SinkhornOptions { eps: 0.0, ..o.clone() },
        SinkhornOptions { eps: -1.0, ..o.clone() },
        SinkhornOptions { eps: f64::NAN, ..o.clone() },
        SinkhornOptions { tol: 0.0, ..o.clone() },
        SinkhornOptions { max_iter: 0, ..o.clone() },
        SinkhornOptions { check_every: 0, ..o.clone() },
        SinkhornOptions { eps_scaling: Some(EpsScaling { start: None, factor: 1.0 }), ..o.clone() },
    ] {
        assert_eq!(run(&c, None, None, &bad, none).code(), "ERR_OPTION", "{bad:?}");
    }

    let e = run(&c, None, None, &o, WarmStart { f: Some(&[0.0; 2]), g: None });
    assert_eq!(e.code(), "ERR_SHAPE");
    let e = run(&c, None, None, &o, WarmStart { f: None, g: Some(&[0.0, f64::NAN, 0.0]) });
    assert_eq!((e.code(), e.index), ("ERR_NON_FINITE", Some(1)));
}

#[test]
fn never_produces_nan_on_extreme_but_valid_problems() {
    let mut r = rng(9);
    // tiny eps against far-apart points, huge cost scale, one point on each side
    let x = gaussian(&mut r, 50, 3).mapv(|v| v * 100.0);
    let y = gaussian(&mut r, 40, 3).mapv(|v| v * 100.0 + 500.0);
    let c = naive_cost(&x, &y, false).mapv(|v| v as f32);
    for eps in [1e-3, 1.0, 1e6] {
        let o = SinkhornOptions { eps, max_iter: 200, ..Default::default() };
        let res = sinkhorn(c.view(), None, None, &o, WarmStart::default(), &Control::default()).unwrap();
        assert!(res.value.is_finite() && res.f.iter().chain(&res.g).all(|v| v.is_finite()), "eps {eps}");
    }
    let one = Array2::<f32>::from_elem((1, 1), 3.0);
    let res = sinkhorn(one.view(), None, None, &SinkhornOptions::default(), WarmStart::default(), &Control::default())
        .unwrap();
    assert!(res.converged && (res.value - 3.0).abs() < 1e-12);
}
