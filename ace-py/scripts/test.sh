#!/usr/bin/env bash
# The Python package's tests, as CI runs them: build the wheel with maturin, install it into a
# fresh virtualenv, check the hand-written stubs against the built module (mypy.stubtest) and
# the package with mypy --strict, run pytest, the examples, and the benchmark once (quick).
set -euo pipefail

cd "$(dirname "$0")/.."
root="$(cd .. && pwd)"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/ace-target}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

echo "--> a fresh virtualenv with the test requirements"
python3 -m venv "$work/venv"
py="$work/venv/bin/python"
"$py" -m pip install --quiet --upgrade pip
"$py" -m pip install --quiet -r requirements-test.txt

echo "--> the wheel (maturin, release, abi3)"
"$work/venv/bin/maturin" build --release --locked --quiet -o "$work/dist"
"$py" -m pip install --quiet "$work"/dist/agent_ace-*.whl

echo "--> stubs against the built module, and mypy --strict"
(cd "$work" && "$py" -m mypy.stubtest ace._ace && "$py" -m mypy --strict -p ace)

echo "--> the ace binary (tests/test_otlp_serve.py runs ace serve --otlp)"
(cd "$root" && cargo build --locked --quiet --bin ace)
export ACE_BIN="$CARGO_TARGET_DIR/debug/ace"

echo "--> pytest"
(cd tests && "$py" -m pytest -q -p no:cacheprovider)

echo "--> examples"
for example in "$root"/examples/python/*.py; do
  echo "    $(basename "$example")"
  (cd "$work" && "$py" "$example" > "$work/example.out")
done

echo "--> benchmark (quick run; the figures in docs/python.md come from a full run)"
"$py" "$root/benches/python/compare.py" --quick
