'use strict'
// The one stage-name rule of the integrations (as Python's `ace.integrations.stage_name`).

/** A framework name as an ace stage name (lower-case letters, digits, `_`, `-`, `.`, starting
 * with a letter, at most 64 bytes): `'Search Web'` with prefix `'tool.'` is `'tool.search_web'`. */
function stageName(name, prefix = '') {
  let s = String(name).trim().toLowerCase().replace(/[^a-z0-9_.-]+/g, '_').replace(/^_+|_+$/g, '') || 'unnamed'
  if (!/^[a-z]/.test(s)) s = `s${s}`
  return (prefix + s).slice(0, 64)
}

module.exports = { stageName }
