// Electron's V8 memory cage refuses ArrayBuffers over addon-owned memory
// (napi_no_external_buffers_allowed) and napi-rs then copies results into JS
// memory. Electron itself cannot be installed here (its package downloads the
// runtime at first use from outside the registries), so this runs the library
// in Node with that refusal imposed on the real addon (__test__/electron/):
// the numerics and a whole `sot purify` must give what they give without it.
import { execFileSync, spawnSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { CLI, DATA_DIR, contaminated, writeJsonl } from './datasets.js';
import { BINARY, ROOT } from './installed.js';

let dir: string;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'sot-no-external-'));
  const lib = join(dir, 'librefuse-external.so');
  execFileSync('gcc', ['-shared', '-fPIC', '-O2', '-o', lib, join(ROOT, '__test__', 'electron', 'refuse-external.c')]);
  copyFileSync(BINARY, join(dir, 'sot.node'));
  execFileSync('patchelf', ['--add-needed', lib, join(dir, 'sot.node')]);
});

/** Runs node with the addon loaded normally, or with external buffers refused; returns stdout and the refusal count. */
function run(args: string[], refused: boolean, env: NodeJS.ProcessEnv = {}) {
  const count = join(dir, `refusals-${Math.random().toString(36).slice(2)}`);
  const extra = refused
    ? {
        NAPI_RS_NATIVE_LIBRARY_PATH: join(ROOT, '__test__', 'electron', 'load.cjs'),
        SOT_PATCHED_ADDON: join(dir, 'sot.node'),
        SOT_REFUSALS_FILE: count,
      }
    : {};
  const r = spawnSync(process.execPath, args, {
    cwd: ROOT,
    encoding: 'utf8',
    timeout: 120_000,
    env: { ...process.env, ...env, ...extra },
  });
  expect(r.stderr).toBe('');
  expect(r.status).toBe(0);
  return { stdout: r.stdout, refusals: refused ? Number(readFileSync(count, 'utf8')) : 0 };
}

describe.skipIf(process.platform !== 'linux')('without external buffers (as under Electron)', () => {
  it('gives the same cost matrix, Sinkhorn, divergence, learned weights and selection', () => {
    const normal = run([join(ROOT, 'scripts', 'target-smoke.mjs')], false);
    const copied = run([join(ROOT, 'scripts', 'target-smoke.mjs')], true);
    expect(copied.refusals).toBeGreaterThan(0);
    const { addon: _a, ...expected } = JSON.parse(normal.stdout);
    const { addon: _b, ...got } = JSON.parse(copied.stdout);
    expect(got).toEqual(expected);
  });

  it('purifies a dataset to the same output', () => {
    const c = contaminated(120, 20);
    const input = writeJsonl(join(c.dir, 'train.jsonl'), c.records);
    const anchor = writeJsonl(join(c.dir, 'anchor.jsonl'), c.anchor);
    const env = { SOT_DATA_DIR: DATA_DIR, SOT_CACHE_DIR: mkdtempSync(join(tmpdir(), 'sot-cache-')), SOT_OFFLINE: '1' };
    const outputs = [false, true].map((refused) => {
      const out = join(c.dir, `out-${refused}.jsonl`);
      const r = run(
        [CLI, 'purify', input, '--harmful', 'advbench', '--anchor', anchor, '-o', out, '--json'],
        refused,
        env,
      );
      return { refusals: r.refusals, summary: JSON.parse(r.stdout), output: readFileSync(out, 'utf8') };
    });
    expect(outputs[1]!.refusals).toBeGreaterThan(0);
    expect(outputs[1]!.summary.k).toBe(outputs[0]!.summary.k);
    expect(outputs[1]!.output).toBe(outputs[0]!.output);
  });
});
