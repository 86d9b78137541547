"""A breaker shared in full by two processes through the real Redis: the windows add up, an
opening and a closing in one process reach the other, and the other's fast path honours them on
its next call."""

import subprocess
import sys
import time

import pytest

import ace
from conftest import REDIS_URL

# The other process: the same breaker on the same Redis, driven line by line from stdin.
CHILD = r"""
import sys
import ace

eng = ace.Ace(cache=sys.argv[1])
b = eng.breaker(sys.argv[2], window="count:50", failure_rate=50, minimum_calls=10, wait_seconds=600)

@b
def guarded(fail):
    if fail:
        raise ConnectionError("search is down")
    return "ok"

def run(fail):
    try:
        return guarded(fail)
    except ace.CircuitOpenError:
        return "rejected"
    except ConnectionError:
        return "failed"

print("ready", flush=True)
for line in sys.stdin:
    command = line.strip()
    if command == "state":
        print(b.state, flush=True)
    elif command == "mixed":
        print(" ".join(run(i > 0) for i in range(5)), flush=True)
    elif command == "call":
        print(run(False), flush=True)
eng.close()
"""


class Other:
    """The other process."""

    def __init__(self, name):
        self.proc = subprocess.Popen(
            [sys.executable, "-c", CHILD, REDIS_URL, name],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.ask(None) == "ready"

    def ask(self, command):
        if command is not None:
            self.proc.stdin.write(command + "\n")
            self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        assert line, f"the other process ended (rc {self.proc.poll()})"
        return line.strip()

    def close(self):
        self.proc.stdin.close()
        assert self.proc.wait(timeout=30) == 0


def eventually(what, done, seconds=10.0):
    # Each process's writer exchanges breakers about once a second.
    deadline = time.monotonic() + seconds
    while not done():
        assert time.monotonic() < deadline, f"{what} never happened"
        time.sleep(0.1)


@pytest.fixture
def pair(uid):
    name = f"search-{uid}"
    other = Other(name)
    eng = ace.Ace(cache=REDIS_URL)
    b = eng.breaker(name, window="count:50", failure_rate=50, minimum_calls=10, wait_seconds=600)
    yield eng, b, other
    other.close()
    eng.close()


def test_failures_spread_over_two_processes_open_both_and_a_closing_closes_both(pair):
    eng, b, other = pair

    def down():
        raise ConnectionError("search is down")

    # One success and four failures in each process: five calls, below the minimum of ten in
    # each, eight failures in ten across the two.
    b.call(lambda: "ok")
    for _ in range(4):
        with pytest.raises(ConnectionError):
            b.call(down)
    assert other.ask("mixed") == "ok failed failed failed failed"
    assert b.state == "closed" and other.ask("state") == "closed"
    eventually("the opening on the fleet's calls", lambda: b.state == "open" and other.ask("state") == "open")
    # The decorated call in the other process is turned away on its next call.
    assert other.ask("call") == "rejected"
    with pytest.raises(ace.CircuitOpenError):
        b.call(lambda: "ok")
    # Closed by hand here: closed there too, and the other's calls go through again.
    b.close()
    eventually("the closing in the other process", lambda: other.ask("state") == "closed")
    assert other.ask("call") == "ok"


def test_an_opening_by_hand_reaches_the_other_process_on_its_next_call(pair):
    eng, b, other = pair
    assert other.ask("call") == "ok"
    b.open_for(600)
    eventually("the other process turning calls away", lambda: other.ask("call") == "rejected")
    assert other.ask("state") == "open"
