#!/usr/bin/env bash
# The soak test (not part of CI): a fleet of 10,000 agents at 10 stage events per agent per second
# for 30 minutes, into a real SQLite file, printing CPU and resident memory every minute and, at
# the end, whether memory stayed flat (the last resident size within 10% of the one after the
# warm-up). Exits non-zero when it did not, or when a record was dropped.
#
#   scripts/soak.sh                   30 minutes, 10,000 agents
#   SOAK_SECONDS=600 AGENTS=2000 scripts/soak.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/ace-target}"
seconds="${SOAK_SECONDS:-1800}"
agents="${AGENTS:-10000}"
log="$(mktemp -t ace-soak.XXXXXX)"
cargo bench --locked --bench scale -- --agents "$agents" --seconds "$seconds" --warmup 60 --every 60 | tee "$log"
grep -q "memory flat        yes" "$log" || { echo "soak: memory grew" >&2; exit 1; }
grep -q " 0 dropped" "$log" || { echo "soak: records were dropped" >&2; exit 1; }
echo "soak: passed ($log)"
