'use strict'
// The raw record calls (src/raw_record.rs) as `Ace.recordStage` and `Ace.recordError` use them:
// a stage recorded under the same names as the last one skips reading them again, and the common
// error report (no signal, no intervention) crosses as one string and three numbers.

const { fast } = require('./support.js')

const stageFull = fast.recordStage
const stageSame = fast.recordStageSame
const errorFast = fast.recordError
const severities = fast.severities
const scratch = fast.errorScratch ? new Float64Array(fast.errorScratch) : null

// The names of the last `recordStage` that returned, which the native side keeps as well (it
// keeps them once their arguments are read, so a call that throws leaves them unknown here).
// Strings compare by value: another string with the same text is the same name.
let lastHandle = -1
let lastAgent
let lastTask
let lastStage

/** `recordStage` without metrics: `null` or a report (a throw is a native error). */
function recordStage(handle, agent, task, stage, durationS, success) {
  if (handle === lastHandle && agent === lastAgent && task === lastTask && stage === lastStage) {
    const r = stageSame(handle, durationS, success)
    if (r !== undefined) return r
  }
  lastHandle = -1
  const r = stageFull(handle, agent, task, stage, durationS, success)
  lastHandle = handle
  lastAgent = agent
  lastTask = task
  lastStage = stage
  return r
}

/** `recordError`: the report, as the class method returns it (a throw is a native error). */
function recordError(handle, agent, task, stage, kind, message, severity) {
  const r = errorFast(handle, agent, task, stage, kind, message, severity)
  if (typeof r === 'string') {
    return {
      pattern: r.slice(0, 16),
      template: r.slice(16),
      severity: severities[scratch[1]],
      occurrences: scratch[0],
      truncated: scratch[2] !== 0,
      signals: [],
      intervention: null,
    }
  }
  if (Array.isArray(r)) {
    return { pattern: r[0], template: r[1], severity: r[2], occurrences: r[3], truncated: r[4], signals: [], intervention: null }
  }
  return r
}

module.exports = { recordError, recordStage }
