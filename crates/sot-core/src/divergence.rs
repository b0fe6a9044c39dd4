//! Debiased Sinkhorn divergence between two point clouds:
//! `S(a, b) = OT(a, b) - OT(a, a) / 2 - OT(b, b) / 2`, which is zero for
//! identical inputs and positive otherwise (Feydy et al., 2019).

use crate::control::Control;
use crate::cost::{check_pair, cost_matrix, CostKind};
use crate::error::Result;
use crate::sinkhorn::{centred, sinkhorn, SinkhornOptions, SinkhornResult, WarmStart};
use ndarray::ArrayView2;

#[derive(Debug, Clone, PartialEq)]
pub struct DivergenceResult {
    /// `S(a, b)`, not clipped: a small negative value signals non-convergence.
    pub value: f64,
    /// Gradient with respect to `a`, centred: `f_ab - (f_aa + g_aa) / 2`.
    pub grad_a: Vec<f64>,
    /// Gradient with respect to `b`, centred.
    pub grad_b: Vec<f64>,
    pub xy: SinkhornResult,
    pub xx: SinkhornResult,
    pub yy: SinkhornResult,
    /// All three solves converged.
    pub converged: bool,
}

/// Warm starts for the three solves of a divergence.
#[derive(Debug, Clone, Copy, Default)]
pub struct DivergenceWarmStart<'a> {
    pub xy: WarmStart<'a>,
    pub xx: WarmStart<'a>,
    pub yy: WarmStart<'a>,
}

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
    // One cost matrix alive at a time keeps the peak at the largest of the three.
    let solve = |p: ArrayView2<f32>, q: ArrayView2<f32>, wp, wq, w| -> Result<SinkhornResult> {
        let c = cost_matrix(p, q, kind, ctl)?;
        sinkhorn(c.view(), wp, wq, opts, w, ctl)
    };
    let xy = solve(x, y, a, b, warm.xy)?;
    let xx = solve(x, x, a, a, warm.xx)?;
    let yy = solve(y, y, b, b, warm.yy)?;
    let value = xy.value - 0.5 * xx.value - 0.5 * yy.value;
    let grad = |own: &[f64], f: &[f64], g: &[f64]| -> Vec<f64> {
        centred(&own.iter().zip(f.iter().zip(g)).map(|(o, (f, g))| o - 0.5 * (f + g)).collect::<Vec<_>>())
    };
    let grad_a = grad(&xy.f, &xx.f, &xx.g);
    let grad_b = grad(&xy.g, &yy.f, &yy.g);
    let converged = xy.converged && xx.converged && yy.converged;
    Ok(DivergenceResult { value, grad_a, grad_b, xy, xx, yy, converged })
}
