//! A 2-D view of a point set for plots: the coordinates of the mean-centred
//! points on their top two principal components.
//!
//! The components come from block subspace iteration in f64 (k = min(d, 8)
//! vectors, extra ones speeding convergence when the second and third
//! variances are close), with Rayleigh-Ritz on the k x k projected matrix at
//! every step and a residual test on the top two Ritz pairs. Up to d = 2048,
//! with at least 64 rows per dimension, the covariance `XcᵀXc` is formed in
//! one pass over the rows, O(n d²):
//! blocks of 512 rows are centred in f64, multiplied by f32 GEMMs (upper
//! triangle only) and summed in f64; the iteration then runs on the
//! covariance's 8th power (same eigenvectors, 8 times fewer steps) at
//! O(d² k) per step. Otherwise each step is one f64 pass `Xcᵀ (Xc V)` over
//! the rows, O(n d k), in up to 16 parallel row groups of blocks of at most
//! 4 MiB. Row blocks are summed in a fixed order, set by the shape alone, so
//! the result does not depend on the number of threads. Timings:
//! BENCHMARKS.md, "Quality II: the built-in embedder's length".
//!
//! Signs are fixed so that each component's largest-magnitude loading
//! (first one on ties) is positive.

use crate::control::{Control, Progress};
use crate::error::Result;
use crate::validate;
use ndarray::linalg::general_mat_mul;
use ndarray::{s, Array1, Array2, ArrayView2, Axis};
use rayon::prelude::*;

/// Rows converted to f64 at a time inside one task (fewer for wide rows, see `sub_rows`).
const SUB: usize = 512;
/// Rows per parallel task, at most; partial sums are added in task order.
const GROUP: usize = 16 * SUB;
/// Parallel tasks a small set is split into (see `group_rows`).
const TASKS: usize = 16;
/// Bytes of one block of centred f64 rows, at most (unless that is under 16 rows).
const BLOCK_BYTES: usize = 4 << 20;
const MAX_ITER: usize = 300;
/// Up to this dimension the covariance is formed once, when there are at
/// least this many rows per dimension: with fewer, the d³ powers of the
/// covariance cost more than passes over the rows (BENCHMARKS.md, "Quality
/// II: the built-in embedder's length").
const COVARIANCE_MAX_DIM: usize = 2048;
const COVARIANCE_MIN_ROWS_PER_DIM: usize = 64;
const MAX_ITER_COV: usize = 2000;
/// Column blocks of the covariance GEMMs (only those on or above the diagonal are computed).
const COL_BLOCK: usize = 128;
const TOL: f64 = 1e-7;

/// Coordinates of the rows of `points` (n x d) on their top two principal
/// components, n x 2. With d = 1 (or a set of rank < 2) the missing
/// coordinates are zero.
pub fn project_2d(points: ArrayView2<f32>, ctl: &Control) -> Result<Array2<f32>> {
    validate::non_empty(&points, "points")?;
    validate::finite_matrix(&points, "points")?;
    let comps = principal_components(points, 2, ctl)?;
    let (mean, u) = (comps.mean, comps.vectors);
    let mut out = Array2::<f32>::zeros((points.nrows(), 2));
    out.axis_iter_mut(Axis(0))
        .into_par_iter()
        .zip(points.axis_iter(Axis(0)))
        .for_each(|(mut o, x)| {
            for c in 0..u.ncols() {
                let mut acc = 0.0;
                for ((xv, m), uv) in x.iter().zip(mean.iter()).zip(u.column(c).iter()) {
                    acc += (*xv as f64 - m) * uv;
                }
                o[c] = acc as f32;
            }
        });
    Ok(out)
}

/// The mean and the top `want` principal directions (d x want, orthonormal
/// columns, sign-fixed), with their variances times n.
pub struct Components {
    pub mean: Array1<f64>,
    pub vectors: Array2<f64>,
    pub values: Vec<f64>,
    pub iterations: usize,
}

pub fn principal_components(
    points: ArrayView2<f32>,
    want: usize,
    ctl: &Control,
) -> Result<Components> {
    validate::non_empty(&points, "points")?;
    let d = points.ncols();
    let want = want.min(d);
    let k = d.min(want.max(2) + 6);
    let mean = column_mean(points);
    let mut state = 0x9d2c_5680_u64;
    let mut v = Array2::from_shape_fn((d, k), |_| uniform(&mut state));
    orthonormalise(&mut v, &mut state);
    let mut reporter = ctl.reporter();
    // Small dimension, many rows: form the covariance once (one pass, O(n d^2)) and
    // iterate on its 8th power, scaled (O(d^2 k) per step, same eigenvectors).
    // Otherwise iterate on the rows (one pass, O(n d k), per step).
    let cov = if d <= COVARIANCE_MAX_DIM && points.nrows() >= COVARIANCE_MIN_ROWS_PER_DIM * d {
        Some(covariance(points, &mean, ctl)?)
    } else {
        None
    };
    let power = cov.as_ref().map(|c| {
        let tr = (0..d)
            .map(|i| c[[i, i]])
            .sum::<f64>()
            .max(f64::MIN_POSITIVE);
        let mut m = c / tr;
        for _ in 0..3 {
            m = m.dot(&m);
        }
        m
    });
    let apply = |v: &Array2<f64>| match &cov {
        Some(c) => c.dot(v),
        None => cov_times(points, &mean, v),
    };
    let max_iter = if cov.is_some() {
        MAX_ITER_COV
    } else {
        MAX_ITER
    };
    let mut iterations = 0;
    let (ritz, theta) = loop {
        ctl.check()?;
        iterations += 1;
        let w = apply(&v);
        let h = v.t().dot(&w);
        let (theta, q) = jacobi_eigen(&h);
        let ritz = v.dot(&q);
        let cw = w.dot(&q);
        let top = theta[0].max(0.0);
        let residual = (0..want)
            .map(|c| {
                let r = &cw.column(c) - &(&ritz.column(c) * theta[c]);
                r.iter().map(|x| x * x).sum::<f64>().sqrt()
            })
            .fold(0.0, f64::max);
        reporter.report(
            Progress {
                stage: "project2d",
                iteration: iterations,
                max_iterations: max_iter,
                error: residual / top.max(f64::MIN_POSITIVE),
                eps: f64::NAN,
            },
            false,
        );
        if residual <= TOL * top || iterations >= max_iter {
            break (ritz, theta);
        }
        v = match &power {
            Some(m) => m.dot(&ritz),
            None => cw,
        };
        orthonormalise(&mut v, &mut state);
    };
    reporter.report(
        Progress {
            stage: "project2d",
            iteration: iterations,
            max_iterations: max_iter,
            error: f64::NAN,
            eps: f64::NAN,
        },
        true,
    );
    let mut vectors = ritz.slice(s![.., ..want]).to_owned();
    for mut col in vectors.columns_mut() {
        let mut best = 0;
        for (i, x) in col.iter().enumerate() {
            if x.abs() > col[best].abs() {
                best = i;
            }
        }
        if col[best] < 0.0 {
            col.mapv_inplace(|x| -x);
        }
    }
    // a component of zero variance (rank < want) is reported as zero
    for (c, mut col) in vectors.columns_mut().into_iter().enumerate() {
        if theta[c] <= 1e-12 * theta[0] || theta[0] <= 0.0 || theta[c].is_nan() {
            col.fill(0.0);
        }
    }
    Ok(Components {
        mean,
        vectors,
        values: theta[..want].to_vec(),
        iterations,
    })
}

/// `Xcᵀ Xc`: each block of `SUB` centred rows (centred in f64, rounded to
/// f32) goes through an f32 GEMM on the upper triangle of column blocks, and
/// the block products are summed in f64, group by group in order.
fn covariance(x: ArrayView2<f32>, mean: &Array1<f64>, ctl: &Control) -> Result<Array2<f64>> {
    let d = x.ncols();
    let cols: Vec<(usize, usize)> = (0..d)
        .step_by(COL_BLOCK)
        .map(|j| (j, (j + COL_BLOCK).min(d)))
        .collect();
    let partials: Vec<Array2<f64>> = x
        .axis_chunks_iter(Axis(0), GROUP)
        .into_par_iter()
        .map(|g| {
            ctl.check()?;
            let mut c = Array2::<f64>::zeros((d, d));
            let mut c32 = Array2::<f32>::zeros((d, d));
            let mut xc = Array2::<f32>::zeros((SUB.min(g.nrows()), d));
            for sub in g.axis_chunks_iter(Axis(0), SUB) {
                let b = sub.nrows();
                let mut xb = xc.slice_mut(s![..b, ..]);
                for (mut dst, src) in xb.outer_iter_mut().zip(sub.outer_iter()) {
                    dst.iter_mut()
                        .zip(src.iter())
                        .zip(mean.iter())
                        .for_each(|((o, x), m)| *o = (*x as f64 - m) as f32);
                }
                let xb = xc.slice(s![..b, ..]);
                for (i, &(i0, i1)) in cols.iter().enumerate() {
                    for &(j0, j1) in &cols[i..] {
                        let mut out = c32.slice_mut(s![i0..i1, j0..j1]);
                        general_mat_mul(
                            1.0,
                            &xb.slice(s![.., i0..i1]).t(),
                            &xb.slice(s![.., j0..j1]),
                            0.0,
                            &mut out,
                        );
                    }
                }
                for (i, &(i0, _)) in cols.iter().enumerate() {
                    for r in i0..cols[i].1 {
                        let (src, dst) = (c32.slice(s![r, i0..]), c.slice_mut(s![r, i0..]));
                        dst.into_iter()
                            .zip(src.iter())
                            .for_each(|(a, b)| *a += *b as f64);
                    }
                }
            }
            Ok(c)
        })
        .collect::<Result<_>>()?;
    let mut total = Array2::<f64>::zeros((d, d));
    for p in &partials {
        total += p;
    }
    // mirror the upper triangle of column blocks
    for (i, &(i0, i1)) in cols.iter().enumerate() {
        for r in i0..i1 {
            for col in 0..cols[i].0 {
                total[[r, col]] = total[[col, r]];
            }
        }
    }
    Ok(total)
}

/// Rows of one f64 block of the row passes: `SUB`, fewer when rows are wide
/// (the block stays within `BLOCK_BYTES` for each running task).
fn sub_rows(d: usize) -> usize {
    (BLOCK_BYTES / (8 * d.max(1))).clamp(16, SUB)
}

/// Rows per task of the row passes: a function of the shape only, never of
/// the thread count (the partial sums, added in task order, are then the
/// same on every machine), at most `GROUP`, and split `TASKS` ways when the
/// set is small, so that a plot's few thousand rows use every core.
fn group_rows(n: usize, sub: usize) -> usize {
    (n.div_ceil(TASKS).div_ceil(sub) * sub).clamp(sub, GROUP)
}

fn column_mean(x: ArrayView2<f32>) -> Array1<f64> {
    let d = x.ncols();
    let partials: Vec<Array1<f64>> = x
        .axis_chunks_iter(Axis(0), group_rows(x.nrows(), sub_rows(d)))
        .into_par_iter()
        .map(|g| {
            let mut s = Array1::<f64>::zeros(d);
            for row in g.outer_iter() {
                s.iter_mut()
                    .zip(row.iter())
                    .for_each(|(a, b)| *a += *b as f64);
            }
            s
        })
        .collect();
    let mut total = Array1::<f64>::zeros(d);
    for p in &partials {
        total += p;
    }
    total / x.nrows() as f64
}

/// `Xcᵀ Xc V` with `Xc` the centred rows, in f64, summed group by group in order.
fn cov_times(x: ArrayView2<f32>, mean: &Array1<f64>, v: &Array2<f64>) -> Array2<f64> {
    let (d, k) = v.dim();
    let rows = sub_rows(d);
    let partials: Vec<Array2<f64>> = x
        .axis_chunks_iter(Axis(0), group_rows(x.nrows(), rows))
        .into_par_iter()
        .map(|g| {
            let mut w = Array2::<f64>::zeros((d, k));
            let mut xc = Array2::<f64>::zeros((rows.min(g.nrows()), d));
            let mut t = Array2::<f64>::zeros((xc.nrows(), k));
            for sub in g.axis_chunks_iter(Axis(0), rows) {
                let b = sub.nrows();
                let mut xb = xc.slice_mut(s![..b, ..]);
                for (mut dst, src) in xb.outer_iter_mut().zip(sub.outer_iter()) {
                    dst.iter_mut()
                        .zip(src.iter())
                        .zip(mean.iter())
                        .for_each(|((o, x), m)| *o = *x as f64 - m);
                }
                let xb = xc.slice(s![..b, ..]);
                let mut tb = t.slice_mut(s![..b, ..]);
                general_mat_mul(1.0, &xb, v, 0.0, &mut tb);
                general_mat_mul(1.0, &xb.t(), &tb, 1.0, &mut w);
            }
            w
        })
        .collect();
    let mut total = Array2::<f64>::zeros((d, k));
    for p in &partials {
        total += p;
    }
    total
}

/// Eigenvalues (descending) and eigenvectors (columns) of a small symmetric
/// matrix by cyclic Jacobi rotations.
pub(crate) fn jacobi_eigen(h: &Array2<f64>) -> (Vec<f64>, Array2<f64>) {
    let k = h.nrows();
    let mut a = h.clone();
    // symmetrise against rounding
    for i in 0..k {
        for j in 0..i {
            let m = 0.5 * (a[[i, j]] + a[[j, i]]);
            a[[i, j]] = m;
            a[[j, i]] = m;
        }
    }
    let mut q = Array2::<f64>::eye(k);
    for _sweep in 0..100 {
        let off: f64 = (0..k)
            .flat_map(|i| (0..k).filter(move |j| *j != i).map(move |j| (i, j)))
            .map(|(i, j)| a[[i, j]].powi(2))
            .sum();
        let diag: f64 = (0..k).map(|i| a[[i, i]].powi(2)).sum();
        if off <= 1e-30 * diag.max(f64::MIN_POSITIVE) {
            break;
        }
        for p in 0..k {
            for r in p + 1..k {
                let apr = a[[p, r]];
                if apr == 0.0 {
                    continue;
                }
                let theta = (a[[r, r]] - a[[p, p]]) / (2.0 * apr);
                let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
                let t = if theta == 0.0 { 1.0 } else { t };
                let c = 1.0 / (t * t + 1.0).sqrt();
                let s = t * c;
                for i in 0..k {
                    let (aip, air) = (a[[i, p]], a[[i, r]]);
                    a[[i, p]] = c * aip - s * air;
                    a[[i, r]] = s * aip + c * air;
                }
                for i in 0..k {
                    let (api, ari) = (a[[p, i]], a[[r, i]]);
                    a[[p, i]] = c * api - s * ari;
                    a[[r, i]] = s * api + c * ari;
                }
                for i in 0..k {
                    let (qip, qir) = (q[[i, p]], q[[i, r]]);
                    q[[i, p]] = c * qip - s * qir;
                    q[[i, r]] = s * qip + c * qir;
                }
            }
        }
    }
    let mut order: Vec<usize> = (0..k).collect();
    order.sort_by(|&i, &j| a[[j, j]].total_cmp(&a[[i, i]]).then(i.cmp(&j)));
    let values = order.iter().map(|&i| a[[i, i]]).collect();
    let vectors = Array2::from_shape_fn((k, k), |(i, c)| q[[i, order[c]]]);
    (values, vectors)
}

/// Modified Gram-Schmidt, twice, on the columns; a column that vanishes (the
/// block has more vectors than the data's rank) is replaced by a random one.
fn orthonormalise(v: &mut Array2<f64>, state: &mut u64) {
    let (d, k) = v.dim();
    for j in 0..k {
        for attempt in 0..4 {
            let before = v.column(j).iter().map(|x| x * x).sum::<f64>().sqrt();
            for _pass in 0..2 {
                for i in 0..j {
                    let dot: f64 = v
                        .column(j)
                        .iter()
                        .zip(v.column(i).iter())
                        .map(|(a, b)| a * b)
                        .sum();
                    let ci = v.column(i).to_owned();
                    v.column_mut(j)
                        .iter_mut()
                        .zip(ci.iter())
                        .for_each(|(a, b)| *a -= dot * b);
                }
            }
            let norm = v.column(j).iter().map(|x| x * x).sum::<f64>().sqrt();
            if norm > 1e-10 * before && norm > 0.0 {
                v.column_mut(j).mapv_inplace(|x| x / norm);
                break;
            }
            if attempt == 3 {
                v.column_mut(j).fill(0.0);
                break;
            }
            for r in 0..d {
                v[[r, j]] = uniform(state);
            }
        }
    }
}

fn uniform(state: &mut u64) -> f64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^= z >> 31;
    (z >> 11) as f64 / (1u64 << 53) as f64 - 0.5
}
