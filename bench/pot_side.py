"""POT side of bench/sinkhorn-vs-pot.sh (not meant to be run by hand).

  python bench/pot_side.py <workdir> <n> <m> <d> <eps> <stopThr> <numItermax> <methods> <check 0|1> <matrix own|sot> [repeats]

Reads <workdir>/x.f32 and y.f32 (raw little-endian float32), times the float64
cosine cost in numpy ("cost": upcast, L2-normalise, 1 - X @ Y.T) and
`ot.sinkhorn(a, b, M, reg=eps, method=...)` ("solve"). M is that float64 cost
with <matrix> own; with sot (the default of the driver) it is SOT's f32 cost
matrix <workdir>/c_sot.f32, upcast (exactly), so that both solvers solve the
very same problem. Then it checks the returned
plan with the shared f64 routine in ot_check.py (when check=1). <methods> is a comma list of
POT methods ("sinkhorn", "sinkhorn_log"); "sinkhorn@K" runs exactly K iterations
(numItermax=K, stopThr=0); a method given twice keeps its last run. Each method
is solved <repeats> times in a row (default 1): the first is "solve_cold" (the
first solve of the problem in this fresh process, paying the first touch of the
kernel's and the plan's pages, like SOT's first solve in sot-side.mjs), the
others "solve_warm"; "solve_s" is the fastest warm one. With check=1 the
potentials of each method's last solve are written to pot-<method>.f.f64 and
.g.f64 (for the driver's shared check, the same as SOT's). Each phase (the cost, each method) records the peak
RSS of the process during it (VmHWM, reset before the phase through
/proc/self/clear_refs; the cost matrix stays held during the solves) next to
the baseline RSS, taken after the imports and the warm-up, before the problem
was loaded. Prints one JSON line on stdout.
"""

import gc
import json
import os
import sys
import time
import warnings

import numpy as np
import ot
from threadpoolctl import threadpool_info

import ot_check

work, n, m, d, eps, stop_thr, max_iter, methods, do_check, matrix, *rest = sys.argv[1:]
n, m, d, max_iter = int(n), int(m), int(d), int(max_iter)
repeats = max(1, int(rest[0])) if rest else 1
eps, stop_thr = float(eps), float(stop_thr)


def memory():
    """VmRSS and VmHWM of this process, in MB (1e6 bytes)."""
    with open("/proc/self/status") as fh:
        kb = {k: int(v.split()[0]) for k, v in (line.split(":", 1) for line in fh) if k in ("VmRSS", "VmHWM")}
    return {"rss_mb": kb["VmRSS"] * 1024 / 1e6, "hwm_mb": kb["VmHWM"] * 1024 / 1e6}


def reset_peak():
    """Frees what Python dropped and resets the peak RSS to the current RSS (False where Linux refuses)."""
    gc.collect()
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def timed(run):
    """(result of run(), its phase record: seconds, baseline RSS, RSS before, peak RSS during)."""
    reset = reset_peak()
    rss_before = memory()["rss_mb"]
    t0 = time.perf_counter()
    out = run()
    seconds = time.perf_counter() - t0
    peak = memory()["hwm_mb"]
    return out, {"s": seconds, "baseline_rss_mb": baseline, "rss_before_mb": rss_before, "peak_rss_mb": peak, "peak_reset": reset}


# Warm-up (BLAS threads, page faults of a first GEMM) on a tiny synthetic problem, outside
# the timings and before the baseline RSS.
rng = np.random.default_rng(1)
tiny = ot_check.unit_rows(rng.standard_normal((64, 8)).astype("<f4")), ot_check.unit_rows(rng.standard_normal((32, 8)).astype("<f4"))
ot.sinkhorn(np.full(64, 1 / 64), np.full(32, 1 / 32), ot_check.cosine_cost(*tiny), eps, numItermax=20, warn=False)
reset_peak()
baseline = memory()["rss_mb"]

x32 = np.fromfile(os.path.join(work, "x.f32"), dtype="<f4").reshape(n, d)
y32 = np.fromfile(os.path.join(work, "y.f32"), dtype="<f4").reshape(m, d)
a = np.full(n, 1.0 / n)
b = np.full(m, 1.0 / m)

M, cost_phase = timed(lambda: ot_check.cosine_cost(ot_check.unit_rows(x32), ot_check.unit_rows(y32)))
if matrix == "sot":
    M = None  # POT solves SOT's matrix: the timed one goes first, so that the two are never held together
    M = np.fromfile(os.path.join(work, "c_sot.f32"), dtype="<f4").reshape(n, m).astype(np.float64)

out = {
    "pot": ot.__version__,
    "numpy": np.__version__,
    "python": sys.version.split()[0],
    "blas": threadpool_info(),
    "numpy_blas": np.__config__.CONFIG["Build Dependencies"]["blas"],
    "env": {k: os.environ.get(k) for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS")},
    "matrix": matrix,
    "cost_s": cost_phase["s"],
    "cost_phase": cost_phase,
    "methods": {},
}

for spec in filter(None, methods.split(",")):
    method, _, fixed = spec.partition("@")
    iters, thr = (int(fixed), 0.0) if fixed else (max_iter, stop_thr)
    runs = []
    for _ in range(repeats):
        plan = log = None  # free the previous plan before the next solve allocates
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            (plan, log), solve = timed(lambda: ot.sinkhorn(a, b, M, reg=eps, method=method, numItermax=iters, stopThr=thr, log=True))
        runs.append(solve)
    if method == "sinkhorn_log":
        f = eps * (log["log_u"] - np.log(a))
        g = eps * (log["log_v"] - np.log(b))
    else:
        f = eps * np.log(log["u"] / a)
        g = eps * np.log(log["v"] / b)
    check = ot_check.evaluate(ot_check.plan_blocks(plan, M), a, b, eps, f, g) if do_check == "1" else None
    if do_check == "1":
        f.astype("<f8").tofile(os.path.join(work, f"pot-{spec}.f.f64"))
        g.astype("<f8").tofile(os.path.join(work, f"pot-{spec}.g.f64"))
    warm = [r["s"] for r in runs[1:]]
    out["methods"][spec] = {
        # the fastest warm solve; a single solve (repeats = 1) is cold
        "solve_s": min(warm) if warm else runs[0]["s"],
        "solve_cold_s": runs[0]["s"],
        "solve_warm_s": warm,
        "phase": runs[0],
        # log["niter"] is the 0-based index of the last iteration run.
        "iterations": int(log["niter"]) + 1,
        "converged": None if fixed else not any("did not converge" in str(w.message) for w in caught),
        "warnings": sorted({str(w.message) for w in caught}),
        "last_l2_err": float(log["err"][-1]) if log["err"] else None,
        "check": check,
    }

print(json.dumps(out))
