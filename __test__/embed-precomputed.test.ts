// Precomputed vectors (a record field or a .npy aligned by row) through the
// whole purify pipeline, the .npy reader, and the consistency errors.
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { HashingEmbedder } from '../src/embed/hashing.js';
import { PrecomputedEmbedder } from '../src/embed/precomputed.js';
import { createEmbedder } from '../src/embed/providers.js';
import { AbortError, InputError, OptionError, ShapeError } from '../src/errors.js';
import { openDataset, renderText } from '../src/io/index.js';
import { writeNpy } from '../src/npy.js';
import { type AnyMatrix, arrayMatrix, rowsOf, storedMatrix } from '../src/matrix.js';
import { parseNpy, readNpy, readNpyRows } from '../src/npy-read.js';
import { purify } from '../src/pipeline/purify.js';
import { contaminated, DATA_DIR, harmfulPairs, shuffle, writeJsonl } from './datasets.js';

// The built-in embedder brings its own learner defaults; compare at equal options.
const SAME = { eps: 0.05, lambda: 1.5 };

async function textsOf(path: string): Promise<string[]> {
  const out: string[] = [];
  for await (const { text } of await openDataset(path)) out.push(renderText(text));
  return out;
}

/** A contaminated dataset, a disjoint harmful reference and an anchor, each with vectors from one fitted built-in embedder. */
async function fixture() {
  const c = contaminated(160, 24);
  const harmfulRef = shuffle(harmfulPairs(), 13).slice(24, 64);
  const files = {
    input: writeJsonl(join(c.dir, 'train.jsonl'), c.records),
    harmful: writeJsonl(join(c.dir, 'harmful.jsonl'), harmfulRef),
    anchor: writeJsonl(join(c.dir, 'anchor.jsonl'), c.anchor),
  };
  const e = new HashingEmbedder({ dim: 64 });
  const dataTexts = await textsOf(files.input);
  await e.fit(
    (async function* () {
      yield dataTexts;
    })(),
  );
  const vectors = {
    input: await e.embed(dataTexts),
    harmful: await e.embed(await textsOf(files.harmful)),
    anchor: await e.embed(await textsOf(files.anchor)),
  };
  return { c, files, vectors, dim: 64 };
}

/** `fixture()` with every file's vectors in a .npy: the dataset's in train.vectors.npy, each reference's beside it. */
async function npyFixture() {
  const f = await fixture();
  const { files, vectors, dim } = f;
  const npy = join(f.c.dir, 'train.vectors.npy');
  await writeNpy(npy, vectors.input, vectors.input.length / dim, dim);
  await writeNpy(files.harmful.replace('.jsonl', '.npy'), vectors.harmful, vectors.harmful.length / dim, dim);
  await writeNpy(files.anchor.replace('.jsonl', '.npy'), vectors.anchor, vectors.anchor.length / dim, dim);
  return { ...f, npy };
}

function npyF8(rows: number[][], opts: { descr?: string; fortran?: boolean; shape?: string } = {}): Buffer {
  const cols = rows[0]?.length ?? 0;
  let header = `{'descr': '${opts.descr ?? '<f8'}', 'fortran_order': ${opts.fortran ? 'True' : 'False'}, 'shape': ${opts.shape ?? `(${rows.length}, ${cols})`}, }`;
  header += `${' '.repeat((64 - ((10 + header.length + 1) % 64)) % 64)}\n`;
  const head = Buffer.alloc(10 + header.length);
  head.write('\x93NUMPY', 0, 'latin1');
  head[6] = 1;
  head.writeUInt16LE(header.length, 8);
  head.write(header, 10, 'latin1');
  const body = Buffer.alloc(rows.length * cols * 8);
  rows.flat().forEach((x, i) => (opts.descr === '>f8' ? body.writeDoubleBE(x, 8 * i) : body.writeDoubleLE(x, 8 * i)));
  return Buffer.concat([head, body]);
}

describe('readNpy', () => {
  it('reads float32 (as written by writeNpy) and float64, little- and big-endian', async () => {
    const c = contaminated(1, 1);
    const p = join(c.dir, 'm.npy');
    await writeNpy(p, new Float32Array([1, 2, 3, 4, 5, 6]), 2, 3);
    const m = await readNpy(p);
    expect([m.rows, m.cols, m.dtype, Array.from(m.data)]).toEqual([2, 3, '<f4', [1, 2, 3, 4, 5, 6]]);
    const f8 = parseNpy(
      npyF8([
        [0.5, -1.25],
        [3, 4],
      ]),
    );
    expect([f8.rows, f8.cols, Array.from(f8.data)]).toEqual([2, 2, [0.5, -1.25, 3, 4]]);
    expect(Array.from(parseNpy(npyF8([[7, 8]], { descr: '>f8' })).data)).toEqual([7, 8]);
  });

  it('refuses what it cannot read faithfully, naming the file', () => {
    const bad: Array<[Buffer, RegExp]> = [
      [Buffer.from('PK\x03\x04 not npy'), /magic/],
      [npyF8([[1, 2]], { fortran: true }), /Fortran/],
      [npyF8([[1, 2]], { shape: '(2,)' }), /not 2-D/],
      [npyF8([[1, 2]], { descr: '<i8' }), /dtype <i8/],
      [npyF8([[1, 2]]).subarray(0, 130), /body holds/],
      [npyF8([[1, NaN]]), /row 0, column 1 is not finite/],
      [npyF8([[1, 1e300]]), /overflows float32/],
    ];
    for (const [b, msg] of bad) {
      let err: unknown;
      try {
        parseNpy(b, 'v.npy');
      } catch (e) {
        err = e;
      }
      expect(err, String(msg)).toBeInstanceOf(InputError);
      expect((err as Error).message).toMatch(/^v\.npy: /);
      expect((err as Error).message).toMatch(msg);
    }
  });
});

describe('precomputed vectors are streamed in', () => {
  /** Rows with small integer entries (short JSON), distinct per row. */
  const rowsOfInts = (rows: number, cols: number) =>
    Array.from({ length: rows }, (_, i) => Array.from({ length: cols }, (_, j) => ((i * 31 + j * 7) % 13) - 6));

  it('reads a .npy larger than one read into a JS array or native rows, naming the row of a bad value past the first read', async () => {
    const c = contaminated(1, 1);
    const p = join(c.dir, 'big.npy');
    const [rows, cols] = [2500, 1000]; // 10 MB: more than one read
    const data = new Float32Array(rows * cols).map((_, i) => ((i * 2654435761) % 1000) / 999 - 0.5);
    await writeNpy(p, data, rows, cols);
    const m = await readNpy(p);
    expect([m.rows, m.cols]).toEqual([rows, cols]);
    expect(m.data).toEqual(data);
    const stored = await readNpyRows(p, storedMatrix);
    const pick = [0, 2096, 2097, 2499];
    expect(rowsOf(stored.matrix, pick)).toEqual(rowsOf({ data, rows, cols }, pick));

    const f8 = rowsOfInts(1200, 1000); // 8000-byte rows: 1048 per read
    f8[1100]![3] = Number.NaN;
    writeFileSync(p, npyF8(f8));
    await expect(readNpy(p)).rejects.toThrow(/big\.npy: row 1100, column 3 is not finite/);
    const aborted = AbortSignal.abort();
    await expect(readNpyRows(p, arrayMatrix, { signal: aborted })).rejects.toBeInstanceOf(AbortError);
  });

  it('field vectors and the same .npy give the same matrix, in chunks, after the dimension is accepted', async () => {
    const c = contaminated(1, 1);
    const [n, dim] = [600, 1024]; // 256 field vectors a chunk
    const vectors = rowsOfInts(n, dim);
    const input = writeJsonl(
      join(c.dir, 'v.jsonl'),
      vectors.map((v, i) => ({ prompt: `p${i}`, response: 'r', v })),
    );
    const npy = join(c.dir, 'v.npy');
    await writeNpy(npy, Float32Array.from(vectors.flat()), n, dim);
    const want = rowsOf({ data: Float32Array.from(vectors.flat()), rows: n, cols: dim }, [0, 255, 256, 511, 599]);
    for (const [embedder, alloc] of [
      [new PrecomputedEmbedder({ field: 'v' }), storedMatrix],
      [new PrecomputedEmbedder({ field: 'v' }), arrayMatrix],
      [new PrecomputedEmbedder({ npy }), storedMatrix],
    ] as const) {
      const seen: number[] = [];
      const { matrix, lines } = await embedder.datasetMatrix(
        input,
        await openDataset(input),
        n,
        0,
        alloc as (r: number, c: number) => AnyMatrix,
        { fits: (d) => seen.push(d) },
      );
      expect(seen).toEqual([dim]);
      expect([matrix.rows, matrix.cols, lines[599]]).toEqual([n, dim, 600]);
      expect(rowsOf(matrix, [0, 255, 256, 511, 599])).toEqual(want);
      // refused by `fits`: nothing is allocated
      let allocated = 0;
      const refuse = embedder.datasetMatrix(
        input,
        await openDataset(input),
        n,
        0,
        (r, c) => {
          allocated++;
          return arrayMatrix(r, c);
        },
        {
          fits: () => {
            throw new OptionError('ERR_OPTION', 'too big');
          },
        },
      );
      await expect(refuse).rejects.toThrow('too big');
      expect(allocated).toBe(0);
    }
  });

  it('purify checks the memory budget once the vectors say their dimension, before any output', async () => {
    const { c, files, npy } = await npyFixture();
    const output = join(c.dir, 'budget.jsonl');
    const err = await purify({
      input: files.input,
      harmful: [files.harmful],
      anchor: [files.anchor],
      embedder: new PrecomputedEmbedder({ npy }),
      memoryBudget: '64MB', // below what the test process holds
      html: null,
      output,
    }).catch((e: unknown) => e as Error);
    expect(err).toBeInstanceOf(OptionError);
    expect((err as Error).message).toMatch(
      /too small for .*train\.jsonl: its 184 records take 0 MiB as 64-d embeddings/,
    );
    expect(existsSync(output)).toBe(false);
  });
});

describe('precomputed vectors in purify', () => {
  it('from a record field: the same scores as the built-in embedder whose vectors they are', async () => {
    const { c, files, vectors, dim } = await fixture();
    const withField = (path: string, rows: unknown[], v: Float32Array) =>
      writeJsonl(
        path.replace('.jsonl', '.vec.jsonl'),
        rows.map((r, i) => ({ ...(r as object), embedding: Array.from(v.subarray(i * dim, (i + 1) * dim)) })),
      );
    const input = withField(files.input, c.records, vectors.input);
    const harmful = withField(files.harmful, shuffle(harmfulPairs(), 13).slice(24, 64), vectors.harmful);
    const anchor = withField(files.anchor, c.anchor, vectors.anchor);
    const pre = await purify({
      input,
      harmful: [harmful],
      anchor: [anchor],
      embedder: await createEmbedder({ vectorsField: 'embedding' }),
      html: null,
      output: join(c.dir, 'pre.jsonl'),
      learner: SAME,
    });
    const ref = await purify({
      input: files.input,
      harmful: [files.harmful],
      anchor: [files.anchor],
      embedder: new HashingEmbedder({ dim: 64 }),
      embeddingCache: false,
      html: null,
      learner: SAME,
    });
    expect(pre.n).toBe(184);
    const a = Array.from(pre.scores.scores);
    const b = Array.from(ref.scores.scores);
    a.forEach((x, i) => expect(x).toBeCloseTo(b[i]!, 5));
    expect(JSON.stringify(pre.report)).toContain('precomputed:field=embedding:dim=64');
  });

  it('from a .npy per file (dataset via npy, references via a .npy of the same stem): the same scores again', async () => {
    const { c, files, npy } = await npyFixture();
    const pre = await purify({
      input: files.input,
      harmful: [files.harmful],
      anchor: [files.anchor],
      embedder: new PrecomputedEmbedder({ npy }),
      html: null,
      output: join(c.dir, 'pre.jsonl'),
      learner: SAME,
    });
    const ref = await purify({
      input: files.input,
      harmful: [files.harmful],
      anchor: [files.anchor],
      embedder: new HashingEmbedder({ dim: 64 }),
      embeddingCache: false,
      html: null,
      learner: SAME,
    });
    Array.from(pre.scores.scores).forEach((x, i) => expect(x).toBeCloseTo(ref.scores.scores[i]!, 5));
  });

  it('refuses named sets, row-count and dimension mismatches, missing or bad fields, with clear errors', async () => {
    const { c, files, vectors, dim } = await fixture();
    const npy = join(c.dir, 'train.vectors.npy');
    const run = (o: Partial<Parameters<typeof purify>[0]>) =>
      purify({
        input: files.input,
        harmful: [files.harmful],
        anchor: [files.anchor],
        html: null,
        output: join(c.dir, 'x.jsonl'),
        ...o,
      }).then(
        () => undefined,
        (e: unknown) => e as Error,
      );

    // Named set: texts only.
    await writeNpy(npy, vectors.input, 184, dim);
    let err = await run({
      harmful: ['advbench'],
      dataDir: DATA_DIR,
      offline: true,
      embedder: new PrecomputedEmbedder({ npy }),
    });
    expect(err).toBeInstanceOf(OptionError);
    expect(err!.message).toMatch(
      /harmful reference "advbench" is a named set of texts; precomputed vectors cannot embed text/,
    );

    // Reference without its .npy.
    err = await run({ embedder: new PrecomputedEmbedder({ npy }) });
    expect(err).toBeInstanceOf(OptionError);
    expect(err!.message).toMatch(/harmful\.npy/);

    // Rows vs records.
    await writeNpy(files.harmful.replace('.jsonl', '.npy'), vectors.harmful, 40, dim);
    await writeNpy(files.anchor.replace('.jsonl', '.npy'), vectors.anchor, 50, dim);
    await writeNpy(npy, vectors.input.subarray(0, 183 * dim), 183, dim);
    err = await run({ embedder: new PrecomputedEmbedder({ npy }) });
    expect(err).toBeInstanceOf(ShapeError);
    expect(err!.message).toMatch(/has 183 rows but .*train\.jsonl has 184 records/);

    // Dataset 32-d, references 64-d.
    await writeNpy(npy, vectors.input.subarray(0, 184 * 32), 184, 32);
    err = await run({ embedder: new PrecomputedEmbedder({ npy }) });
    expect(err).toBeInstanceOf(ShapeError);
    expect(err!.message).toMatch(/dimension mismatch/);

    // A field missing on one record, a non-finite entry.
    const rows = c.records.map((r, i) => ({
      ...r,
      embedding: Array.from(vectors.input.subarray(i * dim, (i + 1) * dim)),
    }));
    delete (rows[5] as { embedding?: unknown }).embedding;
    const input = writeJsonl(join(c.dir, 'f.jsonl'), rows);
    err = await run({ input, harmful: [input], anchor: [], embedder: new PrecomputedEmbedder({ field: 'embedding' }) });
    expect(err).toBeInstanceOf(InputError);
    expect(err).toMatchObject({ line: 6, field: 'embedding' });
    expect(err!.message).toMatch(/f\.jsonl:6: no "embedding" vector/);
    writeFileSync(
      input,
      rows
        .map((r, i) =>
          JSON.stringify(i === 5 ? { ...r, embedding: '[1, "x"]' } : { ...r, embedding: rows[0]!.embedding }),
        )
        .join('\n'),
    );
    err = await run({ input, harmful: [input], anchor: [], embedder: new PrecomputedEmbedder({ field: 'embedding' }) });
    expect(err!.message).toMatch(/f\.jsonl:6: "embedding"\[1\] is "x", not a finite number/);

    expect(() => new PrecomputedEmbedder({})).toThrow(/exactly one source/);
    await expect(createEmbedder({ kind: 'openai', vectorsField: 'e' })).rejects.toThrow(
      /--vectors-field applies to --embedder precomputed/,
    );
  });
});
