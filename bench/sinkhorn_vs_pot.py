"""Driver of bench/sinkhorn-vs-pot.sh: SOT's Sinkhorn vs POT's on a grid of problems.

Run it through bench/sinkhorn-vs-pot.sh (which provides the Python venv with
POT and numpy); see that script and BENCHMARKS.md ("Sinkhorn vs POT: the grid").

Steps, in one run:
 0. builds and runs the memory-bandwidth probe (crates/sot-core/examples/membw.rs),
    again at the end of the run;
 then for every problem of the grid (n x m sizes x dimensions d x eps):
 1. generate n source and m target points (gaussian, L2-normalised, seed
    fixed), written once as raw little-endian float32 to a temp dir;
 2. SOT (node bench/sot-side.mjs, public API in dist/): costMatrix, then
    sinkhorn from the matrix --repeats times in the same fresh process (the
    first solve is "cold", the others "warm"), then sinkhorn from the points;
    it leaves its f32 cost matrix in the temp dir;
 3. POT (python bench/pot_side.py; OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE unset
    for it and for this driver, see OPENBLAS_VARS): numpy f64 cosine cost
    (timed), then, on that f64 cost from the points (--pot-matrix own, the
    default) or on SOT's f32 matrix upcast (sot), ot.sinkhorn --repeats times
    in the same fresh process (cold, then warm, as for SOT), and
    ot.sinkhorn_log for 1 and --log-cap-iters iterations,
    which give its time per iteration, extrapolated to ot.sinkhorn's iteration
    count, and to convergence on the sizes of --log-converge;
 4. one shared f64 checker (ot_check.py) measures the L1 marginal errors and
    the entropic OT value of SOT's and POT's potentials, by the same code, on
    the matrix POT solved (SOT's also on the other one, for the f32 rounding);
 5. prints a table per problem as it finishes, then a summary, and writes the
    raw results as JSON under bench/results/ (after every problem).
"""

import argparse
import datetime
import json
import math
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

# OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE, as set on some machines, slow down or
# hang numpy's OpenBLAS (both together: GEMM never returns). Every numpy process
# of the benchmark (this driver, its checker, POT's side) runs without them;
# SOT's node process gets them back unchanged (it does not use OpenBLAS).
OPENBLAS_VARS = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
if any(v in os.environ for v in OPENBLAS_VARS):
    for v in OPENBLAS_VARS:
        if v in os.environ:
            os.environ["SOT_BENCH_SAVED_" + v] = os.environ.pop(v)
    os.execv(sys.executable, [sys.executable] + sys.argv)  # numpy not loaded yet
REMOVED = {v: os.environ["SOT_BENCH_SAVED_" + v] for v in OPENBLAS_VARS if "SOT_BENCH_SAVED_" + v in os.environ}
NODE_ENV = {k: v for k, v in os.environ.items() if not k.startswith("SOT_BENCH_SAVED_")} | REMOVED
PY_ENV = {k: v for k, v in os.environ.items() if not k.startswith("SOT_BENCH_SAVED_")}

import numpy as np  # noqa: E402

import ot_check  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

GRIDS = {
    # The grid: 3 sizes x 2 dimensions x 2 eps = 12 problems.
    "full": {"sizes": "5000x5000,20000x2000,50000x5000", "d": "384,1024", "eps": "0.05,0.01", "log_converge": "20000x2000"},
    # A smoke test of every path (both sinkhorn_log modes included): 4 small problems.
    "quick": {"sizes": "2000x1000,5000x500", "d": "384", "eps": "0.05,0.01", "log_converge": "5000x500"},
}
# The speed targets, checked on this size: SOT's solve against POT's at equal accuracy.
TARGET_SIZE = (20_000, 2_000)
TARGETS = {"sinkhorn": 10.0, "sinkhorn_log": 50.0, "pass_vs_bound": 2.0}
# Peak memory of ot.sinkhorn_log in n x m float64 matrices (8.4 measured: the cost, -M/reg, the
# temporaries of numpy's logsumexp, the plan); it is skipped where MemAvailable is smaller.
LOG_MATRICES = 9


def sizes(text):
    if text.strip().lower() == "none":
        return []
    try:
        return [tuple(int(v) for v in s.lower().split("x")) for s in text.split(",") if s.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"sizes are NxM[,NxM...], got {text!r}")


def numbers(kind):
    return lambda text: [kind(v) for v in text.split(",") if v.strip()]


def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--grid", choices=sorted(GRIDS), default="full", help="problem grid: full (12 problems, default) or quick (4 small ones)")
    p.add_argument("--sizes", type=sizes, default=None, help="NxM[,NxM...]: replaces the grid's sizes (e.g. --sizes 20000x2000)")
    p.add_argument("--d", type=numbers(int), default=None, help="dimensions, comma list: replaces the grid's (e.g. --d 384)")
    p.add_argument("--eps", type=numbers(float), default=None, help="entropic regularisations, comma list: replaces the grid's")
    p.add_argument("--seed", type=int, default=0, help="numpy seed of the points (default 0)")
    p.add_argument("--tol", type=float, default=1e-6, help="SOT tol: L1 row-marginal error (default 1e-6)")
    p.add_argument(
        "--pot-stopthr",
        type=float,
        default=None,
        help="POT stopThr, an L2 norm of the column-marginal error (default tol / sqrt(m) for each problem, "
        "so that POT's L1 error, <= sqrt(m) * L2, is below tol when it stops)",
    )
    p.add_argument("--max-iter", type=int, default=10_000, help="iteration cap of every solver (default 10000)")
    p.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="timed rounds per problem, each running SOT then POT in fresh processes; the tables show the "
        "fastest run and the median (default 3)",
    )
    p.add_argument(
        "--repeats",
        type=int,
        default=3,
        help="solves per process and round, for SOT and POT alike: the first is cold (first solve of the problem in a "
        "fresh process), the others warm; the tables show both (default 3)",
    )
    p.add_argument("--pot-log", choices=["on", "off"], default="on", help="also time ot.sinkhorn(method='sinkhorn_log') (default on)")
    p.add_argument(
        "--log-converge",
        type=sizes,
        default=None,
        help="sizes NxM[,...] (or 'none') on which sinkhorn_log runs to convergence, once; on the others it runs "
        "1 and --log-cap-iters iterations and its solve time is extrapolated (default: the grid's, 20000x2000 for full)",
    )
    p.add_argument("--log-cap-iters", type=int, default=5, help="iterations of the longer capped sinkhorn_log run, at least 2 (default 5)")
    p.add_argument(
        "--pot-equal-iters",
        choices=["on", "off"],
        default="on",
        help="also run ot.sinkhorn for exactly as many iterations as SOT needed (default on)",
    )
    p.add_argument(
        "--pot-matrix",
        choices=["sot", "own"],
        default="own",
        help="the cost matrix POT solves and both are checked on: own (default), the float64 matrix numpy computes from "
        "the points (the exact problem; SOT solves its own f32 matrix and at small eps can miss tol on this one by that "
        "matrix's rounding); sot, SOT's f32 matrix upcast, so that both solve the same rounded problem",
    )
    p.add_argument("--membw-mib", type=int, default=1536, help="array size of the bandwidth probe, MiB (default 1536)")
    p.add_argument("--membw", choices=["on", "off"], default="on", help="build and run the bandwidth probe (default on; off: no bound per pass)")
    p.add_argument("--out", default=None, help="JSON results file (default bench/results/sinkhorn-grid[-<subset>].json)")
    p.add_argument("--keep", action="store_true", help="keep the temp dirs with the data and potentials")
    args = p.parse_args()
    if args.log_cap_iters < 2:
        p.error("--log-cap-iters must be at least 2")
    if args.repeats < 1:
        p.error("--repeats must be at least 1")
    grid = GRIDS[args.grid]
    subset = args.sizes is not None or args.d is not None or args.eps is not None
    args.sizes = args.sizes if args.sizes is not None else sizes(grid["sizes"])
    args.d = args.d or numbers(int)(grid["d"])
    args.eps = args.eps or numbers(float)(grid["eps"])
    args.log_converge = args.log_converge if args.log_converge is not None else sizes(grid["log_converge"])
    if args.out is None:
        name = "sinkhorn-grid" + ("" if args.grid == "full" else f"-{args.grid}")
        if subset:
            name += "-" + "-".join(
                ["_".join(f"{n}x{m}" for n, m in args.sizes), "d" + "_".join(map(str, args.d)), "eps" + "_".join(f"{e:g}" for e in args.eps)]
            )
        args.out = os.path.join(HERE, "results", name + ".json")
    return args


def machine():
    cpu = "unknown"
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem = None
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemTotal"):
                    mem = f"{int(line.split()[1]) / 2**20:.1f} GiB"
    except OSError:
        pass
    nproc = subprocess.run(["nproc"], capture_output=True, text=True).stdout.strip() or str(os.cpu_count())
    return {
        "nproc": nproc,
        "cpu": cpu,
        "memory": mem,
        "kernel": platform.release(),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "loadavg_at_start": loadavg(),
    }


def busy_cpu_s():
    """CPU seconds spent by the whole machine (all processes, steal included) since boot."""
    try:
        with open("/proc/stat") as fh:
            f = [int(v) for v in fh.readline().split()[1:]]
    except OSError:
        return None
    user, nice, system, idle, iowait, irq, softirq, steal = (f + [0] * 8)[:8]
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def own_cpu_s():
    """CPU seconds of this driver and its finished children."""
    import resource

    return sum(resource.getrusage(w).ru_utime + resource.getrusage(w).ru_stime for w in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))


class Noise:
    """Other processes' CPU time since creation: the machine's busy time minus ours."""

    def __init__(self):
        self.busy, self.own, self.wall = busy_cpu_s(), own_cpu_s(), time.perf_counter()

    def measure(self):
        wall = time.perf_counter() - self.wall
        foreign = None if self.busy is None else max(0.0, (busy_cpu_s() - self.busy) - (own_cpu_s() - self.own))
        return {"wall_s": wall, "foreign_cpu_s": foreign, "foreign_share": None if foreign is None else foreign / wall}


def provenance():
    """Which SOT build ran: commit, local changes to the sources, hash of the addon."""
    import glob
    import hashlib

    git = lambda *a: subprocess.run(["git", *a], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    addons = sorted(glob.glob(os.path.join(ROOT, "native", "sot.*.node")))
    return {
        "commit": git("rev-parse", "HEAD"),
        "uncommitted_source_changes": git("status", "--porcelain", "--", "crates", "src", "package.json").splitlines(),
        "addon": {os.path.basename(a): hashlib.sha256(open(a, "rb").read()).hexdigest()[:16] for a in addons},
    }


def loadavg():
    try:
        with open("/proc/loadavg") as fh:
            return " ".join(fh.read().split()[:3])
    except OSError:
        return None


def run_json(cmd, env=None):
    """Runs a side, streams its stderr, returns the JSON object of its last stdout line."""
    proc = subprocess.run(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)
    if proc.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed with status {proc.returncode}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def build_membw():
    """Builds the bandwidth probe (cargo example of sot-core); returns its path, or None with a warning."""
    cmd = ["cargo", "build", "--release", "--example", "membw", "-p", "sot-core", "--message-format=json"]
    print("building the bandwidth probe: " + " ".join(cmd[:-1]) + " ...", flush=True)
    proc = subprocess.run(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for line in proc.stdout.splitlines():
        msg = json.loads(line)
        if msg.get("reason") == "compiler-artifact" and msg["target"]["name"] == "membw" and msg.get("executable"):
            return msg["executable"]
    print(f"WARNING: the bandwidth probe did not build (status {proc.returncode}); no bandwidth bound\n{proc.stderr[-2000:]}", file=sys.stderr)
    return None


def membw(exe, mib):
    """Read bandwidth (GB/s) with SOT's thread count and with one thread: membw's JSON line."""
    if exe is None:
        return None
    out = run_json([exe, str(mib)], env=NODE_ENV)
    print(f"memory read bandwidth: {out['read_gbps']['best']:.1f} GB/s with {out['threads']} threads, "
          f"{out['read_gbps_1thread']['best']:.1f} GB/s with 1 (best of {out['repeats']}, {out['bytes'] / 2**20:.0f} MiB)", flush=True)
    return out


def fmt(v, spec):
    return "-" if v is None else format(v, spec)


def stats(v):
    return {"min": min(v), "median": statistics.median(v), "all": v}


def label(n, m, d, eps):
    return f"{n}x{m} d{d} eps{eps:g}"


def mem_available():
    """MemAvailable in bytes, None where unknown."""
    try:
        with open("/proc/meminfo") as fh:
            return next(int(line.split()[1]) * 1024 for line in fh if line.startswith("MemAvailable"))
    except (OSError, StopIteration):
        return None


def run_sides(args, work, n, m, d, eps, stop_thr):
    """Steps 2-4 on the data in `work`: SOT and POT rounds, sinkhorn_log, SOT's potentials checked. Returns (sot, pot)."""
    a, b = np.full(n, 1.0 / n), np.full(m, 1.0 / m)
    common = [str(v) for v in (n, m, d, eps)]

    def sot_side(write):
        cmd = ["node", "--expose-gc", os.path.join(HERE, "sot-side.mjs"), work, *common, str(args.tol), str(args.max_iter), write, str(args.repeats)]
        return run_json(cmd, env=NODE_ENV) | {"loadavg": loadavg()}

    def pot_side(methods, check, repeats=args.repeats):
        cmd = [sys.executable, os.path.join(HERE, "pot_side.py"), work, *common, repr(stop_thr), str(args.max_iter)]
        return run_json(cmd + [",".join(methods), check, args.pot_matrix, str(repeats)], env=PY_ENV) | {"loadavg": loadavg()}

    # Rounds alternating SOT and POT, so that a slow spell of the machine hits both
    # sides. The last round writes SOT's potentials and checks POT's plans.
    sot_runs, pot_runs = [], []
    methods = ["sinkhorn"]
    for r in range(args.rounds):
        last = "1" if r == args.rounds - 1 else "0"
        print(f"  round {r + 1}/{args.rounds}: SOT (tol={args.tol:g}) ...", flush=True)
        sot_runs.append(sot_side(last))
        if r == 0 and args.pot_equal_iters == "on":
            methods.append(f"sinkhorn@{sot_runs[0]['iterations']}")
        print(f"  round {r + 1}/{args.rounds}: POT {', '.join(methods)} (stopThr={stop_thr:.3g}) ...", flush=True)
        pot_runs.append(pot_side(methods, last))
    sot = dict(sot_runs[-1])
    for key in ("cost_s", "points_s", "solve_s", "solve_cold_s", "solve1_s", "loadavg"):
        sot[key] = [run[key] for run in sot_runs]
    sot["solve_warm_s"] = [t for run in sot_runs for t in run["solve_warm_s"]]
    # cost + solve, as for POT: the end-to-end time, warm and cold
    sot["total_s"] = [c + t for c, t in zip(sot["cost_s"], sot["solve_s"])]
    sot["total_cold_s"] = [c + t for c, t in zip(sot["cost_s"], sot["solve_cold_s"])]
    # what the solve reports of itself (its stored-kernel passes' time) from the fastest round, as its time
    sot["solve_result_fields"] = min(sot_runs, key=lambda run: run["solve_s"])["solve_result_fields"]
    pot = dict(pot_runs[-1])
    pot["cost_s"] = [run["cost_s"] for run in pot_runs]
    pot["loadavg"] = [run["loadavg"] for run in pot_runs]
    pot["methods"] = {k: dict(v) for k, v in pot["methods"].items()}
    for k in pot["methods"]:
        pot["methods"][k]["solve_s"] = [run["methods"][k]["solve_s"] for run in pot_runs]
        pot["methods"][k]["solve_cold_s"] = [run["methods"][k]["solve_cold_s"] for run in pot_runs]
        pot["methods"][k]["solve_warm_s"] = [t for run in pot_runs for t in run["methods"][k]["solve_warm_s"]]
    pot["env_removed"] = REMOVED

    need, free = LOG_MATRICES * n * m * 8, mem_available()
    if args.pot_log == "on" and free is not None and need > free:
        print(f"  POT sinkhorn_log skipped: it needs about {need / 1e9:.1f} GB, {free / 1e9:.1f} GB available", flush=True)
        pot["log_skipped"] = {"needed_bytes": need, "available_bytes": free}
    elif args.pot_log == "on":
        # The first run of 1 iteration only warms the memory up: on this kind of VM, pages touched for
        # the first time in a while cost several times more (the guest hands freed memory back to the
        # host), which would land in one of the two runs the time per iteration comes from.
        # pot_side keeps the last run of a repeated method.
        converge = (n, m) in args.log_converge
        specs = ["sinkhorn_log@1", "sinkhorn_log@1", f"sinkhorn_log@{args.log_cap_iters}"] + (["sinkhorn_log"] if converge else [])
        print(f"  POT {', '.join(specs)} ...", flush=True)
        log_run = pot_side(specs, "1" if converge else "0", repeats=1)
        runs = {spec: r | {"solve_s": [r["solve_s"]], "solve_cold_s": [r["solve_cold_s"]]} for spec, r in log_run["methods"].items()}
        pot["log_capped"] = {spec: r for spec, r in runs.items() if "@" in spec}
        if converge:
            pot["methods"]["sinkhorn_log"] = runs["sinkhorn_log"]
        pot["cost_s_log_run"] = log_run["cost_s"]

    # SOT's and POT's potentials through the same checker, the same code for both: on the matrix POT
    # solved (the f64 cost from the points by default), and SOT's also on the other one.
    print("  checking SOT's and POT's potentials ...", flush=True)
    x32 = np.fromfile(os.path.join(work, "x.f32"), dtype="<f4").reshape(n, d)
    y32 = np.fromfile(os.path.join(work, "y.f32"), dtype="<f4").reshape(m, d)
    f = np.fromfile(os.path.join(work, "sot.f.f64"), dtype="<f8")
    g = np.fromfile(os.path.join(work, "sot.g.f64"), dtype="<f8")
    c32 = np.fromfile(os.path.join(work, "c_sot.f32"), dtype="<f4").reshape(n, m)
    xn, yn = ot_check.unit_rows(x32), ot_check.unit_rows(y32)
    own = lambda i0, i1: c32[i0:i1].astype(np.float64)
    max_diff = [0.0]

    def ref(i0, i1):  # the f64 cost, and on the way the largest |C_f32 - C_f64|
        c = ot_check.cosine_cost(xn[i0:i1], yn)
        max_diff[0] = max(max_diff[0], float(np.abs(c32[i0:i1] - c).max()))
        return c

    # "check": on the matrix POT solved; the other check shows what the f32 rounding of the costs does
    on_points = ot_check.evaluate(ot_check.potential_blocks(f, g, a, b, eps, ref), a, b, eps, f, g)
    on_own = ot_check.evaluate(ot_check.potential_blocks(f, g, a, b, eps, own), a, b, eps, f, g)
    sot["check"] = on_own if args.pot_matrix == "sot" else on_points
    sot["check_own_f32_cost"] = on_own
    sot["check_f64_points_cost"] = on_points
    sot["cost_f32_vs_f64_max_abs"] = max_diff[0]
    # sinkhorn({x, y}): its own cost matrix and, where tol asks for it, its float64 finish
    pf, pg = (np.fromfile(os.path.join(work, f"sot-points.{v}.f64"), dtype="<f8") for v in ("f", "g"))
    sot["points_check_f64_points_cost"] = ot_check.evaluate(ot_check.potential_blocks(pf, pg, a, b, eps, ref), a, b, eps, pf, pg)
    solved = own if args.pot_matrix == "sot" else ref
    for spec, r in pot["methods"].items():
        files = [os.path.join(work, f"pot-{spec}.{v}.f64") for v in ("f", "g")]
        if all(os.path.exists(p) for p in files):
            pf, pg = (np.fromfile(p, dtype="<f8") for p in files)
            r["plan_check"] = r["check"]  # pot_side's check of the plan it returned, on the same matrix
            r["check"] = ot_check.evaluate(ot_check.potential_blocks(pf, pg, a, b, eps, solved), a, b, eps, pf, pg)
    return sot, pot


def memory_of(phase):
    return {"peak_rss_mb": phase["peak_rss_mb"], "baseline_rss_mb": phase["baseline_rss_mb"], "peak_above_baseline_mb": phase["peak_rss_mb"] - phase["baseline_rss_mb"]}


def solver_rows(sot, pot, tol, stop_thr):
    """The rows of a problem's table: SOT, then every POT run; times are stats over the rounds."""
    rows = [
        {
            "solver": "SOT sinkhorn, tol=%g (f32 cost, log-domain)" % tol,
            "cost_s": stats(sot["cost_s"]),
            "solve_s": stats(sot["solve_s"]),
            "solve_cold_s": stats(sot["solve_cold_s"]),
            "total_s": stats(sot["total_s"]),
            "total_cold_s": stats(sot["total_cold_s"]),
            "iterations": sot["iterations"],
            "converged": sot["converged"],
            "check": sot["check"],
            # the process running sinkhorn({x, y}): points and its own cost matrix
            "memory": memory_of(sot["phases"]["points"]),
            "memory_solve_from_cost": memory_of(sot["phases"]["solve_cold"]),
        }
    ]
    pot_cost = stats(pot["cost_s"])
    for spec, r in pot["methods"].items():
        method, _, fixed = spec.partition("@")
        solve = stats(r["solve_s"])
        row = {"method": method, "solver": f"POT {method} (f64), ", "cost_s": pot_cost, "iterations": r["iterations"], "converged": r["converged"], "check": r["check"], "memory": memory_of(r["phase"])}
        if fixed:
            row["solver"] += f"numItermax={fixed} (= SOT's iterations)"
        else:
            row["solver"] += f"stopThr={stop_thr:.3g}"
        if len(solve["all"]) == len(pot_cost["all"]):  # the rounds: each cost with its solve
            row["total_s"] = stats([c + t for c, t in zip(pot_cost["all"], solve["all"])])
        else:  # one run: the fastest cost of the rounds plus its solve
            row["total_s"] = stats([pot_cost["min"] + t for t in solve["all"]])
        row["solve_s"] = solve
        row["solve_cold_s"] = stats(r["solve_cold_s"])
        if len(r["solve_cold_s"]) == len(pot_cost["all"]):
            row["total_cold_s"] = stats([c + t for c, t in zip(pot_cost["all"], r["solve_cold_s"])])
        rows.append(row)
    if "log_capped" in pot:
        rows.append(extrapolated_log(pot["log_capped"], pot["methods"]["sinkhorn"]["iterations"], pot_cost, stop_thr))
    for r in rows:
        r["solve_ratio_vs_sot"] = r["solve_s"]["min"] / rows[0]["solve_s"]["min"]
        r["total_ratio_vs_sot"] = r["total_s"]["min"] / rows[0]["total_s"]["min"]
        # cold against cold: each side's first solve in a fresh process
        r["solve_cold_ratio_vs_sot"] = r["solve_cold_s"]["min"] / rows[0]["solve_cold_s"]["min"] if "solve_cold_s" in r else None
        r["meets_tol"] = None if r["check"] is None else r["check"]["row_l1"] <= tol and r["check"]["col_l1"] <= tol
    return rows


def extrapolated_log(runs, needed, pot_cost, stop_thr):
    """The sinkhorn_log row from its runs of 1 and K iterations: t(N) = t(1) + (N - 1) p, p = (t(K) - t(1)) / (K - 1).

    Both POT methods make the same iterations (in exact arithmetic) under the same stopping test, so
    sinkhorn_log needs as many as ot.sinkhorn did: N. Both runs include the setup, the error check at
    the first iteration and the final plan once; the checks at iterations 11, 21, ... are left out,
    so the estimate is slightly low.
    """
    (_, one), (spec, longer) = sorted(runs.items(), key=lambda kv: int(kv[0].partition("@")[2]))
    k = int(spec.partition("@")[2])
    t1, tk = one["solve_s"][0], longer["solve_s"][0]
    per_iter = (tk - t1) / (k - 1)
    solve = t1 + (needed - 1) * per_iter
    return {
        "method": "sinkhorn_log",
        "solver": f"POT sinkhorn_log (f64), stopThr={stop_thr:.3g}, EXTRAPOLATED to {needed} iterations (ot.sinkhorn's count) "
        f"from runs of 1 and {k}: {t1:.3g} s + {needed - 1} x {per_iter:.3g} s",
        "extrapolated": True,
        "cost_s": pot_cost,
        "solve_s": stats([solve]),
        "total_s": stats([pot_cost["min"] + solve]),
        "iterations": needed,
        "converged": None,
        "check": None,
        "memory": memory_of(longer["phase"]),
        "measured": {"iterations": [1, k], "solve_s": [t1, tk], "per_iteration_s": per_iter},
    }


def problem_table(rows):
    t = lambda s: f"{s['min']:.3g} ({s['median']:.3g})" if len(s["all"]) > 1 else f"{s['min']:.3g}"
    head = ["solver", "cost s", "solve s", "cold solve s", "total s", "iters", "peak RSS MB above base (peak)", "row L1", "col L1",
            "primal value", "dual value", "POT/SOT solve", "POT/SOT total"]
    table = [head, ["---"] * len(head)]
    for r in rows:
        c = r["check"] or {}
        mem = r["memory"]
        table.append(
            [
                r["solver"] + (" (NOT converged)" if r["converged"] is False else ""),
                t(r["cost_s"]),
                ("~" if r.get("extrapolated") else "") + t(r["solve_s"]),
                t(r["solve_cold_s"]) if "solve_cold_s" in r else "-",
                ("~" if r.get("extrapolated") else "") + t(r["total_s"]),
                str(r["iterations"]),
                f"{mem['peak_above_baseline_mb']:.0f} ({mem['peak_rss_mb']:.0f})",
                fmt(c.get("row_l1"), ".2e"),
                fmt(c.get("col_l1"), ".2e"),
                fmt(c.get("primal"), ".10f"),
                fmt(c.get("dual"), ".10f"),
                fmt(r["solve_ratio_vs_sot"], ".2f"),
                fmt(r["total_ratio_vs_sot"], ".2f"),
            ]
        )
    return markdown(table)


def markdown(table):
    return "\n".join("| " + " | ".join(row) + " |" for row in table)


def pass_times(sot, n, m, bw):
    """SOT's time per pass over the n x m f32 matrix against the bandwidth bound of that read."""
    iters = sot["solve_iterations"]
    # the sweeps the solve made, as it reports them (iterations, plus one when the last one only
    # measured the error; results from before the field: always plus one);
    # sinkhorn({ cost }) also scans the matrix once for non-finite entries before them.
    passes = sot.get("solve_passes", iters + 1)
    passes1 = sot.get("solve1_passes", 2)
    solve = min(sot["solve_s"])
    out = {
        "iterations": iters,
        "passes": passes,
        "matrix_bytes": n * m * 4,
        "per_pass_s": solve / passes,
        # the maxIter = 1 solve makes 1 or 2 sweeps: the difference drops every fixed cost of a solve
        "marginal_per_pass_s": (solve - min(sot["solve1_s"])) / (passes - passes1) if passes > passes1 else None,
        "storage": {k: v for k, v in sot["solve_result_fields"].items() if "kernel" in k.lower() or "storag" in k.lower()} or None,
    }
    # Passes over the stored kernel, timed by SOT itself (fastest round's solve): the
    # iterations the "kernel is stored" target is about. None when the solve stored none.
    st = (out["storage"] or {}).get("storage") or {}
    out["stored_passes"] = st.get("kernelPasses", 0)
    out["stored_pass_s"] = st["kernelSeconds"] / st["kernelPasses"] if st.get("kernelPasses") else None
    if bw is not None:
        out["bandwidth_gbps"] = bw
        out["bound_s"] = n * m * 4 / (bw * 1e9)
        out["per_pass_vs_bound"] = out["per_pass_s"] / out["bound_s"]
        out["marginal_vs_bound"] = None if out["marginal_per_pass_s"] is None else out["marginal_per_pass_s"] / out["bound_s"]
        out["stored_vs_bound"] = None if out["stored_pass_s"] is None else out["stored_pass_s"] / out["bound_s"]
    return out


def run_problem(args, n, m, d, eps):
    """One problem of the grid: data, both sides, checks; returns its record (rows, raw results, table)."""
    stop_thr = args.pot_stopthr if args.pot_stopthr is not None else args.tol / math.sqrt(m)
    noise = Noise()
    work = tempfile.mkdtemp(prefix="sot-bench-")
    try:
        # 1. The problem, once, for both sides.
        rng = np.random.default_rng(args.seed)
        for name, rows in (("x", n), ("y", m)):
            p = rng.standard_normal((rows, d))
            p /= np.linalg.norm(p, axis=1, keepdims=True)
            p.astype("<f4").tofile(os.path.join(work, f"{name}.f32"))
        del p
        sot, pot = run_sides(args, work, n, m, d, eps, stop_thr)
    finally:
        if args.keep:
            print(f"  kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    rows = solver_rows(sot, pot, args.tol, stop_thr)
    record = {
        "problem": {"n": n, "m": m, "d": d, "eps": eps, "seed": args.seed, "cost": "cosine", "weights": "uniform",
                    "matrix": "SOT's f32 cost matrix, upcast" if args.pot_matrix == "sot" else "float64 cost from the points (numpy)"},
        "pot_stopThr": stop_thr,
        "rows": rows,
        "sot": sot,
        "pot": pot,
        "noise": noise.measure(),
        "table_markdown": problem_table(rows),
    }
    other, other_name = ((sot["check_f64_points_cost"], "the f64 cost from the points") if args.pot_matrix == "sot"
                         else (sot["check_own_f32_cost"], "SOT's own f32 cost"))
    print(f"\n{label(n, m, d, eps)}: both checked on {record['problem']['matrix']}; "
          f"SOT tol={args.tol:g} (L1, rows, every iteration); POT stopThr={stop_thr:.3g} "
          f"(L2, columns, every 10th iteration); times: fastest of {args.rounds} rounds (median in brackets), "
          f"sinkhorn_log one run; ~ = extrapolated")
    print(record["table_markdown"])
    print(f"SOT self-reported: value={sot['reported_value']:.10f}, L1 error={sot['reported_marginal_error']:.2e}; "
          f"checked on {other_name}: row L1={other['row_l1']:.2e}, col L1={other['col_l1']:.2e}; "
          f"max |C_f32 - C_f64| = {sot['cost_f32_vs_f64_max_abs']:.2e}; "
          f"other processes: {share(record['noise'])} of one core\n", flush=True)
    return record


def share(noise):
    return "-" if noise["foreign_share"] is None else f"{noise['foreign_share']:.0%}"


def summary(problems, bw, tol):
    """Summary tables (speed and accuracy; passes and memory) and the issue's targets."""
    speed = [["problem", "SOT solve s (iters)", "SOT row / col L1", "POT sinkhorn solve s (iters)", "POT/SOT solve (total)",
              "POT @SOT's iters: col L1, POT/SOT solve", "sinkhorn_log solve s", "log/SOT solve", "other CPU"]]
    passes = [["problem", "SOT s/pass (passes)", "marginal s/pass", "stored-kernel s/pass (passes)", "bound s/pass", "s/pass / bound",
               "marginal / bound", "stored / bound", "kernel storage", "SOT peak MB above base", "POT sinkhorn peak MB above base",
               "sinkhorn_log peak MB above base"]]
    targets = []
    for p in problems:
        pr = p["problem"]
        name = label(pr["n"], pr["m"], pr["d"], pr["eps"])
        sot, pots = p["rows"][0], p["rows"][1:]
        by = lambda pred: next((r for r in pots if pred(r)), None)
        plain = by(lambda r: r["method"] == "sinkhorn" and "numItermax" not in r["solver"])
        fixed = by(lambda r: "numItermax" in r["solver"])
        log = by(lambda r: r["method"] == "sinkhorn_log" and not r.get("extrapolated"))
        estimate = by(lambda r: r.get("extrapolated"))
        log = log or estimate
        tl = lambda r: ("~" if r.get("extrapolated") else "") + f"{r['solve_s']['min']:.3g}"
        speed.append([
            name,
            f"{sot['solve_s']['min']:.3g} ({sot['iterations']})" + ("" if sot["converged"] else " NOT converged"),
            f"{sot['check']['row_l1']:.1e} / {sot['check']['col_l1']:.1e}",
            "-" if plain is None else f"{plain['solve_s']['min']:.3g} ({plain['iterations']})",
            "-" if plain is None else f"{plain['solve_ratio_vs_sot']:.1f} ({plain['total_ratio_vs_sot']:.1f})",
            "-" if fixed is None else f"{fixed['check']['col_l1']:.1e}, {fixed['solve_ratio_vs_sot']:.1f}",
            "-" if log is None else tl(log) + (" (extrapolated)" if log is estimate else f" (extrapolated {tl(estimate)})" if estimate else ""),
            "-" if log is None else f"{log['solve_ratio_vs_sot']:.0f}",
            share(p["noise"]),
        ])
        pt = p["pass_time"] = pass_times(p["sot"], pr["n"], pr["m"], bw)
        mb = lambda r: "-" if r is None else f"{r['memory']['peak_above_baseline_mb']:.0f}"
        passes.append([
            name,
            f"{pt['per_pass_s']:.3g} ({pt['passes']})",
            fmt(pt["marginal_per_pass_s"], ".3g"),
            "-" if pt["stored_pass_s"] is None else f"{pt['stored_pass_s']:.3g} ({pt['stored_passes']})",
            fmt(pt.get("bound_s"), ".3g"),
            fmt(pt.get("per_pass_vs_bound"), ".1f"),
            fmt(pt.get("marginal_vs_bound"), ".1f"),
            fmt(pt.get("stored_vs_bound"), ".1f"),
            "not reported" if pt["storage"] is None else (pt["storage"].get("storage") or {}).get("mode", json.dumps(pt["storage"])),
            mb(sot),
            mb(plain),
            mb(log),
        ])
        if (pr["n"], pr["m"]) == TARGET_SIZE:
            # Equal accuracy: the fastest ot.sinkhorn run whose plan meets tol on the shared checker.
            equal = min((r for r in (plain, fixed) if r is not None and r["meets_tol"]), key=lambda r: r["solve_s"]["min"], default=None)
            for goal, r, how in (("sinkhorn", equal, "at equal accuracy"), ("sinkhorn_log", log, "(its stopping rule)")):
                if r is None:
                    continue
                ok = r["solve_ratio_vs_sot"] >= TARGETS[goal]
                targets.append({"problem": name, "target": f"SOT solve >= {TARGETS[goal]:g}x faster than POT {goal} {how}",
                                "pot_row": r["solver"], "ratio_solve": r["solve_ratio_vs_sot"], "ratio_total": r["total_ratio_vs_sot"],
                                "sot_meets_tol": sot["meets_tol"], "met": ok})
        if pt.get("per_pass_vs_bound") is not None:
            # the target is about the passes served by a stored kernel; a solve too short to store one has none
            targets.append({"problem": name, "target": f"SOT s/pass within {TARGETS['pass_vs_bound']:g}x of the bandwidth bound (when the kernel is stored)",
                            "kernel_storage": pt["storage"], "ratio": pt["stored_vs_bound"], "marginal_ratio": pt["marginal_vs_bound"],
                            "stored_passes": pt["stored_passes"],
                            "met": None if pt["stored_vs_bound"] is None else pt["stored_vs_bound"] <= TARGETS["pass_vs_bound"]})
    lines = []
    for t in targets:
        detail = (f"{t['ratio_solve']:.1f}x solve, {t['ratio_total']:.1f}x total, against {t['pot_row']}" if "ratio_solve" in t
                  else "no pass served by a stored kernel (the solve was too short to store one)" if t["ratio"] is None
                  else f"{t['stored_passes']} stored-kernel passes at {t['ratio']:.1f}x the bound; the whole solve's marginal pass "
                  f"{fmt(t['marginal_ratio'], '.1f')}x")
        verdict = "not applicable" if t["met"] is None else "met" if t["met"] else "NOT met"
        lines.append(f"- {t['problem']}: {t['target']}: {verdict} ({detail})"
                     + ("" if t.get("sot_meets_tol", True) else f"; SOT's own plan misses tol={tol:g} on the checker"))
    return markdown([speed[0], ["---"] * len(speed[0])] + speed[1:]), markdown([passes[0], ["---"] * len(passes[0])] + passes[1:]), targets, "\n".join(lines)


def symmetric_summary(problems, tol):
    """One row per problem: SOT and the fastest accurate ot.sinkhorn run, warm against warm and cold against cold.

    Warm: the fastest of the solves after the first in one process (median in brackets); cold: the first solve
    of the problem in a fresh process. Accuracy: both checked by the same code on the matrix POT solved.
    """
    head = ["problem", "SOT warm s", "SOT cold s", "SOT row / col L1", "POT run", "POT warm s", "POT cold s", "POT row / col L1",
            "warm/warm", "cold/cold", "both meet tol", "load (1 min) during the rounds"]
    table = [head, ["---"] * len(head)]
    out = []
    t = lambda st: f"{st['min']:.3g} ({st['median']:.3g})"
    for p in problems:
        pr, sot, pots = p["problem"], p["rows"][0], p["rows"][1:]
        sinkhorns = [r for r in pots if r.get("method") == "sinkhorn" and r["check"] is not None]
        accurate = [r for r in sinkhorns if r["meets_tol"]]
        pot = min(accurate or sinkhorns, key=lambda r: r["solve_s"]["min"], default=None)
        if pot is None:
            continue
        loads = [float(v.split()[0]) for v in p["sot"]["loadavg"] + p["pot"]["loadavg"] if v]
        row = {
            "problem": label(pr["n"], pr["m"], pr["d"], pr["eps"]),
            "matrix": pr["matrix"],
            "sot_warm_s": sot["solve_s"], "sot_cold_s": sot["solve_cold_s"], "sot_check": sot["check"], "sot_meets_tol": sot["meets_tol"],
            "pot_row": pot["solver"], "pot_warm_s": pot["solve_s"], "pot_cold_s": pot["solve_cold_s"], "pot_check": pot["check"],
            "pot_meets_tol": pot["meets_tol"],
            "warm_ratio": pot["solve_s"]["min"] / sot["solve_s"]["min"],
            "warm_ratio_medians": pot["solve_s"]["median"] / sot["solve_s"]["median"],
            "cold_ratio": pot["solve_cold_s"]["min"] / sot["solve_cold_s"]["min"],
            "loadavg_1min": {"min": min(loads), "max": max(loads)} if loads else None,
        }
        out.append(row)
        l1 = lambda c: f"{c['row_l1']:.1e} / {c['col_l1']:.1e}"
        table.append([
            row["problem"], t(sot["solve_s"]), t(sot["solve_cold_s"]), l1(sot["check"]),
            pot["solver"].replace("POT sinkhorn (f64), ", ""), t(pot["solve_s"]), t(pot["solve_cold_s"]), l1(pot["check"]),
            f"{row['warm_ratio']:.1f} ({row['warm_ratio_medians']:.1f})", f"{row['cold_ratio']:.1f}",
            "yes" if sot["meets_tol"] and pot["meets_tol"] else "SOT misses tol" if pot["meets_tol"] else "POT misses tol" if sot["meets_tol"] else "neither",
            "-" if not loads else f"{min(loads):.1f}-{max(loads):.1f}",
        ])
    return markdown(table), out


def points_summary(problems, tol):
    """One row per problem: end to end from the points (cost + solve), both checked on the float64 costs from the points.

    SOT: sinkhorn({x, y}) (its f32 cost matrix, the solve, and its last passes on the float64 costs recomputed from
    the points where tol is below what f32 costs vouch for); one run per round, so cold. POT: the numpy float64 cost
    plus the fastest accurate ot.sinkhorn run, cold and warm.
    """
    head = ["problem", "SOT from points s", "SOT passes (float64)", "SOT row / col L1", "POT cost + solve warm s",
            "POT cost + solve cold s", "POT row / col L1", "warm POT / SOT", "cold POT / SOT", "both meet tol", "load (1 min)"]
    table = [head, ["---"] * len(head)]
    out = []
    t = lambda st: f"{st['min']:.3g} ({st['median']:.3g})"
    l1 = lambda c: f"{c['row_l1']:.1e} / {c['col_l1']:.1e}"
    for p in problems:
        pr, sot = p["problem"], p["sot"]
        if "points_check_f64_points_cost" not in sot:
            continue
        pots = [r for r in p["rows"][1:] if r.get("method") == "sinkhorn" and r["check"] is not None and "total_cold_s" in r]
        accurate = [r for r in pots if r["meets_tol"]]
        pot = min(accurate or pots, key=lambda r: r["total_s"]["min"], default=None)
        if pot is None:
            continue
        check = sot["points_check_f64_points_cost"]
        meets = check["row_l1"] <= tol and check["col_l1"] <= tol
        points = stats(sot["points_s"])
        loads = [float(v.split()[0]) for v in sot["loadavg"] + p["pot"]["loadavg"] if v]
        row = {"problem": label(pr["n"], pr["m"], pr["d"], pr["eps"]), "sot_points_s": points, "sot_passes": sot["points_passes"],
               "sot_exact_passes": sot["points_exact_passes"], "sot_reported_error": sot["points_marginal_error"], "sot_check": check,
               "sot_meets_tol": meets, "pot_row": pot["solver"], "pot_total_s": pot["total_s"], "pot_total_cold_s": pot["total_cold_s"],
               "pot_check": pot["check"], "pot_meets_tol": pot["meets_tol"], "warm_ratio": pot["total_s"]["min"] / points["min"],
               "cold_ratio": pot["total_cold_s"]["min"] / points["min"], "loadavg_1min": {"min": min(loads), "max": max(loads)} if loads else None}
        out.append(row)
        table.append([row["problem"], t(points), f"{sot['points_passes']} ({sot['points_exact_passes']})", l1(check), t(pot["total_s"]),
                      t(pot["total_cold_s"]), l1(pot["check"]), f"{row['warm_ratio']:.1f}", f"{row['cold_ratio']:.1f}",
                      "yes" if meets and pot["meets_tol"] else "SOT misses tol" if pot["meets_tol"] else "POT misses tol" if meets else "neither",
                      "-" if not loads else f"{min(loads):.1f}-{max(loads):.1f}"])
    return markdown(table), out


def save(path, result):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path + ".tmp", "w") as fh:
        json.dump(result, fh, indent=2)
    os.replace(path + ".tmp", path)


def main():
    args = parse_args()
    problems = [(n, m, d, eps) for n, m in args.sizes for d in args.d for eps in args.eps]
    command = "bash bench/sinkhorn-vs-pot.sh" + "".join(f" {a}" for a in sys.argv[1:])
    info = machine()
    print(f"# {command}\n# {info['nproc']} CPUs, {info['cpu']}, {info['memory']}, {info['date']}, load {info['loadavg_at_start']}")
    print(f"# {len(problems)} problems: {', '.join(label(*p) for p in problems)}", flush=True)
    prov = provenance()
    noise = Noise()
    exe = build_membw() if args.membw == "on" else None
    result = {
        "command": command,
        "grid": {"name": args.grid, "sizes": [f"{n}x{m}" for n, m in args.sizes], "d": args.d, "eps": args.eps,
                 "log_converge": [f"{n}x{m}" for n, m in args.log_converge], "log_cap_iters": args.log_cap_iters},
        "machine": info,
        "sot_build": prov,
        "settings": {"pot_matrix": args.pot_matrix, "sot_tol": args.tol, "pot_stopThr": args.pot_stopthr or "tol / sqrt(m)", "max_iter": args.max_iter,
                     "rounds": args.rounds, "repeats": args.repeats},
        "membw": {"start": membw(exe, args.membw_mib)},
        "problems": [],
        "complete": False,
    }
    for k, (n, m, d, eps) in enumerate(problems):
        print(f"== problem {k + 1}/{len(problems)}: {label(n, m, d, eps)}", flush=True)
        result["problems"].append(run_problem(args, n, m, d, eps))
        save(args.out, result)
    result["membw"]["end"] = membw(exe, args.membw_mib)

    run_noise = noise.measure()
    if prov["addon"] != provenance()["addon"]:
        print("WARNING: the native addon changed during the run; rerun the benchmark", file=sys.stderr)
        prov["addon_changed_during_run"] = True
    runs = [r for r in result["membw"].values() if r is not None]
    bw = max((r["read_gbps"]["best"] for r in runs), default=None)
    speed, passes, targets, target_lines = summary(result["problems"], bw, args.tol)
    symmetric, symmetric_rows = symmetric_summary(result["problems"], args.tol)
    points, points_rows = points_summary(result["problems"], args.tol)

    print(f"\n## Summary ({len(problems)} problems; solve times: fastest of {args.rounds} rounds; ~ = extrapolated; "
          f"other CPU = other processes' CPU time as a share of one core)\n")
    print(speed)
    print(f"\nWarm against warm and cold against cold ({args.repeats} solves per process: the first cold, the others warm; "
          f"fastest of the rounds, median in brackets), both checked by ot_check.py on "
          f"{result['problems'][0]['problem']['matrix'] if result['problems'] else '-'}, tol {args.tol:g} (L1, rows and columns):\n")
    print(symmetric)
    print(f"\nEnd to end from the points (cost + solve), both checked on the float64 costs from the points, tol {args.tol:g}: "
          f"SOT's sinkhorn({{x, y}}) finishes on those costs where tol asks for it (passes on them in brackets); "
          f"one SOT run per round (cold), fastest of the rounds, median in brackets:\n")
    print(points)
    print(f"\nSOT passes over the n x m f32 matrix: s/pass = solve / passes; marginal = (solve - solve at maxIter 1) / "
          f"(passes - its passes); bound = 4 n m bytes / {fmt(bw, '.1f')} GB/s (best read bandwidth of the run, "
          f"{runs[0]['threads'] if runs else '-'} threads). Peak RSS above the process's baseline: SOT's sinkhorn({{x, y}}), "
          f"POT's process (f64 cost matrix held) during the solve.\n")
    print(passes)
    print("\nTargets (the issue's):")
    print(target_lines or "- none in this grid (the speed targets are on 20000x2000)")
    pot = result["problems"][0]["pot"] if result["problems"] else None
    sot = result["problems"][0]["sot"] if result["problems"] else None
    if pot is not None:
        nb = pot["numpy_blas"]
        libs = [f"{i.get('internal_api')} {i.get('version') or ''} {i.get('architecture') or ''} {i.get('num_threads')} threads ({os.path.basename(i.get('filepath', ''))})" for i in pot["blas"]]
        print(f"\nSOT: {sot['threads']} threads, node {sot['node']}; 'solve' = sinkhorn({{cost}}) on costMatrix's output; 'total' = cost + solve, "
              f"as for POT; peak RSS from sinkhorn({{x, y}}) (computes its own cost).")
        print(f"POT {pot['pot']}, numpy {pot['numpy']}, python {pot['python']}, BLAS {nb.get('name')} {nb.get('version')}; loaded at run time: {'; '.join(libs)}")
    print(f"OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE removed for the numpy/POT processes (kept for node): {REMOVED or 'neither was set'}")
    print(f"SOT build: commit {prov['commit'][:12]}, addon {prov['addon']}, uncommitted source changes: {len(prov['uncommitted_source_changes'])}")
    if run_noise["foreign_share"] is not None:
        print(f"other processes used {run_noise['foreign_cpu_s']:.0f} CPU-s during the {run_noise['wall_s']:.0f} s run ({share(run_noise)} of one core)"
              + (": timings disturbed, rerun on a quiet machine" if run_noise["foreign_share"] > 0.1 else ""))

    result["machine"] |= {"loadavg_at_end": loadavg(), "run_wall_s": run_noise["wall_s"], "foreign_cpu_s": run_noise["foreign_cpu_s"]}
    result |= {"bandwidth_gbps_for_bound": bw, "summary_markdown": speed, "symmetric_markdown": symmetric, "symmetric": symmetric_rows, "points_markdown": points, "points": points_rows, "passes_markdown": passes, "targets": targets, "complete": True}
    save(args.out, result)
    print(f"\nwrote {os.path.relpath(args.out, ROOT)}")


if __name__ == "__main__":
    t0 = time.perf_counter()
    main()
    print(f"({time.perf_counter() - t0:.0f} s)")
