// Quick start: the OT engine on a synthetic embedding set with a planted
// harmful cluster. Samples whose potential towards the safe anchor is high and
// whose potential towards the harmful reference is low score worst: those are
// the ones SOT's push-pull learner down-weights.
//
//   npm ci && npm run build && npm run demo
import { sinkhorn, sinkhornDivergence, threadCount } from '../dist/index.js';

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
const [pull, push] = await Promise.all([
  sinkhorn({ x: downstream, y: anchor }, { eps: 0.05 }),
  sinkhorn({ x: downstream, y: reference }, { eps: 0.05 }),
]);
const score = pull.gradA.map((v, i) => v - push.gradA[i]); // high = far from safe, close to harm
const order = Array.from(score.keys()).sort((i, j) => score[j] - score[i]);
const caught = order.slice(0, 200).filter((i) => i >= 1800).length;
const div = await sinkhornDivergence({ x: downstream, y: anchor }, { eps: 0.05 });
const ms = performance.now() - started;

console.log(`threads: ${threadCount()}`);
console.log(`OT to safe anchor:        value ${pull.value.toFixed(4)}, ${pull.iterations} iterations, converged ${pull.converged}`);
console.log(`OT to harmful reference:  value ${push.value.toFixed(4)}, ${push.iterations} iterations, converged ${push.converged}`);
console.log(`Sinkhorn divergence to the anchor: ${div.value.toFixed(4)}`);
console.log(`planted harmful samples among the 200 worst push-pull scores: ${caught} / 200`);
console.log(`total ${ms.toFixed(0)} ms`);
if (caught < 190) process.exit(1);
