"""Per-call cost of ace from Python, side by side with the libraries it replaces, in one run:

- recording a stage:        ace.record_stage    vs prometheus_client (a labelled histogram + counter)
- recording an error:       ace.record_error    vs drain3 (TemplateMiner.add_log_message)
- a call through a closed breaker (decorator): ace vs pybreaker vs circuitbreaker
- a retried call whose first attempt works (decorator): ace vs tenacity
- a call through a policy, retry over breaker, and with a fallback (decorator):
  ace.Policy vs tenacity over pybreaker, tenacity over circuitbreaker

    python benches/python/compare.py           # the full run (figures in docs/python.md)
    python benches/python/compare.py --quick   # a smoke run (CI)
"""

from __future__ import annotations

import argparse
import gc
import logging
import time

import ace


def per_call(fn, n: int, repeats: int) -> float:
    """The best of `repeats` runs of `n` calls, in ns per call."""
    best = float("inf")
    for _ in range(repeats):
        gc.collect()
        start = time.perf_counter_ns()
        fn(n)
        best = min(best, (time.perf_counter_ns() - start) / n)
    return best


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    n, repeats = (2_000, 1) if args.quick else (200_000, 5)
    logging.getLogger("drain3").setLevel(logging.ERROR)

    eng = ace.Ace(persist=False)  # the recording path alone (persistence is the writer thread's)
    rows = []

    def ace_stage(k):
        rs = eng.record_stage
        for i in range(k):
            rs("agent-1", "task-1", "planning", 0.5, True)

    from prometheus_client import CollectorRegistry, Counter, Histogram

    reg = CollectorRegistry()
    hist = Histogram("stage_seconds", "x", ["agent", "stage"], registry=reg)
    count = Counter("stages", "x", ["agent", "stage", "success"], registry=reg)

    def prom_stage(k):
        for i in range(k):
            hist.labels("agent-1", "planning").observe(0.5)
            count.labels("agent-1", "planning", "true").inc()

    rows.append(("record a stage", per_call(ace_stage, n, repeats), "prometheus_client", per_call(prom_stage, n, repeats)))

    messages = [f"connection to db-{i % 50}:{5432 + i % 7} refused after {i % 1000} ms" for i in range(1000)]
    # Made before the clock starts, as the messages are: the loops time the call, not the
    # formatting of its arguments (an f-string per call added about 100 ns to ace's side; drain3's loop has none).
    tasks = [f"task-{t}" for t in range(100)]

    def ace_error(k):
        re_ = eng.record_error
        for i in range(k):
            re_("agent-1", tasks[i % 100], "execution", "ConnectionError", messages[i % 1000])

    from drain3 import TemplateMiner

    miner = TemplateMiner()

    def drain_error(k):
        for i in range(k):
            miner.add_log_message(messages[i % 1000])

    ne = max(n // 10, 1000)
    rows.append(("record an error", per_call(ace_error, ne, repeats), "drain3", per_call(drain_error, ne, repeats)))

    guarded = eng.breaker("bench")(lambda: None)

    def ace_breaker(k):
        for i in range(k):
            guarded()

    import pybreaker

    pyb = pybreaker.CircuitBreaker(fail_max=5, reset_timeout=60)
    pyb_guarded = pyb(lambda: None)

    def pyb_call(k):
        for i in range(k):
            pyb_guarded()

    import circuitbreaker

    cb_guarded = circuitbreaker.circuit(failure_threshold=5, recovery_timeout=60)(lambda: None)

    def cb_call(k):
        for i in range(k):
            cb_guarded()

    ace_b = per_call(ace_breaker, n, repeats)
    rows.append(("closed breaker (decorator)", ace_b, "pybreaker", per_call(pyb_call, n, repeats)))
    rows.append(("closed breaker (decorator)", ace_b, "circuitbreaker", per_call(cb_call, n, repeats)))

    import tenacity

    retried = ace.Retry("bench")(lambda: None)
    ten_retried = tenacity.retry(stop=tenacity.stop_after_attempt(3), wait=tenacity.wait_exponential())(lambda: None)

    def ace_retry(k):
        for i in range(k):
            retried()

    def ten_call(k):
        for i in range(k):
            ten_retried()

    rows.append(("retry, first attempt works", per_call(ace_retry, n, repeats), "tenacity", per_call(ten_call, n, repeats)))

    # A policy, retry ( breaker ( call ) ): ace's one decorator against the peers stacked.
    composed = ace.Policy(retry=ace.Retry("bench-policy"), breaker=eng.breaker("bench-policy"))(lambda: None)
    with_fallback = ace.Policy(
        retry=ace.Retry("bench-fb"), breaker=eng.breaker("bench-fb"), fallback=lambda e: None
    )(lambda: None)
    wait = tenacity.wait_exponential()
    ten_pyb = tenacity.retry(stop=tenacity.stop_after_attempt(3), wait=wait)(
        pybreaker.CircuitBreaker(fail_max=5, reset_timeout=60)(lambda: None)
    )
    ten_cb = tenacity.retry(stop=tenacity.stop_after_attempt(3), wait=wait)(
        circuitbreaker.circuit(failure_threshold=5, recovery_timeout=60)(lambda: None)
    )
    ten_pyb_fb = tenacity.retry(
        stop=tenacity.stop_after_attempt(3), wait=wait, retry_error_callback=lambda state: None
    )(pybreaker.CircuitBreaker(fail_max=5, reset_timeout=60)(lambda: None))

    def loop(f):
        def run(k):
            for i in range(k):
                f()

        return run

    ace_policy = per_call(loop(composed), n, repeats)
    rows.append(("policy: retry+breaker", ace_policy, "tenacity+pybreaker", per_call(loop(ten_pyb), n, repeats)))
    rows.append(("policy: retry+breaker", ace_policy, "tenacity+circuitbreaker", per_call(loop(ten_cb), n, repeats)))
    rows.append((
        "policy: +fallback",
        per_call(loop(with_fallback), n, repeats),
        "tenacity+pybreaker",
        per_call(loop(ten_pyb_fb), n, repeats),
    ))

    def bare(k):
        f = lambda: None  # noqa: E731
        for i in range(k):
            f()

    print(f"{'operation':28} {'ace ns':>9} {'peer':>23} {'peer ns':>9} {'peer/ace':>9}")
    for op, ours, peer, theirs in rows:
        print(f"{op:28} {ours:9.0f} {peer:>23} {theirs:9.0f} {theirs / ours:9.1f}x")
    print(f"(a bare Python call costs {per_call(bare, n, repeats):.0f} ns here; {'quick run' if args.quick else 'best of 5'})")
    eng.close()


if __name__ == "__main__":
    main()
