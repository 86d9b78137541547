"""Tool calls and the current task, through the built extension."""

import asyncio
import json
import pathlib
import threading

import pytest

import ace

FIXTURE = pathlib.Path(__file__).resolve().parents[2] / "tests" / "fixtures" / "tool_args_digests.json"


def _fnv1a(data: bytes) -> str:
    h = 0xCBF29CE484222325
    for b in data:
        h = ((h ^ b) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return f"{h:016x}"


def test_digests_match_the_shared_fixture_that_node_checks_too():
    cases = json.loads(FIXTURE.read_text(encoding="utf-8"))["cases"]
    assert len(cases) >= 8
    for case in cases:
        assert ace.args_digest(case["args"]) == case["digest"], case
        # JSON text in any formatting digests the same.
        assert ace.args_digest_json(json.dumps(case["args"], indent=2)) == case["digest"], case


def test_the_digest_is_fnv1a_of_the_canonical_json():
    args = {"z": [1, 2, {"b": None, "a": True}], "a": "é"}
    canonical = json.dumps(args, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    assert ace.args_digest(args) == _fnv1a(canonical)
    assert ace.args_digest({"n": 1.0}) == ace.args_digest({"n": 1}), "1.0 and 1 are one argument"
    assert ace.args_digest({"d": 2}) != ace.args_digest({"d": 3})


def test_record_tool_repeats_and_retries_are_signals(eng):
    kinds = []
    for _ in range(3):
        r = eng.record_tool("a", "t", "search", 0.1, True, args={"q": "paris"})
        kinds += [s.kind for s in r.signals]
    assert kinds == ["tool_repeat"]
    sig = eng.record_tool("a", "t2", "book", 0.1, False, args={"pay": 1}, stage="execution")
    assert list(sig.signals) == []
    again = eng.record_tool("a", "t2", "book", 0.2, False, args_digest="0123456789abcdef", stage="execution")
    assert [s.kind for s in again.signals] == ["tool_retry_failure"]
    ev = again.signals[0].evidence
    assert ev["tool"] == "book" and ev["args_digest"] == "0123456789abcdef" and ev["count"] == 2
    assert again.intervention is not None and again.intervention.strategy == "reflect"


def test_record_tool_refuses_bad_input_with_typed_errors(eng):
    with pytest.raises(ace.InvalidInputError):
        eng.record_tool("a", "t", "", 0.1, True)
    with pytest.raises(ace.InvalidInputError):
        eng.record_tool("a", "t", "x\x00y", 0.1, True)
    with pytest.raises(ace.InvalidInputError):
        eng.record_tool("a", "t", "x", 0.1, True, args={"a": 1}, args_digest="abc")
    with pytest.raises(ace.InvalidInputError):
        eng.record_tool("a", "t", "x", 0.1, True, args={"a": float("nan")})
    with pytest.raises(ace.InvalidInputError):
        eng.record_tool("a", "t", "x", 0.1, True, args_digest="not a digest")
    with pytest.raises(ace.InvalidInputError):
        eng.record_tool(None, None, "x", 0.1, True)  # no current task
    assert eng.stats()["recorded"] == 0


def test_values_json_cannot_hold_are_written_as_text(eng):
    class Thing:
        def __str__(self) -> str:
            return "thing-1"

    assert ace.args_digest({"x": Thing()}) == ace.args_digest({"x": "thing-1"})
    eng.record_tool("a", "t", "x", 0.1, True, args={"x": Thing(), "when": object})


def test_the_current_task_is_used_by_record_tool_and_stages(eng):
    assert ace.current_task() is None
    with eng.task("agent-1", "task-1") as scope:
        assert ace.current_task() == ("agent-1", "task-1") == (scope.agent, scope.task)
        for _ in range(3):
            r = eng.record_tool(None, None, "lookup", 0.1, True, args=[1, 2])
        assert [s.task for s in r.signals] == ["task-1"]
        assert r.signals[0].agent == "agent-1"
        with eng.stage(None, None, "planning") as s:
            pass
        assert (s.agent, s.task) == ("agent-1", "task-1")
        with eng.task("agent-1", "inner"):
            with eng.stage("agent-1", None, "planning") as s:
                pass
            assert s.task == "inner"
        assert ace.current_task() == ("agent-1", "task-1"), "the outer task is back"
    assert ace.current_task() is None
    # The block ended its task: the engine no longer knows it.
    assert eng.end_task("agent-1", "task-1") is False


def _loops(eng):
    line = next(l for l in eng.metrics_text().splitlines() if l.startswith('ace_signals_total{kind="loop"}'))
    return float(line.split()[-1])


def test_a_decorator_without_a_task_makes_one_per_call_or_uses_the_current(eng):
    seen = []

    @eng.stage("agent-1", None, "execution")
    def step():
        seen.append(ace.current_task())
        return 1

    assert step() == 1 and step() == 1
    # Each call is a task of its own, current while it runs (so calls inside it group under it).
    assert len(seen) == 2 and seen[0] != seen[1]
    assert all(agent == "agent-1" and task.startswith("execution-") for agent, task in seen)
    assert ace.current_task() is None

    @eng.stage("agent-1", None, "execution")
    def failing():
        raise RuntimeError("boom")

    for _ in range(3):
        with pytest.raises(RuntimeError):
            failing()
    assert _loops(eng) == 0, "three failing calls that are separate tasks are no loop"
    with eng.task("agent-1", "t-loop"):

        @eng.stage(None, None, "execution")
        def failing_here():
            raise RuntimeError("boom")

        for _ in range(3):
            with pytest.raises(RuntimeError):
                failing_here()
    assert _loops(eng) == 1, "in one current task the failures are a loop"


def test_threads_each_have_their_own_current_task(eng):
    results = {}
    barrier = threading.Barrier(4)

    def worker(i):
        assert ace.current_task() is None, "a new thread starts without a task"
        with eng.task(f"agent-{i}", f"task-{i}"):
            barrier.wait()
            r = None
            for _ in range(3):
                r = eng.record_tool(None, None, "search", 0.01, True, args={"i": i})
            results[i] = [(s.agent, s.task) for s in r.signals]

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == {i: [(f"agent-{i}", f"task-{i}")] for i in range(4)}


def test_asyncio_tasks_inherit_and_isolate_the_current_task(eng):
    async def one(i):
        async with eng.task("agent", f"job-{i}"):
            await asyncio.sleep(0)
            child = await asyncio.create_task(inner())
            return ace.current_task(), child

    async def inner():
        await asyncio.sleep(0)
        async with eng.stage(None, None, "execution") as s:
            await asyncio.sleep(0)
        return s.task

    async def main():
        return await asyncio.gather(*(one(i) for i in range(5)))

    out = asyncio.run(main())
    assert out == [(("agent", f"job-{i}"), f"job-{i}") for i in range(5)]


def test_async_decorators_use_the_current_task(eng):
    @eng.stage(None, None, "execution")
    async def work():
        await asyncio.sleep(0)
        return ace.current_task()

    async def main():
        async with eng.task("agent", "async-task"):
            return await work()

    assert asyncio.run(main()) == ("agent", "async-task")
    with pytest.raises(ace.InvalidInputError):
        asyncio.run(work())  # no agent given, none current


def test_a_task_without_an_id_gets_a_fresh_one(eng):
    with eng.task("agent") as a, eng.task("agent") as b:
        assert a.task != b.task and ace.current_task() == ("agent", b.task)
