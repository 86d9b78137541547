"""The framework adapters against the real packages from PyPI, and the Prometheus collector."""

import json
import logging

import pytest
from fake_openai import FakeOpenAI, Turn, function_call, message

import ace


def _trace(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def _stages(events, **match):
    return [e for e in events if e["type"] == "stage" and all(e.get(k) == v for k, v in match.items())]


# -- LangChain and LangGraph ----------------------------------------------------------------------


def _lookup_tool():
    from langchain_core.tools import tool

    @tool
    def lookup_order(order: str) -> str:
        """Looks an order up."""
        if order == "bad":
            raise ConnectionError("connection to orders-db-1:5432 refused")
        return "shipped"

    return lookup_order


def test_langgraph_agent_on_a_chat_model_records_llm_tokens_tools_and_pauses_at_an_interrupt(tmp_path):
    from typing import Annotated, TypedDict

    from langchain_core.messages import HumanMessage
    from langchain_openai import ChatOpenAI
    from langgraph.checkpoint.memory import InMemorySaver
    from langgraph.graph import END, START, StateGraph
    from langgraph.graph.message import add_messages
    from langgraph.prebuilt import ToolNode
    from langgraph.types import Command, interrupt

    from ace.integrations.langchain import AceCallbackHandler

    lookup_order = _lookup_tool()

    class State(TypedDict):
        messages: Annotated[list, add_messages]
        approved: bool

    path = tmp_path / "trace.jsonl"
    eng = ace.Ace(config={"trace_path": str(path)})
    turns = [
        Turn([function_call("lookup_order", {"order": "A1"})], 120, 18),
        Turn([function_call("lookup_order", {"order": "bad"})], 140, 20),
        Turn([message("Order A1 has shipped.")], 160, 9),
    ]
    with FakeOpenAI(turns) as api:
        llm = ChatOpenAI(model="gpt-4.1-mini", base_url=api.base_url, api_key="sk-test").bind_tools([lookup_order])

        def agent(state):
            return {"messages": [llm.invoke(state["messages"])]}

        def approve(state):
            return {"approved": interrupt("send the reply?")}

        graph = StateGraph(State)
        graph.add_node("agent", agent)
        graph.add_node("tools", ToolNode([lookup_order], handle_tool_errors=True))
        graph.add_node("approve", approve)
        graph.add_edge(START, "agent")
        graph.add_conditional_edges("agent", lambda s: "tools" if s["messages"][-1].tool_calls else "approve", ["tools", "approve"])
        graph.add_edge("tools", "agent")
        graph.add_edge("approve", END)
        app = graph.compile(checkpointer=InMemorySaver())
        handler = AceCallbackHandler(eng, agent="support-bot")
        config = {"configurable": {"thread_id": "ticket-7"}, "callbacks": [handler]}
        paused = app.invoke({"messages": [HumanMessage("where is A1?")]}, config)
        assert paused["__interrupt__"][0].value == "send the reply?"
        eng.flush()
        assert eng.stats()["open_tasks"] == 1, "a graph paused for a human keeps its task open"
        assert app.invoke(Command(resume=True), config)["approved"] is True
    eng.close()

    events = _trace(path)
    assert {(e["agent"], e["task"]) for e in events} == {("support-bot", "ticket-7")}, "the LangGraph thread is the task"
    llm_calls = _stages(events, stage="llm")
    assert [s["metrics"] for s in llm_calls] == [
        {"tokens_in": 120.0, "tokens_out": 18.0},
        {"tokens_in": 140.0, "tokens_out": 20.0},
        {"tokens_in": 160.0, "tokens_out": 9.0},
    ]
    tools = _stages(events, stage="tool")
    assert [(t["tool"], t["success"]) for t in tools] == [("lookup_order", True), ("lookup_order", False)]
    assert tools[0]["args_digest"] != tools[1]["args_digest"]
    errors = [(e["stage"], e["kind"], e["message"]) for e in events if e["type"] == "error"]
    assert errors == [("tool", "ConnectionError", "connection to orders-db-1:5432 refused")]
    approve = _stages(events, stage="approve")
    assert [a["success"] for a in approve] == [True], "the interrupted run is a pause, recorded once when it resumes"
    assert not any(e["type"] == "error" and e["stage"] == "approve" for e in events)
    ends = [i for i, e in enumerate(events) if e["type"] == "task_end"]
    assert ends == [len(events) - 1], "the task ends once, with the resumed run"


def test_langchain_usage_metadata_comes_first_and_legacy_token_usage_is_the_fallback(tmp_path):
    from langchain_core.language_models.chat_models import BaseChatModel
    from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
    from langchain_core.messages import AIMessage
    from langchain_core.outputs import ChatGeneration, ChatResult

    from ace.integrations.langchain import AceCallbackHandler

    class LegacyModel(BaseChatModel):
        @property
        def _llm_type(self) -> str:
            return "legacy"

        def _generate(self, messages, stop=None, run_manager=None, **kwargs):
            return ChatResult(
                generations=[ChatGeneration(message=AIMessage("ok"))],
                llm_output={"token_usage": {"prompt_tokens": 31, "completion_tokens": 4}},
            )

    path = tmp_path / "trace.jsonl"
    eng = ace.Ace(config={"trace_path": str(path)})
    modern = GenericFakeChatModel(messages=iter([AIMessage("hi", usage_metadata={"input_tokens": 57, "output_tokens": 3, "total_tokens": 60})]))
    handler = AceCallbackHandler(eng, agent="bot", task="t-1")
    modern.invoke("hello", config={"callbacks": [handler]})
    LegacyModel().invoke("hello", config={"callbacks": [handler]})
    eng.close()
    assert [s["metrics"] for s in _stages(_trace(path), stage="llm")] == [
        {"tokens_in": 57.0, "tokens_out": 3.0},
        {"tokens_in": 31.0, "tokens_out": 4.0},
    ]


def test_langchain_handler_takes_the_current_task_and_leaves_it_open(tmp_path):
    from langchain_core.runnables import RunnableLambda

    from ace.integrations.langchain import AceCallbackHandler

    lookup_order = _lookup_tool()
    path = tmp_path / "trace.jsonl"
    eng = ace.Ace(config={"trace_path": str(path)})
    handler = AceCallbackHandler(eng)
    chain = RunnableLambda(lambda order: lookup_order.invoke(order))
    with eng.task("concierge", "ticket-42"):
        assert chain.invoke("A1", config={"callbacks": [handler]}) == "shipped"
        with pytest.raises(ConnectionError):
            chain.invoke("bad", config={"callbacks": [handler]})
    chain.invoke("A2", config={"callbacks": [handler]})
    eng.close()
    events = _trace(path)
    tools = _stages(events, stage="tool")
    assert [(t["agent"], t["task"], t["success"]) for t in tools[:2]] == [("concierge", "ticket-42", True), ("concierge", "ticket-42", False)]
    assert tools[2]["agent"] == "langchain-agent" and tools[2]["task"] != "ticket-42", "outside the block: the run's own task"
    errors = [(e["task"], e["stage"], e["kind"]) for e in events if e["type"] == "error"]
    assert errors == [("ticket-42", "tool", "ConnectionError"), ("ticket-42", "chain.runnablelambda", "ConnectionError")]
    assert [e["task"] for e in events if e["type"] == "task_end" and e["agent"] == "concierge"] == ["ticket-42"], (
        "ended once, by the block that opened it, not by the adapter"
    )


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


# -- OpenAI Agents SDK ----------------------------------------------------------------------------


def _support_agents():
    from agents import Agent, GuardrailFunctionOutput, function_tool, input_guardrail

    @function_tool
    def lookup_order(order: str) -> str:
        """Looks an order up."""
        if order == "bad":
            raise ConnectionError("connection to orders-db-1:5432 refused")
        return "shipped"

    @input_guardrail
    def polite(ctx, agent, text):
        return GuardrailFunctionOutput(output_info=None, tripwire_triggered=False)

    billing = Agent(name="billing", instructions="Answer order questions.", tools=[lookup_order])
    triage = Agent(name="triage", instructions="Route the customer.", handoffs=[billing], input_guardrails=[polite])
    return triage


def _support_turns():
    return [
        Turn([function_call("transfer_to_billing", {})], 50, 5),
        Turn([function_call("lookup_order", {"order": "A1"})], 120, 18),
        Turn([function_call("lookup_order", {"order": "bad"})], 140, 20),
        Turn([message("Order A1 has shipped.")], 160, 9),
    ]


@pytest.fixture
def openai_agents_api():
    """The fake Responses API as the SDK's default client; the SDK's own exporter is off."""
    from agents import set_default_openai_client, set_trace_processors
    from openai import AsyncOpenAI

    with FakeOpenAI(_support_turns()) as api:
        set_default_openai_client(AsyncOpenAI(base_url=api.base_url, api_key="sk-test"), use_for_tracing=False)
        yield api
    set_trace_processors([])


def test_openai_agents_default_model_records_responses_tools_handoffs_and_guardrails(tmp_path, openai_agents_api):
    from agents import RunConfig, Runner, set_trace_processors
    from agents.models import get_default_model

    from ace.integrations.openai_agents import AceTracingProcessor

    path = tmp_path / "trace.jsonl"
    eng = ace.Ace(config={"trace_path": str(path)})
    proc = AceTracingProcessor(eng)
    set_trace_processors([proc])
    result = Runner.run_sync(_support_agents(), "where is my order A1?", run_config=RunConfig(trace_include_sensitive_data=True))
    assert result.final_output == "Order A1 has shipped."
    eng.close()

    api = openai_agents_api
    assert [r["path"] for r in api.requests] == ["/v1/responses"] * 4, "the default model is the Responses model"
    assert {r["body"]["model"] for r in api.requests} == {get_default_model()}
    events = _trace(path)
    tasks = {e["task"] for e in events}
    assert len(tasks) == 1 and tasks.pop().startswith("trace_"), "the trace is the task"
    llm = _stages(events, stage="llm")
    assert [(s["agent"], s["metrics"]) for s in llm] == [
        ("triage", {"tokens_in": 50.0, "tokens_out": 5.0}),
        ("billing", {"tokens_in": 120.0, "tokens_out": 18.0}),
        ("billing", {"tokens_in": 140.0, "tokens_out": 20.0}),
        ("billing", {"tokens_in": 160.0, "tokens_out": 9.0}),
    ]
    tools = _stages(events, stage="tool")
    assert [(t["agent"], t["tool"], t["success"]) for t in tools] == [("billing", "lookup_order", True), ("billing", "lookup_order", False)]
    assert tools[0]["args_digest"] != tools[1]["args_digest"]
    assert [(s["agent"], s["success"]) for s in _stages(events, stage="handoff")] == [("triage", True)]
    (guard,) = _stages(events, stage="guardrail.polite")
    assert guard["agent"] == "triage" and guard["metrics"] == {"triggered": 0.0}
    errors = [(e["agent"], e["stage"], e["kind"]) for e in events if e["type"] == "error"]
    assert errors == [("billing", "tool", "Error running tool (non-fatal)")]
    assert sorted(e["agent"] for e in events if e["type"] == "task_end") == ["billing", "triage"], "the trace's end ends its tasks"


def test_openai_agents_processor_uses_the_current_task(tmp_path, openai_agents_api):
    from agents import Runner, set_trace_processors

    from ace.integrations.openai_agents import AceTracingProcessor

    path = tmp_path / "trace.jsonl"
    eng = ace.Ace(config={"trace_path": str(path)})
    set_trace_processors([AceTracingProcessor(eng)])
    with eng.task("concierge", "ticket-42"):
        Runner.run_sync(_support_agents(), "where is my order A1?")
    eng.close()
    events = _trace(path)
    assert {e["task"] for e in events} == {"ticket-42"}
    assert not any(e["type"] == "task_end" and e["agent"] != "concierge" for e in events), "the block owns the task"


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
