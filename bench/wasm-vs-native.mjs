// The WebAssembly build against the native one on the grid's first problem
// (BENCHMARKS.md: 20000 x 2000 points, d 384, gaussian and L2-normalised,
// cosine cost, eps 0.05, tol 1e-6): sinkhorn from the points (cost matrix +
// solve), fastest of the rounds, each build in a child process of its own.
//
//   npm run build && npm run build:wasm && node bench/wasm-vs-native.mjs [n m d rounds]
//
// The WebAssembly side runs once with rayon's default (one thread: WASI
// reports no parallelism) and once with RAYON_NUM_THREADS set to the cores.
import { spawnSync } from 'node:child_process';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';

const ROOT = join(import.meta.dirname, '..');
const child = process.argv[2] === '--child';
const [n = 20000, m = 2000, d = 384, rounds = 3] = process.argv.slice(child ? 3 : 2).map(Number);

if (child) {
  const { sinkhorn, threadCount } = await import('../dist/index.js');
  // Seeded gaussian points (Box-Muller over a 32-bit LCG), each row L2-normalised.
  let s = 1;
  const uniform = () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) + 1) / 4294967297;
  const points = (rows) => {
    const data = new Float32Array(rows * d);
    for (let i = 0; i < rows; i++) {
      let norm = 0;
      for (let k = 0; k < d; k++) {
        const g = Math.sqrt(-2 * Math.log(uniform())) * Math.cos(2 * Math.PI * uniform());
        data[i * d + k] = g;
        norm += g * g;
      }
      for (let k = 0; k < d; k++) data[i * d + k] /= Math.sqrt(norm);
    }
    return { data, rows, cols: d };
  };
  const x = points(n);
  const y = points(m);
  const times = [];
  let r;
  for (let i = 0; i < rounds; i++) {
    const t0 = performance.now();
    r = await sinkhorn({ x, y, cost: 'cosine' }, { eps: 0.05, tol: 1e-6, maxIter: 10000 });
    times.push((performance.now() - t0) / 1000);
  }
  console.log(
    JSON.stringify({
      threads: threadCount(),
      best_s: Math.min(...times),
      value: r.value,
      iterations: r.iterations,
      converged: r.converged,
    }),
  );
} else {
  const wasm = join(ROOT, 'npm', 'wasm32-wasi', 'sot.wasi.cjs');
  const sides = [
    ['native', {}],
    ['wasm32-wasi', { NAPI_RS_NATIVE_LIBRARY_PATH: wasm }],
    [
      `wasm32-wasi, ${availableParallelism()} threads`,
      { NAPI_RS_NATIVE_LIBRARY_PATH: wasm, RAYON_NUM_THREADS: String(availableParallelism()) },
    ],
  ];
  console.log(`sinkhorn ${n} x ${m}, d ${d}, cosine, eps 0.05, tol 1e-6; fastest of ${rounds}`);
  let native;
  for (const [name, env] of sides) {
    const c = spawnSync(
      process.execPath,
      ['--no-warnings', import.meta.filename, '--child', n, m, d, rounds].map(String),
      {
        env: { ...process.env, ...env },
        encoding: 'utf8',
      },
    );
    if (c.status !== 0) throw new Error(`${name}: ${c.stderr}`);
    const res = JSON.parse(c.stdout);
    native ??= res;
    const ratio = (res.best_s / native.best_s).toFixed(1);
    console.log(
      `${name.padEnd(28)} ${res.best_s.toFixed(3)} s  (${ratio}x native; ${res.iterations} iterations, value ${res.value.toPrecision(10)})`,
    );
  }
}
