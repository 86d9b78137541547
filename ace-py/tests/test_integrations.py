"""The framework adapters against the real packages from PyPI, and the Prometheus collector."""

import logging

import pytest

import ace


def test_langchain_handler_records_tools_llms_and_errors(eng):
    from langchain_core.language_models.fake import FakeListLLM
    from langchain_core.runnables import RunnableLambda
    from langchain_core.tools import tool

    from ace.integrations.langchain import AceCallbackHandler

    @tool
    def lookup(order: str) -> str:
        """Looks an order up."""
        if order == "bad":
            raise ConnectionError("connection to orders-db-1:5432 refused")
        return "shipped"

    llm = FakeListLLM(responses=["ok"] * 10)
    handler = AceCallbackHandler(eng, agent="support-bot")
    chain = RunnableLambda(lambda x: lookup.invoke(x)) | RunnableLambda(lambda s: llm.invoke(s))
    assert chain.invoke("a1", config={"callbacks": [handler]}) == "ok"
    for _ in range(3):
        with pytest.raises(ConnectionError):
            chain.invoke("bad", config={"callbacks": [handler]})
    eng.flush()
    assert eng.baseline("support-bot", "tool.lookup")["count"] == 4
    assert eng.baseline("support-bot", "llm")["count"] == 1
    assert eng.baseline("support-bot", "chain.runnablesequence")["count"] == 4
    templates = [p["template"] for p in eng.patterns()]
    assert "connection to <*> refused" in templates
    assert eng.stats()["open_tasks"] == 0, "each top-level run ended its task"


def test_langgraph_node_names_come_from_metadata(eng):
    from uuid import uuid4

    from ace.integrations.langchain import AceCallbackHandler

    h = AceCallbackHandler(eng, agent="graph-bot", task="t-1")
    root, node, inner = uuid4(), uuid4(), uuid4()
    h.on_chain_start({}, {}, run_id=root, name="LangGraph")
    h.on_chain_start({}, {}, run_id=node, parent_run_id=root, name="Plan Step", metadata={"langgraph_node": "Plan Step"})
    h.on_chain_start({}, {}, run_id=inner, parent_run_id=node, name="inner", metadata={"langgraph_node": "Plan Step"})
    h.on_chain_end({}, run_id=inner)
    h.on_chain_error(ValueError("bad plan"), run_id=node)
    h.on_chain_end({}, run_id=root)
    eng.flush()
    assert eng.baseline("graph-bot", "plan_step")["count"] == 1
    assert eng.baseline("graph-bot", "plan_step", "success")["mean"] == 0.0
    assert eng.baseline("graph-bot", "inner") is None


def test_openai_agents_processor_records_spans():
    from agents.tracing import (
        SpanError,
        agent_span,
        function_span,
        generation_span,
        set_trace_processors,
        trace,
    )

    from ace.integrations.openai_agents import AceTracingProcessor

    eng = ace.Ace()
    proc = AceTracingProcessor(eng)
    set_trace_processors([proc])
    try:
        for i in range(3):
            with trace("booking") as t:
                with agent_span(name="travel-agent"):
                    with generation_span(model="m", usage={"input_tokens": 120, "output_tokens": 30}):
                        pass
                    with function_span(name="Search Flights", input="{}") as fs:
                        fs.set_error(SpanError(message=f"connection to api-{i}:443 refused", data={"error": "ConnectionError"}))
        eng.flush()
        assert eng.baseline("travel-agent", "llm")["count"] == 3
        assert eng.baseline("travel-agent", "llm", "tokens_in")["mean"] == 120.0
        assert eng.baseline("travel-agent", "tool.search_flights", "success")["mean"] == 0.0
        assert eng.patterns()[0]["template"] == "connection to <*> refused"
        assert t.trace_id
    finally:
        set_trace_processors([])
        eng.close()


def test_prometheus_client_exposes_ace_metrics(eng):
    from prometheus_client import CollectorRegistry, generate_latest

    from ace.prometheus import AceCollector

    eng.record_stage("a", "t", "planning", 0.1)
    for p in range(3):
        eng.record_error("a", "t", "x", "E", f"connection to db-{p}:5432 refused")
    registry = CollectorRegistry()
    registry.register(AceCollector(eng))
    text = generate_latest(registry).decode()
    assert "ace_signals_total" in text or "ace_signals" in text
    assert 'ace_errors_total' in text


def test_log_events_reach_python_logging_under_ace(eng, caplog):
    b = eng.breaker("logged", failures=1)
    with caplog.at_level(logging.INFO, logger="ace"):
        ace.sync_log_level()
        with pytest.raises(ZeroDivisionError):
            b.call(lambda: 1 / 0)
    names = {r.name for r in caplog.records}
    assert any(n == "ace" or n.startswith("ace.") for n in names), names
    assert any("opened" in r.getMessage() for r in caplog.records)
