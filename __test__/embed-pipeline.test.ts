// The sentence-encoder pipeline: length-bucketed batches under a token
// budget, run by worker processes that each own an ONNX Runtime session.
// Its vectors are checked against transformers.js's own feature-extraction
// pipeline fed the way SOT fed it before (batches of 32 in input order),
// with the same pinned all-MiniLM-L6-v2 int8 model (scripts/fetch-test-model.mjs).
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { padBatch, planBatches, type Encoded } from '../src/embed/token-batches.js';
import { TransformersEmbedder, TRANSFORMERS_PACKAGE } from '../src/embed/transformers.js';
import { createEmbedder } from '../src/embed/providers.js';
import { AbortError, OptionError } from '../src/errors.js';
// @ts-expect-error: a plain ESM script without types
import { fetchTestModel } from '../scripts/fetch-test-model.mjs';
import { DATA_DIR } from './datasets.js';

describe('planBatches / padBatch', () => {
  const lengths = [5, 40, 3, 40, 12, 7, 1, 100, 12, 9, 30, 2];

  it('covers every text once, longest first, each batch within the token budget and the row cap', () => {
    for (const [maxBatchTokens, maxBatchRows] of [
      [64, 4],
      [100, 64],
      [1, 3],
      [10_000, 5],
    ] as const) {
      const plan = planBatches(lengths, { maxBatchTokens, maxBatchRows });
      expect(plan.flat().sort((a, b) => a - b)).toEqual(lengths.map((_, i) => i));
      const flat = plan.flat().map((i) => lengths[i]!);
      expect(flat).toEqual([...flat].sort((a, b) => b - a));
      for (const b of plan) {
        expect(b.length).toBeLessThanOrEqual(maxBatchRows);
        const width = Math.max(...b.map((i) => lengths[i]!));
        // Over the budget only when one text alone is longer than it.
        if (b.length > 1) expect(b.length * width).toBeLessThanOrEqual(maxBatchTokens);
      }
    }
    // Ties keep input order: the plan does not depend on sort stability quirks.
    expect(planBatches([3, 3, 3, 3], { maxBatchTokens: 6, maxBatchRows: 8 })).toEqual([
      [0, 1],
      [2, 3],
    ]);
    expect(() => planBatches(lengths, { maxBatchTokens: 0, maxBatchRows: 4 })).toThrow(OptionError);
    expect(planBatches([], { maxBatchTokens: 8, maxBatchRows: 8 })).toEqual([]);
  });

  it('pads like the tokenizer: pad id and zero mask on the chosen side, token types kept', () => {
    const enc: Encoded[] = [
      { input_ids: [101, 7, 102], attention_mask: [1, 1, 1], token_type_ids: [0, 0, 0] },
      { input_ids: [101, 102], attention_mask: [1, 1], token_type_ids: [0, 1] },
    ];
    const right = padBatch(enc, [1, 0], 0, 'right');
    expect(right.cols).toBe(3);
    expect([...right.input_ids]).toEqual([101n, 102n, 0n, 101n, 7n, 102n]);
    expect([...right.attention_mask]).toEqual([1n, 1n, 0n, 1n, 1n, 1n]);
    expect([...right.token_type_ids!]).toEqual([0n, 1n, 0n, 0n, 0n, 0n]);
    const left = padBatch(enc, [1], 9, 'left');
    expect(left.cols).toBe(2);
    const leftBoth = padBatch(enc, [0, 1], 9, 'left');
    expect([...leftBoth.input_ids]).toEqual([101n, 7n, 102n, 9n, 101n, 102n]);
    expect([...leftBoth.attention_mask]).toEqual([1n, 1n, 1n, 0n, 1n, 1n]);
    expect(padBatch([{ input_ids: [1], attention_mask: [1] }], [0], 0).token_type_ids).toBeUndefined();
  });
});

describe('TransformersEmbedder pipeline (all-MiniLM-L6-v2 int8)', () => {
  let folder = '';
  let texts: string[] = [];
  let embedder: TransformersEmbedder;
  const dim = 384;

  beforeAll(async () => {
    folder = (await fetchTestModel()) as string;
    const rows = readFileSync(join(DATA_DIR, 'alpaca-libre/data/output/work/alpaca_libre_tasks_v1.jsonl'), 'utf8')
      .split('\n')
      .filter((l) => l.trim())
      .map((l) => JSON.parse(l) as { instruction: string; input: string; output: string; status: string })
      .filter((r) => r.status === 'ok')
      .slice(0, 80);
    // Real texts of every length, plus the edges: empty, one character, far past the 256-token limit, non-Latin.
    texts = [
      ...rows.map((r) => `${r.instruction}${r.input ? `\n${r.input}` : ''}\n\n${r.output}`),
      '',
      'a',
      'word '.repeat(900),
      'Ünïcödé – 日本語のテキスト ✓',
    ];
    // The model's own limit (256), as the reference pipeline truncates.
    embedder = await TransformersEmbedder.create({ model: folder, maxLength: 256 });
  }, 300_000);

  afterAll(async () => {
    await embedder?.dispose();
  });

  it("gives the vectors of transformers.js fed in order in batches of 32, in the caller's order", async () => {
    // The reference: transformers.js's feature-extraction pipeline as SOT used it before (same model, same options).
    const tf = (await import(TRANSFORMERS_PACKAGE)) as {
      env: Record<string, unknown>;
      pipeline: (
        task: string,
        model: string,
        o: object,
      ) => Promise<(t: string[], o: object) => Promise<{ data: Float32Array; dims: number[] }>>;
    };
    tf.env.allowRemoteModels = false;
    tf.env.localModelPath = `${join(folder, '..')}/`;
    const ref = await tf.pipeline('feature-extraction', 'all-MiniLM-L6-v2-int8', {
      dtype: 'fp32',
      device: 'cpu',
      local_files_only: true,
    });
    const want = new Float32Array(texts.length * dim);
    for (let i = 0; i < texts.length; i += 32) {
      const t = await ref(texts.slice(i, i + 32), { pooling: 'mean', normalize: true });
      want.set(t.data, i * dim);
    }
    const got = await embedder.embed(texts);
    expect(got.length).toBe(want.length);
    let worst = 0;
    for (let k = 0; k < got.length; k++) worst = Math.max(worst, Math.abs(got[k]! - want[k]!));
    expect(worst).toBeLessThan(1e-5);
  }, 300_000);

  it('two workers with one thread each and a small token budget give the same vectors and the same cache id', async () => {
    const e2 = await TransformersEmbedder.create({
      model: folder,
      maxLength: 256,
      workers: 2,
      threads: 1,
      maxBatchTokens: 512,
      batchSize: 8,
    });
    try {
      expect(e2.workers).toBe(2);
      expect(e2.threads).toBe(1);
      expect(e2.id).toBe(embedder.id); // how the work is split is not part of the identity
      const part = texts.slice(0, 60).concat(texts.slice(-4));
      const a = await embedder.embed(part);
      const b = await e2.embed(part);
      let worst = 0;
      for (let k = 0; k < a.length; k++) worst = Math.max(worst, Math.abs(a[k]! - b[k]!));
      expect(worst).toBeLessThan(1e-5);
    } finally {
      await e2.dispose();
    }
  }, 300_000);

  it('the max length (default 128) is part of the cache id and changes the vectors of long texts only', async () => {
    const dflt = await createEmbedder({ kind: 'transformers', model: folder });
    expect(dflt.id).toMatch(/:max=128:/);
    expect(dflt.id).toBe(embedder.id.replace(':max=256:', ':max=128:'));
    await (dflt as TransformersEmbedder).dispose();
    const short = await createEmbedder({ kind: 'transformers', model: folder, maxLength: 16 });
    try {
      expect(short.id).not.toBe(embedder.id);
      expect(short.id).toMatch(/:max=16:/);
      const pair = ['a cat', 'word '.repeat(100)];
      const a = await embedder.embed(pair);
      const b = await short.embed(pair);
      let same = 0;
      let long = 0;
      for (let k = 0; k < dim; k++) {
        same = Math.max(same, Math.abs(a[k]! - b[k]!));
        long = Math.max(long, Math.abs(a[dim + k]! - b[dim + k]!));
      }
      expect(same).toBeLessThan(1e-5);
      expect(long).toBeGreaterThan(1e-3);
    } finally {
      await (short as TransformersEmbedder).dispose();
    }
  }, 300_000);

  it('an abort rejects with AbortError without waiting for the passes, and the embedder keeps working', async () => {
    const ac = new AbortController();
    const many = Array.from({ length: 400 }, (_, i) => `${texts[i % 80]} (${i})`);
    const p = embedder.embed(many, { signal: ac.signal });
    setTimeout(() => ac.abort(), 200);
    const t0 = performance.now();
    await expect(p).rejects.toBeInstanceOf(AbortError);
    expect(performance.now() - t0).toBeLessThan(20_000);
    const again = await embedder.embed(['A man is eating food.', 'A man is eating a piece of bread.']);
    let c = 0;
    for (let k = 0; k < dim; k++) c += again[k]! * again[dim + k]!;
    expect(c).toBeGreaterThan(0.72);
  }, 300_000);

  it('a script exits by itself with idle workers, and when it awaits dispose(); a killed worker is an error, not a crash', () => {
    // In a child: the compiled module, as a user's script loads it.
    const mod = pathToFileURL(resolve('dist/embed/transformers.js')).href;
    const script = (body: string) =>
      spawnSync(
        process.execPath,
        [
          '--input-type=module',
          '-e',
          `import { TransformersEmbedder } from ${JSON.stringify(mod)};
const e = await TransformersEmbedder.create({ model: ${JSON.stringify(folder)}, workers: 2, threads: 1 });
${body}`,
        ],
        { encoding: 'utf8', timeout: 240_000 },
      );
    const idle = script(`const v = await e.embed(['one', 'two']); console.log(v.length);`);
    expect(idle.stderr).toBe('');
    expect(idle.status).toBe(0);
    expect(idle.stdout.trim()).toBe(String(2 * dim));
    const disposed = script(`await e.embed(['one']); await e.dispose(); console.log('done');`);
    expect(disposed.status).toBe(0);
    expect(disposed.stdout.trim()).toBe('done');
    // Workers are the process's children: kill one (SIGKILL), then embed.
    const killed = script(`const { execSync } = await import('node:child_process');
const kids = execSync('pgrep -P ' + process.pid).toString().trim().split(/\\s+/).map(Number);
process.kill(kids[0], 'SIGKILL');
await new Promise((r) => setTimeout(r, 500));
try { for (let k = 0; k < 4; k++) await e.embed(['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h'].map((x) => x + k)); console.log('no error'); }
catch (err) { console.log(err.code, err.message); }
await e.dispose();`);
    expect(killed.status).toBe(0);
    expect(killed.stdout).toMatch(/^ERR_INTERNAL an encoder worker exited \(SIGKILL\)/);
  }, 300_000);

  it('refuses bad session options with an OptionError naming them', async () => {
    await expect(TransformersEmbedder.create({ model: folder, workers: 0 })).rejects.toThrow(
      /workers must be a positive integer/,
    );
    await expect(TransformersEmbedder.create({ model: folder, threads: 1.5 })).rejects.toThrow(
      /threads must be a positive integer/,
    );
    await expect(TransformersEmbedder.create({ model: folder, graphOptimization: 'max' as 'all' })).rejects.toThrow(
      /graphOptimization must be one of/,
    );
    await expect(createEmbedder({ kind: 'builtin', workers: 2 })).rejects.toThrow(
      /--embed-workers applies to --embedder transformers/,
    );
  });
});
