"""ace as an OpenAI Agents SDK tracing processor (spans made by hand: no API key needed; the
tests run a real agent against a local fake Responses endpoint)."""

from agents.tracing import SpanError, agent_span, function_span, generation_span, set_trace_processors, trace

import ace
from ace.integrations.openai_agents import AceTracingProcessor

eng = ace.Ace()
processor = AceTracingProcessor(eng)
set_trace_processors([processor])  # add_trace_processor(...) keeps the SDK's own exporter too

for attempt in range(3):
    with trace("book-a-flight"):
        with agent_span(name="travel-agent"):
            with generation_span(model="gpt-4o", usage={"input_tokens": 900, "output_tokens": 120}):
                pass
            with function_span(name="search_flights", input='{"to": "LIS"}') as span:
                # what the SDK attaches when a tool raises
                span.set_error(
                    SpanError(message="Error running tool", data={"tool_name": "search_flights", "error": f"connection to api-{attempt}:443 refused"})
                )

set_trace_processors([])
eng.flush()
print("interventions:", [i.strategy for i in processor.interventions])
print("llm tokens_in baseline:", eng.baseline("travel-agent", "llm", "tokens_in")["mean"])
eng.close()
