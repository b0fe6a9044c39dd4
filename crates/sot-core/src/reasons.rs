//! Why a record got its weight: the nearest samples of a reference set (by
//! the learner's own cost), and the split of its log-weight into the part the
//! pull towards the anchor and the part the push away from harm contributed.

use crate::control::Control;
use crate::cost::{check_pair, CostKind, CostTiles, TILE_ROWS};
use crate::error::{ErrorKind, Result, SotError};
use ndarray::{Array2, ArrayView2, Axis};
use rayon::prelude::*;

/// The `k` nearest reference samples of each asked row, best first.
#[derive(Debug, Clone, PartialEq)]
pub struct Nearest {
    /// Neighbours per row: `min(k, references)`.
    pub k: usize,
    /// `rows x k` reference indices, row-major.
    pub index: Vec<u32>,
    /// `rows x k` costs, as the learner sees them (f32 tiles).
    pub cost: Vec<f32>,
}

/// For each of `rows` (indices into `x`), the `k` rows of `refs` with the
/// lowest cost, ascending; equal costs go to the lower index.
pub fn nearest_references(
    x: ArrayView2<f32>,
    refs: ArrayView2<f32>,
    rows: &[usize],
    k: usize,
    kind: CostKind,
    ctl: &Control,
) -> Result<Nearest> {
    check_pair(&x, &refs, kind)?;
    if k == 0 {
        return Err(SotError::new(
            ErrorKind::InvalidOption,
            "k must be at least 1",
        ));
    }
    if let Some(&bad) = rows.iter().find(|&&r| r >= x.nrows()) {
        return Err(SotError::new(
            ErrorKind::InvalidOption,
            format!("row {bad} is out of range: x has {} rows", x.nrows()),
        ));
    }
    let k = k.min(refs.nrows());
    let asked: Array2<f32> = x.select(Axis(0), rows);
    let tiles = CostTiles::new(asked.view(), refs, kind);
    let m = refs.nrows();
    let mut index = vec![0u32; rows.len() * k];
    let mut cost = vec![0f32; rows.len() * k];
    index
        .par_chunks_mut(TILE_ROWS * k)
        .zip(cost.par_chunks_mut(TILE_ROWS * k))
        .enumerate()
        .try_for_each(|(t, (idx, cst))| -> Result<()> {
            ctl.check()?;
            let r0 = t * TILE_ROWS;
            let mut tile = Array2::<f32>::zeros((idx.len() / k, m));
            tiles.fill(r0, &mut tile.view_mut());
            let mut order: Vec<u32> = Vec::with_capacity(m);
            for (i, row) in tile.outer_iter().enumerate() {
                order.clear();
                order.extend(0..m as u32);
                let by =
                    |a: &u32, b: &u32| row[*a as usize].total_cmp(&row[*b as usize]).then(a.cmp(b));
                if k < m {
                    order.select_nth_unstable_by(k - 1, by);
                }
                order[..k].sort_unstable_by(by);
                for (j, &r) in order[..k].iter().enumerate() {
                    idx[i * k + j] = r;
                    cst[i * k + j] = row[r as usize];
                }
            }
            Ok(())
        })?;
    Ok(Nearest { k, index, cost })
}

/// A record's log-weight relative to uniform, `ln(n w_i)`, split into what
/// the pull and the push contributed. At the learner's stationary point
/// `w ∝ exp(-(pull - push) / tau)`, so `ln(n w_i) = pull_i + push_i + offset`
/// with the contributions below and one offset shared by all records.
#[derive(Debug, Clone, PartialEq)]
pub struct Contributions {
    /// `ln(n w_i)`: 0 is the uniform weight, negative is below it.
    pub log_weight: Vec<f64>,
    /// `-pull_i / tau`: negative for records far from the anchor.
    pub pull: Vec<f64>,
    /// `push_i / tau`: negative for records close to the harmful reference.
    pub push: Vec<f64>,
    /// The mean of `log_weight - pull - push`.
    pub offset: f64,
    /// The largest `|log_weight - pull - push - offset|`: how far the learner
    /// stopped from its stationary point, in log-weight units.
    pub max_residual: f64,
}

/// The contributions of the learner's (centred) pull and push scores to each
/// record's log-weight, for the learner's `tau`.
pub fn contributions(
    weights: &[f64],
    pull: &[f64],
    push: &[f64],
    tau: f64,
) -> Result<Contributions> {
    let n = weights.len();
    if pull.len() != n || push.len() != n {
        return Err(SotError::new(
            ErrorKind::Shape,
            format!(
                "{n} weights but {} pull and {} push scores",
                pull.len(),
                push.len()
            ),
        ));
    }
    if n == 0 {
        return Err(SotError::new(ErrorKind::Empty, "no weights"));
    }
    crate::validate::positive(tau, "tau")?;
    if let Some(i) = weights.iter().position(|w| !(w.is_finite() && *w > 0.0)) {
        return Err(SotError::at(
            ErrorKind::InvalidWeight,
            i,
            format!("weights[{i}] is {}, expected a positive number", weights[i]),
        ));
    }
    let bad = |v: &[f64]| v.iter().position(|x| !x.is_finite());
    if let Some(i) = bad(pull).or_else(|| bad(push)) {
        return Err(SotError::at(
            ErrorKind::NonFinite,
            i,
            format!("the pull or push score of sample {i} is not finite"),
        ));
    }
    let log_weight: Vec<f64> = weights.iter().map(|w| (n as f64 * w).ln()).collect();
    let pull: Vec<f64> = pull.iter().map(|p| -p / tau).collect();
    let push: Vec<f64> = push.iter().map(|p| p / tau).collect();
    let rest = |i: usize| log_weight[i] - pull[i] - push[i];
    let offset = (0..n).map(rest).sum::<f64>() / n as f64;
    let max_residual = (0..n).map(|i| (rest(i) - offset).abs()).fold(0.0, f64::max);
    Ok(Contributions {
        log_weight,
        pull,
        push,
        offset,
        max_residual,
    })
}
