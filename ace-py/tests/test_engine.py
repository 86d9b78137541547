"""The engine from Python: recording, reports, interventions, context, stats, health."""

import asyncio
import json

import pytest

import ace


def test_recording_a_stage_returns_an_empty_report_while_the_baseline_warms_up(eng):
    r = eng.record_stage("a", "t", "planning", 0.42, True, {"tokens_in": 812.0})
    assert isinstance(r, ace.Report)
    assert not r and r.signals == () and r.intervention is None
    eng.flush()
    s = eng.stats()
    assert (s["recorded"], s["persisted"], s["dropped"]) == (1, 1, 0)
    b = eng.baseline("a", "planning")
    assert b["count"] == 1 and b["mean"] == pytest.approx(0.42)
    assert eng.baseline("a", "planning", "tokens_in")["mean"] == pytest.approx(812.0)
    assert eng.baseline("a", "nope") is None


def test_a_signals_evidence_is_built_on_first_read_and_is_the_same_dict_after(eng):
    reports = [
        eng.record_error("a", "t", "execution", "ConnectionError", f"connection to db-1:{5432 + i} refused")
        for i in range(3)
    ]
    s = next(x for r in reports for x in r.signals if x.kind == "error_accumulation")
    first = s.evidence
    assert isinstance(first, dict) and first["type"] == "error_pattern"
    assert first["occurrences"] == 3 and first["template"] == "connection to <*> refused"
    assert s.evidence is first, "read once, then kept"
    assert s.kind == "error_accumulation" and s.agent == "a" and s.task == "t" and s.stage == "execution"


def test_a_latency_shift_raises_a_signal_and_an_intervention(eng):
    got = []
    eng.subscribe(got.append)
    for i in range(40):
        eng.record_stage("a", f"warm-{i}", "planning", 1.0 + (i % 3) * 0.01)
    found = None
    for i in range(10):
        r = eng.record_stage("a", "slow", "planning", 5.0)
        if r.intervention:
            found = r
            break
    assert found is not None, "a fivefold slowdown must be flagged"
    assert found.signals[0].kind == "degradation"
    i = found.intervention
    assert i.strategy in {"refresh_context", "replan", "reflect", "verify", "escalate", "backoff", "terminate"}
    assert i.agent == "a" and i.task == "slow" and i.signals[0].evidence
    assert [x.id for x in got] == [i.id], "subscribers see the same intervention"
    eng.report_outcome(i, True)
    with pytest.raises(ace.InvalidInputError):
        eng.report_outcome(i.id, True)  # reported already


def test_errors_accept_an_exception_or_a_kind_and_message(eng):
    for port in (5432, 5433):
        r = eng.record_error("a", "t", "execution", ConnectionError(f"connection to db-{port}:{port} refused"))
    assert r.template == "connection to <*> refused" and r.occurrences == 2
    r = eng.record_error("a", "t", "execution", "ConnectionError", "connection to db-7:5434 refused")
    assert r.occurrences == 3
    assert [s.kind for s in r.signals] == ["error_accumulation"]
    assert r.severity in ("high", "critical")
    assert len(r.pattern) == 16
    assert eng.patterns()[0]["template"] == "connection to <*> refused"
    r = eng.record_error("a", "t", "execution", "Timeout", b"read \xff\xfe timed out", severity="low")
    assert r.severity in ("low", "medium", "high", "critical") and "timed out" in r.template


def test_the_stage_context_manager_times_and_records_failures(eng):
    with eng.stage("a", "t", "planning", tokens_in=10) as s:
        s.metric("tokens_out", 3)
    assert s.report is not None and s.error_report is None
    with pytest.raises(KeyError):
        with eng.stage("a", "t", "execution") as s2:
            raise KeyError("missing")
    assert s2.error_report.template and s2.report is not None
    eng.flush()
    assert eng.stats()["errors"] == 1
    assert eng.baseline("a", "planning", "tokens_out")["mean"] == 3.0
    assert eng.baseline("a", "execution", "success")["mean"] == 0.0


def test_the_stage_decorator_works_for_sync_and_async_functions(eng):
    @eng.stage("a", "t", "tool_call")
    def f(x):
        return x + 1

    @eng.stage("a", "t", "llm")
    async def g(x):
        await asyncio.sleep(0)
        return x * 2

    assert f(1) == 2 and f.__name__ == "f"
    assert asyncio.run(g(3)) == 6
    assert eng.baseline("a", "tool_call")["count"] == 1
    assert eng.baseline("a", "llm")["count"] == 1

    async def body():
        async with eng.stage("a", "t", "llm"):
            await asyncio.sleep(0)
        await eng.aflush()

    asyncio.run(body())
    assert eng.baseline("a", "llm")["count"] == 2


def test_tasks_context_and_metrics(eng):
    assert eng.context_staleness("a") is None
    eng.record_stage("a", "t", "planning", 0.1)
    assert 0.0 <= eng.context_staleness("a") <= 1.0
    eng.refresh_context("a")
    assert eng.context_staleness("a") == pytest.approx(0.0, abs=1e-6)
    assert eng.end_task("a", "t") is True
    assert eng.end_task("a", "never") is False
    r = eng.record_metric("a", "t2", "planning", "cost_usd", 0.02)
    assert not r
    text = eng.metrics_text()
    assert "ace_" in text and text.rstrip().endswith("# EOF")


def test_health_has_the_runbook_shape(eng):
    h = eng.health()
    assert h["status"] in ("healthy", "degraded")
    assert h["database"] == "connected" and h["database_backend"] == "memory"
    assert h["redis"] == "not_configured"
    assert "ace-store" in h["circuit_breakers"]
    json.dumps(h)


def test_settings_by_either_name_and_closing(uid):
    e = ace.Ace(config={"cooldown_seconds": 5, "ACE_BATCH_SIZE": "50", "intervention_enabled": True})
    e.record_stage("a", "t", "planning", 0.1)
    e.close()
    e.close()  # twice is harmless
    assert e.closed
    for call in (
        lambda: e.record_stage("a", "t", "planning", 0.1),
        lambda: e.record_error("a", "t", "planning", "E", "m"),
        e.flush,
        lambda: e.refresh_context("a"),
    ):
        with pytest.raises(ace.ClosedError) as info:
            call()
        assert info.value.code == "closed"


def test_an_engine_is_a_context_manager():
    with ace.Ace() as e:
        e.record_stage("a", "t", "planning", 0.1)
    assert e.closed


def test_from_env_reads_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("DATABASE_URL", f"sqlite://{tmp_path}/env.db")
    monkeypatch.setenv("ACE_BATCH_SIZE", "7")
    e = ace.Ace.from_env()
    assert e.backend == "sqlite"
    e.close()
    monkeypatch.setenv("ACE_BATCH_SIZE", "lots")
    with pytest.raises(ace.ConfigError) as info:
        ace.Ace.from_env()
    assert info.value.key == "ACE_BATCH_SIZE"


def test_replay_scores_a_trace(tmp_path):
    trace = tmp_path / "t.jsonl"
    lines = []
    for i in range(30):
        lines.append({"ts": 1_700_000_000 + i, "type": "stage", "agent": "a", "task": f"t{i}", "stage": "planning", "duration_s": 1.0, "success": True})
        lines.append({"ts": 1_700_000_000 + i, "type": "label", "agent": "a", "task": f"t{i}", "failed": False})
    trace.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    score = ace.replay(trace)
    assert score["tasks"] == 30 and score["failed_tasks"] == 0 and score["events"] == 30
    (tmp_path / "bad.jsonl").write_text("{not json\n")
    with pytest.raises(ace.AceError):
        ace.replay(tmp_path / "bad.jsonl")
    with pytest.raises(ace.InvalidInputError):
        ace.replay(tmp_path / "missing.jsonl")


def test_the_judge_can_veto_or_pick(eng):
    picks = []

    def judge(proposal):
        picks.append(proposal.strategy)
        return "escalate"

    e = ace.Ace(judge=judge)
    reports = [e.record_error("a", "t", "execution", "ConnectionError", f"connection to db-{p}:5432 refused") for p in range(3)]
    issued = [r.intervention for r in reports if r.intervention is not None]
    assert picks and issued and all(i.strategy == "escalate" for i in issued)
    e.close()
    vetoing = ace.Ace(judge=lambda proposal: False)
    reports = [vetoing.record_error("a", "t", "execution", "ConnectionError", f"connection to db-{p}:5432 refused") for p in range(3)]
    assert any(r.signals for r in reports) and all(r.intervention is None for r in reports)
    vetoing.close()


def test_task_outcomes_teach_the_engine_which_errors_tasks_get_over(eng):
    # The same harmless error in every task, and every task succeeds all the same.
    acted = []
    for t in range(20):
        r = eng.record_error("a", f"t{t}", "execution", "ToolError", "cache miss for key 7")
        # (Other signals may come and go: the agent's context grows stale with errors.)
        acted.append(r.intervention is not None and r.intervention.signals[0].kind == "task_error")
        assert eng.end_task("a", f"t{t}", success=True) is True
    assert acted[0] and sum(acted) <= 3 and not any(acted[5:]), acted
    # Every task fails after another error: it stays acted on.
    failing = 0
    for t in range(20):
        r = eng.record_error("a", f"f{t}", "execution", "PaymentError", "amount 305 does not add up")
        failing += r.intervention is not None
        eng.end_task("a", f"f{t}", False)
    assert failing == 20
    # Without an outcome nothing is learnt; a task never seen is not known.
    assert eng.end_task("a", "never", None) is False
    with pytest.raises(TypeError):
        eng.end_task("a", "t0", success="yes")  # type: ignore[arg-type]
