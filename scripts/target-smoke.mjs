// Runs the library's numerics through one binding and prints what they gave,
// as JSON on stdout: scripts/build-targets.sh runs it with each cross-built
// binary (NAPI_RS_NATIVE_LIBRARY_PATH, under qemu-user or a musl loader where
// needed) and compares the figures with the host build's.
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { costMatrix, learnWeights, selectTopK, sinkhorn, sinkhornDivergence, threadCount } from '../dist/index.js';

// A fixed pseudo-random problem: the same numbers on every machine.
let s = 7;
const rand = () => ((s = (s * 1103515245 + 12345) % 2147483648) / 2147483648) * 2 - 1;
const points = (n, d) => Array.from({ length: n }, () => Array.from({ length: d }, rand));
const x = points(40, 8);
const y = points(30, 8);
const harmful = points(10, 8);

const c = await costMatrix(x, y, { cost: 'sqeuclidean' });
for (let i = 0; i < 40; i++)
  for (let j = 0; j < 30; j++) {
    const direct = x[i].reduce((acc, v, k) => acc + (v - y[j][k]) ** 2, 0);
    assert.ok(Math.abs(c.data[i * 30 + j] - direct) < 1e-4, `cost[${i}][${j}]`);
  }
const ot = await sinkhorn({ x, y, cost: 'sqeuclidean' }, { eps: 0.1, tol: 1e-9, maxIter: 10000 });
assert.ok(ot.converged, 'sinkhorn did not converge');
const div = await sinkhornDivergence({ x, y, cost: 'cosine' }, { eps: 0.05, tol: 1e-9, maxIter: 10000 });
const learned = await learnWeights({ downstream: x, anchor: y, harmful }, { cost: 'cosine' });
const kept = await selectTopK(learned.weights, { fraction: 0.5 });
console.log(
  JSON.stringify({
    arch: process.arch,
    libc: process.report.getReport().header.glibcVersionRuntime ? 'glibc' : 'musl',
    addon: Object.keys(createRequire(import.meta.url).cache).filter((k) => k.endsWith('.node')),
    // 'native' or 'wasm32-wasi', as the generated loader stamps it.
    binding: createRequire(import.meta.url)('../native/index.cjs').__napiBindingTarget,
    threads: threadCount(),
    sinkhorn: ot.value,
    iterations: ot.iterations,
    divergence: div.value,
    weightsSum: learned.weights.reduce((a, b) => a + b, 0),
    order: Array.from(kept.order.subarray(0, 10)),
  }),
);
