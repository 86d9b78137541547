"""LangChain and LangGraph: ``AceCallbackHandler`` records tool calls, LLM calls and graph nodes
(or the top-level chain) as stages, and their errors as errors.

    from ace.integrations.langchain import AceCallbackHandler

    handler = AceCallbackHandler(eng, agent="support-bot")
    graph.invoke(inputs, config={"callbacks": [handler]})

Stages: ``tool.<tool name>``, ``llm``, a LangGraph node's name (from the run's
``langgraph_node`` metadata), or ``chain.<name>`` for a top-level chain outside a graph. The task is
``task`` when given, else the id of the top-level run; the task ends with that run.
"""

from __future__ import annotations

import logging
import threading
from time import perf_counter
from typing import Any, Dict, List, Optional, Tuple
from uuid import UUID

from langchain_core.callbacks import BaseCallbackHandler

from ace.integrations import stage_name

__all__ = ["AceCallbackHandler"]

_log = logging.getLogger("ace.integrations.langchain")


class AceCallbackHandler(BaseCallbackHandler):
    """Feeds an ``ace.Ace`` engine from LangChain callbacks. Interventions land in
    ``interventions`` (newest last) and reach the engine's subscribers."""

    raise_error = False
    run_inline = True

    def __init__(self, engine: Any, agent: str, task: Optional[str] = None) -> None:
        self.engine = engine
        self.agent = agent
        self.task = task
        self.interventions: List[Any] = []
        self._lock = threading.Lock()
        # run id -> (stage, task, started)
        self._runs: Dict[UUID, Tuple[str, str, float]] = {}
        # run id -> its root run id
        self._roots: Dict[UUID, UUID] = {}

    # -- bookkeeping -------------------------------------------------------------------------

    def _task_of(self, run_id: UUID, parent_run_id: Optional[UUID]) -> Tuple[str, bool]:
        with self._lock:
            root = self._roots.get(parent_run_id, parent_run_id) if parent_run_id else run_id
            self._roots[run_id] = root
        return (self.task or str(root)), parent_run_id is None

    def _start(self, run_id: UUID, parent_run_id: Optional[UUID], stage: Optional[str]) -> None:
        task, _ = self._task_of(run_id, parent_run_id)
        if stage is not None:
            with self._lock:
                self._runs[run_id] = (stage, task, perf_counter())

    def _end(self, run_id: UUID, error: Optional[BaseException] = None, metrics: Optional[Dict[str, float]] = None) -> None:
        with self._lock:
            run = self._runs.pop(run_id, None)
            root = self._roots.pop(run_id, None)
        if run is None:
            return
        stage, task, started = run
        try:
            if error is not None:
                self._keep(self.engine.record_error(self.agent, task, stage, error).intervention)
            report = self.engine.record_stage(self.agent, task, stage, perf_counter() - started, error is None, metrics or None)
            self._keep(report.intervention)
            if root == run_id and self.task is None:
                self.engine.end_task(self.agent, task)
        except Exception:  # never break the host's chain over monitoring
            _log.warning("ace could not record LangChain run %s", run_id, exc_info=True)

    def _keep(self, intervention: Any) -> None:
        if intervention is not None:
            self.interventions.append(intervention)

    # -- chains and graph nodes --------------------------------------------------------------

    def on_chain_start(
        self,
        serialized: Optional[Dict[str, Any]],
        inputs: Any,
        *,
        run_id: UUID,
        parent_run_id: Optional[UUID] = None,
        metadata: Optional[Dict[str, Any]] = None,
        **kwargs: Any,
    ) -> None:
        name = kwargs.get("name") or (serialized or {}).get("name") or "chain"
        node = (metadata or {}).get("langgraph_node")
        if node is not None:
            stage = stage_name(str(node)) if name == node else None
        else:
            stage = stage_name(str(name), "chain.") if parent_run_id is None else None
        self._start(run_id, parent_run_id, stage)

    def on_chain_end(self, outputs: Any, *, run_id: UUID, **kwargs: Any) -> None:
        self._end(run_id)

    def on_chain_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        self._end(run_id, error)

    # -- tools -------------------------------------------------------------------------------

    def on_tool_start(
        self,
        serialized: Optional[Dict[str, Any]],
        input_str: str,
        *,
        run_id: UUID,
        parent_run_id: Optional[UUID] = None,
        **kwargs: Any,
    ) -> None:
        name = kwargs.get("name") or (serialized or {}).get("name") or "tool"
        self._start(run_id, parent_run_id, stage_name(str(name), "tool."))

    def on_tool_end(self, output: Any, *, run_id: UUID, **kwargs: Any) -> None:
        self._end(run_id)

    def on_tool_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        self._end(run_id, error)

    # -- models ------------------------------------------------------------------------------

    def on_llm_start(
        self, serialized: Optional[Dict[str, Any]], prompts: List[str], *, run_id: UUID, parent_run_id: Optional[UUID] = None, **kwargs: Any
    ) -> None:
        self._start(run_id, parent_run_id, "llm")

    def on_chat_model_start(
        self, serialized: Optional[Dict[str, Any]], messages: Any, *, run_id: UUID, parent_run_id: Optional[UUID] = None, **kwargs: Any
    ) -> None:
        self._start(run_id, parent_run_id, "llm")

    def on_llm_end(self, response: Any, *, run_id: UUID, **kwargs: Any) -> None:
        metrics: Dict[str, float] = {}
        usage = (getattr(response, "llm_output", None) or {}).get("token_usage") or {}
        for ours, theirs in (("tokens_in", "prompt_tokens"), ("tokens_out", "completion_tokens")):
            if isinstance(usage.get(theirs), (int, float)):
                metrics[ours] = float(usage[theirs])
        self._end(run_id, metrics=metrics)

    def on_llm_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        self._end(run_id, error)
