"""Would float64 passes after SOT's f32 solve meet tol on the float64 costs?

SOT solves its own f32 cost matrix; at small eps the rounding of those costs
keeps its potentials from meeting tol on the float64 costs from the points
(BENCHMARKS.md, "Sinkhorn against POT"). This measures the fix a float64
option would make: SOT's solve (bench/sot-side.mjs, one solve), then pairs
of exact float64 Sinkhorn updates (g, then f, log-domain) on the float64
cost, each checked by bench/ot_check.py as the benchmark checks both solvers.

  npm run build
  bash bench/sinkhorn-vs-pot.sh --help >/dev/null       # makes the POT venv once
  /tmp/potenv/bin/python bench/sinkhorn_f64_polish.py --eps 0.01   # 20000x2000, d 384 by default
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile

for var in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"):  # as in sinkhorn_vs_pot.py: they hang OpenBLAS GEMM
    os.environ.pop(var, None)

import numpy as np  # noqa: E402
from scipy.special import logsumexp  # noqa: E402

import ot_check  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))

p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
p.add_argument("--n", type=int, default=20_000)
p.add_argument("--m", type=int, default=2_000)
p.add_argument("--d", type=int, default=384)
p.add_argument("--eps", type=float, default=0.01)
p.add_argument("--tol", type=float, default=1e-6)
p.add_argument("--pairs", type=int, default=3, help="float64 update pairs after SOT's solve (default 3)")
args = p.parse_args()
n, m, d, eps = args.n, args.m, args.d, args.eps

with tempfile.TemporaryDirectory(prefix="sot-polish-") as work:
    rng = np.random.default_rng(0)  # the benchmark's points
    for name, rows in (("x", n), ("y", m)):
        pts = rng.standard_normal((rows, d))
        pts /= np.linalg.norm(pts, axis=1, keepdims=True)
        pts.astype("<f4").tofile(os.path.join(work, f"{name}.f32"))
    cmd = ["node", "--expose-gc", os.path.join(HERE, "sot-side.mjs"), work, str(n), str(m), str(d), str(eps), str(args.tol), "10000", "1", "1"]
    sot = json.loads(subprocess.run(cmd, check=True, stdout=subprocess.PIPE, text=True).stdout.strip().splitlines()[-1])
    f = np.fromfile(os.path.join(work, "sot.f.f64"), dtype="<f8")
    g = np.fromfile(os.path.join(work, "sot.g.f64"), dtype="<f8")
    x32 = np.fromfile(os.path.join(work, "x.f32"), dtype="<f4").reshape(n, d)
    y32 = np.fromfile(os.path.join(work, "y.f32"), dtype="<f4").reshape(m, d)

C = ot_check.cosine_cost(ot_check.unit_rows(x32), ot_check.unit_rows(y32))
a, b = np.full(n, 1 / n), np.full(m, 1 / m)


def errors(f, g):
    c = ot_check.evaluate(ot_check.potential_blocks(f, g, a, b, eps, lambda i0, i1: C[i0:i1]), a, b, eps, f, g)
    return c["row_l1"], c["col_l1"]


def line(what, f, g):
    row, col = errors(f, g)
    ok = "meets" if max(row, col) <= args.tol else "misses"
    print(f"{what}: row / col L1 on the float64 costs {row:.2e} / {col:.2e} ({ok} tol {args.tol:g})", flush=True)


print(f"{n}x{m} d{d} eps {eps:g}: SOT solved its f32 matrix in {sot['solve_passes']} passes")
line("SOT's potentials", f, g)
for k in range(1, args.pairs + 1):
    g = -eps * logsumexp((f[:, None] - C) / eps, b=a[:, None], axis=0)  # exact columns
    f = -eps * logsumexp((g[None, :] - C) / eps, b=b[None, :], axis=1)  # exact rows
    line(f"then {k} float64 update pair{'s' if k > 1 else ''}", f, g)
