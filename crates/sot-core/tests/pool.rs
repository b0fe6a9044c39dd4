//! `pool_rows` against a naive f64 reference, and its errors.
use ndarray::Array2;
use sot_core::{pool_rows, Control, ErrorKind};

fn table() -> Array2<f32> {
    Array2::from_shape_fn((7, 5), |(i, k)| ((i * 5 + k) as f32 * 0.37).sin())
}

#[test]
fn matches_a_naive_weighted_average_direction() {
    let t = table();
    let ids = [0u32, 3, 3, 6, 2, 1, 4, 5];
    let offsets = [0u32, 4, 5, 8];
    let weights = [0.5f32, 1.0, 2.0, 0.25, 1.5, 0.1, 3.0];
    let out = pool_rows(
        t.view(),
        &ids,
        &offsets,
        Some(&weights),
        &Control::default(),
    )
    .unwrap();
    assert_eq!(out.dim(), (3, 5));
    for b in 0..3 {
        let mut acc = [0f64; 5];
        let bag = &ids[offsets[b] as usize..offsets[b + 1] as usize];
        for &id in bag {
            for k in 0..5 {
                acc[k] += weights[id as usize] as f64 * t[[id as usize, k]] as f64;
            }
        }
        // Direction of the weighted *average* is that of the sum.
        let n = bag.len() as f64;
        let avg: Vec<f64> = acc.iter().map(|a| a / n).collect();
        let norm = avg.iter().map(|a| a * a).sum::<f64>().sqrt();
        for k in 0..5 {
            assert!(
                (out[[b, k]] as f64 - avg[k] / norm).abs() < 1e-6,
                "bag {b} coord {k}"
            );
        }
    }
    // Without weights every row counts once; repeats count twice.
    let plain = pool_rows(t.view(), &[3, 3], &[0, 2], None, &Control::default()).unwrap();
    let single = pool_rows(t.view(), &[3], &[0, 1], None, &Control::default()).unwrap();
    for k in 0..5 {
        assert!((plain[[0, k]] - single[[0, k]]).abs() < 1e-7);
    }
}

#[test]
fn bad_bags_are_errors_naming_them() {
    let t = table();
    let ctl = Control::default();
    let e = pool_rows(t.view(), &[1, 2], &[0, 1, 1, 2], None, &ctl).unwrap_err();
    assert_eq!((e.kind, e.index), (ErrorKind::Empty, Some(1)));
    let e = pool_rows(t.view(), &[1, 9], &[0, 2], None, &ctl).unwrap_err();
    assert_eq!((e.kind, e.index), (ErrorKind::Shape, Some(1)));
    let e = pool_rows(t.view(), &[1, 2], &[0, 1], None, &ctl).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Shape);
    let e = pool_rows(t.view(), &[1, 2], &[0, 2], Some(&[1.0; 3]), &ctl).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Shape);
    // Weights that cancel: a zero sum is an error for that bag, not a NaN row.
    let w = [1.0f32; 7];
    let mut z = t.clone();
    z.row_mut(4).fill(0.0);
    let e = pool_rows(z.view(), &[1, 4], &[0, 1, 2], Some(&w), &ctl).unwrap_err();
    assert_eq!((e.kind, e.index), (ErrorKind::Empty, Some(1)));
}
