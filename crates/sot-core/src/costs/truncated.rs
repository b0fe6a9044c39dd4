//! Truncated costs (`crate::truncated`) as a form of the solve: each row's
//! kept entries exactly, the others through the row's mean-field cost, with
//! or without a stored kernel of the kept entries.
//!
//! The row's kernel is its kept entries plus the mean-field tail
//! `exp(-L_i / eps) * sum_{j dropped} b_j exp(g_j / eps)`. The tail's share
//! of column j is `q * e_j` for every dropped j: all columns get `q * e_j`
//! (through `Partial::tail`, added once after the pass), and the kept ones
//! have it taken back row by row.

use super::stored::Use;
use super::{column_softmin, CostForm, Keep, Partial, Pass, StoredKernel, Sums, SAFE_HI, SAFE_LO};
use crate::error::Result;
use crate::kernel;
use crate::truncated::Truncated;
use rayon::prelude::*;

pub(crate) struct TruncatedCosts<'p> {
    t: &'p Truncated,
    kernel: Option<&'p mut StoredKernel>,
}

impl<'p> TruncatedCosts<'p> {
    pub(crate) fn new(t: &'p Truncated, kernel: Option<&'p mut StoredKernel>) -> Self {
        TruncatedCosts { t, kernel }
    }

    /// Bytes held for `n` rows of `k` kept entries against `m` columns, with or without their kernel.
    pub(crate) fn bytes(n: usize, k: usize, m: usize, kernel: bool) -> usize {
        Truncated::bytes(n, k)
            + if kernel {
                StoredKernel::bytes(n, k, m)
            } else {
                0
            }
    }
}

impl CostForm for TruncatedCosts<'_> {
    fn width(&self) -> usize {
        self.t.k
    }

    fn pass(&mut self, p: &Pass, f_out: &mut [f64]) -> Result<Sums> {
        let tr = self.t;
        let tl = Tails::new(&p.gb);
        let exp_row =
            |i: usize, part: &mut Partial, keep: Keep| truncated_row(p, i, tr, &tl, part, keep);
        let mut total = match self.kernel.as_deref_mut().map(|k| (k.choose(p), k)) {
            Some((Use::Serve, k)) => k.serve(|k| stored_pass(p, tr, k, &tl, f_out)),
            Some((Use::Rebuild, k)) => k.rebuild(p, tr.k, f_out, exp_row)?,
            Some((Use::Skip, _)) | None => p.partials(f_out, false, |i0, f_grp, part| {
                for (r, fi_out) in f_grp.iter_mut().enumerate() {
                    *fi_out = exp_row(i0 + r, part, None);
                }
            }),
        };
        total
            .cols
            .iter_mut()
            .zip(&tl.e)
            .for_each(|(c, e)| *c += e * total.tail);
        Ok(total.into_sums())
    }

    fn column_softmins(&self, js: &[usize], eps: f64, log_a: &[f64], f: &[f64]) -> Vec<f64> {
        js.par_iter()
            .map(|&j| column_softmin(eps, log_a, f, |i| self.t.cost_or_tail(i, j)))
            .collect()
    }

    fn max_cost(&self) -> f64 {
        self.t.max_cost()
    }
}

/// A pass over the stored kernel of the kept entries, rescaled to the pass's potentials.
fn stored_pass(
    p: &Pass,
    tr: &Truncated,
    k: &StoredKernel,
    tl: &Tails,
    f_out: &mut [f64],
) -> Partial {
    let v = k.scalings(p);
    let ev = tl.e_over(&v);
    let mut t = p.partials(f_out, true, |i0, f_grp, part| {
        for (r, fi_out) in f_grp.iter_mut().enumerate() {
            *fi_out = stored_row(p, i0 + r, tr, k, (&v, &ev), tl, part);
        }
    });
    t.cols
        .iter_mut()
        .zip(&t.scaled)
        .zip(&v)
        .for_each(|((c, s), v)| *c += s * v);
    t
}

/// Row `i` formed by an exp; writes the frame's kept entries into `keep` if given.
fn truncated_row(
    p: &Pass,
    i: usize,
    tr: &Truncated,
    tl: &Tails,
    part: &mut Partial,
    keep: Keep,
) -> f64 {
    let (c_row, col) = tr.row(i);
    let inv_eps = p.inv_eps;
    let shift = p.f[i] * inv_eps;
    let (dropped, tail_log) = tl.dropped(tr, i, col, inv_eps);
    let row = &mut part.row[..col.len()];
    let mut kept = kernel::gather_exp(c_row, col, shift, &p.gb, inv_eps, row);
    let mut tail = (shift + tail_log).exp();
    let mut offset = 0.0;
    if !(SAFE_LO..=SAFE_HI).contains(&(kept + tail)) {
        let t = kernel::gather_max(c_row, col, &p.gb, inv_eps).max(tail_log);
        kept = kernel::gather_exp(c_row, col, -t, &p.gb, inv_eps, row);
        tail = (tail_log - t).exp();
        offset = shift + t;
    }
    if let Some((k_row, o)) = keep {
        super::stored::keep(k_row, row, o, offset);
    }
    part.bound = part
        .bound
        .max(tail_bound(kept, tail, dropped, tr, i, inv_eps));
    let (f_new, w) = p.finish_row(i, kept + tail, offset, &mut part.err);
    let Some(w) = w else { return f_new };
    let q = if dropped > 0.0 {
        w * tail / dropped
    } else {
        0.0
    };
    if q.is_finite() {
        kernel::scatter(&mut part.cols, col, w, &part.row[..col.len()], q, &tl.e);
        part.tail += q;
    } else {
        kernel::scatter(&mut part.cols, col, w, &part.row[..col.len()], 0.0, &tl.e);
        spread_tail(p, i, tr, col, w, shift - offset, &mut part.cols);
    }
    f_new
}

/// Row `i` from the stored kernel of its kept entries (the tail is formed
/// afresh: it is one number per row); `(v, ev)`: the column scalings and `e_j / v_j`.
fn stored_row(
    p: &Pass,
    i: usize,
    tr: &Truncated,
    k: &StoredKernel,
    (v, ev): (&[f64], &[f64]),
    tl: &Tails,
    part: &mut Partial,
) -> f64 {
    let (_, col) = tr.row(i);
    let k_row = &k.k[i * col.len()..(i + 1) * col.len()];
    let inv_eps = p.inv_eps;
    let u = k.offset(i, p);
    let (dropped, tail_log) = tl.dropped(tr, i, col, inv_eps);
    let kept = kernel::gather_dot(k_row, col, v);
    let tail = (p.f[i] * inv_eps + tail_log - u).exp();
    let s = kept + tail;
    if !(kept > 0.0 && tail.is_finite() && (u + s.ln()).abs() < 230.0) {
        return truncated_row(p, i, tr, tl, part, None);
    }
    part.bound = part
        .bound
        .max(tail_bound(kept, tail, dropped, tr, i, inv_eps));
    let (f_new, w) = p.finish_row(i, s, u, &mut part.err);
    let Some(w) = w else { return f_new };
    let q = if dropped > 0.0 {
        w * tail / dropped
    } else {
        0.0
    };
    if q.is_finite() {
        kernel::scatter_f32(&mut part.scaled, col, w, k_row, q, ev);
        part.tail += q;
    } else {
        kernel::scatter_f32(&mut part.scaled, col, w, k_row, 0.0, ev);
        spread_tail(p, i, tr, col, w, p.f[i] * inv_eps - u, &mut part.cols);
    }
    f_new
}

/// Adds row `i`'s tail to each of its dropped columns one by one (when
/// its per-column factor is out of range); `shift` is `f_i / eps` minus the frame's offset.
fn spread_tail(
    p: &Pass,
    i: usize,
    tr: &Truncated,
    col: &[u32],
    w: f64,
    shift: f64,
    cols: &mut [f64],
) {
    let mut is_kept = vec![false; p.m];
    col.iter().for_each(|&j| is_kept[j as usize] = true);
    let base = shift - tr.tail[i] * p.inv_eps;
    for (j, c) in cols.iter_mut().enumerate() {
        if !is_kept[j] {
            *c += w * (base + p.gb[j]).exp();
        }
    }
}

/// The target side of a truncated pass: `e_j = exp(gb_j - top)` and their sum.
struct Tails {
    top: f64,
    e: Vec<f64>,
    e_total: f64,
}

impl Tails {
    fn new(gb: &[f64]) -> Self {
        let top = gb.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let e: Vec<f64> = gb.iter().map(|v| (v - top).exp()).collect();
        let e_total = e.iter().sum();
        Tails { top, e, e_total }
    }

    /// Row `i`'s dropped mass `sum_{j dropped} e_j` and the log of its tail at `f_i = 0`.
    fn dropped(&self, tr: &Truncated, i: usize, col: &[u32], inv_eps: f64) -> (f64, f64) {
        let kept: f64 = col.iter().map(|&j| self.e[j as usize]).sum();
        let dropped = (self.e_total - kept).max(0.0);
        let log = if dropped > 0.0 {
            dropped.ln() + self.top - tr.tail[i] * inv_eps
        } else {
            f64::NEG_INFINITY
        };
        (dropped, log)
    }

    /// `e_j / v_j`: the tail's share in the units of a stored kernel's column sums.
    fn e_over(&self, v: &[f64]) -> Vec<f64> {
        self.e.iter().zip(v).map(|(e, v)| e / v).collect()
    }
}

/// Bound on the error of a truncated row's soft-min, from its kept and tail
/// sums in one frame: every dropped cost lies in `[lo_i, hi_i]`, so the exact
/// tail lies between the tail at those costs.
fn tail_bound(kept: f64, tail: f64, dropped: f64, tr: &Truncated, i: usize, inv_eps: f64) -> f64 {
    if dropped <= 0.0 {
        return 0.0;
    }
    let (log_kept, log_tail, l) = (kept.ln(), tail.ln(), tr.tail[i]);
    let upper = log_add(log_kept, log_tail + (l - tr.lo[i] as f64) * inv_eps);
    let lower = log_add(log_kept, log_tail + (l - tr.hi[i] as f64) * inv_eps);
    (upper - lower) / inv_eps
}

/// ln(e^x + e^y).
fn log_add(x: f64, y: f64) -> f64 {
    let (hi, lo) = if x > y { (x, y) } else { (y, x) };
    if hi == f64::NEG_INFINITY {
        return hi;
    }
    hi + (lo - hi).exp().ln_1p()
}
