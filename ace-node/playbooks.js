'use strict'
// The engine's playbooks (one per domain): every call returns a Promise.

const native = require('./index.js')
const { InvalidInputError } = require('./errors.js')
const { call, opts, strict, wait } = require('./support.js')

/** The engine's playbooks, one per domain; every call returns a Promise. */
class Playbooks {
  constructor(engine) {
    this._native = new native.NativePlaybooks(engine)
  }

  async add(domain, section, content, provenance) {
    strict(domain, section, content, provenance)
    return wait(call(() => this._native.add(domain, section, content, provenance)))
  }

  async update(domain, id, changes) {
    const { section, content } = opts(changes, 'changes')
    strict(domain, id, section, content)
    return wait(call(() => this._native.update(domain, id, section, content)))
  }

  async remove(domain, id) {
    strict(domain, id)
    return wait(call(() => this._native.remove(domain, id)))
  }

  async feedback(domain, id, feedback) {
    strict(domain, id, feedback)
    return wait(call(() => this._native.feedback(domain, id, feedback)))
  }

  /** Insights as `{section, content, provenance?}` objects or `[section, content]` pairs. */
  async merge(domain, insights) {
    if (insights === null || insights === undefined || typeof insights[Symbol.iterator] !== 'function' || typeof insights === 'string') {
      throw new InvalidInputError('invalid insights: must be an iterable of {section, content} objects or [section, content] pairs', { field: 'insights' })
    }
    const list = Array.from(insights, (i) => (Array.isArray(i) ? { section: i[0], content: i[1] } : i))
    strict(domain, list)
    return wait(call(() => this._native.merge(domain, list)))
  }

  async retrieve(domain, query, options) {
    const { k = 5, minStage = 'staging' } = opts(options, 'options')
    strict(domain, query, minStage)
    return wait(call(() => this._native.retrieve(domain, query, k, minStage)))
  }

  async render(domain, options) {
    const { query, k = 20, minStage = 'staging', tokenBudget = 2000 } = opts(options, 'options')
    strict(domain, query, minStage)
    return wait(call(() => this._native.render(domain, query, k, minStage, tokenBudget)))
  }

  async bullets(domain) {
    strict(domain)
    return wait(call(() => this._native.bullets(domain)))
  }

  async bullet(domain, id) {
    strict(domain, id)
    return wait(call(() => this._native.bullet(domain, id)))
  }

  async stats(domain) {
    strict(domain)
    return wait(call(() => this._native.stats(domain)))
  }

  async rollback(domain, version) {
    strict(domain)
    return wait(call(() => this._native.rollback(domain, version)))
  }

  async exportText(domain) {
    strict(domain)
    return wait(call(() => this._native.exportText(domain)))
  }

  async exportJson(domain) {
    strict(domain)
    return wait(call(() => this._native.exportJson(domain)))
  }

  /** Unless `trusted`, the export's digest must match (CorruptError) and bullets enter at shadow. */
  async importJson(domain, json, options) {
    const { trusted = false } = opts(options, 'options')
    strict(domain, json)
    return wait(call(() => this._native.importJson(domain, json, trusted)))
  }

  /** Unless `trusted`, bullets enter at shadow with their counters ignored. */
  async importText(domain, text, options) {
    const { trusted = false } = opts(options, 'options')
    strict(domain, text)
    return wait(call(() => this._native.importText(domain, text, trusted)))
  }

  /** Every version of the domain's log (chain verified): `{version, at, op, note}`. */
  async history(domain) {
    strict(domain)
    return wait(call(() => this._native.history(domain)))
  }
}

module.exports = { Playbooks }
