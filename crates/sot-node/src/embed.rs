//! Tasks of the built-in text embedder (document frequencies, embedding) and
//! of the 2-D projection for plots.

use crate::cancel::CancelToken;
use crate::convert::{matrix_view, slice, Matrix, Owned};
use crate::result::{result_fits, settle, Settled};
use crate::tasks::{Job, ProgressCallback};
use napi::bindgen_prelude::{AsyncTask, Float32Array, Uint32Array};
use napi::{Env, Error, Result, Task};
use napi_derive::napi;
use sot_core::{DocFreqBatch, EmbedOptions, ErrorKind, Idf, SotError};

/// Options of the hashed TF-IDF embedder; absent fields take the core's defaults.
#[napi(object, object_to_js = false)]
#[derive(Default)]
pub struct EmbedTextOptions {
    /// Output dimension (default 512).
    pub dim: Option<u32>,
    /// Seed of the projection (default 0).
    pub seed: Option<u32>,
    /// Share of the word block in the cosine, in [0, 1] (default 0.5).
    pub word_weight: Option<f64>,
    /// Document frequencies over 2^20 buckets (as summed from `docFreqBatch`); with `docCount`.
    #[napi(ts_type = "Uint32Array")]
    pub doc_freq: Option<Owned<u32>>,
    /// Documents counted in `docFreq`.
    pub doc_count: Option<f64>,
    pub progress_interval_ms: Option<u32>,
}

impl EmbedTextOptions {
    fn to_core(&self) -> sot_core::Result<EmbedOptions> {
        let d = EmbedOptions::default();
        Ok(EmbedOptions {
            dim: self.dim.map_or(d.dim, |v| v as usize),
            seed: self.seed.map_or(d.seed, |v| v as u64),
            word_weight: self.word_weight.unwrap_or(d.word_weight),
        })
    }

    fn idf(&self) -> sot_core::Result<Option<Idf<'_>>> {
        match (&self.doc_freq, self.doc_count) {
            (None, None) => Ok(None),
            (Some(counts), Some(n)) => {
                if !(n.is_finite() && n >= 0.0 && n.fract() == 0.0 && n <= 2f64.powi(53)) {
                    return Err(option(format!(
                        "docCount must be a non-negative integer, got {n}"
                    )));
                }
                Ok(Some(Idf::new(counts, n as u64)?))
            }
            _ => Err(option("docFreq and docCount go together".into())),
        }
    }
}

fn option(message: String) -> SotError {
    SotError::new(ErrorKind::InvalidOption, message)
}

pub struct EmbedTask {
    texts: Vec<String>,
    options: EmbedTextOptions,
    job: Job,
}

impl Task for EmbedTask {
    type Output = Vec<f32>;
    type JsValue = Settled;

    fn compute(&mut self) -> Result<Self::Output> {
        let Self {
            texts,
            options,
            job,
        } = self;
        job.run(|ctl| {
            let opts = options.to_core()?;
            let idf = options.idf()?;
            opts.validate()?;
            result_fits::<f32>(texts.len(), opts.dim, "the embedding")?;
            let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
            let e = sot_core::embed_texts(&refs, &opts, idf, ctl)?;
            Ok(e.into_raw_vec_and_offset().0)
        })
    }

    fn resolve(&mut self, env: Env, output: Self::Output) -> Result<Self::JsValue> {
        settle(&env, Float32Array::from(output))
    }

    fn reject(&mut self, env: Env, err: Error) -> Result<Self::JsValue> {
        self.job.reject(&env, err)
    }
}

/// Embeds texts with the built-in hashed TF-IDF embedder: row-major
/// `texts.length x dim` unit vectors. A text without words rejects with
/// `ERR_EMPTY` and its `index`.
#[napi(ts_return_type = "Promise<Float32Array>")]
pub fn embed_texts(
    texts: Vec<String>,
    options: Option<EmbedTextOptions>,
    token: Option<&CancelToken>,
    #[napi(ts_arg_type = "(event: ProgressEvent) => void")] progress: Option<ProgressCallback>,
) -> AsyncTask<EmbedTask> {
    let options = options.unwrap_or_default();
    let job = Job::new(token, progress, options.progress_interval_ms);
    AsyncTask::new(EmbedTask {
        texts,
        options,
        job,
    })
}

/// Document frequencies of one batch, sparse: the sorted buckets (of 2^20)
/// that occur in it and how many of its documents contain each. Add `counts`
/// into a `Uint32Array(2 ** 20)` at `buckets` and `docs` into the document
/// count; batches commute.
#[napi(object)]
pub struct DocFreqOutput {
    pub buckets: Uint32Array,
    pub counts: Uint32Array,
    pub docs: f64,
}

pub struct DocFreqTask {
    texts: Vec<String>,
    job: Job,
}

impl Task for DocFreqTask {
    type Output = DocFreqBatch;
    type JsValue = Settled;

    fn compute(&mut self) -> Result<Self::Output> {
        let Self { texts, job } = self;
        job.run(|ctl| {
            let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
            Ok(sot_core::doc_freq_batch(&refs, ctl)?)
        })
    }

    fn resolve(&mut self, env: Env, b: Self::Output) -> Result<Self::JsValue> {
        settle(
            &env,
            DocFreqOutput {
                buckets: b.buckets.into(),
                counts: b.counts.into(),
                docs: b.docs as f64,
            },
        )
    }

    fn reject(&mut self, env: Env, err: Error) -> Result<Self::JsValue> {
        self.job.reject(&env, err)
    }
}

/// Per-bucket document frequencies of a batch of texts (see `DocFreqOutput`).
#[napi(ts_return_type = "Promise<DocFreqOutput>")]
pub fn doc_freq_batch(
    texts: Vec<String>,
    token: Option<&CancelToken>,
    #[napi(ts_arg_type = "(event: ProgressEvent) => void")] progress: Option<ProgressCallback>,
    progress_interval_ms: Option<u32>,
) -> AsyncTask<DocFreqTask> {
    AsyncTask::new(DocFreqTask {
        texts,
        job: Job::new(token, progress, progress_interval_ms),
    })
}

/// Number of buckets of a document-frequency table (2^20).
#[napi]
pub fn doc_freq_buckets() -> u32 {
    sot_core::DF_BUCKETS as u32
}

pub struct ProjectTask {
    points: Matrix,
    job: Job,
}

impl Task for ProjectTask {
    type Output = Vec<f32>;
    type JsValue = Settled;

    fn compute(&mut self) -> Result<Self::Output> {
        let Self { points, job } = self;
        job.run(|ctl| {
            let p = sot_core::project_2d(matrix_view(points, "points")?, ctl)?;
            Ok(p.into_raw_vec_and_offset().0)
        })
    }

    fn resolve(&mut self, env: Env, output: Self::Output) -> Result<Self::JsValue> {
        settle(&env, Float32Array::from(output))
    }

    fn reject(&mut self, env: Env, err: Error) -> Result<Self::JsValue> {
        self.job.reject(&env, err)
    }
}

/// Coordinates of the points on their top two principal components
/// (mean-centred), row-major `rows x 2`.
#[napi(js_name = "project2d", ts_return_type = "Promise<Float32Array>")]
pub fn project_2d(
    points: Matrix,
    token: Option<&CancelToken>,
    #[napi(ts_arg_type = "(event: ProgressEvent) => void")] progress: Option<ProgressCallback>,
    progress_interval_ms: Option<u32>,
) -> AsyncTask<ProjectTask> {
    AsyncTask::new(ProjectTask {
        points,
        job: Job::new(token, progress, progress_interval_ms),
    })
}

pub struct PoolTask {
    table: Matrix,
    ids: Owned<u32>,
    offsets: Owned<u32>,
    weights: Option<Owned<f32>>,
    job: Job,
}

impl Task for PoolTask {
    type Output = Vec<f32>;
    type JsValue = Settled;

    fn compute(&mut self) -> Result<Self::Output> {
        let Self {
            table,
            ids,
            offsets,
            weights,
            job,
        } = self;
        job.run(|ctl| {
            let table = matrix_view(table, "table")?;
            result_fits::<f32>(
                offsets.len().saturating_sub(1),
                table.ncols(),
                "the pooled rows",
            )?;
            let p = sot_core::pool_rows(table, ids, offsets, slice(weights), ctl)?;
            Ok(p.into_raw_vec_and_offset().0)
        })
    }

    fn resolve(&mut self, env: Env, output: Self::Output) -> Result<Self::JsValue> {
        settle(&env, Float32Array::from(output))
    }

    fn reject(&mut self, env: Env, err: Error) -> Result<Self::JsValue> {
        self.job.reject(&env, err)
    }
}

/// Unit vectors of weighted bags of table rows (e.g. word vectors):
/// bag `b` is `ids[offsets[b]..offsets[b + 1]]`, row-major `bags x cols`.
/// An empty bag, or one whose weighted sum is zero, rejects with `ERR_EMPTY`
/// and its `index`.
#[napi(ts_return_type = "Promise<Float32Array>")]
pub fn pool_rows(
    table: Matrix,
    #[napi(ts_arg_type = "Uint32Array")] ids: Owned<u32>,
    #[napi(ts_arg_type = "Uint32Array")] offsets: Owned<u32>,
    #[napi(ts_arg_type = "Float32Array | undefined | null")] weights: Option<Owned<f32>>,
    token: Option<&CancelToken>,
) -> AsyncTask<PoolTask> {
    AsyncTask::new(PoolTask {
        table,
        ids,
        offsets,
        weights,
        job: Job::new(token, None, None),
    })
}
