"""Driver of bench/sinkhorn-vs-pot.sh: SOT's Sinkhorn vs POT's on one problem.

Run it through bench/sinkhorn-vs-pot.sh (which provides the Python venv with
POT and numpy); see that script and BENCHMARKS.md.

Steps, in one run:
 1. generate n source and m target points (gaussian, L2-normalised, seed
    fixed), written once as raw little-endian float32 to a temp dir;
 2. SOT (node bench/sot-side.mjs, public API in dist/): costMatrix,
    sinkhorn from the points (= cost + solve), sinkhorn from the matrix;
 3. POT (python bench/pot_side.py; OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE unset
    for it and for this driver, see OPENBLAS_VARS): numpy f64 cosine cost,
    ot.sinkhorn (and ot.sinkhorn_log);
 4. one shared f64 checker (ot_check.py) measures the L1 marginal errors and
    the entropic OT value of every returned solution on the same f64 cost;
 5. prints a table and writes the raw results as JSON under bench/results/.
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


def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=20_000, help="source points (default 20000)")
    p.add_argument("--m", type=int, default=2_000, help="target points (default 2000)")
    p.add_argument("--d", type=int, default=384, help="dimension (default 384)")
    p.add_argument("--eps", type=float, default=0.05, help="entropic regularisation (default 0.05)")
    p.add_argument("--seed", type=int, default=0, help="numpy seed of the points (default 0)")
    p.add_argument("--tol", type=float, default=1e-6, help="SOT tol: L1 row-marginal error (default 1e-6)")
    p.add_argument(
        "--pot-stopthr",
        type=float,
        default=None,
        help="POT stopThr, an L2 norm of the column-marginal error (default tol / sqrt(m), "
        "so that POT's L1 error, <= sqrt(m) * L2, is below tol when it stops)",
    )
    p.add_argument("--max-iter", type=int, default=10_000, help="iteration cap of every solver (default 10000)")
    p.add_argument(
        "--rounds",
        type=int,
        default=5,
        help="timed rounds, each running SOT then POT in fresh processes; the table shows the fastest run "
        "and the median (default 5)",
    )
    p.add_argument("--log-repeat", type=int, default=1, help="timed runs of ot.sinkhorn_log (default 1; it is slow)")
    p.add_argument(
        "--pot-log",
        choices=["on", "off"],
        default="on",
        help="also time ot.sinkhorn(method='sinkhorn_log') (default on)",
    )
    p.add_argument(
        "--pot-equal-iters",
        choices=["on", "off"],
        default="on",
        help="also run ot.sinkhorn for exactly as many iterations as SOT needed (default on)",
    )
    p.add_argument("--out", default=None, help="JSON results file (default bench/results/sinkhorn-vs-pot-<n>x<m>-d<d>.json)")
    p.add_argument("--keep", action="store_true", help="keep the temp dir with the data and potentials")
    return p.parse_args()


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


def fmt(v, spec):
    return "-" if v is None else format(v, spec)


def stats(v):
    return {"min": min(v), "median": statistics.median(v), "all": v}


def main():
    args = parse_args()
    n, m, d, eps = args.n, args.m, args.d, args.eps
    stop_thr = args.pot_stopthr if args.pot_stopthr is not None else args.tol / math.sqrt(m)
    command = "bash bench/sinkhorn-vs-pot.sh" + "".join(f" {a}" for a in sys.argv[1:])
    out_path = args.out or os.path.join(HERE, "results", f"sinkhorn-vs-pot-{n}x{m}-d{d}.json")
    info = machine()
    print(f"# {command}\n# {info['nproc']} CPUs, {info['cpu']}, {info['memory']}, {info['date']}, load {info['loadavg_at_start']}", flush=True)

    removed = REMOVED

    prov = provenance()
    busy0, own0, wall0 = busy_cpu_s(), own_cpu_s(), time.perf_counter()
    work = tempfile.mkdtemp(prefix="sot-bench-")
    try:
        # 1. The problem, once, for both sides.
        rng = np.random.default_rng(args.seed)
        x = rng.standard_normal((n, d))
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        y = rng.standard_normal((m, d))
        y /= np.linalg.norm(y, axis=1, keepdims=True)
        x32, y32 = x.astype("<f4"), y.astype("<f4")
        x32.tofile(os.path.join(work, "x.f32"))
        y32.tofile(os.path.join(work, "y.f32"))
        del x, y
        a, b = np.full(n, 1.0 / n), np.full(m, 1.0 / m)
        common = [str(v) for v in (n, m, d, eps)]

        def sot_side(write):
            cmd = ["node", os.path.join(HERE, "sot-side.mjs"), work, *common, str(args.tol), str(args.max_iter), "1", write]
            return run_json(cmd, env=NODE_ENV)

        def pot_side(methods, repeat, check):
            cmd = [sys.executable, os.path.join(HERE, "pot_side.py"), work, *common, repr(stop_thr), str(args.max_iter)]
            return run_json(cmd + [str(repeat), ",".join(methods), check], env=PY_ENV)

        # 2-3. Rounds alternating SOT and POT, so that a slow spell of the machine hits both
        # sides. The last round writes SOT's potentials and checks POT's plans.
        sot_runs, pot_runs = [], []
        methods = ["sinkhorn"]
        for r in range(args.rounds):
            last = "1" if r == args.rounds - 1 else "0"
            print(f"round {r + 1}/{args.rounds}: SOT (tol={args.tol:g}) ...", flush=True)
            sot_runs.append(sot_side(last))
            if r == 0 and args.pot_equal_iters == "on":
                methods.append(f"sinkhorn@{sot_runs[0]['iterations']}")
            print(f"round {r + 1}/{args.rounds}: POT {', '.join(methods)} (stopThr={stop_thr:.3g}) ...", flush=True)
            pot_runs.append(pot_side(methods, 1, last))
        if args.pot_log == "on":
            print(f"POT sinkhorn_log x{args.log_repeat} ...", flush=True)
            log_run = pot_side(["sinkhorn_log"], args.log_repeat, "1")
            methods.append("sinkhorn_log")

        sot = dict(sot_runs[-1])
        for key in ("cost_s", "total_s", "solve_s"):
            sot[key] = [t for run in sot_runs for t in run[key]]
        pot = dict(pot_runs[-1])
        pot["cost_s"] = [t for run in pot_runs for t in run["cost_s"]]
        pot["methods"] = {k: dict(v) for k, v in pot["methods"].items()}
        for k in pot["methods"]:
            pot["methods"][k]["solve_s"] = [t for run in pot_runs for t in run["methods"][k]["solve_s"]]
        if args.pot_log == "on":
            pot["methods"]["sinkhorn_log"] = log_run["methods"]["sinkhorn_log"]
            pot["cost_s_log_run"] = log_run["cost_s"]
        pot["env_removed"] = removed

        # 4. SOT's potentials through the same checker: on the f64 cost POT solved, and on SOT's own f32 cost.
        print("checking SOT's potentials ...", flush=True)
        f = np.fromfile(os.path.join(work, "f.f64"), dtype="<f8")
        g = np.fromfile(os.path.join(work, "g.f64"), dtype="<f8")
        xn, yn = ot_check.unit_rows(x32), ot_check.unit_rows(y32)
        ref = lambda i0, i1: ot_check.cosine_cost(xn[i0:i1], yn)
        sot["check"] = ot_check.evaluate(ot_check.potential_blocks(f, g, a, b, eps, ref), a, b, eps, f, g)
        c32 = np.fromfile(os.path.join(work, "c_sot.f32"), dtype="<f4").reshape(n, m)
        own = lambda i0, i1: c32[i0:i1].astype(np.float64)
        sot["check_own_f32_cost"] = ot_check.evaluate(ot_check.potential_blocks(f, g, a, b, eps, own), a, b, eps, f, g)
        sot["cost_f32_vs_f64_max_abs"] = float(
            max(np.abs(own(i0, min(i0 + 1024, n)) - ref(i0, min(i0 + 1024, n))).max() for i0 in range(0, n, 1024))
        )
        del c32
    finally:
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)

    # Other processes' CPU time during the run: the machine's busy time minus ours.
    wall = time.perf_counter() - wall0
    foreign = None if busy0 is None else max(0.0, (busy_cpu_s() - busy0) - (own_cpu_s() - own0))
    if prov["addon"] != provenance()["addon"]:
        print("WARNING: the native addon changed during the run; rerun the benchmark", file=sys.stderr)
        prov["addon_changed_during_run"] = True

    # 5. Table: fastest run (median in brackets), ratios of the fastest runs.
    pot_cost = stats(pot["cost_s"])
    rows = [
        {
            "solver": "SOT sinkhorn, tol=%g (f32 cost, log-domain)" % args.tol,
            "cost_s": stats(sot["cost_s"]),
            "solve_s": stats(sot["solve_s"]),
            "total_s": stats(sot["total_s"]),
            "iterations": sot["iterations"],
            "converged": sot["converged"],
            "check": sot["check"],
        }
    ]
    for spec in methods:
        r = pot["methods"][spec]
        method, _, fixed = spec.partition("@")
        solve = stats(r["solve_s"])
        total = stats([c + t for c, t in zip(pot["cost_s"], r["solve_s"])]) if method == "sinkhorn" else None
        if total is None:  # one run only: the fastest cost of the rounds plus its solve
            total = stats([pot_cost["min"] + t for t in r["solve_s"]])
        rows.append(
            {
                "solver": f"POT {method} (f64), " + (f"numItermax={fixed} (= SOT's iterations)" if fixed else f"stopThr={stop_thr:.3g}"),
                "cost_s": pot_cost,
                "solve_s": solve,
                "total_s": total,
                "iterations": r["iterations"],
                "converged": r["converged"],
                "check": r["check"],
            }
        )
    for r in rows:
        r["solve_ratio_vs_sot"] = r["solve_s"]["min"] / rows[0]["solve_s"]["min"]
        r["total_ratio_vs_sot"] = r["total_s"]["min"] / rows[0]["total_s"]["min"]

    t = lambda s: f"{s['min']:.3g} ({s['median']:.3g})" if len(s["all"]) > 1 else f"{s['min']:.3g}"
    head = ["solver", "cost s", "solve s", "total s", "iters", "row L1", "col L1", "primal value", "dual value", "POT/SOT solve", "POT/SOT total"]
    table = [head, ["---"] * len(head)]
    for r in rows:
        c = r["check"]
        table.append(
            [
                r["solver"] + (" (NOT converged)" if r["converged"] is False else ""),
                t(r["cost_s"]),
                t(r["solve_s"]),
                t(r["total_s"]),
                str(r["iterations"]),
                fmt(c["row_l1"], ".2e"),
                fmt(c["col_l1"], ".2e"),
                fmt(c["primal"], ".10f"),
                fmt(c.get("dual"), ".10f"),
                fmt(r["solve_ratio_vs_sot"], ".2f"),
                fmt(r["total_ratio_vs_sot"], ".2f"),
            ]
        )
    md = "\n".join("| " + " | ".join(row) + " |" for row in table)
    print()
    print(f"n={n} m={m} d={d} eps={eps:g} seed={args.seed}; SOT tol={args.tol:g} (L1, rows, every iteration); "
          f"POT stopThr={stop_thr:.3g} (L2, columns, every 10th iteration)")
    print(f"times: fastest of {args.rounds} rounds alternating SOT and POT (median in brackets)"
          + (f"; sinkhorn_log: {args.log_repeat} run(s)" if args.pot_log == "on" else ""))
    print(md)
    own = sot["check_own_f32_cost"]
    print(
        f"\nSOT self-reported: value={sot['reported_value']:.10f}, L1 error={sot['reported_marginal_error']:.2e}; "
        f"checked on SOT's own f32 cost: row L1={own['row_l1']:.2e}, col L1={own['col_l1']:.2e}, primal={own['primal']:.10f}; "
        f"max |C_f32 - C_f64| = {sot['cost_f32_vs_f64_max_abs']:.2e}"
    )
    print(f"SOT: {sot['threads']} threads; 'total' = sinkhorn({{x, y}}) (computes its own cost); 'solve' = sinkhorn({{cost}}) on costMatrix's output.")
    nb = pot["numpy_blas"]
    libs = [f"{i.get('internal_api')} {i.get('version') or ''} {i.get('architecture') or ''} {i.get('num_threads')} threads ({os.path.basename(i.get('filepath', ''))})" for i in pot["blas"]]
    print(f"POT {pot['pot']}, numpy {pot['numpy']} with BLAS {nb.get('name')} {nb.get('version')}; loaded at run time: {'; '.join(libs)}")
    print(f"OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE removed for the numpy/POT processes (kept for node): {removed or 'neither was set'}")
    print(f"SOT build: commit {prov['commit'][:12]}, addon {prov['addon']}, uncommitted source changes: {len(prov['uncommitted_source_changes'])}")
    if foreign is not None:
        share = foreign / wall
        print(f"other processes used {foreign:.0f} CPU-s during the {wall:.0f} s run ({share:.0%} of one core)"
              + (": timings disturbed, rerun on a quiet machine" if share > 0.1 else ""))

    result = {
        "command": command,
        "machine": info | {"loadavg_at_end": loadavg(), "run_wall_s": wall, "foreign_cpu_s": foreign},
        "sot_build": prov,
        "problem": {"n": n, "m": m, "d": d, "eps": eps, "seed": args.seed, "cost": "cosine", "weights": "uniform"},
        "settings": {"sot_tol": args.tol, "pot_stopThr": stop_thr, "max_iter": args.max_iter, "rounds": args.rounds, "log_repeat": args.log_repeat},
        "rows": rows,
        "sot": sot,
        "pot": pot,
        "table_markdown": md,
    }
    os.makedirs(os.path.dirname(out_path), exist_ok=True)
    with open(out_path, "w") as fh:
        json.dump(result, fh, indent=2)
    print(f"\nwrote {os.path.relpath(out_path, ROOT)}")


if __name__ == "__main__":
    t0 = time.perf_counter()
    main()
    print(f"({time.perf_counter() - t0:.0f} s)")
