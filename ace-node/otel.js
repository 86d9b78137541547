'use strict'
// agent-ace/otel: `AceSpanProcessor` feeds an engine from the spans an instrumented program
// already emits (OpenTelemetry GenAI semantic conventions 1.44.0), and `attachEvents` puts what
// ace decides back on the spans as events. `AceMetricProducer` (otel-metrics.js) sends the
// engine's metrics through `@opentelemetry/sdk-metrics` readers.
//
//   const { AceSpanProcessor, attachEvents } = require('agent-ace/otel')
//   const provider = new BasicTracerProvider({ spanProcessors: [new AceSpanProcessor(eng)] })
//   attachEvents(eng) // opt-in: interventions as `ace.intervention` span events
//
// The mapping is the one of `ace.integrations.otel` (Python) and `ace serve --otlp` (see
// docs/integrations/otlp.md), by `gen_ai.operation.name`:
// - `invoke_agent`: the stage `invoke_agent`, then the task ends;
// - `chat`, `text_completion`, `generate_content`: the stage `llm` with `tokens_in` and
//   `tokens_out` from `gen_ai.usage.input_tokens`/`output_tokens`; `embeddings`: the stage
//   `embeddings` with `tokens_in`;
// - `execute_tool`: a tool call (`gen_ai.tool.name`, the digest of `gen_ai.tool.call.arguments`);
// - any other operation: a stage of that name.
// The agent is `gen_ai.agent.name`, else the nearest enclosing span's, else the resource's
// `service.name`; the task is `gen_ai.conversation.id`, else the enclosing span's, else the trace
// id. A failed span (`error.type`, status ERROR, an `exception` event) is recorded as an error of
// its stage. When the local root span of a trace ends, the tasks recorded under it end. Spans
// without `gen_ai.operation.name` are skipped; `counts` says how many of each.

const { stageName } = require('./stage-name.js')
const { AceMetricProducer } = require('./otel-metrics.js')

/** The version of the OpenTelemetry semantic conventions whose GenAI attributes are read. */
const SEMCONV_VERSION = '1.44.0'

const LLM_OPERATIONS = new Set(['chat', 'text_completion', 'generate_content'])
const MAX_ID = 256 // bytes, as the engine takes agent and task ids
const MAX_NAME = 256 // characters of an operation or tool name
const OPEN_LIMIT = 65536 // open spans and traces whose context is kept
const STATUS_ERROR = 2 // SpanStatusCode.ERROR
const TOKENS = [
  ['tokens_in', ['gen_ai.usage.input_tokens', 'gen_ai.usage.prompt_tokens']],
  ['tokens_out', ['gen_ai.usage.output_tokens', 'gen_ai.usage.completion_tokens']],
]
const NOT_PRINTABLE = /[\p{C}\p{Zl}\p{Zp}]|(?! )\p{Zs}/u

// The span an event about the record being made belongs on: while the processor records an
// ended span, its nearest open ancestor (the ended span takes no more events).
let target = null

/** Records GenAI spans into an engine when they end. `onStart` and `onEnd` never throw and never
 * wait: they read the span and make the engine's recording calls, which return without I/O.
 * `maxArgumentChars` bounds the tool arguments hashed for the digest (a longer value is recorded
 * without a digest and counted as `oversize`). Interventions land in `interventions` (the newest
 * 1,000) and are emitted by the engine as `'intervention'`. */
class AceSpanProcessor {
  constructor(ace, { maxArgumentChars = 65536 } = {}) {
    if (!ace || typeof ace.recordStage !== 'function') throw new TypeError('AceSpanProcessor needs an Ace engine')
    this.ace = ace
    this.maxArgumentChars = maxArgumentChars
    this.interventions = []
    this._counts = { recorded: 0, skipped: 0, malformed: 0, ignoredAttributes: 0, oversize: 0, failed: 0 }
    this._open = new Map() // span id -> { agent, task, span }
    this._tasks = new Map() // trace id -> Map(key -> [agent, task]), ended with its local root
  }

  /** How many spans were `recorded`, `skipped` (no `gen_ai.operation.name`), `malformed` (an
   * operation or tool name that is not a usable string, a missing end time: not recorded),
   * `failed` (the engine refused the record, or the span could not be read), and how many
   * `ignoredAttributes` (a known attribute of the wrong type or size, read as absent) and
   * `oversize` tool arguments (recorded without a digest). */
  get counts() {
    return { ...this._counts }
  }

  onStart(span, _parentContext) {
    try {
      const attrs = span.attributes || {}
      const parent = this._parentOf(span)
      const agent = idText(attrs['gen_ai.agent.name']) ?? parent?.agent ?? null
      const task = idText(attrs['gen_ai.conversation.id']) ?? parent?.task ?? null
      if (this._open.size < OPEN_LIMIT) this._open.set(span.spanContext().spanId, { agent, task, span })
    } catch {
      this._counts.failed++ // never break the host's span over monitoring
    }
  }

  onEnd(span) {
    try {
      this._record(span)
    } catch {
      this._counts.failed++ // never break the host's span over monitoring
    }
  }

  async forceFlush() {
    try {
      await this.ace.flush()
    } catch {
      // A store that cannot flush now is the engine's to report (health, metrics).
    }
  }

  async shutdown() {
    await this.forceFlush()
  }

  _record(span) {
    const ctx = span.spanContext()
    const mine = this._open.get(ctx.spanId)
    this._open.delete(ctx.spanId)
    try {
      this._recordGenai(span, mine)
    } finally {
      const parent = span.parentSpanContext
      if (!parent || parent.isRemote) this._endTrace(ctx.traceId)
    }
  }

  _recordGenai(span, mine) {
    const attrs = span.attributes || {}
    const operation = attrs['gen_ai.operation.name']
    if (operation === undefined || operation === null) {
      this._counts.skipped++
      return
    }
    if (typeof operation !== 'string' || !operation.trim() || operation.length > MAX_NAME) {
      this._counts.malformed++
      return
    }
    const start = seconds(span.startTime)
    const end = seconds(span.endTime)
    if (start === null || end === null || end < start) {
      this._counts.malformed++
      return
    }
    const duration = end - start
    const [agent, task] = this._who(span, attrs, mine)
    const error = failure(span, attrs)
    const parent = this._parentOf(span)
    const saved = target
    target = parent ? parent.span : null
    try {
      if (operation === 'execute_tool') {
        const tool = attrs['gen_ai.tool.name']
        if (typeof tool !== 'string' || !tool.trim() || tool.length > MAX_NAME) {
          this._counts.malformed++
          return
        }
        if (error) this._keep(this.ace.recordError(agent, task, 'tool', error[0], error[1]))
        this._keep(recordTool(this.ace, agent, task, tool, duration, !error, this._arguments(attrs)))
      } else {
        const [stage, metrics] = this._stageOf(operation, attrs)
        if (error) this._keep(this.ace.recordError(agent, task, stage, error[0], error[1]))
        this._keep(this.ace.recordStage(agent, task, stage, duration, !error, Object.keys(metrics).length ? metrics : undefined))
      }
      this._counts.recorded++
      if (operation === 'invoke_agent') {
        this.ace.endTask(agent, task)
        // Ended now: not again with the trace's root.
        this._tasks.get(span.spanContext().traceId)?.delete(`${agent}\u0000${task}`)
      } else this._noteTask(span, agent, task)
    } finally {
      target = saved
    }
  }

  _stageOf(operation, attrs) {
    const metrics = {}
    if (LLM_OPERATIONS.has(operation) || operation === 'embeddings') {
      for (const [ours, theirs] of TOKENS) {
        const value = this._number(attrs, theirs)
        if (value !== null) metrics[ours] = value
      }
      return [LLM_OPERATIONS.has(operation) ? 'llm' : 'embeddings', metrics]
    }
    return [stageName(operation), metrics]
  }

  _who(span, attrs, mine) {
    let agent = this._id(attrs, 'gen_ai.agent.name') ?? mine?.agent ?? null
    if (agent === null) agent = this._id(span.resource?.attributes || {}, 'service.name') ?? 'unknown_service'
    let task = this._id(attrs, 'gen_ai.conversation.id') ?? mine?.task ?? null
    if (task === null) task = span.spanContext().traceId
    return [agent, task]
  }

  _arguments(attrs) {
    const args = attrs['gen_ai.tool.call.arguments']
    if (args === undefined || args === null) return undefined
    if (typeof args !== 'string') {
      this._counts.ignoredAttributes++
      return undefined
    }
    if (args.length > this.maxArgumentChars) {
      this._counts.oversize++
      return undefined
    }
    return args
  }

  _parentOf(span) {
    const parent = span.parentSpanContext
    return parent ? this._open.get(parent.spanId) : undefined
  }

  _id(attrs, key) {
    const value = attrs[key]
    if (value === undefined || value === null) return null
    const text = idText(value)
    if (text === null) this._counts.ignoredAttributes++
    return text
  }

  _number(attrs, keys) {
    for (const key of keys) {
      const value = attrs[key]
      if (value === undefined || value === null) continue
      if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) {
        this._counts.ignoredAttributes++
        return null
      }
      return value
    }
    return null
  }

  _noteTask(span, agent, task) {
    const ctx = span.spanContext()
    const parent = span.parentSpanContext
    if (!parent || parent.isRemote) {
      this.ace.endTask(agent, task)
      return
    }
    let tasks = this._tasks.get(ctx.traceId)
    if (!tasks) {
      if (this._tasks.size >= OPEN_LIMIT) return
      tasks = new Map()
      this._tasks.set(ctx.traceId, tasks)
    }
    tasks.set(`${agent}\u0000${task}`, [agent, task])
  }

  _endTrace(traceId) {
    const tasks = this._tasks.get(traceId)
    this._tasks.delete(traceId)
    for (const [agent, task] of tasks?.values() ?? []) {
      try {
        this.ace.endTask(agent, task)
      } catch {
        this._counts.failed++
      }
    }
  }

  _keep(report) {
    if (report.intervention) {
      this.interventions.push(report.intervention)
      if (this.interventions.length > 1000) this.interventions.shift()
    } else if (report.signals?.length && ATTACHED.has(this.ace)) {
      add(target, reportEvents(report))
    }
  }
}

/** A tool call: the engine's `recordTool`, with the digest of the arguments (JSON text is read
 * as the value it holds, other text as a string). */
function recordTool(ace, agent, task, tool, duration, success, args) {
  let value = args
  if (typeof args === 'string') {
    try {
      value = JSON.parse(args)
    } catch {
      value = args
    }
  }
  return ace.recordTool(agent, task, tool, duration, success, value === undefined ? {} : { args: value })
}

/** An attribute usable as an agent or task id, or null. */
function idText(value) {
  if (typeof value !== 'string') return null
  const text = value.trim()
  if (!text || Buffer.byteLength(text, 'utf8') > MAX_ID || NOT_PRINTABLE.test(text)) return null
  return text
}

/** An OpenTelemetry HrTime ([seconds, nanoseconds]) in seconds, or null. */
function seconds(t) {
  if (!Array.isArray(t) || t.length !== 2 || !Number.isFinite(t[0]) || !Number.isFinite(t[1])) return null
  if (t[0] === 0 && t[1] === 0) return null
  return t[0] + t[1] / 1e9
}

/** Whether the span failed, as the (kind, message) of its error, or null: the first `exception`
 * event, else `error.type` with the status description. */
function failure(span, attrs) {
  const status = span.status
  let failed = status?.code === STATUS_ERROR
  const description = (failed && status.message) || ''
  const errorType = attrs['error.type']
  if (errorType !== undefined && errorType !== null) failed = true
  for (const event of span.events || []) {
    if (event.name !== 'exception') continue
    const e = event.attributes || {}
    const kind = short(e['exception.type']) ?? short(errorType) ?? 'Exception'
    const message = e['exception.message']
    return [kind, typeof message === 'string' && message ? message : description || kind]
  }
  if (failed) {
    const kind = short(errorType) ?? 'SpanError'
    return [kind, description || kind]
  }
  return null
}

function short(value) {
  return typeof value === 'string' && value.trim() ? value.trim().slice(0, MAX_NAME) : null
}

// ---- OpenTelemetry out ----------------------------------------------------------------------

// The engines whose interventions and signals go onto spans (see attachEvents).
const ATTACHED = new WeakSet()
let api = null

/** Puts what `ace` decides on spans (opt-in). Each intervention becomes the event
 * `ace.intervention` (`ace.intervention.id`, `.strategy`, `.reason`, `.severity`, `ace.agent`,
 * `ace.task`), followed by one `ace.signal` event per signal behind it (`ace.signal.kind`,
 * `.severity`, `.message`, `ace.agent`, `ace.task`, `ace.stage`). The span is the active one
 * where the recording call was made (`@opentelemetry/api`'s context) or, for a record the
 * `AceSpanProcessor` makes as a span ends, that span's nearest open ancestor, which then also
 * gets the signals that raised no intervention. Nothing is added when no span is recording.
 * Call it once per engine. */
function attachEvents(ace) {
  if (ATTACHED.has(ace)) return
  if (!api) api = require('@opentelemetry/api')
  ATTACHED.add(ace)
  ace.on('intervention', (intervention) => {
    add(target ?? api.trace.getActiveSpan() ?? null, reportEvents(intervention))
  })
}

/** The span events for an intervention, or for a report (its intervention's, else one
 * `ace.signal` per signal), as `[name, attributes]` pairs for `span.addEvent`. */
function reportEvents(found) {
  const intervention = found && 'strategy' in found ? found : found?.intervention
  if (!intervention) return (found?.signals || []).map((s) => ['ace.signal', signalAttributes(s)])
  const events = [
    [
      'ace.intervention',
      {
        'ace.intervention.id': String(intervention.id),
        'ace.intervention.strategy': String(intervention.strategy),
        'ace.intervention.reason': String(intervention.reason),
        'ace.intervention.severity': String(intervention.severity),
        'ace.agent': String(intervention.agent),
        'ace.task': String(intervention.task),
      },
    ],
  ]
  for (const s of intervention.signals || []) events.push(['ace.signal', signalAttributes(s)])
  return events
}

function signalAttributes(signal) {
  const attributes = {
    'ace.signal.kind': String(signal.kind),
    'ace.signal.severity': String(signal.severity),
    'ace.signal.message': String(signal.message),
    'ace.agent': String(signal.agent),
  }
  if (signal.task !== null && signal.task !== undefined) attributes['ace.task'] = String(signal.task)
  if (signal.stage !== null && signal.stage !== undefined) attributes['ace.stage'] = String(signal.stage)
  return attributes
}

function add(span, events) {
  if (!span || !events.length || typeof span.isRecording !== 'function' || !span.isRecording()) return
  for (const [name, attributes] of events) span.addEvent(name, attributes)
}

module.exports = { AceMetricProducer, AceSpanProcessor, SEMCONV_VERSION, attachEvents, reportEvents }
