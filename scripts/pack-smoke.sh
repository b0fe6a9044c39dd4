#!/usr/bin/env bash
# Pack smoke test: packs sot-purify and its linux-x64-gnu binary package the
# way `npm publish` would, installs both tarballs into an empty project and
# uses the library there with no Rust toolchain reachable.
#
# Prerequisite: `npm run build` (release addon in native/, TypeScript in dist/)
# on linux x64 glibc. Run it as `npm run test:pack` or `bash scripts/pack-smoke.sh`
# from any directory. Both tarballs are installed --prefer-offline: the runtime
# dependencies come from the npm cache `npm ci` filled, or from the registry
# where that cache holds only the abbreviated metadata (npm install of a
# tarball asks for the full one).
#
# Why the committed package.json has no "optionalDependencies":
#   The napi-rs convention is that `napi prepublish` (our prepublishOnly) adds
#   "optionalDependencies": { "sot-purify-<platform>": "<version>", ... } to the
#   root package.json at publish time only. We checked the alternative of
#   committing them: while the platform packages are not on the registry,
#   `npm install` drops them from package-lock.json (404 on an optional
#   dependency is not fatal), after which `npm ci` refuses to run on any fresh
#   machine ("package.json and package-lock.json ... are not in sync. Missing:
#   sot-purify-linux-x64-gnu@ from lock file", EUSAGE), with the old lock file
#   and with a regenerated one alike. Keeping them out of the committed file
#   keeps `npm ci` working; this test stands in for them by installing the
#   platform tarball next to the root one, which is exactly what npm does for a
#   consumer on linux-x64-gnu once both are published.
#
# The .node binary copied into npm/linux-x64-gnu/ is git-ignored
# (/npm/*/*.node), so leaving it would be harmless; still, this script puts the
# directory back as it found it: it removes the copy if there was none before,
# and restores a different pre-existing binary (e.g. a CI artifact placed there
# by `napi artifacts`) if there was one.
#
# CommonJS: the "require" condition leads to dist/index.cjs, which loads the
# ES module through require(esm) (Node >= 20.19), so require() and import()
# give the same module instance; the test asserts both and that they agree.
#
# Licence and source maps: every platform package carries the root LICENSE
# (npm includes it whatever "files" says), and every source map in the root
# tarball either points at shipped files or inlines its sources.

set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

PLATFORM=linux-x64-gnu
BINARY="sot.${PLATFORM}.node"
PLATFORM_DIR="npm/${PLATFORM}"
PLATFORM_PKG="sot-purify-${PLATFORM}"

fail() {
  echo "pack smoke: FAIL: $*" >&2
  exit 1
}
trap 'echo "pack smoke: FAIL: command failed (line $LINENO): $BASH_COMMAND" >&2' ERR

# --- preconditions ----------------------------------------------------------
[[ "$(uname -s)/$(uname -m)" == Linux/x86_64 ]] || fail "this test packs the ${PLATFORM} binary and must run on Linux x86_64 (got $(uname -s)/$(uname -m))"
[[ -f "native/${BINARY}" ]] || fail "native/${BINARY} is missing: run 'npm run build' first"
for f in dist/index.js dist/index.d.ts native/index.cjs native/index.d.cts; do
  [[ -f "$f" ]] || fail "$f is missing: run 'npm run build' first"
done
[[ -f "${PLATFORM_DIR}/package.json" ]] || fail "${PLATFORM_DIR}/package.json is missing (run 'npx napi create-npm-dirs')"
NODE="$(command -v node)" || fail "node not found on PATH"
NPM_CLI="$(readlink -f "$(command -v npm)")" || fail "npm not found on PATH"

root_version="$(node -p 'require("./package.json").version')"
platform_version="$(node -p "require('./${PLATFORM_DIR}/package.json').version")"
[[ "$root_version" == "$platform_version" ]] ||
  fail "${PLATFORM_DIR}/package.json has version ${platform_version}, root has ${root_version} (run 'npx napi version')"

# Stale builds are the usual cause of a confusing failure here: warn, don't fail.
if [[ -n "$(find src -newer dist/index.js -type f -print -quit 2>/dev/null)" ]]; then
  echo "pack smoke: warning: src/ has files newer than dist/index.js; run 'npm run build:ts'" >&2
fi
if [[ -n "$(find crates -newer "native/${BINARY}" -type f \( -name '*.rs' -o -name Cargo.toml \) -print -quit 2>/dev/null)" ]]; then
  echo "pack smoke: warning: crates/ has sources newer than native/${BINARY}; run 'npm run build:native'" >&2
fi

# --- temp dirs and cleanup ----------------------------------------------------
TMP="$(mktemp -d "${TMPDIR:-/tmp}/sot-pack-smoke.XXXXXX")"
copied_binary=0
backed_up_binary=0
cleanup() {
  local rc=$?
  if [[ $backed_up_binary == 1 ]]; then
    cp -f "$TMP/backup.node" "$ROOT/${PLATFORM_DIR}/${BINARY}" || true
  elif [[ $copied_binary == 1 ]]; then
    rm -f "$ROOT/${PLATFORM_DIR}/${BINARY}"
  fi
  rm -rf "$TMP"
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- (a) binary into the platform package -----------------------------------
# Snapshot it first: a rebuild running meanwhile must not change it under us.
cp "native/${BINARY}" "$TMP/${BINARY}"
SNAPSHOT="$TMP/${BINARY}"
target="${PLATFORM_DIR}/${BINARY}"
if [[ -e "$target" ]] && ! cmp -s "$SNAPSHOT" "$target"; then
  cp -f "$target" "$TMP/backup.node"
  backed_up_binary=1
  echo "pack smoke: note: ${target} differs from native/${BINARY}; testing the latter, the original is restored at exit" >&2
elif [[ ! -e "$target" ]]; then
  copied_binary=1
fi
cp -f "$SNAPSHOT" "$target"

# --- (b) npm pack, root and platform package ----------------------------------
mkdir -p "$TMP/pack-root" "$TMP/pack-platform"
npm pack --pack-destination "$TMP/pack-root" >"$TMP/pack-root.log" 2>&1 ||
  { cat "$TMP/pack-root.log" >&2; fail "npm pack of the root package failed"; }
npm pack "./${PLATFORM_DIR}" --pack-destination "$TMP/pack-platform" >"$TMP/pack-platform.log" 2>&1 ||
  { cat "$TMP/pack-platform.log" >&2; fail "npm pack of ${PLATFORM_DIR} failed"; }
shopt -s nullglob
root_tgzs=("$TMP"/pack-root/*.tgz)
platform_tgzs=("$TMP"/pack-platform/*.tgz)
shopt -u nullglob
[[ ${#root_tgzs[@]} == 1 ]] || fail "expected one root tarball, found ${#root_tgzs[@]}"
[[ ${#platform_tgzs[@]} == 1 ]] || fail "expected one platform tarball, found ${#platform_tgzs[@]}"
ROOT_TGZ="${root_tgzs[0]}"
PLATFORM_TGZ="${platform_tgzs[0]}"

# --- (c) tarball contents -------------------------------------------------------
tar -tzf "$ROOT_TGZ" | sed 's|^package/||' | sort >"$TMP/root-files.txt"
tar -tzf "$PLATFORM_TGZ" | sed 's|^package/||' | sort >"$TMP/platform-files.txt"

if grep -E '\.node$' "$TMP/root-files.txt" >&2; then
  fail "the root tarball contains a .node binary (listed above); binaries belong in ${PLATFORM_PKG}"
fi
if grep -E '^(src|crates|__test__|target|npm|node_modules|bench|\.ci)/' "$TMP/root-files.txt" >&2; then
  fail "the root tarball contains source/build/test paths (listed above)"
fi
for f in package.json dist/index.js dist/index.d.ts dist/index.cjs dist/index.d.cts native/index.cjs native/index.d.cts; do
  grep -qxF "$f" "$TMP/root-files.txt" || fail "the root tarball lacks $f"
done
for f in package.json "$BINARY" LICENSE; do
  grep -qxF "$f" "$TMP/platform-files.txt" || fail "the ${PLATFORM_PKG} tarball lacks $f"
done
for dir in npm/*/; do
  cmp -s LICENSE "${dir}LICENSE" || fail "${dir}LICENSE is missing or differs from ./LICENSE (copy it there)"
done
mkdir -p "$TMP/unpacked"
tar -xzf "$ROOT_TGZ" -C "$TMP/unpacked"
node - "$TMP/unpacked/package" <<'EOF_MAPS' || fail "a source map in the root tarball points at sources it does not ship (above)"
const { readFileSync, existsSync, readdirSync } = require('node:fs');
const { dirname, join, resolve } = require('node:path');
const root = process.argv[2];
let maps = 0;
let bad = 0;
for (const f of readdirSync(root, { recursive: true })) {
  if (!f.endsWith('.map')) continue;
  maps++;
  const map = JSON.parse(readFileSync(join(root, f), 'utf8'));
  map.sources.forEach((src, i) => {
    const shipped = existsSync(resolve(dirname(join(root, f)), map.sourceRoot ?? '', src));
    if (!shipped && typeof map.sourcesContent?.[i] !== 'string') { console.error(`${f}: ${src}`); bad++; }
  });
}
console.log(`maps ok: ${maps} source maps, each source shipped or inlined`);
process.exit(bad ? 1 : 0);
EOF_MAPS

size_of() { stat -c %s "$1"; }
echo "pack smoke: root tarball $(basename "$ROOT_TGZ"): $(size_of "$ROOT_TGZ") bytes, $(wc -l <"$TMP/root-files.txt") files"
sed 's/^/  /' "$TMP/root-files.txt"
echo "pack smoke: platform tarball $(basename "$PLATFORM_TGZ"): $(size_of "$PLATFORM_TGZ") bytes, $(wc -l <"$TMP/platform-files.txt") files"
sed 's/^/  /' "$TMP/platform-files.txt"

# --- a sandbox environment: no Rust, no network, fresh HOME ---------------------
# env -i drops CARGO_HOME, RUSTUP_HOME, npm_config_* etc. PATH holds only node and
# npm (symlinked from wherever they live) plus /usr/bin:/bin; if a Rust toolchain
# is installed in /usr/bin, those two are dropped too.
mkdir -p "$TMP/bin" "$TMP/home"
ln -s "$NODE" "$TMP/bin/node"
ln -s "$NPM_CLI" "$TMP/bin/npm"
SANDBOX_PATH="$TMP/bin:/usr/bin:/bin"
no_rust() { env -i PATH="$1" HOME="$TMP/home" sh -c '! command -v cargo >/dev/null 2>&1 && ! command -v rustc >/dev/null 2>&1'; }
if ! no_rust "$SANDBOX_PATH"; then
  SANDBOX_PATH="$TMP/bin"
fi
no_rust "$SANDBOX_PATH" || fail "cargo/rustc still reachable with PATH=$SANDBOX_PATH"
# The runtime dependencies (commander, hyparquet) come from the npm cache that
# `npm ci` filled where it can (see the top).
NPM_CACHE="$(npm config get cache)"
sandbox() {
  env -i PATH="$SANDBOX_PATH" HOME="$TMP/home" npm_config_cache="$NPM_CACHE" NAPI_RS_ENFORCE_VERSION_CHECK=1 "$@"
}

# --- (d) install both tarballs into an empty project ----------------------------
APP="$TMP/app"
new_project() { mkdir -p "$1" && printf '{\n  "name": "sot-pack-smoke-app",\n  "version": "1.0.0",\n  "private": true\n}\n' >"$1/package.json"; }
new_project "$APP"
(cd "$APP" && sandbox npm install --prefer-offline --no-audit --no-fund --no-update-notifier "$ROOT_TGZ" "$PLATFORM_TGZ") \
  >"$TMP/install.log" 2>&1 || { cat "$TMP/install.log" >&2; fail "npm install of the two tarballs failed"; }
if grep -qi 'EBADENGINE\|EBADPLATFORM' "$TMP/install.log"; then
  cat "$TMP/install.log" >&2
  fail "npm install warned about engines/platform"
fi
[[ -f "$APP/node_modules/sot-purify/package.json" ]] || fail "sot-purify not installed"
[[ -f "$APP/node_modules/${PLATFORM_PKG}/${BINARY}" ]] || fail "${PLATFORM_PKG}/${BINARY} not installed"
cmp -s "$SNAPSHOT" "$APP/node_modules/${PLATFORM_PKG}/${BINARY}" || fail "the installed binary differs from native/${BINARY}"
if find "$APP/node_modules/sot-purify" -name '*.node' | grep . >&2; then
  fail "a .node binary was installed inside sot-purify itself (listed above)"
fi

# --- (e) use it: ESM, CommonJS, TypeScript --------------------------------------
cat >"$APP/esm.mjs" <<'EOF'
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { realpathSync } from 'node:fs';
import { sinkhorn, sinkhornDivergence, costMatrix, threadCount, ShapeError, SotError } from 'sot-purify';

const require = createRequire(import.meta.url);
const platformPkg = process.argv[2];

// The addon loads on the first native call, and from the platform package (not a stray build).
assert.deepEqual(Object.keys(require.cache).filter((k) => k.endsWith('.node')), [], 'the addon loaded at import');
assert.ok(threadCount() >= 1);
const addons = Object.keys(require.cache).filter((k) => k.endsWith('.node'));
const expected = realpathSync(require.resolve(platformPkg));
assert.deepEqual(addons.map((p) => realpathSync(p)), [expected], `loaded addons: ${addons.join(', ')}`);

const x = [[0, 0, 1], [1, 0, 0], [0.5, 0.5, 0], [0.2, 0.9, 0.1]];
const y = [[0, 1, 0], [1, 1, 1], [0.3, 0.2, 0.8], [0.9, 0.1, 0.4], [0, 0, 0.5]];

// costMatrix agrees with a direct computation.
const c = await costMatrix(x, y, { cost: 'sqeuclidean' });
assert.equal(c.rows, 4);
assert.equal(c.cols, 5);
assert.ok(c.data instanceof Float32Array && c.data.length === 20);
for (let i = 0; i < 4; i++)
  for (let j = 0; j < 5; j++) {
    const d = x[i].reduce((s, v, k) => s + (v - y[j][k]) ** 2, 0);
    assert.ok(Math.abs(c.data[i * 5 + j] - d) < 1e-5, `cost[${i}][${j}] = ${c.data[i * 5 + j]}, expected ${d}`);
  }

// A small Sinkhorn solve converges, with a finite value and centred gradients.
const r = await sinkhorn({ x, y, cost: 'sqeuclidean' }, { eps: 0.1, tol: 1e-9, maxIter: 5000 });
assert.equal(r.converged, true, `not converged after ${r.iterations} iterations`);
assert.ok(Number.isFinite(r.value) && r.value > 0, `value ${r.value}`);
assert.ok(r.marginalError <= 1e-9, `marginal error ${r.marginalError}`);
assert.equal(r.gradA.length, 4);
assert.equal(r.gradB.length, 5);
const sumA = r.gradA.reduce((s, v) => s + v, 0);
assert.ok(r.gradA.every(Number.isFinite) && Math.abs(sumA) < 1e-9, `sum(gradA) = ${sumA}`);

// The same problem through its cost matrix gives the same value.
const rc = await sinkhorn({ cost: c }, { eps: 0.1, tol: 1e-9, maxIter: 5000 });
assert.ok(Math.abs(rc.value - r.value) < 1e-5, `cost-matrix value ${rc.value} vs points value ${r.value}`);

// Divergence of a set with itself is ~0.
const d = await sinkhornDivergence({ x, y: x, cost: 'sqeuclidean' }, { eps: 0.1, tol: 1e-9, maxIter: 5000 });
assert.ok(Math.abs(d.value) < 1e-6, `S(x, x) = ${d.value}`);

// Shape errors reject with ShapeError / ERR_SHAPE, from the native core...
const isShape = (e) => e instanceof ShapeError && e instanceof SotError && e.code === 'ERR_SHAPE';
await assert.rejects(costMatrix(x, [[1, 2]]), isShape); // dimensions 3 vs 2
await assert.rejects(sinkhorn({ x, y, a: [0.5, 0.5] }), isShape); // 2 weights for 4 points
// ...and from the TypeScript layer (ragged rows).
await assert.rejects(sinkhorn({ x: [[1, 2], [3]], y }), isShape);

console.log(`esm ok: value=${r.value.toFixed(6)} iterations=${r.iterations} threads=${threadCount()}`);
EOF

cat >"$APP/cjs.cjs" <<'EOF'
const assert = require('node:assert/strict');
const viaRequire = require('sot-purify');
import('sot-purify').then(async (viaImport) => {
  assert.equal(viaRequire.ShapeError, viaImport.ShapeError, 'require() and import() must give one module instance');
  const r = await viaRequire.sinkhorn({ cost: [[0, 1], [1, 0]] }, { eps: 0.1 });
  assert.ok(r.converged && Number.isFinite(r.value));
  console.log('cjs ok: require() and import() agree');
});
EOF

cat >"$APP/types.mts" <<'EOF'
import { sinkhorn, ShapeError, type SinkhornResult, type ErrorCode } from 'sot-purify';
const r: SinkhornResult = await sinkhorn({ cost: [[0, 1], [1, 0]] }, { eps: 0.1 });
const g: Float64Array = r.gradA;
const code: ErrorCode = new ShapeError('ERR_SHAPE', 'x').code;
// @ts-expect-error unknown cost kind is a type error
await sinkhorn({ x: [[1]], y: [[1]], cost: 'manhattan' });
export { g, code };
EOF
cat >"$APP/tsconfig.json" <<EOF
{
  "compilerOptions": {
    "target": "ES2022", "module": "NodeNext", "moduleResolution": "NodeNext",
    "strict": true, "noEmit": true, "skipLibCheck": false,
    "typeRoots": ["$ROOT/node_modules/@types"], "types": ["node"]
  },
  "files": ["types.mts"]
}
EOF

(cd "$APP" && sandbox timeout 120 node esm.mjs "$PLATFORM_PKG" 2>"$TMP/esm.err") ||
  { cat "$TMP/esm.err" >&2; fail "the ESM consumer failed (see above)"; }
if [[ -s "$TMP/esm.err" ]]; then
  # A library should not write to stderr in normal use (stray debug output?).
  echo "pack smoke: warning: the library wrote to stderr during the ESM run:" >&2
  head -n 20 "$TMP/esm.err" | sed 's/^/  | /' >&2
fi
(cd "$APP" && sandbox timeout 120 node cjs.cjs) || fail "the CommonJS consumer failed (see above)"

# The `sot` command is installed and runs.
(cd "$APP" && sandbox timeout 60 ./node_modules/.bin/sot --help >"$TMP/cli.log" 2>&1) || { cat "$TMP/cli.log" >&2; fail "'sot --help' failed"; }
grep -q 'sot purify' "$TMP/cli.log" || { cat "$TMP/cli.log" >&2; fail "'sot --help' does not show the purify examples"; }
(cd "$APP" && sandbox timeout 60 ./node_modules/.bin/sot sets >"$TMP/sets.log" 2>&1) || { cat "$TMP/sets.log" >&2; fail "'sot sets' failed"; }
grep -q '^advbench ' "$TMP/sets.log" || fail "'sot sets' does not list advbench"
echo "cli ok: sot --help, sot sets"
if [[ -x "$ROOT/node_modules/.bin/tsc" ]]; then
  (cd "$APP" && "$ROOT/node_modules/.bin/tsc" -p tsconfig.json) || fail "the TypeScript consumer does not type-check (see above)"
  echo "types ok: dist/*.d.ts and native/index.d.cts resolve from the installed package"
else
  echo "pack smoke: warning: $ROOT/node_modules/.bin/tsc not found, TypeScript consumer check skipped" >&2
fi

# Without the platform package the loader must fail loudly, not silently.
BARE="$TMP/bare"
new_project "$BARE"
(cd "$BARE" && sandbox npm install --prefer-offline --no-audit --no-fund --no-update-notifier "$ROOT_TGZ") \
  >"$TMP/install-bare.log" 2>&1 || { cat "$TMP/install-bare.log" >&2; fail "npm install of the root tarball alone failed"; }
(cd "$BARE" && sandbox timeout 60 ./node_modules/.bin/sot --help >"$TMP/bare-help.log" 2>&1) ||
  { cat "$TMP/bare-help.log" >&2; fail "'sot --help' failed without ${PLATFORM_PKG}: it must not need the addon"; }
if (cd "$BARE" && sandbox timeout 60 node -e "require('sot-purify').threadCount()" >"$TMP/bare.log" 2>&1); then
  fail "sot-purify loaded its addon without its platform package installed: the addon was found somewhere it should not be"
fi
grep -q "could not load its native addon on linux x64 (glibc)" "$TMP/bare.log" && grep -q "${PLATFORM_PKG}@" "$TMP/bare.log" ||
  { cat "$TMP/bare.log" >&2; fail "without ${PLATFORM_PKG}, the first native call failed with an unclear error (above)"; }
echo "bare ok: without ${PLATFORM_PKG}, sot --help works and the first native call says: $(grep -m1 -o 'could not load.*' "$TMP/bare.log")"

trap - ERR
echo "pack smoke: ok"
