//! Dense costs held whole: every pass forms the Gibbs kernel from the
//! potentials by one exp per entry, so it stays bounded and no eps underflows.

use super::{column_softmin, CostForm, Keep, Partial, Pass, StoredKernel, Sums};
use crate::error::Result;
use crate::kernel;
use crate::validate;
use ndarray::ArrayView1;
use rayon::prelude::*;

pub(crate) struct Dense<'p> {
    /// `n x m` costs, row-major.
    c: &'p [f32],
    m: usize,
    /// Costs from a caller, not yet known to be finite: the next pass checks
    /// each row as it reads it (no read of its own, which would cost as much
    /// as a pass), and fails on the first bad one.
    check_finite: bool,
}

impl<'p> Dense<'p> {
    pub(crate) fn new(c: &'p [f32], m: usize, check_finite: bool) -> Self {
        Dense { c, m, check_finite }
    }

    /// Bytes of `n x m` costs.
    pub(crate) fn bytes(n: usize, m: usize) -> usize {
        n.saturating_mul(m).saturating_mul(4)
    }

    pub(super) fn row(&self, i: usize) -> &'p [f32] {
        &self.c[i * self.m..(i + 1) * self.m]
    }

    /// Row `i` formed by an exp (checked for NaN and infinities while the
    /// first pass reads it), its frame written into `keep` if given.
    fn exp_row(&self, p: &Pass, i: usize, part: &mut Partial, keep: Keep) -> f64 {
        let c_row = self.row(i);
        // the row is read from cache right after: the check costs no read of its own
        if self.check_finite && part.non_finite.is_none() && !kernel::all_finite(c_row) {
            part.non_finite = Some(i);
        }
        p.dense_row(i, c_row, part, keep)
    }

    /// An exp pass, rebuilding `store` at the pass's potentials if given.
    pub(super) fn exp_pass(
        &mut self,
        p: &Pass,
        f_out: &mut [f64],
        store: Option<&mut StoredKernel>,
    ) -> Result<Sums> {
        let total = match store {
            Some(k) => k.rebuild(p, self.m, f_out, |i, part, keep| {
                self.exp_row(p, i, part, keep)
            })?,
            None => p.partials(f_out, false, |i0, f_grp, part| {
                for (r, fi_out) in f_grp.iter_mut().enumerate() {
                    *fi_out = self.exp_row(p, i0 + r, part, None);
                }
            }),
        };
        if let Some(i) = total.non_finite {
            return Err(validate::non_finite_row(
                "cost",
                i,
                ArrayView1::from(self.row(i)),
            ));
        }
        self.check_finite = false;
        Ok(total.into_sums())
    }
}

impl CostForm for Dense<'_> {
    fn width(&self) -> usize {
        self.m
    }

    fn pass(&mut self, p: &Pass, f_out: &mut [f64]) -> Result<Sums> {
        self.exp_pass(p, f_out, None)
    }

    fn column_softmins(&self, js: &[usize], eps: f64, log_a: &[f64], f: &[f64]) -> Vec<f64> {
        js.par_iter()
            .map(|&j| column_softmin(eps, log_a, f, |i| self.c[i * self.m + j] as f64))
            .collect()
    }

    fn max_cost(&self) -> f64 {
        self.c.par_iter().cloned().reduce(|| 0.0, f32::max) as f64
    }
}
