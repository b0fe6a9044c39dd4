"""POT side of bench/sinkhorn-vs-pot.sh (not meant to be run by hand).

  python bench/pot_side.py <workdir> <n> <m> <d> <eps> <stopThr> <numItermax> <repeat> <methods> <check 0|1>

Reads <workdir>/x.f32 and y.f32 (raw little-endian float32), times the float64
cosine cost in numpy ("cost": upcast, L2-normalise, 1 - X @ Y.T) and
`ot.sinkhorn(a, b, M, reg=eps, method=...)` ("solve"), then checks the returned
plan with the shared f64 routine in ot_check.py (when check=1). <methods> is a comma list of
POT methods ("sinkhorn", "sinkhorn_log"); "sinkhorn@K" runs exactly K iterations
(numItermax=K, stopThr=0). Prints one JSON line on stdout.
"""

import json
import os
import sys
import time
import warnings

import numpy as np
import ot
from threadpoolctl import threadpool_info

import ot_check

work, n, m, d, eps, stop_thr, max_iter, repeat, methods, do_check = sys.argv[1:]
n, m, d, max_iter, repeat = int(n), int(m), int(d), int(max_iter), int(repeat)
eps, stop_thr = float(eps), float(stop_thr)

x32 = np.fromfile(os.path.join(work, "x.f32"), dtype="<f4").reshape(n, d)
y32 = np.fromfile(os.path.join(work, "y.f32"), dtype="<f4").reshape(m, d)
a = np.full(n, 1.0 / n)
b = np.full(m, 1.0 / m)

# Warm-up (BLAS threads, page faults of a first GEMM), outside the timings.
ot.sinkhorn(a[:64] * n / 64, b[:32] * m / 32, ot_check.cosine_cost(ot_check.unit_rows(x32[:64]), ot_check.unit_rows(y32[:32])), eps)

cost_s = []
for _ in range(repeat):
    t0 = time.perf_counter()
    M = ot_check.cosine_cost(ot_check.unit_rows(x32), ot_check.unit_rows(y32))
    cost_s.append(time.perf_counter() - t0)

out = {
    "pot": ot.__version__,
    "numpy": np.__version__,
    "python": sys.version.split()[0],
    "blas": threadpool_info(),
    "numpy_blas": np.__config__.CONFIG["Build Dependencies"]["blas"],
    "env": {k: os.environ.get(k) for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS")},
    "cost_s": cost_s,
    "methods": {},
}

for spec in filter(None, methods.split(",")):
    method, _, fixed = spec.partition("@")
    iters, thr = (int(fixed), 0.0) if fixed else (max_iter, stop_thr)
    solve_s = []
    for _ in range(repeat):
        plan = None  # free the previous plan before the next solve allocates
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            t0 = time.perf_counter()
            plan, log = ot.sinkhorn(a, b, M, reg=eps, method=method, numItermax=iters, stopThr=thr, log=True)
            solve_s.append(time.perf_counter() - t0)
    if method == "sinkhorn_log":
        f = eps * (log["log_u"] - np.log(a))
        g = eps * (log["log_v"] - np.log(b))
    else:
        f = eps * np.log(log["u"] / a)
        g = eps * np.log(log["v"] / b)
    check = ot_check.evaluate(ot_check.plan_blocks(plan, M), a, b, eps, f, g) if do_check == "1" else None
    out["methods"][spec] = {
        "solve_s": solve_s,
        # log["niter"] is the 0-based index of the last iteration run.
        "iterations": int(log["niter"]) + 1,
        "converged": None if fixed else not any("did not converge" in str(w.message) for w in caught),
        "warnings": sorted({str(w.message) for w in caught}),
        "last_l2_err": float(log["err"][-1]) if log["err"] else None,
        "check": check,
    }

print(json.dumps(out))
