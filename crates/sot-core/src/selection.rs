//! Stage 2: keep the top K samples and give each kept one a training weight.

use crate::error::{ErrorKind, Result, SotError};

/// How many samples to keep.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Keep {
    Count(usize),
    /// A fraction of the set in (0, 1], rounded to the nearest count (at least 1).
    Fraction(f64),
}

impl Keep {
    pub fn resolve(self, n: usize) -> Result<usize> {
        let k = match self {
            Keep::Count(k) => k,
            Keep::Fraction(f) if f > 0.0 && f <= 1.0 => ((f * n as f64).round() as usize).max(1),
            Keep::Fraction(f) => {
                return Err(SotError::new(
                    ErrorKind::InvalidOption,
                    format!("keep fraction must lie in (0, 1], got {f}"),
                ))
            }
        };
        if k == 0 || k > n {
            return Err(SotError::new(
                ErrorKind::InvalidOption,
                format!("keep must be between 1 and the {n} samples, got {k}"),
            ));
        }
        Ok(k)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Selection {
    /// Sample indices from best to worst score.
    pub order: Vec<usize>,
    /// Rank of each sample (0 = best).
    pub rank: Vec<usize>,
    pub kept: Vec<bool>,
    /// Training-loss weight: mean 1 over the kept samples, 0 for the dropped.
    pub train_weight: Vec<f64>,
    pub k: usize,
}

/// Ranks by `scores` (higher is better; ties by index) and keeps the top K.
/// Training weights are proportional to `weights` over the kept samples
/// (uniform when `None`), normalised to mean 1.
pub fn select_top_k(scores: &[f64], keep: Keep, weights: Option<&[f64]>) -> Result<Selection> {
    let n = scores.len();
    if let Some(i) = scores.iter().position(|s| s.is_nan()) {
        return Err(SotError::at(
            ErrorKind::NonFinite,
            i,
            format!("score[{i}] is NaN"),
        ));
    }
    if let Some(w) = weights {
        if w.len() != n {
            return Err(SotError::new(
                ErrorKind::Shape,
                format!("{} weights for {n} scores", w.len()),
            ));
        }
        if let Some(i) = w.iter().position(|v| !(v.is_finite() && *v >= 0.0)) {
            return Err(SotError::at(
                ErrorKind::InvalidWeight,
                i,
                format!("weight[{i}] is {} (must be finite and >= 0)", w[i]),
            ));
        }
    }
    let k = keep.resolve(n)?;
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&i, &j| scores[j].total_cmp(&scores[i]).then(i.cmp(&j)));
    let mut rank = vec![0; n];
    let mut kept = vec![false; n];
    for (r, &i) in order.iter().enumerate() {
        rank[i] = r;
        kept[i] = r < k;
    }
    let raw = |i: usize| weights.map_or(1.0, |w| w[i]);
    let total: f64 = order[..k].iter().map(|&i| raw(i)).sum();
    let mut train_weight = vec![0.0; n];
    for &i in &order[..k] {
        // all-zero kept weights fall back to uniform
        train_weight[i] = if total > 0.0 {
            raw(i) * k as f64 / total
        } else {
            1.0
        };
    }
    Ok(Selection {
        order,
        rank,
        kept,
        train_weight,
        k,
    })
}

/// Every sample's Gibbs weight as a distribution over all samples: `exp(score)`
/// normalised to sum 1 (the learner's form, [`crate::gibbs_weights`] divided by
/// their sum, floored as they are so that every sample keeps a positive
/// weight), so a merge of shards' scores needs no second ranking.
pub fn gibbs_distribution(scores: &[f64]) -> Result<Vec<f64>> {
    if let Some(i) = scores.iter().position(|s| !s.is_finite()) {
        return Err(SotError::at(
            ErrorKind::NonFinite,
            i,
            format!("score[{i}] is {} (must be finite)", scores[i]),
        ));
    }
    let mut w = crate::gibbs_weights(scores);
    // every term is in (0, 1] and the best is 1: the sum is in [1, n]
    let total: f64 = w.iter().sum();
    w.iter_mut()
        .for_each(|v| *v = (*v / total).max(f64::from_bits(1)));
    Ok(w)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gibbs_distribution_is_a_softmax_of_the_scores() {
        let scores = [0.5, -3.0, 2.0, 2.0, -600.0, 40.0];
        let p = gibbs_distribution(&scores).unwrap();
        // log-sum-exp by hand
        let top = 40.0;
        let lse = top + scores.iter().map(|s| (s - top).exp()).sum::<f64>().ln();
        for (i, s) in scores.iter().enumerate() {
            let want = (s - lse).exp();
            assert!(
                (p[i] - want).abs() <= 1e-14 * want,
                "{i}: {} vs {want}",
                p[i]
            );
        }
        assert!((p.iter().sum::<f64>() - 1.0).abs() < 1e-15);
        assert_eq!(p[2], p[3]);
        assert!(gibbs_distribution(&[]).unwrap().is_empty());
        // far below the best: the floor, still positive after the division
        assert!(gibbs_distribution(&[0.0, 0.0, 0.0, -1e6]).unwrap()[3] > 0.0);
        for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            let e = gibbs_distribution(&[1.0, bad]).unwrap_err();
            assert_eq!((e.kind, e.index), (ErrorKind::NonFinite, Some(1)));
        }
    }

    #[test]
    fn keeps_the_best_and_normalises_training_weights_to_mean_one() {
        let s = select_top_k(
            &[0.1, 0.5, 0.3, 0.5, -1.0],
            Keep::Count(3),
            Some(&[1.0, 2.0, 6.0, 4.0, 9.0]),
        )
        .unwrap();
        assert_eq!(s.order, vec![1, 3, 2, 0, 4]); // tie 1 vs 3 broken by index
        assert_eq!(s.rank, vec![3, 0, 2, 1, 4]);
        assert_eq!(s.kept, vec![false, true, true, true, false]);
        assert_eq!(s.train_weight, vec![0.0, 0.5, 1.5, 1.0, 0.0]);
        let mean: f64 = s.train_weight.iter().sum::<f64>() / 3.0;
        assert!((mean - 1.0).abs() < 1e-12);
    }

    #[test]
    fn fractions_round_and_bad_k_is_rejected() {
        assert_eq!(Keep::Fraction(0.8).resolve(5000).unwrap(), 4000);
        assert_eq!(Keep::Fraction(0.001).resolve(10).unwrap(), 1);
        for bad in [
            Keep::Count(0),
            Keep::Count(6),
            Keep::Fraction(0.0),
            Keep::Fraction(1.5),
            Keep::Fraction(f64::NAN),
        ] {
            assert_eq!(
                bad.resolve(5).unwrap_err().kind,
                ErrorKind::InvalidOption,
                "{bad:?}"
            );
        }
        assert_eq!(
            select_top_k(&[1.0, f64::NAN], Keep::Count(1), None)
                .unwrap_err()
                .index,
            Some(1)
        );
        let s = select_top_k(&[3.0, 1.0, 2.0], Keep::Fraction(1.0), None).unwrap();
        assert_eq!(s.train_weight, vec![1.0, 1.0, 1.0]);
    }
}
