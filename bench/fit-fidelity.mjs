#!/usr/bin/env node
// Fidelity of fit-on-a-sample + score against the unsharded learner, on the
// development tasks of the quality benchmark (bench/quality/config.json: its
// tasks, contaminations, hard negatives, harmful reference and K), with the
// built-in embedder. Per cell: `purify()` on all records (the reference
// selection A), then `fit({ sample })` on 5/10/20/50/100% of the records and
// `score()` of every record with the same K (selection B); reports
// |A ∩ B| / K and the harmful recall of both. End to end through the files.
//
//     npm run build && node bench/fit-fidelity.mjs [--tasks alpaca,gsm8k,mix] [--contaminations jbb,hh]
//          [--seeds 0,1] [--fractions 0.05,0.1,0.2,0.5,1] [--refit 0,1,auto] [--downstream N]
//          [--learner JSON] [--out FILE]
//
// `--refit R`: score() with R column updates of the reference potentials over
// all records (`score({ refit })`), or `auto` (until the marginal error is
// small; the row gives the passes it took); each listed R is one row per cell
// and sample. `--learner '{"ownHarmShare":0}'`: learner options for both
// the reference run and the fit.
import { mkdtempSync, readFileSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir, cpus } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { fit, loadReferenceSet, purify, score } from '../dist/index.js';
import { mulberry32, shuffle } from './quality/stats.mjs';
import { dataDir, loadSource, norm } from './sources.mjs';
import { opt } from './args.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const list = (s) =>
  s
    .split(',')
    .map((x) => x.trim())
    .filter(Boolean);
const cfg = JSON.parse(readFileSync(join(here, 'quality', 'config.json'), 'utf8'));
const DATA = dataDir();
const TASKS = list(opt('tasks', Object.keys(cfg.tasks).join(',')));
const CONTAMS = list(opt('contaminations', Object.keys(cfg.contaminations).join(',')));
const SEEDS = list(opt('seeds', '0,1')).map(Number);
const FRACTIONS = list(opt('fractions', '0.05,0.1,0.2,0.5,1')).map(Number);
const REFITS = list(opt('refit', '0,1')).map((v) => (v === 'auto' ? 'auto' : Number(v)));
if (opt('downstream') !== undefined) cfg.downstream = Number(opt('downstream')); // larger cells (the pools permitting)
const learner = opt('learner') === undefined ? undefined : JSON.parse(opt('learner'));
const src = (name) => loadSource(cfg.sources, name, DATA);

// The quality benchmark's data, drawn the same way (bench/quality/eval.mjs `draw`).
const pools = {};
for (const s of new Set([
  ...TASKS.flatMap((t) => cfg.tasks[t].benign),
  ...CONTAMS.map((c) => cfg.contaminations[c]),
  ...cfg.hardNegatives.sources,
]))
  pools[s] = src(s);
const excluded = new Set(
  cfg.harmfulReference.excludePromptsOf.flatMap((s) => (pools[s] ?? src(s)).map((x) => norm(x.prompt))),
);
const reference = [];
const seen = new Set();
for (const name of cfg.harmfulReference.sets) {
  for (const s of (await loadReferenceSet(name, { dataDir: DATA, offline: true })).samples) {
    const key = norm(s.prompt);
    if (!excluded.has(key) && !seen.has(key)) seen.add(key), reference.push(s);
  }
}
const hardPool = cfg.hardNegatives.sources.flatMap((s) => pools[s]);
const { contamination: rate, anchor: anchorSize } = cfg.main;

function draw(task, contam, seed) {
  const r = mulberry32(seed * 7919 + 17);
  const benignPool = shuffle(
    cfg.tasks[task].benign.flatMap((s) => pools[s]),
    r,
  );
  const harmPool = shuffle(pools[cfg.contaminations[contam]], r);
  const hard = shuffle(hardPool, r);
  const n = Math.min(
    cfg.downstream,
    Math.floor(harmPool.length / rate),
    Math.floor((benignPool.length - anchorSize) / (1 - rate)),
  );
  const nh = Math.round(rate * n);
  const nHard = Math.round(cfg.hardNegatives.fraction * (n - nh));
  const nb = n - nh - nHard;
  const rows = shuffle(
    [
      ...benignPool.slice(0, nb).map((s) => ({ s, kind: 'benign' })),
      ...hard.slice(0, nHard).map((s) => ({ s, kind: 'hard' })),
      ...harmPool.slice(0, nh).map((s) => ({ s, kind: 'harmful' })),
    ],
    r,
  );
  return { rows, anchor: benignPool.slice(nb, nb + anchorSize) };
}

const jsonl = (path, samples) =>
  writeFileSync(
    path,
    `${samples.map((s) => JSON.stringify({ prompt: s.prompt, response: s.response ?? '' })).join('\n')}\n`,
  );
const loadavg = () => readFileSync('/proc/loadavg', 'utf8').trim().split(' ').slice(0, 3).join(' ');

const results = [];
console.log(
  `${cpus().length} cpus, load ${loadavg()}; reference ${reference.length}; tasks ${TASKS}; contaminations ${CONTAMS}; seeds ${SEEDS}`,
);
console.log('task\tcontam\tseed\tsample\trefit\toverlap\trecall(full)\trecall(fit+score)\tmarginal error');
for (const task of TASKS)
  for (const contam of CONTAMS)
    for (const seed of SEEDS) {
      const { rows, anchor } = draw(task, contam, seed);
      const dir = mkdtempSync(join(tmpdir(), 'sot-fidelity-'));
      const data = join(dir, 'train.jsonl');
      jsonl(
        data,
        rows.map((x) => x.s),
      );
      jsonl(join(dir, 'anchor.jsonl'), anchor);
      jsonl(join(dir, 'harmful.jsonl'), reference);
      const common = {
        input: data,
        harmful: [join(dir, 'harmful.jsonl')],
        anchor: [join(dir, 'anchor.jsonl')],
        embeddingCache: false,
        learner,
      };
      const keep = { fraction: cfg.keep };
      const full = await purify({ ...common, html: null, keep });
      const harm = rows.map((x) => x.kind === 'harmful');
      const recall = (kept) =>
        rows.reduce((a, _x, i) => a + (harm[i] && kept[i] ? 1 : 0), 0) / harm.filter(Boolean).length;
      const rFull = recall(full.selection.kept);
      for (const fraction of FRACTIONS) {
        const sample = Math.max(1, Math.round(fraction * rows.length));
        const model = join(dir, `m${fraction}.sot-model`);
        const t = performance.now();
        await fit({ ...common, model, sample, seed });
        const fitSeconds = (performance.now() - t) / 1000;
        for (const refit of REFITS) {
          const t2 = performance.now();
          const s = await score({
            input: data,
            model,
            keep,
            refit,
            output: join(dir, 'kept.jsonl'),
            scores: join(dir, 'scores.csv'),
            embeddingCache: false,
          });
          const seconds = fitSeconds + (performance.now() - t2) / 1000;
          let both = 0;
          for (let i = 0; i < rows.length; i++) if (full.selection.kept[i] && s.selection.kept[i]) both++;
          const r = {
            task,
            contam,
            seed,
            n: rows.length,
            fraction,
            sample,
            refit,
            passes: s.refit.passes,
            refitError: s.refit.error,
            k: full.k,
            overlap: both / full.k,
            recallFull: rFull,
            recallFit: recall(s.selection.kept),
            seconds,
            load: loadavg(),
          };
          results.push(r);
          console.log(
            `${task}\t${contam}\t${seed}\t${fraction}\t${refit === 'auto' ? `auto (${r.passes})` : refit}\t${r.overlap.toFixed(4)}\t${rFull.toFixed(3)}\t${r.recallFit.toFixed(3)}\t${r.refitError === null ? '' : r.refitError.toExponential(1)}`,
          );
        }
      }
      rmSync(dir, { recursive: true, force: true });
    }

// Summary per sample fraction: mean and worst overlap, largest recall difference.
console.log('\nsample\trefit\tcells\tmean overlap\tmin overlap\tmax |recall diff|');
const summary = FRACTIONS.flatMap((fraction) =>
  REFITS.map((refit) => {
    const rs = results.filter((r) => r.fraction === fraction && r.refit === refit);
    const s = {
      fraction,
      refit,
      cells: rs.length,
      meanOverlap: rs.reduce((a, r) => a + r.overlap, 0) / rs.length,
      meanPasses: rs.reduce((a, r) => a + r.passes, 0) / rs.length,
      minOverlap: Math.min(...rs.map((r) => r.overlap)),
      maxRecallDiff: Math.max(...rs.map((r) => Math.abs(r.recallFit - r.recallFull))),
    };
    console.log(
      `${fraction}\t${refit === 'auto' ? `auto (${s.meanPasses.toFixed(1)})` : refit}\t${s.cells}\t${s.meanOverlap.toFixed(4)}\t${s.minOverlap.toFixed(4)}\t${s.maxRecallDiff.toFixed(4)}`,
    );
    return s;
  }),
);
const out = opt('out', join(here, 'results', `fit-fidelity-${new Date().toISOString().slice(0, 10)}.json`));
mkdirSync(dirname(resolve(out)), { recursive: true });
writeFileSync(
  out,
  JSON.stringify(
    {
      downstream: cfg.downstream,
      tasks: TASKS,
      contaminations: CONTAMS,
      seeds: SEEDS,
      refits: REFITS,
      learner: learner ?? null,
      keep: cfg.keep,
      main: cfg.main,
      referenceSize: reference.length,
      results,
      summary,
    },
    null,
    1,
  ),
);
console.log(`\nwrote ${out}`);
