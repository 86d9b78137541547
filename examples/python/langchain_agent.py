"""ace watching a LangChain pipeline through its callback handler (no model needed: a fake LLM)."""

from langchain_core.language_models.fake import FakeListLLM
from langchain_core.runnables import RunnableLambda
from langchain_core.tools import tool

import ace
from ace.integrations.langchain import AceCallbackHandler

eng = ace.Ace()


@tool
def order_status(order_id: str) -> str:
    """Looks up an order."""
    if order_id.startswith("x"):
        raise ConnectionError("connection to orders-db-1:5432 refused")
    return "shipped"


llm = FakeListLLM(responses=["Your order has shipped."] * 20)
handler = AceCallbackHandler(eng, agent="support-bot")
chain = RunnableLambda(lambda order: order_status.invoke(order)) | RunnableLambda(lambda s: llm.invoke(s))

print(chain.invoke("A-1", config={"callbacks": [handler]}))
for order in ("x-1", "x-2", "x-3"):
    try:
        chain.invoke(order, config={"callbacks": [handler]})
    except ConnectionError:
        pass
print("interventions:", [i.strategy for i in handler.interventions])
eng.flush()
print([p["template"] for p in eng.patterns()])
eng.close()
