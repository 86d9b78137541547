// A breaker opened by another process, through the shared Redis (127.0.0.1:6379 or
// ACE_TEST_REDIS_URL): once this process knows of it, the very next call is turned away, even on
// the JS fast path that counts successes without asking the core.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { randomUUID } from 'node:crypto'
import { fileURLToPath } from 'node:url'
import ace from '../ace.js'

const { Ace } = ace
const REDIS_URL = process.env.ACE_TEST_REDIS_URL || 'redis://127.0.0.1:6379'
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

test('a breaker opened in another process turns the next call away', async () => {
  const name = `llm-${randomUUID()}`
  const eng = await Ace.open(undefined, { cache: REDIS_URL })
  const b = eng.breaker(name)
  const ok = async () => 1
  for (let i = 0; i < 5; i++) assert.equal(await b.call(ok), 1, 'closed: the fast path serves')
  // Another process fails five times in a row: its breaker opens, and its writer publishes it.
  const pkg = fileURLToPath(new URL('../ace.js', import.meta.url))
  const script = `
    const { Ace } = require(${JSON.stringify(pkg)})
    ;(async () => {
      const eng = await Ace.open(undefined, { cache: ${JSON.stringify(REDIS_URL)} })
      const b = eng.breaker(${JSON.stringify(name)})
      for (let i = 0; i < 5; i++) await b.call(async () => { throw new Error('timeout') }).catch(() => {})
      if (b.state !== 'open') throw new Error('the other process did not open its breaker')
      await new Promise((resolve) => setTimeout(resolve, 2500))
      await eng.close()
    })().catch((e) => { console.error(e); process.exit(1) })
  `
  const child = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', timeout: 30000 })
  assert.equal(child.status, 0, child.stderr)
  // This process hears of it within a sync or two (about a second each; usually while the
  // other process waits). The fast path is still on: five calls of its 32 were made.
  const deadline = Date.now() + 10000
  while (b.state !== 'open') {
    assert.ok(Date.now() < deadline, 'this process never heard of the opening')
    await sleep(50)
  }
  // The next call: turned away, without running.
  let ran = false
  await assert.rejects(b.call(async () => { ran = true }), (e) => e instanceof ace.CircuitOpenError && e.breaker === name)
  assert.equal(ran, false)
  await eng.close()
})

/** Runs `body` (a script using `eng` and `b`, the breaker `name` on the shared Redis) in another process. */
function other(name, body) {
  const pkg = fileURLToPath(new URL('../ace.js', import.meta.url))
  const script = `
    const { Ace } = require(${JSON.stringify(pkg)})
    ;(async () => {
      const eng = await Ace.open(undefined, { cache: ${JSON.stringify(REDIS_URL)} })
      const b = eng.breaker(${JSON.stringify(name)})
      ${body}
      await eng.close()
    })().catch((e) => { console.error(e); process.exit(1) })
  `
  const child = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', timeout: 30000 })
  assert.equal(child.status, 0, child.stderr)
}

const fail = 'for (let i = 0; i < 2; i++) await b.call(async () => { throw new Error("timeout") }).catch(() => {})'

test('failures in a row add up across processes, and a success here ends the run', async () => {
  const down = async () => { throw new Error('timeout') }
  // Three failures here, one success: the run is over, even with the success on the fast path.
  const name = `search-${randomUUID()}`
  const eng = await Ace.open(undefined, { cache: REDIS_URL })
  const b = eng.breaker(name)
  for (let i = 0; i < 3; i++) await assert.rejects(b.call(down))
  assert.equal(await b.call(async () => 1), 1)
  // Two more in another process (it stays up for three exchanges): five failures, not in a row.
  other(name, `${fail}; await new Promise((resolve) => setTimeout(resolve, 3000))`)
  assert.equal(b.state, 'closed', 'a success ended the run here: the fleet has two in a row')
  // Three failures here, none after: with the other process's two, five in a row fleet-wide.
  const name2 = `search-${randomUUID()}`
  const b2 = eng.breaker(name2)
  for (let i = 0; i < 3; i++) await assert.rejects(b2.call(down))
  assert.equal(b2.state, 'closed', 'three of five here')
  other(name2, `${fail}; await new Promise((resolve) => setTimeout(resolve, 3000))`)
  const deadline = Date.now() + 10000
  while (b2.state !== 'open') {
    assert.ok(Date.now() < deadline, 'the fleet-wide run never opened the breaker')
    await sleep(50)
  }
  await eng.close()
})
