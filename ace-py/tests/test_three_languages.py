"""One trace, three languages, one answer: the events of tests/fixtures/three_languages.jsonl go
through the Python package one call each, and the signals and interventions of every call must
equal, field by field, what the Rust API gives for the same calls (tests/fixtures/
three_languages.decisions.json, checked by tests/three_languages.rs; the Node package is checked
against the same file). See tests/three_languages.rs for the trace and the fields compared."""

import json
from pathlib import Path
from typing import Any, Optional

import ace

FIXTURES = Path(__file__).resolve().parents[2] / "tests" / "fixtures"
SETTINGS = {"tool_repeat": 3, "tool_alternation": 4, "tool_retry_failures": 2}


def timeless(evidence: dict) -> dict:
    if evidence.get("type") == "staleness":
        evidence = {k: v for k, v in evidence.items() if k not in ("seconds_since_refresh", "score")}
    return evidence


def decision(event: int, signals: Any, intervention: Optional[ace.Intervention]) -> Optional[dict]:
    if not signals and intervention is None:
        return None
    out = {
        "event": event,
        "signals": [
            {"kind": s.kind, "severity": s.severity, "message": s.message, "evidence": timeless(s.evidence)}
            for s in signals
        ],
        "intervention": None,
    }
    if intervention is not None:
        out["intervention"] = {
            "agent": intervention.agent,
            "task": intervention.task,
            "strategy": intervention.strategy,
            "severity": intervention.severity,
            "reason": intervention.reason,
            "signals": [s.kind for s in intervention.signals],
            "confidence": intervention.confidence,
            "runner_up": intervention.runner_up,
            "outcomes": intervention.outcomes,
            "novel": intervention.novel,
        }
    return out


def same(a: Any, b: Any) -> bool:
    """Equal, numbers within a relative 1e-9 (as tests/three_languages.rs compares)."""
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return abs(a - b) <= 1e-9 * max(abs(a), abs(b), 1.0)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    return a == b


def test_the_python_package_gives_the_rust_apis_answer() -> None:
    eng = ace.Ace(config=SETTINGS)
    decisions = []
    for i, line in enumerate((FIXTURES / "three_languages.jsonl").read_text().splitlines()):
        e = json.loads(line)
        agent, task, kind = e["agent"], e.get("task", ""), e["type"]
        found = None
        if kind == "stage":
            if "tool" in e:
                r = eng.record_tool(
                    agent, task, e["tool"], e["duration_s"], e["success"], args_digest=e.get("args_digest"), stage=e["stage"]
                )
            else:
                r = eng.record_stage(agent, task, e["stage"], e["duration_s"], e["success"], e.get("metrics"))
            found = decision(i, r.signals, r.intervention)
        elif kind == "error":
            er = eng.record_error(agent, task, e["stage"], e["kind"], e["message"], e.get("severity"))
            found = decision(i, er.signals, er.intervention)
        elif kind == "context_refresh":
            eng.refresh_context(agent)
        elif kind == "task_end":
            eng.end_task(agent, task, e.get("success"))
        else:
            assert kind == "task_start", kind
        if found is not None:
            decisions.append(found)
    eng.close()
    expected = json.loads((FIXTURES / "three_languages.decisions.json").read_text())
    assert len(decisions) == len(expected) > 0
    for got, want in zip(decisions, expected):
        assert same(got, want), (got, want)
