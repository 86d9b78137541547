// ace watching a LangChain.js pipeline through its callback handler (a fake chat model).
import { RunnableLambda } from '@langchain/core/runnables'
import { tool } from '@langchain/core/tools'
import { FakeListChatModel } from '@langchain/core/utils/testing'
import ace from 'agent-ace'
import { AceCallbackHandler } from 'agent-ace/integrations/langchain.mjs'

const eng = new ace.Ace()
const orderStatus = tool(
  async (id) => {
    if (id.startsWith('x')) throw new Error('connection to orders-db-1:5432 refused')
    return 'shipped'
  },
  { name: 'order_status', description: 'Looks up an order.' },
)
const llm = new FakeListChatModel({ responses: Array(10).fill('Your order has shipped.') })
const handler = new AceCallbackHandler(eng, { agent: 'support-bot' })
const chain = RunnableLambda.from((id, config) => orderStatus.invoke(id, config)).pipe(
  RunnableLambda.from(async (s, config) => (await llm.invoke(s, config)).content),
)
console.log(await chain.invoke('A-1', { callbacks: [handler] }))
for (const id of ['x-1', 'x-2', 'x-3']) await chain.invoke(id, { callbacks: [handler] }).catch(() => {})
console.log('interventions:', handler.interventions.map((i) => i.strategy))
console.log(eng.patterns().map((p) => p.template))
await eng.close()
