"""LangChain and LangGraph: ``AceCallbackHandler`` records tool calls, LLM calls and graph nodes
(or the top-level chain) as stages, and their errors as errors.

    from ace.integrations.langchain import AceCallbackHandler

    handler = AceCallbackHandler(eng, agent="support-bot")
    graph.invoke(inputs, config={"callbacks": [handler]})

Records: a tool call for each tool run (its name, the digest of its input); the stage ``llm`` for
each model call, with ``tokens_in`` and ``tokens_out`` from the message's ``usage_metadata``
(langchain-core 1.x, every provider) or else the legacy ``llm_output["token_usage"]``; a stage per
LangGraph node (its ``langgraph_node`` metadata), or ``chain.<name>`` for a top-level chain outside
a graph. The task is ``task`` when given, else the current task (``with eng.task(agent, task):``),
else the LangGraph ``thread_id``, else the id of the top-level run; the agent is ``agent``, else
the current task's, else ``"langchain-agent"``. A task of the last two kinds ends with the
top-level run.

A LangGraph ``interrupt()`` (``GraphInterrupt``) is a pause, not a failure: the interrupted node is
not recorded (it runs again when the graph resumes) and the task stays open. Other LangGraph
control flow (``ParentCommand``) is a success.
"""

from __future__ import annotations

import collections
import logging
import threading
from time import perf_counter
from typing import Any, Deque, Dict, List, Optional
from uuid import UUID

from langchain_core.callbacks import BaseCallbackHandler

from ace.integrations import current_task, stage_name

__all__ = ["AceCallbackHandler"]

_log = logging.getLogger("ace.integrations.langchain")


_DEFAULT_AGENT = "langchain-agent"


def _control_flow(error: BaseException) -> Optional[str]:
    """``"pause"`` for a LangGraph interrupt, ``"flow"`` for its other control-flow exceptions
    (``GraphBubbleUp``), None for a real error."""
    names = {c.__name__ for c in type(error).__mro__ if c.__module__.startswith("langgraph")}
    if "GraphInterrupt" in names:
        return "pause"
    return "flow" if "GraphBubbleUp" in names else None


class _Run:
    __slots__ = ("stage", "agent", "task", "started", "tool", "args")

    def __init__(self, stage: str, agent: str, task: str, tool: Optional[str], args: Any) -> None:
        self.stage = stage
        self.agent = agent
        self.task = task
        self.started = perf_counter()
        self.tool = tool
        self.args = args


class _Root:
    """A top-level run: its task, whether the handler ends it, whether it was paused."""

    __slots__ = ("agent", "task", "owned", "paused")

    def __init__(self, agent: str, task: str, owned: bool) -> None:
        self.agent = agent
        self.task = task
        self.owned = owned
        self.paused = False


class AceCallbackHandler(BaseCallbackHandler):
    """Feeds an ``ace.Ace`` engine from LangChain callbacks. Interventions land in
    ``interventions`` (the newest 1,000) and reach the engine's subscribers."""

    raise_error = False
    run_inline = True

    def __init__(self, engine: Any, agent: Optional[str] = None, task: Optional[str] = None) -> None:
        self.engine = engine
        self.agent = agent
        self.task = task
        self.interventions: Deque[Any] = collections.deque(maxlen=1000)
        self._lock = threading.Lock()
        self._runs: Dict[UUID, _Run] = {}
        # run id -> its root run id; root run id -> its task
        self._roots: Dict[UUID, UUID] = {}
        self._tops: Dict[UUID, _Root] = {}

    # -- bookkeeping -------------------------------------------------------------------------

    def _root_of(self, run_id: UUID, parent_run_id: Optional[UUID], metadata: Optional[Dict[str, Any]]) -> _Root:
        with self._lock:
            # A run whose parent this handler never saw (callbacks given to an inner runnable)
            # is a top-level run for it.
            root = self._roots.get(parent_run_id, run_id) if parent_run_id else run_id
            self._roots[run_id] = root
            top = self._tops.get(root)
            if top is None:
                top = self._tops[root] = self._new_root(root, metadata)
            return top

    def _new_root(self, root: UUID, metadata: Optional[Dict[str, Any]]) -> _Root:
        current = current_task(self.engine)
        agent = self.agent or (current[0] if current else _DEFAULT_AGENT)
        if self.task is not None:
            return _Root(agent, self.task, owned=False)
        if current is not None:
            return _Root(agent, current[1], owned=False)
        thread = (metadata or {}).get("thread_id")
        if isinstance(thread, str) and thread:
            return _Root(agent, thread, owned=True)
        return _Root(agent, str(root), owned=True)

    def _start(
        self,
        run_id: UUID,
        parent_run_id: Optional[UUID],
        stage: Optional[str],
        metadata: Optional[Dict[str, Any]] = None,
        tool: Optional[str] = None,
        args: Any = None,
    ) -> None:
        top = self._root_of(run_id, parent_run_id, metadata)
        if stage is not None:
            with self._lock:
                self._runs[run_id] = _Run(stage, top.agent, top.task, tool, args)

    def _end(self, run_id: UUID, error: Optional[BaseException] = None, metrics: Optional[Dict[str, float]] = None) -> None:
        flow = _control_flow(error) if error is not None else None
        with self._lock:
            run = self._runs.pop(run_id, None)
            root = self._roots.pop(run_id, None)
            top = self._tops.get(root) if root is not None else None
            if flow == "pause" and top is not None:
                top.paused = True
            if root == run_id:
                self._tops.pop(root, None)
        try:
            if run is not None and flow != "pause":
                failed = error is not None and flow is None
                if failed:
                    assert error is not None
                    self._keep(self.engine.record_error(run.agent, run.task, run.stage, error))
                if run.tool is not None:
                    report = self.engine.record_tool(
                        run.agent, run.task, run.tool, perf_counter() - run.started, not failed, args=run.args
                    )
                else:
                    report = self.engine.record_stage(
                        run.agent, run.task, run.stage, perf_counter() - run.started, not failed, metrics or None
                    )
                self._keep(report)
            if root == run_id and top is not None and top.owned and not top.paused:
                self.engine.end_task(top.agent, top.task)
        except Exception:  # never break the host's chain over monitoring
            _log.warning("ace could not record LangChain run %s", run_id, exc_info=True)

    def _keep(self, report: Any) -> None:
        if report.intervention is not None:
            self.interventions.append(report.intervention)

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
        self._start(run_id, parent_run_id, stage, metadata)

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
        metadata: Optional[Dict[str, Any]] = None,
        inputs: Optional[Dict[str, Any]] = None,
        **kwargs: Any,
    ) -> None:
        name = str(kwargs.get("name") or (serialized or {}).get("name") or "tool")
        args = inputs if inputs is not None else input_str
        self._start(run_id, parent_run_id, "tool", metadata, tool=name, args=args)

    def on_tool_end(self, output: Any, *, run_id: UUID, **kwargs: Any) -> None:
        self._end(run_id)

    def on_tool_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        self._end(run_id, error)

    # -- models ------------------------------------------------------------------------------

    def on_llm_start(
        self,
        serialized: Optional[Dict[str, Any]],
        prompts: List[str],
        *,
        run_id: UUID,
        parent_run_id: Optional[UUID] = None,
        metadata: Optional[Dict[str, Any]] = None,
        **kwargs: Any,
    ) -> None:
        self._start(run_id, parent_run_id, "llm", metadata)

    def on_chat_model_start(
        self,
        serialized: Optional[Dict[str, Any]],
        messages: Any,
        *,
        run_id: UUID,
        parent_run_id: Optional[UUID] = None,
        metadata: Optional[Dict[str, Any]] = None,
        **kwargs: Any,
    ) -> None:
        self._start(run_id, parent_run_id, "llm", metadata)

    def on_llm_end(self, response: Any, *, run_id: UUID, **kwargs: Any) -> None:
        self._end(run_id, metrics=_usage(response))

    def on_llm_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        self._end(run_id, error)


def _usage(response: Any) -> Dict[str, float]:
    """``tokens_in`` / ``tokens_out`` of an ``LLMResult``: the sum of its messages'
    ``usage_metadata``, else the legacy ``llm_output["token_usage"]``."""
    totals = {"tokens_in": 0.0, "tokens_out": 0.0}
    seen = False
    for generations in getattr(response, "generations", None) or ():
        for generation in generations or ():
            usage = getattr(getattr(generation, "message", None), "usage_metadata", None)
            if not isinstance(usage, dict):
                continue
            for ours, theirs in (("tokens_in", "input_tokens"), ("tokens_out", "output_tokens")):
                value = usage.get(theirs)
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    totals[ours] += float(value)
                    seen = True
    if seen:
        return totals
    metrics: Dict[str, float] = {}
    legacy = (getattr(response, "llm_output", None) or {}).get("token_usage") or {}
    if isinstance(legacy, dict):
        for ours, theirs in (("tokens_in", "prompt_tokens"), ("tokens_out", "completion_tokens")):
            value = legacy.get(theirs)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                metrics[ours] = float(value)
    return metrics
