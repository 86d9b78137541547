#!/usr/bin/env bash
# The Node package's tests, as CI runs them: install the pinned dev dependencies (npm ci), build
# the addon (napi, release), check the committed generated loader and types for drift, type-check
# a usage file with tsc, run `node --test`, the examples, and the benchmark once (quick).
set -euo pipefail

cd "$(dirname "$0")/.."
root="$(cd .. && pwd)"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/ace-target}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

echo "--> npm ci"
npm ci --no-audit --no-fund --loglevel=error

echo "--> the addon (napi build, release)"
npm run --silent build

echo "--> generated index.js and index.d.ts match what is committed"
if ! git diff --exit-code -- index.js index.d.ts; then
  echo "the generated loader or types changed: commit ace-node/index.js and ace-node/index.d.ts" >&2
  exit 1
fi

echo "--> tsc --noEmit over test/types.ts"
npx tsc -p tsconfig.json

echo "--> node --test"
node --test test/

echo "--> examples"
# The examples import 'agent-ace' as a user would: a node_modules that holds it and its peers.
mkdir -p "$work/node_modules"
ln -s "$PWD" "$work/node_modules/agent-ace"
for dep in node_modules/* node_modules/@*; do
  [[ -e "$work/$dep" ]] || ln -s "$PWD/$dep" "$work/$dep"
done
for example in "$root"/examples/node/*.mjs; do
  echo "    $(basename "$example")"
  cp "$example" "$work/"
  (cd "$work" && node "$(basename "$example")" > "$work/example.out")
done

echo "--> benchmark (quick run; the figures in docs/node.md come from a full run)"
node "$root/benches/node/compare.mjs" --quick
