// Typed usage of agent-ace: `tsc --noEmit` over this file checks ace.d.ts (never run).
import { Ace, type BreakerSnapshot, CircuitOpenError, type Intervention, ManualClock, Policy, type PolicyContext, type Reflection, type Reflector, type Report, Retry, type Server, TimedOutError, argsDigest, currentTask, replay } from '../ace.js'

async function main(): Promise<void> {
  const ace = await Ace.open('sqlite:///tmp/ace-types.db', { config: { cooldownSeconds: 60 } })
  ace.on('intervention', (i: Intervention) => console.log(i.strategy, i.reason))
  const r: Report = ace.recordStage('agent-1', 'task-1', 'planning', 0.4, true, { tokens_in: 812 })
  if (r.intervention) ace.reportOutcome(r.intervention, true)
  const n: number = await ace.stage('agent-1', 'task-1', 'execution', async (s) => {
    s.metric('tokens_out', 10)
    return 42
  })
  const t: Report = ace.recordTool('agent-1', 'task-1', 'search', 0.2, true, { args: { q: 'x' } })
  const inTask: number = await ace.task('agent-1', null, async () => {
    ace.recordTool(null, null, 'search', 0.1, false, { argsDigest: argsDigest([1]), stage: 'execution' })
    return currentTask()?.task.length ?? 0
  })
  console.log(t.signals.length, inTask)
  const er = ace.recordError('agent-1', 'task-1', 'execution', new TypeError('bad'))
  const template: string = er.template
  const known: boolean = ace.endTask('agent-1', 'task-1', true) || ace.endTask('agent-1', 'task-2')
  const llm = ace.breaker('llm', { failures: 3, waitSeconds: 30 })
  const answer: string = await llm.call(async (prompt: string) => prompt.toUpperCase(), 'hi')
  const permit = llm.tryAcquire()
  if (permit) permit.success()
  const judged = llm.tryAcquire()
  if (judged) judged.result('an answer')
  try {
    llm.acquire('agent-1', 'task-1').failure()
  } catch (e) {
    if (e instanceof CircuitOpenError) console.log(e.retryAfter, e.intervention?.strategy)
  }
  const careful = ace.breaker('careful', { window: 'count:10', threshold: 'exceeded', trippingCall: 'breaker_error', trialVerdict: 'at_once' })
  careful.halfOpen()
  careful.openUntil(Date.now() / 1000 + 5)
  const retry = new Retry('llm', { maxAttempts: 4, jitter: 0.2, retryIf: (e) => !(e instanceof TypeError) })
  const retried: number = await retry.call(() => careful.call(async () => 1))
  console.log(retried, retry.counts().retries, retry.wait(1))
  const policy = new Policy({ retry, breaker: careful, timeoutSeconds: 2, fallback: (e: unknown) => (e instanceof TimedOutError ? 'late' : 'down') })
  const answered: number | string = await policy.execute(async ({ signal, attempt }: PolicyContext) => (signal.aborted ? 0 : attempt))
  const plain: number = await new Policy({ timeoutSeconds: 1 }).execute(() => 1)
  const guarded: (x: number) => Promise<number | null> = new Policy({ fallback: null }).wrap(async (x: number) => x + 1)
  console.log(answered, plain, guarded, policy.counts().timeouts, policy.timeoutSeconds)
  const clock = new ManualClock(1_700_000_000)
  const timed = new Ace({ clock })
  const opened = await Ace.open('memory', { clock })
  const waiting = timed.breaker('trial', { halfOpenBusy: 'wait', slowCallSeconds: 2, isFailure: (e) => !(e instanceof RangeError), isIgnored: (e) => e instanceof TypeError, isFailureResult: (v) => v === '' })
  clock.advance(31)
  clock.set(clock.now() + 1)
  const snap: BreakerSnapshot = waiting.snapshot()
  const took: number | null = snap.averageDuration ?? snap.totalDuration
  const engineRetry: Retry = timed.retry('llm', { maxAttempts: 2 })
  console.log(took, snap.attempts, engineRetry.counts().retries)
  await opened.close()
  await timed.close()
  await ace.rateLimiter('rate', 1, 10).acquire(5)
  await ace.bulkhead('pool', 4).run(async () => 1)
  const best = await ace.playbooks.retrieve('support', 'refund', { k: 3 })
  console.log(best[0]?.score, n, template, known, answer, (await replay('trace.jsonl')).precision)
  const health = await ace.health()
  console.log(health.status, ace.stats().recorded, ace.breakerStates().llm)
  await ace.flush()
  const deleted: number = await ace.retain(30)
  void deleted
  const server: Server = ace.serve('127.0.0.1:0', { token: 't' })
  const url: string = server.url
  const recent: Array<Record<string, unknown>> = await ace.interventions({ since: 0, agent: 'a', limit: 5 })
  const errs = await ace.errors()
  void url, recent, errs
  const reflector: Reflector = async (summary) => [{ section: 'pitfalls', content: summary.slice(0, 40) }]
  const reflected: Reflection | null = await ace.reflect('agent-1', 'task-1', reflector, { domain: 'learnt' })
  console.log(reflected?.summary.text.length)
  ace.reflectOnFailure((summary: string) => [['pitfalls', summary.slice(0, 40)] as [string, string]])
  server.stop()
  await ace.close()
}

void main()
