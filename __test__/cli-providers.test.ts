// `sot purify` / `sot embed` end to end with non-built-in embedders: an
// OpenAI-compatible server on 127.0.0.1 (with faults) and precomputed .npy
// vectors. The CLI runs as a child process (async: the server lives here).
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { HashingEmbedder } from '../src/embed/hashing.js';
import { openDataset, renderText } from '../src/io/index.js';
import { writeNpy } from '../src/npy.js';
import { readNpy } from '../src/npy-read.js';
import { CLI, contaminated, DATA_DIR, harmfulPairs, readJsonl, shuffle, writeJsonl } from './datasets.js';
import { startEmbedServer, type EmbedServer } from './embed-server.js';

function env(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const e: NodeJS.ProcessEnv = {
    ...process.env,
    SOT_DATA_DIR: DATA_DIR,
    SOT_CACHE_DIR: mkdtempSync(join(tmpdir(), 'sot-cache-')),
    SOT_OFFLINE: '1',
  };
  for (const k of [
    'OPENAI_API_KEY',
    'OPENAI_BASE_URL',
    'SOT_EMBEDDINGS_URL',
    'SOT_EMBEDDINGS_KEY',
    'SOT_EMBEDDINGS_MODEL',
  ])
    delete e[k];
  return { ...e, ...extra };
}

function sot(args: string[], e: NodeJS.ProcessEnv): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], { env: e });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), 120_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

async function textsOf(path: string): Promise<string[]> {
  const out: string[] = [];
  for await (const { text } of await openDataset(path)) out.push(renderText(text));
  return out;
}

let server: EmbedServer | undefined;
afterEach(async () => {
  await server?.close();
  server = undefined;
});

describe('sot purify --embedder openai (loopback server)', () => {
  it('purifies through the server (batched, concurrent), survives a 500 burst and a 429, and reuses the embedding cache on a rerun', async () => {
    const c = contaminated(240, 30);
    const input = writeJsonl(join(c.dir, 'train.jsonl'), c.records);
    const anchor = writeJsonl(join(c.dir, 'anchor.jsonl'), c.anchor);
    // The "model": the built-in embedder (unfitted), served over HTTP.
    const model = new HashingEmbedder({ dim: 256 });
    server = await startEmbedServer({ dim: 256 });
    server.embedBatch = async (texts) => {
      const v = await model.embed(texts);
      return texts.map((_, i) => Array.from(v.subarray(i * 256, (i + 1) * 256)));
    };
    server.faults.push({ status: 500 }, { status: 500 }, { status: 429, headers: { 'retry-after-ms': '50' } });
    const e = env({ OPENAI_API_KEY: 'sk-loopback' });
    const args = [
      'purify',
      input,
      '--harmful',
      'advbench,harmbench',
      '--anchor',
      anchor,
      '--embedder',
      'openai',
      '--embed-url',
      server.url,
      '--model',
      'loopback-hash',
      '--embed-batch',
      '32',
      '--embed-concurrency',
      '3',
      '--json',
    ];
    const r = await sot(args, e);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const out = JSON.parse(r.stdout);
    expect(out).toMatchObject({ ok: true, n: 270, k: 216 });
    const kept = readJsonl<{ source: string }>(out.outputs.dataset);
    expect(kept.filter((k) => k.source === 'harmful').length / 30).toBeLessThan(0.5);
    expect(
      server.requests
        .map((q) => [q.input.length <= 32, q.encoding_format, q.headers.authorization])
        .filter((x) => !(x[0] === true && x[1] === 'float' && x[2] === 'Bearer sk-loopback')),
    ).toEqual([]);
    expect(server.maxInFlight).toBeGreaterThan(1);
    expect(server.maxInFlight).toBeLessThanOrEqual(3);
    const report = JSON.parse(readFileSync(out.outputs.report, 'utf8'));
    expect(JSON.stringify(report)).toContain('openai-v1:');

    // Rerun: every text is in the cache; only the dimension probe reaches the server.
    const before = server.requests.length;
    const again = await sot(args, e);
    expect(again.code).toBe(0);
    expect(server.requests.length - before).toBe(1);
    expect(JSON.parse(again.stdout).outputs).toEqual(out.outputs);
  });

  it('exits 3 when the server returns vectors of the wrong dimension, 5 when it keeps failing, 2 without a model', async () => {
    const c = contaminated(20, 4);
    const input = writeJsonl(join(c.dir, 'train.jsonl'), c.records);
    server = await startEmbedServer({ dim: 8 });
    const base = [
      'purify',
      input,
      '--harmful',
      'advbench',
      '--embedder',
      'openai',
      '--embed-url',
      server.url,
      '--model',
      'm',
      '--no-cache',
      '--embed-retries',
      '1',
      '--json',
    ];
    // The probe says 8; a later answer has 7 numbers.
    server.faults.push(
      { transform: (d) => d },
      { transform: (d) => d.map((x) => ({ ...x, embedding: (x.embedding as number[]).slice(1) })) },
    );
    let r = await sot(base, env());
    expect(r.code).toBe(3);
    expect(JSON.parse(r.stdout).error).toMatchObject({ code: 'ERR_SHAPE' });
    expect(JSON.parse(r.stdout).error.message).toMatch(/7-dimensional embedding .* expected 8/);

    server.faults.push(...Array.from({ length: 4 }, () => ({ status: 503 })));
    r = await sot(base, env());
    expect(r.code).toBe(5);
    expect(JSON.parse(r.stdout).error.message).toMatch(/HTTP 503.*gave up after 2 tries/);

    r = await sot(['purify', input, '--harmful', 'advbench', '--embedder', 'openai', '--embed-url', server.url], env());
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/needs a model name/);

    r = await sot(
      [
        'purify',
        input,
        '--harmful',
        'advbench',
        '--vectors-field',
        'embedding',
        '--embedder',
        'openai',
        '--model',
        'm',
      ],
      env(),
    );
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--vectors-field applies to --embedder precomputed/);
  });

  it("sot embed writes the server's vectors as a .npy", async () => {
    const c = contaminated(30, 0);
    const input = writeJsonl(join(c.dir, 'train.jsonl'), c.records);
    server = await startEmbedServer({ dim: 8 });
    const out = join(c.dir, 'v.npy');
    const r = await sot(
      ['embed', input, '-o', out, '--embedder', 'openai', '--embed-url', server.url, '--model', 'm', '--json'],
      env(),
    );
    expect(r.code).toBe(0);
    const m = await readNpy(out);
    expect([m.rows, m.cols]).toEqual([30, 8]);
    const texts = await textsOf(input);
    const want = server.vector(texts[3]!, 8);
    for (let k = 0; k < 8; k++) expect(m.data[3 * 8 + k]).toBeCloseTo(want[k]!, 6);
  });
});

describe('sot purify --vectors-npy', () => {
  it('gives the same scores (at equal learner options) as the built-in embedder whose vectors the .npy files hold; refuses a named set (exit 2) and a short .npy (exit 3)', async () => {
    const c = contaminated(200, 24);
    const input = writeJsonl(join(c.dir, 'train.jsonl'), c.records);
    const harmful = writeJsonl(join(c.dir, 'harmful.jsonl'), shuffle(harmfulPairs(), 13).slice(24, 64));
    const anchor = writeJsonl(join(c.dir, 'anchor.jsonl'), c.anchor);
    const e = new HashingEmbedder(); // the CLI's default: its length follows the records fitted on
    const dataTexts = await textsOf(input);
    await e.fit(
      (async function* () {
        yield dataTexts;
      })(),
    );
    const save = async (path: string, texts: string[]) => writeNpy(path, await e.embed(texts), texts.length, e.dim);
    const npy = join(c.dir, 'train.vectors.npy');
    await save(npy, dataTexts);
    await save(join(c.dir, 'harmful.npy'), await textsOf(harmful));
    await save(join(c.dir, 'anchor.npy'), await textsOf(anchor));

    const pre = await sot(
      [
        'purify',
        input,
        '--harmful',
        harmful,
        '--anchor',
        anchor,
        '--vectors-npy',
        npy,
        '-o',
        join(c.dir, 'pre.jsonl'),
        '--eps',
        '0.05',
        '--lambda',
        '1.5',
        '--json',
      ],
      env(),
    );
    expect(pre.stderr).toBe('');
    expect(pre.code).toBe(0);
    const ref = await sot(
      [
        'purify',
        input,
        '--harmful',
        harmful,
        '--anchor',
        anchor,
        '-o',
        join(c.dir, 'ref.jsonl'),
        '--eps',
        '0.05',
        '--lambda',
        '1.5',
        '--json',
      ],
      env(),
    );
    expect(ref.code).toBe(0);
    const scores = (r: { stdout: string }) =>
      readFileSync(JSON.parse(r.stdout).outputs.scores, 'utf8')
        .trim()
        .split('\n')
        .slice(1)
        .map((l) => Number(l.split(',')[2]));
    const a = scores(pre);
    const b = scores(ref);
    expect(a).toHaveLength(224);
    a.forEach((x, i) => expect(x).toBeCloseTo(b[i]!, 5));
    const kept = readJsonl<{ source: string }>(JSON.parse(pre.stdout).outputs.dataset);
    expect(kept.filter((k) => k.source === 'harmful').length / 24).toBeLessThan(0.4);

    let r = await sot(['purify', input, '--harmful', 'advbench', '--vectors-npy', npy], env());
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/"advbench" is a named set of texts; precomputed vectors cannot embed text/);

    await writeNpy(npy, new Float32Array(10 * 512), 10, 512);
    r = await sot(['purify', input, '--harmful', harmful, '--vectors-npy', npy, '--json'], env());
    expect(r.code).toBe(3);
    expect(JSON.parse(r.stdout).error.message).toMatch(/has 10 rows but .*train\.jsonl has 224 records/);
  });
});
