"""The in-process listener (`Ace.serve`) and the read-back calls, against the real extension
and a real HTTP client (urllib over TCP)."""

import json
import time
import urllib.error
import urllib.request

import pytest

import ace


def get(url: str, token: str | None = None) -> tuple[int, str]:
    req = urllib.request.Request(url)
    if token is not None:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def busy() -> ace.Ace:
    eng = ace.Ace("memory")
    for i in range(6):
        eng.record_error("agent-a", f"t{i}", "execution", "Timeout", f"call {i} timed out")
    eng.record_error("agent-b", "t1", "planning", "ValueError", "bad plan")
    eng.flush()
    return eng


def test_serve_shows_the_hosts_own_engine() -> None:
    eng = busy()
    server = eng.serve("127.0.0.1:0")
    assert server.running and server.address.startswith("127.0.0.1:")
    status, page = get(server.url)
    assert status == 200 and "<title>ace: live</title>" in page
    status, body = get(server.url + "api/errors?agent=agent-b")
    assert status == 200
    assert [e["message"] for e in json.loads(body)] == ["bad plan"]
    status, body = get(server.url + "api/patterns")
    assert any(p["kind"] == "Timeout" and p["count"] == 6 for p in json.loads(body))
    status, body = get(server.url + "metrics")
    assert status == 200 and "ace_errors_total" in body
    status, body = get(server.url + "health")
    assert status == 200 and json.loads(body)["database_backend"] == "memory"
    assert get(server.url + "api/nope")[0] == 404
    # close() stops the listener.
    eng.close()
    assert not server.running
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(server.url, timeout=5)
    server.stop()  # harmless after close


def test_serve_with_a_token_and_stop() -> None:
    eng = busy()
    with eng.serve("127.0.0.1:0", token="s3cret") as server:
        assert get(server.url + "api/overview")[0] == 401
        assert get(server.url + "api/overview", token="wrong")[0] == 401
        status, body = get(server.url + "api/overview", token="s3cret")
        assert status == 200 and json.loads(body)["stats"]["errors"] == 7
    assert not server.running
    with pytest.raises(ace.InvalidInputError):
        eng.serve("127.0.0.1:0", token="")
    with pytest.raises(ace.ConfigError):
        eng.serve("not an address")
    eng.close()
    with pytest.raises(ace.ClosedError):
        eng.serve("127.0.0.1:0")


def test_interventions_and_errors_read_back_newest_first() -> None:
    eng = busy()
    errors = eng.errors()
    assert len(errors) == 7 and errors[0]["agent"] == "agent-b"
    assert [e["message"] for e in eng.errors(agent="agent-a", limit=2)] == ["call 5 timed out", "call 4 timed out"]
    assert eng.errors(since=time.time() + 3600) == []
    assert len(eng.errors(since=0.0)) == 7
    interventions = eng.interventions()
    assert interventions, "six timeouts draw an intervention"
    assert {i["agent"] for i in interventions} <= {"agent-a", "agent-b"}
    assert [i["ts"] for i in interventions] == sorted((i["ts"] for i in interventions), reverse=True)
    first = interventions[0]
    assert first["reason"] and first["outcome"] is None and first["strategy"]
    assert isinstance(first["id"], int)
    eng.report_outcome(first["id"], True)
    eng.flush()
    assert eng.interventions(limit=1)[0]["outcome"] is True
    assert eng.interventions(agent="nobody") == []
    with pytest.raises(ace.InvalidInputError):
        eng.errors(limit=10_000_000)
    with pytest.raises(ace.InvalidInputError):
        eng.errors(since=float("nan"))
    with pytest.raises(ace.InvalidInputError, match="limit"):
        eng.errors(limit=-1)
    eng.close()
    with pytest.raises(ace.ClosedError):
        eng.interventions()


def test_stored_patterns_come_from_the_store_and_signals_from_memory(tmp_path) -> None:
    url = f"sqlite://{tmp_path / 'ace.db'}"
    # Two engines on one file, as two processes would be: the reader's miner sees none of the
    # writer's errors (an engine loads the stored patterns only when it starts), its store all.
    reader = ace.Ace(url)
    writer = ace.Ace(url)
    for i in range(6):
        writer.record_error("agent-a", f"t{i}", "execution", "Timeout", f"call {i} timed out")
    writer.close()
    assert reader.patterns() == []
    stored = reader.stored_patterns()
    assert [(p["kind"], p["count"]) for p in stored] == [("Timeout", 6)]
    assert "<*>" in stored[0]["template"]
    assert reader.recent_signals() == [], "signals are held in memory, per engine"
    reader.record_error("agent-b", "t1", "planning", "ValueError", "bad plan")
    signals = reader.recent_signals(agent="agent-b", limit=5)
    assert [(s["agent"], s["task"], s["kind"]) for s in signals] == [("agent-b", "t1", "task_error")]
    assert signals[0]["evidence"]["error_kind"] == "ValueError" and signals[0]["message"]
    assert reader.recent_signals(agent="nobody") == []
    reader.close()
    with pytest.raises(ace.ClosedError):
        reader.stored_patterns()
    with pytest.raises(ace.ClosedError):
        reader.recent_signals()


def test_a_forked_child_leaves_the_parents_listener_serving() -> None:
    import os

    eng = busy()
    server = eng.serve("127.0.0.1:0")
    pid = os.fork()
    if pid == 0:  # the child: its first call rebuilds the engine; closing it must not hang
        try:
            eng.record_stage("child", "t", "planning", 0.1)
            eng.close()
            os._exit(0)
        except BaseException:
            os._exit(1)
    deadline = time.monotonic() + 60  # a guard against a hung child, not a timing assertion
    while (done := os.waitpid(pid, os.WNOHANG))[0] == 0:
        if time.monotonic() > deadline:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
            pytest.fail("the forked child hung closing the engine (its copy of the listener)")
        time.sleep(0.05)
    assert os.waitstatus_to_exitcode(done[1]) == 0
    assert get(server.url + "health")[0] == 200, "the parent still serves"
    eng.close()
    assert not server.running
