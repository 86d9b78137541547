"""Reflection with an OpenAI-compatible chat model: when a task fails, ace summarises what it saw
(stages, errors, interventions and their outcomes) and the model turns that into playbook
insights, merged at `shadow` with the usual de-dup.

With OPENAI_API_KEY set (and OPENAI_BASE_URL for any compatible server) it asks the model; without
it, a deterministic stand-in answers, so the example runs offline."""

import json
import os
from types import SimpleNamespace
from typing import Any, Callable, List, Tuple

import ace

PROMPT = (
    "You review a failed task of an AI agent. From the summary, write at most 3 short, general "
    'pieces of advice that would have avoided the failure. Answer JSON: {"insights": '
    '[{"section": "pitfalls" or "strategies", "content": "..."}]}'
)


def llm_reflector(client: Any, model: str = "gpt-4o-mini") -> Callable[[str], List[Tuple[str, str]]]:
    """A reflector for `Ace.reflect` that asks an OpenAI-compatible chat completions API."""

    def reflect(summary: str) -> List[Tuple[str, str]]:
        reply = client.chat.completions.create(
            model=model,
            messages=[{"role": "system", "content": PROMPT}, {"role": "user", "content": summary}],
            response_format={"type": "json_object"},
        )
        data = json.loads(reply.choices[0].message.content or "{}")
        return [(str(i["section"]), str(i["content"])) for i in data.get("insights", [])][:3]

    return reflect


class OfflineClient:
    """Answers like a chat model would, deterministically: one pitfall per error in the summary."""

    def __init__(self) -> None:
        self.chat = SimpleNamespace(completions=SimpleNamespace(create=self._create))

    def _create(self, model: str, messages: List[dict], **_: Any) -> Any:
        errors = [line[len("error ") :] for line in messages[-1]["content"].splitlines() if line.startswith("error ")]
        insights = [{"section": "pitfalls", "content": f"Check for this before retrying: {e}"} for e in errors]
        content = json.dumps({"insights": insights})
        return SimpleNamespace(choices=[SimpleNamespace(message=SimpleNamespace(content=content))])


def main() -> None:
    if os.environ.get("OPENAI_API_KEY"):
        from openai import OpenAI

        client: Any = OpenAI()
    else:
        client = OfflineClient()
    eng = ace.Ace()
    for _ in range(3):
        eng.record_stage("support-bot", "t-1", "execution", 1.2, False)
    eng.record_error("support-bot", "t-1", "execution", "ConnectionError", "connection to orders-db:5432 refused")
    eng.end_task("support-bot", "t-1", success=False)
    done = eng.reflect("support-bot", "t-1", llm_reflector(client))
    assert done is not None
    print(done["summary"]["text"])
    print("added:", done["report"]["added"])
    print(eng.playbooks.render("support-bot", min_stage="shadow")["text"])
    eng.close()


if __name__ == "__main__":
    main()
