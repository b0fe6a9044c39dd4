// Embedding progress moves with the embedder's own batch: a slow embedder (an
// LLM at a few records per second) reports every few seconds, not once per
// pipeline batch of 2,048 records; with and without the embedding cache.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { HashingEmbedder } from '../src/embed/hashing.js';
import type { EmbedCallOptions, Embedder } from '../src/embed/types.js';
import { purify } from '../src/index.js';
import { alpacaOk, harmfulPairs, writeJsonl } from './datasets.js';

/** A user's embedder with a preferred batch: the built-in one behind it, every call recorded. */
class Paced implements Embedder {
  readonly calls: number[] = [];
  readonly inner: HashingEmbedder;
  readonly preferredBatch?: number;
  constructor(o: { preferredBatch?: number; dim?: number } = { preferredBatch: 100 }) {
    if (o.preferredBatch !== undefined) this.preferredBatch = o.preferredBatch;
    this.inner = new HashingEmbedder({ dim: o.dim ?? 64 });
  }
  get id() {
    return `paced:${this.inner.id}`;
  }
  get dim() {
    return this.inner.dim;
  }
  fit(batches: AsyncIterable<string[]>, options?: EmbedCallOptions) {
    return this.inner.fit(batches, options);
  }
  embed(texts: string[], options?: EmbedCallOptions) {
    this.calls.push(texts.length);
    return this.inner.embed(texts, options);
  }
}

const root = mkdtempSync(join(tmpdir(), 'sot-embed-progress-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

describe('embedding progress', () => {
  const input = writeJsonl(join(root, 'train.jsonl'), alpacaOk().slice(0, 450));
  const harmful = writeJsonl(join(root, 'harmful.jsonl'), harmfulPairs().slice(0, 20));

  for (const cached of [false, true]) {
    it(`is reported per preferred batch of the embedder (${cached ? 'through the cache' : 'no cache'})`, async () => {
      const embedder = new Paced();
      const seen: number[] = [];
      const run = () =>
        purify({
          input,
          harmful: [harmful],
          output: join(root, `out-${cached}.jsonl`),
          embedder,
          embeddingCache: cached ? join(root, 'cache') : false,
          onProgress: (e) => {
            if (e.stage === 'embed') seen.push(e.done);
          },
        });
      await run();
      expect(seen).toEqual([100, 200, 300, 400, 450]);
      expect(Math.max(...embedder.calls)).toBeLessThanOrEqual(100);
      if (cached) {
        // Every text is now a hit: no call to the embedder, the same progress.
        embedder.calls.length = 0;
        seen.length = 0;
        await run();
        expect(embedder.calls).toEqual([]);
        expect(seen).toEqual([100, 200, 300, 400, 450]);
      }
    });
  }

  it('asks for at most 8 MiB of vectors per call, whatever the batch: wide ones come 128 rows at a time', async () => {
    const embedder = new Paced({ dim: 16384 });
    const seen: number[] = [];
    await purify({
      input,
      harmful: [harmful],
      output: join(root, 'out-wide.jsonl'),
      embedder,
      embeddingCache: false,
      onProgress: (e) => {
        if (e.stage === 'embed') seen.push(e.done);
      },
    });
    expect(seen).toEqual([128, 256, 384, 450]);
    expect(embedder.calls).toEqual([128, 128, 128, 66, 20]);
  });
});
