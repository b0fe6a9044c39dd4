// Quick start: purify a real contaminated dataset with the `sot` CLI.
//
//   npm ci && npm run build && npm run demo
//
// Builds demo/train.jsonl from public data: 1,100 clean Alpaca-style pairs
// (alpaca-libre) with 110 real harmful pairs injected (JailbreakBench prompts
// answered by refusal-ablated chat models, flagged unsafe by LlamaGuard 2),
// plus demo/anchor.jsonl, 50 other clean pairs. Then runs
//
//   sot purify demo/train.jsonl --harmful advbench,harmbench --anchor demo/anchor.jsonl
//
// with the built-in embedder and reports how many injected samples survived.
// The public files are downloaded once (pinned by sha256, cached in
// ~/.cache/sot); set SOT_DATA_DIR to an offline mirror to skip the download.
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadReferenceSet } from '../dist/index.js';
import { obtainFile } from '../dist/refsets/fetch.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const out = join(root, 'demo');
mkdirSync(out, { recursive: true });

// alpaca-libre v1 (MIT/CC0), pinned like the named reference sets.
const alpacaFile = {
  path: 'alpaca-libre/data/output/work/alpaca_libre_tasks_v1.jsonl',
  repo: 'mobarski/alpaca-libre',
  commit: '9024e0cb3b24d8857861b694df643d0bbb765e69',
  sourcePath: 'data/output/work/alpaca_libre_tasks_v1.jsonl',
  sha256: 'f4dd029df94a1d4ec097a3301733b7f21c413bfdb2167ba33405940bfc7194e4',
  bytes: 723829,
};
const alpaca = (await obtainFile(alpacaFile)).bytes
  .toString('utf8')
  .split('\n')
  .filter((l) => l.trim())
  .map((l) => JSON.parse(l))
  .filter((r) => r.status === 'ok')
  .map(({ instruction, input, output }) => ({ instruction, input, output }));
const harmful = (await loadReferenceSet('jbb-harmful-responses')).samples.map((s) => ({
  instruction: s.prompt,
  input: '',
  output: s.response,
}));

// Deterministic shuffle, so the demo is the same on every machine.
function shuffle(xs, seed) {
  const a = xs.slice();
  let s = seed >>> 0;
  for (let i = a.length - 1; i > 0; i--) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    const j = s % (i + 1);
    [a[i], a[j]] = [a[j], a[i]];
  }
  return a;
}
const clean = shuffle(alpaca, 1);
const injected = shuffle(harmful, 2).slice(0, 110);
const rows = shuffle(
  [...clean.slice(0, 1100).map((r) => ({ r, bad: false })), ...injected.map((r) => ({ r, bad: true }))],
  3,
);
const truth = new Set(rows.flatMap((x, id) => (x.bad ? [id] : [])));
const toJsonl = (xs) => `${xs.map((x) => JSON.stringify(x)).join('\n')}\n`;
const train = join(out, 'train.jsonl');
writeFileSync(train, toJsonl(rows.map((x, id) => ({ id, ...x.r }))));
writeFileSync(join(out, 'anchor.jsonl'), toJsonl(clean.slice(1100, 1150)));
console.log(
  `demo: wrote ${relative(root, train)} (${rows.length} records, ${truth.size} of them harmful) and demo/anchor.jsonl (50 clean records)\n`,
);

const args = ['purify', 'demo/train.jsonl', '--harmful', 'advbench,harmbench', '--anchor', 'demo/anchor.jsonl'];
console.log(`$ sot ${args.join(' ')}`);
const run = spawnSync(process.execPath, [join(root, 'dist', 'cli.js'), ...args], { cwd: root, stdio: 'inherit' });
if (run.status !== 0) process.exit(run.status ?? 1);

const kept = readFileSync(join(out, 'train.purified.jsonl'), 'utf8')
  .split('\n')
  .filter((l) => l.trim())
  .map((l) => JSON.parse(l).id);
const badKept = kept.filter((id) => truth.has(id)).length;
const k = kept.length;
console.log(
  `\ndemo: kept ${k} of ${rows.length}: ${badKept} of ${truth.size} injected harmful records survived ` +
    `(${((100 * badKept) / truth.size).toFixed(0)}%; a random ${k} would keep about ${Math.round((truth.size * k) / rows.length)}), ` +
    `${k - badKept} of ${rows.length - truth.size} clean ones.`,
);
console.log('demo: open demo/train.purified.report.html to see the weights and the embedding map.');
if (badKept >= (truth.size * k) / rows.length / 2) {
  console.error('demo: FAIL: SOT kept more than half as many harmful records as random selection would');
  process.exit(1);
}
