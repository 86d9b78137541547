"""One hot (agent, stage) recorded as fast as Python can call, on a SQLite file: how many records
the engine took, stored (directly or by way of the spill files) and dropped.

    python benches/python/hot_key.py [CALLS_PER_THREAD] [THREADS]   # defaults: 1000000 1
"""

import sys
import tempfile
import threading
import time

import ace


def main() -> None:
    calls = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    threads = int(sys.argv[2]) if len(sys.argv) > 2 else 1
    with tempfile.TemporaryDirectory() as d:
        eng = ace.Ace(f"sqlite://{d}/hot.db", config={"spill_dir": f"{d}/spill"})

        def run() -> None:
            record = eng.record_stage
            for _ in range(calls):
                record("agent-1", "task-1", "planning", 0.5, True)

        started = time.perf_counter()
        workers = [threading.Thread(target=run) for _ in range(threads)]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        elapsed = time.perf_counter() - started
        eng.flush()
        stats = eng.stats()
        spilled = next(
            (line.rsplit(" ", 1)[1] for line in eng.metrics_text().splitlines() if line.startswith("ace_records_spilled_total")),
            "0",
        )
        total = calls * threads
        print(
            f"{threads} x {calls:,} calls in {elapsed:.2f} s ({total / elapsed / 1e6:.2f} M/s): "
            f"stored {stats['persisted']:,} ({spilled} by way of the spill files), dropped {stats['dropped']:,} "
            f"({100 * stats['dropped'] / total:.1f}%)"
        )
        eng.close()


if __name__ == "__main__":
    main()
