"""ace fed by OpenTelemetry: any program whose spans follow the GenAI semantic conventions (here
made with the tracer directly, as a hand-instrumented agent would) is watched through the span
processor, and ace's interventions go back onto the spans as events."""

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import ace
from ace.integrations.otel import AceSpanProcessor, attach_events

eng = ace.Ace()
provider = TracerProvider(resource=Resource.create({"service.name": "travel-desk"}))
# --8<-- [start:otel]
provider.add_span_processor(AceSpanProcessor(eng))  # GenAI spans in
attach_events(eng)  # interventions out, as span events
# --8<-- [end:otel]
exporter = InMemorySpanExporter()  # stands in for the exporter the app already has
provider.add_span_processor(SimpleSpanProcessor(exporter))
tracer = provider.get_tracer("travel-desk")

agent = {"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "travel-agent", "gen_ai.conversation.id": "trip-17"}
with tracer.start_as_current_span("invoke_agent travel-agent", attributes=agent):
    with tracer.start_as_current_span("chat gpt-4.1", attributes={"gen_ai.operation.name": "chat", "gen_ai.usage.input_tokens": 900, "gen_ai.usage.output_tokens": 120}):
        pass
    for attempt in range(3):
        tool = {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "search_flights", "gen_ai.tool.call.arguments": '{"to": "LIS"}'}
        try:
            with tracer.start_as_current_span("execute_tool search_flights", attributes=tool):
                raise ConnectionError(f"connection to api-{attempt}:443 refused")
        except ConnectionError:
            pass

eng.flush()
print("llm tokens_in baseline:", eng.baseline("travel-agent", "llm", "tokens_in")["mean"])
(root,) = [s for s in exporter.get_finished_spans() if s.name.startswith("invoke_agent")]
print("events on the agent span:", [(e.name, e.attributes.get("ace.intervention.strategy")) for e in root.events if e.name == "ace.intervention"])
eng.close()
