//! Dense costs recomputed in float64 from the points, tile by tile, at every
//! pass: the costs a float64 reference computes from the same f32 points.
//! They serve the last passes of a solve asked for a tolerance that its f32
//! costs cannot vouch for (`sinkhorn::ExactCosts`); never stored, one tile
//! per row group at a time.

use super::{column_softmin, CostForm, Pass, Sums};
use crate::cost::{CostKind, TILE_ROWS};
use crate::error::Result;
use ndarray::linalg::general_mat_mul;
use ndarray::{s, Array2, ArrayView1, ArrayView2, ArrayViewMut2, Axis};
use rayon::prelude::*;

pub(crate) struct Exact<'p> {
    x: ArrayView2<'p, f32>,
    /// The target points in f64, unit rows for the cosine cost.
    y: Array2<f64>,
    kind: CostKind,
    /// Cosine: `1 / |x_i|`. Squared Euclidean: `|x_i|^2`.
    x_scale: Vec<f64>,
    /// Squared Euclidean: `|y_j|^2`.
    y_sq: Vec<f64>,
    m: usize,
}

fn sq_norm(r: ArrayView1<f32>) -> f64 {
    r.iter().map(|v| *v as f64 * *v as f64).sum()
}

impl<'p> Exact<'p> {
    /// The points must have passed `check_pair`.
    pub(crate) fn new(x: ArrayView2<'p, f32>, y: ArrayView2<f32>, kind: CostKind) -> Self {
        let x_sq: Vec<f64> = x.outer_iter().into_par_iter().map(sq_norm).collect();
        let y_sq: Vec<f64> = y.outer_iter().map(sq_norm).collect();
        let mut y64 = y.mapv(f64::from);
        let x_scale = match kind {
            CostKind::Cosine => {
                y64.outer_iter_mut()
                    .zip(&y_sq)
                    .for_each(|(mut r, s)| r.mapv_inplace(|v| v / s.sqrt()));
                x_sq.iter().map(|s| 1.0 / s.sqrt()).collect()
            }
            CostKind::SqEuclidean => x_sq,
        };
        Exact {
            x,
            m: y64.nrows(),
            y: y64,
            kind,
            x_scale,
            y_sq,
        }
    }

    /// The largest cost the points allow: 2 for the cosine cost,
    /// `(max |x| + max |y|)^2` for the squared Euclidean one.
    pub(crate) fn cost_bound(&self) -> f64 {
        match self.kind {
            CostKind::Cosine => 2.0,
            CostKind::SqEuclidean => {
                let top = |v: &[f64]| v.iter().fold(0.0f64, |t, s| t.max(s.sqrt()));
                (top(&self.x_scale) + top(&self.y_sq)).powi(2)
            }
        }
    }

    /// Writes the costs of rows `r0..r0 + tile.nrows()` into `tile`.
    fn fill(&self, r0: usize, tile: &mut ArrayViewMut2<f64>) {
        let mut xb = self.x.slice(s![r0..r0 + tile.nrows(), ..]).mapv(f64::from);
        if self.kind == CostKind::Cosine {
            xb.outer_iter_mut()
                .zip(&self.x_scale[r0..])
                .for_each(|(mut r, &inv)| r.mapv_inplace(|v| v * inv));
        }
        general_mat_mul(1.0, &xb, &self.y.t(), 0.0, tile);
        match self.kind {
            CostKind::Cosine => tile.mapv_inplace(|dot| (1.0 - dot).clamp(0.0, 2.0)),
            CostKind::SqEuclidean => {
                for (mut row, xi) in tile.outer_iter_mut().zip(&self.x_scale[r0..]) {
                    row.iter_mut()
                        .zip(&self.y_sq)
                        .for_each(|(c, yj)| *c = (xi + yj - 2.0 * *c).max(0.0));
                }
            }
        }
    }

    fn tile(&self, r0: usize, rows: usize) -> Array2<f64> {
        let mut tile = Array2::<f64>::zeros((rows, self.m));
        self.fill(r0, &mut tile.view_mut());
        tile
    }
}

impl CostForm for Exact<'_> {
    fn width(&self) -> usize {
        self.m
    }

    fn pass(&mut self, p: &Pass, f_out: &mut [f64]) -> Result<Sums> {
        let total = p.partials(f_out, false, |i0, f_grp, part| {
            let mut buf = Array2::<f64>::zeros((TILE_ROWS.min(f_grp.len()), self.m));
            for (t, f_tile) in f_grp.chunks_mut(TILE_ROWS).enumerate() {
                let r0 = i0 + t * TILE_ROWS;
                let mut tile = buf.slice_mut(s![..f_tile.len(), ..]);
                self.fill(r0, &mut tile);
                for (r, (fi_out, c_row)) in f_tile.iter_mut().zip(tile.outer_iter()).enumerate() {
                    let c_row = c_row.to_slice().expect("standard layout");
                    *fi_out = p.dense_row(r0 + r, c_row, part, None);
                }
            }
        });
        Ok(total.into_sums())
    }

    fn column_softmins(&self, js: &[usize], eps: f64, log_a: &[f64], f: &[f64]) -> Vec<f64> {
        let n = self.x.nrows();
        let mut cols = Array2::<f64>::zeros((n, js.len()));
        for (t, mut out) in cols.axis_chunks_iter_mut(Axis(0), TILE_ROWS).enumerate() {
            let tile = self.tile(t * TILE_ROWS, out.nrows());
            for (k, &j) in js.iter().enumerate() {
                out.column_mut(k).assign(&tile.column(j));
            }
        }
        (0..js.len())
            .into_par_iter()
            .map(|k| column_softmin(eps, log_a, f, |i| cols[[i, k]]))
            .collect()
    }

    fn max_cost(&self) -> f64 {
        let n = self.x.nrows();
        (0..n.div_ceil(TILE_ROWS))
            .into_par_iter()
            .map(|t| {
                self.tile(t * TILE_ROWS, TILE_ROWS.min(n - t * TILE_ROWS))
                    .iter()
                    .fold(0.0f64, |a, &b| a.max(b))
            })
            .reduce(|| 0.0, f64::max)
    }
}
