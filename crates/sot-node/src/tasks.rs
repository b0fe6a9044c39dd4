//! One `Task` per async operation. `compute` runs on a libuv worker, which
//! hands the numerics to the shared rayon pool and waits.

use crate::cancel::CancelToken;
use crate::convert::{
    matrix_view, slice, DivergenceOutput, Matrix, Owned, ProgressEvent, SinkhornOutput,
    SolveOptions, WarmStartInput,
};
use crate::error::Failure;
use crate::pool::pool;
use crate::result::{result_fits, settle, Settled};
use napi::bindgen_prelude::{AsyncTask, Float32Array};
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi::{Env, Error, Result, Status, Task};
use napi_derive::napi;
use sot_core::{
    Control, CostKind, DivergenceResult, DivergenceWarmStart, Progress, SinkhornResult, WarmStart,
};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

/// Progress callback: called with the event only, never keeps the process alive.
pub type ProgressCallback =
    ThreadsafeFunction<ProgressEvent, (), ProgressEvent, Status, false, true>;

/// What every task shares: cancellation, progress, and the failure to report.
pub(crate) struct Job {
    cancel: Option<Arc<AtomicBool>>,
    progress: Option<ProgressCallback>,
    interval: Duration,
    failure: Option<Failure>,
}

impl Job {
    pub(crate) fn new(
        token: Option<&CancelToken>,
        progress: Option<ProgressCallback>,
        interval_ms: Option<u32>,
    ) -> Self {
        Job {
            cancel: token.map(|t| t.flag.clone()),
            progress,
            interval: Duration::from_millis(interval_ms.unwrap_or(100) as u64),
            failure: None,
        }
    }

    /// Runs `work` on the pool with this job's controls; panics become failures.
    pub(crate) fn run<T: Send>(
        &mut self,
        work: impl FnOnce(&Control) -> std::result::Result<T, Failure> + Send,
    ) -> Result<T> {
        let progress = self.progress.as_ref();
        let report = |p: &Progress| {
            if let Some(f) = progress {
                f.call(
                    ProgressEvent::from(p),
                    ThreadsafeFunctionCallMode::NonBlocking,
                );
            }
        };
        let mut ctl = Control::default();
        if let Some(flag) = &self.cancel {
            ctl = ctl.with_cancel(flag);
        }
        if progress.is_some() {
            ctl = ctl.with_progress(&report, self.interval);
        }
        let outcome = catch_unwind(AssertUnwindSafe(|| pool().install(|| work(&ctl))));
        let failure = match outcome {
            Ok(Ok(v)) => return Ok(v),
            Ok(Err(f)) => f,
            Err(payload) => Failure::from_panic(payload),
        };
        let status = failure.status();
        self.failure = Some(failure);
        Err(status)
    }

    pub(crate) fn reject<T>(&mut self, env: &Env, err: Error) -> Result<T> {
        Err(match self.failure.take() {
            Some(f) => f.into_js(env),
            None => err,
        })
    }
}

pub struct CostTask {
    x: Matrix,
    y: Matrix,
    cost: String,
    job: Job,
}

impl Task for CostTask {
    type Output = Vec<f32>;
    type JsValue = Settled;

    fn compute(&mut self) -> Result<Self::Output> {
        let (x, y, cost) = (&self.x, &self.y, &self.cost);
        self.job.run(|ctl| {
            let kind = CostKind::parse(cost)?;
            let (x, y) = (matrix_view(x, "x")?, matrix_view(y, "y")?);
            result_fits::<f32>(x.nrows(), y.nrows(), "the cost matrix")?;
            let c = sot_core::cost_matrix(x, y, kind, ctl)?;
            Ok(c.into_raw_vec_and_offset().0)
        })
    }

    fn resolve(&mut self, env: Env, output: Self::Output) -> Result<Self::JsValue> {
        settle(&env, Float32Array::from(output))
    }

    fn reject(&mut self, env: Env, err: Error) -> Result<Self::JsValue> {
        self.job.reject(&env, err)
    }
}

/// The cost matrix between the rows of `x` and of `y` (row-major, x.rows x y.rows).
#[napi(ts_return_type = "Promise<Float32Array>")]
pub fn cost_matrix(
    x: Matrix,
    y: Matrix,
    cost: String,
    token: Option<&CancelToken>,
) -> AsyncTask<CostTask> {
    AsyncTask::new(CostTask {
        x,
        y,
        cost,
        job: Job::new(token, None, None),
    })
}

enum Geometry {
    Cost(Matrix),
    Points { x: Matrix, y: Matrix, cost: String },
}

pub struct SinkhornTask {
    geometry: Geometry,
    a: Option<Owned<f64>>,
    b: Option<Owned<f64>>,
    options: SolveOptions,
    warm: Option<WarmStartInput>,
    job: Job,
}

impl SinkhornTask {
    fn start(
        geometry: Geometry,
        a: Option<Owned<f64>>,
        b: Option<Owned<f64>>,
        options: Option<SolveOptions>,
        warm: Option<WarmStartInput>,
        token: Option<&CancelToken>,
        progress: Option<ProgressCallback>,
    ) -> AsyncTask<Self> {
        let options = options.unwrap_or_default();
        let job = Job::new(token, progress, options.progress_interval_ms);
        AsyncTask::new(SinkhornTask {
            geometry,
            a,
            b,
            options,
            warm,
            job,
        })
    }
}

impl Task for SinkhornTask {
    type Output = SinkhornResult;
    type JsValue = Settled;

    fn compute(&mut self) -> Result<Self::Output> {
        let Self {
            geometry,
            a,
            b,
            options,
            warm,
            job,
        } = self;
        job.run(|ctl| {
            let opts = options.to_core()?;
            let warm = WarmStart {
                f: warm.as_ref().and_then(|w| slice(&w.f)),
                g: warm.as_ref().and_then(|w| slice(&w.g)),
            };
            let (a, b) = (slice(a), slice(b));
            Ok(match geometry {
                Geometry::Cost(c) => {
                    sot_core::sinkhorn(matrix_view(c, "cost")?, a, b, &opts, warm, ctl)?
                }
                Geometry::Points { x, y, cost } => {
                    let (x, y) = (matrix_view(x, "x")?, matrix_view(y, "y")?);
                    sot_core::sinkhorn_points(x, y, CostKind::parse(cost)?, a, b, &opts, warm, ctl)?
                }
            })
        })
    }

    fn resolve(&mut self, env: Env, output: Self::Output) -> Result<Self::JsValue> {
        settle(&env, SinkhornOutput::from(output))
    }

    fn reject(&mut self, env: Env, err: Error) -> Result<Self::JsValue> {
        self.job.reject(&env, err)
    }
}

/// Entropic OT for a given cost matrix.
#[napi(ts_return_type = "Promise<SinkhornOutput>")]
pub fn sinkhorn_cost(
    cost: Matrix,
    #[napi(ts_arg_type = "Float64Array | undefined | null")] a: Option<Owned<f64>>,
    #[napi(ts_arg_type = "Float64Array | undefined | null")] b: Option<Owned<f64>>,
    options: Option<SolveOptions>,
    warm: Option<WarmStartInput>,
    token: Option<&CancelToken>,
    #[napi(ts_arg_type = "(event: ProgressEvent) => void")] progress: Option<ProgressCallback>,
) -> AsyncTask<SinkhornTask> {
    SinkhornTask::start(Geometry::Cost(cost), a, b, options, warm, token, progress)
}

/// Entropic OT between two point sets under the named cost.
#[napi(ts_return_type = "Promise<SinkhornOutput>")]
#[allow(clippy::too_many_arguments)]
pub fn sinkhorn_points(
    x: Matrix,
    y: Matrix,
    cost: String,
    #[napi(ts_arg_type = "Float64Array | undefined | null")] a: Option<Owned<f64>>,
    #[napi(ts_arg_type = "Float64Array | undefined | null")] b: Option<Owned<f64>>,
    options: Option<SolveOptions>,
    warm: Option<WarmStartInput>,
    token: Option<&CancelToken>,
    #[napi(ts_arg_type = "(event: ProgressEvent) => void")] progress: Option<ProgressCallback>,
) -> AsyncTask<SinkhornTask> {
    SinkhornTask::start(
        Geometry::Points { x, y, cost },
        a,
        b,
        options,
        warm,
        token,
        progress,
    )
}

pub struct DivergenceTask {
    x: Matrix,
    y: Matrix,
    cost: String,
    a: Option<Owned<f64>>,
    b: Option<Owned<f64>>,
    options: SolveOptions,
    job: Job,
}

impl Task for DivergenceTask {
    type Output = DivergenceResult;
    type JsValue = Settled;

    fn compute(&mut self) -> Result<Self::Output> {
        let Self {
            x,
            y,
            cost,
            a,
            b,
            options,
            job,
        } = self;
        job.run(|ctl| {
            let kind = CostKind::parse(cost)?;
            let (x, y) = (matrix_view(x, "x")?, matrix_view(y, "y")?);
            let opts = options.to_core()?;
            Ok(sot_core::sinkhorn_divergence(
                x,
                y,
                slice(a),
                slice(b),
                kind,
                &opts,
                DivergenceWarmStart::default(),
                ctl,
            )?)
        })
    }

    fn resolve(&mut self, env: Env, r: Self::Output) -> Result<Self::JsValue> {
        let out = DivergenceOutput {
            value: r.value,
            grad_a: r.grad_a.into(),
            grad_b: r.grad_b.into(),
            converged: r.converged,
            xy: r.xy.into(),
            xx: r.xx.into(),
            yy: r.yy.into(),
        };
        settle(&env, out)
    }

    fn reject(&mut self, env: Env, err: Error) -> Result<Self::JsValue> {
        self.job.reject(&env, err)
    }
}

/// Debiased Sinkhorn divergence between two point sets, with its gradients.
#[napi(ts_return_type = "Promise<DivergenceOutput>")]
#[allow(clippy::too_many_arguments)]
pub fn sinkhorn_divergence(
    x: Matrix,
    y: Matrix,
    cost: String,
    #[napi(ts_arg_type = "Float64Array | undefined | null")] a: Option<Owned<f64>>,
    #[napi(ts_arg_type = "Float64Array | undefined | null")] b: Option<Owned<f64>>,
    options: Option<SolveOptions>,
    token: Option<&CancelToken>,
    #[napi(ts_arg_type = "(event: ProgressEvent) => void")] progress: Option<ProgressCallback>,
) -> AsyncTask<DivergenceTask> {
    let options = options.unwrap_or_default();
    let job = Job::new(token, progress, options.progress_interval_ms);
    AsyncTask::new(DivergenceTask {
        x,
        y,
        cost,
        a,
        b,
        options,
        job,
    })
}

/// Threads in the shared numeric pool (set `SOT_NUM_THREADS` before first use to change it; at most 4 per available core).
#[napi]
pub fn thread_count() -> u32 {
    pool().current_num_threads() as u32
}
