//! How results cross back into JavaScript: sized before the work, converted
//! where a failure can still reject the promise.

use crate::error::Failure;
use napi::bindgen_prelude::{FromNapiValue, ToNapiValue, TypeName, Unknown};
use napi::{sys, Env, Error, Result, ValueType};
use sot_core::{ErrorKind, SotError};

/// Largest buffer Node 20 creates (`buffer.constants.MAX_LENGTH`, 4 GiB): a
/// larger result cannot be handed back as a typed array. u64: on wasm32 a
/// usize cannot hold it.
pub const MAX_RESULT_BYTES: u64 = 1 << 32;

/// Refuses, before any work, a result of `rows x cols` values of `T` that no
/// typed array can hold; `what` names it.
pub fn result_fits<T>(rows: usize, cols: usize, what: &str) -> std::result::Result<(), Failure> {
    let size = std::mem::size_of::<T>();
    match rows.checked_mul(cols).and_then(|n| n.checked_mul(size)) {
        Some(bytes) if bytes as u64 <= MAX_RESULT_BYTES => Ok(()),
        _ => Err(Failure::Sot(SotError::new(
            ErrorKind::InvalidOption,
            format!(
                "{what} of {rows} x {cols} values would take {} bytes, over the {MAX_RESULT_BYTES} bytes (4 GiB) a JavaScript typed array can hold",
                rows as u128 * cols as u128 * size as u128
            ),
        ))),
    }
}

/// A task's result already converted to a JS value.
pub struct Settled(sys::napi_value);

/// Converts `value` inside `resolve`. A conversion that throws (Node refuses a
/// buffer) leaves an exception pending, which napi-rs would let escape the
/// promise as an uncaught exception; it is taken here and rejects the promise.
pub fn settle<T: ToNapiValue>(env: &Env, value: T) -> Result<Settled> {
    let raw = env.raw();
    // SAFETY: `raw` is the live env of the completing task, on its JS thread.
    match unsafe { T::to_napi_value(raw, value) } {
        Ok(v) => Ok(Settled(v)),
        Err(e) => {
            let mut pending = false;
            let mut thrown = std::ptr::null_mut();
            // SAFETY: as above; the exception is a value of this env's current scope.
            unsafe {
                sys::napi_is_exception_pending(raw, &mut pending);
                if !pending {
                    return Err(e);
                }
                sys::napi_get_and_clear_last_exception(raw, &mut thrown);
                Err(Error::from(Unknown::from_napi_value(raw, thrown)?))
            }
        }
    }
}

impl ToNapiValue for Settled {
    unsafe fn to_napi_value(_env: sys::napi_env, val: Self) -> Result<sys::napi_value> {
        Ok(val.0)
    }
}

impl TypeName for Settled {
    fn type_name() -> &'static str {
        "unknown"
    }

    fn value_type() -> ValueType {
        ValueType::Unknown
    }
}
