//! Errors cross into JavaScript as `Error`s whose `code` is the core's stable
//! code (`ERR_SHAPE`, ...) and whose `index` names the offending input, if any.

use napi::bindgen_prelude::{JsObjectValue, JsValue};
use napi::{Env, Error, Result, Status};
use sot_core::SotError;

/// What a task's `compute` failed with, kept until `reject` can build the JS error.
pub enum Failure {
    Sot(SotError),
    /// A Rust panic caught at the task boundary: a bug, reported not fatal.
    Panic(String),
}

impl From<SotError> for Failure {
    fn from(e: SotError) -> Self {
        Failure::Sot(e)
    }
}

impl Failure {
    pub fn from_panic(payload: Box<dyn std::any::Any + Send>) -> Self {
        let msg = payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".into());
        Failure::Panic(msg)
    }

    /// A placeholder for napi; `into_js` builds the real error.
    pub fn status(&self) -> Error {
        Error::new(Status::GenericFailure, self.message())
    }

    fn message(&self) -> String {
        match self {
            Failure::Sot(e) => match e.param {
                // the core names options by key (`max_iter`); JS callers know them as `maxIter`
                Some(key) => e.message.replace(key, &js_name(key)),
                None => e.message.clone(),
            },
            Failure::Panic(m) => format!("internal error in sot (please report it): {m}"),
        }
    }

    pub fn into_js(self, env: &Env) -> Error {
        let build = || -> Result<Error> {
            let mut obj = env.create_error(Error::new(Status::GenericFailure, self.message()))?;
            match &self {
                Failure::Sot(e) => {
                    obj.set_named_property("code", e.code())?;
                    if let Some(i) = e.index {
                        obj.set_named_property("index", i as f64)?;
                    }
                }
                Failure::Panic(_) => obj.set_named_property("code", "ERR_INTERNAL")?,
            }
            Ok(Error::from(obj.to_unknown()))
        };
        build().unwrap_or_else(|e| e)
    }
}

/// An option key of the core (`max_iter`, `eps_scaling.factor`) as JS
/// spells it (`maxIter`, `epsScaling.factor`): each segment in camelCase.
pub fn js_name(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    let mut upper = false;
    for c in key.chars() {
        match c {
            '_' => upper = true,
            c if upper => {
                out.extend(c.to_uppercase());
                upper = false;
            }
            c => out.push(c),
        }
    }
    out
}

/// An input error detected in the binding itself (typed-array lengths).
pub fn shape(message: String) -> Failure {
    Failure::Sot(SotError::new(sot_core::ErrorKind::Shape, message))
}
