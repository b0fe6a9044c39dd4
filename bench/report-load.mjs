// How the HTML report answers at 100k records, in headless Chromium: a real
// `purify` run (dist/) on alpaca-libre + gsm8k pairs with ~5% real harmful
// pairs (JailbreakBench prompts answered by a refusal-ablated model), then
// the page opened `--loads` times in a fresh browser each: the time until the
// table answers (the page's own data-ready mark, from navigation start), and
// the time of each table operation (a sort by each column, a search, clearing
// it, a filter), each repeated `--repeats` times in the page (median, max).
// Each figure comes twice: wall-clock time in the page, which a loaded
// machine stretches, and the main thread's CPU time in script, style and
// layout (DevTools metrics in thread time), which it does not (and which
// leaves out the DevTools calls that measure it).
// The goal (issue 22): interactive within 3 s, a sort or a search within 300 ms.
//
//   npm run build && node bench/report-load.mjs [--records 100000] [--loads 3] [--repeats 5] [--keep DIR]
// (--keep: write the input and outputs into DIR and leave them there; with
// --keep, --reuse renders the page again from DIR's JSON report instead of
// running purify.)
// Prints a JSON summary (with the load average) on stdout.
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { purify } from '../dist/index.js';
import { rerenderReport } from '../dist/pipeline/outputs.js';
import { openPage, waitFor } from '../scripts/cdp.mjs';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const DATA_DIR = process.env.SOT_DATA_DIR || resolve(ROOT, '..', 'shared', 'data');
const arg = (name, dflt) => {
  const i = process.argv.indexOf(`--${name}`);
  return i < 0 ? dflt : Number(process.argv[i + 1]);
};
const RECORDS = arg('records', 100_000);
const LOADS = arg('loads', 3);
const REPEATS = arg('repeats', 5);

function jsonl(path) {
  return readFileSync(path, 'utf8')
    .split('\n')
    .filter((l) => l.trim())
    .map((l) => JSON.parse(l));
}

/** `n` records: alpaca-libre and gsm8k pairs (numbered past their first use), 5% harmful, each with its source. */
function makeInput(dir, n) {
  const alpaca = jsonl(join(DATA_DIR, 'alpaca-libre/data/output/work/alpaca_libre_tasks_v1.jsonl'))
    .filter((r) => r.status === 'ok')
    .map((r) => ({ instruction: r.instruction, input: r.input, output: r.output, source: 'alpaca-libre' }));
  const gsm = jsonl(join(DATA_DIR, 'gsm8k/grade_school_math/data/train.jsonl')).map((r) => ({
    instruction: r.question,
    input: '',
    output: r.answer,
    source: 'gsm8k',
  }));
  const harmful = JSON.parse(
    readFileSync(
      join(
        DATA_DIR,
        'refusal-direction/pipeline/runs/meta-llama-3-8b-instruct/completions/jailbreakbench_ablation_evaluations.json',
      ),
      'utf8',
    ),
  )
    .completions.filter((r) => r.is_jailbreak_llamaguard2 === 1)
    .map((r) => ({ instruction: r.prompt, input: '', output: r.response, source: 'injected' }));
  const benign = [...alpaca, ...gsm];
  const lines = [];
  for (let i = 0; i < n; i++) {
    const bad = i % 20 === 7;
    const pool = bad ? harmful : benign;
    const k = bad ? (i - 7) / 20 : i - Math.floor(i / 20);
    const r = pool[k % pool.length];
    const round = Math.floor(k / pool.length);
    lines.push(JSON.stringify({ id: i, ...r, instruction: round ? `${r.instruction} (${round})` : r.instruction }));
  }
  const input = join(dir, 'train.jsonl');
  writeFileSync(input, `${lines.join('\n')}\n`);
  const anchor = join(dir, 'anchor.jsonl');
  writeFileSync(
    anchor,
    `${alpaca
      .slice(-50)
      .concat(gsm.slice(-50))
      .map((r) => JSON.stringify(r))
      .join('\n')}\n`,
  );
  return { input, anchor };
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const r1 = (x) => Math.round(x * 10) / 10;

// In the page: the milliseconds of one table operation, layout of the new rows included.
const timed = (action) =>
  `(() => { const t0 = performance.now(); ${action}; document.querySelector('#records tbody').offsetHeight; return performance.now() - t0; })()`;
const click = (col) => timed(`document.querySelector('th[data-col="${col}"]').click()`);
const search = (q) =>
  timed(
    `(() => { const s = document.getElementById('search'); s.value = ${JSON.stringify(q)}; s.dispatchEvent(new Event('input')); })()`,
  );
const filter = (v) =>
  timed(
    `(() => { const f = document.getElementById('filter'); f.value = ${JSON.stringify(v)}; f.dispatchEvent(new Event('change')); })()`,
  );

const keepAt = process.argv.indexOf('--keep');
const dir = keepAt < 0 ? mkdtempSync(join(tmpdir(), 'sot-report-load-')) : resolve(process.argv[keepAt + 1]);
mkdirSync(dir, { recursive: true });
try {
  let res;
  let purifySeconds = null;
  if (keepAt >= 0 && process.argv.includes('--reuse')) {
    const report = JSON.parse(readFileSync(join(dir, 'train.purified.report.json'), 'utf8'));
    await rerenderReport(join(dir, 'train.purified.report.json'), report.outputs.html);
    res = { n: report.selection.n, k: report.selection.k, outputs: report.outputs };
  } else {
    const { input, anchor } = makeInput(dir, RECORDS);
    const t0 = performance.now();
    res = await purify({
      input,
      anchor: [anchor],
      harmful: ['advbench', 'harmbench'],
      dataDir: DATA_DIR,
      offline: true,
      embeddingCache: false,
    });
    purifySeconds = r1((performance.now() - t0) / 1000);
  }
  const html = res.outputs.html;
  const url = pathToFileURL(html).href;
  const loads = [];
  const loadsCpu = [];
  const ops = {};
  const cpu = {};
  let page;
  const work = (m) => m.ScriptDuration + m.RecalcStyleDuration + m.LayoutDuration;
  const op = async (name, expression) => {
    const before = work(await page.metrics());
    const ms = await page.evaluate(expression);
    const after = work(await page.metrics());
    (ops[name] ??= []).push(ms);
    (cpu[name] ??= []).push((after - before) * 1000);
  };
  for (let l = 0; l < LOADS; l++) {
    page = await openPage(url, { timeoutMs: 120_000 });
    try {
      loads.push(Number(await page.evaluate(waitFor('document.body.dataset.ready', 60_000))));
      loadsCpu.push(work(await page.metrics()) * 1000);
      const rows = await page.evaluate('document.querySelectorAll("#records tbody tr.row").length');
      if (rows !== 50) throw new Error(`the table shows ${rows} rows, expected 50`);
      for (let k = 0; k < REPEATS; k++) {
        await op('nothing (what measuring costs)', timed(''));
        for (const col of ['rank', 'score', 'push', 'kept', 'group', 'reason', 'excerpt']) {
          await op(`sort by ${col}`, click(col));
          await op(`sort by ${col} (reversed)`, click(col));
        }
        await op(k === 0 ? 'search "how to" (first search)' : 'search "how to"', search('how to'));
        await op('search "hack"', search('hack'));
        await op('clear search', search(''));
        await op('filter removed', filter('dropped'));
        await op('filter all', filter('all'));
      }
    } finally {
      await page.close();
    }
  }
  const summary = {
    bench: 'report-load',
    records: res.n,
    kept: res.k,
    htmlBytes: statSync(html).size,
    reportBytes: statSync(res.outputs.report).size,
    tableRows: JSON.parse(readFileSync(res.outputs.report, 'utf8')).records?.index.length ?? null,
    purifySeconds,
    readyMs: {
      median: r1(median(loads)),
      max: r1(Math.max(...loads)),
      runs: loads.map(r1),
      mainThreadCpu: loadsCpu.map(r1),
    },
    operationsMs: Object.fromEntries(
      Object.entries(ops).map(([k, v]) => [
        k,
        {
          median: r1(median(v)),
          max: r1(Math.max(...v)),
          cpuMedian: r1(median(cpu[k])),
          cpuMax: r1(Math.max(...cpu[k])),
        },
      ]),
    ),
    machine: { cpus: cpus().length, model: cpus()[0]?.model, loadavg: loadavg().map((x) => Math.round(x * 100) / 100) },
    chromium: await (async () =>
      (await import('node:child_process')).spawnSync('chromium', ['--version'], { encoding: 'utf8' }).stdout.trim())(),
  };
  console.log(JSON.stringify(summary, null, 1));
} finally {
  if (keepAt < 0) rmSync(dir, { recursive: true, force: true });
}
