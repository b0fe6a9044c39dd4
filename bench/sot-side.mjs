// SOT side of bench/sinkhorn-vs-pot.sh (not meant to be run by hand).
//
//   node bench/sot-side.mjs <workdir> <n> <m> <d> <eps> <tol> <maxIter> <repeat> <write 0|1>
//
// Reads <workdir>/x.f32 (n x d) and <workdir>/y.f32 (m x d), raw little-endian
// float32 row-major, and times, through the public API in dist/:
//   - costMatrix(x, y, { cost: 'cosine' })               -> "cost"
//   - sinkhorn({ x, y, cost: 'cosine' }, { eps, tol, ... }) -> "total" (cost + solve)
//   - sinkhorn({ cost }, { eps, tol, ... }) on the matrix from costMatrix -> "solve"
// With write=1, writes the potentials of the last solve from the points (f.f64,
// g.f64) and the f32 cost matrix SOT computed (c_sot.f32) for the Python
// checker. Prints one JSON line with the timings on stdout.

import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { costMatrix, sinkhorn, threadCount } from '../dist/index.js';

const [dir, n, m, d, eps, tol, maxIter, repeat, write] = process.argv.slice(2);
const [N, M, D, R] = [n, m, d, repeat].map(Number);
const opts = { eps: Number(eps), tol: Number(tol), maxIter: Number(maxIter) };

function readF32(file, rows, cols) {
  const buf = readFileSync(join(dir, file));
  if (buf.byteLength !== rows * cols * 4) throw new Error(`${file}: ${buf.byteLength} bytes, expected ${rows * cols * 4}`);
  // Copy into an aligned buffer; the files are little-endian like every platform Node runs SOT on.
  const out = new Float32Array(rows * cols);
  new Uint8Array(out.buffer).set(buf);
  return { data: out, rows, cols };
}

const x = readF32('x.f32', N, D);
const y = readF32('y.f32', M, D);

// Warm-up: loads the addon and starts the native thread pool outside the timings.
{
  const wx = { data: x.data.slice(0, 64 * D), rows: 64, cols: D };
  const wy = { data: y.data.slice(0, 32 * D), rows: 32, cols: D };
  await costMatrix(wx, wy);
  await sinkhorn({ x: wx, y: wy, cost: 'cosine' }, opts);
}

const costTimes = [];
const totalTimes = [];
const solveTimes = [];
let cost;
let res;
let resCost;
for (let r = 0; r < R; r++) {
  cost = undefined;
  let t0 = performance.now();
  cost = await costMatrix(x, y, { cost: 'cosine' });
  costTimes.push((performance.now() - t0) / 1000);

  t0 = performance.now();
  res = await sinkhorn({ x, y, cost: 'cosine' }, opts);
  totalTimes.push((performance.now() - t0) / 1000);

  t0 = performance.now();
  resCost = await sinkhorn({ cost }, opts);
  solveTimes.push((performance.now() - t0) / 1000);
}

if (write === '1') {
  const bytes = (a) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
  writeFileSync(join(dir, 'f.f64'), bytes(res.f));
  writeFileSync(join(dir, 'g.f64'), bytes(res.g));
  writeFileSync(join(dir, 'c_sot.f32'), bytes(cost.data));
}

console.log(
  JSON.stringify({
    threads: threadCount(),
    node: process.version,
    options: opts,
    cost_s: costTimes,
    total_s: totalTimes,
    solve_s: solveTimes,
    solve_iterations: resCost.iterations,
    solve_value: resCost.value,
    iterations: res.iterations,
    converged: res.converged,
    reported_marginal_error: res.marginalError,
    reported_value: res.value,
    eps: res.eps,
  }),
);
