// Learner at the paper's scale: n = 5,000 downstream (10% planted harmful),
// 50 anchor, 5,000 harmful reference samples, d = 4,096, cosine cost.
// Synthetic clustered embeddings (three task clusters, one harm cluster):
// the timing figure of the learning stage, and the planted samples kept at K = 80%.
//
//   npm run build && node bench/learner-scale.mjs [--d 4096] [--n 5000] [--p 5000]
// Writes bench/results/learner-scale-<n>x<p>-d<d>.json.
import { writeFileSync, mkdirSync, renameSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { costMatrix, learnWeights, selectTopK, threadCount } from '../dist/index.js';

const arg = (name, dflt) => {
  const i = process.argv.indexOf(`--${name}`);
  return i < 0 ? dflt : Number(process.argv[i + 1]);
};
const d = arg('d', 4096);
const n = arg('n', 5000);
const p = arg('p', 5000);

function rng(seed) {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
function cloud(rows, center, spread, seed) {
  const r = rng(seed);
  const data = new Float32Array(rows * d);
  for (let i = 0; i < rows; i++) {
    for (let k = 0; k < d; k++) {
      data[i * d + k] = center[k] + spread * Math.sqrt(-2 * Math.log(1 - r())) * Math.cos(2 * Math.PI * r());
    }
  }
  return { data, rows, cols: d };
}
function stack(...parts) {
  const data = new Float32Array(parts.reduce((s, q) => s + q.data.length, 0));
  let at = 0;
  for (const q of parts) {
    data.set(q.data, at);
    at += q.data.length;
  }
  return { data, rows: parts.reduce((s, q) => s + q.rows, 0), cols: d };
}
const axis = (k, extra = 0) => Array.from({ length: d }, (_, j) => (j === k ? 1 : 0) + (j === 0 ? extra : 0));
const spread = 0.5 / Math.sqrt(d); // noise of norm 0.5 around unit centres
const bad = Math.round(n / 10);
const per = Math.floor((n - bad) / 3);
const downstream = stack(
  cloud(per, axis(0), spread, 1),
  cloud(per, axis(1), spread, 2),
  cloud(n - bad - 2 * per, axis(2), spread, 3),
  cloud(bad, axis(3, 0.5), spread, 4),
);
const anchor = stack(cloud(17, axis(0), spread, 5), cloud(17, axis(1), spread, 6), cloud(16, axis(2), spread, 7));
const harmful = cloud(p, axis(3, 0.5), spread, 8);

const t0 = performance.now();
await costMatrix(downstream, harmful);
const costS = (performance.now() - t0) / 1000;
const t1 = performance.now();
const r = await learnWeights({ downstream, anchor, harmful });
const learnS = (performance.now() - t1) / 1000;
const sel = await selectTopK(r.weights, { fraction: 0.8 }, r.weights);
const keptPlanted = sel.kept.subarray(n - bad).reduce((s, k) => s + k, 0);

const result = {
  command: `node bench/learner-scale.mjs --d ${d} --n ${n} --p ${p}`,
  machine: { cpu: cpus()[0]?.model, threads: threadCount(), loadavg: loadavg() },
  date: new Date().toISOString(),
  problem: { n, anchor: 50, harmful: p, d, plantedHarmful: bad, keep: 0.8, cost: 'cosine' },
  costMatrixDownstreamHarmfulS: costS,
  learnS,
  steps: r.steps,
  converged: r.converged,
  innerConverged: r.innerConverged,
  innerIterations: r.innerIterations,
  harmfulRecallAtK: keptPlanted / bad,
};
console.log(JSON.stringify(result, null, 2));
mkdirSync(new URL('./results/', import.meta.url), { recursive: true });
const out = new URL(`./results/learner-scale-${n}x${p}-d${d}.json`, import.meta.url);
writeFileSync(`${out.pathname}.tmp`, `${JSON.stringify(result, null, 2)}\n`);
renameSync(`${out.pathname}.tmp`, out.pathname);
