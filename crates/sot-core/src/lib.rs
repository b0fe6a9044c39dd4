//! SOT core: the numerics of Safety Optimal Transport.
//!
//! Cost matrices between embedding sets, balanced entropic optimal transport
//! by a log-domain Sinkhorn (f32 storage, f64 accumulation, multithreaded with
//! rayon), its gradient with respect to the weights, and the debiased Sinkhorn
//! divergence. Pure Rust: the Node bindings live in `sot-node`.
//!
//! All routines run on the current rayon thread pool and accept a
//! [`Control`] for cooperative cancellation and throttled progress.

pub mod control;
pub mod cost;
pub mod divergence;
pub mod error;
mod kernel;
pub mod sinkhorn;
pub mod validate;

pub use control::{Control, Progress};
pub use cost::{cost_matrix, CostKind};
pub use divergence::{sinkhorn_divergence, DivergenceResult, DivergenceWarmStart};
pub use error::{ErrorKind, Result, SotError};
pub use sinkhorn::{sinkhorn, sinkhorn_symmetric, EpsScaling, SinkhornOptions, SinkhornResult, WarmStart};
