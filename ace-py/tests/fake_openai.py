"""A local stand-in for the OpenAI HTTP API: a tiny server on 127.0.0.1 that answers
``POST /v1/responses`` (and ``/v1/chat/completions``) with scripted replies in the shape the real
API returns, so the real SDKs (openai, openai-agents, pydantic-ai) run unchanged against it through
their ``base_url``. Each test scripts the model's turns; the server records the requests."""

from __future__ import annotations

import itertools
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Dict, List, Optional

_ids = itertools.count(1)


def message(text: str) -> Dict[str, Any]:
    """An assistant message output item."""
    return {
        "type": "message",
        "id": f"msg_{next(_ids):024x}",
        "status": "completed",
        "role": "assistant",
        "content": [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}],
    }


def function_call(name: str, arguments: Dict[str, Any]) -> Dict[str, Any]:
    """A function (tool) call output item."""
    n = next(_ids)
    return {
        "type": "function_call",
        "id": f"fc_{n:024x}",
        "call_id": f"call_{n:020x}",
        "name": name,
        "arguments": json.dumps(arguments, separators=(",", ":")),
        "status": "completed",
    }


def response(output: List[Dict[str, Any]], input_tokens: int, output_tokens: int, model: str) -> Dict[str, Any]:
    """A complete Responses API ``response`` object, as the API returns it."""
    return {
        "id": f"resp_{next(_ids):032x}",
        "object": "response",
        "created_at": 1764806400,
        "status": "completed",
        "background": False,
        "error": None,
        "incomplete_details": None,
        "instructions": None,
        "max_output_tokens": None,
        "model": model,
        "output": output,
        "parallel_tool_calls": True,
        "previous_response_id": None,
        "reasoning": {"effort": None, "summary": None},
        "service_tier": "default",
        "store": True,
        "temperature": 1.0,
        "text": {"format": {"type": "text"}, "verbosity": "medium"},
        "tool_choice": "auto",
        "tools": [],
        "top_p": 1.0,
        "truncation": "disabled",
        "usage": {
            "input_tokens": input_tokens,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": output_tokens,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": input_tokens + output_tokens,
        },
        "user": None,
        "metadata": {},
    }


class Turn:
    """One scripted model turn: the output items and the usage the API reports, or an HTTP
    error status with its body."""

    def __init__(
        self,
        output: Optional[List[Dict[str, Any]]] = None,
        input_tokens: int = 0,
        output_tokens: int = 0,
        status: int = 200,
        error: Optional[Dict[str, Any]] = None,
    ) -> None:
        self.output = output or []
        self.input_tokens = input_tokens
        self.output_tokens = output_tokens
        self.status = status
        self.error = error


class FakeOpenAI:
    """The server; use as a context manager. ``base_url`` is what the SDK client takes."""

    def __init__(self, turns: List[Turn]) -> None:
        self.turns = list(turns)
        self.requests: List[Dict[str, Any]] = []
        self._lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (the stdlib's name)
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
                with fake._lock:
                    fake.requests.append({"path": self.path, "body": body})
                    turn = fake.turns.pop(0) if fake.turns else Turn([message("(no more turns)")])
                model = str(body.get("model") or "gpt-4.1")
                if turn.status != 200:
                    payload: Dict[str, Any] = {"error": turn.error or {"message": "error", "type": "server_error"}}
                elif self.path.endswith("/chat/completions"):
                    payload = _chat_completion(turn, model)
                else:
                    payload = response(turn.output, turn.input_tokens, turn.output_tokens, model)
                data = json.dumps(payload).encode()
                self.send_response(turn.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.send_header("x-request-id", f"req_{next(_ids):016x}")
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/v1"

    def __enter__(self) -> "FakeOpenAI":
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._server.shutdown()
        self._server.server_close()


def _chat_completion(turn: Turn, model: str) -> Dict[str, Any]:
    """The same turn as a Chat Completions ``chat.completion`` object."""
    content = None
    tool_calls = []
    for item in turn.output:
        if item["type"] == "message":
            content = "".join(part["text"] for part in item["content"])
        elif item["type"] == "function_call":
            tool_calls.append(
                {"id": item["call_id"], "type": "function", "function": {"name": item["name"], "arguments": item["arguments"]}}
            )
    msg: Dict[str, Any] = {"role": "assistant", "content": content, "refusal": None, "annotations": []}
    if tool_calls:
        msg["tool_calls"] = tool_calls
    return {
        "id": f"chatcmpl-{next(_ids):024x}",
        "object": "chat.completion",
        "created": 1764806400,
        "model": model,
        "choices": [{"index": 0, "message": msg, "logprobs": None, "finish_reason": "tool_calls" if tool_calls else "stop"}],
        "usage": {
            "prompt_tokens": turn.input_tokens,
            "completion_tokens": turn.output_tokens,
            "total_tokens": turn.input_tokens + turn.output_tokens,
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0},
        },
        "service_tier": "default",
        "system_fingerprint": None,
    }
