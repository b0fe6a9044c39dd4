mod common;

use common::*;
use ndarray::Array2;
use sot_core::{sinkhorn, sinkhorn_symmetric, Control, EpsScaling, SinkhornOptions, WarmStart};

fn run(
    c: &Array2<f32>,
    a: Option<&[f64]>,
    b: Option<&[f64]>,
    o: &SinkhornOptions,
    w: WarmStart,
) -> sot_core::SotError {
    sinkhorn(c.view(), a, b, o, w, &Control::default()).unwrap_err()
}

#[test]
fn every_invalid_input_class_has_its_code_and_index() {
    let c = Array2::<f32>::from_elem((4, 3), 0.5);
    let o = SinkhornOptions::default();
    let none = WarmStart::default();

    let e = run(&c, Some(&[0.25; 3]), None, &o, none);
    assert_eq!(e.code(), "ERR_SHAPE");
    assert!(
        e.message.contains("a has 3 entries but there are 4 points"),
        "{}",
        e.message
    );

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
        SinkhornOptions {
            eps: 0.0,
            ..o.clone()
        },
        SinkhornOptions {
            eps: -1.0,
            ..o.clone()
        },
        SinkhornOptions {
            eps: f64::NAN,
            ..o.clone()
        },
        SinkhornOptions {
            tol: 0.0,
            ..o.clone()
        },
        SinkhornOptions {
            max_iter: 0,
            ..o.clone()
        },
        SinkhornOptions {
            check_every: 0,
            ..o.clone()
        },
        SinkhornOptions {
            eps_scaling: Some(EpsScaling {
                start: None,
                factor: 1.0,
            }),
            ..o.clone()
        },
    ] {
        assert_eq!(
            run(&c, None, None, &bad, none).code(),
            "ERR_OPTION",
            "{bad:?}"
        );
    }

    let e = run(
        &c,
        None,
        None,
        &o,
        WarmStart {
            f: Some(&[0.0; 2]),
            g: None,
        },
    );
    assert_eq!(e.code(), "ERR_SHAPE");
    let e = run(
        &c,
        None,
        None,
        &o,
        WarmStart {
            f: None,
            g: Some(&[0.0, f64::NAN, 0.0]),
        },
    );
    assert_eq!((e.code(), e.index), ("ERR_NON_FINITE", Some(1)));
}

/// The rows of a caller's cost matrix are checked by the first pass as it
/// reads them (no scan of their own): the first NaN or infinity in row-major
/// order is still the one named, whichever of the pass's row groups finds it,
/// with a stored kernel or eps-scaling, and for self-transport.
#[test]
fn the_first_non_finite_cost_is_named_wherever_it_lies() {
    let (n, m) = (2000, 200); // several row groups per pass
    let c = Array2::from_shape_fn((n, m), |(i, j)| ((i * 31 + j * 17) % 97) as f32 / 48.5);
    let plain = SinkhornOptions {
        max_iter: 50,
        ..Default::default()
    };
    let scaled = SinkhornOptions {
        eps_scaling: Some(EpsScaling {
            start: None,
            factor: 0.5,
        }),
        ..plain.clone()
    };
    let mut no_kernel = plain.clone();
    no_kernel.storage.store_kernel = false;
    // (bad entries, the first of them)
    let cases = [
        (vec![(0, 0)], (0, 0)),
        (vec![(n - 1, m - 1)], (n - 1, m - 1)),
        (vec![(1500, 3), (1000, 7)], (1000, 7)),
        (vec![(700, 150), (700, 20)], (700, 20)),
    ];
    for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
        for (at, first) in &cases {
            for o in [&plain, &scaled, &no_kernel] {
                let mut cb = c.clone();
                at.iter().for_each(|&p| cb[p] = bad);
                let e = run(&cb, None, None, o, WarmStart::default());
                assert_eq!(
                    (e.code(), e.index),
                    ("ERR_NON_FINITE", Some(first.0)),
                    "{bad} at {at:?}"
                );
                assert!(
                    e.message
                        .contains(&format!("cost[{}][{}] is {bad}", first.0, first.1)),
                    "{}",
                    e.message
                );
            }
        }
    }
    let sym = Array2::from_shape_fn((600, 600), |(i, j)| (i as f32 - j as f32).abs() / 600.0);
    for (at, first) in [(&[(450, 2), (2, 450)][..], 2), (&[(599, 0)][..], 599)] {
        let mut cb = sym.clone();
        at.iter().for_each(|&p| cb[p] = f32::NAN);
        let e = sinkhorn_symmetric(cb.view(), None, &plain, None, &Control::default()).unwrap_err();
        assert_eq!((e.code(), e.index), ("ERR_NON_FINITE", Some(first)));
    }
}

#[test]
fn never_produces_nan_on_extreme_but_valid_problems() {
    let mut r = rng(9);
    // tiny eps against far-apart points, huge cost scale, one point on each side
    let x = gaussian(&mut r, 50, 3).mapv(|v| v * 100.0);
    let y = gaussian(&mut r, 40, 3).mapv(|v| v * 100.0 + 500.0);
    let c = naive_cost(&x, &y, false).mapv(|v| v as f32);
    for eps in [1e-3, 1.0, 1e6] {
        let o = SinkhornOptions {
            eps,
            max_iter: 200,
            ..Default::default()
        };
        let res = sinkhorn(
            c.view(),
            None,
            None,
            &o,
            WarmStart::default(),
            &Control::default(),
        )
        .unwrap();
        assert!(
            res.value.is_finite() && res.f.iter().chain(&res.g).all(|v| v.is_finite()),
            "eps {eps}"
        );
    }
    let one = Array2::<f32>::from_elem((1, 1), 3.0);
    let res = sinkhorn(
        one.view(),
        None,
        None,
        &SinkhornOptions::default(),
        WarmStart::default(),
        &Control::default(),
    )
    .unwrap();
    assert!(res.converged && (res.value - 3.0).abs() < 1e-12);
}
