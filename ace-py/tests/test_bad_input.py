"""Bad input gets a typed error; nothing panics across the boundary."""

import math

import pytest

import ace


@pytest.mark.parametrize(
    "args",
    [
        ("", "t", "planning", 1.0),
        ("a", "", "planning", 1.0),
        ("a", "t", "Planning!", 1.0),
        ("a", "t", "planning", math.nan),
        ("a", "t", "planning", math.inf),
        ("a", "t", "planning", -1.0),
        ("a" * 100_000, "t", "planning", 1.0),
        ("a\x00b", "t", "planning", 1.0),
    ],
)
def test_invalid_stage_records_raise_invalid_input(eng, args):
    with pytest.raises(ace.InvalidInputError) as info:
        eng.record_stage(*args)
    assert info.value.code == "invalid_input" and info.value.field
    assert isinstance(info.value, ValueError)
    assert eng.stats()["recorded"] == 0


def test_wrong_types_raise_type_errors(eng):
    with pytest.raises(TypeError):
        eng.record_stage(b"agent", "t", "planning", 1.0)
    with pytest.raises(TypeError):
        eng.record_stage("a", "t", "planning", "slow")
    with pytest.raises(TypeError):
        eng.record_stage(None, "t", "planning", 1.0)
    with pytest.raises(ace.InvalidInputError):
        eng.record_stage("a", "t", "planning", 1.0, True, {"tokens": "many"})
    with pytest.raises(ace.InvalidInputError):
        eng.record_stage("a", "t", "planning", 1.0, True, {"tokens": math.nan})
    with pytest.raises(ace.InvalidInputError):
        eng.record_error("a", "t", "planning", 42)
    with pytest.raises(ace.InvalidInputError):
        eng.record_error("a", "t", "planning", "E", "m", severity="apocalyptic")
    with pytest.raises(ace.InvalidInputError):
        eng.subscribe(42)


def test_strings_that_are_not_utf8(eng):
    # A lone surrogate cannot be encoded: a typed error, not a crash.
    with pytest.raises((ace.InvalidInputError, UnicodeEncodeError, TypeError)):
        eng.record_stage("a\ud800", "t", "planning", 1.0)
    # Error messages may be bytes in any encoding; they are decoded with replacement.
    r = eng.record_error("a", "t", "planning", "DecodeError", b"bad byte \xff at 3")
    assert "bad byte" in r.template
    r = eng.record_error("a", "t", "planning", "E", "x" * 1_000_000)
    assert r.truncated


def test_bad_settings_and_urls_name_what_is_wrong():
    with pytest.raises(ace.ConfigError) as info:
        ace.Ace(config={"batch_size": "lots"})
    assert info.value.key == "ACE_BATCH_SIZE" and "lots" in str(info.value)
    with pytest.raises(ace.ConfigError):
        ace.Ace(config={"no_such_setting": 1})
    with pytest.raises(TypeError):
        ace.Ace(config={"batch_size": object()})
    with pytest.raises(ace.AceError) as info:
        ace.Ace("mysql://u:hunter2@h/db")
    assert "hunter2" not in str(info.value)
    with pytest.raises(ace.StoreError) as info:
        ace.Ace("postgresql://u:hunter2@127.0.0.1:1/db", config={"POSTGRES_MAX_CONNECTIONS": 1})
    assert "hunter2" not in str(info.value) and info.value.backend == "postgres"


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_a_subscriber_that_raises_does_not_fail_the_call(eng):
    def boom(i):
        raise RuntimeError("subscriber bug")

    eng.subscribe(boom)
    reports = [eng.record_error("a", "t", "x", "ConnectionError", f"connection to db-{p}:5432 refused") for p in range(3)]
    assert any(r.intervention is not None for r in reports)


def test_every_error_class_carries_its_code():
    for cls, code in [
        (ace.ConfigError, "config"),
        (ace.InvalidInputError, "invalid_input"),
        (ace.ClosedError, "closed"),
        (ace.StoreError, "store"),
        (ace.StoreUnavailableError, "store_unavailable"),
        (ace.CorruptError, "corrupt"),
        (ace.CircuitOpenError, "circuit_open"),
        (ace.InternalError, "internal"),
    ]:
        assert issubclass(cls, ace.AceError) and cls.code == code
    assert issubclass(ace.StoreUnavailableError, ace.StoreError)


def test_a_tiny_rate_is_a_long_wait_not_a_panic(eng):
    # 1e-300 tokens a second: the wait for the next token holds in no duration type.
    limiter = eng.rate_limiter("tiny", 1e-300, 1)
    assert limiter.try_acquire() is True
    assert limiter.try_acquire() is False
    with pytest.raises(ace.LimitedError) as info:
        limiter.acquire(timeout=0.01)
    assert info.value.retry_after is not None and 86_400 < info.value.retry_after < math.inf


def test_the_memory_url_opens_an_engine():
    eng = ace.Ace("memory")
    eng.record_stage("a", "t", "planning", 1.0)
    eng.flush()
    assert eng.health()["database_backend"] == "memory"
    eng.close()


@pytest.mark.parametrize("timeout", [math.nan, math.inf, -math.inf, -1.0])
def test_a_bad_timeout_is_invalid_input_not_a_hang(eng, timeout):
    limiter = eng.rate_limiter("drained", 0.001, 1)
    assert limiter.try_acquire() is True
    with pytest.raises(ace.InvalidInputError) as info:
        limiter.acquire(timeout=timeout)
    assert info.value.field == "timeout"
    with pytest.raises(TypeError):
        limiter.acquire(timeout="soon")  # type: ignore[arg-type]


async def _aacquire(limiter, timeout):
    await limiter.aacquire(timeout=timeout)


def test_a_bad_timeout_is_invalid_input_in_async_code_too(eng):
    import asyncio

    limiter = eng.rate_limiter("drained-async", 0.001, 1)
    assert limiter.try_acquire() is True
    with pytest.raises(ace.InvalidInputError):
        asyncio.run(_aacquire(limiter, math.nan))


@pytest.mark.parametrize("count", [-1, math.nan, 0.5, 2**32, math.inf])
def test_counts_are_whole_numbers_in_range(eng, count):
    pb = eng.playbooks
    pb.add("airline", "strategies", "Read the booking back", "manual")
    before = pb.stats("airline")
    with pytest.raises(ace.InvalidInputError):
        pb.rollback("airline", count)
    assert pb.stats("airline") == before, "the domain is untouched"
    with pytest.raises(ace.InvalidInputError):
        eng.rate_limiter(f"r{count}", 1.0, count)
    with pytest.raises(ace.InvalidInputError):
        eng.bulkhead(f"b{count}", count)
    with pytest.raises(ace.InvalidInputError):
        eng.breaker(f"f{count}", failures=count)
    with pytest.raises(ace.InvalidInputError):
        eng.breaker(f"h{count}", half_open_permits=count)


def test_lone_surrogates_are_invalid_input_everywhere(eng):
    bad = "a\ud800"
    calls = [
        lambda: eng.end_task(bad, "t"),
        lambda: eng.end_task("a", bad),
        lambda: eng.baseline(bad, "planning"),
        lambda: eng.refresh_context(bad),
        lambda: eng.breaker(bad),
        lambda: eng.rate_limiter(bad, 1.0, 1),
        lambda: eng.bulkhead(bad, 1),
        lambda: eng.playbooks.add(bad, "s", "content"),
        lambda: eng.playbooks.add("d", "s", bad),
        lambda: eng.playbooks.add("d", "s", "content", bad),
        lambda: eng.playbooks.bullets(bad),
        lambda: eng.playbooks.import_text("d", bad),
        lambda: ace.Ace(config={"cooldown_seconds": bad}),
        lambda: eng.errors(agent=bad),
        lambda: eng.interventions(agent=bad),
    ]
    for call in calls:
        with pytest.raises(ace.InvalidInputError):
            call()


def test_provenance_is_capped(eng):
    pb = eng.playbooks
    with pytest.raises(ace.InvalidInputError, match="provenance"):
        pb.add("d", "s", "Read the booking back", "p" * 1_000_000)
    report = pb.merge("d", [{"section": "s", "content": "Check the fare", "provenance": "p" * 1_000_000}])
    assert report["added"] == [] and len(report["skipped"]) == 1
    assert pb.bullets("d") == []
    pb.add("d", "s", "Read the booking back", "p" * 1024)


@pytest.mark.parametrize("limit", [-1, 2**32, 10**40, 1.5, math.nan])
def test_read_back_limits_are_counts(eng, limit):
    for read in (eng.interventions, eng.errors):
        with pytest.raises(ace.InvalidInputError, match="limit"):
            read(limit=limit)
    assert eng.errors(limit=0) == [] and eng.errors() == []


def test_a_closed_engine_hands_out_no_breaker_limiter_or_bulkhead():
    eng = ace.Ace()
    eng.close()
    for make in (
        lambda: eng.breaker("b"),
        lambda: eng.breaker("b", failures=3),
        lambda: eng.rate_limiter("r", 1.0, 1),
        lambda: eng.bulkhead("k", 1),
    ):
        with pytest.raises(ace.ClosedError):
            make()
