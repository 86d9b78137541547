"""A burst of 100,000 `record_stage` calls from one Python thread into a SQLite file with
`buffer_capacity=100000`, paced to RATE calls/s (in steps of 1,000; 0: as fast as Python calls),
RUNS times: how many records each run dropped (the engine's `stats()["dropped"]`).

    python benches/python/burst.py [RATE] [RUNS]   # defaults: 0 10
"""

import sqlite3
import sys
import tempfile
import time

import ace


def main() -> None:
    rate = float(sys.argv[1]) if len(sys.argv) > 1 else 0.0
    runs = int(sys.argv[2]) if len(sys.argv) > 2 else 10
    calls = 100_000
    dropped = []
    for run in range(runs):
        with tempfile.TemporaryDirectory() as d:
            eng = ace.Ace(f"sqlite://{d}/burst.db", config={"buffer_capacity": 100_000, "spill_dir": f"{d}/spill"})
            record = eng.record_stage
            clock = time.perf_counter
            started = clock()
            for i in range(calls):
                if rate and i % 1000 == 0:
                    due = started + i / rate
                    while clock() < due:
                        pass
                record("agent-1", "task-1", "planning", 0.5, True)
            elapsed = clock() - started
            eng.flush()
            lost = eng.stats()["dropped"]
            eng.close()
            with sqlite3.connect(f"{d}/burst.db") as c:
                stored = c.execute("SELECT COUNT(*) FROM ace_performance_metrics").fetchone()[0]
            dropped.append(lost)
            print(f"run {run}: {calls / elapsed / 1e6:.2f} M calls/s, dropped {lost:,}, stored {stored:,}", flush=True)
    print(f"dropped per run: {dropped}")


if __name__ == "__main__":
    main()
