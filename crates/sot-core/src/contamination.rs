//! How contaminated the downstream set looks: the share of its samples that
//! the learned scores place with the harmful reference rather than with the
//! safe anchor, with a likelihood interval.
//!
//! The learner's score of a point `y` is `z(y) = lambda f_H(y) - f_S(y)`, the
//! c-transforms at `y` of the fitted reference potentials (high = keep). The
//! downstream scores are modelled as a two-component mixture
//!
//! ```text
//! z ~ (1 - pi) p_clean + pi p_harm
//! ```
//!
//! whose components are calibrated on the references themselves: `p_clean` is
//! a kernel density of the anchor's scores and `p_harm` one of the harmful
//! reference's, each point scored leave-one-out (its own mass left out of the
//! c-transform of its own set, else it would sit at cost 0 from itself). With
//! the components fixed, the log-likelihood is concave in `pi`; `pi` is its
//! maximiser and the interval at `level` is the profile-likelihood one
//! (`2 (l(pi) - l(p)) <= chi2_1(level)`). The data are called clean when the
//! interval's lower end is below `CLEAN_BELOW`: clean task data hold samples
//! that score like harm without being harmful (safe questions on sensitive
//! topics, outliers), a few percent of them, so a test of `pi = 0` would
//! call every real dataset contaminated.
//!
//! It estimates the share of samples that score like the harmful reference:
//! harm that the embedding does not separate from the task (subtle in-domain
//! harm under a lexical embedder) is not counted, and without an anchor the
//! clean component is calibrated on downstream samples (biased low).

use crate::control::Control;
use crate::cost::{cost_matrix, CostKind};
use crate::error::{ErrorKind, Result, SotError};
use ndarray::{ArrayView2, Axis};
use rayon::prelude::*;

/// The method's name, as reports print it.
pub const METHOD: &str =
    "reference-calibrated two-component mixture on the learned scores (profile likelihood)";

/// Confidence level of the interval.
pub const LEVEL: f64 = 0.9;

/// At most this many points of each reference calibrate its component (evenly spaced).
const MAX_CALIBRATION: usize = 2000;

#[derive(Debug, Clone, PartialEq)]
pub struct Contamination {
    /// Estimated share of contaminated samples, in [0, 1].
    pub estimate: f64,
    /// Interval at `level`.
    pub low: f64,
    pub high: f64,
    pub level: f64,
    pub method: &'static str,
    /// The interval's lower end is below `CLEAN_BELOW`: no evidence of contamination.
    pub clean: bool,
}

/// The interval's lower end below which the data are called clean (measured
/// on clean development data with 5% safe-but-sensitive samples: estimates of
/// 2-3%; docs/learner-defaults.md).
pub const CLEAN_BELOW: f64 = 0.03;

/// Share dropped beyond the interval's upper end by the automatic K.
pub const MARGIN: f64 = 0.01;

/// The automatic K: keep all when the data look clean, else drop the upper
/// end of the interval plus `MARGIN` (what could be contaminated at the
/// interval's level, and a little for the ranking's own errors); at least one kept.
pub fn auto_keep(c: &Contamination, n: usize) -> usize {
    if c.clean || n == 0 {
        return n;
    }
    let drop = ((c.high + MARGIN).min(1.0) * n as f64).ceil() as usize;
    n.saturating_sub(drop).max(1)
}

/// A fitted reference term: points, normalised masses and target potential.
pub struct FittedTerm<'a> {
    pub points: ArrayView2<'a, f32>,
    pub weights: &'a [f64],
    pub g: &'a [f64],
}

/// `f(y) = -eps log sum_j b_j exp((g_j - C(y, y_j)) / eps)` for each row of
/// `cost` (the c-transform of the potential `g`), leaving out column
/// `skip(i)` of row `i` when given.
fn c_transform(
    cost: ArrayView2<f32>,
    term: &FittedTerm,
    eps: f64,
    skip: Option<&[usize]>,
) -> Vec<f64> {
    let log_b: Vec<f64> = term.weights.iter().map(|b| b.ln()).collect();
    (0..cost.nrows())
        .into_par_iter()
        .map(|i| {
            let row = cost.row(i);
            let leave = skip.map(|s| s[i]);
            let terms = (0..row.len())
                .filter(|j| Some(*j) != leave)
                .map(|j| log_b[j] + (term.g[j] - row[j] as f64) / eps);
            -eps * log_sum_exp(terms)
        })
        .collect()
}

fn log_sum_exp(it: impl Iterator<Item = f64> + Clone) -> f64 {
    let top = it.clone().fold(f64::NEG_INFINITY, f64::max);
    if !top.is_finite() {
        return top;
    }
    top + it.map(|v| (v - top).exp()).sum::<f64>().ln()
}

/// Evenly spaced rows (all when there are few).
fn spaced(n: usize) -> Vec<usize> {
    let take = n.min(MAX_CALIBRATION);
    (0..take).map(|k| k * n / take).collect()
}

/// Leave-one-out scores of evenly spaced points of `own` (scored against
/// `own` without themselves and against `other` in full); `own_is_pull` says
/// which term `own` is. `z = lambda f_H - f_S`.
pub fn calibration_scores(
    own: &FittedTerm,
    other: &FittedTerm,
    own_is_pull: bool,
    lambda: f64,
    eps: f64,
    cost: CostKind,
    ctl: &Control,
) -> Result<Vec<f64>> {
    let rows = spaced(own.points.nrows());
    let y = own.points.select(Axis(0), &rows);
    let f_own = c_transform(
        cost_matrix(y.view(), own.points, cost, ctl)?.view(),
        own,
        eps,
        Some(&rows),
    );
    let f_other = c_transform(
        cost_matrix(y.view(), other.points, cost, ctl)?.view(),
        other,
        eps,
        None,
    );
    Ok(f_own
        .iter()
        .zip(&f_other)
        .map(|(a, b)| {
            if own_is_pull {
                lambda * b - a
            } else {
                lambda * a - b
            }
        })
        .collect())
}

/// Gaussian kernel density of `points` (Silverman's bandwidth), as a log density.
struct Density {
    points: Vec<f64>,
    h: f64,
    log_norm: f64,
}

impl Density {
    fn new(points: &[f64], spread: f64) -> Self {
        let m = points.len() as f64;
        let mean = points.iter().sum::<f64>() / m;
        let sd =
            (points.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (m - 1.0).max(1.0)).sqrt();
        let mut s = points.to_vec();
        s.sort_by(f64::total_cmp);
        let q = |p: f64| s[((p * (m - 1.0)).round() as usize).min(s.len() - 1)];
        let iqr = (q(0.75) - q(0.25)) / 1.34;
        let scale = if iqr > 0.0 { sd.min(iqr) } else { sd };
        // a floor relative to the spread of all scores, so a degenerate set still has a density
        let h = (0.9 * scale * m.powf(-0.2)).max(1e-3 * spread);
        let h = if h > 0.0 { h } else { 1.0 }; // every score equal: any width serves
        Density {
            points: s,
            h,
            log_norm: (m * h * (2.0 * std::f64::consts::PI).sqrt()).ln(),
        }
    }

    fn log_pdf(&self, z: f64) -> f64 {
        let inv = 1.0 / (2.0 * self.h * self.h);
        log_sum_exp(self.points.iter().map(|p| -(z - p).powi(2) * inv)) - self.log_norm
    }
}

/// The mixture fit, from the log density ratios `log p_harm(z_i) - log p_clean(z_i)`.
struct Likelihood {
    log_ratio: Vec<f64>,
}

impl Likelihood {
    /// Log-likelihood of `pi` (up to the constant sum of log p_clean). The
    /// terms are computed in parallel and summed in order, so a run gives the
    /// same estimate to the last bit whatever the thread count.
    fn value(&self, pi: f64) -> f64 {
        self.log_ratio
            .par_iter()
            .map(|r| {
                let (a, b) = ((1.0 - pi).ln(), pi.ln() + r);
                let top = a.max(b);
                if top == f64::NEG_INFINITY {
                    f64::NEG_INFINITY
                } else {
                    top + ((a - top).exp() + (b - top).exp()).ln()
                }
            })
            .collect::<Vec<f64>>()
            .iter()
            .sum()
    }

    /// Derivative in `pi`: sum (rho - 1) / (1 - pi + pi rho); decreasing in `pi`.
    fn slope(&self, pi: f64) -> f64 {
        self.log_ratio
            .par_iter()
            .map(|r| {
                if *r > 0.0 {
                    // (rho - 1) / (1 - pi + pi rho) with rho = e^r, divided through by rho
                    let inv = (-r).exp();
                    (1.0 - inv) / ((1.0 - pi) * inv + pi)
                } else {
                    let rho = r.exp();
                    (rho - 1.0) / (1.0 - pi + pi * rho)
                }
            })
            .collect::<Vec<f64>>()
            .iter()
            .sum()
    }
}

/// Bisection of a monotone predicate on [lo, hi]: the boundary where it turns false.
fn bisect(mut lo: f64, mut hi: f64, inside: impl Fn(f64) -> bool) -> f64 {
    for _ in 0..60 {
        let mid = 0.5 * (lo + hi);
        if inside(mid) {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    0.5 * (lo + hi)
}

/// The contamination estimate from downstream scores and the two calibration
/// score sets (see the module documentation).
pub fn estimate(
    scores: &[f64],
    clean: &[f64],
    harmful: &[f64],
    level: f64,
) -> Result<Contamination> {
    if !(level > 0.0 && level < 1.0) {
        return Err(SotError::new(
            ErrorKind::InvalidOption,
            format!("contamination level must lie in (0, 1), got {level}"),
        ));
    }
    for (set, what) in [
        (scores, "scores"),
        (clean, "clean calibration scores"),
        (harmful, "harmful calibration scores"),
    ] {
        if set.is_empty() {
            return Err(SotError::new(
                ErrorKind::Empty,
                format!("contamination estimate: no {what}"),
            ));
        }
        if let Some(i) = set.iter().position(|v| !v.is_finite()) {
            return Err(SotError::at(
                ErrorKind::NonFinite,
                i,
                format!("contamination estimate: {what}[{i}] is {}", set[i]),
            ));
        }
    }
    let all = scores.iter().chain(clean).chain(harmful);
    let spread = all.clone().fold(f64::NEG_INFINITY, |a, b| a.max(*b))
        - all.fold(f64::INFINITY, |a, b| a.min(*b));
    let (pc, ph) = (Density::new(clean, spread), Density::new(harmful, spread));
    // a score far outside both components has no density under either: no evidence either way
    let ratio = |z: f64| {
        Some(ph.log_pdf(z) - pc.log_pdf(z))
            .filter(|r| !r.is_nan())
            .unwrap_or(0.0)
    };
    let lik = Likelihood {
        log_ratio: scores.par_iter().map(|z| ratio(*z)).collect(),
    };
    let pi = if lik.slope(0.0) <= 0.0 {
        0.0
    } else if lik.slope(1.0) >= 0.0 {
        1.0
    } else {
        bisect(0.0, 1.0, |p| lik.slope(p) > 0.0)
    };
    let top = lik.value(pi);
    let drop = 0.5 * chi2_1_quantile(level);
    let within = |p: f64| top - lik.value(p) <= drop;
    let low = if within(0.0) {
        0.0
    } else {
        bisect(pi, 0.0, within)
    };
    let high = if within(1.0) {
        1.0
    } else {
        bisect(pi, 1.0, within)
    };
    Ok(Contamination {
        estimate: pi,
        low: low.min(pi),
        high: high.max(pi),
        level,
        method: METHOD,
        clean: low < CLEAN_BELOW,
    })
}

/// The `level` quantile of chi-squared with one degree of freedom: the square
/// of the standard normal's `(1 + level) / 2` quantile.
fn chi2_1_quantile(level: f64) -> f64 {
    let p = 0.5 * (1.0 + level);
    let x = bisect(-10.0, 10.0, |x| normal_cdf(x) < p);
    x * x
}

/// Standard normal CDF through erfc (Numerical Recipes' Chebyshev fit, relative error < 1.2e-7).
fn normal_cdf(x: f64) -> f64 {
    let z = x.abs() / std::f64::consts::SQRT_2;
    let t = 1.0 / (1.0 + 0.5 * z);
    let poly = -z * z - 1.265_512_23
        + t * (1.000_023_68
            + t * (0.374_091_96
                + t * (0.096_784_18
                    + t * (-0.186_288_06
                        + t * (0.278_868_07
                            + t * (-1.135_203_98
                                + t * (1.488_515_87 + t * (-0.822_152_23 + t * 0.170_872_77))))))));
    let erfc = t * poly.exp();
    if x >= 0.0 {
        1.0 - 0.5 * erfc
    } else {
        0.5 * erfc
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deterministic normal draws (Box-Muller on a xorshift generator).
    fn normals(n: usize, mean: f64, sd: f64, seed: u64) -> Vec<f64> {
        let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        let mut u = || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            ((s >> 11) as f64 + 0.5) / (1u64 << 53) as f64
        };
        (0..n)
            .map(|_| {
                mean + sd * (-2.0 * u().ln()).sqrt() * (2.0 * std::f64::consts::PI * u()).cos()
            })
            .collect()
    }

    /// Naive reference: the same likelihood maximised on a fine grid, densities summed directly.
    fn naive(scores: &[f64], clean: &[f64], harmful: &[f64]) -> f64 {
        let spread = {
            let all: Vec<f64> = scores.iter().chain(clean).chain(harmful).cloned().collect();
            all.iter().cloned().fold(f64::NEG_INFINITY, f64::max)
                - all.iter().cloned().fold(f64::INFINITY, f64::min)
        };
        let (pc, ph) = (Density::new(clean, spread), Density::new(harmful, spread));
        let pdf = |d: &Density, z: f64| {
            d.points
                .iter()
                .map(|p| (-(z - p).powi(2) / (2.0 * d.h * d.h)).exp())
                .sum::<f64>()
                / (d.points.len() as f64 * d.h * (2.0 * std::f64::consts::PI).sqrt())
        };
        let dens: Vec<(f64, f64)> = scores
            .iter()
            .map(|z| (pdf(&pc, *z), pdf(&ph, *z)))
            .collect();
        (0..=10_000)
            .map(|k| k as f64 / 10_000.0)
            .map(|p| {
                (
                    p,
                    dens.iter()
                        .map(|(c, h)| ((1.0 - p) * c + p * h).ln())
                        .sum::<f64>(),
                )
            })
            .fold((0.0, f64::NEG_INFINITY), |best, x| {
                if x.1 > best.1 {
                    x
                } else {
                    best
                }
            })
            .0
    }

    #[test]
    fn recovers_known_fractions_and_matches_a_grid_search() {
        let clean_cal = normals(50, 0.0, 1.0, 1);
        let harm_cal = normals(500, -4.0, 1.5, 2);
        for (k, &pi) in [0.01, 0.05, 0.1, 0.3].iter().enumerate() {
            let n = 2000;
            let nh = (pi * n as f64) as usize;
            let mut z = normals(n - nh, 0.0, 1.0, 10 + k as u64);
            z.extend(normals(nh, -4.0, 1.5, 20 + k as u64));
            let e = estimate(&z, &clean_cal, &harm_cal, 0.9).unwrap();
            assert!(
                (e.estimate - pi).abs() < 0.02,
                "pi {pi}: estimate {}",
                e.estimate
            );
            assert!(
                e.low <= e.estimate
                    && e.estimate <= e.high
                    && e.low < pi + 0.02
                    && e.high > pi - 0.02,
                "{e:?}"
            );
            // 1% is below what the rule calls contaminated; 10% and more is well above it
            if pi <= 0.01 || pi >= 0.1 {
                assert_eq!(e.clean, pi < CLEAN_BELOW, "{e:?}");
            }
            let g = naive(&z, &clean_cal, &harm_cal);
            assert!(
                (e.estimate - g).abs() < 2e-4,
                "bisection {} vs grid {g}",
                e.estimate
            );
        }
    }

    #[test]
    fn clean_data_is_called_clean() {
        let clean_cal = normals(50, 0.0, 1.0, 3);
        let harm_cal = normals(500, -4.0, 1.5, 4);
        let z = normals(2000, 0.0, 1.0, 5);
        let e = estimate(&z, &clean_cal, &harm_cal, 0.9).unwrap();
        assert!(e.clean && e.estimate < 0.01 && e.high < 0.02, "{e:?}");
    }

    #[test]
    fn interval_matches_the_likelihood_ratio_cut() {
        let clean_cal = normals(80, 0.0, 1.0, 6);
        let harm_cal = normals(300, -3.0, 1.0, 7);
        let mut z = normals(900, 0.0, 1.0, 8);
        z.extend(normals(100, -3.0, 1.0, 9));
        let e = estimate(&z, &clean_cal, &harm_cal, 0.9).unwrap();
        let (pc, ph) = {
            let all: Vec<f64> = z
                .iter()
                .chain(&clean_cal)
                .chain(&harm_cal)
                .cloned()
                .collect();
            let spread = all.iter().cloned().fold(f64::NEG_INFINITY, f64::max)
                - all.iter().cloned().fold(f64::INFINITY, f64::min);
            (
                Density::new(&clean_cal, spread),
                Density::new(&harm_cal, spread),
            )
        };
        let l = |p: f64| {
            z.iter()
                .map(|v| ((1.0 - p) * pc.log_pdf(*v).exp() + p * ph.log_pdf(*v).exp()).ln())
                .sum::<f64>()
        };
        // 2.7055 = chi2_1 quantile at 0.9
        for bound in [e.low, e.high] {
            assert!(
                (2.0 * (l(e.estimate) - l(bound)) - 2.7055).abs() < 1e-3,
                "{e:?}"
            );
        }
        assert!((chi2_1_quantile(0.95) - 3.8415).abs() < 1e-3);
    }

    #[test]
    fn c_transform_leaves_out_the_own_point() {
        let pts = ndarray::arr2(&[[1.0f32, 0.0], [0.0, 1.0], [1.0, 1.0]]);
        let w = [1.0 / 3.0; 3];
        let g = [0.0; 3];
        let term = FittedTerm {
            points: pts.view(),
            weights: &w,
            g: &g,
        };
        let c = cost_matrix(
            pts.view(),
            pts.view(),
            CostKind::Cosine,
            &Control::default(),
        )
        .unwrap();
        let loo = c_transform(c.view(), &term, 0.1, Some(&[0, 1, 2]));
        for i in 0..3 {
            let direct = -0.1
                * (0..3)
                    .filter(|j| *j != i)
                    .map(|j| (1.0f64 / 3.0) * (-(c[[i, j]] as f64) / 0.1).exp())
                    .sum::<f64>()
                    .ln();
            assert!((loo[i] - direct).abs() < 1e-9);
        }
    }

    #[test]
    fn auto_keep_drops_the_upper_end_plus_the_margin() {
        let c = Contamination {
            estimate: 0.1,
            low: 0.08,
            high: 0.12,
            level: 0.9,
            method: METHOD,
            clean: false,
        };
        assert_eq!(auto_keep(&c, 1000), 870);
        assert_eq!(
            auto_keep(
                &Contamination {
                    clean: true,
                    ..c.clone()
                },
                1000
            ),
            1000
        );
        assert_eq!(auto_keep(&Contamination { high: 1.0, ..c }, 10), 1);
    }

    #[test]
    fn degenerate_components_give_an_estimate() {
        let e = estimate(&[0.0, 0.0, 5.0], &[0.0], &[0.0], 0.9).unwrap();
        assert!(
            e.estimate.is_finite() && (0.0..=1.0).contains(&e.estimate),
            "{e:?}"
        );
        let far = estimate(&[1e6, 0.0], &[0.0, 0.1], &[-1.0, -1.1], 0.9).unwrap();
        assert!(far.estimate.is_finite(), "{far:?}");
    }

    #[test]
    fn rejects_bad_input() {
        assert_eq!(
            estimate(&[], &[0.0], &[1.0], 0.9).unwrap_err().kind,
            ErrorKind::Empty
        );
        assert_eq!(
            estimate(&[f64::NAN], &[0.0], &[1.0], 0.9).unwrap_err().kind,
            ErrorKind::NonFinite
        );
        assert_eq!(
            estimate(&[0.0], &[0.0], &[1.0], 1.0).unwrap_err().kind,
            ErrorKind::InvalidOption
        );
    }
}
