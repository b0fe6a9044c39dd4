//! N-API bindings of `sot-core`: typed arrays in, typed arrays out, every
//! solve an `AsyncTask` on the libuv pool that runs its numerics on one shared,
//! bounded rayon pool. No dataset knowledge lives here.

mod cancel;
mod convert;
mod defaults;
mod embed;
mod error;
mod learn;
mod pool;
mod reasons;
mod result;
mod rows;
mod score;
mod storage;
mod tasks;

pub use cancel::CancelToken;
pub use defaults::core_defaults;
pub use embed::{doc_freq_batch, doc_freq_buckets, embed_texts, pool_rows, project_2d};
pub use learn::{baseline_scores, learn_weights, own_harm_count, select_top_k};
pub use reasons::{nearest_references, weight_contributions};
pub use rows::{rows_gather, rows_gather_into, rows_store, rows_write};
pub use score::{
    column_sums, gibbs_weights, merge_column_sums, refit_potentials, score_with_model,
    select_scored,
};
pub use tasks::{cost_matrix, sinkhorn_cost, sinkhorn_divergence, sinkhorn_points, thread_count};
