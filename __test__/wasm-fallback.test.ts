// Installed without a native binary but with the WebAssembly package, the
// library falls back to it: the same numerics as the native build, through
// the packed package, from a fresh project.
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { ROOT, installInto, packRoot } from './installed.js';

const WASM_DIR = join(ROOT, 'npm', 'wasm32-wasi');
const built = existsSync(join(WASM_DIR, 'sot.wasm32-wasi.wasm'));
// CI builds it (npm run build:wasm); a developer who has not gets a skip, not a pass.
if (!built && process.env.CI) throw new Error('npm/wasm32-wasi is not built: run npm run build:wasm');

let tarball: string;

beforeAll(() => {
  if (built) tarball = packRoot(mkdtempSync(join(tmpdir(), 'sot-pack-')));
}, 120_000);

/** Installs the packed package, with the native platform package or the WebAssembly one, and runs the smoke script there. */
function smoke(wasm: boolean) {
  const app = installInto(tarball, !wasm);
  const pkg = join(app, 'node_modules', 'sot-purify');
  if (wasm) {
    const manifest = JSON.parse(readFileSync(join(WASM_DIR, 'package.json'), 'utf8')) as {
      name: string;
      files: string[];
      dependencies: Record<string, string>;
    };
    const dest = join(app, 'node_modules', manifest.name);
    mkdirSync(dest);
    for (const f of ['package.json', ...manifest.files]) cpSync(join(WASM_DIR, f), join(dest, f));
    for (const dep of [...Object.keys(manifest.dependencies), '@tybys/wasm-util']) {
      mkdirSync(join(app, 'node_modules', dep, '..'), { recursive: true });
      symlinkSync(join(ROOT, 'node_modules', dep), join(app, 'node_modules', dep), 'junction');
    }
  }
  cpSync(join(ROOT, 'scripts', 'target-smoke.mjs'), join(pkg, 'scripts', 'target-smoke.mjs'));
  const r = spawnSync(process.execPath, [join(pkg, 'scripts', 'target-smoke.mjs')], {
    cwd: app,
    encoding: 'utf8',
    timeout: 120_000,
  });
  // Node marks its WASI support experimental, once per thread; nothing else may be written.
  expect(r.stderr.split('\n').filter((l) => l && !/ExperimentalWarning: WASI|--trace-warnings/.test(l))).toEqual([]);
  expect(r.status).toBe(0);
  return JSON.parse(r.stdout) as Record<string, number | string | number[]>;
}

describe.skipIf(!built || process.platform !== 'linux' || process.arch !== 'x64')('the WebAssembly fallback', () => {
  it('loads when no native binary is installed and computes what the native build does', () => {
    const native = smoke(false);
    const wasm = smoke(true);
    expect(native.binding).toBe('native');
    expect(wasm.binding).toBe('wasm32-wasi');
    expect(wasm.addon).toEqual([]);
    // The native build's SIMD kernels round differently from the portable ones: agree to 1e-6.
    for (const k of ['sinkhorn', 'divergence', 'weightsSum'])
      expect(Math.abs((wasm[k] as number) - (native[k] as number))).toBeLessThan(1e-6 * Math.abs(native[k] as number));
    expect(wasm.iterations).toBe(native.iterations);
    expect(wasm.order).toEqual(native.order);
  });
});
