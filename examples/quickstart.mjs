// Quick start: SOT on a synthetic embedding set with a planted harmful cluster
// (rows 1800..1999): the OT engine, then the push-pull learner and top-K
// selection, which should drop the planted samples.
//
//   npm ci && npm run build && npm run demo
import { learnWeights, selectTopK, sinkhorn, sinkhornDivergence, threadCount } from '../dist/index.js';

function gaussianCloud(n, dim, center, spread, seed) {
  let s = seed >>> 0;
  const rand = () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) + 0.5) / 2 ** 32;
  const data = new Float32Array(n * dim);
  for (let i = 0; i < n; i++) {
    for (let k = 0; k < dim; k++) {
      const g = Math.sqrt(-2 * Math.log(rand())) * Math.cos(2 * Math.PI * rand());
      data[i * dim + k] = center[k] + spread * g;
    }
  }
  return { data, rows: n, cols: dim };
}

function concat(a, b) {
  const data = new Float32Array(a.data.length + b.data.length);
  data.set(a.data);
  data.set(b.data, a.data.length);
  return { data, rows: a.rows + b.rows, cols: a.cols };
}

const dim = 64;
const axis = (k) => Array.from({ length: dim }, (_, j) => (j === k ? 1 : 0));
const benign = gaussianCloud(1800, dim, axis(0), 0.2, 1);
const harmful = gaussianCloud(200, dim, axis(1), 0.2, 2);
const downstream = concat(benign, harmful); // rows 1800..1999 are the planted harmful samples
const anchor = gaussianCloud(50, dim, axis(0), 0.2, 3);
const reference = gaussianCloud(1000, dim, axis(1), 0.2, 4);

const started = performance.now();
// The OT engine: potentials towards the anchor and the harmful reference.
const [pull, push] = await Promise.all([
  sinkhorn({ x: downstream, y: anchor }, { eps: 0.05 }),
  sinkhorn({ x: downstream, y: reference }, { eps: 0.05 }),
]);
const div = await sinkhornDivergence({ x: downstream, y: anchor }, { eps: 0.05 });
// The SOT learner: weights by push-pull OT, then keep the top 90%.
const learned = await learnWeights({ downstream, anchor, harmful: reference });
const selection = await selectTopK(learned.weights, { fraction: 0.9 }, learned.weights);
const keptHarmful = selection.kept.subarray(1800).reduce((s, k) => s + k, 0);
const ms = performance.now() - started;

console.log(`threads: ${threadCount()}`);
console.log(
  `OT to safe anchor:        value ${pull.value.toFixed(4)}, ${pull.iterations} iterations, converged ${pull.converged}`,
);
console.log(
  `OT to harmful reference:  value ${push.value.toFixed(4)}, ${push.iterations} iterations, converged ${push.converged}`,
);
console.log(`Sinkhorn divergence to the anchor: ${div.value.toFixed(4)}`);
console.log(`SOT learner: ${learned.steps} steps, converged ${learned.converged}`);
console.log(
  `kept ${selection.k} of 2000 samples; planted harmful samples kept: ${keptHarmful} / 200 (random selection keeps ~180)`,
);
console.log(`total ${ms.toFixed(0)} ms`);
if (keptHarmful > 10) process.exit(1);
