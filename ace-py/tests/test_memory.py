"""An engine built with no store runs in bounded memory: its store keeps a bounded history."""

import os
import time

import pytest

import ace


def resident_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def test_millions_of_records_leave_resident_memory_flat():
    # What is measured is the store's bound, not how a writer thread keeps up with a loop of
    # 3 M calls/s on two cores (docs/operations.md, failure table): the buffer has room for a
    # writer held off the CPU for a while, and the loop lets go of the GIL every 50,000 calls.
    eng = ace.Ace(config={"memory_max_records": 50_000, "buffer_capacity": 1_000_000})
    agents = [f"agent-{i}" for i in range(100)]
    record = eng.record_stage
    # Past the bound, the store evicts as much as it takes in: memory reaches its level here.
    for i in range(500_000):
        record(agents[i % 100], "task-1", "planning", 0.5, True)
        if i % 50_000 == 0:
            time.sleep(0.001)
    eng.flush()
    level = resident_bytes()
    for i in range(3_000_000):
        record(agents[i % 100], "task-1", "planning", 0.5, True)
        if i % 50_000 == 0:
            time.sleep(0.001)
    eng.flush()
    grown = resident_bytes() - level
    # An unbounded store would hold 3,000,000 more records here (well over 300 MB).
    assert grown < 16 * 1024 * 1024, f"resident memory grew by {grown / 1e6:.1f} MB"
    stats = eng.stats()
    assert stats["recorded"] == 3_500_000
    # Evicted, not lost: counted in stats and in ace_records_evicted_total, never as dropped.
    assert stats["evicted"] == 3_500_000 - 50_000 and stats["dropped"] == 0, stats
    assert "ace_records_evicted_total 3450000" in eng.metrics_text()
    eng.close()


def test_the_bound_is_a_setting():
    with pytest.raises(ace.ConfigError):
        ace.Ace(config={"memory_max_records": 0})
