#!/usr/bin/env node
// Markdown tables of the quality II results written by eval.mjs (BENCHMARKS.md, "Quality II").
//
//     node bench/quality/table2.mjs bench/quality/results/quality2-builtin.json [more.json ...]
//     node bench/quality/table2.mjs --estimate-only bench/quality/results/estimate-builtin.json
//
// Per embedder and set (dev, held out): one row per task, contamination and
// rate with SOT's and each baseline's mean harmful recall@K over the seeds
// (± standard error), SOT's benign and hard-negative retention, the best
// baseline and whether SOT is within one standard error of it; then the
// contamination estimate against the truth, the interval's coverage and the
// automatic K against the fixed 80%, and a tally of the estimate's targets
// (issue 17). `--estimate-only`: the estimate tables and the tally only (for
// runs of SOT alone, `eval.mjs --methods sot`).
import { readFileSync } from 'node:fs';

const mean = (xs) => xs.reduce((a, b) => a + b, 0) / xs.length;
const sd = (xs) => (xs.length < 2 ? 0 : Math.sqrt(xs.reduce((a, b) => a + (b - mean(xs)) ** 2, 0) / (xs.length - 1)));
const se = (xs) => sd(xs) / Math.sqrt(xs.length);
const f3 = (x) => (x === null || x === undefined || Number.isNaN(x) ? '-' : x.toFixed(3));

const ESTIMATE_ONLY = process.argv.includes('--estimate-only');
const runs = process.argv
  .slice(2)
  .filter((a) => a !== '--estimate-only')
  .flatMap((f) => JSON.parse(readFileSync(f, 'utf8')).results);
const by = (rs, key) => {
  const m = new Map();
  for (const r of rs) {
    const k = key(r);
    if (!m.has(k)) m.set(k, []);
    m.get(k).push(r);
  }
  return m;
};
const BASELINES = ['push-only', 'pull-only', 'nearest-harmful', 'saft', 'random'];

for (const [head, rs] of by(
  runs.filter((r) => r.anchor === 50),
  (r) => `${r.embedder}|${r.set ?? 'dev'}`,
)) {
  const [embedder, set] = head.split('|');
  const order = (k) => k.split('|');
  const cells = [...by(rs, (r) => `${r.task}|${r.contam}|${r.rate}`)].sort(([a], [b]) => {
    const [x, y] = [order(a), order(b)];
    return x[0].localeCompare(y[0]) || x[1].localeCompare(y[1]) || Number(x[2]) - Number(y[2]);
  });
  const seeds = new Set(rs.map((r) => r.seed)).size;
  if (!ESTIMATE_ONLY) recallTable(embedder, set, cells, seeds);
  estimateTable(embedder, set, cells);
}

function recallTable(embedder, set, cells, seeds) {
  console.log(
    `\n**${embedder}, ${set === 'heldout' ? 'held-out tasks (never tuned on)' : 'development tasks'}**: harmful recall@80% (mean ± s.e., ${seeds} seeds; lower is better), SOT's benign / hard-negative retention\n`,
  );
  console.log(
    `| task + contamination | rate | n | sot | ${BASELINES.join(' | ')} | benign | hard-neg | SOT ≤ best + 1 s.e. |`,
  );
  console.log(`|---|---|---|---|${BASELINES.map(() => '---').join('|')}|---|---|---|`);
  for (const [k, g] of cells) {
    const [task, contam, rate] = k.split('|');
    const of = (m) => g.filter((r) => r.method === m);
    const sot = of('sot');
    if (!sot.length) continue;
    const rec = (m) => {
      const x = of(m).map((r) => r.recall);
      return x.length && x[0] !== null ? { m: mean(x), se: se(x) } : null;
    };
    const cell = (m) => {
      const r = rec(m);
      return r ? `${f3(r.m)} ± ${f3(r.se)}` : '-';
    };
    const s = rec('sot');
    const best = BASELINES.map((m) => ({ m, r: rec(m) }))
      .filter((x) => x.r)
      .sort((a, b) => a.r.m - b.r.m)[0];
    const ok = s && best ? (s.m <= best.r.m + best.r.se ? 'yes' : `no (${best.m})`) : '-';
    const hard = sot[0].hard === null ? '-' : f3(mean(sot.map((r) => r.hard)));
    const few = new Set(sot.map((r) => r.seed)).size;
    console.log(
      `| ${task} + ${contam} | ${rate} | ${sot[0].n}${few < seeds ? ` (${few} seeds)` : ''} | ${cell('sot')} | ${BASELINES.map(cell).join(' | ')} | ${f3(mean(sot.map((r) => r.benign)))} | ${hard} | ${ok} |`,
    );
  }
}

function estimateTable(embedder, set, cells) {
  // The targets of issue 17 for the automatic K, over every seed of the cells shown.
  const tally = { within: [0, 0], covered: [0, 0], cleanDrop: [], recall: [0, 0], before: [0, 0] };
  console.log(`\n*${embedder}, ${set}: contamination estimate (90% interval) and K = auto against K = 80%*\n`);
  console.log(
    '| task + contamination | truth | estimate | mean interval | covered | clean / inconclusive | auto drops | recall auto | recall 80% | benign auto | hard-neg auto | learner K alone: drops, recall |',
  );
  console.log('|---|---|---|---|---|---|---|---|---|---|---|---|');
  for (const [k, g] of cells) {
    const [task, contam, rate] = k.split('|');
    const sot = g.filter((r) => r.method === 'sot' && r.estimate !== undefined);
    if (!sot.length) continue;
    const m = (key) => (sot[0][key] === null ? null : mean(sot.map((r) => r[key])));
    const covered = sot.filter((r) => r.low <= Number(rate) && Number(rate) <= r.high).length;
    const clean = sot.filter((r) => r.clean).length;
    // runs before the verdict existed have none: the lower end alone decided
    const unsure = sot.filter((r) => r.verdict === 'inconclusive').length;
    // the learner's own K (autoKeep), without purify's floor at the default; the default when inconclusive.
    // Results written before 2026-12-07 name it posterior* (the K was then the mixture posterior's).
    const own = (x) =>
      x.ownDropped === undefined
        ? { d: x.posteriorDropped, r: x.posteriorRecall }
        : { d: x.ownDropped, r: x.ownRecall };
    const before = own(sot[0]).d === undefined ? null : sot.map((x) => own(x).r ?? x.recall);
    const beforeDrop = before && mean(sot.map((x) => own(x).d ?? 0.2));
    console.log(
      `| ${task} + ${contam} | ${rate} | ${f3(m('estimate'))} ± ${f3(sd(sot.map((r) => r.estimate)))} | [${f3(m('low'))}, ${f3(m('high'))}] | ${covered}/${sot.length} | ${clean} / ${unsure} of ${sot.length} | ${f3(m('autoDropped'))} | ${f3(m('autoRecall'))} | ${f3(m('recall'))} | ${f3(m('autoBenign'))} | ${f3(m('autoHard'))} | ${before ? `${f3(beforeDrop)}, ${f3(Number(rate) ? mean(before) : null)}` : '-'} |`,
    );
    const r = Number(rate);
    if (r === 0) tally.cleanDrop.push(...sot.map((x) => x.autoDropped));
    else {
      tally.covered[0] += covered;
      tally.covered[1] += sot.length;
      if (/jbb|physical/.test(contam)) {
        tally.within[0] += Math.abs(m('estimate') - r) <= 0.03;
        tally.within[1]++;
      }
      tally.recall[0] += m('autoRecall') <= m('recall') + 0.02;
      tally.recall[1]++;
      if (before) {
        tally.before[0] += mean(before) <= m('recall') + 0.02;
        tally.before[1]++;
      }
    }
  }
  console.log(
    `\nTargets over the cells above: estimate within ±3 points (jbb, physical; mean over seeds) in ${tally.within[0]}/${tally.within[1]} cells; the interval covers the truth in ${tally.covered[0]}/${tally.covered[1]} runs with contamination; clean data: at most ${f3(Math.max(...tally.cleanDrop))} dropped (mean ${f3(mean(tally.cleanDrop))}, ${tally.cleanDrop.filter((x) => x <= 0.02).length}/${tally.cleanDrop.length} runs at most 2%); recall with K = auto at most the fixed 80% + 0.02 in ${tally.recall[0]}/${tally.recall[1]} cells${tally.before[1] ? ` (with the learner K alone: ${tally.before[0]}/${tally.before[1]})` : ''}.`,
  );
}
