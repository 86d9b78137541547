#!/usr/bin/env python3
"""The Python circuit breakers agent code uses today, timed per call through a closed breaker
and per rejection by an open one, for comparison with `cargo bench --bench breaker`.

Usage: python3 benches/peers/breaker_peers.py  (needs `pip install pybreaker circuitbreaker`)
"""

import time


def per_call(fn, n=200_000):
    for _ in range(10_000):
        fn()
    best = float("inf")
    for _ in range(3):
        t = time.perf_counter_ns()
        for _ in range(n):
            fn()
        best = min(best, (time.perf_counter_ns() - t) / n)
    return best


def noop():
    return 1


def baseline():
    return noop()


def main():
    rows = [("plain function call (the floor)", per_call(baseline))]
    try:
        import pybreaker

        b = pybreaker.CircuitBreaker(fail_max=5, reset_timeout=60)
        rows.append(("pybreaker closed call", per_call(lambda: b.call(noop))))
        o = pybreaker.CircuitBreaker(fail_max=5, reset_timeout=600)
        o.open()

        def rejected():
            try:
                o.call(noop)
            except pybreaker.CircuitBreakerError:
                pass

        rows.append(("pybreaker rejection", per_call(rejected, 50_000)))
    except ImportError:
        print("pybreaker not installed")
    try:
        import circuitbreaker

        @circuitbreaker.circuit(failure_threshold=5, recovery_timeout=60)
        def guarded():
            return 1

        rows.append(("circuitbreaker closed call", per_call(guarded)))
    except ImportError:
        print("circuitbreaker not installed")
    for name, ns in rows:
        print(f"{name:<34} {ns:8.0f} ns")


if __name__ == "__main__":
    main()
