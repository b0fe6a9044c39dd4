//! One Sinkhorn iteration: a pass over the costs that yields the new source
//! potential row by row and, in the same pass, adds each row's share to the
//! column sums that give the new target potential.
//!
//! The costs come in four forms (see `store`):
//! - dense: the Gibbs kernel is formed from the potentials on the fly, one
//!   exp per entry, so it stays bounded and no eps underflows;
//! - dense with a stored kernel: the kernel at reference potentials is kept in
//!   f32 and rescaled by the change of the potentials, so a pass is two fused
//!   multiply-adds per entry and runs at memory speed; an exp pass rebuilds it
//!   once the potentials drift too far from the reference;
//! - truncated: each row's nearest columns exactly, the others through one
//!   mean-field cost per row (`truncated`), with or without a stored kernel
//!   of the kept entries;
//! - blocked: dense costs recomputed tile by tile from the points at every pass.
//!
//! A row or column whose sum leaves the safe range is redone with an exact
//! max-shifted log-sum-exp. The row sums of a pass are the row marginals of
//! the input potentials, so the stopping test costs nothing.

use crate::cost::{FillTiles, TILE_ROWS};
use crate::error::{ErrorKind, Result, SotError};
use crate::kernel;
use crate::pages;
use crate::truncated::Truncated;
use crate::validate;
use ndarray::{Array2, ArrayView1};
use rayon::prelude::*;

/// Sums outside this range risk under- or overflow in the entries: redo them exactly.
const SAFE_LO: f64 = 1e-100;
const SAFE_HI: f64 = 1e100;
/// Most row groups per sweep: enough to balance many threads, few enough that
/// their column sums stay small next to the costs.
const MAX_GROUPS: usize = 64;
/// Rows per block of a stored-kernel pass: the block's row sums come first
/// (streaming its rows from memory into L2), then its shares of the column
/// sums, from L2 (see `kernel::block_axpy_f32`). Row by row, the row, the
/// column scalings and the column sums (40 KB at 2,000 columns) overflow L1:
/// the pass took twice the time of reading the kernel, blocked 1.5 times.
const BLOCK_ROWS: usize = 32;
/// Largest change of the potentials, in units of eps (rows plus columns),
/// over which a stored kernel is rescaled rather than rebuilt. Entries
/// flushed to zero (below 1e-38 of their row) then stay below 1e-25.
const MAX_DRIFT: f64 = 30.0;

/// The Gibbs kernel `b_j exp((f0_i + g0_j - C_ij) / eps - o_i)` at reference
/// potentials `(f0, g0)` over the stored entries (all, or a truncated row's kept ones), in f32 (the values are ratios of plan to product
/// measure, so f32 holds them to 6e-8 relative: less than the f32 costs'
/// own rounding divided by eps).
pub(crate) struct StoredKernel {
    k: Vec<f32>,
    f0: Vec<f64>,
    g0: Vec<f64>,
    /// Per-row log offset of the stored values (non-zero where the row was max-shifted).
    o: Vec<f64>,
    eps: f64,
    valid: bool,
    /// Passes served from the stored kernel (and the seconds they took), and passes that rebuilt it.
    pub(crate) served: usize,
    pub(crate) seconds: f64,
    pub(crate) built: usize,
}

/// Tolerances below this are not left to a stored kernel: its f32 entries
/// round the row sums by up to 6e-8 relative.
pub(crate) const KERNEL_MIN_TOL: f64 = 1e-7;

impl StoredKernel {
    pub(crate) fn new() -> Self {
        StoredKernel { k: Vec::new(), f0: Vec::new(), g0: Vec::new(), o: Vec::new(), eps: 0.0, valid: false, served: 0, seconds: 0.0, built: 0 }
    }

    /// Bytes for `n` rows of `width` stored entries against `m` columns.
    pub(crate) fn bytes(n: usize, width: usize, m: usize) -> usize {
        n * width * 4 + (2 * n + m) * 8
    }

    /// Whether a pass at `(f, g)` and `eps` may rescale the stored kernel.
    fn usable(&self, eps: f64, f: &[f64], g: &[f64]) -> bool {
        if !self.valid || self.eps != eps {
            return false;
        }
        let drift = |v: &[f64], r: &[f64]| v.iter().zip(r).fold(0.0f64, |d, (a, b)| d.max((a - b).abs()));
        (drift(f, &self.f0) + drift(g, &self.g0)) / eps <= MAX_DRIFT
    }
}

pub(crate) enum Costs<'p> {
    Dense { c: &'p [f32], kernel: Option<&'p mut StoredKernel> },
    Truncated { t: &'p Truncated, kernel: Option<&'p mut StoredKernel> },
    Blocked(&'p dyn FillTiles),
}

pub(crate) struct Problem<'p> {
    pub(crate) costs: Costs<'p>,
    pub(crate) n: usize,
    pub(crate) m: usize,
    pub(crate) a: &'p [f64],
    pub(crate) log_b: Vec<f64>,
    /// Self-transport (`b == a`, symmetric cost): averaged update of one potential.
    pub(crate) symmetric: bool,
    /// Whether a stored kernel not yet allocated may be built (rebuilding one is always allowed).
    pub(crate) first_build: bool,
    /// Dense costs from a caller, not yet known to be finite: the next pass
    /// (always an exp pass) checks each row as it reads it, and fails on the first bad one.
    pub(crate) check_finite: bool,
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

/// Per-thread state of a sweep.
struct Partial {
    /// Column sums.
    cols: Vec<f64>,
    /// Stored-kernel passes: column sums still to be multiplied by the column scalings.
    scaled: Vec<f64>,
    /// Truncated costs: the mean-field tail mass, shared by every column (see `truncated_row`).
    tail: f64,
    row: Vec<f64>,
    err: f64,
    bound: f64,
    /// The first row found holding a NaN or an infinity (`Problem::check_finite`).
    non_finite: Option<usize>,
}

/// What a sweep holds fixed: the target side and the update's step.
struct Pass<'s> {
    inv_eps: f64,
    omega: f64,
    /// `omega * eps`, or `eps / 2` for the averaged symmetric update.
    step: f64,
    f: &'s [f64],
    /// `g_j / eps + ln b_j`.
    gb: Vec<f64>,
}

impl Problem<'_> {
    /// One Sinkhorn iteration at `eps` from `(f, g)`: writes the new
    /// potentials and returns the L1 row-marginal error of `(f, g)` and the
    /// column error of `(f_out, g)`.
    /// `omega` over-relaxes both updates (1 = plain Sinkhorn). Symmetric
    /// problems only move `f` half-way to its soft-min and copy it to `g`.
    pub(crate) fn sweep(&mut self, eps: f64, omega: f64, f: &[f64], g: &[f64], f_out: &mut [f64], g_out: &mut [f64]) -> Result<Errors> {
        let inv_eps = 1.0 / eps;
        let gb: Vec<f64> = g.iter().zip(&self.log_b).map(|(g, lb)| g * inv_eps + lb).collect();
        let step = if self.symmetric { 0.5 * eps } else { omega * eps };
        let pass = Pass { inv_eps, omega, step, f, gb };
        // A fixed split of the rows, summed in a fixed order: results do not
        // depend on the thread count or on scheduling.
        let width = self.width();
        let groups = self.n.div_ceil((65_536 / width).max(1)).clamp(1, MAX_GROUPS);
        let rows_per_group = self.n.div_ceil(groups);
        let tails = matches!(self.costs, Costs::Truncated { .. }).then(|| Tails::new(&pass.gb));

        // The stored kernel is written by rebuilds while the rest of the problem is shared.
        let mut kernel = match &mut self.costs {
            Costs::Dense { kernel, .. } | Costs::Truncated { kernel, .. } if !self.symmetric => kernel.take(),
            _ => None,
        };
        let mut total = match kernel.as_deref_mut() {
            _ if matches!(self.costs, Costs::Blocked(_)) => self.blocked_pass(f_out, rows_per_group, &pass),
            Some(k) if k.usable(eps, f, g) => {
                let start = std::time::Instant::now();
                let t = self.stored_pass(k, g, f_out, rows_per_group, &pass, tails.as_ref());
                k.served += 1;
                k.seconds += start.elapsed().as_secs_f64();
                t
            }
            Some(k) if !k.k.is_empty() || self.first_build => {
                k.built += 1;
                let t = self.exp_pass(Some(&mut *k), f_out, rows_per_group, &pass, tails.as_ref())?;
                k.f0.clear();
                k.f0.extend_from_slice(f);
                k.g0.clear();
                k.g0.extend_from_slice(g);
                k.eps = eps;
                k.valid = true;
                t
            }
            _ => self.exp_pass(None, f_out, rows_per_group, &pass, tails.as_ref())?,
        };
        if let (Some(i), Costs::Dense { c, .. }) = (total.non_finite, &self.costs) {
            return Err(validate::non_finite_row("cost", i, ArrayView1::from(&c[i * self.m..(i + 1) * self.m])));
        }
        self.check_finite = false;
        if let Some(tl) = &tails {
            total.cols.iter_mut().zip(&tl.e).for_each(|(c, e)| *c += e * total.tail);
        }
        if let Costs::Dense { kernel: slot, .. } | Costs::Truncated { kernel: slot, .. } = &mut self.costs {
            *slot = kernel;
        }
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
            let exact = self.column_softmins(&redo, eps, f_out);
            for (&j, v) in redo.iter().zip(exact) {
                g_out[j] = (1.0 - omega) * g[j] + omega * v;
            }
        }

        let bad = f_out.iter().position(|v| !v.is_finite()).map(|i| ("f", i)).or_else(|| {
            g_out.iter().position(|v| !v.is_finite()).map(|j| ("g", j))
        });
        if let Some((which, i)) = bad {
            return Err(SotError::at(
                ErrorKind::Numeric,
                i,
                format!("potential {which}[{i}] became non-finite at eps = {eps}"),
            ));
        }
        let cols = total.cols.iter().zip(&self.log_b).map(|(s, lb)| (s - lb.exp()).abs()).sum();
        Ok(Errors { rows: total.err, cols, bound: total.bound })
    }

    /// Entries per stored row.
    fn width(&self) -> usize {
        match &self.costs {
            Costs::Truncated { t, .. } => t.k,
            _ => self.m,
        }
    }

    /// Runs `body(first_row, f_out_rows, partial)` over the row groups in
    /// parallel and sums the partials in group order.
    fn partials(&self, f_out: &mut [f64], rows_per_group: usize, body: impl Fn(usize, &mut [f64], &mut Partial) + Sync + Send) -> Partial {
        let parts: Vec<Partial> = f_out
            .par_chunks_mut(rows_per_group)
            .enumerate()
            .map(|(grp, f_grp)| {
                let mut p = self.partial();
                body(grp * rows_per_group, f_grp, &mut p);
                p
            })
            .collect();
        self.sum(parts)
    }

    fn partial(&self) -> Partial {
        let cols = if self.symmetric { 0 } else { self.m };
        let scaled = if matches!(self.costs, Costs::Blocked(_)) { 0 } else { cols };
        Partial { cols: vec![0.0; cols], scaled: vec![0.0; scaled], tail: 0.0, row: vec![0.0; self.m], err: 0.0, bound: 0.0, non_finite: None }
    }

    fn sum(&self, parts: Vec<Partial>) -> Partial {
        let mut total = self.partial();
        for p in &parts {
            total.cols.iter_mut().zip(&p.cols).for_each(|(a, b)| *a += b);
            total.scaled.iter_mut().zip(&p.scaled).for_each(|(a, b)| *a += b);
            total.tail += p.tail;
            total.err += p.err;
            total.bound = total.bound.max(p.bound);
            total.non_finite = total.non_finite.or(p.non_finite); // the groups come in row order
        }
        total
    }

    /// A pass that forms every entry from the costs by an exp, storing the
    /// entries into `store` (rebuilding it at the input potentials) if given.
    fn exp_pass(&self, store: Option<&mut StoredKernel>, f_out: &mut [f64], rows_per_group: usize, pass: &Pass, tails: Option<&Tails>) -> Result<Partial> {
        let row = |i: usize, p: &mut Partial, store: Option<(&mut [f32], &mut f64)>| match &self.costs {
            Costs::Dense { c, .. } => {
                let c_row = &c[i * self.m..(i + 1) * self.m];
                // the row is read from cache right after: the check costs no read of its own
                if self.check_finite && p.non_finite.is_none() && !kernel::all_finite(c_row) {
                    p.non_finite = Some(i);
                }
                self.dense_row(i, c_row, pass, p, store)
            }
            Costs::Truncated { t, .. } => self.truncated_row(i, t, pass, tails.expect("truncated"), p, store),
            Costs::Blocked(_) => unreachable!("blocked costs have their own pass"),
        };
        let Some(k) = store else {
            return Ok(self.partials(f_out, rows_per_group, |i0, f_grp, p| {
                for (r, fi_out) in f_grp.iter_mut().enumerate() {
                    *fi_out = row(i0 + r, p, None);
                }
            }));
        };
        let width = self.width();
        if k.k.len() != self.n * width {
            // zeroed by the allocator (fresh pages), not by a serial fill, and
            // made resident in bulk before the pass below writes them
            k.k = pages::zeroed(self.n * width)?;
            k.o = vec![0.0; self.n];
        }
        let parts: Vec<Partial> = f_out
            .par_chunks_mut(rows_per_group)
            .zip(k.k.par_chunks_mut(rows_per_group * width))
            .zip(k.o.par_chunks_mut(rows_per_group))
            .enumerate()
            .map(|(grp, ((f_grp, k_grp), o_grp))| {
                let mut p = self.partial();
                let i0 = grp * rows_per_group;
                for (r, ((fi_out, k_row), o)) in f_grp.iter_mut().zip(k_grp.chunks_mut(width)).zip(o_grp.iter_mut()).enumerate() {
                    *fi_out = row(i0 + r, &mut p, Some((k_row, o)));
                }
                p
            })
            .collect();
        Ok(self.sum(parts))
    }

    /// A pass over the stored kernel, rescaled to the input potentials.
    fn stored_pass(&self, k: &StoredKernel, g: &[f64], f_out: &mut [f64], rows_per_group: usize, pass: &Pass, tails: Option<&Tails>) -> Partial {
        let v: Vec<f64> = g.iter().zip(&k.g0).map(|(g, g0)| ((g - g0) * pass.inv_eps).exp()).collect();
        let ev = tails.map(|t| t.e_over(&v));
        let m = self.m;
        let mut t = self.partials(f_out, rows_per_group, |i0, f_grp, p| match &self.costs {
            Costs::Dense { c, .. } => {
                let mut w = [0.0f64; BLOCK_ROWS];
                for (b, f_blk) in f_grp.chunks_mut(BLOCK_ROWS).enumerate() {
                    let r0 = i0 + b * BLOCK_ROWS;
                    for ((r, fi_out), wr) in f_blk.iter_mut().enumerate().zip(&mut w) {
                        (*fi_out, *wr) = self.stored_row(r0 + r, c, k, &v, pass, p);
                    }
                    kernel::block_axpy_f32(&mut p.scaled, &w[..f_blk.len()], &k.k[r0 * m..(r0 + f_blk.len()) * m]);
                }
            }
            Costs::Truncated { t, .. } => {
                let (tl, ev) = (tails.expect("truncated"), ev.as_deref().expect("truncated"));
                for (r, fi_out) in f_grp.iter_mut().enumerate() {
                    *fi_out = self.stored_truncated_row(i0 + r, t, k, (&v, ev), pass, tl, p);
                }
            }
            Costs::Blocked(_) => unreachable!("blocked costs store no kernel"),
        });
        t.cols.iter_mut().zip(&t.scaled).zip(&v).for_each(|((c, s), v)| *c += s * v);
        t
    }

    /// A pass over costs recomputed tile by tile from the points.
    fn blocked_pass(&self, f_out: &mut [f64], rows_per_group: usize, pass: &Pass) -> Partial {
        let Costs::Blocked(tiles) = &self.costs else { unreachable!("blocked costs") };
        let m = self.m;
        self.partials(f_out, rows_per_group, |i0, f_grp, p| {
            let mut buf = Array2::<f32>::zeros((TILE_ROWS.min(f_grp.len()), m));
            for (t, f_tile) in f_grp.chunks_mut(TILE_ROWS).enumerate() {
                let r0 = i0 + t * TILE_ROWS;
                let mut tile = buf.slice_mut(ndarray::s![..f_tile.len(), ..]);
                tiles.fill(r0, &mut tile);
                for (r, (fi_out, c_row)) in f_tile.iter_mut().zip(tile.outer_iter()).enumerate() {
                    *fi_out = self.dense_row(r0 + r, c_row.as_slice().expect("standard layout"), pass, p, None);
                }
            }
        })
    }

    /// The largest cost (the start of eps-scaling).
    pub(crate) fn max_cost(&self) -> f64 {
        match &self.costs {
            Costs::Dense { c, .. } => c.par_iter().cloned().reduce(|| 0.0, f32::max) as f64,
            Costs::Truncated { t, .. } => t.max_cost(),
            Costs::Blocked(tiles) => (0..self.n.div_ceil(TILE_ROWS))
                .into_par_iter()
                .map(|t| {
                    let mut tile = Array2::<f32>::zeros((TILE_ROWS.min(self.n - t * TILE_ROWS), self.m));
                    tiles.fill(t * TILE_ROWS, &mut tile.view_mut());
                    tile.iter().cloned().fold(0.0, f32::max)
                })
                .reduce(|| 0.0, f32::max) as f64,
        }
    }

    /// From the row sum `s * e^offset` of row `i` (in the row's frame):
    /// the new potential, the marginal error, and the factor that turns the
    /// frame's entries into the row's share of the column sums (None when
    /// the problem is symmetric and has no columns to sum).
    fn finish_row(&self, i: usize, s: f64, offset: f64, pass: &Pass, err: &mut f64) -> (f64, Option<f64>) {
        let log_sum = s.ln() + offset;
        *err += self.a[i] * (log_sum.exp() - 1.0).abs();
        let f_new = pass.f[i] - pass.step * log_sum;
        if self.symmetric {
            return (f_new, None);
        }
        // a_i exp((f_new_i + g_j - C_ij) / eps) / b_j, given the frame holds that at f_i, over e^offset
        let w = if pass.omega == 1.0 {
            self.a[i] / s
        } else {
            self.a[i] * ((1.0 - pass.omega) * offset - pass.omega * s.ln()).exp()
        };
        (f_new, Some(w))
    }

    /// Row `i` from its dense costs; writes the frame's entries into `store` (the stored kernel's row) if given.
    fn dense_row(&self, i: usize, c_row: &[f32], pass: &Pass, p: &mut Partial, store: Option<(&mut [f32], &mut f64)>) -> f64 {
        let shift = pass.f[i] * pass.inv_eps;
        let mut s = kernel::row_exp(c_row, shift, &pass.gb, pass.inv_eps, &mut p.row);
        // ln of the true row sum, given what `p.row` holds: row sum = s * e^offset
        let mut offset = 0.0;
        if !(SAFE_LO..=SAFE_HI).contains(&s) {
            let top = kernel::row_max(c_row, &pass.gb, pass.inv_eps);
            s = kernel::row_exp(c_row, -top, &pass.gb, pass.inv_eps, &mut p.row);
            offset = shift + top;
        }
        if let Some((k_row, o)) = store {
            keep(k_row, &p.row, o, offset);
        }
        let (f_new, w) = self.finish_row(i, s, offset, pass, &mut p.err);
        if let Some(w) = w {
            kernel::axpy(&mut p.cols, w, &p.row);
        }
        f_new
    }

    /// Row `i` from the stored kernel, rescaled to the input potentials: the
    /// new potential and the factor of the stored row in the column sums
    /// (0 when the row fell back to the costs, because the rescaled sum left
    /// the safe range, and added its share itself).
    fn stored_row(&self, i: usize, c: &[f32], k: &StoredKernel, v: &[f64], pass: &Pass, p: &mut Partial) -> (f64, f64) {
        let m = self.m;
        let k_row = &k.k[i * m..(i + 1) * m];
        let u = k.o[i] + (pass.f[i] - k.f0[i]) * pass.inv_eps;
        let dot = kernel::dot(k_row, v);
        if !(dot > 0.0 && (u + dot.ln()).abs() < 230.0) {
            return (self.dense_row(i, &c[i * m..(i + 1) * m], pass, p, None), 0.0);
        }
        // the frame is the stored row at offset u, so its sum is `dot`
        let (f_new, w) = self.finish_row(i, dot, u, pass, &mut p.err);
        (f_new, w.expect("a stored kernel has columns to sum"))
    }

    /// Row `i` of truncated costs; writes the frame's kept entries into `store` if given.
    ///
    /// The row's kernel is its kept entries plus the mean-field tail
    /// `exp(-L_i / eps) * sum_{j dropped} b_j exp(g_j / eps)`. The tail's share
    /// of column j is `q * e_j` for every dropped j: all columns get `q * e_j`
    /// (through `Partial::tail`), and the kept ones have it taken back here.
    fn truncated_row(&self, i: usize, tr: &Truncated, pass: &Pass, tl: &Tails, p: &mut Partial, store: Option<(&mut [f32], &mut f64)>) -> f64 {
        let (c_row, col) = tr.row(i);
        let inv_eps = pass.inv_eps;
        let shift = pass.f[i] * inv_eps;
        let (dropped, tail_log) = tl.dropped(tr, i, col, inv_eps);
        let row = &mut p.row[..col.len()];
        let mut kept = kernel::gather_exp(c_row, col, shift, &pass.gb, inv_eps, row);
        let mut tail = (shift + tail_log).exp();
        let mut offset = 0.0;
        if !(SAFE_LO..=SAFE_HI).contains(&(kept + tail)) {
            let t = kernel::gather_max(c_row, col, &pass.gb, inv_eps).max(tail_log);
            kept = kernel::gather_exp(c_row, col, -t, &pass.gb, inv_eps, row);
            tail = (tail_log - t).exp();
            offset = shift + t;
        }
        if let Some((k_row, o)) = store {
            keep(k_row, row, o, offset);
        }
        p.bound = p.bound.max(tail_bound(kept, tail, dropped, tr, i, inv_eps));
        let (f_new, w) = self.finish_row(i, kept + tail, offset, pass, &mut p.err);
        let Some(w) = w else { return f_new };
        let q = if dropped > 0.0 { w * tail / dropped } else { 0.0 };
        if q.is_finite() {
            kernel::scatter(&mut p.cols, col, w, &p.row[..col.len()], q, &tl.e);
            p.tail += q;
        } else {
            kernel::scatter(&mut p.cols, col, w, &p.row[..col.len()], 0.0, &tl.e);
            self.spread_tail(i, tr, col, w, shift - offset, pass, &mut p.cols);
        }
        f_new
    }

    /// Row `i` of truncated costs from the stored kernel of its kept entries
    /// (the tail is formed afresh: it is one number per row).
    #[allow(clippy::too_many_arguments)]
    /// `(v, ev)`: the column scalings and `e_j / v_j`.
    fn stored_truncated_row(&self, i: usize, tr: &Truncated, k: &StoredKernel, (v, ev): (&[f64], &[f64]), pass: &Pass, tl: &Tails, p: &mut Partial) -> f64 {
        let (_, col) = tr.row(i);
        let k_row = &k.k[i * col.len()..(i + 1) * col.len()];
        let inv_eps = pass.inv_eps;
        let u = k.o[i] + (pass.f[i] - k.f0[i]) * inv_eps;
        let (dropped, tail_log) = tl.dropped(tr, i, col, inv_eps);
        let kept = kernel::gather_dot(k_row, col, v);
        let tail = (pass.f[i] * inv_eps + tail_log - u).exp();
        let s = kept + tail;
        if !(kept > 0.0 && tail.is_finite() && (u + s.ln()).abs() < 230.0) {
            return self.truncated_row(i, tr, pass, tl, p, None);
        }
        p.bound = p.bound.max(tail_bound(kept, tail, dropped, tr, i, inv_eps));
        let (f_new, w) = self.finish_row(i, s, u, pass, &mut p.err);
        let Some(w) = w else { return f_new };
        let q = if dropped > 0.0 { w * tail / dropped } else { 0.0 };
        if q.is_finite() {
            kernel::scatter_f32(&mut p.scaled, col, w, k_row, q, ev);
            p.tail += q;
        } else {
            kernel::scatter_f32(&mut p.scaled, col, w, k_row, 0.0, ev);
            self.spread_tail(i, tr, col, w, pass.f[i] * inv_eps - u, pass, &mut p.cols);
        }
        f_new
    }

    /// Adds row `i`'s tail to each of its dropped columns one by one (when
    /// its per-column factor is out of range); `shift` is `f_i / eps` minus the frame's offset.
    #[allow(clippy::too_many_arguments)]
    fn spread_tail(&self, i: usize, tr: &Truncated, col: &[u32], w: f64, shift: f64, pass: &Pass, cols: &mut [f64]) {
        let mut is_kept = vec![false; self.m];
        col.iter().for_each(|&j| is_kept[j as usize] = true);
        let base = shift - tr.tail[i] * pass.inv_eps;
        for (j, c) in cols.iter_mut().enumerate() {
            if !is_kept[j] {
                *c += w * (base + pass.gb[j]).exp();
            }
        }
    }

    /// Exact `-eps * log sum_i a_i exp((f_i - C_ij) / eps)` for the columns `js`.
    fn column_softmins(&self, js: &[usize], eps: f64, f: &[f64]) -> Vec<f64> {
        let log_a: Vec<f64> = self.a.iter().map(|v| v.ln()).collect();
        let arg = |i: usize, c: f64| log_a[i] + (f[i] - c) / eps;
        let lse = |args: &dyn Fn(usize) -> f64| {
            let top = (0..self.n).map(args).fold(f64::NEG_INFINITY, f64::max);
            let sum: f64 = (0..self.n).map(|i| (args(i) - top).exp()).sum();
            -eps * (top + sum.ln())
        };
        match &self.costs {
            Costs::Dense { c, .. } => js.par_iter().map(|&j| lse(&|i| arg(i, c[i * self.m + j] as f64))).collect(),
            Costs::Truncated { t, .. } => js.par_iter().map(|&j| lse(&|i| arg(i, t.cost_or_tail(i, j)))).collect(),
            Costs::Blocked(tiles) => {
                // one pass over the tiles for all the redone columns
                let mut cols = Array2::<f32>::zeros((self.n, js.len()));
                for (t, mut out) in cols.axis_chunks_iter_mut(ndarray::Axis(0), TILE_ROWS).enumerate() {
                    let mut tile = Array2::<f32>::zeros((out.nrows(), self.m));
                    tiles.fill(t * TILE_ROWS, &mut tile.view_mut());
                    for (k, &j) in js.iter().enumerate() {
                        out.column_mut(k).assign(&tile.column(j));
                    }
                }
                (0..js.len()).into_par_iter().map(|k| lse(&|i| arg(i, cols[[i, k]] as f64))).collect()
            }
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
        let log = if dropped > 0.0 { dropped.ln() + self.top - tr.tail[i] * inv_eps } else { f64::NEG_INFINITY };
        (dropped, log)
    }

    /// `e_j / v_j`: the tail's share in the units of a stored kernel's column sums.
    fn e_over(&self, v: &[f64]) -> Vec<f64> {
        self.e.iter().zip(v).map(|(e, v)| e / v).collect()
    }
}

/// Stores a frame's entries (flushed to zero below f32's normal range) and its offset.
/// A frame with entries beyond f32's range is stored as zeros: its stored sum
/// is then 0, so every stored pass forms the row from the costs, and its
/// factor 0 in the column sums never meets an infinity.
fn keep(k_row: &mut [f32], row: &[f64], o: &mut f64, offset: f64) {
    if kernel::to_f32(k_row, row).is_infinite() {
        k_row.fill(0.0);
    }
    *o = offset;
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
