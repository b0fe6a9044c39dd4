//! Balanced entropic optimal transport by log-domain Sinkhorn.
//!
//! Solves `min_P <P, C> + eps * KL(P | a x b)` over couplings of `a` and `b`
//! through its dual potentials `(f, g)`, with `P_ij = a_i b_j exp((f_i + g_j - C_ij) / eps)`.
//!
//! One iteration is one pass over the cost matrix: each row yields the new
//! `f_i` (row soft-min against the current `g`) and, in the same pass, adds its
//! share to the column sums that give the new `g`. The kernel is never stored;
//! its entries are formed from the potentials, so they stay bounded (each is a
//! ratio of plan to product measure) and no eps underflows. A row or column
//! whose sum still leaves the safe range is redone with an exact max-shifted
//! log-sum-exp. The row sums of a pass are the row marginals of the previous
//! pair of potentials, so the stopping test costs nothing.
//!
//! At small eps plain Sinkhorn converges linearly with a rate close to 1. The
//! solver then measures that rate and over-relaxes both updates with the SOR
//! factor `omega = 2 / (1 + sqrt(1 - rate))` (Thibault et al., 2017), backing
//! off if the error grows. Convergence is only ever declared, and results only
//! returned, after a plain update, so the columns of the returned plan are exact.

use crate::control::{Control, Progress};
use crate::cost::{cost_matrix, CostKind};
use crate::error::{ErrorKind, Result, SotError};
use crate::kernel;
use crate::validate;
use ndarray::{ArrayView2, Axis};
use rayon::prelude::*;

/// Options of a Sinkhorn solve. `Default` gives the documented defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct SinkhornOptions {
    /// Entropic regularisation, in cost units. Default 0.05 (costs of the
    /// cosine kind lie in [0, 2]).
    pub eps: f64,
    /// Stop when the L1 marginal error `sum_i |(P 1)_i - a_i|` falls below
    /// `tol` (the weights have total mass 1). Default 1e-6.
    pub tol: f64,
    /// Most iterations (passes over the cost matrix), eps-scaling included. Default 1000.
    pub max_iter: usize,
    /// Test convergence every this many iterations. Default 1: the error is
    /// a by-product of each pass, so checking often costs nothing.
    pub check_every: usize,
    /// Optional eps-scaling (annealing) from a large eps down to `eps`.
    pub eps_scaling: Option<EpsScaling>,
    /// Over-relax the updates once convergence turns slow (small eps). Default true.
    pub overrelax: bool,
}

impl Default for SinkhornOptions {
    fn default() -> Self {
        SinkhornOptions { eps: 0.05, tol: 1e-6, max_iter: 1000, check_every: 1, eps_scaling: None, overrelax: true }
    }
}

/// Eps-scaling: one iteration at each of `start, start * factor, ...` above the
/// target eps, then iterations at the target until convergence.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EpsScaling {
    /// First eps; `None` means the largest cost entry.
    pub start: Option<f64>,
    /// Ratio between successive eps values, in (0, 1). 0.5 is a good default.
    pub factor: f64,
}

/// Potentials to start from (e.g. the previous solve of a nearby problem).
#[derive(Debug, Clone, Copy, Default)]
pub struct WarmStart<'a> {
    pub f: Option<&'a [f64]>,
    pub g: Option<&'a [f64]>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SinkhornResult {
    /// Entropic OT value `<a, f> + <b, g>` (the dual objective, which equals the
    /// primal `<P, C> + eps KL(P | a x b)` at convergence).
    pub value: f64,
    /// Source potential (one per row of the cost matrix).
    pub f: Vec<f64>,
    /// Target potential (one per column).
    pub g: Vec<f64>,
    /// L1 marginal error of the returned potentials (the columns are exact).
    pub marginal_error: f64,
    /// Passes over the cost matrix that updated the potentials.
    pub iterations: usize,
    pub converged: bool,
    /// The eps of the returned potentials.
    pub eps: f64,
}

impl SinkhornResult {
    /// Gradient of the OT value with respect to the source weights, centred
    /// (sum zero), i.e. projected on the tangent space of the simplex.
    pub fn grad_a(&self) -> Vec<f64> {
        centred(&self.f)
    }

    pub fn grad_b(&self) -> Vec<f64> {
        centred(&self.g)
    }
}

pub(crate) fn centred(v: &[f64]) -> Vec<f64> {
    let mean = v.iter().sum::<f64>() / v.len() as f64;
    v.iter().map(|x| x - mean).collect()
}

/// Sums outside this range risk under- or overflow in the entries: redo them exactly.
const SAFE_LO: f64 = 1e-100;
const SAFE_HI: f64 = 1e100;
/// Most row groups per sweep: enough to balance many threads, few enough that
/// their column sums stay small next to the cost matrix.
const MAX_GROUPS: usize = 64;

/// Solves entropic OT for the cost matrix `cost` (n x m) and weights `a`, `b`
/// (uniform when `None`; normalised to total mass 1 otherwise).
pub fn sinkhorn(
    cost: ArrayView2<f32>,
    a: Option<&[f64]>,
    b: Option<&[f64]>,
    opts: &SinkhornOptions,
    warm: WarmStart,
    ctl: &Control,
) -> Result<SinkhornResult> {
    check_cost(&cost)?;
    sinkhorn_finite(cost, a, b, opts, warm, ctl)
}

/// `sinkhorn` between two point sets under the cost `kind`: builds the cost
/// matrix, which is finite by construction, so it is not scanned again.
#[allow(clippy::too_many_arguments)]
pub fn sinkhorn_points(
    x: ArrayView2<f32>,
    y: ArrayView2<f32>,
    kind: CostKind,
    a: Option<&[f64]>,
    b: Option<&[f64]>,
    opts: &SinkhornOptions,
    warm: WarmStart,
    ctl: &Control,
) -> Result<SinkhornResult> {
    let c = cost_matrix(x, y, kind, ctl)?;
    sinkhorn_finite(c.view(), a, b, opts, warm, ctl)
}

/// `sinkhorn` for a cost known to be finite (built by `cost_matrix`): skips
/// the scan of the whole matrix, which costs as much as an iteration.
pub(crate) fn sinkhorn_finite(
    cost: ArrayView2<f32>,
    a: Option<&[f64]>,
    b: Option<&[f64]>,
    opts: &SinkhornOptions,
    warm: WarmStart,
    ctl: &Control,
) -> Result<SinkhornResult> {
    let (n, m) = cost.dim();
    if n == 0 || m == 0 {
        return Err(SotError::new(ErrorKind::Empty, format!("the cost matrix is {n} x {m}")));
    }
    check_options(opts)?;
    let a = validate::weights(a, n, "a")?;
    let b = validate::weights(b, m, "b")?;
    validate::potentials(warm.f, n, "initial f")?;
    validate::potentials(warm.g, m, "initial g")?;
    let cost = cost.as_standard_layout();
    let c = cost.as_slice().expect("standard layout");

    solve(Problem { c, n, m, a: &a, log_b: b.iter().map(|v| v.ln()).collect(), symmetric: false }, opts, warm, ctl)
}

/// Solves entropic OT of `a` onto itself for a symmetric cost matrix (the
/// debiasing terms of the Sinkhorn divergence). Uses the averaged update
/// `f <- (f + T(f)) / 2`, which converges in a few iterations where the
/// alternating one crawls on near-diagonal plans. Returns `f == g`.
pub fn sinkhorn_symmetric(
    cost: ArrayView2<f32>,
    a: Option<&[f64]>,
    opts: &SinkhornOptions,
    warm: Option<&[f64]>,
    ctl: &Control,
) -> Result<SinkhornResult> {
    check_cost(&cost)?;
    symmetric_finite(cost, a, opts, warm, ctl)
}

pub(crate) fn symmetric_finite(
    cost: ArrayView2<f32>,
    a: Option<&[f64]>,
    opts: &SinkhornOptions,
    warm: Option<&[f64]>,
    ctl: &Control,
) -> Result<SinkhornResult> {
    let (n, m) = cost.dim();
    if n != m {
        return Err(SotError::new(ErrorKind::Shape, format!("a self-transport cost must be square, got {n} x {m}")));
    }
    if n == 0 {
        return Err(SotError::new(ErrorKind::Empty, "the cost matrix is 0 x 0"));
    }
    check_options(opts)?;
    let a = validate::weights(a, n, "a")?;
    validate::potentials(warm, n, "initial f")?;
    let cost = cost.as_standard_layout();
    let c = cost.as_slice().expect("standard layout");
    let log_b = a.iter().map(|v| v.ln()).collect();
    solve(Problem { c, n, m, a: &a, log_b, symmetric: true }, opts, WarmStart { f: warm, g: warm }, ctl)
}

fn solve(problem: Problem, opts: &SinkhornOptions, warm: WarmStart, ctl: &Control) -> Result<SinkhornResult> {
    let (n, m) = (problem.n, problem.m);
    let schedule = eps_schedule(opts, problem.c);
    let mut f = warm.f.map_or_else(|| vec![0.0; n], <[f64]>::to_vec);
    let mut g = warm.g.map_or_else(|| vec![0.0; m], <[f64]>::to_vec);
    if problem.symmetric {
        g.clone_from(&f);
    }
    let mut f_next = vec![0.0; n];
    let mut g_next = vec![0.0; m];
    let mut reporter = ctl.reporter();
    let mut iterations = 0;

    for &eps in &schedule[..schedule.len() - 1] {
        ctl.check()?;
        problem.sweep(eps, 1.0, &f, &g, &mut f_next, &mut g_next)?;
        std::mem::swap(&mut f, &mut f_next);
        std::mem::swap(&mut g, &mut g_next);
        iterations += 1;
        reporter.report(progress(iterations, opts, f64::NAN, eps), false);
    }

    let eps = opts.eps;
    // The error is meaningful once g is the soft-min of f at this eps (always, when symmetric).
    let mut fitted = problem.symmetric;
    let mut relax = Relaxation::new(opts.overrelax && !problem.symmetric);
    loop {
        ctl.check()?;
        // The last update before a return is always a plain one.
        let omega = if iterations + 1 < opts.max_iter { relax.next() } else { 1.0 };
        let errors = problem.sweep(eps, omega, &f, &g, &mut f_next, &mut g_next)?;
        let err = errors.rows;
        let err = if fitted { err } else { f64::NAN };
        let plain = relax.last_omega == 1.0;
        let converged = fitted && plain && iterations % opts.check_every == 0 && err < opts.tol;
        let done = converged || iterations >= opts.max_iter;
        reporter.report(progress(iterations, opts, err, eps), done);
        if done {
            let (a, b) = (problem.a, problem.log_b.iter().map(|v| v.exp()));
            let value = dot(a, &f) + b.zip(&g).map(|(b, g)| b * g).sum::<f64>();
            return Ok(SinkhornResult { value, f, g, marginal_error: err, iterations, converged, eps });
        }
        if fitted {
            // Relaxed pairs are not fitted: their columns count too.
            relax.observe(errors.rows + errors.cols, opts.tol);
        }
        relax.last_omega = omega;
        std::mem::swap(&mut f, &mut f_next);
        std::mem::swap(&mut g, &mut g_next);
        iterations += 1;
        fitted = true;
    }
}

/// Chooses the over-relaxation factor from the observed convergence rate.
///
/// Plain Sinkhorn's linear rate `r` gives the SOR optimum `2 / (1 + sqrt(1 - r))`.
/// Early iterations underestimate `r`, so the rate keeps being measured under
/// relaxation: for SOR, a relaxed rate `l` at factor `w` implies
/// `r = (l + w - 1)^2 / (l w^2)`. A rise of the error halves the excess
/// factor. Relaxed pairs overshoot, so their error overstates how close a
/// plain update would land: a plain update probes for convergence whenever a
/// relaxed pair is within tolerance, and every `PROBE_EVERY` iterations.
struct Relaxation {
    enabled: bool,
    omega: f64,
    /// The factor of the update that produced the current potentials.
    last_omega: f64,
    /// A plain update is due, to test convergence.
    probe: bool,
    /// Relaxed updates since the last probe.
    since_probe: usize,
    /// Errors since the factor last changed.
    history: Vec<f64>,
    /// Smallest error seen since the factor last changed.
    best: f64,
}

impl Relaxation {
    /// Iterations over which a rate is measured.
    const WINDOW: usize = 8;
    const MAX_OMEGA: f64 = 1.99;
    const PROBE_EVERY: usize = 32;

    fn new(enabled: bool) -> Self {
        Relaxation { enabled, omega: 1.0, last_omega: 1.0, probe: false, since_probe: 0, history: Vec::new(), best: f64::INFINITY }
    }

    fn next(&self) -> f64 {
        if self.probe { 1.0 } else { self.omega }
    }

    fn restart(&mut self, omega: f64) {
        self.omega = omega;
        self.history.clear();
        self.best = f64::INFINITY;
    }

    /// Takes the error of the current pair, made by an update with `last_omega`.
    fn observe(&mut self, err: f64, tol: f64) {
        if !self.enabled || !err.is_finite() {
            return;
        }
        if self.last_omega > 1.0 {
            self.since_probe += 1;
            if err < tol || self.since_probe >= Self::PROBE_EVERY {
                self.probe = true;
                self.since_probe = 0;
                return;
            }
            if err > 10.0 * self.best {
                self.restart(1.0 + 0.5 * (self.omega - 1.0));
                return;
            }
            self.best = self.best.min(err);
        } else if self.probe {
            // the plain update fell short of the tolerance: relax again
            self.probe = false;
            self.history.clear();
            return;
        }
        self.history.push(err);
        let k = self.history.len();
        if k <= Self::WINDOW {
            return;
        }
        let rate = (self.history[k - 1] / self.history[k - 1 - Self::WINDOW]).powf(1.0 / Self::WINDOW as f64);
        let w = self.omega;
        let plain_rate = if w == 1.0 { rate } else { (rate + w - 1.0).powi(2) / (rate * w * w) };
        if !(rate < 1.0 && plain_rate > 0.5 && plain_rate < 1.0) {
            return;
        }
        let optimum = (2.0 / (1.0 + (1.0 - plain_rate).sqrt())).min(Self::MAX_OMEGA);
        if optimum > w + 0.005 {
            self.restart(optimum);
        }
    }
}

fn progress(iteration: usize, opts: &SinkhornOptions, error: f64, eps: f64) -> Progress {
    Progress { stage: "sinkhorn", iteration, max_iterations: opts.max_iter, error, eps }
}

fn dot(x: &[f64], y: &[f64]) -> f64 {
    x.iter().zip(y).map(|(a, b)| a * b).sum()
}

pub(crate) fn check_options(o: &SinkhornOptions) -> Result<()> {
    validate::positive(o.eps, "eps")?;
    validate::positive(o.tol, "tol")?;
    if o.max_iter == 0 {
        return Err(SotError::new(ErrorKind::InvalidOption, "maxIter must be at least 1"));
    }
    if o.check_every == 0 {
        return Err(SotError::new(ErrorKind::InvalidOption, "checkEvery must be at least 1"));
    }
    if let Some(s) = o.eps_scaling {
        if !(s.factor > 0.0 && s.factor < 1.0) {
            return Err(SotError::new(
                ErrorKind::InvalidOption,
                format!("epsScaling.factor must lie in (0, 1), got {}", s.factor),
            ));
        }
        if let Some(start) = s.start {
            validate::positive(start, "epsScaling.start")?;
        }
    }
    Ok(())
}

fn check_cost(cost: &ArrayView2<f32>) -> Result<()> {
    let bad = cost.axis_iter(Axis(0)).into_par_iter().position_first(|r| r.iter().any(|v| !v.is_finite()));
    if let Some(i) = bad {
        let j = cost.row(i).iter().position(|v| !v.is_finite()).unwrap_or(0);
        return Err(SotError::at(
            ErrorKind::NonFinite,
            i,
            format!("cost[{i}][{j}] is {} (values must be finite)", cost[[i, j]]),
        ));
    }
    Ok(())
}

/// The eps values to run at, ending with the target.
fn eps_schedule(opts: &SinkhornOptions, c: &[f32]) -> Vec<f64> {
    let mut out = Vec::new();
    if let Some(s) = opts.eps_scaling {
        let start = s.start.unwrap_or_else(|| c.par_iter().cloned().reduce(|| 0.0, f32::max) as f64);
        let mut e = start;
        while e > opts.eps && out.len() < 200 {
            out.push(e);
            e *= s.factor;
        }
    }
    out.push(opts.eps);
    out
}

struct Problem<'p> {
    c: &'p [f32],
    n: usize,
    m: usize,
    a: &'p [f64],
    log_b: Vec<f64>,
    /// Self-transport (`b == a`, symmetric cost): averaged update of one potential.
    symmetric: bool,
}

struct Errors {
    rows: f64,
    cols: f64,
}

/// Per-thread state of a sweep: column sums, a row buffer, the marginal error.
struct Partial {
    cols: Vec<f64>,
    row: Vec<f64>,
    err: f64,
}

impl Problem<'_> {
    /// One Sinkhorn iteration at `eps` from `(f, g)`: writes the new
    /// potentials and returns the L1 row-marginal error of `(f, g)` and the
    /// column error of `(f_out, g)`.
    /// `omega` over-relaxes both updates (1 = plain Sinkhorn). Symmetric
    /// problems only move `f` half-way to its soft-min and copy it to `g`.
    fn sweep(&self, eps: f64, omega: f64, f: &[f64], g: &[f64], f_out: &mut [f64], g_out: &mut [f64]) -> Result<Errors> {
        let m = self.m;
        let inv_eps = 1.0 / eps;
        let gb: Vec<f64> = g.iter().zip(&self.log_b).map(|(g, lb)| g * inv_eps + lb).collect();
        // A fixed split of the rows, summed in a fixed order: results do not
        // depend on the thread count or on scheduling.
        let groups = self.n.div_ceil((65_536 / m).max(1)).clamp(1, MAX_GROUPS);
        let rows_per_group = self.n.div_ceil(groups);
        let cols = if self.symmetric { 0 } else { m };
        let step = if self.symmetric { 0.5 * eps } else { omega * eps };
        let new = || Partial { cols: vec![0.0; cols], row: vec![0.0; m], err: 0.0 };

        let partials: Vec<Partial> = f_out
            .par_chunks_mut(rows_per_group)
            .enumerate()
            .map(|(grp, f_grp)| {
                let mut p = new();
                let i0 = grp * rows_per_group;
                for (k, fi_out) in f_grp.iter_mut().enumerate() {
                    let i = i0 + k;
                    let c_row = &self.c[i * m..(i + 1) * m];
                    let shift = f[i] * inv_eps;
                    let mut s = kernel::row_exp(c_row, shift, &gb, inv_eps, &mut p.row);
                    // ln of the true row sum, given what `p.row` holds: row sum = s * e^offset
                    let mut offset = 0.0;
                    if !(SAFE_LO..=SAFE_HI).contains(&s) {
                        let top = kernel::row_max(c_row, &gb, inv_eps);
                        s = kernel::row_exp(c_row, -top, &gb, inv_eps, &mut p.row);
                        offset = shift + top;
                    }
                    let log_sum = s.ln() + offset;
                    *fi_out = f[i] - step * log_sum;
                    p.err += self.a[i] * (log_sum.exp() - 1.0).abs();
                    if !self.symmetric {
                        // a_i exp((f_out_i + g_j - C_ij) / eps) / b_j, given p.row = that at f_i, over e^offset
                        let w = if omega == 1.0 {
                            self.a[i] / s
                        } else {
                            self.a[i] * ((1.0 - omega) * offset - omega * s.ln()).exp()
                        };
                        kernel::axpy(&mut p.cols, w, &p.row);
                    }
                }
                p
            })
            .collect();
        let mut total = new();
        for p in &partials {
            total.cols.iter_mut().zip(&p.cols).for_each(|(a, b)| *a += b);
            total.err += p.err;
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
            let log_a: Vec<f64> = self.a.iter().map(|v| v.ln()).collect();
            let exact: Vec<f64> = redo.par_iter().map(|&j| self.column_softmin(j, eps, f_out, &log_a)).collect();
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
        Ok(Errors { rows: total.err, cols })
    }

    /// Exact `-eps * log sum_i a_i exp((f_i - C_ij) / eps)` for one column.
    fn column_softmin(&self, j: usize, eps: f64, f: &[f64], log_a: &[f64]) -> f64 {
        let arg = |i: usize| log_a[i] + (f[i] - self.c[i * self.m + j] as f64) / eps;
        let top = (0..self.n).map(arg).fold(f64::NEG_INFINITY, f64::max);
        let sum: f64 = (0..self.n).map(|i| (arg(i) - top).exp()).sum();
        -eps * (top + sum.ln())
    }
}
