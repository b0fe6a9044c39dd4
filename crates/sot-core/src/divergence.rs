//! Debiased Sinkhorn divergence between two point clouds:
//! `S(a, b) = OT(a, b) - OT(a, a) / 2 - OT(b, b) / 2`, which is zero for
//! identical inputs and positive otherwise (Feydy et al., 2019).

use crate::control::Control;
use crate::cost::{check_pair, cost_matrix, CostKind};
use crate::error::Result;
use crate::sinkhorn::{
    centred, sinkhorn_dense, symmetric_dense, Finite, SinkhornOptions, SinkhornResult, WarmStart,
};
use crate::store::check_dense;
use ndarray::ArrayView2;

#[derive(Debug, Clone, PartialEq)]
pub struct DivergenceResult {
    /// `S(a, b)`, not clipped: a small negative value signals non-convergence.
    pub value: f64,
    /// Gradient with respect to `a`, centred: `f_ab - f_aa`.
    pub grad_a: Vec<f64>,
    /// Gradient with respect to `b`, centred.
    pub grad_b: Vec<f64>,
    pub xy: SinkhornResult,
    pub xx: SinkhornResult,
    pub yy: SinkhornResult,
    /// All three solves converged.
    pub converged: bool,
}

/// Warm starts for the three solves of a divergence (the self-transport
/// terms have a single potential each).
#[derive(Debug, Clone, Copy, Default)]
pub struct DivergenceWarmStart<'a> {
    pub xy: WarmStart<'a>,
    pub xx: Option<&'a [f64]>,
    pub yy: Option<&'a [f64]>,
}

// The three solves share these inputs; a struct would only rename them.
#[allow(clippy::too_many_arguments)]
pub fn sinkhorn_divergence(
    x: ArrayView2<f32>,
    y: ArrayView2<f32>,
    a: Option<&[f64]>,
    b: Option<&[f64]>,
    kind: CostKind,
    opts: &SinkhornOptions,
    warm: DivergenceWarmStart,
    ctl: &Control,
) -> Result<DivergenceResult> {
    check_pair(&x, &y, kind)?;
    // One cost matrix alive at a time keeps the peak at the largest of the three,
    // each within the budget.
    let (n, m) = (x.nrows(), y.nrows());
    for (rows, cols) in [(n, m), (n, n), (m, m)] {
        check_dense(rows, cols, opts.storage.budget)?;
    }
    let xy = sinkhorn_dense(
        cost_matrix(x, y, kind, ctl)?.view(),
        a,
        b,
        opts,
        warm.xy,
        ctl,
        Finite::Known,
    )?;
    let own = |p: ArrayView2<f32>, w, init| -> Result<SinkhornResult> {
        symmetric_dense(
            cost_matrix(p, p, kind, ctl)?.view(),
            w,
            opts,
            init,
            ctl,
            Finite::Known,
        )
    };
    let xx = own(x, a, warm.xx)?;
    let yy = own(y, b, warm.yy)?;
    let value = xy.value - 0.5 * xx.value - 0.5 * yy.value;
    // d/da OT(a, a) = f_aa + g_aa = 2 f_aa: the half cancels.
    let grad = |cross: &[f64], own: &[f64]| {
        centred(
            &cross
                .iter()
                .zip(own)
                .map(|(c, o)| c - o)
                .collect::<Vec<_>>(),
        )
    };
    let grad_a = grad(&xy.f, &xx.f);
    let grad_b = grad(&xy.g, &yy.f);
    let converged = xy.converged && xx.converged && yy.converged;
    Ok(DivergenceResult {
        value,
        grad_a,
        grad_b,
        xy,
        xx,
        yy,
        converged,
    })
}
