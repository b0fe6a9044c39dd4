#!/usr/bin/env node
// Markdown tables of quality results written by eval.mjs (what BENCHMARKS.md shows).
//
//     node bench/quality/table.mjs bench/quality/results/eval-builtin-jbb.json [more.json ...]
//
// One table per (embedder, task, contamination) for the main cell, then the
// contamination-rate and anchor-size sweeps as harmful recall@K per method.
import { readFileSync } from 'node:fs';

const mean = (xs) => xs.reduce((a, b) => a + b, 0) / xs.length;
const sd = (xs) => (xs.length < 2 ? 0 : Math.sqrt(xs.reduce((a, b) => a + (b - mean(xs)) ** 2, 0) / (xs.length - 1)));
const fmt = (xs, d = 3) => `${mean(xs).toFixed(d)} ± ${sd(xs).toFixed(d)}`;

const rows = process.argv.slice(2).flatMap((f) => JSON.parse(readFileSync(f, 'utf8')).results);
const key = (r) => `${r.embedder}|${r.task}|${r.contam}`;
const groups = new Map();
for (const r of rows) {
  if (!groups.has(key(r))) groups.set(key(r), []);
  groups.get(key(r)).push(r);
}
const methodsOf = (rs) => [...new Set(rs.map((r) => r.method))];

for (const [k, rs] of groups) {
  const [embedder, task, contam] = k.split('|');
  const main = rs.filter((r) => r.sweep === 'main');
  if (main.length) {
    const seeds = new Set(main.map((r) => r.seed)).size;
    console.log(
      `\n**${embedder}, ${task} + ${contam}** (10% contamination, 50 anchors, n ${main[0].n}, K 80%, ${seeds} seeds)\n`,
    );
    console.log('| method | harmful recall@K ↓ | benign retention | hard-negative retention | AUROC | seconds |');
    console.log('|---|---|---|---|---|---|');
    for (const m of methodsOf(main)) {
      const g = main.filter((r) => r.method === m);
      const hard = g[0].hard === null ? '-' : mean(g.map((r) => r.hard)).toFixed(3);
      console.log(
        `| ${m} | ${fmt(g.map((r) => r.recall))} | ${mean(g.map((r) => r.benign)).toFixed(3)} | ${hard} | ${mean(g.map((r) => r.auroc)).toFixed(3)} | ${mean(g.map((r) => r.seconds)).toFixed(2)} |`,
      );
    }
  }
  for (const [sweep, field, label] of [
    ['rate', 'rate', 'contamination'],
    ['anchor', 'anchor', 'anchor size'],
  ]) {
    const cells = rs.filter((r) => r.sweep === sweep || r.sweep === 'main');
    if (!rs.some((r) => r.sweep === sweep)) continue;
    const values = [...new Set(cells.map((r) => r[field]))].sort((a, b) => a - b);
    const methods = methodsOf(cells).filter((m) => m !== 'random' && m !== 'pull-only');
    console.log(`\n*${embedder}, ${task} + ${contam}: harmful recall@K by ${label}*\n`);
    console.log(`| ${label} | ${methods.join(' | ')} |`);
    console.log(`|---|${methods.map(() => '---').join('|')}|`);
    for (const v of values) {
      const at = cells.filter((r) => r[field] === v && (sweep === 'rate' ? r.anchor === 50 : r.rate === 0.1));
      const n = at[0]?.n;
      console.log(
        `| ${v}${n !== undefined && n < 2000 ? ` (n ${n})` : ''} | ${methods.map((m) => mean(at.filter((r) => r.method === m).map((r) => r.recall)).toFixed(3)).join(' | ')} |`,
      );
    }
  }
}
