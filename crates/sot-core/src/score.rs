//! Out-of-sample scoring: fit once, score anywhere.
//!
//! At a solution of entropic OT between samples `x` (masses `a`) and a
//! reference `y` (masses `b`), a sample's potential is the soft-min of the
//! reference potential `g` over its costs (the c-transform),
//!
//! ```text
//! f_i = -eps log sum_j b_j exp((g_j - C_ij) / eps)
//! ```
//!
//! which does not involve `a` nor any other sample. So once the learner has
//! fitted `g` for the anchor and the harmful reference, any new sample gets
//! its pull and push potentials, hence its score, alone: the same in any
//! batch, any shard, any order.

use crate::control::{Control, Progress};
use crate::cost::{check_pair, CostKind, CostTiles};
use crate::error::{ErrorKind, Result, SotError};
use crate::validate;
use ndarray::{Array2, ArrayView2, Axis};
use rayon::prelude::*;

/// A reference set with its fitted potential.
#[derive(Debug, Clone, Copy)]
pub struct FittedReference<'a> {
    pub points: ArrayView2<'a, f32>,
    /// Masses of the reference points (normalised here).
    pub weights: &'a [f64],
    /// The reference-side potential `g` of the fitted solve.
    pub potential: &'a [f64],
}

/// How the two potentials of a sample make its score, as the learner does:
/// `pull = pull_scale * f_S - pull_offset`, `push = push_scale * f_H -
/// push_offset`, `score = (push - pull) / tau`. At the learner's stationary
/// point the weights are `∝ exp(score)`, so the score is the log-weight up to
/// a constant: higher = keep.
#[derive(Debug, Clone, PartialEq)]
pub struct ScoreScale {
    pub pull_scale: f64,
    pub pull_offset: f64,
    pub push_scale: f64,
    pub push_offset: f64,
    pub tau: f64,
}

impl ScoreScale {
    /// The learner's scale: pull and push are the potentials (push times
    /// `lambda`) centred over the fit data, whose means are the offsets.
    pub fn learner(f_s: &[f64], f_h: &[f64], lambda: f64, tau: f64) -> Self {
        let mean = |v: &[f64], k: f64| k * v.iter().sum::<f64>() / v.len().max(1) as f64;
        ScoreScale {
            pull_scale: 1.0,
            pull_offset: mean(f_s, 1.0),
            push_scale: lambda,
            push_offset: mean(f_h, lambda),
            tau,
        }
    }

    pub fn pull(&self, f_s: f64) -> f64 {
        self.pull_scale * f_s - self.pull_offset
    }

    pub fn push(&self, f_h: f64) -> f64 {
        self.push_scale * f_h - self.push_offset
    }

    /// The one definition of a sample's score from its two potentials.
    pub fn score(&self, f_s: f64, f_h: f64) -> f64 {
        (self.push(f_h) - self.pull(f_s)) / self.tau
    }

    pub(crate) fn check(&self) -> Result<()> {
        validate::positive(self.tau, "tau")?;
        for (v, name) in [
            (self.pull_scale, "pull scale"),
            (self.pull_offset, "pull offset"),
            (self.push_scale, "push scale"),
            (self.push_offset, "push offset"),
        ] {
            if !v.is_finite() {
                return Err(SotError::new(
                    ErrorKind::NonFinite,
                    format!("the {name} must be finite, got {v}"),
                ));
            }
        }
        Ok(())
    }
}

/// Everything scoring needs from a fit.
#[derive(Debug, Clone)]
pub struct FittedModel<'a> {
    pub cost: CostKind,
    pub eps: f64,
    pub anchor: FittedReference<'a>,
    pub harmful: FittedReference<'a>,
    pub scale: ScoreScale,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Scored {
    /// Per sample: the anchor potential through the scale (high = far from the anchor).
    pub pull: Vec<f64>,
    /// Per sample: the harmful potential through the scale (high = far from harm).
    pub push: Vec<f64>,
    /// `(push - pull) / tau`; higher = keep.
    pub score: Vec<f64>,
}

/// Rows per cost tile: each thread holds one tile of `ROWS x m` f32 at a time.
const ROWS: usize = 256;

/// Checks `x` against the reference and returns `h_j = log b_j + g_j / eps`
/// (masses normalised), so that `f_i = -eps LSE_j(h_j - C_ij / eps)`.
pub(crate) fn log_terms(
    x: ArrayView2<f32>,
    reference: &FittedReference,
    cost: CostKind,
    eps: f64,
) -> Result<Vec<f64>> {
    validate::positive(eps, "eps")?;
    let m = reference.points.nrows();
    check_pair(&x, &reference.points, cost).map_err(|e| rename(e, "reference"))?;
    let b = validate::weights(Some(reference.weights), m, "reference weights")?;
    validate::potentials(Some(reference.potential), m, "reference potential")?;
    Ok(b.iter()
        .zip(reference.potential)
        .map(|(b, g)| b.ln() + g / eps)
        .collect())
}

/// One sample's potential from its row of costs: `-eps LSE_j(h_j - c_j / eps)`.
pub(crate) fn soft_min(h: &[f64], c: &[f32], eps: f64) -> f64 {
    let top = h
        .iter()
        .zip(c)
        .map(|(h, c)| h - *c as f64 / eps)
        .fold(f64::NEG_INFINITY, f64::max);
    let sum: f64 = h
        .iter()
        .zip(c)
        .map(|(h, c)| (h - *c as f64 / eps - top).exp())
        .sum();
    -eps * (top + sum.ln())
}

/// The c-transform of `reference.potential` at each row of `x`: the soft-min
/// of `g_j - C_ij` over the reference, weighted by its masses. Parallel over
/// tiles of rows; memory beyond the output is one tile per thread.
pub fn c_transform(
    x: ArrayView2<f32>,
    reference: &FittedReference,
    cost: CostKind,
    eps: f64,
    ctl: &Control,
) -> Result<Vec<f64>> {
    let h = log_terms(x, reference, cost, eps)?;
    let m = reference.points.nrows();
    let tiles = CostTiles::new(x, reference.points, cost);
    let n = x.nrows();
    let mut out = vec![0.0; n];
    out.par_chunks_mut(ROWS)
        .enumerate()
        .try_for_each(|(t, rows)| -> Result<()> {
            ctl.check()?;
            let mut tile = Array2::<f32>::zeros((rows.len(), m));
            tiles.fill(t * ROWS, &mut tile.view_mut());
            for (f, c) in rows.iter_mut().zip(tile.axis_iter(Axis(0))) {
                *f = soft_min(&h, c.as_slice().expect("standard layout"), eps);
            }
            Ok(())
        })?;
    if let Some(i) = out.iter().position(|v| !v.is_finite()) {
        return Err(SotError::at(
            ErrorKind::Numeric,
            i,
            format!("the potential of sample {i} is not finite ({})", out[i]),
        ));
    }
    Ok(out)
}

/// Scores each row of `x` against a fitted model, independently of the other
/// rows. Progress counts the rows done, per block of rows.
pub fn score_samples(x: ArrayView2<f32>, model: &FittedModel, ctl: &Control) -> Result<Scored> {
    model.scale.check()?;
    let n = x.nrows();
    let quiet = ctl.cancel_only();
    let mut reporter = ctl.reporter();
    let block = (ROWS * rayon::current_num_threads() * 4).max(ROWS);
    let mut out = Scored {
        pull: Vec::with_capacity(n),
        push: Vec::with_capacity(n),
        score: Vec::with_capacity(n),
    };
    let progress = |done| Progress {
        stage: "score",
        iteration: done,
        max_iterations: n,
        error: f64::NAN,
        eps: model.eps,
    };
    for r0 in (0..n).step_by(block) {
        let xb = x.slice(ndarray::s![r0..(r0 + block).min(n), ..]);
        let f_s = c_transform(xb, &model.anchor, model.cost, model.eps, &quiet)
            .map_err(|e| at_rows(rename(e, "anchor"), r0))?;
        let f_h = c_transform(xb, &model.harmful, model.cost, model.eps, &quiet)
            .map_err(|e| at_rows(rename(e, "harmful"), r0))?;
        for (s, h) in f_s.iter().zip(&f_h) {
            out.pull.push(model.scale.pull(*s));
            out.push.push(model.scale.push(*h));
            out.score.push(model.scale.score(*s, *h));
        }
        reporter.report(progress(out.score.len()), false);
    }
    if n == 0 {
        validate::non_empty(&x, "samples")?;
    }
    reporter.report(progress(n), true);
    Ok(out)
}

/// The learner's Gibbs weights of scores, relative to the best: `exp(score -
/// max score)`, floored at the smallest positive double so that every record
/// keeps a positive training weight. Training weights of a selection by score
/// are these, normalised over the kept records.
pub fn gibbs_weights(scores: &[f64]) -> Vec<f64> {
    let top = scores.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    scores
        .iter()
        .map(|s| (s - top).exp().max(f64::from_bits(1)))
        .collect()
}

/// Names the sets in an error raised by `check_pair(samples, reference)`.
pub(crate) fn rename(mut e: SotError, set: &str) -> SotError {
    e.message = e
        .message
        .replace("x[", "samples[")
        .replace("x has", "samples has")
        .replace("y[", &format!("{set}["))
        .replace("y has", &format!("{set} has"));
    for what in ["[", " has", " weights", " potential"] {
        e.message = e
            .message
            .replace(&format!("reference{what}"), &format!("{set}{what}"));
    }
    e
}

/// Shifts a sample index in an error from a block to the whole batch.
fn at_rows(mut e: SotError, r0: usize) -> SotError {
    if r0 > 0 && e.message.starts_with("samples[") {
        if let Some(i) = e.index {
            e.message =
                e.message
                    .replacen(&format!("samples[{i}]"), &format!("samples[{}]", i + r0), 1);
            e.index = Some(i + r0);
        }
    }
    e
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::learner::{learn_weights, LearnerOptions, Reference, Sets};
    use crate::test_points::points;
    use ndarray::Array2;

    /// Naive f64 c-transform: costs in f64 from the raw points, log-sum-exp term by term.
    fn naive(
        x: &Array2<f32>,
        y: &Array2<f32>,
        b: &[f64],
        g: &[f64],
        eps: f64,
        cost: CostKind,
    ) -> Vec<f64> {
        let bsum: f64 = b.iter().sum();
        x.outer_iter()
            .map(|xi| {
                let terms: Vec<f64> = y
                    .outer_iter()
                    .zip(b.iter().zip(g))
                    .map(|(yj, (bj, gj))| {
                        let dot: f64 = xi
                            .iter()
                            .zip(yj.iter())
                            .map(|(p, q)| *p as f64 * *q as f64)
                            .sum();
                        let nx: f64 = xi.iter().map(|p| (*p as f64).powi(2)).sum();
                        let ny: f64 = yj.iter().map(|q| (*q as f64).powi(2)).sum();
                        let c = match cost {
                            CostKind::Cosine => 1.0 - dot / (nx.sqrt() * ny.sqrt()),
                            CostKind::SqEuclidean => nx + ny - 2.0 * dot,
                        };
                        (bj / bsum).ln() + (gj - c) / eps
                    })
                    .collect();
                let top = terms.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                -eps * (top + terms.iter().map(|t| (t - top).exp()).sum::<f64>().ln())
            })
            .collect()
    }

    #[test]
    fn c_transform_matches_naive_f64() {
        for (cost, eps) in [
            (CostKind::Cosine, 0.05),
            (CostKind::Cosine, 0.005),
            (CostKind::SqEuclidean, 0.5),
        ] {
            let x = points(700, 9, 1);
            let y = points(37, 9, 2);
            let b: Vec<f64> = (0..37).map(|j| 1.0 + (j % 5) as f64).collect();
            let g: Vec<f64> = (0..37)
                .map(|j| ((j * 7) % 11) as f64 * 0.01 - 0.05)
                .collect();
            let r = FittedReference {
                points: y.view(),
                weights: &b,
                potential: &g,
            };
            let got = c_transform(x.view(), &r, cost, eps, &Control::default()).unwrap();
            let want = naive(&x, &y, &b, &g, eps, cost);
            // f32 costs: |dC| <= ~1e-6 relative, and the soft-min moves by at most max |dC|
            let scale = if cost == CostKind::Cosine { 2.0 } else { 10.0 };
            for (a, w) in got.iter().zip(&want) {
                assert!(
                    (a - w).abs() <= 2e-6 * scale,
                    "{cost:?} eps {eps}: {a} vs {w}"
                );
            }
        }
    }

    fn fit_sets() -> (Array2<f32>, Array2<f32>, Array2<f32>) {
        (points(400, 8, 3), points(30, 8, 4), points(60, 8, 5))
    }

    fn model_of<'a>(
        r: &'a crate::learner::LearnResult,
        anchor: &'a Array2<f32>,
        harmful: &'a Array2<f32>,
        eps: f64,
    ) -> FittedModel<'a> {
        let f = &r.fitted;
        FittedModel {
            cost: CostKind::Cosine,
            eps,
            anchor: FittedReference {
                points: anchor.view(),
                weights: &f.anchor_weights,
                potential: &f.anchor_potential,
            },
            harmful: FittedReference {
                points: harmful.view(),
                weights: &f.harmful_weights,
                potential: &f.harmful_potential,
            },
            scale: f.scale.clone(),
        }
    }

    /// Scoring the fit data reproduces the learner's own pull and push: its
    /// last solve returns (f, g) with f the soft-min of g up to the inner
    /// tolerance, so the difference is bounded by eps times the row error.
    #[test]
    fn scoring_the_fit_data_reproduces_the_learner() {
        let (x, anchor, harmful) = fit_sets();
        // converged tightly enough for the Gibbs check below, through both solves
        let opts = LearnerOptions {
            tol: 1e-7,
            ..LearnerOptions::default()
        };
        let sets = Sets {
            downstream: x.view(),
            anchor: Some(Reference {
                points: anchor.view(),
                weights: None,
            }),
            harmful: Reference {
                points: harmful.view(),
                weights: None,
            },
        };
        let r = learn_weights(&sets, &opts, &Control::default()).unwrap();
        // the data's own harm joined the reference: 5% of 400 rows
        assert_eq!(r.fitted.own_harm_rows.len(), 20);
        let joined = crate::learner::join_own_harm(harmful.view(), r.fitted.own_harm_points.view());
        let model = model_of(&r, &anchor, &joined, opts.eps);
        let s = score_samples(x.view(), &model, &Control::default()).unwrap();
        let worst = |a: &[f64], b: &[f64]| {
            a.iter()
                .zip(b)
                .map(|(p, q)| (p - q).abs())
                .fold(0.0, f64::max)
        };
        assert!(
            worst(&s.pull, &r.pull) < 1e-5,
            "pull off by {}",
            worst(&s.pull, &r.pull)
        );
        assert!(
            worst(&s.push, &r.push) < 1e-5,
            "push off by {}",
            worst(&s.push, &r.push)
        );
        // The learner's scores are the same function of its own potentials.
        for i in 0..x.nrows() {
            assert!((s.score[i] - (r.push[i] - r.pull[i]) / opts.tau).abs() < 1e-4);
        }
        // And the weights are the Gibbs form of the score near convergence: log w - score is nearly constant.
        let d: Vec<f64> = r
            .weights
            .iter()
            .zip(&s.score)
            .map(|(w, sc)| w.ln() - sc)
            .collect();
        let spread = d.iter().cloned().fold(f64::NEG_INFINITY, f64::max)
            - d.iter().cloned().fold(f64::INFINITY, f64::min);
        assert!(
            r.converged && spread < 1e-2,
            "log w - score spreads over {spread}"
        );
    }

    #[test]
    fn a_sample_scores_the_same_in_any_batch() {
        let (x, anchor, harmful) = fit_sets();
        let sets = Sets {
            downstream: x.view(),
            anchor: Some(Reference {
                points: anchor.view(),
                weights: None,
            }),
            harmful: Reference {
                points: harmful.view(),
                weights: None,
            },
        };
        let opts = LearnerOptions::default();
        let r = learn_weights(&sets, &opts, &Control::default()).unwrap();
        let joined = crate::learner::join_own_harm(harmful.view(), r.fitted.own_harm_points.view());
        let model = model_of(&r, &anchor, &joined, opts.eps);
        let fresh = points(3000, 8, 9);
        let whole = score_samples(fresh.view(), &model, &Control::default()).unwrap();
        // a permutation, and a batch of one
        let perm: Vec<usize> = (0..3000).map(|i| (i * 1543) % 3000).collect();
        let shuffled = score_samples(
            fresh.select(Axis(0), &perm).view(),
            &model,
            &Control::default(),
        )
        .unwrap();
        for (k, &i) in perm.iter().enumerate() {
            assert_eq!(shuffled.score[k].to_bits(), whole.score[i].to_bits());
        }
        let one = score_samples(
            fresh.slice(ndarray::s![1234..1235, ..]),
            &model,
            &Control::default(),
        )
        .unwrap();
        assert_eq!(one.score[0].to_bits(), whole.score[1234].to_bits());
    }

    #[test]
    fn bad_inputs_are_typed_errors() {
        let (_, anchor, harmful) = fit_sets();
        let (bs, bh) = (vec![1.0; 30], vec![1.0; 60]);
        let (gs, gh) = (vec![0.0; 30], vec![0.0; 60]);
        let mut bad = gh.clone();
        let scale = ScoreScale {
            pull_scale: 1.0,
            pull_offset: 0.0,
            push_scale: 1.5,
            push_offset: 0.0,
            tau: 0.2,
        };
        let mut x = points(600, 8, 7);
        x[[500, 3]] = f32::NAN;
        let model = FittedModel {
            cost: CostKind::Cosine,
            eps: 0.05,
            anchor: FittedReference {
                points: anchor.view(),
                weights: &bs,
                potential: &gs,
            },
            harmful: FittedReference {
                points: harmful.view(),
                weights: &bh,
                potential: &gh,
            },
            scale: scale.clone(),
        };
        let e = score_samples(x.view(), &model, &Control::default()).unwrap_err();
        assert_eq!(e.kind, ErrorKind::NonFinite);
        assert!(e.message.contains("samples[500]"), "{}", e.message);
        let wrong = points(5, 7, 1);
        let e = score_samples(wrong.view(), &model, &Control::default()).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Shape);
        assert!(e.message.contains("anchor"), "{}", e.message);
        bad[3] = f64::INFINITY;
        let model = FittedModel {
            harmful: FittedReference {
                points: harmful.view(),
                weights: &bh,
                potential: &bad,
            },
            ..model
        };
        let e = score_samples(points(3, 8, 1).view(), &model, &Control::default()).unwrap_err();
        assert!(e.message.contains("harmful potential"), "{}", e.message);
    }

    #[test]
    fn cancellation_stops_scoring() {
        let (_, anchor, harmful) = fit_sets();
        let (bs, bh, gs, gh) = (vec![1.0; 30], vec![1.0; 60], vec![0.0; 30], vec![0.0; 60]);
        let model = FittedModel {
            cost: CostKind::Cosine,
            eps: 0.05,
            anchor: FittedReference {
                points: anchor.view(),
                weights: &bs,
                potential: &gs,
            },
            harmful: FittedReference {
                points: harmful.view(),
                weights: &bh,
                potential: &gh,
            },
            scale: ScoreScale {
                pull_scale: 1.0,
                pull_offset: 0.0,
                push_scale: 1.5,
                push_offset: 0.0,
                tau: 0.2,
            },
        };
        let flag = std::sync::atomic::AtomicBool::new(true);
        let e = score_samples(
            points(3000, 8, 1).view(),
            &model,
            &Control::default().with_cancel(&flag),
        )
        .unwrap_err();
        assert_eq!(e.kind, ErrorKind::Aborted);
    }
}
