"""AceSpanProcessor fed by the frameworks' own OpenTelemetry instrumentation (no hand-made spans):
Pydantic AI's built-in instrumentation, and the OpenAI Agents SDK and LangGraph through the
opentelemetry-instrumentation-* packages, each running a real agent against a local fake OpenAI
endpoint. What ace records is read back from the trace the engine writes, field by field."""

import json

import pytest
from fake_openai import FakeOpenAI, Turn, function_call, message
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import ace
from ace.integrations.otel import AceSpanProcessor

TURNS = [
    (function_call("lookup_order", {"order": "A1"}), 120, 18),
    (function_call("lookup_order", {"order": "A1"}), 140, 20),
    (function_call("lookup_order", {"order": "bad"}), 160, 22),
    (message("Order A1 has shipped."), 180, 9),
]


def _turns():
    return [Turn([item], tokens_in, tokens_out) for item, tokens_in, tokens_out in TURNS]


def _lookup(order: str) -> str:
    """Looks an order up."""
    if order == "bad":
        raise ConnectionError("connection to orders-db-1:5432 refused")
    return "shipped"


@pytest.fixture
def pipeline(tmp_path):
    """An engine writing its trace, and a tracer provider feeding it (and an in-memory exporter)."""
    path = tmp_path / "trace.jsonl"
    eng = ace.Ace(config={"trace_path": str(path)})
    proc = AceSpanProcessor(eng)
    provider = TracerProvider(resource=Resource.create({"service.name": "shop"}))
    exporter = InMemorySpanExporter()
    provider.add_span_processor(proc)
    provider.add_span_processor(SimpleSpanProcessor(exporter))

    def events():
        eng.close()
        with open(path) as f:
            return [json.loads(line) for line in f if line.strip()]

    yield provider, proc, exporter, events
    provider.shutdown()
    if not eng.closed:
        eng.close()


def _check_llm_and_tools(events, agent):
    stages = [e for e in events if e["type"] == "stage"]
    llm = [s for s in stages if s["stage"] == "llm"]
    assert [(s["agent"], s["metrics"]["tokens_in"], s["metrics"]["tokens_out"]) for s in llm] == [
        (agent, float(i), float(o)) for _, i, o in TURNS
    ]
    tools = [s for s in stages if s.get("tool")]
    assert [(t["agent"], t["tool"], t["success"]) for t in tools] == [
        (agent, "lookup_order", True),
        (agent, "lookup_order", True),
        (agent, "lookup_order", False),
    ]
    assert all(t["duration_s"] >= 0 for t in stages)
    return tools


def test_pydantic_ai_own_instrumentation(pipeline):
    from pydantic_ai import Agent, InstrumentationSettings, ModelRetry
    from pydantic_ai.capabilities.instrumentation import Instrumentation
    from pydantic_ai.models.openai import OpenAIResponsesModel
    from pydantic_ai.providers.openai import OpenAIProvider

    provider, proc, exporter, events = pipeline
    with FakeOpenAI(_turns()) as api:
        model = OpenAIResponsesModel("gpt-4.1", provider=OpenAIProvider(base_url=api.base_url, api_key="sk-test"))
        agent = Agent(model, name="support", capabilities=[Instrumentation(settings=InstrumentationSettings(tracer_provider=provider))])

        @agent.tool_plain
        def lookup_order(order: str) -> str:
            """Looks an order up."""
            try:
                return _lookup(order)
            except ConnectionError as e:  # pydantic-ai's way: the model is told and tries again
                raise ModelRetry(str(e)) from e

        assert agent.run_sync("where is my order A1?").output == "Order A1 has shipped."
    spans = exporter.get_finished_spans()
    (root,) = [s for s in spans if s.attributes.get("gen_ai.operation.name") == "invoke_agent"]
    conversation = root.attributes["gen_ai.conversation.id"]
    counts = proc.counts
    recorded = events()
    assert counts["recorded"] == 8 and counts["failed"] == 0 and counts["malformed"] == 0
    assert {(e["agent"], e["task"]) for e in recorded} == {("support", conversation)}, "agent and conversation from the spans"
    tools = _check_llm_and_tools(recorded, "support")
    assert tools[0]["args_digest"] == tools[1]["args_digest"] != tools[2]["args_digest"]
    errors = [(e["stage"], e["kind"], e["message"]) for e in recorded if e["type"] == "error"]
    assert errors == [("tool", "pydantic_ai.exceptions.ToolRetryError", "connection to orders-db-1:5432 refused")]
    (run,) = [e for e in recorded if e["type"] == "stage" and e["stage"] == "invoke_agent"]
    assert run["success"] is True
    assert recorded[-1]["type"] == "task_end"


def test_openai_agents_through_opentelemetry_instrumentation_openai_agents(pipeline):
    from agents import Agent, RunConfig, Runner, function_tool, set_default_openai_client, set_trace_processors
    from openai import AsyncOpenAI
    from opentelemetry.instrumentation.openai_agents import OpenAIAgentsInstrumentor

    provider, proc, exporter, events = pipeline
    instrumentor = OpenAIAgentsInstrumentor(replace_existing_processors=True)
    instrumentor.instrument(tracer_provider=provider)
    try:
        with FakeOpenAI(_turns()) as api:
            set_default_openai_client(AsyncOpenAI(base_url=api.base_url, api_key="sk-test"), use_for_tracing=False)
            agent = Agent(name="billing", instructions="Answer order questions.", tools=[function_tool(_lookup, name_override="lookup_order")])
            result = Runner.run_sync(agent, "where is my order A1?", run_config=RunConfig(trace_include_sensitive_data=True))
            assert result.final_output == "Order A1 has shipped."
            assert {r["path"] for r in api.requests} == {"/v1/responses"}
    finally:
        instrumentor.uninstrument()
        set_trace_processors([])
    trace_id = format(exporter.get_finished_spans()[0].context.trace_id, "032x")
    counts = proc.counts
    recorded = events()
    assert counts["recorded"] == 8 and counts["failed"] == 0
    assert {(e["agent"], e["task"]) for e in recorded} == {("billing", trace_id)}, "the agent span names the agent; the trace is the task"
    tools = _check_llm_and_tools(recorded, "billing")
    assert tools[0]["args_digest"] == tools[1]["args_digest"] != tools[2]["args_digest"]
    errors = [(e["stage"], e["kind"]) for e in recorded if e["type"] == "error"]
    assert errors == [("tool", "SpanError")], "the failed tool span (status ERROR)"
    (run,) = [e for e in recorded if e["type"] == "stage" and e["stage"] == "invoke_agent"]
    assert run["success"] is True


def test_langgraph_through_opentelemetry_instrumentation_langchain(pipeline):
    from typing import Annotated, TypedDict

    from langchain_core.messages import HumanMessage
    from langchain_core.tools import tool
    from langchain_openai import ChatOpenAI
    from langgraph.graph import END, START, StateGraph
    from langgraph.graph.message import add_messages
    from langgraph.prebuilt import ToolNode
    from opentelemetry.instrumentation.langchain import LangchainInstrumentor

    provider, proc, exporter, events = pipeline
    lookup_order = tool("lookup_order")(_lookup)

    class State(TypedDict):
        messages: Annotated[list, add_messages]

    instrumentor = LangchainInstrumentor()
    instrumentor.instrument(tracer_provider=provider)
    try:
        with FakeOpenAI(_turns()) as api:
            llm = ChatOpenAI(model="gpt-4.1-mini", base_url=api.base_url, api_key="sk-test").bind_tools([lookup_order])
            graph = StateGraph(State)
            graph.add_node("agent", lambda s: {"messages": [llm.invoke(s["messages"])]})
            graph.add_node("tools", ToolNode([lookup_order], handle_tool_errors=True))
            graph.add_edge(START, "agent")
            graph.add_conditional_edges("agent", lambda s: "tools" if s["messages"][-1].tool_calls else END, ["tools", END])
            graph.add_edge("tools", "agent")
            out = graph.compile(name="support").invoke({"messages": [HumanMessage("where is A1?")]})
            assert out["messages"][-1].content == "Order A1 has shipped."
    finally:
        instrumentor.uninstrument()
    counts = proc.counts
    recorded = events()
    assert counts["failed"] == 0 and counts["malformed"] == 0
    # This instrumentation names the agent only when the graph's span ends, after the spans under
    # it: those fall back to the resource's service name.
    assert {e["agent"] for e in recorded if e["type"] == "stage" and e["stage"] == "invoke_agent"} == {"support"}
    _check_llm_and_tools(recorded, "shop")
    errors = [(e["stage"], e["kind"], e["message"]) for e in recorded if e["type"] == "error"]
    assert errors == [("tool", "ConnectionError", "connection to orders-db-1:5432 refused")]
