//! How contaminated the downstream set looks: the share of its samples that
//! the learned scores place with the harmful reference rather than with the
//! safe anchor, with an interval, and the automatic K drawn from it.
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
//! c-transform of its own set, else it would sit at cost 0 from itself).
//!
//! The likelihood ratio `p_harm / p_clean` is made non-increasing in the score
//! (a running minimum from the lowest score up): the score ranks harm-likeness,
//! and a kernel density of a small anchor has thin tails, so without this the
//! highest (cleanest) scores, beyond the anchor's range, would look harmful.
//! With the components fixed, the log-likelihood is concave in `pi`; `pi` is
//! its maximiser. The interval covers two errors: the sampling error of the
//! downstream scores (the profile-likelihood interval, `2 (l(pi) - l(p)) <=
//! chi2_1(level)`) and that of the calibration sets (50 anchor samples make a
//! noisy clean component): the calibration sets are resampled with
//! replacement `REPLICATES` times, and the interval runs from the
//! `(1 - level) / 2` quantile of the replicates' lower ends to the
//! `(1 + level) / 2` quantile of their upper ends. The data are called clean
//! when the interval's lower end is below `CLEAN_BELOW`: clean task data hold
//! samples that score like harm without being harmful (safe questions on
//! sensitive topics, outliers), a few percent of them, so a test of `pi = 0`
//! would call every real dataset contaminated. But only when its upper end is
//! below `CLEAN_UP_TO` too: an interval that reaches that far cannot rule out
//! real contamination (a harmful component the calibration sets place
//! poorly widens it), and keeping every record on such an interval is the
//! costly mistake.
//!
//! The automatic K drops the interval's upper end: the estimated share plus
//! the interval's margin above it, lowest scores first; clean data are kept
//! whole. (A K from the mixture's posterior, dropping until the expected
//! harmful samples kept are few, drops far more wherever the components
//! overlap: docs/learner-defaults.md.)
//!
//! It estimates the share of samples that score like the harmful reference.
//! The reference's own points have near-duplicates among its other points
//! (request sets that share requests in other words), so even leave-one-out
//! they score more harmful than unseen harm does, and a component calibrated
//! on them counts only the most extreme of the downstream's harm. So the
//! harmful component is calibrated several times, each reference point
//! scored with itself and its `k - 1` nearest neighbours left out, for each
//! `k` of `NEIGHBOURHOODS`, and the estimate takes the calibration under
//! which the downstream scores are most likely (each at its own maximising
//! share): how near the reference the downstream's harm sits is a nuisance
//! parameter the data choose. Harm that the embedding does not separate from
//! the task (subtle in-domain harm under a lexical embedder) is not counted.

use crate::control::Control;
use crate::cost::{cost_matrix, CostKind};
use crate::error::{ErrorKind, Result, SotError};
use ndarray::{ArrayView2, Axis};
use rayon::prelude::*;

/// The method's name, as reports print it.
pub const METHOD: &str = "reference-calibrated two-component mixture on the learned scores (harmful reference at its likeliest neighbourhood), monotone likelihood ratio (profile likelihood and calibration bootstrap)";

/// Confidence level of the interval.
pub const LEVEL: f64 = 0.9;

/// At most this many points of each reference calibrate its component (evenly spaced).
const MAX_CALIBRATION: usize = 2000;

/// How many of the harmful reference's points are left out of each of its
/// points' calibration score, itself and its nearest neighbours: one
/// candidate set per entry, the likelihood chooses (module documentation).
pub const NEIGHBOURHOODS: &[usize] = &[1, 2, 3, 5, 8, 13, 21];

/// Bootstrap replicates of the two calibration sets behind the interval.
const REPLICATES: usize = 50;

/// Nodes of the grid on which the component densities are evaluated (then
/// interpolated linearly in log density): the bootstrap evaluates them once
/// per replicate, so their cost must not grow with the downstream size.
const GRID: usize = 256;

#[derive(Debug, Clone, PartialEq)]
pub struct Contamination {
    /// Estimated share of contaminated samples, in [0, 1].
    pub estimate: f64,
    /// Interval at `level`.
    pub low: f64,
    pub high: f64,
    pub level: f64,
    pub method: &'static str,
    pub verdict: Verdict,
    /// How many samples the automatic K keeps (see `auto_keep`).
    pub keep: Option<usize>,
}

/// What the interval says about the data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Its lower end is below `CLEAN_BELOW` and its upper end below
    /// `CLEAN_UP_TO`: no evidence of contamination, on an interval narrow
    /// enough to act on.
    Clean,
    /// Its lower end is at `CLEAN_BELOW` or above.
    Contaminated,
    /// Its lower end is below `CLEAN_BELOW` but its upper end reaches
    /// `CLEAN_UP_TO`: the scores can tell neither way, and no K follows.
    Inconclusive,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Clean => "clean",
            Verdict::Contaminated => "contaminated",
            Verdict::Inconclusive => "inconclusive",
        }
    }
}

/// The interval's lower end below which the data are called clean (clean
/// development data with 5% safe-but-sensitive samples estimate 1-2%;
/// docs/learner-defaults.md).
pub const CLEAN_BELOW: f64 = 0.03;

/// The interval's upper end from which the data are not called clean,
/// whatever its lower end (clean development data reach 6-9%; contaminated
/// data called clean on the lower end alone reached 11-22%:
/// docs/learner-defaults.md).
pub const CLEAN_UP_TO: f64 = 0.1;

/// The automatic K: all when the data look clean, all but the interval's
/// upper end (at least one) when they look contaminated, none when the
/// verdict is inconclusive (the caller falls back to its fixed K).
pub fn auto_keep(c: &Contamination, n: usize) -> Option<usize> {
    c.keep.map(|k| k.min(n))
}

/// A fitted reference term: points, normalised masses and target potential.
pub struct FittedTerm<'a> {
    pub points: ArrayView2<'a, f32>,
    pub weights: &'a [f64],
    pub g: &'a [f64],
}

/// `f(y) = -eps log sum_j b_j exp((g_j - C(y, y_j)) / eps)` for each row of
/// `cost` (the c-transform of the potential `g`).
fn c_transform(cost: ArrayView2<f32>, term: &FittedTerm, eps: f64) -> Vec<f64> {
    let log_b: Vec<f64> = term.weights.iter().map(|b| b.ln()).collect();
    (0..cost.nrows())
        .into_par_iter()
        .map(|i| {
            let row = cost.row(i);
            -eps * log_sum_exp((0..row.len()).map(|j| log_b[j] + (term.g[j] - row[j] as f64) / eps))
        })
        .collect()
}

/// The c-transform with points of the term's own set left out: for each
/// `k` of `sizes` (ascending, each at least 1), row `i` without column
/// `own[i]` (its own point) and the `k - 1` other columns cheapest from it
/// (its nearest neighbours, ties to the lower index). One vector per size.
fn c_transform_left_out(
    cost: ArrayView2<f32>,
    term: &FittedTerm,
    eps: f64,
    own: &[usize],
    sizes: &[usize],
) -> Vec<Vec<f64>> {
    let log_b: Vec<f64> = term.weights.iter().map(|b| b.ln()).collect();
    let most = sizes.iter().copied().max().unwrap_or(1);
    let per_row: Vec<Vec<f64>> = (0..cost.nrows())
        .into_par_iter()
        .map(|i| {
            let row = cost.row(i);
            let terms: Vec<f64> = (0..row.len())
                .map(|j| log_b[j] + (term.g[j] - row[j] as f64) / eps)
                .collect();
            // the row's nearest other points, nearest first
            let mut near: Vec<(f32, usize)> = (0..row.len())
                .filter(|j| *j != own[i])
                .map(|j| (row[j], j))
                .collect();
            let take = (most - 1).min(near.len());
            if take > 0 && take < near.len() {
                near.select_nth_unstable_by(take - 1, |a, b| {
                    a.0.total_cmp(&b.0).then(a.1.cmp(&b.1))
                });
            }
            near.truncate(take);
            near.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
            let mut out = vec![false; row.len()];
            out[own[i]] = true;
            let mut done = 1;
            sizes
                .iter()
                .map(|k| {
                    while done < *k && done - 1 < near.len() {
                        out[near[done - 1].1] = true;
                        done += 1;
                    }
                    -eps * log_sum_exp((0..row.len()).filter(|j| !out[*j]).map(|j| terms[j]))
                })
                .collect()
        })
        .collect();
    (0..sizes.len())
        .map(|s| per_row.iter().map(|r| r[s]).collect())
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

/// Scores of evenly spaced points of `own`, each scored against `other` in
/// full and against `own` without itself and its nearest points: one set per
/// distinct size in `left_out`, ascending, the number of `own`'s points left
/// out (1: leave-one-out; sizes past `own`'s size less one are skipped, and
/// with none left leave-one-out is used). `own_is_pull` says which term `own` is.
/// `z = lambda f_H - f_S`.
#[allow(clippy::too_many_arguments)]
pub fn calibration_scores(
    own: &FittedTerm,
    other: &FittedTerm,
    own_is_pull: bool,
    lambda: f64,
    eps: f64,
    cost: CostKind,
    left_out: &[usize],
    ctl: &Control,
) -> Result<Vec<Vec<f64>>> {
    let rows = spaced(own.points.nrows());
    let y = own.points.select(Axis(0), &rows);
    let c_own = cost_matrix(y.view(), own.points, cost, ctl)?;
    let f_other = c_transform(
        cost_matrix(y.view(), other.points, cost, ctl)?.view(),
        other,
        eps,
    );
    let m = own.points.nrows();
    let mut sizes: Vec<usize> = left_out
        .iter()
        .copied()
        .filter(|k| *k >= 1 && *k < m.max(2))
        .collect();
    if sizes.is_empty() {
        sizes.push(1);
    }
    sizes.sort_unstable();
    sizes.dedup();
    Ok(c_transform_left_out(c_own.view(), own, eps, &rows, &sizes)
        .into_iter()
        .map(|f_own| {
            f_own
                .iter()
                .zip(&f_other)
                .map(|(a, b)| {
                    if own_is_pull {
                        lambda * b - a
                    } else {
                        lambda * a - b
                    }
                })
                .collect()
        })
        .collect())
}

/// Silverman's bandwidth of a Gaussian kernel density of `points`, floored
/// relative to the spread of all scores so a degenerate set still has a density.
fn bandwidth(points: &[f64], spread: f64) -> f64 {
    let m = points.len() as f64;
    let mean = points.iter().sum::<f64>() / m;
    let sd = (points.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (m - 1.0).max(1.0)).sqrt();
    let mut s = points.to_vec();
    s.sort_by(f64::total_cmp);
    let q = |p: f64| s[((p * (m - 1.0)).round() as usize).min(s.len() - 1)];
    let iqr = (q(0.75) - q(0.25)) / 1.34;
    let scale = if iqr > 0.0 { sd.min(iqr) } else { sd };
    let h = (0.9 * scale * m.powf(-0.2)).max(1e-3 * spread);
    if h > 0.0 {
        h
    } else {
        1.0 // every score equal: any width serves
    }
}

/// A calibration set as a Gaussian kernel density with fixed bandwidth; a
/// bootstrap replicate gives each point a multiplicity.
struct Component<'a> {
    points: &'a [f64],
    h: f64,
}

/// A component's points with their log multiplicities.
struct Weighted {
    points: Vec<(f64, f64)>,
    log_norm: f64,
    inv: f64,
}

impl Component<'_> {
    /// The points counted `counts[j]` times (all once when `None`).
    fn weighted(&self, counts: Option<&[u32]>) -> Weighted {
        let points = self
            .points
            .iter()
            .enumerate()
            .filter_map(|(j, p)| {
                let c = counts.map_or(1, |c| c[j]);
                (c > 0).then(|| (*p, (c as f64).ln()))
            })
            .collect();
        let total = counts.map_or(self.points.len() as f64, |c| {
            c.iter().map(|v| *v as f64).sum()
        });
        Weighted {
            points,
            log_norm: (total * self.h * (2.0 * std::f64::consts::PI).sqrt()).ln(),
            inv: 1.0 / (2.0 * self.h * self.h),
        }
    }
}

impl Weighted {
    fn log_pdf(&self, z: f64) -> f64 {
        let term = |(p, w): &(f64, f64)| w - (z - p).powi(2) * self.inv;
        let top = self
            .points
            .iter()
            .map(term)
            .fold(f64::NEG_INFINITY, f64::max);
        let sum: f64 = self.points.iter().map(|x| (term(x) - top).exp()).sum();
        top + sum.ln() - self.log_norm
    }
}

/// The downstream scores on a grid: the component densities are evaluated
/// at `GRID` nodes, the scores counted in `BINS` equal bins, and the ratio
/// interpolated linearly from the nodes to the bins, so a fit costs the same
/// whatever the downstream size.
struct Grid {
    nodes: Vec<f64>,
    /// Per non-empty bin, from the lowest up: its lower node, the weight of the upper one, its count.
    bins: Vec<(usize, f64, f64)>,
}

/// Bins of the downstream scores.
const BINS: usize = 4096;

impl Grid {
    fn new(scores: &[f64]) -> Self {
        let lo = scores.iter().cloned().fold(f64::INFINITY, f64::min);
        let hi = scores.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let step = (hi - lo) / (GRID - 1) as f64;
        let nodes: Vec<f64> = (0..GRID).map(|k| lo + k as f64 * step).collect();
        let bin = |z: f64| {
            if hi > lo {
                (((z - lo) / (hi - lo) * (BINS - 1) as f64).round() as usize).min(BINS - 1)
            } else {
                0
            }
        };
        let mut count = vec![0.0; BINS];
        scores.iter().for_each(|z| count[bin(*z)] += 1.0);
        let mut bins = Vec::new();
        for (b, c) in count.iter().enumerate().filter(|(_, c)| **c > 0.0) {
            let x = b as f64 / (BINS - 1) as f64 * (GRID - 1) as f64;
            let k = (x.floor() as usize).min(GRID - 2);
            bins.push((k, x - k as f64, *c));
        }
        Grid { nodes, bins }
    }

    /// The log likelihood ratio `log p_harm - log p_clean` at each bin, made
    /// non-increasing in the score (a running minimum over the nodes from the
    /// lowest up, then interpolated: linear interpolation keeps it monotone).
    fn log_ratio(
        &self,
        clean: &Component,
        harm: &Component,
        counts: Option<(&[u32], &[u32])>,
    ) -> Vec<f64> {
        let (pc, ph) = (
            clean.weighted(counts.map(|c| c.0)),
            harm.weighted(counts.map(|c| c.1)),
        );
        let mut low = f64::INFINITY;
        let node: Vec<f64> = self
            .nodes
            .iter()
            .map(|z| {
                let r = ph.log_pdf(*z) - pc.log_pdf(*z);
                // a node far outside both components has no density under either: no evidence either way
                low = low.min(if r.is_nan() { 0.0 } else { r });
                low
            })
            .collect();
        self.bins
            .iter()
            .map(|(k, t, _)| (1.0 - t) * node[*k] + t * node[k + 1])
            .collect()
    }

    fn likelihood(&self, log_ratio: Vec<f64>) -> Likelihood {
        Likelihood {
            log_ratio,
            count: self.bins.iter().map(|b| b.2).collect(),
        }
    }
}

/// The mixture fit, from the log density ratios `log p_harm(z) - log p_clean(z)`
/// at distinct scores, each counted `count` times.
struct Likelihood {
    log_ratio: Vec<f64>,
    count: Vec<f64>,
}

impl Likelihood {
    /// Log-likelihood of `pi` (up to the constant sum of log p_clean). Sequential, like
    /// everything in a fit: the bootstrap runs the fits in parallel, and a parallel loop
    /// inside each costs more in hand-offs than its few thousand terms do.
    fn value(&self, pi: f64) -> f64 {
        self.log_ratio
            .iter()
            .zip(&self.count)
            .map(|(r, c)| {
                let (a, b) = ((1.0 - pi).ln(), pi.ln() + r);
                let top = a.max(b);
                if top == f64::NEG_INFINITY {
                    f64::NEG_INFINITY
                } else {
                    c * (top + ((a - top).exp() + (b - top).exp()).ln())
                }
            })
            .sum()
    }

    /// Derivative in `pi`: sum (rho - 1) / (1 - pi + pi rho); decreasing in `pi`.
    fn slope(&self, pi: f64) -> f64 {
        self.log_ratio
            .iter()
            .zip(&self.count)
            .map(|(r, c)| {
                c * if *r > 0.0 {
                    // (rho - 1) / (1 - pi + pi rho) with rho = e^r, divided through by rho
                    let inv = (-r).exp();
                    (1.0 - inv) / ((1.0 - pi) * inv + pi)
                } else {
                    let rho = r.exp();
                    (rho - 1.0) / (1.0 - pi + pi * rho)
                }
            })
            .sum()
    }

    /// The maximiser and the profile-likelihood interval at `level`.
    fn fit(&self, level: f64) -> (f64, f64, f64) {
        let pi = if self.slope(0.0) <= 0.0 {
            0.0
        } else if self.slope(1.0) >= 0.0 {
            1.0
        } else {
            bisect(0.0, 1.0, |p| self.slope(p) > 0.0)
        };
        let top = self.value(pi);
        let drop = 0.5 * chi2_1_quantile(level);
        let within = |p: f64| top - self.value(p) <= drop;
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
        (pi, low.min(pi), high.max(pi))
    }
}

/// Bisection of a monotone predicate on [lo, hi]: the boundary where it turns false.
fn bisect(mut lo: f64, mut hi: f64, inside: impl Fn(f64) -> bool) -> f64 {
    for _ in 0..40 {
        let mid = 0.5 * (lo + hi);
        if inside(mid) {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    0.5 * (lo + hi)
}

/// How many of `n` samples to keep when the share `share` goes: at least one.
fn drop_share(n: usize, share: f64) -> usize {
    (n - (share * n as f64).round() as usize).max(1)
}

/// Multiplicities of a resample with replacement of `m` points (xorshift, seeded).
fn resample(m: usize, seed: u64) -> Vec<u32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut counts = vec![0u32; m];
    for _ in 0..m {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        counts[((s >> 11) % m as u64) as usize] += 1;
    }
    counts
}

/// The `q` quantile of `v` (sorted here), by the nearest rank.
fn quantile(mut v: Vec<f64>, q: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    v[((q * (v.len() - 1) as f64).round() as usize).min(v.len() - 1)]
}

/// The two components' kernel densities, bandwidths relative to the spread of all the scores.
fn components<'a>(
    scores: &[f64],
    clean: &'a [f64],
    harmful: &'a [f64],
) -> (Component<'a>, Component<'a>) {
    let all = scores.iter().chain(clean).chain(harmful);
    let spread = all.clone().fold(f64::NEG_INFINITY, |a, b| a.max(*b))
        - all.fold(f64::INFINITY, |a, b| a.min(*b));
    (
        Component {
            points: clean,
            h: bandwidth(clean, spread),
        },
        Component {
            points: harmful,
            h: bandwidth(harmful, spread),
        },
    )
}

/// The contamination estimate from downstream scores and the two calibration
/// score sets (see the module documentation).
pub fn estimate(
    scores: &[f64],
    clean: &[f64],
    harmful: &[f64],
    level: f64,
) -> Result<Contamination> {
    estimate_among(scores, clean, &[harmful], level)
}

/// The estimate with the harmful component calibrated on whichever of
/// `harmful`'s score sets makes the downstream scores most likely (each at
/// its own maximising share; the first of equals).
pub fn estimate_among(
    scores: &[f64],
    clean: &[f64],
    harmful: &[&[f64]],
    level: f64,
) -> Result<Contamination> {
    if !(level > 0.0 && level < 1.0) {
        return Err(SotError::new(
            ErrorKind::InvalidOption,
            format!("contamination level must lie in (0, 1), got {level}"),
        ));
    }
    if harmful.is_empty() {
        return Err(SotError::new(
            ErrorKind::Empty,
            "contamination estimate: no harmful calibration scores",
        ));
    }
    let named = [(scores, "scores"), (clean, "clean calibration scores")];
    let sets = named
        .into_iter()
        .chain(harmful.iter().map(|h| (*h, "harmful calibration scores")));
    for (set, what) in sets {
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
    let grid = Grid::new(scores);
    let (mut best, mut top) = (None, f64::NEG_INFINITY);
    for h in harmful {
        let (pc, ph) = components(scores, clean, h);
        let lik = grid.likelihood(grid.log_ratio(&pc, &ph, None));
        let fit = lik.fit(level);
        let value = lik.value(fit.0);
        if best.is_none() || value > top {
            (best, top) = (Some((pc, ph, fit)), value);
        }
    }
    let (pc, ph, (pi, low, high)) = best.expect("at least one harmful set");
    // Replicates in parallel, each with its own seed, collected in order: the same interval whatever the thread count.
    let replicates: Vec<(f64, f64)> = (0..REPLICATES as u64)
        .into_par_iter()
        .map(|b| {
            let counts = (
                resample(clean.len(), 2 * b + 1),
                resample(ph.points.len(), 2 * b + 2),
            );
            let r = grid.likelihood(grid.log_ratio(&pc, &ph, Some((&counts.0, &counts.1))));
            let (_, l, h) = r.fit(level);
            (l, h)
        })
        .collect();
    let tail = 0.5 * (1.0 - level);
    let low = low.min(quantile(replicates.iter().map(|r| r.0).collect(), tail));
    let high = high.max(quantile(
        replicates.iter().map(|r| r.1).collect(),
        1.0 - tail,
    ));
    let verdict = if low >= CLEAN_BELOW {
        Verdict::Contaminated
    } else if high < CLEAN_UP_TO {
        Verdict::Clean
    } else {
        Verdict::Inconclusive
    };
    let keep = match verdict {
        Verdict::Clean => Some(scores.len()),
        Verdict::Contaminated => Some(drop_share(scores.len(), high)),
        Verdict::Inconclusive => None,
    };
    Ok(Contamination {
        estimate: pi,
        low,
        high,
        level,
        method: METHOD,
        verdict,
        keep,
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
    pub(super) fn normals(n: usize, mean: f64, sd: f64, seed: u64) -> Vec<f64> {
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

    fn spread(sets: &[&[f64]]) -> f64 {
        let all: Vec<f64> = sets.iter().flat_map(|s| s.iter().cloned()).collect();
        all.iter().cloned().fold(f64::NEG_INFINITY, f64::max)
            - all.iter().cloned().fold(f64::INFINITY, f64::min)
    }

    /// Naive reference: densities summed directly at each score (no grid), the
    /// ratio made monotone by brute force, the likelihood maximised on a fine grid of `pi`.
    fn naive_ratio(scores: &[f64], clean: &[f64], harmful: &[f64]) -> Vec<f64> {
        let sp = spread(&[scores, clean, harmful]);
        let pdf = |pts: &[f64], z: f64| {
            let h = bandwidth(pts, sp);
            pts.iter()
                .map(|p| (-(z - p).powi(2) / (2.0 * h * h)).exp())
                .sum::<f64>()
                / (pts.len() as f64 * h * (2.0 * std::f64::consts::PI).sqrt())
        };
        let raw: Vec<f64> = scores
            .iter()
            .map(|z| (pdf(harmful, *z) / pdf(clean, *z)).ln())
            .collect();
        // monotone: the smallest ratio over every score at or below this one
        (0..scores.len())
            .map(|i| {
                (0..scores.len())
                    .filter(|j| scores[*j] <= scores[i])
                    .map(|j| raw[j])
                    .fold(f64::INFINITY, f64::min)
            })
            .collect()
    }

    fn naive_pi(ratio: &[f64]) -> f64 {
        (0..=10_000)
            .map(|k| k as f64 / 10_000.0)
            .map(|p| {
                let l: f64 = ratio.iter().map(|r| (1.0 - p + p * r.exp()).ln()).sum();
                (p, l)
            })
            .fold(
                (0.0, f64::NEG_INFINITY),
                |b, x| if x.1 > b.1 { x } else { b },
            )
            .0
    }

    pub(super) fn mixture(n: usize, pi: f64, harm_mean: f64, seed: u64) -> Vec<f64> {
        let nh = (pi * n as f64).round() as usize;
        let mut z = normals(n - nh, 0.0, 1.0, seed);
        z.extend(normals(nh, harm_mean, 1.5, seed + 1000));
        z
    }

    #[test]
    fn recovers_known_fractions_and_matches_a_naive_reference() {
        let clean_cal = normals(50, 0.0, 1.0, 1);
        let harm_cal = normals(500, -4.0, 1.5, 2);
        for (k, &pi) in [0.01, 0.05, 0.1, 0.3].iter().enumerate() {
            let z = mixture(2000, pi, -4.0, 10 + k as u64);
            let e = estimate(&z, &clean_cal, &harm_cal, 0.9).unwrap();
            assert!(
                (e.estimate - pi).abs() < 0.02,
                "pi {pi}: estimate {}",
                e.estimate
            );
            assert!(
                e.low <= e.estimate && e.estimate <= e.high && e.low <= pi && pi <= e.high,
                "{e:?}"
            );
            if pi >= 0.1 {
                assert_eq!(e.verdict, Verdict::Contaminated, "{e:?}");
            }
            // the grid and its interpolation against densities summed at each score
            let g = naive_pi(&naive_ratio(&z, &clean_cal, &harm_cal));
            assert!(
                (e.estimate - g).abs() < 2e-3,
                "grid {} vs naive {g}",
                e.estimate
            );
        }
    }

    #[test]
    fn clean_data_is_called_clean_and_kept_whole() {
        let clean_cal = normals(50, 0.0, 1.0, 3);
        let harm_cal = normals(500, -4.0, 1.5, 4);
        // 2,000 draws against 50: the highest scores lie beyond every anchor point
        let z = normals(2000, 0.0, 1.0, 5);
        let e = estimate(&z, &clean_cal, &harm_cal, 0.9).unwrap();
        assert!(
            e.verdict == Verdict::Clean && e.estimate < 0.01 && e.high < 0.03,
            "{e:?}"
        );
        assert_eq!(auto_keep(&e, z.len()), Some(z.len()));
    }

    #[test]
    fn the_likelihood_ratio_falls_with_the_score() {
        // without the monotone ratio, scores above the thin-tailed anchor density look harmful
        let clean_cal = normals(50, 0.0, 1.0, 6);
        let harm_cal = normals(500, -4.0, 3.0, 7);
        let z = normals(2000, 0.0, 1.0, 8);
        let sp = spread(&[&z, &clean_cal, &harm_cal]);
        let (pc, ph) = (
            Component {
                points: &clean_cal,
                h: bandwidth(&clean_cal, sp),
            },
            Component {
                points: &harm_cal,
                h: bandwidth(&harm_cal, sp),
            },
        );
        let grid = Grid::new(&z);
        let r = grid.log_ratio(&pc, &ph, None);
        let top = z.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        assert!(ph.weighted(None).log_pdf(top) > pc.weighted(None).log_pdf(top));
        // per bin, from the lowest score up
        assert!(r.windows(2).all(|w| w[1] <= w[0]));
        let e = estimate(&z, &clean_cal, &harm_cal, 0.9).unwrap();
        assert!(e.verdict == Verdict::Clean && e.estimate < 0.01, "{e:?}");
    }

    #[test]
    fn the_estimate_does_not_depend_on_the_scale_of_the_scores() {
        let clean_cal = normals(60, 0.0, 1.0, 9);
        let harm_cal = normals(400, -3.0, 1.5, 10);
        let z = mixture(1500, 0.1, -3.0, 11);
        let e = estimate(&z, &clean_cal, &harm_cal, 0.9).unwrap();
        let f = |v: &[f64]| v.iter().map(|x| 7.5 * x - 3.0).collect::<Vec<_>>();
        let s = estimate(&f(&z), &f(&clean_cal), &f(&harm_cal), 0.9).unwrap();
        for (a, b) in [(e.estimate, s.estimate), (e.low, s.low), (e.high, s.high)] {
            assert!((a - b).abs() < 1e-6, "{e:?} vs {s:?}");
        }
        assert_eq!(e.keep, s.keep);
    }

    #[test]
    fn the_estimate_is_consistent_as_n_grows() {
        let clean_cal = normals(400, 0.0, 1.0, 12);
        let harm_cal = normals(400, -4.0, 1.5, 13);
        let err = |n: usize| {
            (0..4)
                .map(|s| {
                    let z = mixture(n, 0.1, -4.0, 100 + s);
                    (estimate(&z, &clean_cal, &harm_cal, 0.9).unwrap().estimate - 0.1).abs()
                })
                .sum::<f64>()
                / 4.0
        };
        let (small, large) = (err(200), err(8000));
        assert!(large < small && large < 0.01, "{small} -> {large}");
        // and the interval narrows with n
        let w = |n: usize| {
            let e = estimate(&mixture(n, 0.1, -4.0, 7), &clean_cal, &harm_cal, 0.9).unwrap();
            e.high - e.low
        };
        assert!(w(8000) < w(200));
    }

    #[test]
    fn the_interval_holds_the_profile_likelihood_cut_and_the_calibration_error() {
        let clean_cal = normals(30, 0.0, 1.0, 14);
        let harm_cal = normals(300, -3.0, 1.0, 15);
        let z = mixture(1000, 0.1, -3.0, 16);
        let e = estimate(&z, &clean_cal, &harm_cal, 0.9).unwrap();
        let lik = Likelihood {
            log_ratio: naive_ratio(&z, &clean_cal, &harm_cal),
            count: vec![1.0; z.len()],
        };
        let l = |p: f64| {
            lik.log_ratio
                .iter()
                .map(|r| (1.0 - p + p * r.exp()).ln())
                .sum::<f64>()
        };
        let (pi, low, high) = lik.fit(0.9);
        // 2.7055 = chi2_1 quantile at 0.9: the profile interval's ends
        for bound in [low, high] {
            assert!((2.0 * (l(pi) - l(bound)) - 2.7055).abs() < 1e-3);
        }
        // the reported interval holds it, and is wider: 30 anchor samples are a noisy calibration
        assert!(
            e.low <= low + 2e-3 && e.high >= high - 2e-3,
            "{e:?} vs [{low}, {high}]"
        );
        assert!(e.high - e.low > high - low, "{e:?} vs [{low}, {high}]");
        assert!((chi2_1_quantile(0.95) - 3.8415).abs() < 1e-3);
    }

    #[test]
    fn auto_keep_drops_the_upper_end() {
        let clean_cal = normals(100, 0.0, 1.0, 17);
        let harm_cal = normals(500, -6.0, 1.5, 18);
        let far = mixture(2000, 0.1, -6.0, 19);
        let e = estimate(&far, &clean_cal, &harm_cal, 0.9).unwrap();
        assert_eq!(e.verdict, Verdict::Contaminated, "{e:?}");
        let keep = 2000 - (e.high * 2000.0).round() as usize;
        assert_eq!(auto_keep(&e, 2000), Some(keep), "{e:?}");
        // the share and a margin: at least the injected 10%, not much more
        let dropped = 1.0 - keep as f64 / 2000.0;
        assert!(
            dropped > e.estimate && (0.1..0.15).contains(&dropped),
            "{e:?}"
        );
        assert_eq!(drop_share(3, 1.0), 1, "at least one kept");
    }

    #[test]
    fn the_likeliest_harmful_calibration_is_chosen() {
        // a reference more extreme than the injected harm (its near-duplicates) biases the
        // estimate low; a calibration as near the clean one as the harm is chosen over it
        let clean_cal = normals(100, 0.0, 1.0, 31);
        let extreme = normals(500, -8.0, 1.0, 32);
        let like_harm = normals(500, -4.0, 1.0, 33);
        let z = mixture(2000, 0.2, -4.0, 34);
        let alone = estimate(&z, &clean_cal, &extreme, 0.9).unwrap();
        let among = estimate_among(&z, &clean_cal, &[&extreme, &like_harm], 0.9).unwrap();
        let direct = estimate(&z, &clean_cal, &like_harm, 0.9).unwrap();
        assert!(alone.estimate < 0.15, "{alone:?}");
        assert_eq!(among, direct);
        assert!((among.estimate - 0.2).abs() < 0.03, "{among:?}");
        // order does not matter, and one candidate is `estimate` itself
        let swapped = estimate_among(&z, &clean_cal, &[&like_harm, &extreme], 0.9).unwrap();
        assert_eq!(swapped, direct);
        assert_eq!(
            estimate_among(&z, &clean_cal, &[&extreme], 0.9).unwrap(),
            alone
        );
        assert_eq!(
            estimate_among(&z, &clean_cal, &[], 0.9).unwrap_err().kind,
            ErrorKind::Empty
        );
        assert_eq!(
            estimate_among(&z, &clean_cal, &[&extreme, &[f64::NAN]], 0.9)
                .unwrap_err()
                .kind,
            ErrorKind::NonFinite
        );
    }

    #[test]
    fn a_wide_interval_is_no_clean_verdict() {
        // 15-point calibration sets one standard deviation apart, 30% contamination:
        // the interval starts at 0 (the lower end alone called this clean) and reaches far up
        let clean_cal = normals(15, 0.0, 1.0, 3);
        let harm_cal = normals(15, -1.0, 1.0, 103);
        let z = mixture(2000, 0.3, -1.0, 203);
        let e = estimate(&z, &clean_cal, &harm_cal, 0.9).unwrap();
        assert!(e.low < CLEAN_BELOW && e.high >= CLEAN_UP_TO, "{e:?}");
        assert_eq!(e.verdict, Verdict::Inconclusive);
        assert_eq!(auto_keep(&e, z.len()), None);
        // the same contamination, well calibrated: a verdict and a K
        let far = estimate(
            &mixture(2000, 0.3, -4.0, 204),
            &normals(100, 0.0, 1.0, 4),
            &normals(500, -4.0, 1.5, 5),
            0.9,
        )
        .unwrap();
        assert_eq!(far.verdict, Verdict::Contaminated, "{far:?}");
        assert!(auto_keep(&far, 2000).is_some_and(|k| k < 1600), "{far:?}");
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
        let sets = c_transform_left_out(c.view(), &term, 0.1, &[0, 1, 2], &[1, 2]);
        let (loo, lno) = (&sets[0], &sets[1]);
        // leaving out the nearest neighbour too: point 2 is the nearest of 0 and of 1
        let direct = |i: usize, out: &[usize]| {
            -0.1 * (0..3)
                .filter(|j| !out.contains(j))
                .map(|j| (1.0f64 / 3.0) * (-(c[[i, j]] as f64) / 0.1).exp())
                .sum::<f64>()
                .ln()
        };
        assert!((lno[0] - direct(0, &[0, 2])).abs() < 1e-9);
        assert!((lno[1] - direct(1, &[1, 2])).abs() < 1e-9);
        // 0 and 1 are equally near 2: the lower index goes
        assert!((lno[2] - direct(2, &[2, 0])).abs() < 1e-9);
        assert!((c_transform(c.view(), &term, 0.1)[0] - direct(0, &[])).abs() < 1e-9);
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
    fn degenerate_components_give_an_estimate() {
        let e = estimate(&[0.0, 0.0, 5.0], &[0.0], &[0.0], 0.9).unwrap();
        assert!(
            e.estimate.is_finite()
                && (0.0..=1.0).contains(&e.estimate)
                && e.keep.is_none_or(|k| k >= 1),
            "{e:?}"
        );
        let far = estimate(&[1e6, 0.0], &[0.0, 0.1], &[-1.0, -1.1], 0.9).unwrap();
        assert!(far.estimate.is_finite(), "{far:?}");
        let one = estimate(&[3.0], &[0.0, 0.1], &[-1.0, -1.1], 0.9).unwrap();
        // one score can tell nothing: an interval too wide for a verdict, and no K
        assert_eq!(
            (one.verdict, one.keep),
            (Verdict::Inconclusive, None),
            "{one:?}"
        );
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
