#!/usr/bin/env bash
# Lints .github/workflows/*.yml with actionlint (pinned; built from its Go
# module when not on PATH, into $SOT_TOOLS_DIR, default ~/.cache/sot-tools),
# and checks that the release workflow builds exactly package.json's
# napi.targets: the macOS/Windows ones in its matrix, the Linux ones through
# scripts/build-targets.sh, the WebAssembly one through `npm run build:wasm`.
# actionlint runs shellcheck on the run: scripts where shellcheck is installed.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

ACTIONLINT_MODULE=github.com/rhysd/actionlint/cmd/actionlint@v1.7.7
TOOLS="${SOT_TOOLS_DIR:-$HOME/.cache/sot-tools}"

actionlint="$(command -v actionlint || true)"
if [ -z "$actionlint" ]; then
  actionlint="$TOOLS/bin/actionlint"
  if [ ! -x "$actionlint" ]; then
    command -v go >/dev/null || { echo "lint-workflows: needs actionlint or Go to build it" >&2; exit 1; }
    echo "lint-workflows: go install $ACTIONLINT_MODULE"
    GOBIN="$TOOLS/bin" go install "$ACTIONLINT_MODULE"
  fi
fi
"$actionlint" -no-color .github/workflows/*.yml
echo "lint-workflows: actionlint ok ($("$actionlint" -version | head -n 1))"

node - <<'EOF_TARGETS'
const { readFileSync } = require('node:fs');
const want = JSON.parse(readFileSync('package.json', 'utf8')).napi.targets;
const workflow = readFileSync('.github/workflows/release.yml', 'utf8');
const script = readFileSync('scripts/build-targets.sh', 'utf8');
const matrix = [...workflow.matchAll(/^\s*- target: (\S+)$/gm)].map((m) => m[1]);
// The Linux job runs build-targets.sh with no argument: all the platforms it knows.
if (!/run: bash scripts\/build-targets\.sh\s*$/m.test(workflow)) throw new Error('release.yml does not run scripts/build-targets.sh for all its platforms');
const linux = [...script.matchAll(/^\s*linux-[a-z0-9-]+\) echo ([a-z0-9_]+-unknown-linux-[a-z]+) ;;$/gm)].map((m) => m[1]);
// The WebAssembly build: `npm run build:wasm` in the workflow, for the target that script names.
const buildWasm = JSON.parse(readFileSync('package.json', 'utf8')).scripts['build:wasm'] ?? '';
const wasm = /npm run build:wasm/.test(workflow) ? [...buildWasm.matchAll(/--target (\S+)/g)].map((m) => m[1]) : [];
const have = [...matrix, ...linux, ...wasm];
const missing = want.filter((t) => !have.includes(t));
const extra = have.filter((t) => !want.includes(t));
if (missing.length || extra.length) {
  console.error(`lint-workflows: release targets out of step with napi.targets: missing ${missing.join(', ') || 'none'}; not in napi.targets ${extra.join(', ') || 'none'}`);
  process.exit(1);
}
console.log(`lint-workflows: release builds every napi target (${want.length}: ${linux.length} by build-targets.sh, ${matrix.length} on their runners, ${wasm.length} by build:wasm)`);
EOF_TARGETS
