"""The judge for the hard cases from Python: every intervention carries the engine's confidence,
`judge_below` sends only the less confident ones to the judge, and with `judge_blocking=False`
the verdict reaches the subscribers as an amended intervention with the same id."""

import queue
import threading

import ace


def _loop(e, task):
    for _ in range(3):
        r = e.record_stage("a", task, "execution", 1.0, False)
        if r.intervention is not None:
            return r.intervention
    return None


def test_interventions_carry_their_confidence_and_confident_ones_skip_the_judge():
    asked = []
    e = ace.Ace(judge=lambda p: asked.append(p.id), config={"judge_below": 0.9})
    hard = easy = 0
    for k in range(40):
        i = _loop(e, f"t{k}")
        assert i is not None and 0.0 <= i.confidence <= 1.0
        assert i.novel == (i.outcomes < 5) and i.amended is None
        assert i.runner_up is None or i.runner_up != i.strategy
        if i.novel or i.confidence < 0.9:
            hard += 1
        else:
            easy += 1
        e.report_outcome(i.id, i.strategy == "replan")
    assert hard >= 5 and easy >= 5, (hard, easy)
    assert len(asked) == hard
    assert f"ace_judge_confident_total {easy}" in e.metrics_text()
    e.close()


def test_a_background_judge_never_holds_the_call_and_amends_by_id():
    gate = threading.Event()

    def judge(proposal):
        gate.wait(30)
        return "escalate"

    e = ace.Ace(judge=judge, config={"judge_blocking": False, "judge_timeout": 60})
    seen: "queue.Queue[ace.Intervention]" = queue.Queue()
    e.subscribe(seen.put)
    issued = _loop(e, "t1")
    # The judge is still waiting for the gate: the call returned the engine's own choice.
    assert issued is not None and issued.strategy == "replan" and issued.amended is None
    assert seen.get(timeout=30).amended is None
    gate.set()
    amended = seen.get(timeout=30)
    assert (amended.id, amended.amended, amended.strategy) == (issued.id, "picked", "escalate")
    e.close()
