// ace in a Node agent: record stages and errors, act on interventions, guard a dependency.
// --8<-- [start:quickstart]
import ace from 'agent-ace'

const { Ace, CircuitOpenError } = ace

const eng = new Ace() // in memory; await Ace.open('sqlite:///path/ace.db') or Ace.fromEnv() persist
eng.on('intervention', (i) => console.log(`intervention for ${i.task}: ${i.strategy} (${i.reason})`))

// A stage is timed around a callback; a throw marks it failed and is recorded as an error.
for (let task = 0; task < 30; task++) {
  await eng.stage('agent-1', `task-${task}`, 'planning', async (s) => {
    s.metric('tokens_in', 800 + task)
  })
}

// Errors are grouped into patterns; three of one pattern in a task is an accumulation.
let report
for (const port of [5432, 5433, 5434]) {
  report = eng.recordError('agent-1', 'task-99', 'execution', new Error(`connection to db-1:${port} refused`))
}
console.log(report.template, report.occurrences, report.signals.map((s) => s.kind))

// A circuit breaker guards a flaky dependency.
const llm = eng.breaker('llm', { failures: 3, waitSeconds: 30 })
for (let i = 0; i < 4; i++) {
  try {
    await llm.call(async () => {
      throw new Error('the model did not answer')
    })
  } catch (e) {
    if (e instanceof CircuitOpenError) console.log(`breaker ${e.breaker} is ${e.state}; retry after ${Math.round(e.retryAfter)} s`)
  }
}

// The playbook keeps strategies that worked.
await eng.playbooks.merge('support', [['strategies', 'Check the order status before promising a refund']])
console.log((await eng.playbooks.render('support', { query: 'refund' })).text || '(no bullet is out of shadow yet)')

await eng.flush()
console.log((await eng.health()).status, eng.stats().recorded)
await eng.close()
// --8<-- [end:quickstart]
