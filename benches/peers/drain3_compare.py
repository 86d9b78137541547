#!/usr/bin/env python3
"""Side by side: ace's default miner and Drain3 (PyPI `drain3`, default config) on Loghub CSVs.

Usage:
    python benches/peers/drain3_compare.py [--ace PATH_TO_ace] DATA_DIR_OR_CSV...

Needs `pip install drain3` and a built `ace` binary (default: target/release/ace, or
$CARGO_TARGET_DIR/release/ace). Prints grouping accuracy (GA), FGA, patterns found and lines per
second for both, per dataset and on average, and the ratios ace / Drain3. Both are scored by the
same definitions (ace's are in ace-core/src/errors/eval.rs; this file re-implements them for
Drain3's output so neither side grades itself).
"""

import argparse
import csv
import json
import os
import subprocess
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path


def find_files(paths):
    out = []
    for p in map(Path, paths):
        if p.is_file():
            out.append(p)
        else:
            out.extend(sorted(p.glob("*_structured.csv")) + sorted(p.glob("*/*_structured.csv")))
    return sorted(out)


def read(path):
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    return [r["Content"] for r in rows], [r["EventId"] for r in rows]


def score(predicted, truth):
    pred_sizes = Counter(predicted)
    true_sizes = Counter(truth)
    pred_truth = {}
    for p, t in zip(predicted, truth):
        if p not in pred_truth:
            pred_truth[p] = t
        elif pred_truth[p] != t:
            pred_truth[p] = None
    correct_groups = 0
    correct_messages = 0
    for p, t in pred_truth.items():
        if t is not None and pred_sizes[p] == true_sizes[t]:
            correct_groups += 1
            correct_messages += pred_sizes[p]
    precision = correct_groups / len(pred_sizes) if pred_sizes else 0.0
    recall = correct_groups / len(true_sizes) if true_sizes else 0.0
    fga = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "grouping_accuracy": correct_messages / len(predicted) if predicted else 0.0,
        "fga": fga,
        "patterns_found": len(pred_sizes),
        "patterns_true": len(true_sizes),
    }


def run_drain3(messages):
    from drain3 import TemplateMiner
    from drain3.template_miner_config import TemplateMinerConfig

    best = float("inf")
    predicted = []
    for _ in range(3):
        config = TemplateMinerConfig()  # the defaults, as a user gets them
        miner = TemplateMiner(config=config)
        started = time.perf_counter()
        predicted = [miner.add_log_message(m)["cluster_id"] for m in messages]
        best = min(best, time.perf_counter() - started)
    return predicted, len(messages) / best


def ace_binary(explicit):
    if explicit:
        return explicit
    target = os.environ.get("CARGO_TARGET_DIR", "target")
    return str(Path(target) / "release" / "ace")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("paths", nargs="+")
    ap.add_argument("--ace", help="path to the ace binary")
    args = ap.parse_args()
    files = find_files(args.paths)
    if not files:
        sys.exit("no *_structured.csv files found")

    out = subprocess.run(
        [ace_binary(args.ace), "patterns", "eval", "--json", *map(str, files)],
        check=True, capture_output=True, text=True,
    ).stdout
    ace = {row["dataset"]: row for row in map(json.loads, out.splitlines())}

    drain = {}
    for f in files:
        messages, truth = read(f)
        predicted, lps = run_drain3(messages)
        row = score(predicted, truth)
        row["lines_per_second"] = lps
        drain[f.name.split("_")[0]] = row
    names = list(drain)
    drain["average"] = {k: sum(drain[n][k] for n in names) / len(names) for k in ("grouping_accuracy", "fga", "lines_per_second")}
    # Pattern counts are summed on the average row, as `ace patterns eval` does.
    drain["average"].update({k: sum(drain[n][k] for n in names) for k in ("patterns_found", "patterns_true")})

    head = f"{'dataset':<12} {'ace GA':>7} {'D3 GA':>7} {'ace FGA':>8} {'D3 FGA':>7} {'found ace/D3/true':>18} {'ace lines/s':>12} {'D3 lines/s':>11} {'speed x':>8}"
    print(head)
    for n in names + ["average"]:
        a, d = ace[n], drain[n]
        found = f"{a['patterns_found']:.0f}/{d['patterns_found']:.0f}/{a['patterns_true']:.0f}"
        print(
            f"{n:<12} {a['grouping_accuracy']:>7.3f} {d['grouping_accuracy']:>7.3f} {a['fga']:>8.3f} {d['fga']:>7.3f} "
            f"{found:>18} {a['lines_per_second']:>12,.0f} {d['lines_per_second']:>11,.0f} "
            f"{a['lines_per_second'] / d['lines_per_second']:>7.1f}x"
        )
    a, d = ace["average"], drain["average"]
    print(
        f"\nratios ace / Drain3 on average: GA {a['grouping_accuracy'] / d['grouping_accuracy']:.2f}, "
        f"FGA {a['fga'] / d['fga']:.2f}, speed {a['lines_per_second'] / d['lines_per_second']:.1f}x"
    )


if __name__ == "__main__":
    main()
