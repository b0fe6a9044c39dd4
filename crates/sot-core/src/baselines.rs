//! Baseline selectors behind the same interface as the learner: each gives a
//! score per downstream sample, higher meaning "keep", for `select_top_k`.

use crate::control::Control;
use crate::cost::cost_matrix;
use crate::error::{ErrorKind, Result, SotError};
use crate::learner::{check_harmful, resolve_anchor, LearnerOptions, Sets};
use crate::sinkhorn::{centred, sinkhorn_finite, SinkhornOptions, WarmStart};
use ndarray::{Array1, Array2, Axis};
use rayon::prelude::*;

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Baseline {
    /// Uniformly random scores from a seeded generator.
    Random { seed: u64 },
    /// GOT-D style: keep what the OT gradient towards the anchor favours (low anchor potential).
    PullOnly,
    /// Keep what lies far from the harmful reference in OT terms (high harmful potential).
    PushOnly,
    /// Keep what is least similar to its nearest harmful sample.
    NearestHarmful,
    /// SAFT-style: drop samples with the largest projection on the top singular
    /// directions of the centred downstream embeddings.
    Saft { components: usize },
}

impl Baseline {
    pub fn name(self) -> &'static str {
        match self {
            Baseline::Random { .. } => "random",
            Baseline::PullOnly => "pull-only",
            Baseline::PushOnly => "push-only",
            Baseline::NearestHarmful => "nearest-harmful",
            Baseline::Saft { .. } => "saft",
        }
    }
}

/// Scores of a baseline (higher = keep), and any warnings. Only `cost`, `eps`,
/// `max_self_anchor` and `inner` of the options are used.
pub fn baseline_scores(method: Baseline, sets: &Sets, opts: &LearnerOptions, ctl: &Control) -> Result<(Vec<f64>, Vec<String>)> {
    let x = sets.downstream;
    let harmful_w = check_harmful(sets, opts)?;
    let inner = SinkhornOptions { eps: opts.eps, ..opts.inner.clone() };
    let mut warnings = Vec::new();
    let scores = match method {
        Baseline::Random { seed } => {
            let mut state = seed;
            (0..x.nrows()).map(|_| (splitmix64(&mut state) >> 11) as f64 / (1u64 << 53) as f64).collect()
        }
        Baseline::PullOnly => {
            let (anchor, w) = resolve_anchor(sets, opts, &mut warnings)?;
            let c = cost_matrix(x, anchor.view(), opts.cost, ctl)?;
            let r = sinkhorn_finite(c.view(), None, w.as_deref(), &inner, WarmStart::default(), ctl)?;
            centred(&r.f).into_iter().map(|v| -v).collect()
        }
        Baseline::PushOnly => {
            let c = cost_matrix(x, sets.harmful.points, opts.cost, ctl)?;
            let r = sinkhorn_finite(c.view(), None, harmful_w.as_deref(), &inner, WarmStart::default(), ctl)?;
            centred(&r.f)
        }
        Baseline::NearestHarmful => {
            let c = cost_matrix(x, sets.harmful.points, opts.cost, ctl)?;
            c.axis_iter(Axis(0)).into_par_iter().map(|row| row.iter().fold(f32::INFINITY, |m, v| m.min(*v)) as f64).collect()
        }
        Baseline::Saft { components } => saft(sets, components, ctl)?,
    };
    Ok((scores, warnings))
}

/// Minus the squared norm of each centred sample's projection on the top
/// `k` right singular vectors, found by subspace iteration.
fn saft(sets: &Sets, k: usize, ctl: &Control) -> Result<Vec<f64>> {
    let x = sets.downstream;
    let (n, d) = x.dim();
    if k == 0 || k > d.min(n) {
        return Err(SotError::new(
            ErrorKind::InvalidOption,
            format!("saft components must be between 1 and min(n, d) = {}, got {k}", d.min(n)),
        ));
    }
    let mean: Array1<f32> = x.mean_axis(Axis(0)).expect("non-empty");
    let xc = &x - &mean;
    let mut state = 0x5eed_u64;
    let mut v = Array2::from_shape_fn((d, k), |_| (splitmix64(&mut state) >> 40) as f32 / (1u64 << 24) as f32 - 0.5);
    orthonormalise(&mut v);
    for _ in 0..50 {
        ctl.check()?;
        let xv = xc.dot(&v); // n x k
        v = xc.t().dot(&xv); // d x k
        orthonormalise(&mut v);
    }
    let proj = xc.dot(&v);
    Ok(proj.axis_iter(Axis(0)).map(|r| -r.iter().map(|p| (*p as f64).powi(2)).sum::<f64>()).collect())
}

/// Modified Gram-Schmidt on the columns, in f64.
fn orthonormalise(v: &mut Array2<f32>) {
    let k = v.ncols();
    let mut cols: Vec<Vec<f64>> = (0..k).map(|j| v.column(j).iter().map(|x| *x as f64).collect()).collect();
    for j in 0..k {
        for i in 0..j {
            let dot: f64 = cols[j].iter().zip(&cols[i]).map(|(a, b)| a * b).sum();
            let ci = cols[i].clone();
            cols[j].iter_mut().zip(&ci).for_each(|(a, b)| *a -= dot * b);
        }
        let norm = cols[j].iter().map(|a| a * a).sum::<f64>().sqrt().max(f64::MIN_POSITIVE);
        cols[j].iter_mut().for_each(|a| *a /= norm);
    }
    for (j, col) in cols.iter().enumerate() {
        v.column_mut(j).iter_mut().zip(col).for_each(|(a, b)| *a = *b as f32);
    }
}

/// SplitMix64: a tiny, well-mixed generator, so that seeds mean the same everywhere.
fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}
