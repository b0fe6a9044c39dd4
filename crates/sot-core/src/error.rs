//! Typed errors. Each kind has a stable code that the bindings pass through
//! unchanged, so callers can branch on it without parsing messages.

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// Dimensions that do not agree (rows, columns, weight lengths).
    Shape,
    /// A NaN or infinite input value.
    NonFinite,
    /// A set with no points, or points with no dimensions.
    Empty,
    /// A weight that is zero, negative or not finite.
    InvalidWeight,
    /// An option out of its range (eps <= 0, tol <= 0, ...).
    InvalidOption,
    /// A zero vector where the cosine cost needs a direction.
    ZeroNorm,
    /// The caller cancelled the computation.
    Aborted,
    /// The solver produced a non-finite value despite its safeguards.
    Numeric,
}

impl ErrorKind {
    pub fn code(self) -> &'static str {
        match self {
            ErrorKind::Shape => "ERR_SHAPE",
            ErrorKind::NonFinite => "ERR_NON_FINITE",
            ErrorKind::Empty => "ERR_EMPTY",
            ErrorKind::InvalidWeight => "ERR_WEIGHT",
            ErrorKind::InvalidOption => "ERR_OPTION",
            ErrorKind::ZeroNorm => "ERR_ZERO_NORM",
            ErrorKind::Aborted => "ERR_ABORTED",
            ErrorKind::Numeric => "ERR_NUMERIC",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct SotError {
    pub kind: ErrorKind,
    pub message: String,
    /// Row (or element) index of the offending input, when there is one.
    pub index: Option<usize>,
    /// The option the error is about, by its key (`max_iter`,
    /// `eps_scaling.factor`), when there is one. The message names it by this
    /// key; a binding may spell it in its own language's style.
    pub param: Option<&'static str>,
}

impl SotError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        SotError {
            kind,
            message: message.into(),
            index: None,
            param: None,
        }
    }

    /// An option out of its range; `message` names it by `key`.
    pub fn option(key: &'static str, message: impl Into<String>) -> Self {
        SotError {
            kind: ErrorKind::InvalidOption,
            message: message.into(),
            index: None,
            param: Some(key),
        }
    }

    pub fn at(kind: ErrorKind, index: usize, message: impl Into<String>) -> Self {
        SotError {
            kind,
            message: message.into(),
            index: Some(index),
            param: None,
        }
    }

    pub fn aborted() -> Self {
        SotError::new(ErrorKind::Aborted, "the computation was cancelled")
    }

    pub fn code(&self) -> &'static str {
        self.kind.code()
    }
}

impl fmt::Display for SotError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for SotError {}

pub type Result<T> = std::result::Result<T, SotError>;
