"""Threads hammering one engine, asyncio, and fork."""

import asyncio
import os
import subprocess
import sys
import textwrap
import threading

import pytest

import ace


def test_threads_hammering_one_engine_lose_nothing(eng):
    n_threads, n = 8, 5_000
    errors = []

    def work(k):
        try:
            for i in range(n):
                eng.record_stage(f"agent-{k}", f"task-{i % 50}", "planning", 0.1 + (i % 7) * 0.01, True)
                if i % 500 == 0:
                    eng.record_error(f"agent-{k}", "t", "execution", "E", f"failure {i}")
                    eng.flush()
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(n_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    eng.flush()
    s = eng.stats()
    assert s["recorded"] == n_threads * n
    assert s["dropped"] == 0
    assert s["persisted"] >= n_threads * n + s["errors"]


def _overflow_from_three_threads(url):
    """Three threads record 200,000 stages of one key each into a buffer of 2,000 with no spill
    directory, in a child process (so that a hang fails the test instead of the session);
    returns (recorded, dropped, stderr)."""
    script = textwrap.dedent(
        """
        import sys, threading, ace
        eng = ace.Ace(sys.argv[1], config={"buffer_capacity": 2000, "batch_size": 1000, "spill_dir": "off"})
        def run():
            for _ in range(200_000):
                eng.record_stage("agent-1", "task-1", "planning", 0.5, True)
        threads = [threading.Thread(target=run) for _ in range(3)]
        [t.start() for t in threads]; [t.join() for t in threads]
        eng.flush()
        s = eng.stats()
        print(s["recorded"], s["dropped"])
        eng.close()
        """
    )
    run = subprocess.run([sys.executable, "-c", script, url], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    recorded, dropped = map(int, run.stdout.split())
    return recorded, dropped, run.stderr


def test_threads_overflowing_the_buffer_never_deadlock_on_the_drop_warning(tmp_path):
    # A full buffer drops records and warns through Python's `logging`, whose write to stderr
    # lets other threads run. The warning was made under the shard lock, so a second thread,
    # holding the GIL, waited on that lock while the first waited on the GIL: 3 runs in 3 hung.
    # A SQLite file without a spill directory drops what the buffer cannot hold.
    recorded, dropped, stderr = _overflow_from_three_threads(f"sqlite://{tmp_path}/ace.db")
    assert recorded == 600_000
    assert dropped > 0, "the buffer never overflowed: the test did not reach the warning"
    assert "ace record buffer is full" in stderr


def test_threads_overflowing_the_in_memory_buffer_wait_for_the_writer_and_drop_nothing():
    # With the in-memory store a call that finds the buffer full waits (GIL held) for the
    # writer's next drain instead of dropping: the writer never needs the GIL, so nothing hangs.
    recorded, dropped, _ = _overflow_from_three_threads("memory")
    assert (recorded, dropped) == (600_000, 0)


def test_flush_releases_the_gil(eng):
    # While one thread flushes a PostgreSQL-less engine, another keeps recording.
    stop = threading.Event()
    count = [0]

    def record():
        while not stop.is_set():
            eng.record_stage("a", "t", "planning", 0.1)
            count[0] += 1

    t = threading.Thread(target=record)
    t.start()
    for _ in range(50):
        eng.flush()
    stop.set()
    t.join()
    assert count[0] > 0


def test_asyncio_tasks_share_an_engine(eng):
    async def agent(k):
        for i in range(100):
            async with eng.stage(f"a{k}", f"t{i}", "llm"):
                await asyncio.sleep(0)
        return k

    async def main():
        done = await asyncio.gather(*(agent(k) for k in range(10)))
        await eng.aflush()
        return done

    assert asyncio.run(main()) == list(range(10))
    assert eng.stats()["recorded"] == 1000


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")
def test_a_forked_child_gets_a_working_engine(tmp_path):
    db = tmp_path / "fork.db"
    e = ace.Ace(f"sqlite://{db}")
    e.record_stage("parent", "t", "planning", 0.1)
    e.flush()
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child
        code = 1
        try:
            os.close(r)
            for i in range(100):
                e.record_stage("child", f"t{i}", "planning", 0.2)
            e.flush()
            s = e.stats()
            os.write(w, f"{s['recorded']} {s['persisted'] >= 100} {s['dropped']}".encode())
            e.close()
            code = 0
        finally:
            os._exit(code)
    os.close(w)
    out = os.read(r, 100).decode()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, out
    assert out == "100 True 0"
    # The parent's engine is untouched and both wrote to the same file.
    e.record_stage("parent", "t", "planning", 0.1)
    e.flush()
    assert e.stats()["persisted"] == 2
    e.close()
    again = ace.Ace(f"sqlite://{db}")
    assert again.baseline("child", "planning")["count"] == 100
    again.close()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")
def test_forking_while_another_thread_records_never_leaves_a_child_hanging():
    """500 forks while a parent thread records (and logs errors): every child builds its own
    engine, records, flushes and exits. A child still running after 60 s is a hang (a lock
    inherited mid-operation), not slowness."""
    import signal
    import time

    e = ace.Ace()
    stop = threading.Event()

    def record():
        i = 0
        while not stop.is_set():
            e.record_stage("parent", f"t{i % 100}", "planning", 0.1 + (i % 7) * 0.01, True)
            if i % 50 == 0:
                e.record_error("parent", "t", "execution", "E", f"failure {i}")
            i += 1

    recorder = threading.Thread(target=record, daemon=True)
    recorder.start()
    hung, failed = [], []
    try:
        for _ in range(500):
            pid = os.fork()
            if pid == 0:  # the child
                code = 1
                try:
                    for i in range(20):
                        e.record_stage("child", f"t{i}", "planning", 0.2)
                    e.flush()
                    code = 0 if e.stats()["recorded"] == 20 else 2
                    e.close()
                finally:
                    os._exit(code)
            deadline = time.monotonic() + 60
            while True:
                done, status = os.waitpid(pid, os.WNOHANG)
                if done:
                    if os.waitstatus_to_exitcode(status) != 0:
                        failed.append(os.waitstatus_to_exitcode(status))
                    break
                if time.monotonic() > deadline:
                    hung.append(pid)
                    os.kill(pid, signal.SIGKILL)
                    os.waitpid(pid, 0)
                    break
                time.sleep(0.001)
    finally:
        stop.set()
        recorder.join()
        e.close()
    assert hung == [] and failed == [], (len(hung), failed[:10])
