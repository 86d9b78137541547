import os
import uuid

import pytest

import ace

PG_URL = os.environ.get("ACE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("ACE_TEST_REDIS_URL", "redis://127.0.0.1:6379")


@pytest.fixture
def eng():
    e = ace.Ace()
    yield e
    e.close()


@pytest.fixture
def uid():
    return uuid.uuid4().hex[:12]
