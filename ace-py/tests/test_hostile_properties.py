"""Property tests with hostile values (hypothesis) over the public calls: each either succeeds
or raises an ``AceError`` (``TypeError`` for an argument of the wrong Python type, as
docs/python.md states), never another exception, a crash or a hang; what can be read back is
read back unchanged."""

import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import ace

HOSTILE_FLOATS = st.one_of(
    st.sampled_from([math.nan, math.inf, -math.inf, 0.0, -0.0, 1e-300, 1e300, -1.0, 5e-324]),
    st.floats(allow_nan=True, allow_infinity=True),
)
HOSTILE_INTS = st.one_of(
    st.sampled_from([0, -1, 1, 2**31, 2**32, 2**63, 2**64, -(2**63), 10**40]),
    st.integers(),
)
# Control characters, lone surrogates, multibyte characters cut anywhere, long strings.
HOSTILE_TEXT = st.one_of(
    st.text(max_size=40),
    st.text(alphabet=st.characters(codec=None, categories=None), max_size=40),
    st.sampled_from(["", "\n", "\x00", "\ud800", "a\udfffb", "é" * 200, "a" * 254 + "é", "\x1b[31m", "\u2028"]),
    st.binary(max_size=20).map(lambda b: b.decode("utf-8", "surrogateescape")),
)
WRONG_TYPES = st.sampled_from([None, [], {}, object(), b"bytes", 1.5j])
ANY = st.one_of(HOSTILE_TEXT, HOSTILE_FLOATS, HOSTILE_INTS, WRONG_TYPES, st.booleans())

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
ALLOWED = (ace.AceError, TypeError)


def call(f, *args, **kwargs):
    """The call's result, or None when it raised one of the documented exceptions."""
    try:
        return f(*args, **kwargs)
    except ALLOWED:
        return None


@pytest.fixture(scope="module")
def engine():
    e = ace.Ace()
    yield e
    e.close()


@SETTINGS
@given(agent=ANY, task=ANY, stage=ANY, duration=ANY, success=ANY)
def test_record_stage(engine, agent, task, stage, duration, success):
    call(engine.record_stage, agent, task, stage, duration, success)


@SETTINGS
@given(agent=ANY, task=ANY, stage=ANY, kind=ANY, message=ANY)
def test_record_error_end_task_and_baseline(engine, agent, task, stage, kind, message):
    call(engine.record_error, agent, task, stage, kind, message)
    call(engine.end_task, agent, task)
    call(engine.baseline, agent, stage)
    call(engine.context_staleness, agent)


@SETTINGS
@given(domain=ANY, section=ANY, content=ANY, provenance=ANY)
def test_playbook_add_round_trips_what_it_accepts(engine, domain, section, content, provenance):
    pb = engine.playbooks
    bid = call(pb.add, domain, section, content, provenance)
    if bid is not None:
        b = pb.bullet(domain, bid)
        assert (b["section"], b["content"], b["provenance"]) == (section, content, provenance)


@SETTINGS
@given(domain=ANY, query=ANY, k=ANY, stage=ANY, budget=ANY, version=ANY, text=ANY, trusted=ANY)
def test_playbook_reads_and_imports(engine, domain, query, k, stage, budget, version, text, trusted):
    pb = engine.playbooks
    call(pb.retrieve, domain, query, k, stage)
    call(pb.render, domain, query, k, stage, budget)
    call(pb.rollback, domain, version)
    call(pb.import_text, domain, text, trusted=trusted)
    call(pb.import_json, domain, text, trusted=trusted)
    call(pb.feedback, domain, query, text)


@SETTINGS
@given(name=ANY, rate=ANY, burst=ANY, timeout=ANY, size=ANY)
def test_limiters_and_breakers(engine, name, rate, burst, timeout, size):
    limiter = call(ace.RateLimiter, engine, name, rate, burst)
    if limiter is not None:
        call(limiter.try_acquire)
        if isinstance(timeout, float) and not math.isnan(timeout) and 0 <= timeout <= 0.01:
            call(limiter.acquire, timeout)
        elif not isinstance(timeout, (int, float)) or isinstance(timeout, bool) or not math.isfinite(timeout):
            call(limiter.acquire, timeout)
    bulkhead = call(ace.Bulkhead, engine, name, size)
    if bulkhead is not None:
        call(bulkhead.try_enter)
    call(engine.breaker, name)


@SETTINGS
@given(since=ANY, agent=ANY, limit=ANY)
def test_read_back_calls(engine, since, agent, limit):
    for read in (engine.interventions, engine.errors):
        rows = call(read, since, agent, limit)
        if rows is not None:
            assert isinstance(rows, list)
            # Accepted: a whole number in range, never wrapped or cut.
            assert limit is None or (int(limit) == limit and 0 <= limit <= 2**32 - 1), limit
            assert len(rows) <= (limit or 100_000)


@pytest.mark.parametrize("field", ["judge", "embedder"])
def test_a_non_callable_judge_or_embedder_is_refused_at_construction(field):
    kwargs = {field: "not callable"}
    if field == "embedder":
        kwargs["embedder_dim"] = 3
    with pytest.raises(ace.InvalidInputError, match=field):
        ace.Ace(**kwargs)
