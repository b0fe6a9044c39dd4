//! One Sinkhorn iteration: a pass over the costs (whatever their form, see
//! `costs`) that yields the new source potential row by row and, in the same
//! pass, adds each row's share to the column sums that give the new target
//! potential. A column whose sum leaves the safe range is redone with an
//! exact max-shifted log-sum-exp. The row sums of a pass are the row
//! marginals of the input potentials, so the stopping test costs nothing.

use crate::costs::{CostForm, Pass, SAFE_HI, SAFE_LO};
use crate::error::{ErrorKind, Result, SotError};

/// Most row groups per sweep: enough to balance many threads, few enough that
/// their column sums stay small next to the costs.
const MAX_GROUPS: usize = 64;

/// An OT problem: costs in some form and the weights on either side.
pub(crate) struct Problem<'p> {
    pub(crate) costs: Box<dyn CostForm + 'p>,
    pub(crate) n: usize,
    pub(crate) m: usize,
    pub(crate) a: &'p [f64],
    pub(crate) log_b: Vec<f64>,
    /// Self-transport (`b == a`, symmetric cost): averaged update of one potential.
    pub(crate) symmetric: bool,
    /// Whether a stored kernel not yet allocated may be built (rebuilding one
    /// is always allowed): from the start when the costs serve many solves,
    /// else once the solve has shown enough passes ahead.
    pub(crate) first_build: bool,
}

pub(crate) struct Errors {
    /// L1 row-marginal error of the input potentials.
    pub(crate) rows: f64,
    /// L1 column-marginal error of the new source potential against the input target one.
    pub(crate) cols: f64,
    /// Truncated costs: the largest bound, over the rows, on how far the truncated
    /// row soft-min of the input `g` lies from the exact one (0 for exact costs).
    pub(crate) bound: f64,
}

impl Problem<'_> {
    /// One Sinkhorn iteration at `eps` from `(f, g)`: writes the new
    /// potentials and returns the L1 row-marginal error of `(f, g)` and the
    /// column error of `(f_out, g)`.
    /// `omega` over-relaxes both updates (1 = plain Sinkhorn). Symmetric
    /// problems only move `f` half-way to its soft-min and copy it to `g`.
    pub(crate) fn sweep(
        &mut self,
        eps: f64,
        omega: f64,
        f: &[f64],
        g: &[f64],
        f_out: &mut [f64],
        g_out: &mut [f64],
    ) -> Result<Errors> {
        let inv_eps = 1.0 / eps;
        let gb: Vec<f64> = g
            .iter()
            .zip(&self.log_b)
            .map(|(g, lb)| g * inv_eps + lb)
            .collect();
        let step = if self.symmetric {
            0.5 * eps
        } else {
            omega * eps
        };
        let groups = self
            .n
            .div_ceil((65_536 / self.costs.width()).max(1))
            .clamp(1, MAX_GROUPS);
        let rows_per_group = self.n.div_ceil(groups);
        let (n, m, a, symmetric) = (self.n, self.m, self.a, self.symmetric);
        let pass = Pass {
            n,
            m,
            a,
            symmetric,
            eps,
            inv_eps,
            omega,
            step,
            f,
            g,
            gb,
            rows_per_group,
            first_build: self.first_build,
        };
        let total = self.costs.pass(&pass, f_out)?;

        if self.symmetric {
            g_out.copy_from_slice(f_out);
        }
        let mut redo = Vec::new();
        for (j, (out, &sum)) in g_out.iter_mut().zip(&total.cols).enumerate() {
            if (SAFE_LO..=SAFE_HI).contains(&sum) {
                *out = g[j] - omega * eps * (sum.ln() - self.log_b[j]);
            } else {
                redo.push(j);
            }
        }
        if !redo.is_empty() {
            let log_a: Vec<f64> = self.a.iter().map(|v| v.ln()).collect();
            let exact = self.costs.column_softmins(&redo, eps, &log_a, f_out);
            for (&j, v) in redo.iter().zip(exact) {
                g_out[j] = (1.0 - omega) * g[j] + omega * v;
            }
        }

        let bad = f_out
            .iter()
            .position(|v| !v.is_finite())
            .map(|i| ("f", i))
            .or_else(|| g_out.iter().position(|v| !v.is_finite()).map(|j| ("g", j)));
        if let Some((which, i)) = bad {
            return Err(SotError::at(
                ErrorKind::Numeric,
                i,
                format!("potential {which}[{i}] became non-finite at eps = {eps:?}"),
            ));
        }
        let cols = total
            .cols
            .iter()
            .zip(&self.log_b)
            .map(|(s, lb)| (s - lb.exp()).abs())
            .sum();
        Ok(Errors {
            rows: total.err,
            cols,
            bound: total.bound,
        })
    }

    /// The largest cost (the start of eps-scaling).
    pub(crate) fn max_cost(&self) -> f64 {
        self.costs.max_cost()
    }
}
