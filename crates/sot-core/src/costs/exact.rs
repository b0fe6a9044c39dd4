//! The costs a float64 reference computes from the same f32 points, tile by
//! tile, for `Blocked` to recompute at every pass. They serve the last passes
//! of a solve asked for a tolerance that its f32 costs cannot vouch for
//! (`sinkhorn::ExactCosts`); never stored.

use crate::cost::{CostKind, FillTiles};
use ndarray::linalg::general_mat_mul;
use ndarray::{s, Array2, ArrayView1, ArrayView2, ArrayViewMut2};
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
}

impl FillTiles<f64> for Exact<'_> {
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
}
