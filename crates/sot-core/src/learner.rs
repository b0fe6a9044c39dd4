//! The SOT push-pull weight learner.
//!
//! Learns weights `w` on the simplex over the downstream set by minimising
//!
//! ```text
//! J(w) = OT(w, b; C_XS) - lambda * OT(w, c; C_XH) + tau * KL(w | uniform)
//! ```
//!
//! (or the same with debiased Sinkhorn divergences) by mirror descent. The
//! gradient of each OT term is its source potential, so one warm-started
//! Sinkhorn solve per term and step gives it. The step is written as a damped
//! move towards the Gibbs form that a stationary point satisfies,
//! `w ∝ exp(-(f_S - lambda f_H) / tau)`: `log w <- (1 - step) log w + step *
//! (-(f_S - lambda f_H) / tau)`, which is exponentiated gradient with rate
//! `step / tau`. The step is damped when a step raises J.
//!
//! The harmful reference is off-domain (requests and answers of red-team
//! sets), so it ranks the downstream's own harm only coarsely; but the
//! lowest-ranked samples hold more of that harm than the data do, in the
//! task's own form (format, length, vocabulary), and harm in one dataset
//! looks like itself. So the learner solves twice: the second
//! time with the `own_harm_share` lowest-weighted samples of the first solve
//! joined to the harmful reference, each as the mean of its nearest others
//! among them, holding `own_harm_mass` of its mass (docs/learner-defaults.md,
//! "The data's own harm"). The contamination estimate is the first solve's:
//! it measures the share that looks like the reference proper.

use crate::contamination::{self, Contamination, FittedTerm};
use crate::control::{Control, Progress};
use crate::cost::{check_pair, cost_matrix, CostKind};
use crate::error::{ErrorKind, Result, SotError};
use crate::score::ScoreScale;
use crate::sinkhorn::{
    centred, check_options, solve_store, symmetric_dense, Finite, SinkhornOptions, SinkhornResult,
    WarmStart,
};
use crate::store::{check_dense, plan, CostStore, Plan, StorageOptions, StorageReport};
use crate::validate;
use ndarray::{Array2, ArrayView2, Axis, CowArray, Ix2};

/// A reference set of embeddings with optional masses (uniform when `None`).
#[derive(Debug, Clone, Copy)]
pub struct Reference<'a> {
    pub points: ArrayView2<'a, f32>,
    pub weights: Option<&'a [f64]>,
}

/// The three sets SOT works with.
#[derive(Debug, Clone, Copy)]
pub struct Sets<'a> {
    /// The fine-tuning data to weight (n x d).
    pub downstream: ArrayView2<'a, f32>,
    /// Trusted clean task samples; `None` pulls towards the downstream set itself.
    pub anchor: Option<Reference<'a>>,
    /// Harmful instruction/response pairs to push away from.
    pub harmful: Reference<'a>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct LearnerOptions {
    pub cost: CostKind,
    /// Entropic regularisation of both OT terms (cost units).
    pub eps: f64,
    /// Strength of the push away from the harmful reference.
    pub lambda: f64,
    /// Strength of the KL term that keeps the weights spread.
    pub tau: f64,
    /// Largest fraction of the way to the Gibbs target taken per step, in
    /// (0, 1]; halved after a step that raised J (overshoot), regrown by 1.1 otherwise.
    pub step: f64,
    pub max_steps: usize,
    /// Stop when J changed by less than this, relatively, over the last 5 steps.
    pub tol: f64,
    /// Use debiased Sinkhorn divergences instead of OT (needs the n x n self cost).
    pub debiased: bool,
    /// Without an anchor, at most this many downstream samples (evenly spaced) form the pull target
    /// (default 50, the size of a typical anchor: a larger self-anchor makes the pull towards the
    /// contaminated data dominate, and with small eps its inner solves converge slowly).
    pub max_self_anchor: usize,
    /// Share of the downstream samples, the lowest-weighted of a first solve,
    /// that join the harmful reference for a second one (each as the mean of
    /// its `OWN_HARM_NEIGHBOURS` nearest others among them), in [0, 0.5]; 0
    /// solves once. At most `MAX_OWN_HARM` of them, evenly spaced in that order.
    pub own_harm_share: f64,
    /// Their share of the joined reference's mass, in (0, 1).
    pub own_harm_mass: f64,
    /// Tolerance and iteration cap of each warm-started inner solve (eps is
    /// taken from above), and how the costs of all terms are held: within
    /// `inner.storage.budget` together, the truncated ones verified once at the end.
    pub inner: SinkhornOptions,
}

/// Defaults measured on real data (alpaca-libre and hh-rlhf / JailbreakBench
/// contamination, MiniLM embeddings): see docs/learner-defaults.md.
impl Default for LearnerOptions {
    fn default() -> Self {
        LearnerOptions {
            cost: CostKind::Cosine,
            eps: 0.05,
            lambda: 1.5,
            tau: 0.2,
            step: 0.5,
            max_steps: 500,
            tol: 1e-5,
            debiased: false,
            max_self_anchor: 50,
            own_harm_share: 0.05,
            own_harm_mass: 0.3,
            inner: SinkhornOptions {
                tol: 1e-5,
                max_iter: 300,
                ..SinkhornOptions::default()
            },
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct LearnResult {
    /// Learned weights, summing to 1.
    pub weights: Vec<f64>,
    /// Pull score per sample: the centred gradient of the anchor term (high = far from the anchor).
    pub pull: Vec<f64>,
    /// Push score per sample: lambda times the centred gradient of the harmful term
    /// (high = far from harm). At a stationary point `w ∝ exp(-(pull - push) / tau)`.
    pub push: Vec<f64>,
    /// J(w) at the start and after each step, of the last solve (the second
    /// when the data's own harm joined the reference).
    pub objective: Vec<f64>,
    /// Mirror-descent steps taken, of both solves (each costs two warm-started Sinkhorn solves, three if debiased).
    pub steps: usize,
    pub converged: bool,
    /// Whether every inner Sinkhorn solve of the last step converged.
    pub inner_converged: bool,
    /// Sinkhorn iterations of all inner solves together: nearly the learner's cost in passes over
    /// the cost matrices (a solve may add one pass that only measured its error: `SinkhornResult::passes`).
    pub inner_iterations: usize,
    /// The downstream set served as the anchor (none was given).
    pub anchor_is_downstream: bool,
    /// How the costs to the anchor and to the harmful reference were held, at the last step.
    pub anchor_storage: StorageReport,
    pub harmful_storage: StorageReport,
    /// What scoring new samples needs (crate::score).
    pub fitted: Fitted,
    /// How contaminated the downstream set looks (see `contamination`); `None` with the debiased objective.
    pub contamination: Option<Contamination>,
    pub warnings: Vec<String>,
}

/// The reference side of the last solves, from which `score::score_samples`
/// gives any sample its pull, push and score by c-transform.
#[derive(Debug, Clone, PartialEq)]
pub struct Fitted {
    /// The eps of the solves.
    pub eps: f64,
    /// Potential `g` and normalised masses of the anchor.
    pub anchor_potential: Vec<f64>,
    pub anchor_weights: Vec<f64>,
    /// Without an anchor: the downstream rows that formed it.
    pub anchor_rows: Option<Vec<usize>>,
    /// The downstream rows whose own-harm points joined the harmful
    /// reference (ascending; `own_harm_points`).
    pub own_harm_rows: Vec<usize>,
    /// One point per own-harm row, after the reference's points: the
    /// harmful potential and masses cover both.
    pub own_harm_points: Array2<f32>,
    /// The downstream rows each own-harm point is the mean of,
    /// `OWN_HARM_NEIGHBOURS` per point, nearest first (what a reason cites).
    pub own_harm_members: Vec<usize>,
    pub harmful_potential: Vec<f64>,
    pub harmful_weights: Vec<f64>,
    pub scale: ScoreScale,
}

/// A parameter as a person would write it: 1e-300, not 300 zeros.
fn short(v: f64) -> String {
    if v != 0.0 && !(1e-3..1e6).contains(&v.abs()) {
        format!("{v:e}")
    } else {
        format!("{v}")
    }
}

pub fn check_learner_options(o: &LearnerOptions) -> Result<()> {
    validate::positive(o.tau, "tau")?;
    validate::positive(o.tol, "tol")?;
    if !(o.lambda.is_finite() && o.lambda >= 0.0) {
        return Err(SotError::option(
            "lambda",
            format!("lambda must be finite and >= 0, got {}", o.lambda),
        ));
    }
    if !(o.step > 0.0 && o.step <= 1.0) {
        return Err(SotError::option(
            "step",
            format!("step must lie in (0, 1], got {}", o.step),
        ));
    }
    if o.max_steps == 0 {
        return Err(SotError::option(
            "max_steps",
            "max_steps must be at least 1",
        ));
    }
    if o.max_self_anchor == 0 {
        return Err(SotError::option(
            "max_self_anchor",
            "max_self_anchor must be at least 1",
        ));
    }
    if !(0.0..=0.5).contains(&o.own_harm_share) {
        return Err(SotError::option(
            "own_harm_share",
            format!(
                "own_harm_share must lie in [0, 0.5], got {}",
                o.own_harm_share
            ),
        ));
    }
    if !(o.own_harm_mass > 0.0 && o.own_harm_mass < 1.0) {
        return Err(SotError::option(
            "own_harm_mass",
            format!("own_harm_mass must lie in (0, 1), got {}", o.own_harm_mass),
        ));
    }
    check_options(&SinkhornOptions {
        eps: o.eps,
        ..o.inner.clone()
    })
}

/// One OT term of the objective, with its costs and warm start.
struct Term<'a> {
    store: CostStore<'a>,
    /// The reference's masses, normalised.
    weights: Vec<f64>,
    last: Option<SinkhornResult>,
}

impl<'a> Term<'a> {
    fn new(
        x: ArrayView2<'a, f32>,
        y: impl Into<CowArray<'a, f32, Ix2>>,
        weights: Option<Vec<f64>>,
        plan: Plan,
        opts: &LearnerOptions,
        ctl: &Control,
    ) -> Result<Self> {
        let y = y.into();
        let weights = weights.unwrap_or_else(|| vec![1.0 / y.nrows() as f64; y.nrows()]);
        Ok(Term {
            store: CostStore::build(x, y, opts.cost, plan, opts.eps, &weights, ctl)?.persistent(),
            weights,
            last: None,
        })
    }

    fn solve(
        &mut self,
        w: &[f64],
        opts: &SinkhornOptions,
        ctl: &Control,
    ) -> Result<&SinkhornResult> {
        let warm = self
            .last
            .as_ref()
            .map_or(WarmStart::default(), |r| WarmStart {
                f: Some(&r.f),
                g: Some(&r.g),
            });
        let r = solve_store(&mut self.store, Some(w), &self.weights, opts, warm, ctl)?;
        Ok(self.last.insert(r))
    }

    /// The last solve's storage, verified against the exact costs if truncated and asked for.
    fn report(&self, w: &[f64], verify: bool, ctl: &Control) -> Result<StorageReport> {
        let last = self.last.as_ref().expect("solved at least once");
        let verification = match self.store.plan {
            Plan::Truncated { .. } if verify => Some(self.store.verify(
                w,
                self.weights.iter().map(|b| b.ln()).collect(),
                last.eps,
                &last.f,
                &last.g,
                ctl,
            )?),
            _ => None,
        };
        Ok(self.store.report(last.storage.bound, verification))
    }
}

/// Self-transport OT(w, w) on the n x n self cost, for the debiased objective.
struct OwnTerm {
    cost: Array2<f32>,
    last: Option<SinkhornResult>,
}

impl OwnTerm {
    fn solve(
        &mut self,
        w: &[f64],
        opts: &SinkhornOptions,
        ctl: &Control,
    ) -> Result<&SinkhornResult> {
        let warm = self.last.as_ref().map(|r| &r.f[..]);
        let r = symmetric_dense(self.cost.view(), Some(w), opts, warm, ctl, Finite::Known)?;
        Ok(self.last.insert(r))
    }
}

/// J and its parts at one `w`.
struct Eval {
    j: f64,
    iterations: usize,
    /// Gradient of the pull term (OT or divergence to the anchor).
    pull: Vec<f64>,
    /// lambda times the gradient of the push term.
    push: Vec<f64>,
    inner_converged: bool,
}

/// The objective with its costs, evaluated with warm-started solves.
struct Objective<'a> {
    /// The pull target's points (the anchor, or the downstream samples standing in for it).
    anchor: Array2<f32>,
    harmful: ArrayView2<'a, f32>,
    pull: Term<'a>,
    push: Term<'a>,
    /// Debiased only: OT(w, w) on the n x n self cost.
    own: Option<OwnTerm>,
    lambda: f64,
    tau: f64,
    inner: SinkhornOptions,
}

impl<'a> Objective<'a> {
    fn new(
        sets: &Sets<'a>,
        opts: &LearnerOptions,
        ctl: &Control,
        warnings: &mut Vec<String>,
    ) -> Result<Self> {
        check_learner_options(opts)?;
        let x = sets.downstream;
        let n = x.nrows();
        let harmful_w = check_harmful(sets, opts)?;
        let (anchor_points, anchor_w) = resolve_anchor(sets, opts, warnings)?;
        let mut storage = opts.inner.storage.clone();
        let own = if opts.debiased {
            check_dense(n, n, storage.budget).map_err(|e| {
                SotError::new(e.kind, format!("the debiased objective needs the {n} x {n} self cost: {}; use debiased = false", e.message))
            })?;
            storage.budget = storage.budget.saturating_sub(n * n * 4);
            Some(OwnTerm {
                cost: cost_matrix(x, x, opts.cost, ctl)?,
                last: None,
            })
        } else {
            None
        };
        let plans = plan(
            &[(n, anchor_points.nrows()), (n, sets.harmful.points.nrows())],
            &storage,
        )?;
        Ok(Objective {
            // the pull term's own copy: the anchor is small, and the objective keeps its points
            pull: Term::new(x, anchor_points.clone(), anchor_w, plans[0], opts, ctl)?,
            push: Term::new(x, sets.harmful.points, harmful_w, plans[1], opts, ctl)?,
            anchor: anchor_points,
            harmful: sets.harmful.points,
            own,
            lambda: opts.lambda,
            tau: opts.tau,
            // the truncated terms are verified once, at the end
            inner: SinkhornOptions {
                eps: opts.eps,
                storage: StorageOptions {
                    verify: false,
                    ..storage
                },
                ..opts.inner.clone()
            },
        })
    }

    /// The contamination estimate from the last solves: downstream scores
    /// `push - pull` (uncentred), the references scored leave-one-out.
    fn contamination(
        &self,
        e: &Eval,
        opts: &LearnerOptions,
        ctl: &Control,
    ) -> Result<Contamination> {
        let (s, h) = (
            self.pull.last.as_ref().expect("solved"),
            self.push.last.as_ref().expect("solved"),
        );
        let pull = FittedTerm {
            points: self.anchor.view(),
            weights: &self.pull.weights,
            g: &s.g,
        };
        let push = FittedTerm {
            points: self.harmful,
            weights: &self.push.weights,
            g: &h.g,
        };
        let scores: Vec<f64> = e.push.iter().zip(&e.pull).map(|(q, p)| q - p).collect();
        let clean = contamination::calibration_scores(
            &pull,
            &push,
            true,
            self.lambda,
            opts.eps,
            opts.cost,
            &[1],
            ctl,
        )?;
        let harmful = contamination::calibration_scores(
            &push,
            &pull,
            false,
            self.lambda,
            opts.eps,
            opts.cost,
            contamination::NEIGHBOURHOODS,
            ctl,
        )?;
        let harmful: Vec<&[f64]> = harmful.iter().map(Vec::as_slice).collect();
        contamination::estimate_among(&scores, &clean[0], &harmful, contamination::LEVEL)
    }

    /// J and its parts at `w`, the inner solves run to `tol`.
    fn eval(&mut self, w: &[f64], tol: f64, ctl: &Control) -> Result<Eval> {
        let lambda = self.lambda;
        self.inner.tol = tol;
        let s = self.pull.solve(w, &self.inner, ctl)?;
        let (mut pull, ot_s, ok_s, mut iterations) =
            (s.f.clone(), s.value, s.converged, s.iterations);
        let h = self.push.solve(w, &self.inner, ctl)?;
        let mut push: Vec<f64> = h.f.iter().map(|f| lambda * f).collect();
        let mut j = ot_s - lambda * h.value + self.tau * kl_to_uniform(w);
        let mut ok = ok_s && h.converged;
        iterations += h.iterations;
        if let Some(own) = self.own.as_mut() {
            // S(w, b) = OT(w, b) - OT(w, w)/2 - const, and d/dw OT(w, w)/2 = f_ww
            let r = own.solve(w, &self.inner, ctl)?;
            pull.iter_mut().zip(&r.f).for_each(|(p, f)| *p -= f);
            push.iter_mut()
                .zip(&r.f)
                .for_each(|(p, f)| *p -= lambda * f);
            j -= 0.5 * (1.0 - lambda) * r.value;
            ok &= r.converged;
            iterations += r.iterations;
        }
        Ok(Eval {
            j,
            iterations,
            pull,
            push,
            inner_converged: ok,
        })
    }
}

/// J(w) and its gradient on the simplex (centred), for diagnostics and tests.
pub fn objective(
    sets: &Sets,
    w: &[f64],
    opts: &LearnerOptions,
    ctl: &Control,
) -> Result<(f64, Vec<f64>)> {
    let n = sets.downstream.nrows();
    let w = validate::weights(Some(w), n, "w")?;
    let mut obj = Objective::new(sets, opts, ctl, &mut Vec::new())?;
    let e = obj.eval(&w, opts.inner.tol, ctl)?;
    let grad: Vec<f64> = (0..n)
        .map(|i| e.pull[i] - e.push[i] + opts.tau * ((n as f64 * w[i]).ln() + 1.0))
        .collect();
    Ok((e.j, centred(&grad)))
}

pub fn learn_weights(sets: &Sets, opts: &LearnerOptions, ctl: &Control) -> Result<LearnResult> {
    // each solve checks the options and the sets (Objective::new)
    let runs = Runs {
        first_step: 0,
        max_steps: if opts.own_harm_share > 0.0 { 2 } else { 1 } * opts.max_steps,
        estimate: true,
    };
    let mut first = solve(sets, opts, ctl, runs)?;
    let rows = own_harm_rows(&first.weights, opts.own_harm_share);
    if rows.is_empty() {
        return Ok(first);
    }
    let x = sets.downstream;
    // the reference's masses as the first solve normalised them
    let given = &first.fitted.harmful_weights;
    let (points, members) = own_harm_points(x, &rows, opts.cost, ctl)?;
    let joined = join_own_harm(sets.harmful.points, points.view());
    let mass = opts.own_harm_mass;
    let weights: Vec<f64> = given
        .iter()
        .map(|b| b * (1.0 - mass))
        .chain(std::iter::repeat_n(mass / rows.len() as f64, rows.len()))
        .collect();
    let second_sets = Sets {
        downstream: x.reborrow(),
        anchor: sets.anchor.map(|a| Reference {
            points: a.points.reborrow(),
            weights: a.weights,
        }),
        harmful: Reference {
            points: joined.view(),
            weights: Some(&weights),
        },
    };
    let runs = Runs {
        first_step: first.steps,
        estimate: false,
        ..runs
    };
    let mut second = solve(&second_sets, opts, ctl, runs)?;
    second.steps += first.steps;
    second.converged &= first.converged;
    second.inner_iterations += first.inner_iterations;
    second.contamination = first.contamination.take();
    let later = std::mem::replace(&mut second.warnings, first.warnings);
    for w in later {
        if !second.warnings.contains(&w) {
            second.warnings.push(w);
        }
    }
    second.fitted.own_harm_rows = rows;
    second.fitted.own_harm_points = points;
    second.fitted.own_harm_members = members;
    Ok(second)
}

/// The harmful reference's points, then the own-harm points: the points
/// that `Fitted::harmful_potential` describes.
pub(crate) fn join_own_harm(harmful: ArrayView2<f32>, own: ArrayView2<f32>) -> Array2<f32> {
    ndarray::concatenate(Axis(0), &[harmful, own])
        .expect("one dimension: both checked against the downstream set")
}

/// How many of the other own-harm rows each own-harm point averages.
pub const OWN_HARM_NEIGHBOURS: usize = 3;

/// One point per row of `rows` (more than `OWN_HARM_NEIGHBOURS` of them):
/// the mean of the `OWN_HARM_NEIGHBOURS` other rows nearest it (ties to the
/// lower index), never the row itself, so that no sample meets its own copy
/// at cost 0 (which would make its push extreme whatever it resembles) and
/// each point stands for a small group (the same answer in other words, the
/// same format). Also the rows each point averages, `take` per point,
/// nearest first.
pub(crate) fn own_harm_points(
    x: ArrayView2<f32>,
    rows: &[usize],
    cost: CostKind,
    ctl: &Control,
) -> Result<(Array2<f32>, Vec<usize>)> {
    let b = x.select(Axis(0), rows);
    let c = cost_matrix(b.view(), b.view(), cost, ctl)?;
    // `own_harm_rows` gives more rows than that
    let take = OWN_HARM_NEIGHBOURS.min(rows.len().saturating_sub(1));
    let mut out = Array2::zeros((rows.len(), x.ncols()));
    let mut members = Vec::with_capacity(rows.len() * take);
    for (i, mut point) in out.outer_iter_mut().enumerate() {
        let mut near: Vec<usize> = (0..rows.len()).filter(|j| *j != i).collect();
        near.sort_by(|p, q| c[[i, *p]].total_cmp(&c[[i, *q]]).then(p.cmp(q)));
        for j in &near[..take] {
            point.zip_mut_with(&b.row(*j), |p, v| *p += v / take as f32);
            members.push(rows[*j]);
        }
    }
    Ok((out, members))
}

/// Most downstream samples that join the harmful reference: the costs to it
/// grow with them, and the mean of a thousand places the harm as well.
pub const MAX_OWN_HARM: usize = 1000;

/// How many own-harm points `own_harm_rows` gives for `n` samples at
/// `share`: a fit on a sample gets fewer than its whole dataset would below
/// `MAX_OWN_HARM / share` sampled records.
pub fn own_harm_count(n: usize, share: f64) -> usize {
    let take = lowest_share(n, share);
    if take <= OWN_HARM_NEIGHBOURS {
        0
    } else {
        take.min(MAX_OWN_HARM)
    }
}

/// How many of `n` samples make up the lowest `share` of them.
fn lowest_share(n: usize, share: f64) -> usize {
    (share * n as f64).round() as usize
}

/// The rows of the lowest `share` of `weights` (ties to the lower index), at
/// most `MAX_OWN_HARM` evenly spaced in that order, ascending; none when
/// fewer than `OWN_HARM_NEIGHBOURS + 1`: each row's point averages that many
/// others, so that no point is a copy of one row.
pub fn own_harm_rows(weights: &[f64], share: f64) -> Vec<usize> {
    let keep = own_harm_count(weights.len(), share);
    if keep == 0 {
        return Vec::new();
    }
    let take = lowest_share(weights.len(), share);
    let mut order: Vec<usize> = (0..weights.len()).collect();
    order.sort_by(|a, b| weights[*a].total_cmp(&weights[*b]).then(a.cmp(b)));
    let mut rows: Vec<usize> = (0..keep).map(|k| order[k * take / keep]).collect();
    rows.sort_unstable();
    rows
}

/// Where one run of the learner stands among the runs of a call.
#[derive(Clone, Copy)]
struct Runs {
    /// Steps of the earlier runs: its progress counts on from them.
    first_step: usize,
    /// Steps of all runs at most, as progress reports them.
    max_steps: usize,
    /// Whether this run gives the contamination estimate.
    estimate: bool,
}

/// One run of the learner.
fn solve(sets: &Sets, opts: &LearnerOptions, ctl: &Control, runs: Runs) -> Result<LearnResult> {
    let Runs {
        first_step,
        max_steps,
        estimate,
    } = runs;
    let n = sets.downstream.nrows();
    let mut warnings = Vec::new();
    let quiet = ctl.cancel_only();
    let mut obj = Objective::new(sets, opts, &quiet, &mut warnings)?;

    let mut log_w = vec![-(n as f64).ln(); n];
    let mut w = vec![1.0 / n as f64; n];
    let floor = opts.inner.tol;
    let mut tol = (INEXACT * 2.0).max(floor);
    let mut e = obj.eval(&w, tol, &quiet)?;
    let mut inner_iterations = e.iterations;
    let mut objective = vec![e.j];
    let mut reporter = ctl.reporter();
    let mut step = opts.step;
    let mut steps = 0;
    let mut converged = false;
    while !converged && steps < opts.max_steps {
        ctl.check()?;
        reporter.report(
            Progress {
                stage: "learner",
                iteration: first_step + steps,
                max_iterations: max_steps,
                error: e.j,
                eps: opts.eps,
            },
            false,
        );
        // log w <- (1 - step) log w + step * (-(pull - push) / tau), then renormalise
        for (lw, (p, q)) in log_w.iter_mut().zip(e.pull.iter().zip(&e.push)) {
            *lw = (1.0 - step) * *lw - step * (p - q) / opts.tau;
        }
        let top = log_w.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let norm = top + log_w.iter().map(|v| (v - top).exp()).sum::<f64>().ln();
        log_w.iter_mut().for_each(|lw| *lw -= norm);
        let moved: f64 = w
            .iter()
            .zip(&log_w)
            .map(|(wi, lw)| (wi - lw.exp()).abs())
            .sum();
        w.iter_mut().zip(&log_w).for_each(|(wi, lw)| *wi = lw.exp());
        if let Some(i) = w.iter().position(|v| !(v.is_finite() && *v > 0.0)) {
            // Else the next inner solve would blame "weights" the caller never gave.
            return Err(SotError::new(
                ErrorKind::InvalidOption,
                format!(
                    "tau = {} is too small for lambda = {} on these costs: at step {} the weight of sample {i} left the range of f64 ({}); use a larger tau or a smaller lambda",
                    short(opts.tau), short(opts.lambda), steps + 1, w[i]
                ),
            ));
        }
        let before = e.j;
        // Inexact inner solves while the weights still move a lot (their error
        // shrinks with the step), to the full tolerance near the end.
        tol = (INEXACT * moved).max(floor);
        e = obj.eval(&w, tol, &quiet)?;
        inner_iterations += e.iterations;
        objective.push(e.j);
        steps += 1;
        // The push term is concave: a step that raises J overshot, so damp the next ones.
        step = if e.j > before {
            (step * 0.5).max(MIN_STEP)
        } else {
            (step * 1.1).min(opts.step)
        };
        converged = steps > WINDOW && {
            let past = objective[objective.len() - 1 - WINDOW];
            (past - e.j).abs() <= opts.tol * e.j.abs().max(opts.tau)
        };
    }
    if tol > floor {
        // the last step was solved loosely: the returned scores are not
        e = obj.eval(&w, floor, &quiet)?;
        inner_iterations += e.iterations;
    }
    // Leave-one-out needs two points per reference; an estimate that fails is reported, not fatal.
    let contamination =
        if !estimate || opts.debiased || obj.anchor.nrows() < 2 || obj.harmful.nrows() < 2 {
            None
        } else {
            match obj.contamination(&e, opts, &quiet) {
                Ok(c) => Some(c),
                Err(err) if err.kind == ErrorKind::Aborted => return Err(err),
                Err(err) => {
                    warnings.push(format!("no contamination estimate: {}", err.message));
                    None
                }
            }
        };
    let verify = opts.inner.storage.verify;
    let anchor_storage = obj.pull.report(&w, verify, &quiet)?;
    let harmful_storage = obj.push.report(&w, verify, &quiet)?;
    let (s, h) = (
        obj.pull.last.as_ref().expect("solved"),
        obj.push.last.as_ref().expect("solved"),
    );
    let fitted = Fitted {
        eps: opts.eps,
        anchor_potential: s.g.clone(),
        anchor_weights: obj.pull.weights.clone(),
        anchor_rows: sets
            .anchor
            .is_none()
            .then(|| self_anchor_rows(n, opts.max_self_anchor)),
        own_harm_rows: Vec::new(),
        own_harm_points: Array2::zeros((0, sets.downstream.ncols())),
        own_harm_members: Vec::new(),
        harmful_potential: h.g.clone(),
        harmful_weights: obj.push.weights.clone(),
        scale: ScoreScale::learner(&s.f, &h.f, opts.lambda, opts.tau),
    };
    reporter.report(
        Progress {
            stage: "learner",
            iteration: first_step + steps,
            max_iterations: max_steps,
            error: e.j,
            eps: opts.eps,
        },
        true,
    );
    Ok(LearnResult {
        weights: w,
        pull: centred(&e.pull),
        push: centred(&e.push),
        objective,
        steps,
        converged,
        inner_converged: e.inner_converged,
        inner_iterations,
        anchor_is_downstream: sets.anchor.is_none(),
        anchor_storage,
        harmful_storage,
        fitted,
        contamination,
        warnings,
    })
}

/// Inner tolerance per unit of L1 change of the weights over the last step
/// (never below `inner.tol`): early steps move the weights far, so solving
/// them to the full tolerance is wasted (measured: 2.4x fewer passes at equal
/// final weights, within the learner's own tolerance).
const INEXACT: f64 = 0.01;

/// Smallest step the damping goes down to.
const MIN_STEP: f64 = 1e-3;
/// Steps over which the objective must settle.
const WINDOW: usize = 5;

/// The pull target: the given anchor (validated), or evenly spaced downstream samples.
pub(crate) fn resolve_anchor(
    sets: &Sets,
    opts: &LearnerOptions,
    warnings: &mut Vec<String>,
) -> Result<(Array2<f32>, Option<Vec<f64>>)> {
    let x = sets.downstream;
    let n = x.nrows();
    match sets.anchor {
        Some(a) => {
            check_pair(&x, &a.points, opts.cost).map_err(|e| rename(e, "anchor"))?;
            let w = a
                .weights
                .map(|w| validate::weights(Some(w), a.points.nrows(), "anchor weights"))
                .transpose()?;
            Ok((a.points.to_owned(), w))
        }
        None => {
            validate::non_empty(&x, "downstream")?;
            let rows = self_anchor_rows(n, opts.max_self_anchor);
            let take = rows.len();
            warnings.push(format!(
                "no safe anchor given: pulling towards the downstream set itself ({take} of {n} samples); \
                 a trusted anchor of clean task samples separates harm better"
            ));
            Ok((x.select(Axis(0), &rows), None))
        }
    }
}

/// The evenly spaced downstream rows that stand in for a missing anchor.
pub fn self_anchor_rows(n: usize, max: usize) -> Vec<usize> {
    let take = n.min(max);
    (0..take).map(|k| k * n / take).collect()
}

/// Validates the downstream and harmful sets; returns the normalised harmful weights.
pub(crate) fn check_harmful(sets: &Sets, opts: &LearnerOptions) -> Result<Option<Vec<f64>>> {
    check_pair(&sets.downstream, &sets.harmful.points, opts.cost)
        .map_err(|e| rename(e, "harmful"))?;
    sets.harmful
        .weights
        .map(|w| validate::weights(Some(w), sets.harmful.points.nrows(), "harmful weights"))
        .transpose()
}

fn kl_to_uniform(w: &[f64]) -> f64 {
    let n = w.len() as f64;
    w.iter()
        .filter(|v| **v > 0.0)
        .map(|v| v * (v * n).ln())
        .sum()
}

/// Names the set in an error raised by `check_pair(downstream, set)`.
fn rename(mut e: SotError, set: &str) -> SotError {
    e.message = e
        .message
        .replace("x[", "downstream[")
        .replace("x has", "downstream has")
        .replace("y[", &format!("{set}["))
        .replace("y has", &format!("{set} has"));
    e
}
