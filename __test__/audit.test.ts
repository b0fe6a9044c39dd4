// Issue 22: what was removed and why. The removed-records file in each input
// format, the reasons (pull + push add up to the log-weight; the nearest
// harmful references), the scores file's columns, and the HTML report driven
// in headless Chromium: table, sorting, search, the download, the summary.
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parquetWriteFile } from 'hyparquet-writer';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openDataset } from '../src/io/index.js';
import { purify, type PurifyResult } from '../src/pipeline/purify.js';
import { SCORE_COLUMNS } from '../src/pipeline/outputs.js';
import { renderReportHtml } from '../src/report/html.js';
import type { PurifyReport } from '../src/report/types.js';
import { openPage, waitFor, type Page } from '../scripts/cdp.mjs';
import { CLI, contaminated, DATA_DIR, readJsonl, writeJsonl, type Contaminated } from './datasets.js';

type Row = Record<string, string>;

/** scores.csv as objects (the reason column is quoted CSV). */
function readScores(path: string): { header: string[]; rows: Row[] } {
  const text = readFileSync(path, 'utf8');
  const lines: string[][] = [];
  let cells: string[] = [];
  let cell = '';
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i]!;
    if (quoted) {
      if (ch === '"' && text[i + 1] === '"') (cell += '"'), i++;
      else if (ch === '"') quoted = false;
      else cell += ch;
    } else if (ch === '"') quoted = true;
    else if (ch === ',') cells.push(cell), (cell = '');
    else if (ch === '\n') cells.push(cell), lines.push(cells), (cells = []), (cell = '');
    else cell += ch;
  }
  const [header, ...body] = lines;
  return { header: header!, rows: body.map((l) => Object.fromEntries(header!.map((h, i) => [h, l[i] ?? '']))) };
}

const common = { harmful: ['advbench', 'harmbench'], dataDir: DATA_DIR, offline: true, embeddingCache: false as const };

describe('removed records and reasons', () => {
  let c: Contaminated;
  let input: string;
  let anchor: string;
  let res: PurifyResult;
  beforeAll(async () => {
    c = contaminated();
    input = writeJsonl(join(c.dir, 'train.jsonl'), c.records);
    anchor = writeJsonl(join(c.dir, 'anchor.jsonl'), c.anchor);
    res = await purify({ ...common, input, anchor: [anchor] });
  }, 120_000);

  it('writes every dropped record, unchanged, with its score, rank, pull, push and reason, beside the input', () => {
    expect(res.outputs.removed).toBe(join(c.dir, 'train.removed.jsonl'));
    const removed = readJsonl(res.outputs.removed!);
    expect(removed).toHaveLength(res.n - res.k);
    const { rows } = readScores(res.outputs.scores);
    const dropped = rows.filter((r) => r.kept === '0');
    expect(removed.map((r) => r.id)).toEqual(dropped.map((r) => c.records[Number(r.index)]!.id));
    removed.forEach((rec, j) => {
      const { sot_score, sot_rank, sot_pull, sot_push, sot_reason, ...rest } = rec;
      const s = dropped[j]!;
      expect(rest).toEqual(c.records[Number(s.index)]); // the record itself, unchanged
      expect(sot_score).toBe(Number(s.score));
      expect(sot_rank).toBe(Number(s.rank));
      expect(sot_pull).toBe(Number(s.pull));
      expect(sot_push).toBe(Number(s.push));
      expect(sot_reason).toBe(s.reason); // the reason in words, as scores.csv gives it
      expect(sot_reason).toMatch(/\(pull [-+]\d\.\d\d\)/);
      expect(sot_rank as number).toBeGreaterThanOrEqual(res.k);
    });
    // Kept and removed together are the whole input.
    expect(readJsonl(res.outputs.dataset).length + removed.length).toBe(c.records.length);
  });

  it('scores.csv: documented columns, none duplicated; pull + push + offset is the log-weight', () => {
    const { header, rows } = readScores(res.outputs.scores);
    expect(header).toEqual([...SCORE_COLUMNS]);
    expect(new Set(header).size).toBe(header.length);
    const doc = readFileSync(join(__dirname, '..', 'docs', 'audit.md'), 'utf8');
    for (const col of header) expect(doc, `docs/audit.md documents ${col}`).toContain(`\`${col}\``);
    const { offset, maxResidual } = res.report.contributions!;
    expect(maxResidual).toBeLessThan(0.2);
    const w = res.scores.learned!.weights;
    for (const r of rows) {
      const i = Number(r.index);
      expect(Number(r.score)).toBe(w[i]);
      expect(Number(r.log_weight)).toBeCloseTo(Math.log(rows.length * w[i]!), 10);
      expect(Math.abs(Number(r.pull) + Number(r.push) + offset - Number(r.log_weight))).toBeLessThanOrEqual(
        maxResidual + 1e-12,
      );
    }
    // Most injected harmful records owe their removal to the push (0.79 here: the push of the data's own harm,
    // docs/learner-defaults.md, counts as push, and the records it finds sit less far from the anchor).
    const harmfulDropped = rows.filter((r) => r.kept === '0' && c.records[Number(r.index)]!.source === 'harmful');
    expect(harmfulDropped.length).toBeGreaterThan(20);
    expect(
      harmfulDropped.filter((r) => Number(r.push) < Number(r.pull)).length / harmfulDropped.length,
    ).toBeGreaterThan(0.75);
  });

  it('gives each dropped record its nearest harmful references, in words too', () => {
    const { rows } = readScores(res.outputs.scores);
    const advbench = readFileSync(join(DATA_DIR, 'refusal-direction/dataset/raw/advbench.csv'), 'utf8');
    // what the second solve pushed away from too: the data's own harm, points of 3 records each
    const members = res.report.learner!.ownHarmMembers;
    expect(members.length).toBe(Math.round(0.05 * rows.length));
    const sets = new Set<string>();
    for (const r of rows) {
      if (r.kept === '1') {
        expect(r.reason).toBe('');
        continue;
      }
      sets.add(r.nearest_set!);
      expect(Number(r.nearest_cost)).toBeGreaterThanOrEqual(0);
      const cost = `(cost ${Number(r.nearest_cost).toFixed(3)})`;
      if (r.nearest_set === 'own-harm') {
        const m = members[Number(r.nearest_index)]!;
        expect(r.reason).toContain(`the data's own harm ${cost}: records ${m[0]}, ${m[1]} and ${m[2]}, among those`);
      } else {
        expect(['advbench', 'harmbench']).toContain(r.nearest_set!);
        expect(Number(r.nearest_index)).toBeLessThan(r.nearest_set === 'advbench' ? 520 : 400);
        expect(r.reason).toContain(`${r.nearest_set} #${r.nearest_index} ${cost}`);
      }
      expect(r.reason).toMatch(Number(r.pull) < 0 ? /far from the anchor \(pull -/ : /near the anchor \(pull \+/);
      expect(r.reason).toMatch(Number(r.push) < 0 ? /close to .* \(push -/ : /far from harm \(push \+/);
    }
    expect(sets).toEqual(new Set(['advbench', 'harmbench', 'own-harm']));
    // The excerpt in the words is the cited reference's own text.
    const first = rows.find((r) => r.kept === '0' && r.nearest_set === 'advbench')!;
    const quoted = /"([^"]{20})/.exec(first.reason!)![1]!;
    expect(advbench).toContain(quoted);
    const t = res.report.records!;
    const s = t.index.indexOf(Number(first.index));
    expect(t.nearest[s]![0]).toEqual([
      'advbench',
      Number(first.nearest_index),
      expect.closeTo(Number(first.nearest_cost), 4),
    ]);
    expect(t.nearest[s]).toHaveLength(3);
  });

  it('explains every record on request, and writes no removed file when told not to', async () => {
    const out = join(c.dir, 'all.jsonl');
    const all = await purify({
      ...common,
      input,
      anchor: [anchor],
      output: out,
      removed: null,
      reasons: { for: 'all', neighbours: 2 },
      html: null,
    });
    expect(all.outputs.removed).toBeNull();
    expect(existsSync(join(c.dir, 'all.removed.jsonl'))).toBe(false);
    const { rows } = readScores(all.outputs.scores);
    expect(rows.every((r) => r.reason !== '' && r.nearest_set !== '')).toBe(true);
    expect(all.report.records!.nearest.every((x) => x !== null && x.length === 2)).toBe(true);
    await expect(
      purify({ ...common, input, anchor: [anchor], output: out, reasons: { neighbours: 0 } }),
    ).rejects.toMatchObject({ code: 'ERR_OPTION' });
  }, 120_000);

  it('writes the removed records in the input format: CSV, TSV, JSON, Parquet', async () => {
    const small = c.records.slice(0, 160);
    const cols = ['id', 'instruction', 'input', 'output', 'source'] as const;
    const quote = (v: unknown) => `"${String(v).replace(/"/g, '""')}"`;
    writeFileSync(
      join(c.dir, 'small.csv'),
      `${[cols.join(','), ...small.map((r) => cols.map((k) => quote(r[k])).join(','))].join('\n')}\n`,
    );
    writeFileSync(
      join(c.dir, 'small.tsv'),
      `${[cols.join('\t'), ...small.map((r) => cols.map((k) => quote(r[k])).join('\t'))].join('\n')}\n`,
    );
    writeFileSync(join(c.dir, 'small.json'), JSON.stringify(small, null, 2));
    parquetWriteFile({
      filename: join(c.dir, 'small.parquet'),
      columnData: cols.map((k) => ({
        name: k,
        data: small.map((r) => r[k]),
        type: k === 'id' ? 'INT32' : 'STRING',
      })) as never,
      rowGroupSize: 50,
    });
    for (const format of ['csv', 'tsv', 'json', 'parquet']) {
      const r = await purify({
        ...common,
        input: join(c.dir, `small.${format}`),
        anchor: [anchor],
        keep: { fraction: 0.75 },
        html: null,
      });
      expect(r.outputs.removed).toBe(join(c.dir, `small.removed.${format}`));
      const back = await openDataset(r.outputs.removed!);
      const got: Array<Record<string, unknown>> = [];
      for await (const { record } of back) got.push(record.value);
      const { rows } = readScores(r.outputs.scores);
      const dropped = rows.filter((x) => x.kept === '0');
      expect(got, format).toHaveLength(40);
      got.forEach((v, j) => {
        const want = small[Number(dropped[j]!.index)]!;
        expect(String(v.id), format).toBe(String(want.id));
        expect(v.instruction).toBe(want.instruction);
        expect(Number(v.sot_score)).toBe(Number(dropped[j]!.score));
        expect(Number(v.sot_rank)).toBe(Number(dropped[j]!.rank));
        expect(Number(v.sot_push)).toBe(Number(dropped[j]!.push));
        expect(v.sot_reason, format).toBe(dropped[j]!.reason);
      });
      expect(new Set(got.map((v) => typeof v.sot_reason)), format).toEqual(new Set(['string']));
    }
  }, 180_000);

  it('refuses a record that already has a field the removed file adds, and commits nothing', async () => {
    const dir = c.dir;
    for (const field of ['sot_push', 'sot_reason']) {
      const taken = writeJsonl(
        join(dir, `taken-${field}.jsonl`),
        c.records.slice(0, 120).map((r, i) => (i === 7 ? { ...r, [field]: 'x' } : r)),
      );
      await expect(purify({ ...common, input: taken, anchor: [anchor], html: null })).rejects.toMatchObject({
        code: 'ERR_INPUT',
        line: 8,
        field,
      });
      for (const f of ['purified.jsonl', 'purified.scores.csv', 'removed.jsonl', 'purified.report.json'])
        expect(existsSync(join(dir, `taken-${field}.${f}`)), f).toBe(false);
    }
  }, 120_000);

  it('the CLI writes the removed file by default and none with --no-removed', () => {
    const run = (args: string[]) =>
      spawnSync(
        process.execPath,
        [CLI, 'purify', input, '--harmful', 'advbench', '--anchor', anchor, '--no-html', '--json', ...args],
        { env: { ...process.env, SOT_DATA_DIR: DATA_DIR, SOT_OFFLINE: '1' }, encoding: 'utf8', timeout: 120_000 },
      );
    const a = run(['-o', join(c.dir, 'cli.jsonl'), '--reasons', 'all', '--reason-neighbours', '1']);
    expect(a.status, a.stderr).toBe(0);
    expect(JSON.parse(a.stdout).outputs.removed).toBe(join(c.dir, 'cli.removed.jsonl'));
    expect(readJsonl(join(c.dir, 'cli.removed.jsonl'))).toHaveLength(80);
    const b = run(['-o', join(c.dir, 'cli2.jsonl'), '--no-removed']);
    expect(b.status, b.stderr).toBe(0);
    expect(JSON.parse(b.stdout).outputs.removed).toBeNull();
    expect(existsSync(join(c.dir, 'cli2.removed.jsonl'))).toBe(false);
  }, 120_000);

  describe('the HTML report in headless Chromium', () => {
    let page: Page;
    beforeAll(async () => {
      page = await openPage(pathToFileURL(res.outputs.html!).href);
      await page.evaluate(waitFor('document.body.dataset.ready'));
    }, 60_000);
    afterAll(async () => page?.close());

    const cells = (col: number) =>
      page.evaluate<string[]>(
        `[...document.querySelectorAll('#records tbody tr.row')].map((t) => t.children[${col}].textContent)`,
      );
    const header = (key: string) =>
      page.evaluate<number>(
        `[...document.querySelectorAll('#records thead th')].findIndex((th) => th.dataset.col === ${JSON.stringify(key)})`,
      );

    it('is self-contained, draws its charts and holds a paged table of every record', async () => {
      const html = readFileSync(res.outputs.html!, 'utf8');
      expect(html).not.toMatch(/<(script|link|img)[^>]+(src|href)=/);
      expect(html).toContain('Copyright (c) 2022 Leon Sorokin'); // uPlot's licence notice
      expect(await page.evaluate('document.querySelectorAll(".uplot canvas").length')).toBe(3);
      expect(Number(await page.evaluate('document.body.dataset.rendered'))).toBeGreaterThan(400 + 50 + 920);
      expect(await page.evaluate('document.querySelectorAll("#records tbody tr.row").length')).toBe(50);
      expect(new Set(await cells(await header('kept')))).toEqual(new Set(['removed'])); // the lowest ranked first
      expect(await page.evaluate('document.getElementById("count").textContent')).toBe('400 of 400 records');
      expect(await page.evaluate('document.getElementById("verdict").textContent')).toContain(
        'Kept 320 of 400 records (80.0%); removed 80.',
      );
      // The run's own contamination estimate, stated in the summary.
      const report = JSON.parse(readFileSync(res.outputs.report, 'utf8')) as PurifyReport;
      expect(report.contamination).not.toBeNull();
      expect(await page.evaluate('document.getElementById("contamination").textContent')).toContain(
        report.contamination!.clean ? 'This data looks clean' : 'Estimated contamination',
      );
      // The learner's second solve, with the records it took as the data's own harm (5% of 400).
      expect(report.learner!.ownHarm).toHaveLength(20);
      expect(
        await page.evaluate(
          `[...document.querySelectorAll('th')].find((th) => th.textContent === 'Learner').nextSibling.textContent`,
        ),
      ).toMatch(
        /^\d+ steps, converged, then again with the 20 records it weighted lowest joined to the harmful reference$/,
      );
      // A record's detail lists its nearest harmful points, an own-harm point with its records and their text.
      const t = report.records!;
      const shown = await page.evaluate<number[]>(
        `[...document.querySelectorAll('#records tbody tr.row')].map((t) => Number(t.dataset.slot))`,
      );
      const s = shown.find((x) => t.nearest[x]?.[0]?.[0] === 'own-harm')!;
      const [, j, cost] = t.nearest[s]![0]!;
      const m = report.learner!.ownHarmMembers[j]!;
      const detail = await page.evaluate<string>(
        `(document.querySelector('#records tbody tr.row[data-slot="${s}"]').click(), document.querySelector('#records tr.detail').textContent)`,
      );
      expect(detail).toContain(`1. own-harm #${j}, cost ${cost.toFixed(4)}: records ${m.join(', ')}: `);
      expect(detail).toContain(`why: ${t.reason[s]}`);
      await page.evaluate(`document.querySelector('#records tbody tr.row[data-slot="${s}"]').click()`);
      // The filter shows the records taken as the data's own harm, and only them.
      const own = await page.evaluate<[string, string[]]>(
        `(() => { const f = document.getElementById('filter'); f.value = 'own'; f.dispatchEvent(new Event('change'));
          const got = [document.getElementById('count').textContent, [...document.querySelectorAll('#records tbody tr.row')].map((t) => t.dataset.slot)];
          f.value = 'all'; f.dispatchEvent(new Event('change')); return got; })()`,
      );
      expect(own[0]).toBe('20 of 400 records');
      expect(own[1].map((x) => t.index[Number(x)]!).sort((a, b) => a - b)).toEqual(report.learner!.ownHarm);
      expect(await page.evaluate(`document.querySelector('#filter option[value="own"]').textContent`)).toBe(
        "the data's own harm (20)",
      );
      // The breakdown by the records' source field.
      const groups = await page.evaluate<string[][]>(
        `[...document.querySelectorAll('#groups tr')].slice(1).map((t) => [...t.children].slice(0, 3).map((c) => c.textContent))`,
      );
      const harmful = c.records.filter((r, i) => r.source === 'harmful' && res.selection.kept[i] === 0).length;
      expect(groups).toContainEqual(['harmful', '40', String(harmful)]);
      expect(groups).toContainEqual(['benign', '360', String(80 - harmful)]);
    });

    it('draws each reference set as its own layer of the map, which its legend entry hides and shows', async () => {
      const legend = () =>
        page.evaluate<string[]>(
          `[...document.querySelectorAll('#projection .u-legend .u-series')].map((e) => e.textContent.trim() + (e.classList.contains('u-off') ? ' (off)' : ''))`,
        );
      expect(await legend()).toEqual([
        'harmful: advbench',
        'harmful: harmbench',
        `anchor: ${anchor}`,
        'kept',
        'removed',
      ]);
      const toggle = `[...document.querySelectorAll('#projection .u-legend .u-series')].find((e) => e.textContent.includes('harmbench')).querySelector('.u-label').click()`;
      await page.evaluate(toggle);
      expect(await legend()).toContain('harmful: harmbench (off)');
      await page.evaluate(toggle);
      expect(await legend()).toContain('harmful: harmbench');
      expect(res.report.projection.harmfulSet!.filter((j) => j === 1)).toHaveLength(
        res.report.projection.harmful.length - res.report.projection.harmfulSet!.filter((j) => j === 0).length,
      );
      expect(new Set(res.report.projection.harmfulSet)).toEqual(new Set([0, 1]));
    });

    it('sorts by a column on a click, both ways', async () => {
      const rank = await header('rank');
      await page.evaluate(`document.querySelector('th[data-col="rank"]').click()`);
      expect((await cells(rank)).map(Number)).toEqual(Array.from({ length: 50 }, (_, i) => i));
      await page.evaluate(`document.querySelector('th[data-col="rank"]').click()`);
      expect((await cells(rank)).map(Number)).toEqual(Array.from({ length: 50 }, (_, i) => 399 - i));
      expect(await page.evaluate(`document.querySelector('th[data-col="rank"]').getAttribute('aria-sort')`)).toBe(
        'descending',
      );
      const push = await header('push');
      await page.evaluate(`document.querySelector('th[data-col="push"]').click()`);
      const want = Array.from(res.report.records!.push!)
        .sort((a, b) => a - b)
        .slice(0, 50)
        .map((v) => v.toFixed(2));
      expect(await cells(push)).toEqual(want);
      // The next page continues the order.
      await page.evaluate(`document.getElementById('next').click()`);
      const page2 = (await cells(push)).map(Number);
      expect(page2[0]).toBeGreaterThanOrEqual(Number(want[49]));
    });

    it('searches the excerpts and filters the removed records', async () => {
      const word = 'hack';
      await page.evaluate(
        `(() => { const s = document.getElementById('search'); s.value = ${JSON.stringify(word)}; s.dispatchEvent(new Event('input')); })()`,
      );
      const t = res.report.records!;
      const matching = t.excerpt.filter((e, i) =>
        `${e}\u0000${t.reason[i]}\u0000${t.group![i]}\u0000line ${t.line[i]}`.toLowerCase().includes(word),
      ).length;
      expect(matching).toBeGreaterThan(0);
      expect(await page.evaluate('document.getElementById("count").textContent')).toBe(`${matching} of 400 records`);
      await page.evaluate(
        `(() => { const s = document.getElementById('search'); s.value = ''; s.dispatchEvent(new Event('input')); const f = document.getElementById('filter'); f.value = 'dropped'; f.dispatchEvent(new Event('change')); })()`,
      );
      expect(await page.evaluate('document.getElementById("count").textContent')).toBe('80 of 400 records');
      expect(await cells(await header('kept'))).toEqual(new Array(50).fill('removed'));
    });

    it('downloads the removed records from a valid link', async () => {
      const got = await page.evaluate<{ href: string; download: string; text: string }>(
        `(() => { document.getElementById('download-removed').click(); const a = document.getElementById('download-link'); return fetch(a.href).then((r) => r.text()).then((text) => ({ href: a.href, download: a.download, text })); })()`,
      );
      expect(got.href).toMatch(/^blob:/);
      expect(got.download).toBe('train.removed.audit.jsonl');
      const recs = got.text
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l) as { line: number; rank: number; reason: string; nearest: unknown[] });
      const removed = readJsonl(res.outputs.removed!);
      expect(recs).toHaveLength(removed.length);
      expect(recs.map((r) => r.line).sort((a, b) => a - b)).toEqual(
        removed.map((r) => c.records.findIndex((x) => x.id === r.id) + 1),
      );
      expect(recs.every((r) => r.reason.length > 0 && r.nearest.length === 3)).toBe(true);
    });
  });

  it('states the contamination estimate, and says when the data looks clean', async () => {
    const report = JSON.parse(readFileSync(res.outputs.report, 'utf8')) as PurifyReport;
    const verdicts: string[] = [];
    for (const contamination of [
      {
        estimate: 0.12,
        low: 0.09,
        high: 0.15,
        level: 0.95,
        method: 'test interval',
        clean: false,
        verdict: 'contaminated' as const,
      },
      {
        estimate: 0.002,
        low: 0,
        high: 0.01,
        level: 0.9,
        method: 'test interval',
        clean: true,
        verdict: 'clean' as const,
      },
      {
        estimate: 0.032,
        low: 0.014,
        high: 0.155,
        level: 0.9,
        method: 'test interval',
        clean: false,
        verdict: 'inconclusive' as const,
      },
    ]) {
      const path = join(c.dir, `contamination-${verdicts.length}.html`);
      writeFileSync(path, renderReportHtml({ ...report, contamination }));
      const p = await openPage(pathToFileURL(path).href);
      try {
        verdicts.push(
          await p.evaluate<string>(
            waitFor(`document.body.dataset.ready && document.getElementById('contamination').textContent`),
          ),
        );
      } finally {
        await p.close();
      }
    }
    expect(verdicts[0]).toBe(
      'Estimated contamination: 12.0% of the records (9.0% to 15.0% at 95% confidence; test interval).',
    );
    expect(verdicts[0]).not.toContain('clean');
    expect(verdicts[1]).toBe(
      'This data looks clean: the estimated contamination is 0.20% (0.00% to 1.0% at 90% confidence; test interval).',
    );
    expect(verdicts[2]).toBe(
      'Contamination unclear: the estimate is 3.2% (1.4% to 15.5% at 90% confidence; test interval), too wide an interval to call the data clean or contaminated.',
    );
  }, 60_000);
});

describe('sot report: a hand-edited record table', () => {
  it('is refused with the field named when its columns disagree in length', async () => {
    const { checkReport } = await import('../src/report/validate.js');
    const c = contaminated(40, 5);
    const input = writeJsonl(join(c.dir, 'train.jsonl'), c.records);
    const res = await purify({ ...common, harmful: ['advbench'], input, html: null });
    const report = JSON.parse(readFileSync(res.outputs.report, 'utf8')) as PurifyReport;
    expect(checkReport(report, 'r.json').records!.index).toHaveLength(45);
    report.records!.reason.pop();
    expect(() => checkReport(report, 'r.json')).toThrow(/report\.records\.reason has 44 entries, expected 45/);
    report.records!.reason.push('x');
    (report.records!.nearest as unknown[])[0] = [['advbench', 'one', 0.5]];
    expect(() => checkReport(report, 'r.json')).toThrow(
      /report\.records\.nearest\[0\]\[0\] is an array, expected \[set, index, cost\]/,
    );
  }, 60_000);
});
