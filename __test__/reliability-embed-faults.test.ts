// Reliability, part 5: embedding-server faults end to end, through the real
// `sot purify --embedder openai` against a loopback server (__test__/embed-server.ts).
// The client's unit behaviour (retries, 429, timeouts, strict parsing) is in
// embed-openai.test.ts; here: a server that dies in the middle of a run, values
// that overflow float32, zero vectors, dropped connections and hangs. Never a
// silently wrong result: a clear error with its exit code and no output, or
// (after the server recovers) the same bytes as an uninterrupted run, reusing
// what the failed run had embedded.
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { HashingEmbedder } from '../src/embed/hashing.js';
import { CLI, contaminated, DATA_DIR, withoutRunFigures, writeJsonl } from './datasets.js';
import { startEmbedServer, type EmbedServer, type Fault } from './embed-server.js';

const root = mkdtempSync(join(tmpdir(), 'sot-embfault-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));
let server: EmbedServer | undefined;
afterEach(async () => {
  await server?.close();
  server = undefined;
});

function sot(
  args: string[],
  cwd: string,
): Promise<{ code: number | null; stdout: string; stderr: string; seconds: number }> {
  const t0 = performance.now();
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [CLI, ...args], {
      cwd,
      env: { ...process.env, SOT_DATA_DIR: DATA_DIR, SOT_OFFLINE: '1', OPENAI_API_KEY: 'sk-loopback' },
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('close', (code) => resolve({ code, stdout, stderr, seconds: (performance.now() - t0) / 1000 }));
  });
}

const c = contaminated(120, 12);
const input = writeJsonl(join(root, 'train.jsonl'), c.records);
const anchor = writeJsonl(join(root, 'anchor.jsonl'), c.anchor);
const DIM = 64;

async function hashServer(): Promise<EmbedServer> {
  const model = new HashingEmbedder({ dim: DIM });
  const s = await startEmbedServer({ dim: DIM });
  s.embedBatch = async (texts) => {
    const v = await model.embed(texts);
    return texts.map((_, i) => Array.from(v.subarray(i * DIM, (i + 1) * DIM)));
  };
  return s;
}

let runs = 0;
/** A fresh run folder; outputs by relative path so reports of different folders agree. */
function folder(): string {
  const d = join(root, `run-${++runs}`);
  mkdirSync(d);
  return d;
}
const args = (s: EmbedServer, extra: string[] = []) => [
  'purify',
  input,
  '--harmful',
  'advbench',
  '--anchor',
  anchor,
  '-o',
  'out.jsonl',
  '--cache-dir',
  'cache',
  '--json',
  '--embedder',
  'openai',
  '--embed-url',
  s.url,
  '--model',
  'loopback-hash',
  '--embed-batch',
  '16',
  '--embed-concurrency',
  '1',
  '--embed-retries',
  '2',
  '--embed-timeout',
  '2000',
  ...extra,
];
const outputs = (d: string) =>
  readdirSync(d)
    .filter((f) => f !== 'cache')
    .sort();
const normalised = (p: string) => withoutRunFigures(readFileSync(p, 'utf8'));
const ok: Fault = { transform: (d) => d };

describe('embedding-server faults through `sot purify --embedder openai`', () => {
  it('a server that dies mid-run: exit 5, nothing written; after it recovers a rerun embeds only what is missing and writes the same bytes', async () => {
    server = await hashServer();
    const ref = folder();
    const r0 = await sot(args(server), ref);
    expect(r0.stderr).toBe('');
    expect(r0.code).toBe(0);
    // Requests after the dimension probe: the dataset (132 texts), then advbench
    // (520, in embedding-cache batches of 256), then the anchor (50); 16 texts a request.
    const sizes = server.requests.slice(1).map((q) => q.input.length);
    const textsTotal = sizes.reduce((a, b) => a + b, 0);
    expect(textsTotal).toBe(132 + 520 + 50);
    const sum = (a: number, b: number) => sizes.slice(a, b).reduce((x, y) => x + y, 0);
    expect([sum(0, 9), sum(9, 25)]).toEqual([132, 256]);

    // Probe, the dataset, one full cache batch of advbench and 3 requests of the next; then 503 for good.
    server.requests = [];
    server.faults = [
      ...Array.from({ length: 1 + 9 + 16 + 3 }, () => ok),
      ...Array.from({ length: 50 }, () => ({ status: 503 })),
    ];
    const dir = folder();
    const r1 = await sot(args(server), dir);
    expect(r1.code).toBe(5);
    const err = JSON.parse(r1.stdout).error;
    expect(err).toMatchObject({ code: 'ERR_FETCH' });
    expect(err.message).toMatch(/HTTP 503 .*gave up after 3 tries/);
    expect(outputs(dir)).toEqual([]); // no output, not even a temp file

    // The server recovers: the rerun asks only for what the failed run did not keep
    // (the 3 requests inside the failed cache batch are lost with it).
    server.faults = [];
    server.requests = [];
    const r2 = await sot(args(server), dir);
    expect(r2.stderr).toBe('');
    expect(r2.code).toBe(0);
    const resent = server.requests.slice(1).reduce((s, q) => s + q.input.length, 0);
    expect(resent).toBe(textsTotal - 132 - 256);
    for (const f of ['out.jsonl', 'out.scores.csv', 'out.report.json', 'out.report.html'])
      expect(normalised(join(dir, f)), f).toBe(normalised(join(ref, f)));
  }, 120_000);

  it('values that overflow float32 are refused (exit 3), a zero vector is ERR_ZERO_NORM (exit 3), null/NaN is a malformed answer (exit 5)', async () => {
    server = await hashServer();
    const cases: Array<[Fault, number, string, RegExp]> = [
      [
        {
          transform: (d) =>
            d.map((x, i) =>
              i === 3 ? { ...x, embedding: (x.embedding as number[]).map((v, j) => (j === 5 ? 1e39 : v)) } : x,
            ),
        },
        3,
        'ERR_NON_FINITE',
        /\[5\] is inf/,
      ],
      [
        {
          transform: (d) =>
            d.map((x, i) => (i === 2 ? { ...x, embedding: (x.embedding as number[]).map(() => 0) } : x)),
        },
        3,
        'ERR_ZERO_NORM',
        /is the zero vector/,
      ],
      [
        {
          transform: (d) =>
            d.map((x, i) =>
              i === 1 ? { ...x, embedding: (x.embedding as number[]).map((v, j) => (j === 0 ? null : v)) } : x,
            ),
        },
        5,
        'ERR_FETCH',
        /malformed embeddings response: data\[1\]\.embedding\[0\] is null, not a finite number/,
      ],
    ];
    for (const [fault, code, errCode, pattern] of cases) {
      server.faults = [ok, fault];
      const dir = folder();
      const r = await sot(args(server), dir);
      expect(r.code, r.stdout).toBe(code);
      const err = JSON.parse(r.stdout).error;
      expect(err.code).toBe(errCode);
      expect(err.message).toMatch(pattern);
      expect(outputs(dir)).toEqual([]);
    }
  }, 120_000);

  it('dropped connections and hangs: retried, then exit 5 within the timeout budget', async () => {
    server = await hashServer();
    server.faults = [ok, { drop: true }, { drop: true }, { drop: true }];
    let dir = folder();
    let r = await sot(args(server), dir);
    expect(r.code).toBe(5);
    expect(JSON.parse(r.stdout).error.message).toMatch(/network error.*gave up after 3 tries/);
    expect(outputs(dir)).toEqual([]);

    server.faults = [ok, { hang: true }, { hang: true }, { hang: true }];
    dir = folder();
    r = await sot(args(server, ['--embed-timeout', '300']), dir);
    expect(r.code).toBe(5);
    expect(JSON.parse(r.stdout).error.message).toMatch(/no answer within 300 ms.*gave up after 3 tries/);
    expect(r.seconds).toBeLessThan(20);
    expect(outputs(dir)).toEqual([]);

    // A burst shorter than the retries is absorbed: same result as a clean run.
    server.faults = [ok, { drop: true }, { status: 502 }, ok, { hang: true }];
    dir = folder();
    r = await sot(args(server, ['--embed-timeout', '300']), dir);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
  }, 120_000);
});
