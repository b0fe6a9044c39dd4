//! Balanced entropic optimal transport by log-domain Sinkhorn.
//!
//! Solves `min_P <P, C> + eps * KL(P | a x b)` over couplings of `a` and `b`
//! through its dual potentials `(f, g)`, with `P_ij = a_i b_j exp((f_i + g_j - C_ij) / eps)`.
//!
//! One iteration is one pass over the costs (`sweep`): each row yields the
//! new `f_i` (row soft-min against the current `g`) and, in the same pass, adds
//! its share to the column sums that give the new `g`. How the costs are held
//! (dense, with a stored kernel, truncated or in blocks) follows a memory
//! budget (`store`).
//!
//! At small eps plain Sinkhorn converges linearly with a rate close to 1. The
//! solver then measures that rate and over-relaxes both updates with the SOR
//! factor `omega = 2 / (1 + sqrt(1 - rate))` (Thibault et al., 2017), backing
//! off if the error grows. Convergence is only ever declared, and results only
//! returned, after a plain update, so one marginal of the returned plan is
//! exact: each pass measures the rows of its input pair and the columns of
//! the pair made of its new `f` and its input `g`, and whichever meets the
//! tolerance first is returned.

use crate::control::{Control, Progress};
use crate::cost::CostKind;
use crate::costs::{Blocked, CostForm, Dense, DenseKernel, Exact, StoredKernel, KERNEL_MIN_TOL};
use crate::error::{ErrorKind, Result, SotError};
use crate::relax::Relaxation;
use crate::store::{check_storage, CostStore, Plan, StorageOptions, StorageReport};
use crate::sweep::{Errors, Problem};
use crate::validate;
use ndarray::ArrayView2;

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
    /// How the costs are held, within which memory budget.
    pub storage: StorageOptions,
    /// Solves from points: whether the last passes run on the costs
    /// recomputed in float64 from the points. Default `Auto`.
    pub exact: ExactCosts,
}

/// Whether a solve from points finishes on its exact costs: passes on the
/// costs recomputed in float64 from the f32 points, tile by tile (never
/// stored), from the potentials of the solve on the held costs, until the
/// marginal error on the exact costs meets `tol`. The returned error is then
/// the one on those costs. The held f32 costs differ from them by about
/// `F32_COST_ERROR` times the largest cost, which moves every entry of the
/// plan by that over eps (relative): a tolerance below that cannot be
/// vouched for on f32 costs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ExactCosts {
    /// On when `tol` is below what the f32 costs can vouch for
    /// (`F32_COST_ERROR * largest cost / eps`) and the costs are held
    /// exactly (dense or blocked; truncated costs report their own
    /// verification instead).
    #[default]
    Auto,
    On,
    Off,
}

impl ExactCosts {
    pub fn parse(name: &str) -> Result<Self> {
        match name {
            "auto" => Ok(ExactCosts::Auto),
            "on" => Ok(ExactCosts::On),
            "off" => Ok(ExactCosts::Off),
            other => Err(SotError::option(
                "exactCosts",
                format!("unknown exactCosts '{other}' (expected 'auto', 'on' or 'off')"),
            )),
        }
    }
}

/// How far an f32 cost from the points may lie from its float64 value, as a
/// fraction of the largest cost: an f32 ulp (the entry's rounding and that of
/// the f32 products that formed it).
pub const F32_COST_ERROR: f64 = f32::EPSILON as f64;

impl Default for SinkhornOptions {
    fn default() -> Self {
        SinkhornOptions {
            eps: 0.05,
            tol: 1e-6,
            max_iter: 1000,
            check_every: 1,
            eps_scaling: None,
            overrelax: true,
            storage: StorageOptions::default(),
            exact: ExactCosts::Auto,
        }
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
    /// L1 marginal error of the returned potentials. They come from a plain
    /// update, so one marginal of their plan is exact: the columns when `g`
    /// is the soft-min of `f` (then this is the rows' error), or the rows when
    /// `f` is the soft-min of `g` (then it is the columns').
    pub marginal_error: f64,
    /// Passes over the cost matrix that updated the potentials.
    pub iterations: usize,
    /// Passes over the cost matrix in all: `iterations`, plus one when the
    /// last pass only measured the error of the returned pair.
    pub passes: usize,
    pub converged: bool,
    /// The eps of the returned potentials.
    pub eps: f64,
    /// How the costs were held (and, if truncated, how far off they were).
    pub storage: StorageReport,
    /// Passes (counted in `passes`) on the costs recomputed in float64 from
    /// the points (`ExactCosts`); when non-zero, `marginal_error` is the
    /// error on those costs.
    pub exact_passes: usize,
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
    sinkhorn_dense(cost, a, b, opts, warm, ctl, Finite::Unchecked)
}

/// `sinkhorn` between two point sets under the cost `kind`. The costs are
/// held as `opts.storage` plans them within its budget: dense (finite by
/// construction, so not scanned again), truncated or in blocks.
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
    check_options(opts)?;
    let b = validate::weights(b, y.nrows(), "b")?;
    let mut store = CostStore::for_points(x, y, kind, &opts.storage, opts.eps, &b, ctl)?;
    let r = solve_store(&mut store, a, &b, opts, warm, ctl)?;
    // a solve that ran out of iterations returns as it stands (no exact passes)
    let truncated = matches!(store.plan, Plan::Truncated { .. });
    if opts.exact == ExactCosts::Off
        || (opts.exact == ExactCosts::Auto && truncated)
        || r.iterations >= opts.max_iter
    {
        return Ok(r);
    }
    let exact = Exact::new(x, y, kind);
    if opts.exact == ExactCosts::Auto && opts.tol * opts.eps >= F32_COST_ERROR * exact.cost_bound()
    {
        return Ok(r);
    }
    drop(store);
    let a = validate::weights(a, x.nrows(), "a")?;
    finish_exact(exact, &a, &b, r, opts, ctl)
}

/// The last passes of a solve on its exact costs (see `ExactCosts`), from
/// the potentials `r` of the solve on the held costs, until the error on the
/// exact costs meets `tol`, within the iterations `r` left. The held costs'
/// solution is off by their rounding only, so one pass or a few usually do.
fn finish_exact(
    exact: Exact,
    a: &[f64],
    b: &[f64],
    r: SinkhornResult,
    opts: &SinkhornOptions,
    ctl: &Control,
) -> Result<SinkhornResult> {
    let problem = Problem {
        n: a.len(),
        m: b.len(),
        costs: Box::new(Blocked::new(&exact, a.len(), b.len())),
        a,
        log_b: b.iter().map(|v| v.ln()).collect(),
        symmetric: false,
        first_build: false,
    };
    let last = SinkhornOptions {
        max_iter: opts.max_iter - r.iterations,
        eps_scaling: None,
        ..opts.clone()
    };
    let warm = WarmStart {
        f: Some(&r.f),
        g: Some(&r.g),
    };
    let e = solve(problem, &last, warm, ctl)?;
    Ok(SinkhornResult {
        iterations: r.iterations + e.iterations,
        passes: r.passes + e.passes,
        exact_passes: e.passes,
        storage: r.storage,
        ..e
    })
}

/// Solves on built costs; `b` is validated. Truncated costs are verified by
/// one exact blocked pass when `opts.storage.verify` says so.
pub(crate) fn solve_store(
    store: &mut CostStore,
    a: Option<&[f64]>,
    b: &[f64],
    opts: &SinkhornOptions,
    warm: WarmStart,
    ctl: &Control,
) -> Result<SinkhornResult> {
    check_options(opts)?;
    let (n, m) = store.shape();
    let a = validate::weights(a, n, "a")?;
    validate::potentials(warm.f, n, "initial f")?;
    validate::potentials(warm.g, m, "initial g")?;
    let log_b: Vec<f64> = b.iter().map(|v| v.ln()).collect();
    let mut r = solve(
        store.problem(&a, log_b.clone(), opts.tol >= KERNEL_MIN_TOL),
        opts,
        warm,
        ctl,
    )?;
    let verification = match store.plan {
        Plan::Truncated { .. } if opts.storage.verify => {
            Some(store.verify(&a, log_b, r.eps, &r.f, &r.g, ctl)?)
        }
        _ => None,
    };
    r.storage = store.report(r.storage.bound, verification);
    Ok(r)
}

/// Whether the entries of a dense cost matrix are known to be finite (built
/// by `cost_matrix`) or not yet checked (given by a caller).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Finite {
    Known,
    /// The first pass checks each row it reads for NaN and infinities (no
    /// read of the matrix of its own, which would cost as much as a pass) and
    /// fails on the first bad entry.
    Unchecked,
}

/// `sinkhorn` on a dense cost matrix, with the kernel stored beside it when
/// `opts.storage` allows.
#[allow(clippy::too_many_arguments)]
pub(crate) fn sinkhorn_dense(
    cost: ArrayView2<f32>,
    a: Option<&[f64]>,
    b: Option<&[f64]>,
    opts: &SinkhornOptions,
    warm: WarmStart,
    ctl: &Control,
    finite: Finite,
) -> Result<SinkhornResult> {
    let (n, m) = cost.dim();
    if n == 0 || m == 0 {
        return Err(SotError::new(
            ErrorKind::Empty,
            format!("the cost matrix is {n} x {m}"),
        ));
    }
    check_options(opts)?;
    let a = validate::weights(a, n, "a")?;
    let b = validate::weights(b, m, "b")?;
    validate::potentials(warm.f, n, "initial f")?;
    validate::potentials(warm.g, m, "initial g")?;
    let cost = cost.as_standard_layout();
    let c = cost.as_slice().expect("standard layout");
    let store_kernel = opts.storage.store_kernel
        && opts.tol >= KERNEL_MIN_TOL
        && DenseKernel::bytes(n, m) <= opts.storage.budget;
    let mut kernel = store_kernel.then(StoredKernel::new);
    let log_b = b.iter().map(|v| v.ln()).collect();
    let dense = Dense::new(c, m, finite == Finite::Unchecked);
    let costs: Box<dyn CostForm> = match kernel.as_mut() {
        Some(k) => Box::new(DenseKernel::new(dense, k)),
        None => Box::new(dense),
    };
    let problem = Problem {
        costs,
        n,
        m,
        a: &a,
        log_b,
        symmetric: false,
        first_build: false,
    };
    let mut r = solve(problem, opts, warm, ctl)?;
    r.storage = StorageReport {
        storage: Plan::Dense {
            kernel: store_kernel,
        }
        .name(),
        bytes: if store_kernel {
            DenseKernel::bytes(n, m)
        } else {
            0
        },
        kernel_passes: kernel.as_ref().map_or(0, |k| k.served),
        kernel_seconds: kernel.as_ref().map_or(0.0, |k| k.seconds),
        kernel_builds: kernel.as_ref().map_or(0, |k| k.built),
        ..r.storage
    };
    Ok(r)
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
    symmetric_dense(cost, a, opts, warm, ctl, Finite::Unchecked)
}

/// `sinkhorn_symmetric` on a dense cost matrix.
pub(crate) fn symmetric_dense(
    cost: ArrayView2<f32>,
    a: Option<&[f64]>,
    opts: &SinkhornOptions,
    warm: Option<&[f64]>,
    ctl: &Control,
    finite: Finite,
) -> Result<SinkhornResult> {
    let (n, m) = cost.dim();
    if n != m {
        return Err(SotError::new(
            ErrorKind::Shape,
            format!("a self-transport cost must be square, got {n} x {m}"),
        ));
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
    let costs = Box::new(Dense::new(c, m, finite == Finite::Unchecked));
    let problem = Problem {
        costs,
        n,
        m,
        a: &a,
        log_b,
        symmetric: true,
        first_build: false,
    };
    solve(problem, opts, WarmStart { f: warm, g: warm }, ctl)
}

fn solve(
    mut problem: Problem,
    opts: &SinkhornOptions,
    warm: WarmStart,
    ctl: &Control,
) -> Result<SinkhornResult> {
    let (n, m) = (problem.n, problem.m);
    let schedule = eps_schedule(opts, &problem);
    let mut f = warm.f.map_or_else(|| vec![0.0; n], <[f64]>::to_vec);
    let mut g = warm.g.map_or_else(|| vec![0.0; m], <[f64]>::to_vec);
    if problem.symmetric {
        g.clone_from(&f);
    }
    let mut f_next = vec![0.0; n];
    let mut g_next = vec![0.0; m];
    let mut reporter = ctl.reporter();
    let mut state = State::new(opts, problem.symmetric);

    for &eps in &schedule[..schedule.len() - 1] {
        ctl.check()?;
        problem.sweep(eps, 1.0, &f, &g, &mut f_next, &mut g_next)?;
        state.passes += 1;
        std::mem::swap(&mut f, &mut f_next);
        std::mem::swap(&mut g, &mut g_next);
        state.iterations += 1;
        reporter.report(progress(state.iterations, opts, f64::NAN, eps), false);
    }

    let eps = opts.eps;
    loop {
        ctl.check()?;
        // The last update before a return is always a plain one.
        let omega = state.relax.next(state.iterations + 1 >= opts.max_iter);
        let errors = problem.sweep(eps, omega, &f, &g, &mut f_next, &mut g_next)?;
        state.passes += 1;
        let (err, finish) = state.verdict(&errors, omega, opts);
        if finish == Some(Finish::HalfUpdate) {
            std::mem::swap(&mut f, &mut f_next);
            state.iterations += 1;
        }
        reporter.report(progress(state.iterations, opts, err, eps), finish.is_some());
        if let Some(finish) = finish {
            let (a, b) = (problem.a, problem.log_b.iter().map(|v| v.exp()));
            let value = dot(a, &f) + b.zip(&g).map(|(b, g)| b * g).sum::<f64>();
            let storage = StorageReport {
                bound: errors.bound,
                ..StorageReport::default()
            };
            let (iterations, passes, converged) =
                (state.iterations, state.passes, finish != Finish::MaxIter);
            return Ok(SinkhornResult {
                value,
                f,
                g,
                marginal_error: err,
                iterations,
                passes,
                converged,
                eps,
                storage,
                exact_passes: 0,
            });
        }
        if let Some(worth) = state.advance(&errors, omega, opts.tol) {
            problem.first_build = worth;
        }
        std::mem::swap(&mut f, &mut f_next);
        std::mem::swap(&mut g, &mut g_next);
    }
}

/// Where a solve stands: its counts, whether its error is meaningful yet,
/// the over-relaxation, and the pace of its plain updates.
struct State {
    /// Passes that updated the potentials, and passes in all.
    iterations: usize,
    passes: usize,
    /// The current pair's error is meaningful: `g` is the soft-min of `f` at
    /// the target eps (always, when symmetric).
    fitted: bool,
    symmetric: bool,
    relax: Relaxation,
    /// Column error of the previous update when it was plain (its pace).
    prev_cols: Option<f64>,
}

/// Why a solve returns after a pass.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Finish {
    /// The pair the pass measured (from a plain update) meets the tolerance by its rows.
    Converged,
    /// After a plain update the new `f` is the soft-min of `g`: `(f_next, g)`
    /// has exact rows, and this pass measured its columns, which meet the
    /// tolerance. Returning it saves the pass that would measure the rows of
    /// `(f_next, g_next)`; it counts as an iteration, so never past `max_iter`.
    HalfUpdate,
    MaxIter,
}

impl State {
    fn new(opts: &SinkhornOptions, symmetric: bool) -> Self {
        let relax = Relaxation::new(opts.overrelax && !symmetric);
        State {
            iterations: 0,
            passes: 0,
            fitted: symmetric,
            symmetric,
            relax,
            prev_cols: None,
        }
    }

    /// The error to report for the pass that just ran with factor `omega`,
    /// and whether (and why) the solve returns.
    fn verdict(
        &self,
        errors: &Errors,
        omega: f64,
        opts: &SinkhornOptions,
    ) -> (f64, Option<Finish>) {
        let err = if self.fitted { errors.rows } else { f64::NAN };
        let check = self.iterations.is_multiple_of(opts.check_every);
        if self.fitted && self.relax.current_is_plain() && check && err < opts.tol {
            (err, Some(Finish::Converged))
        } else if !self.symmetric
            && omega == 1.0
            && check
            && self.iterations < opts.max_iter
            && errors.cols < opts.tol
        {
            (errors.cols, Some(Finish::HalfUpdate))
        } else if self.iterations >= opts.max_iter {
            (err, Some(Finish::MaxIter))
        } else {
            (err, None)
        }
    }

    /// The pass that ran with factor `omega` becomes the current pair. Returns
    /// whether a first stored kernel is worth building, once that is known.
    fn advance(&mut self, errors: &Errors, omega: f64, tol: f64) -> Option<bool> {
        // Relaxed pairs are not fitted: their columns count too.
        self.relax
            .advance(self.fitted.then_some(errors.rows + errors.cols), tol);
        self.iterations += 1;
        self.fitted = true;
        // A first stored kernel costs its fresh pages: only for a solve with
        // passes left to serve, judged by the convergence rate of the columns
        // of consecutive plain updates (measured from the first pass on, so
        // known after two).
        if omega != 1.0 || self.symmetric {
            self.prev_cols = None;
            return None;
        }
        let worth = self.prev_cols.map(|prev| {
            let rate = errors.cols / prev;
            // not converging (or no rate to judge by): it may run long
            rate.is_nan()
                || rate >= 1.0
                || (tol / errors.cols).ln() / rate.ln() >= MIN_PASSES_FOR_A_KERNEL
        });
        self.prev_cols = Some(errors.cols);
        worth
    }
}

/// Passes a solve must still have ahead (from its convergence rate so far)
/// for a first stored kernel to pay for its allocation.
const MIN_PASSES_FOR_A_KERNEL: f64 = 4.0;

fn progress(iteration: usize, opts: &SinkhornOptions, error: f64, eps: f64) -> Progress {
    Progress {
        stage: "sinkhorn",
        iteration,
        max_iterations: opts.max_iter,
        error,
        eps,
    }
}

fn dot(x: &[f64], y: &[f64]) -> f64 {
    x.iter().zip(y).map(|(a, b)| a * b).sum()
}

pub(crate) fn check_options(o: &SinkhornOptions) -> Result<()> {
    validate::positive(o.eps, "eps")?;
    validate::positive(o.tol, "tol")?;
    if o.max_iter == 0 {
        return Err(SotError::option("max_iter", "max_iter must be at least 1"));
    }
    if o.check_every == 0 {
        return Err(SotError::option(
            "check_every",
            "check_every must be at least 1",
        ));
    }
    check_storage(&o.storage)?;
    if let Some(s) = o.eps_scaling {
        if !(s.factor > 0.0 && s.factor < 1.0) {
            return Err(SotError::option(
                "eps_scaling.factor",
                format!("eps_scaling.factor must lie in (0, 1), got {}", s.factor),
            ));
        }
        if let Some(start) = s.start {
            validate::positive(start, "eps_scaling.start")?;
        }
    }
    Ok(())
}

/// The eps values to run at, ending with the target.
fn eps_schedule(opts: &SinkhornOptions, problem: &Problem) -> Vec<f64> {
    let mut out = Vec::new();
    if let Some(s) = opts.eps_scaling {
        let start = s.start.unwrap_or_else(|| problem.max_cost());
        let mut e = start;
        while e > opts.eps && out.len() < 200 {
            out.push(e);
            e *= s.factor;
        }
    }
    out.push(opts.eps);
    out
}
