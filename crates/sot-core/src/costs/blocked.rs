//! Dense costs recomputed tile by tile from the points at every pass: exact
//! and small, but each pass costs the matrix products. The tiles are f32
//! (`cost::CostTiles`) or, for the last passes of a solve on its exact costs,
//! f64 (`costs::Exact`).

use super::{column_softmin, CostForm, Pass, Sums};
use crate::cost::{FillTiles, TILE_ROWS};
use crate::error::Result;
use crate::kernel::Cost;
use ndarray::{s, Array2, Axis};
use rayon::prelude::*;

pub(crate) struct Blocked<'p, T: Cost = f32> {
    tiles: &'p dyn FillTiles<T>,
    n: usize,
    m: usize,
}

impl<'p, T: Cost + Default> Blocked<'p, T> {
    pub(crate) fn new(tiles: &'p dyn FillTiles<T>, n: usize, m: usize) -> Self {
        Blocked { tiles, n, m }
    }

    /// Bytes held: one tile per thread.
    pub(crate) fn bytes(m: usize) -> usize {
        rayon::current_num_threads() * TILE_ROWS * m * std::mem::size_of::<T>()
    }

    /// The costs of rows `r0..r0 + rows`.
    fn tile(&self, r0: usize, rows: usize) -> Array2<T> {
        let mut tile = Array2::from_elem((rows, self.m), T::default());
        self.tiles.fill(r0, &mut tile.view_mut());
        tile
    }
}

impl<T: Cost + Default> CostForm for Blocked<'_, T> {
    fn width(&self) -> usize {
        self.m
    }

    fn pass(&mut self, p: &Pass, f_out: &mut [f64]) -> Result<Sums> {
        let total = p.partials(f_out, false, |i0, f_grp, part| {
            let mut buf = Array2::from_elem((TILE_ROWS.min(f_grp.len()), self.m), T::default());
            for (t, f_tile) in f_grp.chunks_mut(TILE_ROWS).enumerate() {
                let r0 = i0 + t * TILE_ROWS;
                let mut tile = buf.slice_mut(s![..f_tile.len(), ..]);
                self.tiles.fill(r0, &mut tile);
                for (r, (fi_out, c_row)) in f_tile.iter_mut().zip(tile.outer_iter()).enumerate() {
                    *fi_out = p.dense_row(
                        r0 + r,
                        c_row.as_slice().expect("standard layout"),
                        part,
                        None,
                    );
                }
            }
        });
        Ok(total.into_sums())
    }

    fn column_softmins(&self, js: &[usize], eps: f64, log_a: &[f64], f: &[f64]) -> Vec<f64> {
        // one pass over the tiles for all the redone columns
        let mut cols = Array2::from_elem((self.n, js.len()), T::default());
        for (t, mut out) in cols.axis_chunks_iter_mut(Axis(0), TILE_ROWS).enumerate() {
            let tile = self.tile(t * TILE_ROWS, out.nrows());
            for (k, &j) in js.iter().enumerate() {
                out.column_mut(k).assign(&tile.column(j));
            }
        }
        (0..js.len())
            .into_par_iter()
            .map(|k| column_softmin(eps, log_a, f, |i| cols[[i, k]].into()))
            .collect()
    }

    fn max_cost(&self) -> f64 {
        (0..self.n.div_ceil(TILE_ROWS))
            .into_par_iter()
            .map(|t| {
                self.tile(t * TILE_ROWS, TILE_ROWS.min(self.n - t * TILE_ROWS))
                    .iter()
                    .map(|&c| c.into())
                    .fold(0.0, f64::max)
            })
            .reduce(|| 0.0, f64::max)
    }
}
