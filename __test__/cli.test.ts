// End-to-end runs of the `sot` CLI as users run it (a child process on real
// files built from ../shared/data, named reference sets from the offline
// mirror), plus its failure modes: exit codes, messages, nothing partial left.
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parquetWriteFile } from 'hyparquet-writer';
import { describe, expect, it } from 'vitest';
import { openDataset } from '../src/io/index.js';
import { CLI, contaminated, DATA_DIR, readJsonl, writeJsonl, type Contaminated } from './datasets.js';

function env(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  return {
    ...process.env,
    SOT_DATA_DIR: DATA_DIR,
    SOT_CACHE_DIR: mkdtempSync(join(tmpdir(), 'sot-cache-')),
    SOT_OFFLINE: '1',
    ...extra,
  };
}

function sot(args: string[], e: NodeJS.ProcessEnv = env()) {
  const r = spawnSync(process.execPath, [CLI, ...args], { env: e, encoding: 'utf8', timeout: 120_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

const sha = (p: string) => createHash('sha256').update(readFileSync(p)).digest('hex');

function setup(): Contaminated & { input: string; anchor: string } {
  const c = contaminated();
  return {
    ...c,
    input: writeJsonl(join(c.dir, 'train.jsonl'), c.records),
    anchor: writeJsonl(join(c.dir, 'anchor.jsonl'), c.anchor),
  } as never;
}

describe('sot purify', () => {
  it('purifies a contaminated JSONL dataset: keeps K records with weights, drops most harmful ones, writes scores and reports, leaves the input untouched', () => {
    const c = setup();
    const before = sha(c.input);
    const r = sot(['purify', c.input, '--harmful', 'advbench,harmbench', '--anchor', c.anchor, '--json']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const out = JSON.parse(r.stdout);
    expect(out).toMatchObject({ ok: true, n: 400, k: 320 });
    expect(sha(c.input)).toBe(before);

    const kept = readJsonl<Record<string, unknown>>(out.outputs.dataset);
    expect(kept).toHaveLength(320);
    // Records are unchanged apart from the weight, in input order.
    const byId = new Map(c.records.map((x) => [x.id, x]));
    let last = -1;
    for (const k of kept) {
      const { sot_weight, ...rest } = k;
      expect(typeof sot_weight).toBe('number');
      expect(rest).toEqual(byId.get(k.id as number));
      expect(k.id as number).toBeGreaterThan(last);
      last = k.id as number;
    }
    const meanWeight = kept.reduce((s, k) => s + (k.sot_weight as number), 0) / kept.length;
    expect(meanWeight).toBeCloseTo(1, 6);
    const harmfulKept = kept.filter((k) => k.source === 'harmful').length / 40;
    // Random selection keeps 80% of them; SOT with the built-in embedder must do far better.
    expect(harmfulKept).toBeLessThan(0.4);

    const scores = readFileSync(out.outputs.scores, 'utf8').trim().split('\n');
    expect(scores[0]).toBe(
      'index,line,score,rank,kept,train_weight,log_weight,pull,push,nearest_set,nearest_index,nearest_cost,reason',
    );
    expect(scores).toHaveLength(401);
    const rows = scores.slice(1).map((l) => l.split(',')); // the quoted reason comes last
    expect(rows.filter((x) => x[4] === '1')).toHaveLength(320);
    expect(rows.map((x) => Number(x[1]))).toEqual(c.records.map((_, i) => i + 1));
    expect(new Set(rows.map((x) => x[3])).size).toBe(400);
    expect(readJsonl(out.outputs.removed)).toHaveLength(80);

    const report = JSON.parse(readFileSync(out.outputs.report, 'utf8'));
    expect(report).toMatchObject({
      tool: 'sot-purify',
      input: { records: 400, format: 'jsonl', recordFormat: 'alpaca' },
      selection: { n: 400, k: 320 },
    });
    expect(report.references.harmful.map((x: { source: string }) => x.source)).toEqual(['advbench', 'harmbench']);
    expect(report.references.harmful.map((x: { licence: string }) => x.licence)).toEqual(['Apache-2.0', 'MIT']);
    expect(report.projection.downstream).toHaveLength(400);
    expect(report.lowest.length).toBeGreaterThan(0);
    // The lowest-scored samples are what SOT pushed out: mostly the injected harmful ones.
    const lowestHarmful = report.lowest.filter(
      (x: { index: number }) => c.records[x.index]!.source === 'harmful',
    ).length;
    expect(lowestHarmful / report.lowest.length).toBeGreaterThan(0.3); // 3x their share of the data
    expect(existsSync(out.outputs.html)).toBe(true);
  });

  it('writes the purified dataset in the input format (CSV, JSON array, Parquet, chat messages)', async () => {
    const c = setup();
    const cols = ['id', 'instruction', 'input', 'output', 'source'] as const;
    const quote = (v: unknown) => `"${String(v).replace(/"/g, '""')}"`;
    writeFileSync(
      join(c.dir, 'train.csv'),
      `${[cols.join(','), ...c.records.map((r) => cols.map((k) => quote(r[k])).join(','))].join('\r\n')}\r\n`,
    );
    writeFileSync(join(c.dir, 'train.json'), JSON.stringify(c.records, null, 2));
    parquetWriteFile({
      filename: join(c.dir, 'train.parquet'),
      columnData: cols.map((k) => ({
        name: k,
        data: c.records.map((r) => r[k]),
        type: k === 'id' ? 'INT32' : 'STRING',
      })) as never,
      rowGroupSize: 150,
    });
    for (const format of ['csv', 'json', 'parquet']) {
      const path = join(c.dir, `train.${format}`);
      const r = sot(['purify', path, '--harmful', 'advbench', '--anchor', c.anchor, '--keep', '0.5', '--json']);
      expect(r.code, r.stdout + r.stderr).toBe(0);
      const out = JSON.parse(r.stdout);
      expect(out.k).toBe(200);
      expect(out.outputs.dataset).toBe(join(c.dir, `train.purified.${format}`));
      const back = await openDataset(out.outputs.dataset);
      expect(back.format).toBe(format);
      const ids: number[] = [];
      for await (const { record } of back) {
        expect(Number(record.value.sot_weight)).toBeGreaterThan(0);
        ids.push(Number(record.value.id));
      }
      expect(ids).toHaveLength(200);
      expect(ids).toEqual([...ids].sort((a, b) => a - b));
    }
    const chats = c.records.map((x) => ({
      id: x.id,
      messages: [
        { role: 'user', content: x.instruction },
        { role: 'assistant', content: x.output },
      ],
    }));
    const chatPath = writeJsonl(join(c.dir, 'chats.jsonl'), chats);
    const r = sot(['purify', chatPath, '--harmful', 'advbench', '--anchor', c.anchor, '--json']);
    expect(r.code, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout);
    const kept = readJsonl<{ messages: unknown[]; sot_weight: number }>(out.outputs.dataset);
    expect(kept).toHaveLength(320);
    expect(kept[0]!.messages).toHaveLength(2);
    expect(JSON.parse(readFileSync(out.outputs.report, 'utf8')).input.recordFormat).toBe('messages');
  });

  it('renders the HTML report with its plots in headless Chromium', () => {
    const c = setup();
    const r = sot(['purify', c.input, '--harmful', 'advbench', '--anchor', c.anchor, '--json']);
    expect(r.code, r.stderr).toBe(0);
    const html = JSON.parse(r.stdout).outputs.html as string;
    const page = readFileSync(html, 'utf8');
    expect(page).not.toMatch(/<(script|link|img)[^>]+(src|href)=/); // self-contained
    const chromium = ['chromium', 'chromium-browser', 'google-chrome'].find(
      (b) => spawnSync(b, ['--version']).status === 0,
    );
    expect(chromium, "Chromium is needed for this test (.ci/run installs Debian's chromium)").toBeDefined();
    const dom = spawnSync(chromium!, ['--headless', '--no-sandbox', '--disable-gpu', '--dump-dom', `file://${html}`], {
      encoding: 'utf8',
      timeout: 60_000,
    });
    expect(dom.status).toBe(0);
    const rendered = Number(/<body[^>]*data-rendered="(\d+)"/.exec(dom.stdout)?.[1]);
    // 400 downstream + 50 anchor + 520 harmful points on the map, 400 on the pull/push chart, plus the histogram bars.
    expect(rendered).toBeGreaterThan(1370);
    expect((dom.stdout.match(/<canvas/g) ?? []).length).toBe(3); // histogram, pull/push, map
    expect((dom.stdout.match(/<tr class="row /g) ?? []).length).toBe(50); // the first page of the record table
  });

  it('fails on a malformed line with file:line, exit code 3 and no output', () => {
    const c = setup();
    const lines = readFileSync(c.input, 'utf8').split('\n');
    lines[41] = lines[41]!.slice(0, 30); // truncated record on line 42
    const bad = join(c.dir, 'bad.jsonl');
    writeFileSync(bad, lines.join('\n'));
    const r = sot(['purify', bad, '--harmful', 'advbench', '--anchor', c.anchor]);
    expect(r.code).toBe(3);
    expect(r.stderr).toContain(`${bad}:42`);
    expect(readdirSync(c.dir).sort()).toEqual(['anchor.jsonl', 'bad.jsonl', 'train.jsonl']);
    const j = sot(['purify', bad, '--harmful', 'advbench', '--json']);
    expect(j.code).toBe(3);
    expect(JSON.parse(j.stdout).error).toMatchObject({ code: 'ERR_INPUT', file: bad, line: 42 });
  });

  it('skips and counts invalid records with --skip-invalid (alpaca-libre v2 has 14 malformed lines)', () => {
    const input = join(DATA_DIR, 'alpaca-libre/data/output/work/alpaca_libre_tasks_v2.jsonl');
    const dir = mkdtempSync(join(tmpdir(), 'sot-skip-'));
    const anchor = writeJsonl(join(dir, 'anchor.jsonl'), contaminated(0, 0).anchor);
    const strict = sot(['purify', input, '--harmful', 'advbench', '-o', join(dir, 'out.jsonl')]);
    expect(strict.code).toBe(3);
    expect(strict.stderr).toMatch(/alpaca_libre_tasks_v2\.jsonl:\d+/);
    const r = sot([
      'purify',
      input,
      '--harmful',
      'advbench',
      '--anchor',
      anchor,
      '-o',
      join(dir, 'out.jsonl'),
      '--skip-invalid',
      '--json',
      '--keep',
      '0.9',
    ]);
    expect(r.code, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout);
    expect(out.skipped).toBe(14);
    expect(readJsonl(join(dir, 'out.jsonl'))).toHaveLength(out.k);
  });

  it('refuses to overwrite its input and leaves it intact (exit 4)', () => {
    const c = setup();
    const before = sha(c.input);
    const r = sot(['purify', c.input, '--harmful', 'advbench', '-o', c.input]);
    expect(r.code).toBe(4);
    expect(r.stderr).toMatch(/input/);
    expect(sha(c.input)).toBe(before);
  });

  it('names unknown reference sets, missing files and offline failures with their exit codes', () => {
    const c = setup();
    const unknown = sot(['purify', c.input, '--harmful', 'no-such-set']);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain('no-such-set');
    expect(unknown.stderr).toContain('advbench');
    const missing = sot(['purify', join(c.dir, 'nope.jsonl'), '--harmful', 'advbench']);
    expect(missing.code).toBe(4);
    expect(missing.stderr).toContain('nope.jsonl');
    const offline = sot(
      ['purify', c.input, '--harmful', 'advbench'],
      env({ SOT_DATA_DIR: mkdtempSync(join(tmpdir(), 'empty-')) }),
    );
    expect(offline.code).toBe(5);
    expect(offline.stderr).toMatch(/offline/i);
    const usage = sot(['purify', c.input, '--harmful', 'advbench', '--keep', '2']);
    expect(usage.code).toBe(2);
    expect(sot(['purify', c.input]).code).toBe(2);
    expect(readdirSync(c.dir).sort()).toEqual(['anchor.jsonl', 'train.jsonl']);
  });

  it('stops on SIGINT with exit code 130 and no output file', async () => {
    // Long enough that the signal lands mid-run on any machine: 40k distinct
    // records to embed with an empty cache (a 1k-record job can finish inside
    // the wait, and a signal after the handler is released kills the process).
    const c = contaminated(3000, 300);
    const records = Array.from({ length: 40_000 }, (_, i) => {
      const r = c.records[i % c.records.length]!;
      return { ...r, id: i, instruction: `${r.instruction} (${i})` };
    });
    const input = writeJsonl(join(c.dir, 'big.jsonl'), records);
    const child = spawn(process.execPath, [CLI, 'purify', input, '--harmful', 'advbench,harmbench'], { env: env() });
    let stderr = '';
    let stdout = '';
    child.stderr.on('data', (d) => (stderr += d));
    child.stdout.on('data', (d) => (stdout += d));
    const exited = new Promise<number | null>((r) => child.on('exit', (c) => r(c)));
    await new Promise((r) => setTimeout(r, 1500));
    child.kill('SIGINT');
    const code = await exited;
    expect(stdout).not.toContain('kept');
    expect(code, stderr).toBe(130);
    expect(stderr).toMatch(/interrupted/);
    expect(readdirSync(c.dir)).toEqual(['big.jsonl']);
  });
});

describe('sot embed, report, sets, help', () => {
  it('a reader that closes the pipe at once ends sot quietly: exit 0, no stack trace', async () => {
    const c = setup();
    const closed = (args: string[]) =>
      new Promise<{ code: number | null; stderr: string }>((resolve) => {
        const child = spawn(process.execPath, [CLI, ...args], { env: env() });
        child.stdout.destroy(); // the read end closes before sot writes
        let stderr = '';
        child.stderr.on('data', (d) => (stderr += d));
        child.on('close', (code) => resolve({ code, stderr }));
      });
    for (const args of [['sets'], ['--help'], ['embed', c.input, '-o', '-', '--dim', '64', '-q']]) {
      const r = await closed(args);
      expect(r.stderr, args.join(' ')).not.toMatch(/EPIPE|Error|at /);
      expect(r.code, args.join(' ')).toBe(0);
    }
  });

  it('embeds a dataset to .npy (float32, rows x dim) and fills the cache', () => {
    const c = setup();
    const e = env();
    const npy = join(c.dir, 'train.npy');
    const r = sot(['embed', c.input, '-o', npy, '--dim', '128', '--json'], e);
    expect(r.code, r.stderr).toBe(0);
    const buf = readFileSync(npy);
    expect(buf.subarray(0, 6).toString('latin1')).toBe('\x93NUMPY');
    const hlen = buf.readUInt16LE(8);
    expect(buf.subarray(10, 10 + hlen).toString('latin1')).toContain("'shape': (400, 128)");
    expect((10 + hlen) % 64).toBe(0);
    expect(buf.length).toBe(10 + hlen + 400 * 128 * 4);
    const v = new Float32Array(buf.buffer.slice(buf.byteOffset + 10 + hlen));
    let norm = 0;
    for (let k = 0; k < 128; k++) norm += v[k]! * v[k]!;
    expect(norm).toBeCloseTo(1, 5);
    expect(readdirSync(join(e.SOT_CACHE_DIR!, 'embeddings'), { recursive: true }).length).toBeGreaterThan(0);
    // Same vectors from the cache on a second run.
    const again = join(c.dir, 'again.npy');
    expect(sot(['embed', c.input, '-o', again, '--dim', '128'], e).code).toBe(0);
    expect(sha(again)).toBe(sha(npy));
  });

  it('sizes the built-in vectors by --memory-budget as purify does, and refuses a budget they do not fit', () => {
    const dir = mkdtempSync(join(tmpdir(), 'sot-embed-budget-'));
    const rows = Array.from({ length: 5000 }, (_, i) => ({
      instruction: `write note ${i} on topic ${i % 97}`,
      input: '',
      output: `note ${i}`,
    }));
    const input = writeJsonl(join(dir, 'big.jsonl'), rows);
    const e = env();
    const dim = (flags: string[]) => {
      const r = sot(['embed', input, '-o', join(dir, 'v.npy'), '--json', ...flags], e);
      expect(r.code, r.stderr).toBe(0);
      return JSON.parse(r.stdout).dim as number;
    };
    // 5,000 records at 2048-d take 41 MB: within 1/16 of the default budget, over 1/16 of 512 MB.
    expect(dim([])).toBe(2048);
    expect(dim(['--memory-budget', '512MB'])).toBe(1024);
    const small = sot(['embed', input, '-o', join(dir, 'w.npy'), '--memory-budget', '64MB', '--json'], e);
    expect(small.code, small.stderr).toBe(2);
    const err = JSON.parse(small.stdout).error;
    expect(err.code).toBe('ERR_OPTION');
    expect(err.message).toMatch(/memory budget of 61 MiB is too small for .*big\.jsonl: its 5000 records/);
    expect(existsSync(join(dir, 'w.npy'))).toBe(false);
  });

  it('re-renders the HTML page from a JSON report', () => {
    const c = setup();
    const r = sot(['purify', c.input, '--harmful', 'advbench', '--no-html', '--json']);
    expect(r.code, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout);
    expect(out.outputs.html).toBeNull();
    const html = join(c.dir, 'r.html');
    expect(sot(['report', out.outputs.report, '-o', html]).code).toBe(0);
    expect(readFileSync(html, 'utf8')).toContain('id="sot-report"');
    const notReport = sot(['report', c.input, '-o', html]);
    expect(notReport.code).toBe(3);
  });

  it('lists the named sets with their licences, and documents examples and exit codes in --help', () => {
    const sets = sot(['sets', '--json']);
    expect(sets.code).toBe(0);
    const list = JSON.parse(sets.stdout) as { name: string; licence: { spdx: string; url: string } }[];
    expect(list.map((s) => s.name)).toEqual(expect.arrayContaining(['advbench', 'harmbench']));
    for (const s of list) expect(s.licence.url).toMatch(/^https:\/\//);
    expect(sot(['sets']).stdout).toMatch(/harmbench\s+harmful\s+MIT/);
    const help = sot(['--help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toContain('Examples:');
    expect(help.stdout).toContain('130');
    expect(sot(['purify', '--help']).stdout).toContain('--skip-invalid');
    expect(sot(['purify', 'x.jsonl', '--harmful', 'advbench', '--bogus']).code).toBe(2);
  });
});
