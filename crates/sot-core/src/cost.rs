//! Cost matrices between two embedding sets, built from GEMM tiles run in
//! parallel over row blocks of the first set.

use crate::control::Control;
use crate::error::{ErrorKind, Result, SotError};
use crate::pages;
use crate::validate;
use ndarray::linalg::general_mat_mul;
use ndarray::{s, Array2, ArrayView2, ArrayViewMut2, Axis, CowArray, Ix2};
use rayon::prelude::*;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CostKind {
    /// `1 - <x, y> / (|x| |y|)`, in [0, 2].
    #[default]
    Cosine,
    /// `|x - y|^2`.
    SqEuclidean,
}

impl CostKind {
    pub fn parse(name: &str) -> Result<Self> {
        match name {
            "cosine" => Ok(CostKind::Cosine),
            "sqeuclidean" => Ok(CostKind::SqEuclidean),
            other => Err(SotError::new(
                ErrorKind::InvalidOption,
                format!("unknown cost '{other}' (expected 'cosine' or 'sqeuclidean')"),
            )),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            CostKind::Cosine => "cosine",
            CostKind::SqEuclidean => "sqeuclidean",
        }
    }
}

/// Rows of `x` per GEMM tile: large enough to keep the GEMM efficient, small
/// enough to spread over the threads and to check cancellation often.
pub(crate) const TILE_ROWS: usize = 256;

/// The `x.nrows() x y.nrows()` cost matrix, f32, row-major.
pub fn cost_matrix(
    x: ArrayView2<f32>,
    y: ArrayView2<f32>,
    kind: CostKind,
    ctl: &Control,
) -> Result<Array2<f32>> {
    check_pair(&x, &y, kind)?;
    CostTiles::new(x, y, kind).matrix(ctl)
}

/// Computes blocks of rows of a cost matrix without holding it: for the
/// matrices too large to store, and to fill the ones that are stored. Both
/// sets are used in place (either may be the whole dataset or a large
/// reference); only cosine points with norms outside `RAW_NORMS` are copied,
/// normalised, so that their dot products can neither overflow nor underflow.
pub(crate) struct CostTiles<'a> {
    x: ArrayView2<'a, f32>,
    y: CowArray<'a, f32, Ix2>,
    scale: Scale,
}

/// How a tile's dot products become costs.
enum Scale {
    /// Squared Euclidean: |x_i|^2 and |y_j|^2.
    SqEuclidean(Vec<f64>, Vec<f64>),
    /// Cosine on the points as they are: 1 / |x_i| and 1 / |y_j|.
    Raw(Vec<f64>, Vec<f64>),
    /// Cosine on unit rows of `y`: |x_i|, to normalise each tile's rows.
    Unit(Vec<f64>),
}

/// Norms whose raw f32 dot products stay exact to f32 rounding: within
/// 2^-32..2^32 no product of two of them over- or underflows.
const RAW_NORMS: std::ops::RangeInclusive<f64> = 2.328_306_436_538_696_3e-10..=4_294_967_296.0;

/// A source of cost tiles (a trait object, so that a problem borrowing it
/// need not share the lifetime of the points).
pub(crate) trait FillTiles<T = f32>: Sync {
    /// Writes the costs of rows `r0..r0 + tile.nrows()` into `tile`.
    fn fill(&self, r0: usize, tile: &mut ArrayViewMut2<T>);
}

impl FillTiles for CostTiles<'_> {
    fn fill(&self, r0: usize, tile: &mut ArrayViewMut2<f32>) {
        CostTiles::fill(self, r0, tile)
    }
}

impl<'a> CostTiles<'a> {
    /// The points must have passed `check_pair`. `y` is used as given, or
    /// normalised in place when it is owned and its norms call for it.
    pub(crate) fn new(
        x: ArrayView2<'a, f32>,
        y: impl Into<CowArray<'a, f32, Ix2>>,
        kind: CostKind,
    ) -> Self {
        let y = y.into();
        let sq =
            |r: ndarray::ArrayView1<f32>| r.iter().map(|v| (*v as f64) * (*v as f64)).sum::<f64>();
        let x_sq: Vec<f64> = x.outer_iter().into_par_iter().map(sq).collect();
        let y_sq: Vec<f64> = y.outer_iter().into_par_iter().map(sq).collect();
        if kind == CostKind::SqEuclidean {
            let scale = Scale::SqEuclidean(x_sq, y_sq);
            return CostTiles { x, y, scale };
        }
        let root = |v: Vec<f64>| -> Vec<f64> { v.into_iter().map(f64::sqrt).collect() };
        let (x_norm, y_norm) = (root(x_sq), root(y_sq));
        // one rule for both sets, so that (x, y) and (y, x) are each other's transpose
        if x_norm.iter().chain(&y_norm).all(|v| RAW_NORMS.contains(v)) {
            let inv = |v: Vec<f64>| -> Vec<f64> { v.into_iter().map(|n| 1.0 / n).collect() };
            let scale = Scale::Raw(inv(x_norm), inv(y_norm));
            CostTiles { x, y, scale }
        } else {
            let y = unit_rows(y).into();
            CostTiles {
                x,
                y,
                scale: Scale::Unit(x_norm),
            }
        }
    }

    pub(crate) fn rows(&self) -> usize {
        self.x.nrows()
    }

    pub(crate) fn cols(&self) -> usize {
        self.y.nrows()
    }

    /// The whole matrix, its tiles filled in parallel.
    pub(crate) fn matrix(&self, ctl: &Control) -> Result<Array2<f32>> {
        let (n, m) = (self.rows(), self.cols());
        let mut out = pages::zeros2(n, m)?;
        out.axis_chunks_iter_mut(Axis(0), TILE_ROWS)
            .into_par_iter()
            .enumerate()
            .try_for_each(|(t, mut tile)| -> Result<()> {
                ctl.check()?;
                self.fill(t * TILE_ROWS, &mut tile);
                Ok(())
            })?;
        Ok(out)
    }

    /// Writes the costs of rows `r0..r0 + tile.nrows()` into `tile`.
    pub(crate) fn fill(&self, r0: usize, tile: &mut ArrayViewMut2<f32>) {
        let xb = self.x.slice(s![r0..r0 + tile.nrows(), ..]);
        match &self.scale {
            Scale::SqEuclidean(x_sq, y_sq) => {
                general_mat_mul(1.0, &xb, &self.y.t(), 0.0, tile);
                for (mut row, xi) in tile.outer_iter_mut().zip(&x_sq[r0..]) {
                    row.iter_mut()
                        .zip(y_sq)
                        .for_each(|(c, &yj)| *c = (xi + yj - 2.0 * *c as f64).max(0.0) as f32);
                }
            }
            Scale::Raw(x_inv, y_inv) => {
                general_mat_mul(1.0, &xb, &self.y.t(), 0.0, tile);
                for (mut row, xi) in tile.outer_iter_mut().zip(&x_inv[r0..]) {
                    // xi * yj is the same product either way round: the transpose holds exactly
                    row.iter_mut().zip(y_inv).for_each(|(c, &yj)| {
                        *c = (1.0 - *c as f64 * (xi * yj)).clamp(0.0, 2.0) as f32
                    });
                }
            }
            Scale::Unit(x_norm) => {
                // unit rows: normalise the tile's rows as `y`'s are
                let mut xu = xb.to_owned();
                xu.outer_iter_mut()
                    .zip(&x_norm[r0..])
                    .for_each(|(mut r, &norm)| r.mapv_inplace(|v| (v as f64 / norm) as f32));
                general_mat_mul(1.0, &xu, &self.y.t(), 0.0, tile);
                tile.mapv_inplace(|dot| (1.0 - dot).clamp(0.0, 2.0));
            }
        }
    }
}

/// Validates a pair of point sets for a cost of the given kind.
pub fn check_pair(x: &ArrayView2<f32>, y: &ArrayView2<f32>, kind: CostKind) -> Result<()> {
    validate::non_empty(x, "x")?;
    validate::non_empty(y, "y")?;
    if x.ncols() != y.ncols() {
        return Err(SotError::new(
            ErrorKind::Shape,
            format!(
                "x has dimension {} but y has dimension {}",
                x.ncols(),
                y.ncols()
            ),
        ));
    }
    validate::finite_matrix(x, "x")?;
    validate::finite_matrix(y, "y")?;
    if kind == CostKind::Cosine {
        zero_norm(x, "x")?;
        zero_norm(y, "y")?;
    }
    if kind == CostKind::SqEuclidean {
        too_large(x, "x")?;
        too_large(y, "y")?;
    }
    Ok(())
}

/// Largest squared norm under the squared Euclidean cost: then neither the
/// f32 GEMM (`|<x, y>| <= |x| |y|`) nor the cost (`<= (|x| + |y|)^2`) can
/// overflow f32. Beyond it the costs would silently become inf or 0.
const MAX_SQ_NORM: f64 = f32::MAX as f64 / 4.0;

fn too_large(x: &ArrayView2<f32>, what: &str) -> Result<()> {
    let sq = |r: ndarray::ArrayView1<f32>| r.iter().map(|v| (*v as f64) * (*v as f64)).sum::<f64>();
    match x.outer_iter().into_par_iter().position_first(|r| sq(r) > MAX_SQ_NORM) {
        Some(i) => Err(SotError::at(
            ErrorKind::NonFinite,
            i,
            format!(
                "{what}[{i}] has squared norm {:.2e}, too large for the squared Euclidean cost in f32 \
                 (at most {MAX_SQ_NORM:.2e}, or the costs overflow); scale the data",
                sq(x.row(i))
            ),
        )),
        None => Ok(()),
    }
}

fn zero_norm(x: &ArrayView2<f32>, what: &str) -> Result<()> {
    match x.outer_iter().position(|r| r.iter().all(|v| *v == 0.0)) {
        Some(i) => Err(SotError::at(
            ErrorKind::ZeroNorm,
            i,
            format!("{what}[{i}] is the zero vector, which has no direction for the cosine cost"),
        )),
        None => Ok(()),
    }
}

/// Rows scaled to unit length (norms computed in f64).
fn unit_rows(x: CowArray<f32, Ix2>) -> Array2<f32> {
    let mut out = x.into_owned();
    out.outer_iter_mut().into_par_iter().for_each(|mut r| {
        let norm = r
            .iter()
            .map(|v| (*v as f64) * (*v as f64))
            .sum::<f64>()
            .sqrt();
        r.mapv_inplace(|v| (v as f64 / norm) as f32);
    });
    out
}
