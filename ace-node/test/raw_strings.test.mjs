// The raw record calls (src/raw_str.rs, src/raw_record.rs, record.js) against the class methods
// napi-rs builds: strings of every shape (ASCII, not ASCII, astral, around and past the stack
// buffer of 256 code units, lone surrogates, wrong types) and the same-names path of recordStage
// (names kept from the last call) must record what the class method records, or throw the same
// typed error and record nothing.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { createRequire } from 'node:module'
import ace from '../ace.js'

const { Ace, ManualClock } = ace
const require = createRequire(import.meta.url)
const native = require('../index.js')

// Lengths in UTF-16 code units around the stack buffer (256 units, 255 read whole).
const EDGES = [0, 1, 200, 253, 254, 255, 256, 257, 511, 5_000]
const ascii = (n) => 'abcdefghij'.repeat(Math.ceil(n / 10) + 1).slice(0, n)
const SHAPES = [
  'plain',
  'é ü 東京 — not ASCII',
  'astral 🚀 and 🧪 characters',
  '\ufffd is a character too',
  ...EDGES.map(ascii),
  // A surrogate pair across the stack buffer's last units, and long strings not ASCII.
  ascii(253) + '🚀 after',
  ascii(254) + '🚀 after',
  ascii(255) + 'é',
  'é'.repeat(300),
  '東京'.repeat(3_000),
  '🚀'.repeat(2_000),
]

// The metrics that name an agent (the others time the engine's own work, which differs by run).
const agentMetrics = (eng) => eng.metricsText().split('\n').filter((l) => l.startsWith('ace_') && l.includes('agent_id=')).sort().join('\n')
const strip = (r) => ({ ...r, intervention: r.intervention === null ? null : { ...r.intervention, id: 'x' } })

test('messages and kinds of every shape give the class method report', async () => {
  const fast = new Ace({ clock: new ManualClock(1_000) })
  const slow = new Ace({ clock: new ManualClock(1_000) })
  for (const [i, text] of SHAPES.entries()) {
    for (const [kind, message] of [['TimeoutError', text], [text.slice(0, 80) || 'E', 'a message']]) {
      const a = fast.recordError('agent-1', `task-${i}`, 'planning', kind, message)
      const b = slow._engine.recordError('agent-1', `task-${i}`, 'planning', kind, message)
      assert.deepEqual(strip(a), strip(b), `shape ${i} (${text.length} units)`)
    }
  }
  assert.equal(fast.stats().errors, slow.stats().errors)
  assert.deepEqual(fast.patterns(), slow.patterns())
  await fast.close()
  await slow.close()
})

test('ids of every shape are stored whole, under the class method names', async () => {
  const fast = new Ace({ clock: new ManualClock(1_000) })
  const slow = new Ace({ clock: new ManualClock(1_000) })
  // Ids hold at most 256 bytes: the longer shapes must be refused by both, alike.
  for (const [i, text] of SHAPES.entries()) {
    const agent = text === '' ? 'empty' : text
    let a
    let b
    try {
      a = fast.recordStage(agent, `t-${i}`, 'planning', 0.5, true)
    } catch (e) {
      a = e
    }
    try {
      b = slow._engine.recordStage(agent, `t-${i}`, 'planning', 0.5, true)
    } catch (e) {
      b = e
    }
    if (a instanceof Error) {
      assert.ok(a instanceof ace.InvalidInputError, `shape ${i}: ${a}`)
      assert.ok(b instanceof Error, `shape ${i}: the class method took what the fast path refused`)
      continue
    }
    assert.ok(!(b instanceof Error), `shape ${i}: the fast path took what the class method refused: ${b}`)
    assert.notEqual(fast.baseline(agent, 'planning'), null, `shape ${i} stored under its whole id`)
    assert.deepEqual(fast.baseline(agent, 'planning'), slow.baseline(agent, 'planning'), `shape ${i}`)
  }
  assert.equal(fast.stats().recorded, slow.stats().recorded)
  assert.ok(fast.stats().recorded >= 10, `most shapes are valid ids (${fast.stats().recorded})`)
  assert.equal(agentMetrics(fast), agentMetrics(slow))
  assert.ok(agentMetrics(fast).length > 0)
  await fast.close()
  await slow.close()
})

test('a lone surrogate anywhere, in any argument, is InvalidInputError and records nothing', async () => {
  const eng = new Ace()
  const bad = ['\ud800', '\udfff', 'a\ud800', '\udc00a', ascii(254) + '\ud800', ascii(255) + '\ud800', ascii(300) + '\udfff' + 'x', 'é'.repeat(400) + '\ud83d']
  for (const s of bad) {
    for (const pos of [0, 1, 2]) {
      const names = ['a', 't', 'planning']
      names[pos] = s
      assert.throws(() => eng.recordStage(...names, 1), (e) => e instanceof ace.InvalidInputError && e.code === 'invalid_input', `stage ${pos} ${s.length}`)
    }
    for (const pos of [0, 1, 2, 3, 4, 5]) {
      const args = ['a', 't', 'planning', 'E', 'm', 'high']
      args[pos] = s
      assert.throws(() => eng.recordError(...args), (e) => e instanceof ace.InvalidInputError && e.code === 'invalid_input', `error ${pos} ${s.length}`)
    }
  }
  const st = eng.stats()
  assert.equal(st.recorded, 0)
  assert.equal(st.errors, 0)
  await eng.close()
})

test('wrong types are InvalidInputError naming the argument, on the raw calls too', async () => {
  const eng = new Ace()
  const fastApi = native.fastApi()
  for (const wrong of [42, null, undefined, {}, ['a'], Symbol('s'), new String('a'), 1n, true]) {
    assert.throws(() => eng.recordStage(wrong, 't', 'planning', 1), ace.InvalidInputError, String(typeof wrong))
    assert.throws(() => eng.recordStage('a', 't', wrong, 1), ace.InvalidInputError, String(typeof wrong))
    assert.throws(() => eng.recordError('a', wrong, 'planning', 'E', 'm'), ace.InvalidInputError, String(typeof wrong))
    if (wrong !== null && wrong !== undefined) {
      assert.throws(() => eng.recordError('a', 't', 'planning', 'E', 'm', wrong), ace.InvalidInputError, String(typeof wrong))
    }
    // The raw calls themselves: the position of the bad argument is in the error.
    assert.throws(() => fastApi.recordStage(eng._h, 'a', wrong, 'planning', 1, true), /argument 3: expected a string/)
    assert.throws(() => fastApi.recordError(eng._h, 'a', 't', 'planning', 'E', wrong), /argument 6: expected a string/)
  }
  assert.throws(() => fastApi.recordStageSame(eng._h, 'slow', true), /argument 2: expected a number/)
  assert.throws(() => fastApi.recordStageSame(eng._h, 1), /argument 3/)
  assert.throws(() => fastApi.recordStage(eng._h, 'a', 't'), /argument 4/)
  assert.equal(eng.stats().recorded, 0)
  await eng.close()
})

test('recordStageSame with nothing kept is undefined, then records under the last names read', async () => {
  const eng = new Ace()
  const fastApi = native.fastApi()
  assert.equal(fastApi.recordStageSame(eng._h, 1, true), undefined)
  assert.equal(eng.stats().recorded, 0)
  assert.equal(fastApi.recordStage(eng._h, 'kept-agent', 't', 'planning', 1, true), null)
  assert.equal(fastApi.recordStageSame(eng._h, 2, true), null)
  assert.equal(eng.stats().recorded, 2)
  assert.equal(eng.baseline('kept-agent', 'planning').count ?? 2, 2)
  await eng.close()
})

test('the same-names path records exactly what the class method records as names change', async () => {
  const clockA = new ManualClock(1_000)
  const clockB = new ManualClock(1_000)
  const a1 = new Ace({ clock: clockA })
  const a2 = new Ace({ clock: clockA })
  const b1 = new Ace({ clock: clockB })
  const b2 = new Ace({ clock: clockB })
  const agents = ['agent-1', 'agent-2', 'é-agent']
  const stages = ['planning', 'execution', 'tools']
  let seed = 7
  const rand = (n) => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31
    return seed % n
  }
  let kept = 0
  for (let i = 0; i < 3_000; i++) {
    // Runs of repeated names, broken by changes of any one name or of the engine.
    if (i % 5 === 0 || rand(4) === 0) kept = rand(1000)
    const agent = agents[kept % 3]
    const task = `task-${(kept >> 2) % 4}`
    // Equal text in a different string object is the same name.
    const stage = i % 2 ? stages[(kept >> 4) % 3] : [...stages[(kept >> 4) % 3]].join('')
    const second = (kept >> 6) % 2 === 1
    const duration = i % 97 === 0 ? 30 + rand(10) : 0.1 + rand(100) / 1000
    const success = rand(10) !== 0
    const a = (second ? a2 : a1).recordStage(agent, task, stage, duration, success)
    const b = (second ? b2 : b1)._engine.recordStage(agent, task, stage, duration, success)
    const norm = (r) => strip(r ?? { signals: [], intervention: null })
    assert.deepEqual(norm(a), norm(b), `call ${i}`)
    if (i % 50 === 0) {
      // A call that throws after its names were read: the next one must not reuse its names.
      assert.throws(() => a1.recordStage(agent, task, 'Bad Stage!', 1), ace.InvalidInputError)
      assert.throws(() => a1.recordStage(agent, task, stage, NaN), ace.InvalidInputError)
      assert.throws(() => b1._engine.recordStage(agent, task, stage, NaN))
    }
    if (i % 7 === 0) {
      clockA.advance(0.25)
      clockB.advance(0.25)
    }
  }
  for (const [x, y] of [[a1, b1], [a2, b2]]) {
    assert.equal(x.stats().recorded, y.stats().recorded)
    assert.equal(agentMetrics(x), agentMetrics(y))
    assert.ok(agentMetrics(x).includes('agent_id="agent-1"'))
    for (const agent of agents) {
      for (const stage of stages) assert.deepEqual(x.baseline(agent, stage), y.baseline(agent, stage), `${agent} ${stage}`)
    }
  }
  for (const e of [a1, a2, b1, b2]) await e.close()
})

test('a call refused while its names are read is refused again, not recorded under the last names', async () => {
  const eng = new Ace()
  eng.recordStage('a', 't', 'planning', 1)
  for (const bad of [42, 'lone \ud800', null]) {
    for (let i = 0; i < 3; i++) {
      assert.throws(() => eng.recordStage('a', 't', bad, 1), ace.InvalidInputError, `${String(bad)} call ${i}`)
    }
    eng.recordStage('a', 't', 'planning', 1)
  }
  assert.equal(eng.stats().recorded, 4)
  await eng.close()
})

test('two copies of the package keep their own last names', async () => {
  const paths = ['../ace.js', '../record.js', '../support.js'].map((p) => require.resolve(p))
  for (const p of paths) delete require.cache[p]
  const other = require('../ace.js')
  assert.notEqual(other.Ace, Ace, 'a second copy was loaded')
  const x = new Ace()
  const y = new other.Ace()
  for (let i = 0; i < 10; i++) {
    x.recordStage('agent-x', 't', 'planning', 1)
    y.recordStage('agent-y', 't', 'planning', 1)
  }
  assert.equal(x.stats().recorded, 10)
  assert.equal(y.stats().recorded, 10)
  assert.notEqual(x.baseline('agent-x', 'planning'), null)
  assert.equal(x.baseline('agent-y', 'planning'), null, 'x recorded nothing under y’s names')
  assert.equal(y.baseline('agent-x', 'planning'), null, 'y recorded nothing under x’s names')
  await x.close()
  await y.close()
})

test('error reports cross as one string and three numbers, for every severity', async () => {
  const fastApi = native.fastApi()
  assert.ok(fastApi.errorScratch instanceof ArrayBuffer, 'Node gave the external buffer')
  assert.deepEqual(fastApi.severities, ['low', 'medium', 'high', 'critical'])
  const fast = new Ace({ clock: new ManualClock(1_000) })
  const slow = new Ace({ clock: new ManualClock(1_000) })
  // A new pattern raises a signal (the whole report); the next of the same is the common case.
  for (let i = 0; i < 2; i++) {
    const raw = fastApi.recordError(fast._h, 'agent-0', 'task-0', 'planning', 'E', 'first')
    slow._engine.recordError('agent-0', 'task-0', 'planning', 'E', 'first')
    if (i === 1) {
      assert.equal(typeof raw, 'string')
      assert.match(raw, /^[0-9a-f]{16}first$/)
      const [occurrences, severity, truncated] = new Float64Array(fastApi.errorScratch)
      assert.deepEqual([occurrences, fastApi.severities[severity], truncated], [2, 'medium', 0])
    }
  }
  for (const severity of [...fastApi.severities, undefined, null]) {
    for (const message of ['disk full on /dev/sda1', 'x'.repeat(20_000), 'é'.repeat(5_000)]) {
      const a = fast.recordError('agent-1', 'task-1', 'tools', 'IOError', message, severity)
      const b = slow._engine.recordError('agent-1', 'task-1', 'tools', 'IOError', message, severity)
      assert.deepEqual(strip(a), strip(b), `${severity} ${message.length}`)
    }
  }
  await fast.close()
  await slow.close()
})
