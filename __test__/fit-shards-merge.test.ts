// The sharded merge's pieces: every record's Gibbs weight in one core call
// (against a naive f64 reference), the shard result format's version check,
// and the reasons pass of a worker (only the records asked, exact).
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { fit } from '../src/fit/fit.js';
import { loadModel, modelEmbedder } from '../src/fit/model.js';
import { encodeRows, encodeShard, readNear, readShard, runShard } from '../src/fit/shard.js';
import { embedDataset, openEmbeddingCache } from '../src/pipeline/embedding.js';
import { nearestHarmful } from '../src/pipeline/audit.js';
import { PipelineInput } from '../src/pipeline/input.js';
import { gibbsWeights } from '../src/selection.js';
import { contaminated, writeJsonl } from './datasets.js';

/** exp(s_i - logsumexp(s)) in plain f64, by hand. */
function softmax(s: number[]): number[] {
  const top = Math.max(...s);
  const lse = top + Math.log(s.reduce((a, v) => a + Math.exp(v - top), 0));
  return s.map((v) => Math.exp(v - lse));
}

describe('gibbsWeights', () => {
  it("every record's Gibbs weight over all records, summing to 1: a softmax of the scores", async () => {
    let seed = 3;
    const rand = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31) * 2 - 1;
    for (const spread of [1e-3, 1, 30, 600]) {
      const s = Array.from({ length: 2001 }, () => rand() * spread);
      s[17] = s[1000]!; // a tie
      const got = await gibbsWeights(Float64Array.from(s));
      const want = softmax(s);
      expect(got).toHaveLength(s.length);
      got.forEach((w, i) => {
        // below the doubles' normal range the core floors a weight (positive, as the learner's)
        if (want[i]! > 1e-290) expect(Math.abs(w - want[i]!)).toBeLessThanOrEqual(1e-12 * want[i]!);
        else expect(w > 0 && w < 1e-290).toBe(true);
      });
      expect(Math.abs(got.reduce((a, v) => a + v, 0) - 1)).toBeLessThan(1e-12);
      expect(got[17]).toBe(got[1000]);
    }
    // one record: all the weight
    expect(Array.from(await gibbsWeights(Float64Array.of(-5)))).toEqual([1]);
    // scores far below the best keep a positive weight (the learner's floor), not 0
    const far = await gibbsWeights(Float64Array.of(0, -1e6));
    expect(far[0]).toBe(1);
    expect(far[1]).toBeGreaterThan(0);
  });

  it('a score that is not finite is a typed error naming it', async () => {
    for (const bad of [Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY])
      await expect(gibbsWeights(Float64Array.of(1, 2, bad))).rejects.toMatchObject({
        code: 'ERR_NON_FINITE',
        message: expect.stringMatching(/score\[2\]/),
      });
  });
});

describe('shard results', () => {
  it('SOTSHRD3 round-trips; a result of another format version is a typed error', async () => {
    const { dir } = contaminated(10, 0);
    const path = join(dir, 'one.bin');
    const r = {
      from: 40,
      score: Float64Array.of(1, -2, 3),
      pull: Float64Array.of(0.5, 0.25, 0.125),
      push: Float64Array.of(1, 2, 3),
      lines: Uint32Array.of(41, 42, 43),
      near: { k: 2, rows: Uint32Array.of(41), index: Uint32Array.of(7, 3), cost: Float32Array.of(0.5, 0.75) },
    };
    const bytes = encodeShard(r);
    expect(Buffer.from(bytes.subarray(0, 8)).toString('latin1')).toBe('SOTSHRD3');
    writeFileSync(path, bytes);
    expect(await readShard(path)).toEqual(r);
    // the previous version's signature (a worker of another version): refused, naming both
    const old = Buffer.from(bytes);
    old.write('SOTSHRD2', 0, 'latin1');
    writeFileSync(path, old);
    await expect(readShard(path)).rejects.toMatchObject({
      code: 'ERR_INPUT',
      file: path,
      message: expect.stringMatching(/format SOTSHRD2, this version reads SOTSHRD3/),
    });
    writeFileSync(path, bytes.subarray(0, bytes.length - 4));
    await expect(readShard(path)).rejects.toMatchObject({ code: 'ERR_INPUT', message: /bytes, \d+ expected/ });
  });
});

describe('the reasons pass of a shard', () => {
  it('embeds only the records asked and finds their nearest harmful references, as over the whole file', async () => {
    const c = contaminated(180, 20);
    const data = writeJsonl(join(c.dir, 'train.jsonl'), c.records);
    const anchor = writeJsonl(join(c.dir, 'anchor.jsonl'), c.anchor);
    const model = join(c.dir, 'm.sot-model');
    await fit({ input: data, harmful: ['advbench'], anchor: [anchor], embeddingCache: false, model, sample: 100 });
    // records 50 to 149; asked: some spread over the shard, the first and the last
    const asked = Uint32Array.of(0, 3, 4, 50, 98, 99);
    const rows = join(c.dir, 'shard.rows');
    writeFileSync(rows, encodeRows(100, asked));
    const task = { input: data, model, shard: 1, from: 50, to: 150, out: join(c.dir, 'near.bin') };
    await runShard({ ...task, explain: { neighbours: 3, rows } });
    const got = await readNear(task.out);
    expect(Array.from(got.rows)).toEqual(Array.from(asked));
    // the whole file embedded at once, the same rows' nearest references
    const m = await loadModel(model);
    const embedder = modelEmbedder(m, model);
    const input = await PipelineInput.open({ input: data, template: m.header.template ?? undefined });
    const { matrix } = await embedDataset(input, 200, embedder, await openEmbeddingCache({}, embedder), {});
    const want = await nearestHarmful(
      matrix,
      m.harmful.points,
      asked.map((i) => i + 50),
      3,
      m.header.cost,
    );
    expect(got.k).toBe(3);
    expect(Array.from(got.index)).toEqual(Array.from(want.index));
    expect(Array.from(got.cost)).toEqual(Array.from(want.cost));

    // the shard's records counted when scored no longer match (the file changed): a typed error
    writeFileSync(rows, encodeRows(101, asked));
    await expect(runShard({ ...task, explain: { neighbours: 3, rows } })).rejects.toMatchObject({
      code: 'ERR_INPUT',
      message: expect.stringMatching(/has 100 records now, 101 when scored/),
    });
    // rows that do not ascend: refused
    writeFileSync(rows, encodeRows(100, Uint32Array.of(4, 3)));
    await expect(runShard({ ...task, explain: { neighbours: 3, rows } })).rejects.toMatchObject({ code: 'ERR_INPUT' });
  }, 120_000);
});
