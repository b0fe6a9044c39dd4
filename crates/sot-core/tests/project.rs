mod common;

use common::*;
use ndarray::{Array1, Array2, Axis};
use rand::Rng;
use sot_core::project::principal_components;
use sot_core::{project_2d, Control, ErrorKind};
use std::sync::atomic::AtomicBool;

/// Points with decreasing spread along random orthogonal-ish directions, offset from the origin.
fn anisotropic(seed: u64, n: usize, d: usize, scales: &[f32]) -> Array2<f32> {
    let mut r = rng(seed);
    let g = gaussian(&mut r, n, d);
    let offset: Vec<f32> = (0..d).map(|_| r.random_range(-3.0..3.0)).collect();
    let mut x = g.clone();
    for mut row in x.outer_iter_mut() {
        for (j, v) in row.iter_mut().enumerate() {
            *v = *v * scales.get(j).copied().unwrap_or(0.3) + offset[j];
        }
    }
    // rotate so the axes are not the components: mix neighbouring coordinates
    let mut y = x.clone();
    for mut row in y.outer_iter_mut() {
        let orig = row.to_owned();
        for j in 0..d {
            row[j] = 0.8 * orig[j] + 0.6 * orig[(j + 1) % d];
        }
    }
    y
}

/// Eigen-decomposition of a symmetric f64 matrix by cyclic Jacobi (descending values).
fn naive_eigen(a: &Array2<f64>) -> (Vec<f64>, Array2<f64>) {
    let k = a.nrows();
    let mut a = a.clone();
    let mut q = Array2::<f64>::eye(k);
    for _ in 0..200 {
        let off: f64 = (0..k)
            .flat_map(|i| (0..k).map(move |j| (i, j)))
            .filter(|(i, j)| i != j)
            .map(|(i, j)| a[[i, j]].powi(2))
            .sum();
        if off < 1e-28 {
            break;
        }
        for p in 0..k {
            for r in p + 1..k {
                if a[[p, r]].abs() < 1e-300 {
                    continue;
                }
                let phi = 0.5 * (2.0 * a[[p, r]]).atan2(a[[r, r]] - a[[p, p]]);
                let (s, c) = phi.sin_cos();
                let mut rot = Array2::<f64>::eye(k);
                rot[[p, p]] = c;
                rot[[r, r]] = c;
                rot[[p, r]] = s;
                rot[[r, p]] = -s;
                a = rot.t().dot(&a).dot(&rot);
                q = q.dot(&rot);
            }
        }
    }
    let mut order: Vec<usize> = (0..k).collect();
    order.sort_by(|&i, &j| a[[j, j]].total_cmp(&a[[i, i]]));
    (
        order.iter().map(|&i| a[[i, i]]).collect(),
        Array2::from_shape_fn((k, k), |(i, c)| q[[i, order[c]]]),
    )
}

fn centred(x: &Array2<f32>) -> Array2<f64> {
    let x = x.mapv(|v| v as f64);
    let mean: Array1<f64> = x.mean_axis(Axis(0)).unwrap();
    x - &mean
}

/// Scores on the top two components from the covariance, up to sign.
fn reference_scores(x: &Array2<f32>) -> Array2<f64> {
    let xc = centred(x);
    let (_, v) = naive_eigen(&xc.t().dot(&xc));
    xc.dot(&v.slice(ndarray::s![.., ..2]))
}

fn assert_close_up_to_sign(got: &Array2<f32>, want: &Array2<f64>, tol: f64) {
    assert_eq!(got.dim(), want.dim());
    for c in 0..2 {
        let scale = want.column(c).iter().map(|v| v.abs()).fold(0.0, f64::max);
        let err = |sign: f64| {
            got.column(c)
                .iter()
                .zip(want.column(c).iter())
                .map(|(g, w)| (*g as f64 - sign * w).abs())
                .fold(0.0, f64::max)
        };
        let worst = err(1.0).min(err(-1.0));
        assert!(
            worst <= tol * scale,
            "component {c}: worst error {worst} (scale {scale})"
        );
    }
}

#[test]
fn matches_a_naive_covariance_eigendecomposition() {
    for (seed, n, d) in [(1, 400, 12), (2, 9000, 20), (3, 50, 3)] {
        let x = anisotropic(seed, n, d, &[4.0, 2.0, 1.0]);
        let got = project_2d(x.view(), &Control::default()).unwrap();
        assert_close_up_to_sign(&got, &reference_scores(&x), 1e-5);
    }
}

#[test]
fn high_dimensions_and_few_rows_iterate_on_the_rows() {
    // d above the covariance route, or too few rows per dimension for it:
    // compare with the Gram matrix (n x n), whose eigenvectors scaled by
    // sqrt(eigenvalue) are the scores
    // (40 x 20,000: blocks of 26 rows, two parallel groups)
    for (seed, n, d) in [(4, 40, 2100), (6, 40, 2048), (7, 40, 512), (8, 40, 20_000)] {
        let x = anisotropic(seed, n, d, &[6.0, 3.0, 1.0]);
        let got = project_2d(x.view(), &Control::default()).unwrap();
        let xc = centred(&x);
        let (vals, u) = naive_eigen(&xc.dot(&xc.t()));
        let want = Array2::from_shape_fn((n, 2), |(i, c)| u[[i, c]] * vals[c].sqrt());
        assert_close_up_to_sign(&got, &want, 1e-4);
    }
}

fn on_threads<T: Send>(threads: usize, f: impl FnOnce() -> T + Send) -> T {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap()
        .install(f)
}

#[test]
fn signs_follow_the_largest_loading_and_results_do_not_depend_on_threads() {
    let x = anisotropic(5, 20_000, 16, &[3.0, 2.0]);
    let run = |t: usize| on_threads(t, || project_2d(x.view(), &Control::default()).unwrap());
    let (a, b) = (run(1), run(2));
    assert_eq!(
        a.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
        b.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
    );
    let c = principal_components(x.view(), 2, &Control::default()).unwrap();
    for col in c.vectors.columns() {
        let big = col
            .iter()
            .cloned()
            .fold(0.0f64, |m, v| if v.abs() > m.abs() { v } else { m });
        assert!(big > 0.0);
        assert!((col.dot(&col) - 1.0).abs() < 1e-9);
    }
    assert!(c.values[0] >= c.values[1]);
    // flipping every point flips nothing: the convention is on the loadings
    let neg = x.mapv(|v| -v);
    let pn = project_2d(neg.view(), &Control::default()).unwrap();
    let worst = a
        .iter()
        .zip(pn.iter())
        .map(|(p, q)| (p + q).abs())
        .fold(0.0f32, f32::max);
    assert!(
        worst < 1e-3,
        "scores of -x should be minus those of x: {worst}"
    );
}

#[test]
fn passes_over_wide_rows_do_not_depend_on_threads() {
    // the row route, split into parallel groups that a small set now has too
    let x = anisotropic(9, 2000, 3000, &[5.0, 2.5, 1.0]);
    let run = |t: usize| on_threads(t, || project_2d(x.view(), &Control::default()).unwrap());
    let bits = |a: Array2<f32>| a.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
    let one = bits(run(1));
    assert_eq!(one, bits(run(2)));
    assert_eq!(one, bits(run(3)));
}

#[test]
fn degenerate_sets_give_zero_coordinates_not_nan() {
    let one = Array2::from_shape_vec((1, 3), vec![1.0f32, 2.0, 3.0]).unwrap();
    assert_eq!(
        project_2d(one.view(), &Control::default()).unwrap(),
        Array2::<f32>::zeros((1, 2))
    );
    let same = Array2::from_elem((10, 4), 0.5f32);
    assert_eq!(
        project_2d(same.view(), &Control::default()).unwrap(),
        Array2::<f32>::zeros((10, 2))
    );
    let line = Array2::from_shape_fn((5, 1), |(i, _)| i as f32);
    let p = project_2d(line.view(), &Control::default()).unwrap();
    assert_eq!(p.column(1).to_vec(), vec![0.0; 5]);
    assert_eq!(p.column(0).to_vec(), vec![-2.0, -1.0, 0.0, 1.0, 2.0]);
    // rank one in 3-D: the second coordinate is zero
    let r1 = Array2::from_shape_fn((6, 3), |(i, j)| (i as f32) * [1.0, 2.0, -1.0][j]);
    let p = project_2d(r1.view(), &Control::default()).unwrap();
    assert!(p.iter().all(|v| v.is_finite()));
    assert!(p.column(1).iter().all(|v| v.abs() < 1e-5));
}

#[test]
fn bad_inputs_and_cancellation() {
    let empty = Array2::<f32>::zeros((0, 3));
    assert_eq!(
        project_2d(empty.view(), &Control::default())
            .unwrap_err()
            .kind,
        ErrorKind::Empty
    );
    let mut x = Array2::<f32>::ones((4, 2));
    x[[2, 1]] = f32::NAN;
    let e = project_2d(x.view(), &Control::default()).unwrap_err();
    assert_eq!((e.kind, e.index), (ErrorKind::NonFinite, Some(2)));
    let flag = AtomicBool::new(true);
    let y = anisotropic(6, 100, 4, &[2.0]);
    assert_eq!(
        project_2d(y.view(), &Control::default().with_cancel(&flag))
            .unwrap_err()
            .kind,
        ErrorKind::Aborted
    );
}
