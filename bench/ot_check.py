"""Shared, solver-independent f64 accuracy check for bench/sinkhorn-vs-pot.sh.

Both solutions (SOT's potentials and POT's plan) go through `evaluate`, which
only sees row blocks of a plan P (float64) and of the matching cost C:

  row_l1   = sum_i |(P 1)_i - a_i|
  col_l1   = sum_j |(P^T 1)_j - b_j|
  primal   = <P, C> + eps * KL(P | a x b),  KL(P | Q) = sum P log(P/Q) - sum P + sum Q
  dual     = <a, f> + <b, g> - eps * (sum P - 1)          (when potentials are given)

At an exact solution primal == dual == the entropic OT value; their gap and the
marginal errors measure how far a returned solution is from it.
"""

import numpy as np

BLOCK_ROWS = 1024


def unit_rows(x32):
    """float32 points -> float64 unit rows (the cosine cost's normalisation)."""
    x = x32.astype(np.float64)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x


def cosine_cost(xn, yn):
    """float64 cosine cost 1 - <x, y> of unit rows (what POT gets)."""
    c = xn @ yn.T
    np.subtract(1.0, c, out=c)
    return c


def evaluate(blocks, a, b, eps, f=None, g=None):
    """`blocks` yields (i0, P_block, C_block), float64, covering all rows in order."""
    n, m = len(a), len(b)
    log_a, log_b = np.log(a), np.log(b)
    row_l1 = 0.0
    col = np.zeros(m)
    mass = transport = entropy = 0.0
    seen = 0
    for i0, p, c in blocks:
        i1 = i0 + p.shape[0]
        assert i0 == seen and p.shape == c.shape == (i1 - i0, m)
        seen = i1
        rs = p.sum(axis=1)
        row_l1 += np.abs(rs - a[i0:i1]).sum()
        col += p.sum(axis=0)
        mass += rs.sum()
        transport += np.einsum("ij,ij->", p, c)
        logp = np.log(p, out=np.full_like(p, 0.0), where=p > 0)
        logp -= log_a[i0:i1, None]
        logp -= log_b[None, :]
        entropy += np.einsum("ij,ij->", p, logp)  # sum P log(P / (a x b))
    assert seen == n
    kl = entropy - mass + 1.0
    out = {
        "row_l1": float(row_l1),
        "col_l1": float(np.abs(col - b).sum()),
        "mass": float(mass),
        "transport": float(transport),
        "primal": float(transport + eps * kl),
    }
    out["l1"] = out["row_l1"] + out["col_l1"]
    if f is not None and g is not None:
        out["dual"] = float(a @ f + b @ g - eps * (mass - 1.0))
    return out


def plan_blocks(plan, cost, rows=BLOCK_ROWS):
    """Row blocks of an explicit plan and cost matrix."""
    for i0 in range(0, plan.shape[0], rows):
        yield i0, plan[i0 : i0 + rows], cost[i0 : i0 + rows]


def potential_blocks(f, g, a, b, eps, cost_rows, rows=BLOCK_ROWS):
    """Row blocks of P_ij = a_i b_j exp((f_i + g_j - C_ij) / eps); `cost_rows(i0, i1)` gives C (f64)."""
    for i0 in range(0, len(f), rows):
        i1 = min(i0 + rows, len(f))
        c = cost_rows(i0, i1)
        p = (f[i0:i1, None] + g[None, :] - c) / eps
        np.exp(p, out=p)
        p *= a[i0:i1, None]
        p *= b[None, :]
        yield i0, p, c
