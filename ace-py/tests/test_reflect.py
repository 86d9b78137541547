"""Reflection end to end from Python: a failed task's summary goes to a reflector (the example's
OpenAI-compatible one, with a deterministic local client), its insights land in the agent's
playbook at shadow; the rate limit and failures are counted."""

import importlib.util
import pathlib
import queue
import time

import pytest

import ace

_EXAMPLE = pathlib.Path(__file__).resolve().parents[2] / "examples" / "python" / "reflect_openai.py"
_spec = importlib.util.spec_from_file_location("reflect_openai", _EXAMPLE)
assert _spec is not None and _spec.loader is not None
example = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(example)


def _failed_task(e, task="t1", success=False):
    for _ in range(3):
        e.record_stage("bot", task, "execution", 1.0, False)
    e.record_error("bot", task, "execution", "ConnectionError", "connection to orders-db:5432 refused")
    e.record_error("bot", task, "execution", "QuotaExceeded", "monthly search quota used up")
    e.end_task("bot", task, success=success)


def test_a_failed_task_becomes_shadow_insights_through_an_openai_compatible_reflector():
    e = ace.Ace(config={"reflect_per_minute": 2})
    _failed_task(e)
    seen = []
    client = example.OfflineClient()
    create = client.chat.completions.create

    def recording_create(**kwargs):
        seen.append(kwargs["messages"][-1]["content"])
        return create(**kwargs)

    client.chat.completions.create = recording_create
    done = e.reflect("bot", "t1", example.llm_reflector(client))
    assert done is not None
    assert seen == [done["summary"]["text"]]
    assert done["summary"]["text"].startswith("task t1 of agent bot: 3 stages (3 failed), 2 errors")
    assert len(done["report"]["added"]) == 2
    bullets = e.playbooks.bullets("bot")
    assert {b["stage"] for b in bullets} == {"shadow"}
    assert {b["provenance"] for b in bullets} == {"reflection:bot/t1"}
    assert any("orders-db" in b["content"] for b in bullets)

    with pytest.raises(ace.InvalidInputError, match="reflector failed"):
        e.reflect("bot", "t1", lambda summary: 1 / 0)
    assert e.reflect("bot", "t1", example.llm_reflector(client)) is None, "the third in a minute"
    text = e.metrics_text()
    assert "ace_reflections_total 2" in text and "ace_reflection_failures_total 1" in text
    assert "ace_reflections_limited_total 1" in text
    e.close()


def test_failed_task_ends_are_reflected_on_in_the_background():
    e = ace.Ace()
    seen: "queue.Queue[str]" = queue.Queue()

    def reflector(summary):
        seen.put(summary)
        return example.llm_reflector(example.OfflineClient())(summary)

    e.reflect_on_failure(reflector, domain="learnt")
    _failed_task(e, "ok-task", success=True)
    _failed_task(e, "bad-task")
    summary = seen.get(timeout=30)
    assert summary.startswith("task bad-task of agent bot"), summary
    deadline = time.monotonic() + 30
    while not e.playbooks.bullets("learnt"):
        assert time.monotonic() < deadline, "the insights never landed"
        time.sleep(0.01)
    assert seen.empty()
    e.close()
