"""Playbooks: merge with de-dup, feedback and stages, retrieval, render, versions, a Python
embedder."""

import json

import pytest

import ace


def test_merge_feedback_retrieve_render_and_versions(eng):
    pb = eng.playbooks
    r = pb.merge(
        "airline",
        [
            ("strategies", "Verify the fare total before charging the card"),
            {"section": "strategies", "content": "verify the fare total before charging the card."},
            {"section": "pitfalls", "content": "Never rebook a flight without the user's consent", "provenance": "t-17"},
        ],
    )
    assert len(r["added"]) == 2 and len(r["merged"]) == 1
    fare = r["added"][0]
    assert pb.feedback("airline", fare, "helpful") in ("shadow", "staging")
    for _ in range(2):
        stage = pb.feedback("airline", fare, "helpful")
    assert stage in ("staging", "prod")
    best = pb.retrieve("airline", "charging a card", k=3)
    assert best[0]["bullet"]["id"] == fare and best[0]["score"] > 0
    text = pb.render("airline", "charging the card", k=5)
    assert fare in text["ids"] and "fare total" in text["text"]
    stats = pb.stats("airline")
    version = stats["version"]
    before = [(b["id"], b["content"]) for b in pb.bullets("airline")]
    added = pb.add("airline", "strategies", "Read the booking back to the user", provenance="manual")
    pb.update("airline", added, content="Read the whole booking back to the user")
    assert pb.bullet("airline", added)["content"].startswith("Read the whole")
    pb.remove("airline", added)
    assert all(b["id"] != added for b in pb.bullets("airline"))
    back = pb.rollback("airline", version)
    assert back["version"] > version
    assert [(b["id"], b["content"]) for b in pb.bullets("airline")] == before
    exported = pb.export_json("airline")
    assert json.loads(exported)["domain"] == "airline"
    assert pb.import_json("copy", exported) == len(pb.bullets("airline"))
    assert pb.import_text("txt", pb.export_text("airline")) == len(pb.bullets("airline"))


def test_bad_playbook_input(eng):
    pb = eng.playbooks
    with pytest.raises(ace.InvalidInputError):
        pb.feedback("d", "x", "great")
    with pytest.raises(ace.InvalidInputError):
        pb.retrieve("d", "q", min_stage="gold")
    with pytest.raises(ace.InvalidInputError):
        pb.merge("d", [("only-a-section",)])
    with pytest.raises(ace.InvalidInputError):
        pb.merge("d", [{"section": "s"}])
    with pytest.raises(ace.AceError):
        pb.bullet("d", "missing")
    with pytest.raises(ace.AceError):
        pb.import_json("d", "{not json")


def test_a_python_callable_embeds():
    seen = []

    def embed(texts):
        seen.extend(texts)
        return [[1.0, float(len(t)), 0.5] for t in texts]

    e = ace.Ace(embedder=embed, embedder_dim=3)
    e.playbooks.merge("d", [("s", "alpha beta gamma")])
    assert "alpha beta gamma" in seen
    e.close()
    with pytest.raises(ace.InvalidInputError):
        ace.Ace(embedder=embed)  # no dimension

    def wrong(texts):
        return [[1.0] for _ in texts]

    bad = ace.Ace(embedder=wrong, embedder_dim=3)
    with pytest.raises(ace.AceError):
        bad.playbooks.merge("d", [("s", "text")])
    assert bad.playbooks.bullets("d") == [], "a failed merge changes nothing"
    bad.close()
