//! Dense costs with their Gibbs kernel stored beside them (`stored`): passes
//! within reach of the kernel's reference potentials rescale it, the others
//! form the entries from the costs and rebuild it.

use super::stored::Use;
use super::{CostForm, Dense, Partial, Pass, StoredKernel, Sums};
use crate::error::Result;
use crate::kernel;

/// Rows per block of a stored-kernel pass: the block's row sums come first
/// (streaming its rows from memory into L2), then its shares of the column
/// sums, from L2 (see `kernel::block_axpy_f32`). Row by row, the row, the
/// column scalings and the column sums (40 KB at 2,000 columns) overflow L1:
/// the pass took twice the time of reading the kernel, blocked 1.5 times.
const BLOCK_ROWS: usize = 32;

pub(crate) struct DenseKernel<'p> {
    dense: Dense<'p>,
    kernel: &'p mut StoredKernel,
}

impl<'p> DenseKernel<'p> {
    pub(crate) fn new(dense: Dense<'p>, kernel: &'p mut StoredKernel) -> Self {
        DenseKernel { dense, kernel }
    }

    /// Bytes of the kernel of `n x m` costs (the costs are `Dense`'s).
    pub(crate) fn bytes(n: usize, m: usize) -> usize {
        StoredKernel::bytes(n, m, m)
    }
}

/// A pass over the stored kernel `k` of `dense`, rescaled to the pass's potentials.
fn stored_pass(dense: &Dense, k: &StoredKernel, p: &Pass, f_out: &mut [f64]) -> Sums {
    let v = k.scalings(p);
    let m = p.m;
    let mut t = p.partials(f_out, true, |i0, f_grp, part| {
        let mut w = [0.0f64; BLOCK_ROWS];
        for (b, f_blk) in f_grp.chunks_mut(BLOCK_ROWS).enumerate() {
            let r0 = i0 + b * BLOCK_ROWS;
            for ((r, fi_out), wr) in f_blk.iter_mut().enumerate().zip(&mut w) {
                (*fi_out, *wr) = stored_row(dense, r0 + r, k, &v, p, part);
            }
            kernel::block_axpy_f32(
                &mut part.scaled,
                &w[..f_blk.len()],
                &k.k[r0 * m..(r0 + f_blk.len()) * m],
            );
        }
    });
    t.cols
        .iter_mut()
        .zip(&t.scaled)
        .zip(&v)
        .for_each(|((c, s), v)| *c += s * v);
    t.into_sums()
}

/// Row `i` from the stored kernel, rescaled by the column scalings `v`:
/// the new potential and the factor of the stored row in the column sums
/// (0 when the row fell back to the costs, because the rescaled sum left
/// the safe range, and added its share itself).
fn stored_row(
    dense: &Dense,
    i: usize,
    k: &StoredKernel,
    v: &[f64],
    p: &Pass,
    part: &mut Partial,
) -> (f64, f64) {
    let m = p.m;
    let k_row = &k.k[i * m..(i + 1) * m];
    let u = k.offset(i, p);
    let dot = kernel::dot(k_row, v);
    if !(dot > 0.0 && (u + dot.ln()).abs() < 230.0) {
        return (p.dense_row(i, dense.row(i), part, None), 0.0);
    }
    // the frame is the stored row at offset u, so its sum is `dot`
    let (f_new, w) = p.finish_row(i, dot, u, &mut part.err);
    (f_new, w.expect("a stored kernel has columns to sum"))
}

impl CostForm for DenseKernel<'_> {
    fn width(&self) -> usize {
        self.dense.width()
    }

    fn pass(&mut self, p: &Pass, f_out: &mut [f64]) -> Result<Sums> {
        match self.kernel.choose(p) {
            Use::Serve => Ok(self.kernel.serve(|k| stored_pass(&self.dense, k, p, f_out))),
            Use::Rebuild => self.dense.exp_pass(p, f_out, Some(&mut *self.kernel)),
            Use::Skip => self.dense.exp_pass(p, f_out, None),
        }
    }

    fn column_softmins(&self, js: &[usize], eps: f64, log_a: &[f64], f: &[f64]) -> Vec<f64> {
        self.dense.column_softmins(js, eps, log_a, f)
    }

    fn max_cost(&self) -> f64 {
        self.dense.max_cost()
    }
}
