import os
import uuid

import pytest

import ace

PG_URL = os.environ.get("ACE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("ACE_TEST_REDIS_URL", "redis://127.0.0.1:6379")
# Where the manual clock of the clock-driven tests starts (seconds since the epoch).
START = 1_700_000_000.0


@pytest.fixture
def eng():
    e = ace.Ace()
    yield e
    e.close()


@pytest.fixture
def uid():
    return uuid.uuid4().hex[:12]


@pytest.fixture
def clock():
    return ace.ManualClock(START)


def fail(breaker, n=1):
    """``n`` failed calls through ``breaker`` (``int("x")`` raises ``ValueError``)."""
    for _ in range(n):
        with pytest.raises(ValueError):
            breaker.call(int, "x")
