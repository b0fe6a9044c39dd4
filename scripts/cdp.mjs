// A headless Chromium driven over the DevTools protocol on a pipe
// (--remote-debugging-pipe: no port, no WebSocket, no extra package), for the
// report tests and bench/report-load.mjs: open a page, evaluate expressions
// in it, close.
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** The Chromium on PATH, or undefined. */
export function findChromium() {
  return ['chromium', 'chromium-browser', 'google-chrome'].find((b) => spawnSync(b, ['--version']).status === 0);
}

/**
 * Opens `url` in a fresh headless Chromium. `evaluate(expression)` runs an
 * expression (awaiting a promise) in the page and resolves to its value;
 * `close()` ends the browser. Every call fails after `timeoutMs`.
 */
export async function openPage(url, { timeoutMs = 60_000, width = 1200, height = 900 } = {}) {
  const bin = findChromium();
  if (bin === undefined) throw new Error("Chromium is needed (.ci/run installs Debian's chromium)");
  const profile = mkdtempSync(join(tmpdir(), 'sot-chromium-'));
  const child = spawn(
    bin,
    [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--remote-debugging-pipe',
      `--user-data-dir=${profile}`,
      `--window-size=${width},${height}`,
      'about:blank',
    ],
    {
      stdio: ['ignore', 'ignore', 'ignore', 'pipe', 'pipe'],
    },
  );
  const toBrowser = child.stdio[3];
  const fromBrowser = child.stdio[4];
  const waiting = new Map();
  let next = 1;
  let buffered = '';
  let exited = false;
  fromBrowser.setEncoding('utf8');
  fromBrowser.on('data', (chunk) => {
    buffered += chunk;
    let end;
    while ((end = buffered.indexOf('\0')) >= 0) {
      const msg = JSON.parse(buffered.slice(0, end));
      buffered = buffered.slice(end + 1);
      const w = msg.id !== undefined && waiting.get(msg.id);
      if (!w) continue;
      waiting.delete(msg.id);
      clearTimeout(w.timer);
      if (msg.error) w.reject(new Error(`${w.method}: ${msg.error.message}`));
      else w.resolve(msg.result);
    }
  });
  child.on('exit', () => {
    exited = true;
    for (const w of waiting.values()) w.reject(new Error('Chromium exited'));
    waiting.clear();
  });
  const send = (method, params = {}, sessionId) =>
    new Promise((resolve, reject) => {
      if (exited) return reject(new Error('Chromium exited'));
      const id = next++;
      const timer = setTimeout(() => {
        waiting.delete(id);
        reject(new Error(`${method}: no answer in ${timeoutMs} ms`));
      }, timeoutMs);
      waiting.set(id, { resolve, reject, timer, method });
      toBrowser.write(`${JSON.stringify({ id, method, params, ...(sessionId ? { sessionId } : {}) })}\0`);
    });
  const close = async () => {
    if (!exited) {
      await send('Browser.close').catch(() => {});
      await new Promise((r) => (exited ? r() : child.once('exit', r)));
    }
    rmSync(profile, { recursive: true, force: true });
  };
  try {
    const { targetId } = await send('Target.createTarget', { url: 'about:blank' });
    const { sessionId } = await send('Target.attachToTarget', { targetId, flatten: true });
    await send('Page.enable', {}, sessionId);
    await send('Page.navigate', { url }, sessionId);
    const evaluate = async (expression) => {
      const r = await send('Runtime.evaluate', { expression, awaitPromise: true, returnByValue: true }, sessionId);
      if (r.exceptionDetails)
        throw new Error(`in the page: ${r.exceptionDetails.exception?.description ?? r.exceptionDetails.text}`);
      return r.result.value;
    };
    /** The page's DevTools performance metrics (ProcessTime, TaskDuration, ... in seconds), by name. */
    const metrics = async () => {
      const { metrics: m } = await send('Performance.getMetrics', {}, sessionId);
      return Object.fromEntries(m.map((x) => [x.name, x.value]));
    };
    await send('Performance.enable', { timeDomain: 'threadTicks' }, sessionId);
    return { evaluate, metrics, close };
  } catch (err) {
    await close();
    throw err;
  }
}

/** An expression that waits (polling) until `condition` holds in the page, then yields it. */
export function waitFor(condition, timeoutMs = 30_000) {
  return `new Promise((ok, fail) => { const t0 = Date.now(); (function poll() { let v; try { v = (${condition}); } catch (e) {} if (v) return ok(v); if (Date.now() - t0 > ${timeoutMs}) return fail(new Error('timed out waiting for: ' + ${JSON.stringify(condition)})); setTimeout(poll, 20); })(); })`;
}
