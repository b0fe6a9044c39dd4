//! Input checks shared by every entry point. Errors name the offending index.

use crate::error::{ErrorKind, Result, SotError};
use ndarray::{ArrayView1, ArrayView2};
use rayon::prelude::*;

/// Rejects an empty point set and returns nothing else; `what` names it in messages.
pub fn non_empty(x: &ArrayView2<f32>, what: &str) -> Result<()> {
    if x.nrows() == 0 {
        return Err(SotError::new(
            ErrorKind::Empty,
            format!("{what} has no points"),
        ));
    }
    if x.ncols() == 0 {
        return Err(SotError::new(
            ErrorKind::Empty,
            format!("{what} has points of dimension 0"),
        ));
    }
    Ok(())
}

pub(crate) fn finite_row(row: ArrayView1<f32>) -> bool {
    match row.as_slice() {
        Some(r) => crate::kernel::all_finite(r),
        None => row.iter().all(|v| v.is_finite()),
    }
}

/// Finds the first NaN or infinity, scanning rows in parallel.
pub fn finite_matrix(x: &ArrayView2<f32>, what: &str) -> Result<()> {
    match x
        .outer_iter()
        .into_par_iter()
        .position_first(|row| !finite_row(row))
    {
        Some(i) => Err(non_finite_row(what, i, x.row(i))),
        None => Ok(()),
    }
}

/// The error for row `i` of `what`, which holds a NaN or an infinity: names its first.
pub(crate) fn non_finite_row(what: &str, i: usize, row: ArrayView1<f32>) -> SotError {
    let j = row.iter().position(|v| !v.is_finite()).unwrap_or(0);
    SotError::at(
        ErrorKind::NonFinite,
        i,
        format!("{what}[{i}][{j}] is {} (values must be finite)", row[j]),
    )
}

/// Validates optional weights for `n` points and returns them normalised to sum 1.
/// Uniform weights when none are given.
pub fn weights(w: Option<&[f64]>, n: usize, what: &str) -> Result<Vec<f64>> {
    let Some(w) = w else {
        return Ok(vec![1.0 / n as f64; n]);
    };
    if w.len() != n {
        return Err(SotError::new(
            ErrorKind::Shape,
            format!("{what} has {} entries but there are {n} points", w.len()),
        ));
    }
    if let Some(i) = w.iter().position(|v| !(v.is_finite() && *v > 0.0)) {
        return Err(SotError::at(
            ErrorKind::InvalidWeight,
            i,
            format!("{what}[{i}] is {} (weights must be finite and > 0)", w[i]),
        ));
    }
    let total: f64 = w.iter().sum();
    if !total.is_finite() {
        return Err(SotError::new(
            ErrorKind::InvalidWeight,
            format!("{what} sums to {total}"),
        ));
    }
    Ok(w.iter().map(|v| v / total).collect())
}

/// Checks an optional vector of potentials (warm start) for length and finiteness.
pub fn potentials(p: Option<&[f64]>, n: usize, what: &str) -> Result<()> {
    let Some(p) = p else { return Ok(()) };
    if p.len() != n {
        return Err(SotError::new(
            ErrorKind::Shape,
            format!("{what} has {} entries but there are {n} points", p.len()),
        ));
    }
    if let Some(i) = p.iter().position(|v| !v.is_finite()) {
        return Err(SotError::at(
            ErrorKind::NonFinite,
            i,
            format!("{what}[{i}] is {} (potentials must be finite)", p[i]),
        ));
    }
    Ok(())
}

/// Rejects an option `key` (named by its key, see `SotError::param`) that is not finite and > 0.
pub fn positive(v: f64, key: &'static str) -> Result<()> {
    if v.is_finite() && v > 0.0 {
        Ok(())
    } else {
        Err(SotError::option(
            key,
            format!("{key} must be finite and > 0, got {v}"),
        ))
    }
}
