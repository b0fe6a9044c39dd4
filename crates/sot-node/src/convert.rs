//! JS-facing option and result shapes, and their conversion to core types.

use crate::error::{shape, Failure};
use crate::rows::Rows;
use crate::storage::{StorageInput, StorageOutput};
use napi::bindgen_prelude::{External, FromNapiRef, FromNapiValue, TypeName, ValidateNapiValue};
use napi::bindgen_prelude::{Float32Array, Float64Array, Uint32Array};
use napi::{sys, ValueType};
use napi_derive::napi;
use ndarray::ArrayView2;
use sot_core::{EpsScaling, ExactCosts, Progress, SinkhornOptions, SinkhornResult};
use std::sync::Arc;

/// The contents of a JS typed array, copied into Rust memory the moment the
/// argument is read. A task runs after its call has returned, while the caller
/// may detach, transfer, shrink or overwrite the array's buffer, and even
/// between two arguments a getter may do so: a pointer into JS memory can
/// dangle at any time, so none is kept. A `SharedArrayBuffer` input is
/// snapshotted the same way; later writes to it do not reach the call.
pub struct Owned<T>(pub Vec<T>);

/// The typed array of each element type.
pub trait Element: Copy + Send + Sync {
    type Js: FromNapiValue + ValidateNapiValue + AsRef<[Self]>;
}

impl Element for f32 {
    type Js = Float32Array;
}

impl Element for f64 {
    type Js = Float64Array;
}

impl Element for u32 {
    type Js = Uint32Array;
}

impl<T: Element> FromNapiValue for Owned<T> {
    unsafe fn from_napi_value(env: sys::napi_env, value: sys::napi_value) -> napi::Result<Self> {
        // No JavaScript runs between reading the array's extent and this copy
        // (made by the copy pool's threads, which this thread waits for).
        let js = unsafe { T::Js::from_napi_value(env, value) }?;
        let src: &[T] = js.as_ref();
        // Under emnapi (the WebAssembly build) a JS array's bytes are reachable
        // from the calling thread only.
        #[cfg(target_family = "wasm")]
        let copy = Ok(src.to_vec());
        #[cfg(not(target_family = "wasm"))]
        let copy = crate::pool::copy_for_js(src);
        copy.map(Owned)
            .map_err(|e: sot_core::SotError| napi::Error::from_reason(e.message))
    }
}

impl<T: Element> TypeName for Owned<T> {
    fn type_name() -> &'static str {
        T::Js::type_name()
    }

    fn value_type() -> ValueType {
        T::Js::value_type()
    }
}

impl<T: Element> ValidateNapiValue for Owned<T> {
    unsafe fn validate(
        env: sys::napi_env,
        value: sys::napi_value,
    ) -> napi::Result<sys::napi_value> {
        unsafe { T::Js::validate(env, value) }
    }
}

impl<T> std::ops::Deref for Owned<T> {
    type Target = [T];

    fn deref(&self) -> &[T] {
        &self.0
    }
}

/// The values of a matrix argument: a JS array's, copied when read, or a
/// store's (`rowsStore`), shared with the task.
pub enum Points {
    Copied(Owned<f32>),
    Shared(Arc<Vec<f32>>),
}

/// Whether `value` is an `External` (a store), not an array.
unsafe fn is_external(env: sys::napi_env, value: sys::napi_value) -> napi::Result<bool> {
    let mut kind = sys::ValueType::napi_undefined;
    napi::check_status!(unsafe { sys::napi_typeof(env, value, &mut kind) })?;
    Ok(kind == sys::ValueType::napi_external)
}

impl FromNapiValue for Points {
    unsafe fn from_napi_value(env: sys::napi_env, value: sys::napi_value) -> napi::Result<Self> {
        if !unsafe { is_external(env, value) }? {
            return unsafe { Owned::from_napi_value(env, value) }.map(Points::Copied);
        }
        // the registry behind `External` checks that this is a live store of this binary
        let store = unsafe { External::<Rows>::from_napi_ref(env, value) }?;
        Ok(Points::Shared(Arc::clone(&store.data)))
    }
}

impl TypeName for Points {
    fn type_name() -> &'static str {
        "Float32Array | ExternalObject<'Rows'>"
    }

    fn value_type() -> ValueType {
        ValueType::Object
    }
}

impl ValidateNapiValue for Points {
    unsafe fn validate(
        env: sys::napi_env,
        value: sys::napi_value,
    ) -> napi::Result<sys::napi_value> {
        if unsafe { is_external(env, value) }? {
            return Ok(std::ptr::null_mut());
        }
        unsafe { Float32Array::validate(env, value) }
    }
}

impl std::ops::Deref for Points {
    type Target = [f32];

    fn deref(&self) -> &[f32] {
        match self {
            Points::Copied(v) => v,
            Points::Shared(v) => v,
        }
    }
}

/// A row-major f32 matrix.
#[napi(object, object_to_js = false)]
pub struct Matrix {
    #[napi(ts_type = "Float32Array | ExternalObject<'Rows'>")]
    pub data: Points,
    pub rows: u32,
    pub cols: u32,
}

/// Sinkhorn options; absent fields take the core's defaults.
#[napi(object)]
#[derive(Default)]
pub struct SolveOptions {
    pub eps: Option<f64>,
    pub tol: Option<f64>,
    pub max_iter: Option<u32>,
    pub check_every: Option<u32>,
    /// Eps-scaling factor in (0, 1); enables eps-scaling.
    pub eps_scaling_factor: Option<f64>,
    /// First eps of eps-scaling (default: the largest cost).
    pub eps_scaling_start: Option<f64>,
    /// Over-relax once convergence turns slow (default true).
    pub overrelax: Option<bool>,
    /// Minimum milliseconds between progress calls (default 100).
    pub progress_interval_ms: Option<u32>,
    /// How the costs are held (solves from points; from a cost matrix, only the stored kernel applies).
    pub storage: Option<StorageInput>,
    /// Solves from points: finish on the costs recomputed in float64 ('auto', 'on' or 'off').
    pub exact_costs: Option<String>,
}

impl SolveOptions {
    pub fn to_core(&self) -> sot_core::Result<SinkhornOptions> {
        let d = SinkhornOptions::default();
        Ok(SinkhornOptions {
            eps: self.eps.unwrap_or(d.eps),
            tol: self.tol.unwrap_or(d.tol),
            max_iter: self.max_iter.map_or(d.max_iter, |v| v as usize),
            check_every: self.check_every.map_or(d.check_every, |v| v as usize),
            eps_scaling: self.eps_scaling_factor.map(|factor| EpsScaling {
                factor,
                start: self.eps_scaling_start,
            }),
            overrelax: self.overrelax.unwrap_or(d.overrelax),
            storage: StorageInput::to_core(&self.storage)?,
            exact: match &self.exact_costs {
                Some(name) => ExactCosts::parse(name)?,
                None => d.exact,
            },
        })
    }
}

/// Warm-start potentials.
#[napi(object, object_to_js = false)]
pub struct WarmStartInput {
    #[napi(ts_type = "Float64Array")]
    pub f: Option<Owned<f64>>,
    #[napi(ts_type = "Float64Array")]
    pub g: Option<Owned<f64>>,
}

#[napi(object)]
pub struct ProgressEvent {
    pub stage: String,
    pub iteration: u32,
    pub max_iterations: u32,
    /// L1 marginal error; NaN before the first measurement.
    pub error: f64,
    pub eps: f64,
}

impl From<&Progress> for ProgressEvent {
    fn from(p: &Progress) -> Self {
        ProgressEvent {
            stage: p.stage.to_string(),
            iteration: p.iteration as u32,
            max_iterations: p.max_iterations as u32,
            error: p.error,
            eps: p.eps,
        }
    }
}

#[napi(object)]
pub struct SinkhornOutput {
    /// Entropic OT value `<a, f> + <b, g>`.
    pub value: f64,
    pub f: Float64Array,
    pub g: Float64Array,
    /// Gradient of the value with respect to `a`, centred (sums to zero).
    pub grad_a: Float64Array,
    pub grad_b: Float64Array,
    pub marginal_error: f64,
    pub iterations: u32,
    /// Passes over the costs in all (`iterations`, plus one when the last pass only measured the error).
    pub passes: u32,
    pub converged: bool,
    pub eps: f64,
    /// How the costs were held.
    pub storage: StorageOutput,
    /// Passes on the costs recomputed in float64 from the points (then `marginal_error` is on them).
    pub exact_passes: u32,
}

impl From<SinkhornResult> for SinkhornOutput {
    fn from(r: SinkhornResult) -> Self {
        SinkhornOutput {
            value: r.value,
            grad_a: r.grad_a().into(),
            grad_b: r.grad_b().into(),
            f: r.f.into(),
            g: r.g.into(),
            marginal_error: r.marginal_error,
            iterations: r.iterations as u32,
            passes: r.passes as u32,
            converged: r.converged,
            eps: r.eps,
            storage: r.storage.into(),
            exact_passes: r.exact_passes as u32,
        }
    }
}

#[napi(object)]
pub struct DivergenceOutput {
    pub value: f64,
    pub grad_a: Float64Array,
    pub grad_b: Float64Array,
    pub converged: bool,
    pub xy: SinkhornOutput,
    pub xx: SinkhornOutput,
    pub yy: SinkhornOutput,
}

/// Views a `Matrix` as rows x cols, checking the length of its data.
pub fn matrix_view<'a>(m: &'a Matrix, name: &str) -> Result<ArrayView2<'a, f32>, Failure> {
    let (rows, cols) = (m.rows as usize, m.cols as usize);
    let data: &[f32] = &m.data;
    if data.len() != rows * cols {
        return Err(shape(format!(
            "{name} holds {} values but its shape is {rows} x {cols} = {}",
            data.len(),
            rows * cols
        )));
    }
    Ok(ArrayView2::from_shape((rows, cols), data).expect("length checked"))
}

/// Optional slice of an optional typed array.
pub fn slice<T>(a: &Option<Owned<T>>) -> Option<&[T]> {
    a.as_ref().map(|v| &v.0[..])
}
