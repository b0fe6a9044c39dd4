//! Tasks of the SOT method: the push-pull learner, the baselines and top-K selection.

use crate::cancel::CancelToken;
use crate::convert::{matrix_view, slice, Matrix, Owned};
use crate::result::{settle, Settled};
use crate::storage::{StorageInput, StorageOutput};
use crate::tasks::{Job, ProgressCallback};
use napi::bindgen_prelude::{AsyncTask, Float32Array, Float64Array, Uint32Array, Uint8Array};
use napi::{Env, Error, Result, Task};
use napi_derive::napi;
use sot_core::contamination::Verdict;
use sot_core::{
    Baseline, CostKind, ErrorKind, Keep, LearnResult, LearnerOptions, Reference, Selection,
    SinkhornOptions, SotError,
};

/// The downstream set to weight and the reference sets.
#[napi(object, object_to_js = false)]
pub struct LearnSets {
    pub downstream: Matrix,
    pub anchor: Option<Matrix>,
    #[napi(ts_type = "Float64Array")]
    pub anchor_weights: Option<Owned<f64>>,
    pub harmful: Matrix,
    #[napi(ts_type = "Float64Array")]
    pub harmful_weights: Option<Owned<f64>>,
}

/// Learner options; absent fields take the core's defaults.
#[napi(object)]
#[derive(Default)]
pub struct LearnOptions {
    pub cost: Option<String>,
    pub eps: Option<f64>,
    pub lambda: Option<f64>,
    pub tau: Option<f64>,
    pub step: Option<f64>,
    pub max_steps: Option<u32>,
    pub tol: Option<f64>,
    pub debiased: Option<bool>,
    pub max_self_anchor: Option<u32>,
    /// Share of the downstream samples, the lowest-weighted of a first solve,
    /// that join the harmful reference for a second solve (0: one solve).
    pub own_harm_share: Option<f64>,
    /// Their share of the joined reference's mass.
    pub own_harm_mass: Option<f64>,
    pub inner_tol: Option<f64>,
    pub inner_max_iter: Option<u32>,
    pub inner_overrelax: Option<bool>,
    /// How the costs of both terms are held, within one budget.
    pub storage: Option<StorageInput>,
    pub progress_interval_ms: Option<u32>,
}

impl LearnOptions {
    fn to_core(&self) -> sot_core::Result<LearnerOptions> {
        let d = LearnerOptions::default();
        Ok(LearnerOptions {
            cost: self.cost.as_deref().map_or(Ok(d.cost), CostKind::parse)?,
            eps: self.eps.unwrap_or(d.eps),
            lambda: self.lambda.unwrap_or(d.lambda),
            tau: self.tau.unwrap_or(d.tau),
            step: self.step.unwrap_or(d.step),
            max_steps: self.max_steps.map_or(d.max_steps, |v| v as usize),
            tol: self.tol.unwrap_or(d.tol),
            debiased: self.debiased.unwrap_or(d.debiased),
            max_self_anchor: self
                .max_self_anchor
                .map_or(d.max_self_anchor, |v| v as usize),
            own_harm_share: self.own_harm_share.unwrap_or(d.own_harm_share),
            own_harm_mass: self.own_harm_mass.unwrap_or(d.own_harm_mass),
            inner: SinkhornOptions {
                tol: self.inner_tol.unwrap_or(d.inner.tol),
                max_iter: self.inner_max_iter.map_or(d.inner.max_iter, |v| v as usize),
                overrelax: self.inner_overrelax.unwrap_or(d.inner.overrelax),
                storage: StorageInput::to_core(&self.storage)?,
                ..d.inner
            },
        })
    }
}

#[napi(object)]
pub struct LearnOutput {
    pub weights: Float64Array,
    pub pull: Float64Array,
    pub push: Float64Array,
    pub objective: Float64Array,
    pub steps: u32,
    pub converged: bool,
    pub inner_converged: bool,
    /// Sinkhorn iterations of all inner solves together.
    pub inner_iterations: u32,
    pub anchor_is_downstream: bool,
    /// How the costs to the anchor and to the harmful reference were held.
    pub anchor_storage: StorageOutput,
    pub harmful_storage: StorageOutput,
    /// The reference side of the last solves, for scoring new samples (`scoreWithModel`).
    pub fitted: FittedOutput,
    /// How contaminated the downstream set looks; absent with the debiased objective.
    pub contamination: Option<ContaminationOutput>,
    /// How many samples `keep: 'auto'` keeps: all when there is no estimate,
    /// none given when the estimate's verdict is inconclusive.
    pub auto_keep: Option<u32>,
    pub warnings: Vec<String>,
}

#[napi(object)]
pub struct FittedOutput {
    pub eps: f64,
    pub anchor_potential: Float64Array,
    pub anchor_weights: Float64Array,
    /// Without an anchor: the downstream rows that formed it.
    pub anchor_rows: Option<Uint32Array>,
    /// The downstream rows whose own-harm points joined the harmful reference (ascending).
    pub own_harm_rows: Uint32Array,
    /// One point per own-harm row (row-major, the embedding dimension wide):
    /// the harmful potential and weights cover the reference's points, then these.
    pub own_harm_points: Float32Array,
    /// The downstream rows each own-harm point is the mean of, 3 per point, nearest first.
    pub own_harm_members: Uint32Array,
    pub harmful_potential: Float64Array,
    pub harmful_weights: Float64Array,
    pub scale: crate::score::ScoreScaleInput,
}

#[napi(object)]
pub struct ContaminationOutput {
    pub estimate: f64,
    pub low: f64,
    pub high: f64,
    pub level: f64,
    pub method: String,
    pub clean: bool,
    /// 'clean', 'contaminated' or 'inconclusive'.
    pub verdict: String,
}

impl From<LearnResult> for LearnOutput {
    fn from(r: LearnResult) -> Self {
        let n = r.weights.len();
        let auto_keep = r
            .contamination
            .as_ref()
            .map_or(Some(n), |c| sot_core::contamination::auto_keep(c, n))
            .map(|k| k as u32);
        LearnOutput {
            weights: r.weights.into(),
            pull: r.pull.into(),
            push: r.push.into(),
            objective: r.objective.into(),
            steps: r.steps as u32,
            converged: r.converged,
            inner_converged: r.inner_converged,
            inner_iterations: r.inner_iterations as u32,
            anchor_is_downstream: r.anchor_is_downstream,
            anchor_storage: r.anchor_storage.into(),
            harmful_storage: r.harmful_storage.into(),
            fitted: FittedOutput {
                eps: r.fitted.eps,
                anchor_potential: r.fitted.anchor_potential.into(),
                anchor_weights: r.fitted.anchor_weights.into(),
                anchor_rows: r.fitted.anchor_rows.map(u32s),
                own_harm_rows: u32s(r.fitted.own_harm_rows),
                own_harm_points: r
                    .fitted
                    .own_harm_points
                    .into_iter()
                    .collect::<Vec<f32>>()
                    .into(),
                own_harm_members: u32s(r.fitted.own_harm_members),
                harmful_potential: r.fitted.harmful_potential.into(),
                harmful_weights: r.fitted.harmful_weights.into(),
                scale: crate::score::ScoreScaleInput {
                    pull_scale: r.fitted.scale.pull_scale,
                    pull_offset: r.fitted.scale.pull_offset,
                    push_scale: r.fitted.scale.push_scale,
                    push_offset: r.fitted.scale.push_offset,
                    tau: r.fitted.scale.tau,
                },
            },
            contamination: r.contamination.map(|c| ContaminationOutput {
                estimate: c.estimate,
                low: c.low,
                high: c.high,
                level: c.level,
                method: c.method.to_string(),
                clean: c.verdict == Verdict::Clean,
                verdict: c.verdict.as_str().to_string(),
            }),
            auto_keep,
            warnings: r.warnings,
        }
    }
}

/// Which scores to compute: the learner or a baseline.
enum Method {
    Learn,
    Baseline(Baseline),
    /// A name no method has; compute() reports it like any other option error.
    Unknown(String),
}

pub struct ScoreTask {
    sets: LearnSets,
    options: LearnOptions,
    method: Method,
    job: Job,
}

// One value per task, moved once to the JS thread: boxing would buy nothing.
#[allow(clippy::large_enum_variant)]
pub enum Scored {
    Learned(LearnResult),
    Baseline(Vec<f64>, Vec<String>),
}

impl Task for ScoreTask {
    type Output = Scored;
    type JsValue = Settled;

    fn compute(&mut self) -> Result<Self::Output> {
        let Self {
            sets,
            options,
            method,
            job,
        } = self;
        job.run(|ctl| {
            let opts = options.to_core()?;
            let downstream = matrix_view(&sets.downstream, "downstream")?;
            let harmful = Reference { points: matrix_view(&sets.harmful, "harmful")?, weights: slice(&sets.harmful_weights) };
            let anchor = match &sets.anchor {
                Some(a) => Some(Reference { points: matrix_view(a, "anchor")?, weights: slice(&sets.anchor_weights) }),
                None => None,
            };
            let core_sets = sot_core::Sets { downstream, anchor, harmful };
            Ok(match method {
                Method::Learn => Scored::Learned(sot_core::learn_weights(&core_sets, &opts, ctl)?),
                Method::Baseline(b) => {
                    let (scores, warnings) = sot_core::baseline_scores(*b, &core_sets, &opts, ctl)?;
                    Scored::Baseline(scores, warnings)
                }
                Method::Unknown(name) => {
                    return Err(SotError::new(
                        ErrorKind::InvalidOption,
                        format!("unknown baseline '{name}' (expected random, pull-only, push-only, nearest-harmful or saft)"),
                    )
                    .into())
                }
            })
        })
    }

    fn resolve(&mut self, env: Env, output: Self::Output) -> Result<Self::JsValue> {
        let out: napi::Either<LearnOutput, BaselineOutput> = match output {
            Scored::Learned(r) => napi::Either::A(r.into()),
            Scored::Baseline(scores, warnings) => napi::Either::B(BaselineOutput {
                scores: scores.into(),
                warnings,
            }),
        };
        settle(&env, out)
    }

    fn reject(&mut self, env: Env, err: Error) -> Result<Self::JsValue> {
        self.job.reject(&env, err)
    }
}

#[napi(object)]
pub struct BaselineOutput {
    /// One score per downstream sample; higher means keep.
    pub scores: Float64Array,
    pub warnings: Vec<String>,
}

/// Learns SOT weights over the downstream set (push-pull optimal transport).
#[napi(ts_return_type = "Promise<LearnOutput>")]
pub fn learn_weights(
    sets: LearnSets,
    options: Option<LearnOptions>,
    token: Option<&CancelToken>,
    #[napi(ts_arg_type = "(event: ProgressEvent) => void")] progress: Option<ProgressCallback>,
) -> AsyncTask<ScoreTask> {
    let options = options.unwrap_or_default();
    let job = Job::new(token, progress, options.progress_interval_ms);
    AsyncTask::new(ScoreTask {
        sets,
        options,
        method: Method::Learn,
        job,
    })
}

/// Scores of a baseline selector: `random` (with `seed`), `pull-only`,
/// `push-only`, `nearest-harmful` or `saft` (with `components`).
#[napi(ts_return_type = "Promise<BaselineOutput>")]
pub fn baseline_scores(
    method: String,
    sets: LearnSets,
    options: Option<LearnOptions>,
    seed: Option<u32>,
    components: Option<u32>,
    token: Option<&CancelToken>,
) -> AsyncTask<ScoreTask> {
    let method = match method.as_str() {
        "random" => Method::Baseline(Baseline::Random {
            seed: seed.unwrap_or(0) as u64,
        }),
        "pull-only" => Method::Baseline(Baseline::PullOnly),
        "push-only" => Method::Baseline(Baseline::PushOnly),
        "nearest-harmful" => Method::Baseline(Baseline::NearestHarmful),
        "saft" => Method::Baseline(Baseline::Saft {
            components: components.unwrap_or(1) as usize,
        }),
        _ => Method::Unknown(method),
    };
    let options = options.unwrap_or_default();
    AsyncTask::new(ScoreTask {
        sets,
        options,
        method,
        job: Job::new(token, None, None),
    })
}

#[napi(object)]
pub struct SelectionOutput {
    /// Sample indices from best to worst.
    pub order: Uint32Array,
    /// Rank of each sample (0 = best).
    pub rank: Uint32Array,
    /// 1 for kept samples, 0 for dropped ones.
    pub kept: Uint8Array,
    /// Training weight: mean 1 over the kept samples, 0 for the dropped.
    pub train_weight: Float64Array,
    pub k: u32,
}

/// Row indices as JS receives them.
fn u32s(v: Vec<usize>) -> Uint32Array {
    v.into_iter().map(|x| x as u32).collect::<Vec<_>>().into()
}

pub(crate) fn selection_output(s: Selection) -> SelectionOutput {
    SelectionOutput {
        order: u32s(s.order),
        rank: u32s(s.rank),
        kept: s.kept.into_iter().map(u8::from).collect::<Vec<_>>().into(),
        train_weight: s.train_weight.into(),
        k: s.k as u32,
    }
}

pub struct SelectTask {
    scores: Owned<f64>,
    keep: Keep,
    weights: Option<Owned<f64>>,
    job: Job,
}

impl Task for SelectTask {
    type Output = Selection;
    type JsValue = Settled;

    fn compute(&mut self) -> Result<Self::Output> {
        let Self {
            scores,
            keep,
            weights,
            job,
        } = self;
        job.run(|_| Ok(sot_core::select_top_k(scores, *keep, slice(weights))?))
    }

    fn resolve(&mut self, env: Env, s: Self::Output) -> Result<Self::JsValue> {
        settle(&env, selection_output(s))
    }

    fn reject(&mut self, env: Env, err: Error) -> Result<Self::JsValue> {
        self.job.reject(&env, err)
    }
}

/// Keeps the top samples by score (higher is better): `count` samples, or a
/// `fraction` of them. Training weights follow `weights` (uniform when absent).
#[napi(ts_return_type = "Promise<SelectionOutput>")]
pub fn select_top_k(
    #[napi(ts_arg_type = "Float64Array")] scores: Owned<f64>,
    count: Option<u32>,
    fraction: Option<f64>,
    #[napi(ts_arg_type = "Float64Array | undefined | null")] weights: Option<Owned<f64>>,
) -> AsyncTask<SelectTask> {
    // The facade passes exactly one of count and fraction; an absent count with no fraction is K = 0, rejected by the core.
    let keep = match (count, fraction) {
        (_, Some(f)) => Keep::Fraction(f),
        (c, None) => Keep::Count(c.unwrap_or(0) as usize),
    };
    AsyncTask::new(SelectTask {
        scores,
        keep,
        weights,
        job: Job::new(None, None, None),
    })
}

/// How many own-harm points the learner's second solve takes from `records`
/// samples at `share`: the core's rule, for a fit to compare its sample with
/// its whole dataset.
#[napi]
pub fn own_harm_count(records: f64, share: f64) -> u32 {
    let n = if records.is_finite() && records > 0.0 {
        records as usize
    } else {
        0
    };
    sot_core::own_harm_count(n, share) as u32
}
