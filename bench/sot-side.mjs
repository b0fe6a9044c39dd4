// SOT side of bench/sinkhorn-vs-pot.sh (not meant to be run by hand).
//
//   node --expose-gc bench/sot-side.mjs <workdir> <n> <m> <d> <eps> <tol> <maxIter> <write 0|1> [repeats]
//
// Reads <workdir>/x.f32 (n x d) and <workdir>/y.f32 (m x d), raw little-endian
// float32 row-major, and times, through the public API in dist/, in this order:
//   - costMatrix(x, y, { cost: 'cosine' })               -> "cost"
//   - sinkhorn({ cost }, { eps, tol, ... }) on that matrix, <repeats> times (default 3):
//     the first is "solve_cold" (the first solve of the problem in this fresh
//     process, paying its first-touch page faults, like POT's first solve in
//     pot_side.py), the others "solve_warm"; "solve" is the fastest warm one
//   - the same with maxIter = 1 (one or two passes)      -> "solve1", so that
//     (solve - solve1) / (passes - passes of solve1) is the time of one pass without the fixed costs
//   - sinkhorn({ x, y, cost: 'cosine' }), after the matrix is dropped -> "points"
//     (what users call: its own cost matrix, then the solve, then, by default where tol
//     is below what f32 costs vouch for, its last passes on the float64 costs from the
//     points; its peak RSS is the memory figure)
// Each phase records the peak RSS of the process during it (VmHWM, reset before
// the phase through /proc/self/clear_refs) next to the baseline RSS, taken after
// the warm-up on a tiny problem and before the problem was loaded. Writes the f32
// cost matrix SOT computed (c_sot.f32) when it is not there yet, and with write=1
// the potentials of the last timed solve (sot.f.f64, sot.g.f64) for the shared
// checker, and those of the points solve (sot-points.f.f64, sot-points.g.f64). Prints one
// JSON line on stdout.

import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { costMatrix, sinkhorn, threadCount } from '../dist/index.js';

const [dir, n, m, d, eps, tol, maxIter, write, repeatsArg = '3'] = process.argv.slice(2);
const repeats = Math.max(1, Number(repeatsArg));
const [N, M, D] = [n, m, d].map(Number);
const opts = { eps: Number(eps), tol: Number(tol), maxIter: Number(maxIter) };

/** VmRSS and VmHWM of this process, in MB (1e6 bytes). */
function memory() {
  const status = readFileSync('/proc/self/status', 'utf8');
  const kb = (key) => Number(status.match(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm'))[1]);
  return { rss_mb: (kb('VmRSS') * 1024) / 1e6, hwm_mb: (kb('VmHWM') * 1024) / 1e6 };
}

/** Frees what JS dropped and resets the peak RSS to the current RSS (false where Linux refuses). */
function resetPeak() {
  globalThis.gc?.();
  try {
    writeFileSync('/proc/self/clear_refs', '5');
    return true;
  } catch {
    return false;
  }
}

const phases = {};
async function phase(name, run) {
  const peakReset = resetPeak();
  const rssBefore = memory().rss_mb;
  const t0 = performance.now();
  const out = await run();
  const s = (performance.now() - t0) / 1000;
  phases[name] = {
    s,
    baseline_rss_mb: baseline,
    rss_before_mb: rssBefore,
    peak_rss_mb: memory().hwm_mb,
    peak_reset: peakReset,
  };
  return out;
}

function readF32(file, rows, cols) {
  const buf = readFileSync(join(dir, file));
  if (buf.byteLength !== rows * cols * 4)
    throw new Error(`${file}: ${buf.byteLength} bytes, expected ${rows * cols * 4}`);
  // Copy into an aligned buffer; the files are little-endian like every platform Node runs SOT on.
  const out = new Float32Array(rows * cols);
  new Uint8Array(out.buffer).set(buf);
  return { data: out, rows, cols };
}

// Warm-up on a tiny synthetic problem: loads the addon and starts the native thread pool
// outside the timings, before the baseline RSS.
{
  const tiny = (rows) => ({
    data: Float32Array.from({ length: rows * 8 }, (_, i) => Math.sin(i + rows)),
    rows,
    cols: 8,
  });
  await costMatrix(tiny(64), tiny(32));
  await sinkhorn({ x: tiny(64), y: tiny(32), cost: 'cosine' }, opts);
}
resetPeak();
const baseline = memory().rss_mb;

const x = readF32('x.f32', N, D);
const y = readF32('y.f32', M, D);
let cost = await phase('cost', () => costMatrix(x, y, { cost: 'cosine' }));
const solveRuns = [];
let resCost;
for (let r = 0; r < repeats; r++) {
  resCost = await phase(r === 0 ? 'solve_cold' : `solve_warm_${r}`, () => sinkhorn({ cost }, opts));
  solveRuns.push(phases[r === 0 ? 'solve_cold' : `solve_warm_${r}`].s);
}
const warm = solveRuns.slice(1);
const resOne = await phase('solve1', () => sinkhorn({ cost }, { ...opts, maxIter: 1 }));

const bytes = (a) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
if (!existsSync(join(dir, 'c_sot.f32'))) {
  writeFileSync(join(dir, 'c_sot.f32.tmp'), bytes(cost.data));
  renameSync(join(dir, 'c_sot.f32.tmp'), join(dir, 'c_sot.f32'));
}
if (write === '1') {
  writeFileSync(join(dir, 'sot.f.f64'), bytes(resCost.f));
  writeFileSync(join(dir, 'sot.g.f64'), bytes(resCost.g));
}
cost = null;
const res = await phase('points', () => sinkhorn({ x, y, cost: 'cosine' }, opts));
if (write === '1') {
  writeFileSync(join(dir, 'sot-points.f.f64'), bytes(res.f));
  writeFileSync(join(dir, 'sot-points.g.f64'), bytes(res.g));
}

// Every plain field of the result (not the arrays): picks up fields added later, such as
// how the kernel was stored.
const plain = (r) => Object.fromEntries(Object.entries(r).filter(([, v]) => !ArrayBuffer.isView(v)));

console.log(
  JSON.stringify({
    threads: threadCount(),
    node: process.version,
    options: opts,
    phases,
    cost_s: phases.cost.s,
    points_s: phases.points.s,
    solve_cold_s: solveRuns[0],
    solve_warm_s: warm,
    // the fastest warm solve; a single solve (repeats = 1) is cold
    solve_s: warm.length ? Math.min(...warm) : solveRuns[0],
    solve1_s: phases.solve1.s,
    solve_iterations: resCost.iterations,
    solve_passes: resCost.passes,
    solve1_passes: resOne.passes,
    solve_value: resCost.value,
    iterations: resCost.iterations,
    converged: resCost.converged,
    reported_marginal_error: resCost.marginalError,
    reported_value: resCost.value,
    points_iterations: res.iterations,
    points_passes: res.passes,
    points_exact_passes: res.exactPasses,
    points_marginal_error: res.marginalError,
    eps: res.eps,
    result_fields: plain(res),
    solve_result_fields: plain(resCost),
  }),
);
