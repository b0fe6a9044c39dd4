//! Baseline selectors behind the same interface as the learner: each gives a
//! score per downstream sample, higher meaning "keep", for `select_top_k`.

use crate::control::Control;
use crate::cost::{CostTiles, TILE_ROWS};
use crate::error::{ErrorKind, Result, SotError};
use crate::learner::{check_harmful, resolve_anchor, LearnerOptions, Sets};
use crate::sinkhorn::{centred, solve_store, SinkhornOptions, WarmStart};
use crate::store::CostStore;
use ndarray::{Array1, Array2, ArrayView2, Axis};
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
/// `max_self_anchor` and `inner` (its storage too) of the options are used.
pub fn baseline_scores(
    method: Baseline,
    sets: &Sets,
    opts: &LearnerOptions,
    ctl: &Control,
) -> Result<(Vec<f64>, Vec<String>)> {
    let x = sets.downstream;
    let harmful_w = check_harmful(sets, opts)?;
    let inner = SinkhornOptions {
        eps: opts.eps,
        ..opts.inner.clone()
    };
    let mut warnings = Vec::new();
    let scores = match method {
        Baseline::Random { seed } => {
            let mut state = seed;
            (0..x.nrows())
                .map(|_| (splitmix64(&mut state) >> 11) as f64 / (1u64 << 53) as f64)
                .collect()
        }
        Baseline::PullOnly => {
            let (anchor, w) = resolve_anchor(sets, opts, &mut warnings)?;
            centred(&potential(x, anchor.view(), w, &inner, opts, ctl)?)
                .into_iter()
                .map(|v| -v)
                .collect()
        }
        Baseline::PushOnly => centred(&potential(
            x,
            sets.harmful.points,
            harmful_w,
            &inner,
            opts,
            ctl,
        )?),
        Baseline::NearestHarmful => {
            // row minima tile by tile: the costs are never held
            let tiles = CostTiles::new(x, sets.harmful.points, opts.cost);
            let mut out = vec![0.0; x.nrows()];
            out.par_chunks_mut(TILE_ROWS)
                .enumerate()
                .try_for_each_init(
                    || Array2::<f32>::zeros((TILE_ROWS, sets.harmful.points.nrows())),
                    |buf, (t, mins)| -> Result<()> {
                        ctl.check()?;
                        let mut tile = buf.slice_mut(ndarray::s![..mins.len(), ..]);
                        tiles.fill(t * TILE_ROWS, &mut tile);
                        mins.iter_mut().zip(tile.outer_iter()).for_each(|(v, row)| {
                            *v = row.iter().fold(f32::INFINITY, |m, c| m.min(*c)) as f64
                        });
                        Ok(())
                    },
                )?;
            out
        }
        Baseline::Saft { components } => saft(sets, components, ctl)?,
    };
    Ok((scores, warnings))
}

/// The source potential of uniform weights on `x` against `y` (with masses
/// `w`), the costs held as `inner.storage` plans them.
fn potential(
    x: ArrayView2<f32>,
    y: ArrayView2<f32>,
    w: Option<Vec<f64>>,
    inner: &SinkhornOptions,
    opts: &LearnerOptions,
    ctl: &Control,
) -> Result<Vec<f64>> {
    let w = w.unwrap_or_else(|| vec![1.0 / y.nrows() as f64; y.nrows()]);
    let mut store = CostStore::for_points(x, y, opts.cost, &inner.storage, inner.eps, &w, ctl)?;
    Ok(solve_store(&mut store, None, &w, inner, WarmStart::default(), ctl)?.f)
}

/// Minus the squared norm of each centred sample's projection on the top
/// `k` right singular vectors, found by subspace iteration.
fn saft(sets: &Sets, k: usize, ctl: &Control) -> Result<Vec<f64>> {
    let x = sets.downstream;
    let (n, d) = x.dim();
    if k == 0 || k > d.min(n) {
        return Err(SotError::new(
            ErrorKind::InvalidOption,
            format!(
                "saft components must be between 1 and min(n, d) = {}, got {k}",
                d.min(n)
            ),
        ));
    }
    let mean: Array1<f32> = x.mean_axis(Axis(0)).expect("non-empty");
    let xc = &x - &mean;
    let mut state = 0x5eed_u64;
    let mut v = Array2::from_shape_fn((d, k), |_| {
        (splitmix64(&mut state) >> 40) as f32 / (1u64 << 24) as f32 - 0.5
    });
    orthonormalise(&mut v);
    for _ in 0..50 {
        ctl.check()?;
        let xv = xc.dot(&v); // n x k
        v = xc.t().dot(&xv); // d x k
        orthonormalise(&mut v);
    }
    let proj = xc.dot(&v);
    Ok(proj
        .axis_iter(Axis(0))
        .map(|r| -r.iter().map(|p| (*p as f64).powi(2)).sum::<f64>())
        .collect())
}

/// Modified Gram-Schmidt on the columns, in f64.
fn orthonormalise(v: &mut Array2<f32>) {
    let k = v.ncols();
    let mut cols: Vec<Vec<f64>> = (0..k)
        .map(|j| v.column(j).iter().map(|x| *x as f64).collect())
        .collect();
    for j in 0..k {
        for i in 0..j {
            let dot: f64 = cols[j].iter().zip(&cols[i]).map(|(a, b)| a * b).sum();
            let ci = cols[i].clone();
            cols[j].iter_mut().zip(&ci).for_each(|(a, b)| *a -= dot * b);
        }
        let norm = cols[j]
            .iter()
            .map(|a| a * a)
            .sum::<f64>()
            .sqrt()
            .max(f64::MIN_POSITIVE);
        cols[j].iter_mut().for_each(|a| *a /= norm);
    }
    for (j, col) in cols.iter().enumerate() {
        v.column_mut(j)
            .iter_mut()
            .zip(col)
            .for_each(|(a, b)| *a = *b as f32);
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
