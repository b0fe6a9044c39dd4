import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { DATA_DIR } from './datasets.js';
import { describe, expect, it, vi } from 'vitest';
import { BUILTIN_DEFAULTS, builtinDim } from '../src/embed/defaults.js';
import { DOC_FREQ_BUCKETS, HashingEmbedder } from '../src/embed/hashing.js';
import { AbortError, EmptyInputError, OptionError, type ProgressEvent } from '../src/index.js';
import { project2d } from '../src/project.js';
import { cloud, stack } from './helpers.js';

const cos = (e: Float32Array, dim: number, i: number, j: number) => {
  let s = 0;
  for (let k = 0; k < dim; k++) s += e[i * dim + k]! * e[j * dim + k]!;
  return s;
};

async function* batches(texts: string[], size: number) {
  for (let i = 0; i < texts.length; i += size) yield texts.slice(i, i + size);
}

const texts = [
  'Write a poem about the ocean.',
  'Compose a short poem about the sea.',
  'Explain how a transistor works.',
  'Ünïcödé text, with punctuation!',
  'x',
];

describe('HashingEmbedder', () => {
  it('gives unit vectors of the requested dimension, deterministically', async () => {
    for (const dim of [512, 64, 3]) {
      const e = new HashingEmbedder({ dim });
      expect(e.dim).toBe(dim);
      expect(e.id).toBe(`sot-hash-v1:dim=${dim}:seed=0:words=0.5:chars=400:idf=none`);
      const v = await e.embed(texts);
      expect(v).toBeInstanceOf(Float32Array);
      expect(v.length).toBe(texts.length * dim);
      for (let i = 0; i < texts.length; i++) expect(Math.sqrt(cos(v, dim, i, i))).toBeCloseTo(1, 5);
      expect(await new HashingEmbedder({ dim }).embed(texts)).toEqual(v);
    }
    const e = new HashingEmbedder();
    const v = await e.embed(texts);
    expect(cos(v, e.dim, 0, 1)).toBeGreaterThan(cos(v, e.dim, 0, 2) + 0.15);
    // the seed moves features to other coordinates
    const w = await new HashingEmbedder({ seed: 7 }).embed(texts);
    expect(w).not.toEqual(v);
    expect(cos(w, e.dim, 0, 1)).toBeCloseTo(cos(v, e.dim, 0, 1), 1);
    expect((await e.embed([])).length).toBe(0);
  });

  it('sizes its vectors to the documents fitted on unless dim is given', async () => {
    // the longest length whose vectors stay within BUILTIN_DEFAULTS.vectorBytes (512 MiB), 512 at least
    expect([0, 65_536, 65_537, 131_072, 131_073, 10_000_000].map((n) => builtinDim(n))).toEqual([
      2048, 2048, 1024, 1024, 512, 512,
    ]);
    const { dims, vectorBytes } = BUILTIN_DEFAULTS;
    for (const n of [1, 65_536, 131_072]) expect(n * builtinDim(n) * 4).toBeLessThanOrEqual(vectorBytes);
    expect(dims.at(-1)).toBe(512);
    // under a memory budget, the vectors take at most a sixteenth of it (512 MiB budget: 32 MiB)
    const mib = 1024 ** 2;
    expect([1_000, 4_000, 8_000, 10_000].map((n) => builtinDim(n, 512 * mib))).toEqual([2048, 2048, 1024, 512]);
    expect(builtinDim(10_000, 8 * 1024 * mib)).toBe(2048);
    expect(builtinDim(100_000, 8 * 1024 * mib)).toBe(1024); // the 512 MiB cap
    const e = new HashingEmbedder();
    expect([e.dim, e.dimOption]).toEqual([2048, undefined]);
    await e.fit(batches(['a cat', 'a dog', 'a bird'], 2));
    expect(e.dim).toBe(2048);
    await e.fit(batches(['a cat', 'a dog', 'a bird'], 2), { memoryBudget: (3 * 1024 * 4 * 16) / 2 });
    expect(e.dim).toBe(512); // 3 vectors of 1024 floats are above a sixteenth of that budget
    await e.fit(batches(['a cat', 'a dog', 'a bird'], 2));
    expect(e.dim).toBe(2048); // a fit without a budget: the 512 MiB cap alone
    for (const bad of [0, -1, Number.NaN, '1GB'])
      await expect(e.fit(batches(['a cat'], 1), { memoryBudget: bad as number })).rejects.toThrow(
        /memoryBudget must be a (positive )?(finite )?number/,
      );
    expect(e.dim).toBe(2048); // a refused fit changes nothing
    expect((await e.embed(['a cat'])).length).toBe(2048);
    // a table of many documents (as a fit over them, or a merged sharded count, gives)
    const counts = new Uint32Array(DOC_FREQ_BUCKETS);
    const big = new HashingEmbedder({ docFreq: { counts, docCount: 100_000 } });
    expect(big.dim).toBe(1024);
    expect(big.id).toMatch(/^sot-hash-v1:dim=1024:/);
    expect((await big.embed(['a cat', 'a dog'])).length).toBe(2 * 1024);
    expect(new HashingEmbedder({ docFreq: { counts, docCount: 200_000 } }).dim).toBe(512);
    // an explicit length is kept whatever the table
    expect(new HashingEmbedder({ dim: 256, docFreq: { counts, docCount: 100_000 } }).dim).toBe(256);
  });

  it('fit changes the id and down-weights a word present everywhere', async () => {
    const corpus = Array.from({ length: 300 }, (_, i) => `the record ${i} of kind k${i % 17}`);
    corpus.push('the cat', 'the dog');
    const e = new HashingEmbedder();
    const before = await e.embed(['the cat', 'the dog']);
    await e.fit(batches(corpus, 64));
    expect(e.id).toMatch(/^sot-hash-v1:dim=2048:seed=0:words=0\.5:chars=400:idf=[0-9a-f]{16}$/);
    const after = await e.embed(['the cat', 'the dog']);
    expect(cos(after, e.dim, 0, 1)).toBeLessThan(cos(before, e.dim, 0, 1) - 0.1);
    // batching and order do not matter; the table round-trips
    const f = new HashingEmbedder();
    await f.fit(batches([...corpus].reverse(), 7));
    expect(f.id).toBe(e.id);
    const table = e.docFreq!;
    expect(table.counts.length).toBe(DOC_FREQ_BUCKETS);
    expect(table.docCount).toBe(corpus.length);
    const g = new HashingEmbedder({ docFreq: table });
    expect(g.id).toBe(e.id);
    expect(await g.embed(['the cat', 'the dog'])).toEqual(after);
    // another corpus, another id; an empty fit is no fit
    const h = new HashingEmbedder();
    await h.fit(batches(corpus.slice(1), 64));
    expect(h.id).not.toBe(e.id);
    await h.fit(batches([], 1));
    expect(h.id).toBe(new HashingEmbedder().id);
  });

  it('rejects a text without words with its index, and bad options', async () => {
    const err = await new HashingEmbedder().embed(['fine', 'also fine', ' \n\t', '...']).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(EmptyInputError);
    expect(err).toMatchObject({ code: 'ERR_EMPTY', index: 2 });
    expect(() => new HashingEmbedder({ dim: 0 })).toThrow(OptionError);
    expect(() => new HashingEmbedder({ dim: 1.5 })).toThrow(OptionError);
    expect(() => new HashingEmbedder({ seed: -1 })).toThrow(OptionError);
    expect(() => new HashingEmbedder({ wordWeight: 2 })).toThrow(OptionError);
    expect(() => new HashingEmbedder({ docFreq: { counts: new Uint32Array(5), docCount: 1 } })).toThrow(OptionError);
    await expect(new HashingEmbedder().embed([1 as unknown as string])).rejects.toBeInstanceOf(OptionError);
  });

  it('reports progress and stops on abort, also while running', async () => {
    const many = Array.from({ length: 100_000 }, (_, i) =>
      `sample number ${i} with a few more words about topic ${i % 101} `.repeat(3),
    );
    const events: ProgressEvent[] = [];
    await new HashingEmbedder({ dim: 32 }).embed(many.slice(0, 5000), {
      onProgress: (e) => events.push(e),
      progressIntervalMs: 0,
    });
    // Events come through the event loop: on a fast run all of them may arrive just after the promise settles.
    await vi.waitFor(() => expect(events.length).toBeGreaterThan(0));
    expect(events[0]).toMatchObject({ stage: 'embed', maxIterations: 5000 });
    expect(events.every((e, i) => i === 0 || e.iteration >= events[i - 1]!.iteration)).toBe(true);
    const controller = new AbortController();
    const started = performance.now();
    setTimeout(() => controller.abort(), 30);
    const err = await new HashingEmbedder().embed(many, { signal: controller.signal }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AbortError);
    expect(performance.now() - started).toBeLessThan(2000);
    const fitErr = await new HashingEmbedder()
      .fit(batches(many, 50_000), { signal: AbortSignal.abort() })
      .catch((e: unknown) => e);
    expect(fitErr).toBeInstanceOf(AbortError);
  });

  it('reads maxChars code points of each text from its first letter or digit', async () => {
    const head = 'how to bake bread at home with a simple oven '.repeat(3);
    const tail = ' completely different words about rockets and orbital mechanics'.repeat(20);
    const e = new HashingEmbedder({ maxChars: head.length });
    const v = await e.embed([head, `${head}${tail}`, `--- ${head}${tail}`]);
    // Beyond maxChars nothing is read: the long texts embed as their beginning.
    expect(cos(v, e.dim, 0, 1)).toBeCloseTo(1, 5);
    expect(cos(v, e.dim, 0, 2)).toBeCloseTo(1, 5);
    const all = new HashingEmbedder({ maxChars: 0 });
    const w = await all.embed([head, `${head}${tail}`]);
    expect(cos(w, all.dim, 0, 1)).toBeLessThan(0.9);
    expect(all.id).toContain(':chars=0:');
    // A surrogate pair at the cut is kept whole (no lone surrogate reaches the embedder).
    const emoji = new HashingEmbedder({ maxChars: 3 });
    await expect(emoji.embed(['ab😀cd'])).resolves.toHaveLength(emoji.dim);
  });

  const advbench = join(DATA_DIR, 'refusal-direction/dataset/raw/advbench.csv');
  const alpaca = join(DATA_DIR, 'alpaca-libre/data/output/work/alpaca_libre_tasks_v1.jsonl');
  it('places a held-out AdvBench goal nearer to AdvBench than to Alpaca', async () => {
    const goals = readFileSync(advbench, 'utf8')
      .split('\n')
      .slice(1)
      .filter((l) => l.trim() !== '')
      .map((l) => (l.startsWith('"') ? l.slice(1, l.indexOf('"', 1)) : l.slice(0, l.indexOf(','))));
    const instructions = readFileSync(alpaca, 'utf8')
      .split('\n')
      .filter((l) => l.trim() !== '')
      .map((l) => (JSON.parse(l) as { instruction: string }).instruction)
      .slice(0, 1000);
    expect(goals.length).toBeGreaterThan(500);
    const e = new HashingEmbedder();
    await e.fit(batches([...goals, ...instructions], 256));
    const v = await e.embed([...goals, ...instructions]);
    const g = goals.length;
    // every 10th goal is held out: compare its mean cosine to the other goals
    // and to the instructions, and the majority among its 10 nearest neighbours
    // (measured: 50/52 and 51/52 with the defaults)
    let wins = 0;
    let knn = 0;
    let held = 0;
    for (let i = 0; i < g; i += 10) {
      held++;
      const sims: [number, boolean][] = [];
      for (let j = 0; j < g; j++) if (j % 10 !== 0) sims.push([cos(v, e.dim, i, j), true]);
      for (let j = 0; j < instructions.length; j++) sims.push([cos(v, e.dim, i, g + j), false]);
      const mean = (goal: boolean) => {
        const s = sims.filter((x) => x[1] === goal);
        return s.reduce((t, x) => t + x[0], 0) / s.length;
      };
      if (mean(true) > mean(false)) wins++;
      sims.sort((x, y) => y[0] - x[0]);
      if (sims.slice(0, 10).filter((x) => x[1]).length >= 6) knn++;
    }
    expect(wins / held).toBeGreaterThanOrEqual(0.9);
    expect(knn / held).toBeGreaterThanOrEqual(0.9);
  });
});

describe('project2d', () => {
  it('gives n x 2 coordinates that separate two clusters', async () => {
    const a = cloud(
      200,
      Array.from({ length: 10 }, (_, k) => (k === 0 ? 3 : 0)),
      0.3,
      1,
    );
    const b = cloud(
      100,
      Array.from({ length: 10 }, (_, k) => (k === 1 ? 3 : 0)),
      0.3,
      2,
    );
    const xy = await project2d(stack(a, b));
    expect(xy).toBeInstanceOf(Float32Array);
    expect(xy.length).toBe(600);
    const xs = Array.from({ length: 300 }, (_, i) => xy[2 * i]!);
    const [lo, hi] = [Math.max(...xs.slice(0, 200)), Math.min(...xs.slice(200))];
    // one side each (which side is fixed by the sign convention)
    expect(lo < hi || Math.min(...xs.slice(0, 200)) > Math.max(...xs.slice(200))).toBe(true);
    expect(await project2d(stack(a, b))).toEqual(xy);
    expect(
      await project2d([
        [1, 2],
        [3, 4],
        [5, 6],
      ]),
    ).toHaveLength(6);
    await expect(project2d([[1, Number.NaN]])).rejects.toMatchObject({ code: 'ERR_NON_FINITE' });
    await expect(project2d({ data: new Float32Array(0), rows: 0, cols: 3 })).rejects.toBeInstanceOf(EmptyInputError);
    await expect(project2d(stack(a, b), { signal: AbortSignal.abort() })).rejects.toBeInstanceOf(AbortError);
  });
});
