//! The forms the costs of a Sinkhorn solve come in, each a type behind one
//! trait (`CostForm`), so that the solver (`sweep`, `sinkhorn`) never asks
//! which form it holds:
//! - `Dense`: the Gibbs kernel is formed from the potentials on the fly, one
//!   exp per entry, so it stays bounded and no eps underflows;
//! - `DenseKernel`: dense costs with the kernel at reference potentials kept
//!   in f32 and rescaled by the change of the potentials (`stored`), so a pass
//!   is two fused multiply-adds per entry and runs at memory speed;
//! - `TruncatedCosts`: each row's nearest columns exactly, the others through
//!   one mean-field cost per row (`crate::truncated`), with or without a
//!   stored kernel of the kept entries;
//! - `Blocked`: dense costs recomputed tile by tile from the points at every
//!   pass, in f32 or (from `Exact`'s tiles, for the last passes of a solve
//!   asked for a tolerance on the exact costs, `sinkhorn::ExactCosts`) f64.
//!
//! A form answers for one pass the row soft-mins (the new source potential)
//! and, in the same pass, the column sums that give the new target potential;
//! for the exact column soft-mins of the columns whose sums left the safe
//! range; and for the largest cost. What each form holds is accounted by its
//! type (`bytes`), which the storage planner (`store`) uses before building it.

mod blocked;
mod dense;
mod dense_kernel;
mod exact;
mod stored;
mod truncated;

pub(crate) use blocked::Blocked;
pub(crate) use dense::Dense;
pub(crate) use dense_kernel::DenseKernel;
pub(crate) use exact::Exact;
pub(crate) use stored::{StoredKernel, KERNEL_MIN_TOL};
pub(crate) use truncated::TruncatedCosts;

use crate::error::Result;
use crate::kernel::{self, Cost};
use rayon::prelude::*;

/// Sums outside this range risk under- or overflow in the entries: redo them exactly.
pub(crate) const SAFE_LO: f64 = 1e-100;
pub(crate) const SAFE_HI: f64 = 1e100;

/// One form of the costs of a solve.
pub(crate) trait CostForm: Send + Sync {
    /// Entries held per row (sizes the row groups of a pass).
    fn width(&self) -> usize;

    /// One pass at the potentials of `pass` (the row soft-mins): writes each
    /// row's new source potential into `f_out` and returns the column sums of
    /// the plan at `(f_out, g)` over `b` (see `Pass::finish_row`; `b_j` at
    /// convergence), the row-marginal error of the input pair, and, for
    /// truncated costs, the bound on their error. A form that stores a kernel
    /// decides here whether to serve the pass from it or rebuild it.
    fn pass(&mut self, pass: &Pass, f_out: &mut [f64]) -> Result<Sums>;

    /// Exact `-eps * log sum_i a_i exp((f_i - C_ij) / eps)` for the columns `js`
    /// (those whose sums left the safe range).
    /// `log_a` holds `ln a_i`.
    fn column_softmins(&self, js: &[usize], eps: f64, log_a: &[f64], f: &[f64]) -> Vec<f64>;

    /// The largest cost (the start of eps-scaling).
    fn max_cost(&self) -> f64;
}

/// What a pass yields beside the new source potential.
pub(crate) struct Sums {
    /// Column sums, `b_j` at convergence (empty when the problem is symmetric).
    pub(crate) cols: Vec<f64>,
    /// L1 row-marginal error of the input potentials.
    pub(crate) err: f64,
    /// Truncated costs: the largest bound over the rows on the error of the
    /// truncated row soft-min (0 for exact costs).
    pub(crate) bound: f64,
}

/// What a pass holds fixed: the problem's weights, the input potentials and the update's step.
pub(crate) struct Pass<'s> {
    pub(crate) n: usize,
    pub(crate) m: usize,
    pub(crate) a: &'s [f64],
    /// Self-transport: no column sums (the target potential is a copy of the source one).
    pub(crate) symmetric: bool,
    pub(crate) eps: f64,
    pub(crate) inv_eps: f64,
    pub(crate) omega: f64,
    /// `omega * eps`, or `eps / 2` for the averaged symmetric update.
    pub(crate) step: f64,
    pub(crate) f: &'s [f64],
    pub(crate) g: &'s [f64],
    /// `g_j / eps + ln b_j`.
    pub(crate) gb: Vec<f64>,
    /// Rows per group of a pass: a fixed split of the rows, summed in a fixed
    /// order, so that results do not depend on the thread count or on scheduling.
    pub(crate) rows_per_group: usize,
    /// Whether a stored kernel not yet allocated may be built (rebuilding one is always allowed).
    pub(crate) first_build: bool,
}

/// Per-group state of a pass.
pub(crate) struct Partial {
    /// Column sums.
    pub(crate) cols: Vec<f64>,
    /// Stored-kernel passes: column sums still to be multiplied by the column scalings.
    pub(crate) scaled: Vec<f64>,
    /// Truncated costs: the mean-field tail mass, shared by every column.
    pub(crate) tail: f64,
    /// The current row's entries (its frame).
    pub(crate) row: Vec<f64>,
    pub(crate) err: f64,
    pub(crate) bound: f64,
    /// The first row found holding a NaN or an infinity.
    pub(crate) non_finite: Option<usize>,
}

/// A stored kernel's row and its log offset, written by an exp pass that rebuilds it.
pub(crate) type Keep<'k> = Option<(&'k mut [f32], &'k mut f64)>;

impl Pass<'_> {
    /// An empty partial; `scaled` for passes over a stored kernel.
    pub(crate) fn partial(&self, scaled: bool) -> Partial {
        let cols = if self.symmetric { 0 } else { self.m };
        let scaled = if scaled { cols } else { 0 };
        Partial {
            cols: vec![0.0; cols],
            scaled: vec![0.0; scaled],
            tail: 0.0,
            row: vec![0.0; self.m],
            err: 0.0,
            bound: 0.0,
            non_finite: None,
        }
    }

    /// Runs `body(first_row, f_out_rows, partial)` over the row groups in
    /// parallel and sums the partials in group order.
    pub(crate) fn partials(
        &self,
        f_out: &mut [f64],
        scaled: bool,
        body: impl Fn(usize, &mut [f64], &mut Partial) + Sync + Send,
    ) -> Partial {
        let rows = self.rows_per_group;
        let parts: Vec<Partial> = f_out
            .par_chunks_mut(rows)
            .enumerate()
            .map(|(grp, f_grp)| {
                let mut p = self.partial(scaled);
                body(grp * rows, f_grp, &mut p);
                p
            })
            .collect();
        self.sum(parts, scaled)
    }

    /// The partials summed in group order (the groups come in row order).
    pub(crate) fn sum(&self, parts: Vec<Partial>, scaled: bool) -> Partial {
        let mut total = self.partial(scaled);
        for p in &parts {
            total
                .cols
                .iter_mut()
                .zip(&p.cols)
                .for_each(|(a, b)| *a += b);
            total
                .scaled
                .iter_mut()
                .zip(&p.scaled)
                .for_each(|(a, b)| *a += b);
            total.tail += p.tail;
            total.err += p.err;
            total.bound = total.bound.max(p.bound);
            total.non_finite = total.non_finite.or(p.non_finite);
        }
        total
    }

    /// From the row sum `s * e^offset` of row `i` (in the row's frame):
    /// the new potential, the marginal error, and the factor that turns the
    /// frame's entries into the row's share of the column sums (None when
    /// the problem is symmetric and has no columns to sum).
    pub(crate) fn finish_row(
        &self,
        i: usize,
        s: f64,
        offset: f64,
        err: &mut f64,
    ) -> (f64, Option<f64>) {
        let log_sum = s.ln() + offset;
        *err += self.a[i] * (log_sum.exp() - 1.0).abs();
        let f_new = self.f[i] - self.step * log_sum;
        if self.symmetric {
            return (f_new, None);
        }
        // a_i exp((f_new_i + g_j - C_ij) / eps) / b_j, given the frame holds that at f_i, over e^offset
        let w = if self.omega == 1.0 {
            self.a[i] / s
        } else {
            self.a[i] * ((1.0 - self.omega) * offset - self.omega * s.ln()).exp()
        };
        (f_new, Some(w))
    }

    /// Row `i` from its dense costs `c_row`; writes the frame's entries into
    /// `keep` (a stored kernel's row) if given. Serves every form that reads
    /// whole rows of costs.
    pub(crate) fn dense_row<C: Cost>(
        &self,
        i: usize,
        c_row: &[C],
        p: &mut Partial,
        keep: Keep,
    ) -> f64 {
        let shift = self.f[i] * self.inv_eps;
        let mut s = C::row_exp(c_row, shift, &self.gb, self.inv_eps, &mut p.row);
        // ln of the true row sum, given what `p.row` holds: row sum = s * e^offset
        let mut offset = 0.0;
        if !(SAFE_LO..=SAFE_HI).contains(&s) {
            let top = C::row_max(c_row, &self.gb, self.inv_eps);
            s = C::row_exp(c_row, -top, &self.gb, self.inv_eps, &mut p.row);
            offset = shift + top;
        }
        if let Some((k_row, o)) = keep {
            stored::keep(k_row, &p.row, o, offset);
        }
        let (f_new, w) = self.finish_row(i, s, offset, &mut p.err);
        if let Some(w) = w {
            kernel::axpy(&mut p.cols, w, &p.row);
        }
        f_new
    }
}

impl Partial {
    pub(crate) fn into_sums(self) -> Sums {
        Sums {
            cols: self.cols,
            err: self.err,
            bound: self.bound,
        }
    }
}

/// The exact soft-min `-eps * log sum_i a_i exp((f_i - C_ij) / eps)` of one
/// column, max-shifted, from its costs `cost(i) = C_ij`.
pub(crate) fn column_softmin(
    eps: f64,
    log_a: &[f64],
    f: &[f64],
    cost: impl Fn(usize) -> f64,
) -> f64 {
    let n = log_a.len();
    let arg = |i: usize| log_a[i] + (f[i] - cost(i)) / eps;
    let top = (0..n).map(arg).fold(f64::NEG_INFINITY, f64::max);
    let sum: f64 = (0..n).map(|i| (arg(i) - top).exp()).sum();
    -eps * (top + sum.ln())
}
