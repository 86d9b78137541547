// The live page of a running `ace demo --serve` in headless Chromium (Debian's /usr/bin/chromium,
// driven by playwright-core: never a browser download). The page must show the demo's agents, an
// intervention with its reason and an error pattern, and its screenshot must not be blank.
//
// ACE_BIN names the `ace` binary (built with `--features cli`); CHROMIUM the browser.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { chromium } from 'playwright-core'

const bin = process.env.ACE_BIN ?? '../../target/debug/ace'
const executablePath = process.env.CHROMIUM ?? '/usr/bin/chromium'

/** Starts the demo and resolves to [child, url] once it says it is serving. */
async function demo() {
  const child = spawn(bin, ['demo', '--agents', '20', '--tasks', '60', '--store', 'memory', '--serve', '127.0.0.1:0'], {
    stdio: ['ignore', 'pipe', 'inherit'],
  })
  let out = ''
  for await (const chunk of child.stdout) {
    out += chunk
    const m = out.match(/serving the demo's engine on (http:\/\/[0-9.:]+\/)/)
    if (m) return [child, m[1]]
  }
  throw new Error(`the demo ended without serving:\n${out}`)
}

test('the live page shows the demo: agents, an intervention, a pattern', async () => {
  const [child, url] = await demo()
  const browser = await chromium.launch({ executablePath, args: ['--no-sandbox'] })
  try {
    const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } })
    const failed = []
    page.on('requestfailed', (r) => failed.push(r.url()))
    page.on('pageerror', (e) => failed.push(String(e)))
    await page.goto(url)
    await page.locator('#status.healthy').waitFor({ timeout: 15_000 })

    const agents = page.locator('#agents tr')
    await agents.first().waitFor()
    assert.equal(await agents.count(), 20, 'the 20 demo agents, on one page of 25')
    assert.match(await page.locator('#page').innerText(), /20 agents/)
    assert.match(await agents.first().innerText(), /agent-\d{5}/)
    assert.ok((await page.locator('#agents svg.spark polyline').count()) > 0, 'sparklines are drawn')

    const interventions = page.locator('#interventions tr')
    assert.ok((await interventions.count()) > 0)
    const first = await interventions.first().innerText()
    assert.match(first, /agent-\d{5}/)
    assert.match(first, /(refresh_context|replan|reflect|verify|escalate|backoff|terminate)/, first)
    assert.match(first, /pending|helped|did not help/, first)

    const signals = page.locator('#signals tr')
    const signal = await signals.first().innerText()
    assert.match(signal, /agent-\d{5}/, signal)
    assert.match(signal, /(low|medium|high|critical)/, signal)

    const patterns = page.locator('#patterns tr')
    assert.ok((await patterns.count()) > 0)
    assert.match(await patterns.first().innerText(), /<\*>/, 'a template with its variable parts masked')
    assert.match(await page.locator('#health').innerText(), /breaker ace-store/)
    assert.deepEqual(failed, [], 'every request the page made was answered, no script error')

    // The screenshot: a PNG of the viewport's size with many colours (not a blank page).
    const png = await page.screenshot({ fullPage: false })
    writeFileSync(join(tmpdir(), 'ace-live-page.png'), png)
    const seen = await page.evaluate(async (b64) => {
      const img = new Image()
      img.src = `data:image/png;base64,${b64}`
      await img.decode()
      const canvas = new OffscreenCanvas(img.width, img.height)
      const ctx = canvas.getContext('2d')
      ctx.drawImage(img, 0, 0)
      const data = ctx.getImageData(0, 0, img.width, img.height).data
      const colours = new Set()
      let ink = 0
      for (let i = 0; i < data.length; i += 4) {
        colours.add((data[i] << 16) | (data[i + 1] << 8) | data[i + 2])
        if (data[i] + data[i + 1] + data[i + 2] < 600) ink++
      }
      return { width: img.width, height: img.height, colours: colours.size, ink: ink / (data.length / 4) }
    }, png.toString('base64'))
    assert.deepEqual([seen.width, seen.height], [1400, 1000])
    assert.ok(seen.colours > 50, `a rendered page has many colours, not ${seen.colours}`)
    assert.ok(seen.ink > 0.02 && seen.ink < 0.9, `text and tables cover part of the page: ${seen.ink}`)
  } finally {
    await browser.close()
    child.kill()
    await once(child, 'exit')
  }
})
