mod common;

use common::*;
use ndarray::{concatenate, Array2, Axis};
use rand::Rng;
use sot_core::*;

/// The k nearest by a naive f64 cost, ties to the lower index.
fn naive_nearest(c: &Array2<f64>, row: usize, k: usize) -> Vec<(usize, f64)> {
    let mut all: Vec<(usize, f64)> = (0..c.ncols()).map(|j| (j, c[[row, j]])).collect();
    all.sort_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)));
    all.truncate(k);
    all
}

#[test]
fn nearest_references_match_a_naive_f64_search() {
    let mut r = rng(7);
    // 600 asked rows: more than one tile of rows, in an order that is not sorted.
    let x = gaussian(&mut r, 700, 24);
    let refs = gaussian(&mut r, 300, 24);
    let rows: Vec<usize> = (0..600).map(|_| r.random_range(0..700)).collect();
    for (kind, cosine) in [(CostKind::Cosine, true), (CostKind::SqEuclidean, false)] {
        let c = naive_cost(&x, &refs, cosine);
        let got =
            nearest_references(x.view(), refs.view(), &rows, 5, kind, &Control::default()).unwrap();
        assert_eq!(got.k, 5);
        for (i, &row) in rows.iter().enumerate() {
            let want = naive_nearest(&c, row, 5);
            for (j, w) in want.iter().enumerate() {
                let (gi, gc) = (got.index[i * 5 + j] as usize, got.cost[i * 5 + j] as f64);
                let scale = if cosine { 1.0 } else { 1.0 + w.1.abs() };
                assert!(
                    (gc - w.1).abs() <= 1e-5 * scale,
                    "{kind:?} row {row} #{j}: cost {gc} vs {}",
                    w.1
                );
                // f32 tiles may swap two references whose costs agree to f32 precision
                if gi != w.0 {
                    assert!(
                        (c[[row, gi]] - w.1).abs() <= 1e-5 * scale,
                        "{kind:?} row {row} #{j}: {gi} vs {}",
                        w.0
                    );
                }
            }
            for j in 1..5 {
                assert!(got.cost[i * 5 + j - 1] <= got.cost[i * 5 + j], "ascending");
            }
        }
    }
}

#[test]
fn nearest_references_cap_k_and_refuse_bad_rows() {
    let mut r = rng(1);
    let x = gaussian(&mut r, 10, 4);
    let refs = gaussian(&mut r, 3, 4);
    let got = nearest_references(
        x.view(),
        refs.view(),
        &[0, 9],
        8,
        CostKind::Cosine,
        &Control::default(),
    )
    .unwrap();
    assert_eq!(got.k, 3);
    let mut seen = got.index[..3].to_vec();
    seen.sort();
    assert_eq!(seen, vec![0, 1, 2]);
    let e = nearest_references(
        x.view(),
        refs.view(),
        &[10],
        2,
        CostKind::Cosine,
        &Control::default(),
    )
    .unwrap_err();
    assert_eq!(e.kind, ErrorKind::InvalidOption);
    assert!(e.message.contains("row 10"), "{}", e.message);
    let e = nearest_references(
        x.view(),
        refs.view(),
        &[0],
        0,
        CostKind::Cosine,
        &Control::default(),
    )
    .unwrap_err();
    assert_eq!(e.kind, ErrorKind::InvalidOption);
}

#[test]
fn contributions_add_up_to_the_learned_log_weight() {
    let mut r = rng(3);
    let d = 16;
    let task = gaussian(&mut r, 1, d);
    let harm = gaussian(&mut r, 1, d);
    let around = |r: &mut rand::rngs::SmallRng, c: &Array2<f32>, n: usize| {
        c.broadcast((n, d)).unwrap().to_owned() + gaussian(r, n, d) * 0.3
    };
    let clean = around(&mut r, &task, 120);
    let bad = around(&mut r, &harm, 12);
    let downstream = concatenate(Axis(0), &[clean.view(), bad.view()]).unwrap();
    let anchor = around(&mut r, &task, 30);
    let harmful = around(&mut r, &harm, 30);
    let sets = Sets {
        downstream: downstream.view(),
        anchor: Some(Reference {
            points: anchor.view(),
            weights: None,
        }),
        harmful: Reference {
            points: harmful.view(),
            weights: None,
        },
    };
    let mut opts = LearnerOptions {
        tol: 1e-10,
        max_steps: 3000,
        ..LearnerOptions::default()
    };
    opts.inner.tol = 1e-9;
    let res = learn_weights(&sets, &opts, &Control::default()).unwrap();
    assert!(res.converged);
    let c = contributions(&res.weights, &res.pull, &res.push, opts.tau).unwrap();
    let n = res.weights.len() as f64;
    for i in 0..res.weights.len() {
        assert!((c.log_weight[i] - (n * res.weights[i]).ln()).abs() < 1e-12);
        let sum = c.pull[i] + c.push[i] + c.offset;
        assert!(
            (sum - c.log_weight[i]).abs() < 1e-3,
            "record {i}: {sum} vs {}",
            c.log_weight[i]
        );
    }
    assert!(c.max_residual < 1e-3, "{}", c.max_residual);
    // The planted harmful records owe their low weight to the push.
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    assert!(mean(&c.push[120..]) < mean(&c.push[..120]) - 1.0);
    // Pull and push are centred, so the offset is the mean log-weight.
    assert!((c.offset - mean(&c.log_weight)).abs() < 1e-9);
}

#[test]
fn contributions_refuse_bad_input() {
    assert_eq!(
        contributions(&[0.5, 0.5], &[0.0], &[0.0, 0.0], 0.2)
            .unwrap_err()
            .kind,
        ErrorKind::Shape
    );
    assert_eq!(
        contributions(&[1.0, 0.0], &[0.0, 0.0], &[0.0, 0.0], 0.2)
            .unwrap_err()
            .kind,
        ErrorKind::InvalidWeight
    );
    assert_eq!(
        contributions(&[0.5, 0.5], &[0.0, f64::NAN], &[0.0, 0.0], 0.2)
            .unwrap_err()
            .kind,
        ErrorKind::NonFinite
    );
    assert_eq!(
        contributions(&[0.5, 0.5], &[0.0, 0.0], &[0.0, 0.0], 0.0)
            .unwrap_err()
            .kind,
        ErrorKind::InvalidOption
    );
}
