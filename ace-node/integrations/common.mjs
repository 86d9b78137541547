// What the adapters share: the current task, a tool call's arguments, records that never throw.
import aceModule from '../ace.js'

/** The `[agent, task]` of the innermost `ace.task(agent, task, fn)` around the caller, or null. */
export function currentTask(_ace) {
  const current = aceModule.currentTask()
  if (!current) return null
  return Array.isArray(current) ? current : [current.agent, current.task]
}

/** A tool call's options for `recordTool`: its arguments, JSON text read as the value it holds
 * (so `'{"a": 1}'` and `{ a: 1 }` have one digest), other text as a string. */
export function argsOf(input) {
  if (input === undefined || input === null) return {}
  if (typeof input !== 'string') return { args: input }
  try {
    return { args: JSON.parse(input) }
  } catch {
    return { args: input }
  }
}

/** Runs a record: monitoring never breaks the host's call, so a record that fails is a warning. */
export function safely(ace, f) {
  try {
    f()
  } catch (e) {
    ace.emit('warning', e)
  }
}
