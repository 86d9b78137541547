#!/usr/bin/env bash
# Replays the shared development traces under a few settings and prints a Markdown table of
# precision and recall, in sample (`ace eval` cross-validates; see docs/replay.md).
# Usage: scripts/replay_sweep.sh [ACE_BINARY] [TRACES_DIR]
set -euo pipefail
ace="${1:-${CARGO_TARGET_DIR:-target}/release/ace}"
traces="${2:-$(dirname "$0")/../../shared/data/traces}"
tau="$traces/tau_airline_dev.jsonl"
ww="$traces/who_and_when_algorithm_dev.jsonl"
[ -f "$tau" ] && [ -f "$ww" ] || { echo "traces not found under $traces" >&2; exit 1; }

row() {
    local label="$1"; shift
    local sets=()
    for kv in "$@"; do sets+=(--set "$kv"); done
    local a b
    a=$("$ace" replay --json "${sets[@]}" "$tau")
    b=$("$ace" replay --json "${sets[@]}" "$ww")
    python3 - "$label" "$a" "$b" <<'PY'
import json, sys
label, a, b = sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3])
f = lambda x: "-" if x is None else f"{x:.2f}"
print(f"| {label} | {f(a['precision'])} | {f(a['recall'])} | {a['flagged_tasks']} | {f(b['recall'])} | {f(b['early_hits'])} | {a['interventions_per_task']:.2f} / {b['interventions_per_task']:.2f} |")
PY
}

echo "| setting | tau precision | tau recall | tau flagged | Who&When recall | Who&When early hits | interventions per task (tau / W&W) |"
echo "|---|---|---|---|---|---|---|"
row "defaults"
row "task errors off" ACE_TASK_ERROR_SEVERITY=off
row "task errors at low (the first-error rule)" ACE_TASK_ERROR_SEVERITY=low
row "task errors at high" ACE_TASK_ERROR_SEVERITY=high
row "long tasks off" ACE_LONG_TASK_QUANTILE=0
row "long tasks at the 0.90 quantile" ACE_LONG_TASK_QUANTILE=0.9
row "long tasks at the 0.98 quantile" ACE_LONG_TASK_QUANTILE=0.98
row "loops and failure runs off" ACE_LOOP_THRESHOLD=0 ACE_FAILURE_RUN=0
row "failure runs of 2" ACE_FAILURE_RUN=2
row "errors only (issue 3's signals)" ACE_TASK_ERROR_SEVERITY=off ACE_LONG_TASK_QUANTILE=0 ACE_LOOP_THRESHOLD=0 ACE_FAILURE_RUN=0
