// Reflection with an OpenAI-compatible chat model: when a task fails, ace summarises what it saw
// (stages, errors, interventions and their outcomes) and the model turns that into playbook
// insights, merged at `shadow` with the usual de-dup.
//
// With OPENAI_API_KEY set (and OPENAI_BASE_URL for any compatible server) it asks the model
// through the `openai` package; without it, a deterministic stand-in answers, so the example runs
// offline.
import { realpathSync } from 'node:fs'
import { pathToFileURL } from 'node:url'
import ace from 'agent-ace'

const { Ace } = ace

export const PROMPT =
  'You review a failed task of an AI agent. From the summary, write at most 3 short, general ' +
  'pieces of advice that would have avoided the failure. Answer JSON: {"insights": ' +
  '[{"section": "pitfalls" or "strategies", "content": "..."}]}'

/** A reflector for `eng.reflect` that asks an OpenAI-compatible chat completions API. */
export function llmReflector(client, model = 'gpt-4o-mini') {
  return async (summary) => {
    const reply = await client.chat.completions.create({
      model,
      messages: [
        { role: 'system', content: PROMPT },
        { role: 'user', content: summary },
      ],
      response_format: { type: 'json_object' },
    })
    const data = JSON.parse(reply.choices[0].message.content || '{}')
    return (data.insights || []).slice(0, 3).map((i) => ({ section: String(i.section), content: String(i.content) }))
  }
}

/** Answers like a chat model would, deterministically: one pitfall per error in the summary. */
export class OfflineClient {
  constructor() {
    this.chat = { completions: { create: async (request) => this.#create(request) } }
  }

  #create({ messages }) {
    const errors = messages
      .at(-1)
      .content.split('\n')
      .filter((line) => line.startsWith('error '))
      .map((line) => line.slice('error '.length))
    const insights = errors.map((e) => ({ section: 'pitfalls', content: `Check for this before retrying: ${e}` }))
    return { choices: [{ message: { content: JSON.stringify({ insights }) } }] }
  }
}

async function main() {
  let client
  if (process.env.OPENAI_API_KEY) {
    const { default: OpenAI } = await import('openai')
    client = new OpenAI()
  } else {
    client = new OfflineClient()
  }
  const eng = new Ace()
  for (let i = 0; i < 3; i++) eng.recordStage('support-bot', 't-1', 'execution', 1.2, false)
  eng.recordError('support-bot', 't-1', 'execution', 'ConnectionError', 'connection to orders-db:5432 refused')
  eng.endTask('support-bot', 't-1', false)
  const done = await eng.reflect('support-bot', 't-1', llmReflector(client))
  console.log(done.summary.text)
  console.log('added:', done.report.added)
  console.log((await eng.playbooks.render('support-bot', { minStage: 'shadow' })).text)
  await eng.close()
}

// Run as a script (not when a test imports it for `llmReflector` and `OfflineClient`).
if (process.argv[1] && import.meta.url === pathToFileURL(realpathSync(process.argv[1])).href) await main()
