// Per-call cost of ace from Node, side by side with the libraries it replaces, in one run:
//
// - recording a stage:   ace.recordStage  vs prom-client (a labelled histogram + counter)
// - recording an error:  ace.recordError  vs prom-client (a labelled counter; it mines nothing)
// - a call through a closed breaker: ace (call, and tryAcquire/success) vs cockatiel vs opossum
// - a retried call whose first attempt works: ace Retry vs cockatiel retry
// - a call through a timeout, and through fallback ( retry ( breaker ( timeout ) ) ): ace Policy vs
//   cockatiel (timeout, wrap) and opossum (a breaker with its timeout and fallback)
//
//   node benches/node/compare.mjs           # the full run (figures in docs/node.md)
//   node benches/node/compare.mjs --quick   # a smoke run (CI)
import { createRequire } from 'node:module'

const require = createRequire(new URL('../../ace-node/package.json', import.meta.url))
const ace = require('./ace.js')
const client = require('prom-client')
const { ConsecutiveBreaker, ExponentialBackoff, TimeoutStrategy, fallback, handleAll, circuitBreaker, retry, timeout, wrap } = require('cockatiel')
const Opossum = require('opossum')

const quick = process.argv.includes('--quick')
const N = quick ? 2_000 : 200_000
const REPEATS = quick ? 1 : 5

async function perCall(fn, n = N) {
  let best = Infinity
  for (let r = 0; r < REPEATS; r++) {
    const t = process.hrtime.bigint()
    await fn(n)
    best = Math.min(best, Number(process.hrtime.bigint() - t) / n)
  }
  return best
}

const eng = new ace.Ace()
const quiet = await ace.Ace.open(undefined, { persist: false })
const rows = []

const registry = new client.Registry()
const hist = new client.Histogram({ name: 'stage_seconds', help: 'x', labelNames: ['agent', 'stage'], registers: [registry] })
const count = new client.Counter({ name: 'stages', help: 'x', labelNames: ['agent', 'stage', 'success'], registers: [registry] })
const errors = new client.Counter({ name: 'errors', help: 'x', labelNames: ['agent', 'kind'], registers: [registry] })

rows.push([
  'record a stage',
  await perCall((n) => {
    for (let i = 0; i < n; i++) quiet.recordStage('agent-1', 'task-1', 'planning', 0.5, true)
  }),
  'prom-client',
  await perCall((n) => {
    for (let i = 0; i < n; i++) {
      hist.labels('agent-1', 'planning').observe(0.5)
      count.labels('agent-1', 'planning', 'true').inc()
    }
  }),
])

const messages = Array.from({ length: 1000 }, (_, i) => `connection to db-${i % 50}:${5432 + (i % 7)} refused after ${i % 1000} ms`)
// Made before the clock starts, as the messages are: the loop times the call, not the formatting
// of its arguments.
const tasks = Array.from({ length: 100 }, (_, t) => `task-${t}`)
const ne = Math.max(N / 10, 1000)
rows.push([
  'record an error',
  await perCall((n) => {
    for (let i = 0; i < n; i++) quiet.recordError('agent-1', tasks[i % 100], 'execution', 'ConnectionError', messages[i % 1000])
  }, ne),
  'prom-client (count only)',
  await perCall((n) => {
    for (let i = 0; i < n; i++) errors.labels('agent-1', 'ConnectionError').inc()
  }, ne),
])

const noop = async () => 1
const b = quiet.breaker('bench')
const aceCall = await perCall(async (n) => {
  for (let i = 0; i < n; i++) await b.call(noop)
})
const aceTry = await perCall(async (n) => {
  for (let i = 0; i < n; i++) {
    const p = b.tryAcquire()
    await noop()
    p.success()
  }
})
const cockatiel = circuitBreaker(handleAll, { halfOpenAfter: 60_000, breaker: new ConsecutiveBreaker(5) })
const cockatielNs = await perCall(async (n) => {
  for (let i = 0; i < n; i++) await cockatiel.execute(noop)
})
const opossum = new Opossum(noop, { timeout: false, errorThresholdPercentage: 50, resetTimeout: 60_000 })
const opossumNs = await perCall(async (n) => {
  for (let i = 0; i < n; i++) await opossum.fire()
})
const bare = await perCall(async (n) => {
  for (let i = 0; i < n; i++) await noop()
})
const aceRetry = new ace.Retry('bench')
const aceRetryNs = await perCall(async (n) => {
  for (let i = 0; i < n; i++) await aceRetry.call(noop)
})
const cockatielRetry = retry(handleAll, { maxAttempts: 2, backoff: new ExponentialBackoff() })
const cockatielRetryNs = await perCall(async (n) => {
  for (let i = 0; i < n; i++) await cockatielRetry.execute(noop)
})
rows.push(['closed breaker: call(asyncFn)', aceCall, 'cockatiel', cockatielNs])
rows.push(['retry, first attempt works', aceRetryNs, 'cockatiel', cockatielRetryNs])
rows.push(['closed breaker: call(asyncFn)', aceCall, 'opossum', opossumNs])
rows.push(['closed breaker: tryAcquire', aceTry, 'cockatiel', cockatielNs])

// Policies: a timeout of 20 s (never reached), and the four parts composed.
const ns = async (f) => perCall(async (n) => {
  for (let i = 0; i < n; i++) await f()
})
const aceTimeout = new ace.Policy({ timeoutSeconds: 20 })
const cockatielTimeout = timeout(20_000, TimeoutStrategy.Cooperative)
rows.push(['policy: timeout', await ns(() => aceTimeout.execute(noop)), 'cockatiel', await ns(() => cockatielTimeout.execute(noop))])
const acePolicy = new ace.Policy({
  fallback: () => 0, retry: new ace.Retry('bench-policy'), breaker: quiet.breaker('bench-policy'), timeoutSeconds: 20,
})
const cockatielPolicy = wrap(
  fallback(handleAll, () => 0),
  retry(handleAll, { maxAttempts: 2, backoff: new ExponentialBackoff() }),
  circuitBreaker(handleAll, { halfOpenAfter: 60_000, breaker: new ConsecutiveBreaker(5) }),
  timeout(20_000, TimeoutStrategy.Cooperative),
)
const opossumPolicy = new Opossum(noop, { timeout: 20_000, errorThresholdPercentage: 50, resetTimeout: 60_000 })
opossumPolicy.fallback(() => 0)
const acePolicyNs = await ns(() => acePolicy.execute(noop))
rows.push(['policy: fb(retry(breaker(timeout)))', acePolicyNs, 'cockatiel wrap', await ns(() => cockatielPolicy.execute(noop))])
rows.push(['policy: fb(retry(breaker(timeout)))', acePolicyNs, 'opossum (no retry)', await ns(() => opossumPolicy.fire())])

const pad = (s, n) => String(s).padEnd(n)
const num = (x, n) => x.toFixed(0).padStart(n)
console.log(`${pad('operation', 36)} ${'ace ns'.padStart(8)} ${pad('peer', 25)} ${'peer ns'.padStart(8)} ${'peer/ace'.padStart(9)}`)
for (const [op, ours, peer, theirs] of rows) {
  console.log(`${pad(op, 36)} ${num(ours, 8)} ${pad(peer, 25)} ${num(theirs, 8)} ${(theirs / ours).toFixed(1).padStart(8)}x`)
}
console.log(`(awaiting a resolved async function costs ${bare.toFixed(0)} ns here; ${quick ? 'quick run' : `best of ${REPEATS}`})`)
opossum.shutdown()
opossumPolicy.shutdown()
await eng.close()
await quiet.close()
