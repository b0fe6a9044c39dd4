//! Refining a model's reference potentials over all records.
//!
//! A model fitted on a sample carries reference potentials `g` that the
//! sample alone determined: at a small eps each one is a soft-min over the
//! few records nearest its reference point, so a sample estimates it
//! noisily. One Sinkhorn column update over every record replaces it by
//!
//! ```text
//! g_j = -eps log sum_i w_i exp((f_i - C_ij) / eps),    w_i ∝ exp(score_i)
//! ```
//!
//! with `f_i` the record's c-transformed potential and `w` the learner's
//! Gibbs weights (its stationary form). The sums over records split into
//! parts, one per batch or shard, each held as a log-sum-exp `(max, sum of
//! exp(t - max))` per reference point, and parts merge exactly (up to
//! rounding), so a sharded job computes the same update as one pass.

use crate::control::Control;
use crate::cost::CostTiles;
use crate::error::{ErrorKind, Result, SotError};
use crate::score::{log_terms, rename, soft_min, FittedModel};
use ndarray::{Array2, ArrayView2, Axis};
use rayon::prelude::*;

/// Per entry `j`, `log sum_i exp(t_ij)` held as `max_j + ln sum_j`.
#[derive(Debug, Clone, PartialEq)]
pub struct LogSums {
    pub max: Vec<f64>,
    /// `sum_i exp(t_ij - max_j)`; 0 where nothing was added.
    pub sum: Vec<f64>,
}

impl LogSums {
    pub fn empty(m: usize) -> Self {
        LogSums {
            max: vec![f64::NEG_INFINITY; m],
            sum: vec![0.0; m],
        }
    }

    fn add(&mut self, j: usize, t: f64) {
        if t == f64::NEG_INFINITY {
            return; // exp(t) = 0
        }
        let (m, s) = (&mut self.max[j], &mut self.sum[j]);
        if t > *m {
            *s = *s * (*m - t).exp() + 1.0;
            *m = t;
        } else {
            *s += (t - *m).exp();
        }
    }

    /// Adds the terms of `other` to these.
    pub fn merge(&mut self, other: &LogSums) -> Result<()> {
        if other.max.len() != self.max.len() || other.sum.len() != self.sum.len() {
            return Err(SotError::new(
                ErrorKind::Shape,
                format!(
                    "column sums of {} and {} entries cannot merge",
                    self.max.len(),
                    other.max.len()
                ),
            ));
        }
        for j in 0..self.max.len() {
            let (m1, s1, m2, s2) = (self.max[j], self.sum[j], other.max[j], other.sum[j]);
            let top = m1.max(m2);
            if top == f64::NEG_INFINITY {
                continue; // both empty
            }
            self.sum[j] = s1 * (m1 - top).exp() + s2 * (m2 - top).exp();
            self.max[j] = top;
        }
        Ok(())
    }

    /// `log sum_i exp(t_ij)`.
    pub fn log(&self, j: usize) -> f64 {
        self.max[j] + self.sum[j].ln()
    }
}

/// What a part of the records contributes to the column update of both
/// reference potentials: per reference point the log-sum-exp of
/// `score_i + (f_i - C_ij) / eps`, and the log-sum-exp of the scores (the
/// normaliser of the Gibbs weights).
#[derive(Debug, Clone, PartialEq)]
pub struct ColumnSums {
    pub anchor: LogSums,
    pub harmful: LogSums,
    /// One entry: `log sum_i exp(score_i)`.
    pub total: LogSums,
}

/// Rows per cost tile, as in scoring.
const ROWS: usize = 256;

impl ColumnSums {
    pub fn empty(anchor: usize, harmful: usize) -> Self {
        ColumnSums {
            anchor: LogSums::empty(anchor),
            harmful: LogSums::empty(harmful),
            total: LogSums::empty(1),
        }
    }

    /// The part of the records `x` (their potentials by c-transform against
    /// `model`, their scores through its scale). One pass over the cost
    /// tiles: each tile of rows gives the rows' potentials and then their
    /// terms of the column sums. Deterministic for a given `x`: tiles merge
    /// in row order.
    pub fn of(x: ArrayView2<f32>, model: &FittedModel, ctl: &Control) -> Result<Self> {
        model.scale.check()?;
        let eps = model.eps;
        let h_s = log_terms(x, &model.anchor, model.cost, eps).map_err(|e| rename(e, "anchor"))?;
        let h_h =
            log_terms(x, &model.harmful, model.cost, eps).map_err(|e| rename(e, "harmful"))?;
        let (ma, mh) = (h_s.len(), h_h.len());
        let anchor = CostTiles::new(x, model.anchor.points, model.cost);
        let harmful = CostTiles::new(x, model.harmful.points, model.cost);
        let n = x.nrows();
        let tiles = n.div_ceil(ROWS);
        let mut out = ColumnSums::empty(ma, mh);
        // tiles in flight at once: bounds the parts held before they merge
        let block = (rayon::current_num_threads() * 4).max(1);
        for t0 in (0..tiles).step_by(block) {
            let parts: Vec<ColumnSums> = (t0..(t0 + block).min(tiles))
                .into_par_iter()
                .map(|t| -> Result<ColumnSums> {
                    ctl.check()?;
                    let r0 = t * ROWS;
                    let rows = ROWS.min(n - r0);
                    let mut ta = Array2::<f32>::zeros((rows, ma));
                    anchor.fill(r0, &mut ta.view_mut());
                    let mut th = Array2::<f32>::zeros((rows, mh));
                    harmful.fill(r0, &mut th.view_mut());
                    let mut part = ColumnSums::empty(ma, mh);
                    for (i, (ca, ch)) in
                        ta.axis_iter(Axis(0)).zip(th.axis_iter(Axis(0))).enumerate()
                    {
                        let ca = ca.as_slice().expect("standard layout");
                        let ch = ch.as_slice().expect("standard layout");
                        let (f_s, f_h) = (soft_min(&h_s, ca, eps), soft_min(&h_h, ch, eps));
                        if !(f_s.is_finite() && f_h.is_finite()) {
                            let i = r0 + i;
                            return Err(SotError::at(
                                ErrorKind::Numeric,
                                i,
                                format!(
                                    "the potentials of sample {i} are not finite ({f_s}, {f_h})"
                                ),
                            ));
                        }
                        let s = model.scale.score(f_s, f_h);
                        part.total.add(0, s);
                        let (a_s, a_h) = (s + f_s / eps, s + f_h / eps);
                        for (j, c) in ca.iter().enumerate() {
                            part.anchor.add(j, a_s - *c as f64 / eps);
                        }
                        for (j, c) in ch.iter().enumerate() {
                            part.harmful.add(j, a_h - *c as f64 / eps);
                        }
                    }
                    Ok(part)
                })
                .collect::<Result<_>>()?;
            for p in &parts {
                out.merge(p)?;
            }
        }
        Ok(out)
    }

    /// Adds the records of `other` to these.
    pub fn merge(&mut self, other: &ColumnSums) -> Result<()> {
        self.anchor.merge(&other.anchor)?;
        self.harmful.merge(&other.harmful)?;
        self.total.merge(&other.total)
    }

    /// The updated reference potentials `(anchor, harmful)`.
    pub fn potentials(&self, eps: f64) -> Result<(Vec<f64>, Vec<f64>)> {
        crate::validate::positive(eps, "eps")?;
        if self.total.sum[0] <= 0.0 {
            return Err(SotError::new(
                ErrorKind::InvalidOption,
                "no records: the reference potentials need at least one to update",
            ));
        }
        let log_z = self.total.log(0);
        let g = |s: &LogSums, set: &str| -> Result<Vec<f64>> {
            (0..s.max.len())
                .map(|j| {
                    let v = -eps * (s.log(j) - log_z);
                    if v.is_finite() {
                        Ok(v)
                    } else {
                        Err(SotError::at(
                            ErrorKind::Numeric,
                            j,
                            format!("the updated {set} potential {j} is not finite ({v})"),
                        ))
                    }
                })
                .collect()
        };
        Ok((g(&self.anchor, "anchor")?, g(&self.harmful, "harmful")?))
    }
}

/// How far the records' transport misses a reference set's weights under
/// the potentials `old`, given their column update `new`: the L1 marginal
/// error `sum_j b_j |exp((old_j - new_j) / eps) - 1|` with `b` the weights
/// normalised, Sinkhorn's own stopping measure (0 at the fixed point, the fit
/// on every record). Reference points far from every record weigh only
/// their `b_j`: their potentials drift for many passes while no record's
/// score depends on them.
pub fn marginal_error(weights: &[f64], old: &[f64], new: &[f64], eps: f64) -> Result<f64> {
    crate::validate::positive(eps, "eps")?;
    if weights.len() != old.len() || old.len() != new.len() {
        return Err(SotError::new(
            ErrorKind::Shape,
            format!(
                "marginal error: {} weights, {} old and {} new potentials",
                weights.len(),
                old.len(),
                new.len()
            ),
        ));
    }
    let total: f64 = weights.iter().sum();
    if !(total > 0.0 && total.is_finite()) {
        return Err(SotError::new(
            ErrorKind::InvalidWeight,
            format!("marginal error: the weights sum to {total}"),
        ));
    }
    Ok(weights
        .iter()
        .zip(old.iter().zip(new))
        .map(|(b, (o, n))| b / total * (((o - n) / eps).exp() - 1.0).abs())
        .sum())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cost::CostKind;
    use crate::learner::{learn_weights, LearnResult, LearnerOptions, Reference, Sets};
    use crate::score::{score_samples, FittedReference, ScoreScale};
    use crate::test_points::points;

    fn learn(x: ArrayView2<f32>, anchor: &Array2<f32>, harmful: &Array2<f32>) -> LearnResult {
        let sets = Sets {
            downstream: x,
            anchor: Some(Reference {
                points: anchor.view(),
                weights: None,
            }),
            harmful: Reference {
                points: harmful.view(),
                weights: None,
            },
        };
        // One solve: the refit's algebra does not depend on what the harmful
        // reference holds, and the data's own harm would give fits on
        // different samples different references to compare.
        let opts = LearnerOptions {
            own_harm_share: 0.0,
            ..LearnerOptions::default()
        };
        learn_weights(&sets, &opts, &Control::default()).unwrap()
    }

    fn model<'a>(
        r: &'a LearnResult,
        anchor: &'a Array2<f32>,
        harmful: &'a Array2<f32>,
        g: Option<(&'a [f64], &'a [f64])>,
    ) -> FittedModel<'a> {
        let f = &r.fitted;
        let (gs, gh) = g.unwrap_or((&f.anchor_potential, &f.harmful_potential));
        FittedModel {
            cost: CostKind::Cosine,
            eps: f.eps,
            anchor: FittedReference {
                points: anchor.view(),
                weights: &f.anchor_weights,
                potential: gs,
            },
            harmful: FittedReference {
                points: harmful.view(),
                weights: &f.harmful_weights,
                potential: gh,
            },
            scale: f.scale.clone(),
        }
    }

    /// The cosine cost in f64.
    fn cost(p: ndarray::ArrayView1<f32>, q: ndarray::ArrayView1<f32>) -> f64 {
        let dot: f64 = p.iter().zip(q).map(|(a, b)| *a as f64 * *b as f64).sum();
        let np: f64 = p.iter().map(|a| (*a as f64).powi(2)).sum::<f64>().sqrt();
        let nq: f64 = q.iter().map(|a| (*a as f64).powi(2)).sum::<f64>().sqrt();
        1.0 - dot / (np * nq)
    }

    /// Naive f64 column update: costs in f64, Gibbs weights normalised, log-sum-exp term by term.
    fn naive(x: &Array2<f32>, m: &FittedModel) -> (Vec<f64>, Vec<f64>) {
        let soft_min = |xi, r: &FittedReference| {
            let b: f64 = r.weights.iter().sum();
            let t: Vec<f64> = r
                .points
                .outer_iter()
                .enumerate()
                .map(|(j, y)| (r.weights[j] / b).ln() + (r.potential[j] - cost(xi, y)) / m.eps)
                .collect();
            let top = t.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            -m.eps * (top + t.iter().map(|v| (v - top).exp()).sum::<f64>().ln())
        };
        let f_s: Vec<f64> = x.outer_iter().map(|xi| soft_min(xi, &m.anchor)).collect();
        let f_h: Vec<f64> = x.outer_iter().map(|xi| soft_min(xi, &m.harmful)).collect();
        let s: Vec<f64> = (0..x.nrows())
            .map(|i| m.scale.score(f_s[i], f_h[i]))
            .collect();
        let top = s.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let z: f64 = s.iter().map(|v| (v - top).exp()).sum();
        let w: Vec<f64> = s.iter().map(|v| (v - top).exp() / z).collect();
        let g = |r: &FittedReference, f: &[f64]| -> Vec<f64> {
            r.points
                .outer_iter()
                .map(|y| {
                    let t: Vec<f64> = x
                        .outer_iter()
                        .enumerate()
                        .map(|(i, xi)| w[i].ln() + (f[i] - cost(xi, y)) / m.eps)
                        .collect();
                    let top = t.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                    -m.eps * (top + t.iter().map(|v| (v - top).exp()).sum::<f64>().ln())
                })
                .collect()
        };
        (g(&m.anchor, &f_s), g(&m.harmful, &f_h))
    }

    fn worst(a: &[f64], b: &[f64]) -> f64 {
        a.iter()
            .zip(b)
            .map(|(p, q)| (p - q).abs())
            .fold(0.0, f64::max)
    }

    #[test]
    fn the_update_matches_naive_f64_and_parts_merge_to_the_whole() {
        let (x, anchor, harmful) = (points(1500, 8, 3), points(30, 8, 4), points(60, 8, 5));
        let r = learn(x.slice(ndarray::s![..300, ..]), &anchor, &harmful);
        let m = model(&r, &anchor, &harmful, None);
        let whole = ColumnSums::of(x.view(), &m, &Control::default()).unwrap();
        let (gs, gh) = whole.potentials(m.eps).unwrap();
        let (ns, nh) = naive(&x, &m);
        // f32 costs: each term moves by at most |dC| / eps
        assert!(worst(&gs, &ns) < 1e-5, "anchor off by {}", worst(&gs, &ns));
        assert!(worst(&gh, &nh) < 1e-5, "harmful off by {}", worst(&gh, &nh));
        // three uneven parts, merged in another order
        let mut parts = ColumnSums::empty(30, 60);
        for (a, b) in [(1000, 1500), (0, 7), (7, 1000)] {
            let p = ColumnSums::of(x.slice(ndarray::s![a..b, ..]), &m, &Control::default());
            parts.merge(&p.unwrap()).unwrap();
        }
        let (ps, ph) = parts.potentials(m.eps).unwrap();
        assert!(worst(&ps, &gs) < 1e-12 && worst(&ph, &gh) < 1e-12);
    }

    /// At the learner's stationary point over the same records, g is already
    /// the column transform of (w, f): the update moves it by little more
    /// than the learner's stopping tolerance.
    #[test]
    fn fitted_on_every_record_the_update_is_a_fixed_point() {
        let (x, anchor, harmful) = (points(400, 8, 3), points(30, 8, 4), points(60, 8, 5));
        let r = learn(x.view(), &anchor, &harmful);
        let m = model(&r, &anchor, &harmful, None);
        let (gs, gh) = ColumnSums::of(x.view(), &m, &Control::default())
            .unwrap()
            .potentials(m.eps)
            .unwrap();
        assert!(worst(&gs, &r.fitted.anchor_potential) < 2e-3);
        assert!(worst(&gh, &r.fitted.harmful_potential) < 2e-3);
    }

    /// Fitted on a fifth of the records, the updated potentials score every
    /// record closer to the learner fitted on all of them.
    #[test]
    fn the_update_brings_a_sample_fit_closer_to_the_full_fit() {
        let (x, anchor, harmful) = (points(2000, 8, 11), points(30, 8, 4), points(200, 8, 5));
        let full = learn(x.view(), &anchor, &harmful);
        let part = learn(x.slice(ndarray::s![..400, ..]), &anchor, &harmful);
        let want = score_samples(
            x.view(),
            &model(&full, &anchor, &harmful, None),
            &Control::default(),
        )
        .unwrap()
        .score;
        let before = model(&part, &anchor, &harmful, None);
        let (gs, gh) = ColumnSums::of(x.view(), &before, &Control::default())
            .unwrap()
            .potentials(before.eps)
            .unwrap();
        let after = model(&part, &anchor, &harmful, Some((&gs, &gh)));
        // scores are log-weights up to a constant: compare after removing the mean difference
        let spread = |m: &FittedModel| {
            let s = score_samples(x.view(), m, &Control::default())
                .unwrap()
                .score;
            let d: Vec<f64> = s.iter().zip(&want).map(|(a, b)| a - b).collect();
            let mean = d.iter().sum::<f64>() / d.len() as f64;
            (d.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / d.len() as f64).sqrt()
        };
        let (b, a) = (spread(&before), spread(&after));
        assert!(a < 0.85 * b, "rms score error {b} before, {a} after");
    }

    /// The marginal error from the potentials alone equals the L1 distance
    /// between the reference weights and the column marginal of the naive
    /// f64 plan `w_i b_j exp((f_i + g_j - C_ij) / eps)`; it shrinks pass by
    /// pass from a sample fit, and is near 0 at the fit on every record.
    #[test]
    fn the_marginal_error_is_the_plan_s_and_shrinks_over_passes() {
        let (x, anchor, harmful) = (points(1200, 8, 11), points(30, 8, 4), points(80, 8, 5));
        let part = learn(x.slice(ndarray::s![..240, ..]), &anchor, &harmful);
        let m = model(&part, &anchor, &harmful, None);
        let (ns, nh) = naive(&x, &m);
        // the naive plan's column marginal on the harmful side
        let b: f64 = m.harmful.weights.iter().sum();
        let scored = score_samples(x.view(), &m, &Control::default()).unwrap();
        let top = scored
            .score
            .iter()
            .cloned()
            .fold(f64::NEG_INFINITY, f64::max);
        let z: f64 = scored.score.iter().map(|v| (v - top).exp()).sum();
        let f_h: Vec<f64> = x
            .outer_iter()
            .map(|xi| {
                let t: Vec<f64> = m
                    .harmful
                    .points
                    .outer_iter()
                    .enumerate()
                    .map(|(j, y)| {
                        (m.harmful.weights[j] / b).ln()
                            + (m.harmful.potential[j] - cost(xi, y)) / m.eps
                    })
                    .collect();
                let t0 = t.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                -m.eps * (t0 + t.iter().map(|v| (v - t0).exp()).sum::<f64>().ln())
            })
            .collect();
        let mut l1 = 0.0;
        for (j, y) in m.harmful.points.outer_iter().enumerate() {
            let col: f64 = x
                .outer_iter()
                .enumerate()
                .map(|(i, xi)| {
                    let w = (scored.score[i] - top).exp() / z;
                    w * (m.harmful.weights[j] / b)
                        * ((f_h[i] + m.harmful.potential[j] - cost(xi, y)) / m.eps).exp()
                })
                .sum();
            l1 += (col - m.harmful.weights[j] / b).abs();
        }
        let e = marginal_error(m.harmful.weights, m.harmful.potential, &nh, m.eps).unwrap();
        assert!(
            (e - l1).abs() < 1e-6 * l1.max(1.0),
            "{e} against the plan's {l1}"
        );
        assert!(e > 1e-3, "a sample fit is off the full marginals: {e}");
        // passes: the error falls
        let (mut gs, mut gh) = (ns, nh);
        let mut errors = vec![e];
        for _ in 0..6 {
            let cur = model(&part, &anchor, &harmful, Some((&gs, &gh)));
            let (a, h) = ColumnSums::of(x.view(), &cur, &Control::default())
                .unwrap()
                .potentials(cur.eps)
                .unwrap();
            errors.push(marginal_error(cur.harmful.weights, &gh, &h, cur.eps).unwrap());
            (gs, gh) = (a, h);
        }
        assert!(
            errors[6] < 0.5 * errors[0],
            "errors over the passes: {errors:?}"
        );
        // at the fit on every record
        let full = learn(x.view(), &anchor, &harmful);
        let fm = model(&full, &anchor, &harmful, None);
        let (_, fh) = ColumnSums::of(x.view(), &fm, &Control::default())
            .unwrap()
            .potentials(fm.eps)
            .unwrap();
        let at_fit = marginal_error(fm.harmful.weights, fm.harmful.potential, &fh, fm.eps).unwrap();
        assert!(
            at_fit < 0.1 * errors[0],
            "{at_fit} at the full fit, {} from the sample",
            errors[0]
        );
        // bad input
        assert_eq!(
            marginal_error(&[1.0], &[0.0, 1.0], &[0.0], 0.1)
                .unwrap_err()
                .kind,
            ErrorKind::Shape
        );
        assert_eq!(
            marginal_error(&[0.0], &[0.0], &[0.0], 0.1)
                .unwrap_err()
                .kind,
            ErrorKind::InvalidWeight
        );
        assert_eq!(
            marginal_error(&[1.0], &[0.0], &[0.0], 0.0)
                .unwrap_err()
                .kind,
            ErrorKind::InvalidOption
        );
    }

    #[test]
    fn bad_parts_are_typed_errors() {
        let mut a = ColumnSums::empty(3, 4);
        let e = a.merge(&ColumnSums::empty(3, 5)).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Shape);
        let e = a.potentials(0.1).unwrap_err();
        assert_eq!(e.kind, ErrorKind::InvalidOption);
        let scale = ScoreScale {
            pull_scale: 1.0,
            pull_offset: 0.0,
            push_scale: 1.0,
            push_offset: 0.0,
            tau: 0.0,
        };
        let (y, b, g) = (points(3, 4, 1), vec![1.0; 3], vec![0.0; 3]);
        let r = FittedReference {
            points: y.view(),
            weights: &b,
            potential: &g,
        };
        let m = FittedModel {
            cost: CostKind::Cosine,
            eps: 0.1,
            anchor: r,
            harmful: r,
            scale,
        };
        assert!(ColumnSums::of(points(5, 4, 2).view(), &m, &Control::default()).is_err());
        let m = FittedModel {
            scale: ScoreScale {
                tau: 0.2,
                ..m.scale
            },
            ..m
        };
        let e = ColumnSums::of(points(5, 3, 2).view(), &m, &Control::default()).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Shape);
        assert!(e.message.contains("anchor"), "{}", e.message);
        let flag = std::sync::atomic::AtomicBool::new(true);
        let ctl = Control::default().with_cancel(&flag);
        let e = ColumnSums::of(points(3000, 4, 2).view(), &m, &ctl).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Aborted);
    }
}
