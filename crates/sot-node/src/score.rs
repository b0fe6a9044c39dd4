//! Out-of-sample scoring against fitted reference potentials (`sot_core::score`).

use crate::cancel::CancelToken;
use crate::convert::{matrix_view, Matrix, Owned};
use crate::result::{settle, Settled};
use crate::tasks::{Job, ProgressCallback};
use napi::bindgen_prelude::{AsyncTask, Float64Array};
use napi::{Env, Error, Result, Task};
use napi_derive::napi;
use sot_core::{CostKind, FittedModel, FittedReference, ScoreScale, Scored};

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
            let s = &model.scale;
            let core = FittedModel {
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
            };
            Ok(sot_core::score_samples(
                matrix_view(samples, "samples")?,
                &core,
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
