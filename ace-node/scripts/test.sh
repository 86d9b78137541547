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

echo "--> the addon's size (the shipped build, Cargo.toml [profile.dist] and .cargo/config.toml: about 9.4 MB)"
addon="$(ls ace.*.node | head -n 1)"
size="$(stat -c %s "$addon")"
echo "    $addon: $((size / 1000)) kB"
# 15.1 MB with the plain release profile: a guard against debug information or the release
# profile coming back (see CONTRIBUTING.md, "Artefacts").
if (( size > 10500000 )); then
  echo "the addon is $size bytes, over the 10.5 MB guard" >&2
  exit 1
fi

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

echo "--> npm pack, installed into a fresh project: TypeScript (import) and CommonJS (require)"
npm pack --silent --pack-destination "$work" > "$work/pack.out"
tarball="$work/$(tail -n 1 "$work/pack.out")"
echo "    $(basename "$tarball"): $(stat -c %s "$tarball") bytes"
consumer="$work/consumer"
mkdir -p "$consumer"
(cd "$consumer" && npm init -y > /dev/null && npm install --no-audit --no-fund --loglevel=error "$tarball")
cat > "$consumer/quickstart.ts" <<'TS'
import { Ace, type Report } from 'agent-ace'
import { registerAce, type Family } from 'agent-ace/prometheus'

const ace = await Ace.open('memory')
const r: Report = ace.recordStage('agent-1', 'task-1', 'planning', 0.4, true, { tokens_in: 812 })
const families: Map<string, Family> = new Map()
void registerAce
void families
console.log(JSON.stringify({ signals: r.signals.length, closed: ace.closed }))
await ace.close()
TS
cat > "$consumer/tsconfig.json" <<'JSON'
{ "compilerOptions": { "strict": true, "target": "ES2022", "module": "NodeNext", "moduleResolution": "NodeNext", "types": ["node"], "typeRoots": ["PWD_TYPES"], "outDir": "out", "skipLibCheck": false }, "files": ["quickstart.ts"] }
JSON
sed -i "s#PWD_TYPES#$PWD/node_modules/@types#" "$consumer/tsconfig.json"
(cd "$consumer" && npm pkg set type=module > /dev/null && "$OLDPWD/node_modules/.bin/tsc" -p tsconfig.json && node out/quickstart.js)
cat > "$consumer/quickstart.cjs" <<'CJS'
const { Ace } = require('agent-ace')
const { registerAce } = require('agent-ace/prometheus')
Ace.open('memory').then(async (ace) => {
  const r = ace.recordStage('agent-1', 'task-1', 'planning', 0.4, true)
  if (typeof registerAce !== 'function' || !Array.isArray(r.signals)) throw new Error('agent-ace: unexpected exports')
  await ace.close()
  console.log('require: ok')
})
CJS
(cd "$consumer" && node quickstart.cjs)

echo "--> benchmark (quick run; the figures in docs/node.md come from a full run)"
"$root/benches/compare" --quick node
