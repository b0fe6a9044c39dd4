//! Out-of-sample scoring against fitted reference potentials (`sot_core::score`).

use crate::cancel::CancelToken;
use crate::convert::{matrix_view, Matrix, Owned};
use crate::result::{settle, Settled};
use crate::tasks::{Job, ProgressCallback};
use napi::bindgen_prelude::{AsyncTask, Float64Array};
use napi::{Env, Error, Result, Task};
use napi_derive::napi;
use sot_core::{
    marginal_error, ColumnSums, CostKind, FittedModel, FittedReference, Keep, LogSums, ScoreScale,
    Scored, Selection,
};

/// A reference set with its fitted potential.
#[napi(object, object_to_js = false)]
pub struct FittedReferenceInput {
    pub points: Matrix,
    #[napi(ts_type = "Float64Array")]
    pub weights: Owned<f64>,
    #[napi(ts_type = "Float64Array")]
    pub potential: Owned<f64>,
}

/// `pull = pullScale f_S - pullOffset`, `push = pushScale f_H - pushOffset`, `score = (push - pull) / tau`.
#[napi(object)]
pub struct ScoreScaleInput {
    pub pull_scale: f64,
    pub pull_offset: f64,
    pub push_scale: f64,
    pub push_offset: f64,
    pub tau: f64,
}

#[napi(object, object_to_js = false)]
pub struct FittedModelInput {
    pub cost: String,
    pub eps: f64,
    pub anchor: FittedReferenceInput,
    pub harmful: FittedReferenceInput,
    pub scale: ScoreScaleInput,
}

#[napi(object)]
pub struct ScoredOutput {
    pub pull: Float64Array,
    pub push: Float64Array,
    /// Higher = keep.
    pub score: Float64Array,
}

pub struct ScoreModelTask {
    samples: Matrix,
    model: FittedModelInput,
    job: Job,
}

impl Task for ScoreModelTask {
    type Output = Scored;
    type JsValue = Settled;

    fn compute(&mut self) -> Result<Self::Output> {
        let Self {
            samples,
            model,
            job,
        } = self;
        job.run(|ctl| {
            Ok(sot_core::score_samples(
                matrix_view(samples, "samples")?,
                &fitted(model)?,
                ctl,
            )?)
        })
    }

    fn resolve(&mut self, env: Env, s: Self::Output) -> Result<Self::JsValue> {
        settle(
            &env,
            ScoredOutput {
                pull: s.pull.into(),
                push: s.push.into(),
                score: s.score.into(),
            },
        )
    }

    fn reject(&mut self, env: Env, err: Error) -> Result<Self::JsValue> {
        self.job.reject(&env, err)
    }
}

fn fitted(model: &FittedModelInput) -> std::result::Result<FittedModel<'_>, crate::error::Failure> {
    let s = &model.scale;
    Ok(FittedModel {
        cost: CostKind::parse(&model.cost)?,
        eps: model.eps,
        anchor: reference(&model.anchor, "anchor")?,
        harmful: reference(&model.harmful, "harmful")?,
        scale: ScoreScale {
            pull_scale: s.pull_scale,
            pull_offset: s.pull_offset,
            push_scale: s.push_scale,
            push_offset: s.push_offset,
            tau: s.tau,
        },
    })
}

fn reference<'a>(
    r: &'a FittedReferenceInput,
    name: &str,
) -> std::result::Result<FittedReference<'a>, crate::error::Failure> {
    Ok(FittedReference {
        points: matrix_view(&r.points, name)?,
        weights: &r.weights.0[..],
        potential: &r.potential.0[..],
    })
}

/// Scores each sample against a fitted model by c-transform, independently of the other samples.
#[napi(ts_return_type = "Promise<ScoredOutput>")]
pub fn score_with_model(
    samples: Matrix,
    model: FittedModelInput,
    token: Option<&CancelToken>,
    #[napi(ts_arg_type = "(event: ProgressEvent) => void")] progress: Option<ProgressCallback>,
    progress_interval_ms: Option<u32>,
) -> AsyncTask<ScoreModelTask> {
    AsyncTask::new(ScoreModelTask {
        samples,
        model,
        job: Job::new(token, progress, progress_interval_ms),
    })
}

/// Per entry, a log-sum-exp held as `max + ln sum` (`sot_core::LogSums`).
#[napi(object)]
pub struct LogSumsOutput {
    pub max: Float64Array,
    pub sum: Float64Array,
}

/// A part of the records' contribution to the update of a model's reference
/// potentials (`sot_core::ColumnSums`): parts of disjoint records merge.
#[napi(object)]
pub struct ColumnSumsOutput {
    pub anchor: LogSumsOutput,
    pub harmful: LogSumsOutput,
    pub total: LogSumsOutput,
}

#[napi(object, object_to_js = false)]
pub struct LogSumsInput {
    #[napi(ts_type = "Float64Array")]
    pub max: Owned<f64>,
    #[napi(ts_type = "Float64Array")]
    pub sum: Owned<f64>,
}

#[napi(object, object_to_js = false)]
pub struct ColumnSumsInput {
    pub anchor: LogSumsInput,
    pub harmful: LogSumsInput,
    pub total: LogSumsInput,
}

impl From<&LogSumsInput> for LogSums {
    fn from(s: &LogSumsInput) -> Self {
        LogSums {
            max: s.max.0.clone(),
            sum: s.sum.0.clone(),
        }
    }
}

fn log_sums_output(s: LogSums) -> LogSumsOutput {
    LogSumsOutput {
        max: s.max.into(),
        sum: s.sum.into(),
    }
}

fn column_sums_output(s: ColumnSums) -> ColumnSumsOutput {
    ColumnSumsOutput {
        anchor: log_sums_output(s.anchor),
        harmful: log_sums_output(s.harmful),
        total: log_sums_output(s.total),
    }
}

pub struct ColumnSumsTask {
    samples: Matrix,
    model: FittedModelInput,
    job: Job,
}

impl Task for ColumnSumsTask {
    type Output = ColumnSums;
    type JsValue = Settled;

    fn compute(&mut self) -> Result<Self::Output> {
        let Self {
            samples,
            model,
            job,
        } = self;
        job.run(|ctl| {
            Ok(ColumnSums::of(
                matrix_view(samples, "samples")?,
                &fitted(model)?,
                ctl,
            )?)
        })
    }

    fn resolve(&mut self, env: Env, s: Self::Output) -> Result<Self::JsValue> {
        settle(&env, column_sums_output(s))
    }

    fn reject(&mut self, env: Env, err: Error) -> Result<Self::JsValue> {
        self.job.reject(&env, err)
    }
}

/// What the samples contribute to the update of the model's reference
/// potentials over all records (`refitPotentials`).
#[napi(ts_return_type = "Promise<ColumnSumsOutput>")]
pub fn column_sums(
    samples: Matrix,
    model: FittedModelInput,
    token: Option<&CancelToken>,
) -> AsyncTask<ColumnSumsTask> {
    AsyncTask::new(ColumnSumsTask {
        samples,
        model,
        job: Job::new(token, None, None),
    })
}

/// Updated reference potentials, and how far the records' transport under
/// the previous ones missed the reference weights (the L1 marginal error,
/// the larger of the two sets').
#[napi(object)]
pub struct RefittedOutput {
    pub anchor: Float64Array,
    pub harmful: Float64Array,
    pub error: f64,
}

/// The reference weights and the potentials the parts were summed under.
#[napi(object, object_to_js = false)]
pub struct RefitPrevious {
    #[napi(ts_type = "Float64Array")]
    pub anchor_weights: Owned<f64>,
    #[napi(ts_type = "Float64Array")]
    pub anchor_potential: Owned<f64>,
    #[napi(ts_type = "Float64Array")]
    pub harmful_weights: Owned<f64>,
    #[napi(ts_type = "Float64Array")]
    pub harmful_potential: Owned<f64>,
}

/// Merges parts of disjoint records; with `eps`, finishes into the updated potentials.
pub struct MergeTask {
    parts: Vec<ColumnSumsInput>,
    finish: Option<(f64, RefitPrevious)>,
    job: Job,
}

pub enum Merged {
    Sums(ColumnSums),
    Potentials(Vec<f64>, Vec<f64>, f64),
}

impl Task for MergeTask {
    type Output = Merged;
    type JsValue = Settled;

    fn compute(&mut self) -> Result<Self::Output> {
        let Self { parts, finish, job } = self;
        job.run(|_| {
            let mut all: Option<ColumnSums> = None;
            for p in parts.iter() {
                let p = ColumnSums {
                    anchor: (&p.anchor).into(),
                    harmful: (&p.harmful).into(),
                    total: (&p.total).into(),
                };
                match all.as_mut() {
                    None => all = Some(p),
                    Some(a) => a.merge(&p)?,
                }
            }
            let all = all.unwrap_or_else(|| ColumnSums::empty(0, 0));
            Ok(match finish {
                Some((eps, p)) => {
                    let (a, h) = all.potentials(*eps)?;
                    let error =
                        marginal_error(&p.anchor_weights.0, &p.anchor_potential.0, &a, *eps)?.max(
                            marginal_error(&p.harmful_weights.0, &p.harmful_potential.0, &h, *eps)?,
                        );
                    Merged::Potentials(a, h, error)
                }
                None => Merged::Sums(all),
            })
        })
    }

    fn resolve(&mut self, env: Env, m: Self::Output) -> Result<Self::JsValue> {
        match m {
            Merged::Sums(s) => settle(&env, column_sums_output(s)),
            Merged::Potentials(anchor, harmful, error) => settle(
                &env,
                RefittedOutput {
                    anchor: anchor.into(),
                    harmful: harmful.into(),
                    error,
                },
            ),
        }
    }

    fn reject(&mut self, env: Env, err: Error) -> Result<Self::JsValue> {
        self.job.reject(&env, err)
    }
}

/// Merges parts of disjoint records into one.
#[napi(ts_return_type = "Promise<ColumnSumsOutput>")]
pub fn merge_column_sums(parts: Vec<ColumnSumsInput>) -> AsyncTask<MergeTask> {
    AsyncTask::new(MergeTask {
        parts,
        finish: None,
        job: Job::new(None, None, None),
    })
}

/// Merges the parts (of disjoint records, summed under the `previous`
/// potentials) and returns the updated reference potentials.
#[napi(ts_return_type = "Promise<RefittedOutput>")]
pub fn refit_potentials(
    parts: Vec<ColumnSumsInput>,
    eps: f64,
    previous: RefitPrevious,
) -> AsyncTask<MergeTask> {
    AsyncTask::new(MergeTask {
        parts,
        finish: Some((eps, previous)),
        job: Job::new(None, None, None),
    })
}

pub struct SelectScoredTask {
    scores: Owned<f64>,
    keep: Keep,
    job: Job,
}

impl Task for SelectScoredTask {
    type Output = Selection;
    type JsValue = Settled;

    fn compute(&mut self) -> Result<Self::Output> {
        let Self { scores, keep, job } = self;
        job.run(|_| {
            let w = sot_core::gibbs_weights(scores);
            Ok(sot_core::select_top_k(scores, *keep, Some(&w))?)
        })
    }

    fn resolve(&mut self, env: Env, s: Self::Output) -> Result<Self::JsValue> {
        settle(&env, crate::learn::selection_output(s))
    }

    fn reject(&mut self, env: Env, err: Error) -> Result<Self::JsValue> {
        self.job.reject(&env, err)
    }
}

/// Keeps the top samples by a model's score (`count`, or a `fraction`), with
/// training weights in the learner's Gibbs form, `∝ exp(score)`, mean 1 over the kept.
#[napi(ts_return_type = "Promise<SelectionOutput>")]
pub fn select_scored(
    #[napi(ts_arg_type = "Float64Array")] scores: Owned<f64>,
    count: Option<u32>,
    fraction: Option<f64>,
) -> AsyncTask<SelectScoredTask> {
    let keep = match (count, fraction) {
        (_, Some(f)) => Keep::Fraction(f),
        (c, None) => Keep::Count(c.unwrap_or(0) as usize),
    };
    AsyncTask::new(SelectScoredTask {
        scores,
        keep,
        job: Job::new(None, None, None),
    })
}

pub struct GibbsTask {
    scores: Owned<f64>,
    job: Job,
}

impl Task for GibbsTask {
    type Output = Vec<f64>;
    type JsValue = Settled;

    fn compute(&mut self) -> Result<Self::Output> {
        let Self { scores, job } = self;
        job.run(|_| Ok(sot_core::gibbs_distribution(scores)?))
    }

    fn resolve(&mut self, env: Env, w: Self::Output) -> Result<Self::JsValue> {
        settle(&env, Float64Array::from(w))
    }

    fn reject(&mut self, env: Env, err: Error) -> Result<Self::JsValue> {
        self.job.reject(&env, err)
    }
}

/// Every sample's Gibbs weight over all samples, `∝ exp(score)`, summing to 1.
#[napi(ts_return_type = "Promise<Float64Array>")]
pub fn gibbs_weights(
    #[napi(ts_arg_type = "Float64Array")] scores: Owned<f64>,
) -> AsyncTask<GibbsTask> {
    AsyncTask::new(GibbsTask {
        scores,
        job: Job::new(None, None, None),
    })
}
