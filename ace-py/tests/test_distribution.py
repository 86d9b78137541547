"""`import ace` names its distribution, and says when another one shares the `ace/` directory."""

from __future__ import annotations

import sys
from pathlib import Path

import ace


def test_distribution_is_agent_ace() -> None:
    assert ace.__distribution__ == "agent-ace"
    # The test virtualenv holds only our wheel under the name `ace`.
    assert ace.conflicting_distributions() == []


def test_a_second_distribution_providing_ace_is_named(tmp_path: Path) -> None:
    # What `pip install ace-framework` leaves behind: a dist-info whose top level is `ace`.
    info = tmp_path / "ace_framework-0.9.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: ace-framework\nVersion: 0.9.0\n")
    (info / "top_level.txt").write_text("ace\n")
    sys.path.insert(0, str(tmp_path))
    try:
        assert ace.conflicting_distributions() == ["ace-framework"]
    finally:
        sys.path.remove(str(tmp_path))
    assert ace.conflicting_distributions() == []
