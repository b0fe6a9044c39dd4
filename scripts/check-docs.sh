#!/usr/bin/env bash
# The docs check of CI: the API reference builds from the TSDoc with no
# TypeDoc warning (typedoc.json treats warnings as errors: a broken {@link},
# a type used in the public API but not exported), and the relative links and
# anchors of README.md, CONTRIBUTING.md, BENCHMARKS.md, CHANGELOG.md and
# docs/*.md resolve (scripts/check-links.mjs, offline). Exits non-zero on either.
set -uo pipefail
cd "$(dirname "$0")/.."
status=0
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
npx --no-install typedoc --out "$out" --logLevel Warn || { echo "docs: TypeDoc reported warnings or errors"; status=1; }
node scripts/check-links.mjs || status=1
exit "$status"
