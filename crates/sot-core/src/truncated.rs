//! Truncated costs: for a cost matrix too large to store, each row keeps its
//! `k` nearest columns exactly and sums up the others by one mean-field cost.
//!
//! Dropping the far entries outright would make the transport problem
//! infeasible for columns that are no row's neighbour, and biased for rows
//! far from every column. Instead each row's dropped costs are replaced by
//! their (column-weighted) log-mean-exp `L_i` at the solve's eps: the problem
//! stays a dense, well-posed OT problem, exact on the near entries, and exact
//! on the far ones whenever the target potential is flat over them. Every
//! dropped cost lies in `[lo_i, hi_i]`, which bounds the error of each row's
//! soft-min at every pass (`Errors::bound`); one exact blocked pass
//! (`store::CostStore::verify`) measures it.

use crate::control::Control;
use crate::cost::{CostTiles, TILE_ROWS};
use crate::error::Result;
use crate::kernel;
use crate::pages;
use ndarray::Array2;
use rayon::prelude::*;

pub struct Truncated {
    /// Columns kept per row.
    pub(crate) k: usize,
    /// `n x k` kept costs, each row in increasing column order.
    cost: Vec<f32>,
    /// `n x k` their columns.
    col: Vec<u32>,
    /// Mean-field cost of each row's dropped entries.
    pub(crate) tail: Vec<f64>,
    /// Smallest and largest dropped cost of each row.
    pub(crate) lo: Vec<f32>,
    pub(crate) hi: Vec<f32>,
}

impl Truncated {
    /// Bytes held for `n` rows of `k` columns.
    pub fn bytes(n: usize, k: usize) -> usize {
        n * k * 8 + n * 16
    }

    /// Keeps the `k` nearest of the `m` columns of every row (`1 <= k < m`);
    /// `b` weighs the columns in the mean-field cost at `eps`.
    pub(crate) fn build(
        tiles: &CostTiles,
        k: usize,
        eps: f64,
        b: &[f64],
        ctl: &Control,
    ) -> Result<Self> {
        let (n, m) = (tiles.rows(), tiles.cols());
        debug_assert!(k >= 1 && k < m && b.len() == m);
        let mut t = Truncated {
            k,
            cost: pages::zeroed(n * k)?,
            col: pages::zeroed(n * k)?,
            tail: vec![0.0; n],
            lo: vec![0.0; n],
            hi: vec![0.0; n],
        };
        let chunks = t
            .cost
            .par_chunks_mut(TILE_ROWS * k)
            .zip(t.col.par_chunks_mut(TILE_ROWS * k))
            .zip(t.tail.par_chunks_mut(TILE_ROWS))
            .zip(t.lo.par_chunks_mut(TILE_ROWS))
            .zip(t.hi.par_chunks_mut(TILE_ROWS));
        let b_total: f64 = b.iter().sum();
        chunks.enumerate().try_for_each_init(
            || {
                (
                    Array2::<f32>::zeros((TILE_ROWS, m)),
                    Vec::<f32>::with_capacity(m),
                    vec![0.0f64; m],
                )
            },
            |(buf, scratch, dropped_b), (tile_no, ((((cost, col), tail), lo), hi))| -> Result<()> {
                ctl.check()?;
                let rows = tail.len();
                let mut tile = buf.slice_mut(ndarray::s![..rows, ..]);
                tiles.fill(tile_no * TILE_ROWS, &mut tile);
                for r in 0..rows {
                    let c = tile.row(r);
                    let c = c.as_slice().expect("standard layout");
                    // the (k+1)-th smallest cost: the smallest one dropped
                    scratch.clear();
                    scratch.extend_from_slice(c);
                    let low = *scratch.select_nth_unstable_by(k, f32::total_cmp).1;
                    // keep every cost below it, and ties at it by column order
                    let mut ties = k - c.iter().filter(|&&v| v < low).count();
                    let mut t = 0;
                    dropped_b.copy_from_slice(b);
                    let mut kept_mass = 0.0;
                    for (j, &cj) in c.iter().enumerate() {
                        let keep = cj < low
                            || (cj == low && ties > 0 && {
                                ties -= 1;
                                true
                            });
                        if keep {
                            cost[r * k + t] = cj;
                            col[r * k + t] = j as u32;
                            kept_mass += b[j];
                            dropped_b[j] = 0.0;
                            t += 1;
                        }
                    }
                    debug_assert_eq!(t, k);
                    let sum = kernel::weighted_exp_sum(c, dropped_b, low as f64 / eps, 1.0 / eps);
                    tail[r] = low as f64 - eps * (sum / (b_total - kept_mass)).ln();
                    lo[r] = low;
                    // the kept costs are at most `low`, so the largest cost is a dropped one
                    hi[r] = c.iter().cloned().fold(low, f32::max);
                }
                Ok(())
            },
        )?;
        Ok(t)
    }

    /// Row `i`'s kept costs and their columns.
    pub(crate) fn row(&self, i: usize) -> (&[f32], &[u32]) {
        let r = i * self.k..(i + 1) * self.k;
        (&self.cost[r.clone()], &self.col[r])
    }

    /// The cost the truncated problem uses at `(i, j)`: kept, or the row's mean-field cost.
    pub(crate) fn cost_or_tail(&self, i: usize, j: usize) -> f64 {
        let (c, col) = self.row(i);
        match col.binary_search(&(j as u32)) {
            Ok(t) => c[t] as f64,
            Err(_) => self.tail[i],
        }
    }

    /// The largest cost the problem uses (the start of eps-scaling).
    pub(crate) fn max_cost(&self) -> f64 {
        self.hi
            .par_iter()
            .cloned()
            .reduce(|| 0.0, f32::max)
            .max(self.cost.par_iter().cloned().reduce(|| 0.0, f32::max)) as f64
    }
}
