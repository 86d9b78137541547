"""Interpreter exit with ace's threads still busy in Python: the process exits cleanly (rc 0),
never aborts (it used to end with rc 134 or a segfault when a CPU-bound judge outlived
ACE_JUDGE_TIMEOUT and the engine was closed)."""

import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent(
    """
    import os
    os.environ["ACE_JUDGE_TIMEOUT"] = "0.05"
    import ace

    calls = []

    def judge(proposal):
        calls.append(proposal.strategy)
        x = 0
        for i in range(30_000_000):  # CPU-bound: holds the GIL between switches, well past the timeout
            x += i
        return None

    e = ace.Ace(judge=judge, from_env=True)  # reads the ACE_JUDGE_TIMEOUT set above
    for p in range(3):
        e.record_error("a", "t", "execution", "ConnectionError", f"connection to db-{p}:5432 refused")
    timeouts = e.metrics_text()
    e.close()
    print(len(calls), 'verdict="timeout"' in timeouts, flush=True)
    """
)


def test_exit_with_a_cpu_bound_judge_past_its_timeout_is_clean():
    for _ in range(4):
        run = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=300)
        assert run.returncode == 0, (run.returncode, run.stderr[-2000:])
        judged, timed_out = run.stdout.split()
        assert int(judged) >= 1 and timed_out == "True", run.stdout
        assert "Fatal Python error" not in run.stderr, run.stderr[-2000:]
