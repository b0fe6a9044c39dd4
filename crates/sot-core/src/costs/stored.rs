//! The Gibbs kernel of the held entries at reference potentials, kept in f32
//! beside the costs and rescaled by the change of the potentials: a pass over
//! it is two fused multiply-adds per entry and runs at memory speed. An exp
//! pass rebuilds it once the potentials drift too far from the reference.
//! Serves `DenseKernel` and `TruncatedCosts`.

use super::{Keep, Partial, Pass};
use crate::error::Result;
use crate::kernel;
use crate::pages;
use rayon::prelude::*;
use std::time::Instant;

/// Largest change of the potentials, in units of eps (rows plus columns),
/// over which a stored kernel is rescaled rather than rebuilt. Entries
/// flushed to zero (below 1e-38 of their row) then stay below 1e-25.
const MAX_DRIFT: f64 = 30.0;

/// Tolerances below this are not left to a stored kernel: its f32 entries
/// round the row sums by up to 6e-8 relative.
pub(crate) const KERNEL_MIN_TOL: f64 = 1e-7;

/// The Gibbs kernel `b_j exp((f0_i + g0_j - C_ij) / eps - o_i)` at reference
/// potentials `(f0, g0)` over the stored entries (all, or a truncated row's
/// kept ones), in f32 (the values are ratios of plan to product measure, so
/// f32 holds them to 6e-8 relative: less than the f32 costs' own rounding
/// divided by eps).
pub(crate) struct StoredKernel {
    pub(super) k: Vec<f32>,
    pub(super) f0: Vec<f64>,
    pub(super) g0: Vec<f64>,
    /// Per-row log offset of the stored values (non-zero where the row was max-shifted).
    pub(super) o: Vec<f64>,
    eps: f64,
    valid: bool,
    /// Passes served from the stored kernel (and the seconds they took), and passes that rebuilt it.
    pub(crate) served: usize,
    pub(crate) seconds: f64,
    pub(crate) built: usize,
}

/// How a pass uses the stored kernel.
pub(super) enum Use {
    /// Rescale it to the pass's potentials.
    Serve,
    /// Form the entries by an exp and store them at the pass's potentials.
    Rebuild,
    /// Form the entries by an exp and leave it be (not worth its first allocation yet).
    Skip,
}

impl StoredKernel {
    pub(crate) fn new() -> Self {
        StoredKernel {
            k: Vec::new(),
            f0: Vec::new(),
            g0: Vec::new(),
            o: Vec::new(),
            eps: 0.0,
            valid: false,
            served: 0,
            seconds: 0.0,
            built: 0,
        }
    }

    /// Bytes for `n` rows of `width` stored entries against `m` columns.
    pub(crate) fn bytes(n: usize, width: usize, m: usize) -> usize {
        n * width * 4 + (2 * n + m) * 8
    }

    /// How the pass `p` uses the kernel: served while the potentials stay
    /// within `MAX_DRIFT` of the reference at the same eps, rebuilt otherwise
    /// (a first build only when `p.first_build`).
    pub(super) fn choose(&self, p: &Pass) -> Use {
        if self.valid && self.eps == p.eps {
            let drift = |v: &[f64], r: &[f64]| {
                v.iter()
                    .zip(r)
                    .fold(0.0f64, |d, (a, b)| d.max((a - b).abs()))
            };
            if (drift(p.f, &self.f0) + drift(p.g, &self.g0)) / p.eps <= MAX_DRIFT {
                return Use::Serve;
            }
        }
        if !self.k.is_empty() || p.first_build {
            Use::Rebuild
        } else {
            Use::Skip
        }
    }

    /// Runs a pass served from the kernel, counting it and its time.
    pub(super) fn serve<T>(&mut self, pass: impl FnOnce(&Self) -> T) -> T {
        let start = Instant::now();
        let t = pass(self);
        self.served += 1;
        self.seconds += start.elapsed().as_secs_f64();
        t
    }

    /// `exp((g_j - g0_j) / eps)`: the column scalings from the reference to the pass's `g`.
    pub(super) fn scalings(&self, p: &Pass) -> Vec<f64> {
        p.g.iter()
            .zip(&self.g0)
            .map(|(g, g0)| ((g - g0) * p.inv_eps).exp())
            .collect()
    }

    /// Row `i`'s log offset from the stored frame to the pass's `f_i`.
    pub(super) fn offset(&self, i: usize, p: &Pass) -> f64 {
        self.o[i] + (p.f[i] - self.f0[i]) * p.inv_eps
    }

    /// An exp pass over rows of `width` stored entries, `row(i, partial, keep)`
    /// forming row `i` and writing its frame into `keep`: the kernel is
    /// rebuilt at the pass's potentials.
    pub(super) fn rebuild(
        &mut self,
        p: &Pass,
        width: usize,
        f_out: &mut [f64],
        row: impl Fn(usize, &mut Partial, Keep) -> f64 + Sync + Send,
    ) -> Result<Partial> {
        self.built += 1;
        if self.k.len() != p.n * width {
            // zeroed by the allocator (fresh pages), not by a serial fill, and
            // made resident in bulk before the pass below writes them
            self.k = pages::zeroed(p.n * width)?;
            self.o = vec![0.0; p.n];
        }
        let rows = p.rows_per_group;
        let parts: Vec<Partial> = f_out
            .par_chunks_mut(rows)
            .zip(self.k.par_chunks_mut(rows * width))
            .zip(self.o.par_chunks_mut(rows))
            .enumerate()
            .map(|(grp, ((f_grp, k_grp), o_grp))| {
                let mut part = p.partial(false);
                let i0 = grp * rows;
                for (r, ((fi_out, k_row), o)) in f_grp
                    .iter_mut()
                    .zip(k_grp.chunks_mut(width))
                    .zip(o_grp.iter_mut())
                    .enumerate()
                {
                    *fi_out = row(i0 + r, &mut part, Some((k_row, o)));
                }
                part
            })
            .collect();
        self.f0.clear();
        self.f0.extend_from_slice(p.f);
        self.g0.clear();
        self.g0.extend_from_slice(p.g);
        self.eps = p.eps;
        self.valid = true;
        Ok(p.sum(parts, false))
    }
}

/// Stores a frame's entries (flushed to zero below f32's normal range) and its offset.
/// A frame with entries beyond f32's range is stored as zeros: its stored sum
/// is then 0, so every stored pass forms the row from the costs, and its
/// factor 0 in the column sums never meets an infinity.
pub(super) fn keep(k_row: &mut [f32], row: &[f64], o: &mut f64, offset: f64) {
    if kernel::to_f32(k_row, row).is_infinite() {
        k_row.fill(0.0);
    }
    *o = offset;
}
