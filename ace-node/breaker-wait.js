'use strict'
// `halfOpenBusy: 'wait'` (cockatiel's half-open behaviour; ace-core/src/breaker/wait.rs): a call
// through `breaker.call` that finds every half-open trial permit taken waits, without blocking
// the event loop, for the trial's verdict, then goes through if the breaker closed and is
// rejected if it opened again. The core decides; it calls `wake` back on the JS thread when the
// trial ends. A waiter is not counted as not permitted.

const native = require('./index.js')
const { convert } = require('./errors.js')

const PENDING = -2

function acquire(id, wake) {
  try {
    return native.breakerAcquireWaiting(id, wake)
  } catch (e) {
    throw convert(e)
  }
}

/** Resolves once the breaker `id` has a verdict for the trial that keeps this call out: the
 * permit's number, or -1 when the call is turned away. `recheckMs` (with `maxHalfOpenSeconds`):
 * ask again after that long even without a wake-up, as a trial that never reports ends only
 * when someone asks. */
async function acquireWaiting(id, recheckMs) {
  let slot = acquire(id)
  while (slot === PENDING) {
    slot = await new Promise((resolve, reject) => {
      let timer = null
      let done = false
      const again = () => {
        if (done) return
        done = true
        if (timer !== null) clearTimeout(timer)
        try {
          resolve(acquire(id))
        } catch (e) {
          reject(e)
        }
      }
      const now = acquire(id, again)
      if (now !== PENDING) {
        done = true
        resolve(now)
      } else if (recheckMs !== null && recheckMs !== undefined) {
        timer = setTimeout(again, recheckMs)
      }
    })
  }
  return slot
}

module.exports = { acquireWaiting }
