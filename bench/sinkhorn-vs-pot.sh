#!/usr/bin/env bash
# SOT's Sinkhorn vs POT's ot.sinkhorn / ot.sinkhorn_log on a grid of problems, in one run.
#
#   npm run build                       # once: release addon + dist/
#   bash bench/sinkhorn-vs-pot.sh       # the full grid: {5000x5000, 20000x2000, 50000x5000} x d {384, 1024} x eps {0.05, 0.01}
#   bash bench/sinkhorn-vs-pot.sh --grid quick                                  # 4 small problems (smoke test)
#   bash bench/sinkhorn-vs-pot.sh --sizes 20000x2000 --d 384 --eps 0.01        # a subset (any of the three)
#   bash bench/sinkhorn-vs-pot.sh --help                                        # all flags
#
# For each problem the points (gaussian, L2-normalised, seed 0) are generated once
# and written as raw little-endian float32 to a temp dir; SOT (node, public API in
# dist/) and POT (python, numpy) read the same files. SOT solves its own f32 cost
# matrix, POT the float64 cost numpy computes from the points (--pot-matrix sot: SOT's
# matrix, upcast). Each side solves --repeats times (default 3) in one fresh process:
# the first solve is cold, the others warm, for both; the rounds alternate the two
# sides and record the load average. One shared f64 checker (bench/ot_check.py)
# measures the L1 marginal errors and entropic OT value of both sides' potentials,
# by the same code, on the float64 cost from the points. The
# memory read bandwidth of the machine is measured in the
# same run (cargo example crates/sot-core/examples/membw.rs, built here). Prints a
# table per problem and a summary, and writes bench/results/sinkhorn-grid*.json.
# See BENCHMARKS.md ("Sinkhorn vs POT: the grid").
#
# POT, numpy, scipy and threadpoolctl live in a scratch venv, $SOT_BENCH_VENV
# (default /tmp/potenv), created here when missing; never a project dependency.
# OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE, if set, are removed for the numpy processes
# (POT, data generation, checker: together they hang OpenBLAS GEMM), not for node.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${SOT_BENCH_VENV:-/tmp/potenv}"

if [[ ! -f "$root/dist/index.js" ]] || ! ls "$root"/native/sot.*.node >/dev/null 2>&1; then
  echo "dist/ or the native addon is missing: run 'npm run build' first" >&2
  exit 1
fi
if ! "$venv/bin/python" -c 'import ot, numpy, threadpoolctl' 2>/dev/null; then
  echo "creating the POT venv in $venv ..." >&2
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$root/bench/requirements-pot.txt"
fi

cd "$root"
exec "$venv/bin/python" bench/sinkhorn_vs_pot.py "$@"
