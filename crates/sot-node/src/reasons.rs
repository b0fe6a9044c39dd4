//! Bindings of the per-record reasons: nearest references and the pull/push
//! split of each log-weight.

use crate::cancel::CancelToken;
use crate::convert::{matrix_view, Matrix, Owned};
use crate::result::settle;
use crate::result::Settled;
use crate::tasks::Job;
use napi::bindgen_prelude::{AsyncTask, Float32Array, Float64Array, Uint32Array};
use napi::{Env, Error, Result, Task};
use napi_derive::napi;
use sot_core::{Contributions, CostKind, LearnerOptions, Nearest};

#[napi(object)]
pub struct NearestOutput {
    /// Neighbours per row: min(k, reference rows).
    pub k: u32,
    /// rows x k reference indices, nearest first.
    pub index: Uint32Array,
    /// rows x k costs.
    pub cost: Float32Array,
}

pub struct NearestTask {
    x: Matrix,
    refs: Matrix,
    rows: Owned<u32>,
    k: u32,
    cost: String,
    job: Job,
}

impl Task for NearestTask {
    type Output = Nearest;
    type JsValue = Settled;

    fn compute(&mut self) -> Result<Self::Output> {
        let Self {
            x,
            refs,
            rows,
            k,
            cost,
            job,
        } = self;
        job.run(|ctl| {
            let kind = CostKind::parse(cost)?;
            let rows: Vec<usize> = rows.iter().map(|r| *r as usize).collect();
            Ok(sot_core::nearest_references(
                matrix_view(x, "x")?,
                matrix_view(refs, "refs")?,
                &rows,
                *k as usize,
                kind,
                ctl,
            )?)
        })
    }

    fn resolve(&mut self, env: Env, n: Self::Output) -> Result<Self::JsValue> {
        settle(
            &env,
            NearestOutput {
                k: n.k as u32,
                index: n.index.into(),
                cost: n.cost.into(),
            },
        )
    }

    fn reject(&mut self, env: Env, err: Error) -> Result<Self::JsValue> {
        self.job.reject(&env, err)
    }
}

/// For each of `rows` (indices into `x`), the `k` rows of `refs` with the lowest cost, ascending.
#[napi(ts_return_type = "Promise<NearestOutput>")]
pub fn nearest_references(
    x: Matrix,
    refs: Matrix,
    #[napi(ts_arg_type = "Uint32Array")] rows: Owned<u32>,
    k: u32,
    cost: String,
    token: Option<&CancelToken>,
) -> AsyncTask<NearestTask> {
    AsyncTask::new(NearestTask {
        x,
        refs,
        rows,
        k,
        cost,
        job: Job::new(token, None, None),
    })
}

#[napi(object)]
pub struct ContributionsOutput {
    /// ln(n w_i): 0 is the uniform weight.
    pub log_weight: Float64Array,
    /// -pull_i / tau: negative when far from the anchor.
    pub pull: Float64Array,
    /// push_i / tau: negative when close to the harmful reference.
    pub push: Float64Array,
    /// log_weight ≈ pull + push + offset.
    pub offset: f64,
    /// The largest deviation from that sum.
    pub max_residual: f64,
}

pub struct ContributionsTask {
    weights: Owned<f64>,
    pull: Owned<f64>,
    push: Owned<f64>,
    tau: f64,
    job: Job,
}

impl Task for ContributionsTask {
    type Output = Contributions;
    type JsValue = Settled;

    fn compute(&mut self) -> Result<Self::Output> {
        let Self {
            weights,
            pull,
            push,
            tau,
            job,
        } = self;
        job.run(|_| Ok(sot_core::contributions(weights, pull, push, *tau)?))
    }

    fn resolve(&mut self, env: Env, c: Self::Output) -> Result<Self::JsValue> {
        settle(
            &env,
            ContributionsOutput {
                log_weight: c.log_weight.into(),
                pull: c.pull.into(),
                push: c.push.into(),
                offset: c.offset,
                max_residual: c.max_residual,
            },
        )
    }

    fn reject(&mut self, env: Env, err: Error) -> Result<Self::JsValue> {
        self.job.reject(&env, err)
    }
}

/// The split of each learned log-weight into pull and push contributions (`tau` defaults to the learner's).
#[napi(ts_return_type = "Promise<ContributionsOutput>")]
pub fn weight_contributions(
    #[napi(ts_arg_type = "Float64Array")] weights: Owned<f64>,
    #[napi(ts_arg_type = "Float64Array")] pull: Owned<f64>,
    #[napi(ts_arg_type = "Float64Array")] push: Owned<f64>,
    tau: Option<f64>,
) -> AsyncTask<ContributionsTask> {
    let tau = tau.unwrap_or(LearnerOptions::default().tau);
    AsyncTask::new(ContributionsTask {
        weights,
        pull,
        push,
        tau,
        job: Job::new(None, None, None),
    })
}
