//! SOT core: the numerics of Safety Optimal Transport.
//!
//! Cost matrices between embedding sets, balanced entropic optimal transport
//! by a log-domain Sinkhorn (f32 storage, f64 accumulation, multithreaded with
//! rayon), its gradient with respect to the weights, and the debiased Sinkhorn
//! divergence; on top of them the SOT push-pull weight learner (with its
//! contamination estimate), top-K
//! selection and baseline selectors; a built-in hashed TF-IDF text embedder
//! and a 2-D principal-component projection for plots. Pure Rust: the Node bindings live in
//! `sot-node`.
//!
//! All routines run on the current rayon thread pool and accept a
//! [`Control`] for cooperative cancellation and throttled progress.

pub mod baselines;
pub mod contamination;
pub mod control;
pub mod cost;
mod costs;
pub mod divergence;
pub mod embed;
pub mod error;
mod kernel;
pub mod learner;
mod pages;
pub mod pool;
pub mod project;
pub mod reasons;
pub mod refit;
mod relax;
pub mod score;
pub mod selection;
pub mod sinkhorn;
pub mod store;
mod sweep;
#[cfg(test)]
mod test_points;
pub mod truncated;
pub mod validate;

pub use baselines::{baseline_scores, Baseline};
pub use contamination::Contamination;
pub use control::{Control, Progress};
pub use cost::{cost_matrix, CostKind};
pub use divergence::{sinkhorn_divergence, DivergenceResult, DivergenceWarmStart};
pub use embed::{
    doc_freq_batch, embed_texts, DocFreq, DocFreqBatch, EmbedOptions, Idf, DF_BUCKETS,
};
pub use error::{ErrorKind, Result, SotError};
pub use learner::{
    learn_weights, objective, own_harm_count, own_harm_rows, Fitted, LearnResult, LearnerOptions,
    Reference, Sets, MAX_OWN_HARM, OWN_HARM_NEIGHBOURS,
};
pub use pages::{copy_of, zeroed_lazy};
pub use pool::pool_rows;
pub use project::project_2d;
pub use reasons::{contributions, nearest_references, Contributions, Nearest};
pub use refit::{marginal_error, ColumnSums, LogSums};
pub use score::{
    c_transform, gibbs_weights, score_samples, FittedModel, FittedReference, ScoreScale, Scored,
};
pub use selection::{gibbs_distribution, select_top_k, Keep, Selection};
pub use sinkhorn::{
    sinkhorn, sinkhorn_points, sinkhorn_symmetric, EpsScaling, ExactCosts, SinkhornOptions,
    SinkhornResult, WarmStart, F32_COST_ERROR,
};
pub use store::{plan, Plan, Storage, StorageOptions, StorageReport, Verification};
