#!/usr/bin/env python3
"""Judges the tool-call signals (tool_repeat, tool_alternation, tool_retry_failure) on labelled
traces: in-sample and 5-fold cross-validated precision and recall of the flagged tasks, beside
the first-error rule and the engine without tool signals.

Folds are by task: every trial of a task (the label's task id without a trailing `-t<digits>`)
falls in one fold. For each fold, the threshold of a signal (or "off") is chosen on the other
four folds, by F1 of the flagged tasks, then scored on the fold; the figures are the averages
over the five folds. In-sample figures choose the threshold on all the tasks and score it there.

Every figure comes from `ace replay FILE --json --tasks --set ...` (the engine as shipped, with
its defaults except the settings named).

Usage: scripts/tool_signals_cv.py [--ace PATH] [TRACE ...]
       (default trace: ../shared/data/traces/tau_airline_dev.jsonl; default ace: `ace` built in
       $CARGO_TARGET_DIR/debug, else on PATH)
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

FOLDS = 5
OFF = {"ACE_TOOL_REPEAT": "0", "ACE_TOOL_ALTERNATION": "0", "ACE_TOOL_RETRY_FAILURES": "0"}
SIGNALS = {
    "tool_repeat": ("ACE_TOOL_REPEAT", [2, 3, 4, 5, 6]),
    "tool_alternation": ("ACE_TOOL_ALTERNATION", [4, 6, 8]),
    "tool_retry_failure": ("ACE_TOOL_RETRY_FAILURES", [2, 3, 4]),
}
TRIAL = re.compile(r"^(.*)-t\d+$")


def find_ace(given: str | None) -> str:
    if given:
        return given
    target = os.environ.get("CARGO_TARGET_DIR", str(Path(__file__).resolve().parents[1] / "target"))
    built = Path(target) / "debug" / "ace"
    if built.exists():
        return str(built)
    found = shutil.which("ace")
    if not found:
        sys.exit("no ace binary: build it (cargo build --bin ace) or pass --ace PATH")
    return found


def replay(ace: str, trace: str, settings: dict[str, str]) -> dict[str, dict]:
    cmd = [ace, "replay", trace, "--json", "--tasks"]
    for k, v in settings.items():
        cmd += ["--set", f"{k}={v}"]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.splitlines()
    return {t["task"]: t for t in map(json.loads, out[1:])}


def folds_of(tasks: list[str]) -> dict[str, int]:
    groups = sorted({(TRIAL.match(t) or [None, t])[1] for t in tasks}, key=natural)
    fold = {g: i % FOLDS for i, g in enumerate(groups)}
    return {t: fold[(TRIAL.match(t) or [None, t])[1]] for t in tasks}


def natural(s: str) -> list:
    return [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", s)]


def score(flags: dict[str, bool], failed: dict[str, bool], tasks) -> tuple[float | None, float | None, float | None]:
    tasks = list(tasks)
    flagged = [t for t in tasks if flags[t]]
    hits = sum(failed[t] for t in flagged)
    failures = sum(failed[t] for t in tasks)
    p = hits / len(flagged) if flagged else None
    r = hits / failures if failures else None
    f1 = 2 * p * r / (p + r) if p and r else 0.0
    return p, r, f1


def mean(xs) -> float | None:
    xs = [x for x in xs if x is not None]
    return sum(xs) / len(xs) if xs else None


def fmt(x: float | None) -> str:
    return "  -  " if x is None else f"{x:.3f}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ace")
    ap.add_argument("traces", nargs="*")
    args = ap.parse_args()
    ace = find_ace(args.ace)
    here = Path(__file__).resolve().parents[1]
    traces = args.traces or [str(here.parent / "shared" / "data" / "traces" / "tau_airline_dev.jsonl")]
    for trace in traces:
        judge(ace, trace)
    return 0


def judge(ace: str, trace: str) -> None:
    base = replay(ace, trace, OFF)
    tasks = sorted(base, key=natural)
    failed = {t: base[t]["failed"] for t in tasks}
    fold = folds_of(tasks)
    print(f"{trace}: {len(tasks)} tasks, {sum(failed.values())} failed, {FOLDS} folds by task")

    # Flags per candidate: the engine without tool signals, the first-error rule, and each
    # signal at each threshold on top of the engine (and alone: flagged when it fires).
    first_error = {t: base[t]["first_error"] is not None for t in tasks}
    engine = {t: base[t]["flagged"] for t in tasks}
    rows = [("first error (baseline)", first_error, first_error), ("ace, no tool signals", engine, engine)]
    for kind, (key, thresholds) in SIGNALS.items():
        cands = {"off": (engine, {t: False for t in tasks})}
        for th in thresholds:
            r = replay(ace, trace, {**OFF, key: str(th)})
            cands[str(th)] = ({t: r[t]["flagged"] for t in tasks}, {t: r[t]["signals"].get(kind, 0) > 0 for t in tasks})
        for what, idx in ((f"ace + {kind}", 0), (f"{kind} alone", 1)):
            rows.append((what, {k: v[idx] for k, v in cands.items()}, None))

    print(f"{'':32} {'in-sample':>28}   {'5-fold cross-validated':>28}")
    print(f"{'rule':32} {'P':>7} {'R':>7} {'F1':>7} {'k':>4}   {'P':>7} {'R':>7} {'F1':>7}  k per fold")
    for name, cands, fixed in rows:
        if fixed is not None:
            cands = {"-": fixed}
        best = max(cands, key=lambda k: (score(cands[k], failed, tasks)[2], k == "off"))
        p, r, f1 = score(cands[best], failed, tasks)
        cv, chosen = [], []
        for f in range(FOLDS):
            train = [t for t in tasks if fold[t] != f]
            test = [t for t in tasks if fold[t] == f]
            k = max(cands, key=lambda k: (score(cands[k], failed, train)[2], k == "off"))
            chosen.append(k)
            cv.append(score(cands[k], failed, test))
        cp, cr, cf = (mean(x[i] for x in cv) for i in range(3))
        print(
            f"{name:32} {fmt(p):>7} {fmt(r):>7} {fmt(f1):>7} {best:>4}   {fmt(cp):>7} {fmt(cr):>7} {fmt(cf):>7}  {' '.join(chosen)}"
        )
    print()
    print("P, R: precision and recall of the flagged tasks (a fold without a flag has no precision and")
    print("is left out of the average); k: the threshold chosen (off: the signal is not used).")


if __name__ == "__main__":
    sys.exit(main())
