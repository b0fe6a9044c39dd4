//! Independent f64 references and random problems for the integration tests.
#![allow(dead_code)]

use ndarray::Array2;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use rand_distr::StandardNormal;

pub fn rng(seed: u64) -> SmallRng {
    SmallRng::seed_from_u64(seed)
}

/// n points in d dimensions with standard normal coordinates.
pub fn gaussian(r: &mut SmallRng, n: usize, d: usize) -> Array2<f32> {
    Array2::from_shape_fn((n, d), |_| r.sample::<f32, _>(StandardNormal))
}

/// Random positive weights summing to 1.
pub fn weights(r: &mut SmallRng, n: usize) -> Vec<f64> {
    let w: Vec<f64> = (0..n).map(|_| r.random_range(0.2..1.0)).collect();
    let s: f64 = w.iter().sum();
    w.into_iter().map(|v| v / s).collect()
}

/// Cost matrix computed pair by pair in f64.
pub fn naive_cost(x: &Array2<f32>, y: &Array2<f32>, cosine: bool) -> Array2<f64> {
    Array2::from_shape_fn((x.nrows(), y.nrows()), |(i, j)| {
        let (xi, yj) = (x.row(i), y.row(j));
        let dot: f64 = xi
            .iter()
            .zip(yj.iter())
            .map(|(a, b)| *a as f64 * *b as f64)
            .sum();
        let nx: f64 = xi.iter().map(|a| (*a as f64).powi(2)).sum();
        let ny: f64 = yj.iter().map(|a| (*a as f64).powi(2)).sum();
        if cosine {
            1.0 - dot / (nx.sqrt() * ny.sqrt())
        } else {
            nx + ny - 2.0 * dot
        }
    })
}

fn lse(v: impl Iterator<Item = f64> + Clone) -> f64 {
    let m = v.clone().fold(f64::NEG_INFINITY, f64::max);
    m + v.map(|x| (x - m).exp()).sum::<f64>().ln()
}

/// Textbook log-domain Sinkhorn in f64, run to a marginal error of 1e-12.
/// Returns (value, f, g).
pub fn naive_sinkhorn(
    c: &Array2<f64>,
    a: &[f64],
    b: &[f64],
    eps: f64,
) -> (f64, Vec<f64>, Vec<f64>) {
    let (n, m) = c.dim();
    let (mut f, mut g) = (vec![0.0; n], vec![0.0; m]);
    for _ in 0..200_000 {
        for i in 0..n {
            f[i] = -eps * lse((0..m).map(|j| b[j].ln() + (g[j] - c[[i, j]]) / eps));
        }
        for j in 0..m {
            g[j] = -eps * lse((0..n).map(|i| a[i].ln() + (f[i] - c[[i, j]]) / eps));
        }
        let err: f64 = (0..n)
            .map(|i| {
                let row: f64 = (0..m)
                    .map(|j| a[i] * b[j] * ((f[i] + g[j] - c[[i, j]]) / eps).exp())
                    .sum();
                (row - a[i]).abs()
            })
            .sum();
        if err < 1e-12 {
            break;
        }
    }
    let value = a.iter().zip(&f).map(|(x, y)| x * y).sum::<f64>()
        + b.iter().zip(&g).map(|(x, y)| x * y).sum::<f64>();
    (value, f, g)
}

/// Row and column marginals of the plan defined by (f, g).
pub fn marginals(
    c: &Array2<f64>,
    a: &[f64],
    b: &[f64],
    f: &[f64],
    g: &[f64],
    eps: f64,
) -> (Vec<f64>, Vec<f64>) {
    let (n, m) = c.dim();
    let mut rows = vec![0.0; n];
    let mut cols = vec![0.0; m];
    for i in 0..n {
        for j in 0..m {
            let p = a[i] * b[j] * ((f[i] + g[j] - c[[i, j]]) / eps).exp();
            rows[i] += p;
            cols[j] += p;
        }
    }
    (rows, cols)
}

/// L1 errors of the row and column marginals of the plan of (f, g).
pub fn marginal_errors(
    c: &Array2<f64>,
    a: &[f64],
    b: &[f64],
    f: &[f64],
    g: &[f64],
    eps: f64,
) -> (f64, f64) {
    let (rows, cols) = marginals(c, a, b, f, g, eps);
    let row_err: f64 = rows.iter().zip(a).map(|(p, q)| (p - q).abs()).sum();
    let col_err: f64 = cols.iter().zip(b).map(|(p, q)| (p - q).abs()).sum();
    (row_err, col_err)
}

/// `marginal_errors`, smaller first: a solve returns a pair from a plain
/// update, with one marginal exact (the columns or the rows) and the other's
/// error reported.
pub fn exact_and_reported(
    c: &Array2<f64>,
    a: &[f64],
    b: &[f64],
    f: &[f64],
    g: &[f64],
    eps: f64,
) -> (f64, f64) {
    let (row_err, col_err) = marginal_errors(c, a, b, f, g, eps);
    (row_err.min(col_err), row_err.max(col_err))
}

pub fn centred(v: &[f64]) -> Vec<f64> {
    let mean = v.iter().sum::<f64>() / v.len() as f64;
    v.iter().map(|x| x - mean).collect()
}

pub fn max_abs_diff(x: &[f64], y: &[f64]) -> f64 {
    x.iter()
        .zip(y)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f64::max)
}

/// The f64 cost rounded to f32, as the solver stores it.
pub fn to_f32(c: &Array2<f64>) -> Array2<f32> {
    c.mapv(|v| v as f32)
}
