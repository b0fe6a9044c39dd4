// The on-disk embedding cache: round trips, misses-only embedding, concurrent
// writer processes, a writer killed mid-run, damaged chunks and temp files.
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readdir, readFile, rm, stat, truncate, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import ts from 'typescript';
import { afterAll, beforeAll, describe, expect, test, vi } from 'vitest';
import { EmbeddingCache, embedWithCache, hashText, hashTexts } from '../src/embed/cache.js';
import type { Embedder } from '../src/embed/types.js';
import { IoError, OptionError, ShapeError } from '../src/errors.js';

const DIM = 8;

/** The reference vector of a text: a deterministic function of its bytes. */
function vectorOf(text: string, dim = DIM): Float32Array {
  const d = createHash('sha256').update(`vec:${text}`).digest();
  return Float32Array.from({ length: dim }, (_, j) => (d[j % 32]! - 127.5) / 64 + j);
}

/** A deterministic stand-in for a slow embedding provider, counting what it is asked. */
class CountingEmbedder implements Embedder {
  calls = 0;
  texts: string[] = [];
  constructor(
    readonly id = 'test-embedder/v1',
    readonly dim = DIM,
  ) {}
  async embed(texts: string[]): Promise<Float32Array> {
    this.calls++;
    this.texts.push(...texts);
    const out = new Float32Array(texts.length * this.dim);
    texts.forEach((t, i) => out.set(vectorOf(t, this.dim), i * this.dim));
    return out;
  }
}

function expected(texts: string[]): Float32Array {
  const out = new Float32Array(texts.length * DIM);
  texts.forEach((t, i) => out.set(vectorOf(t), i * DIM));
  return out;
}

/** Bitwise equality of two float arrays (vitest's deep equality is slow on large typed arrays). */
function sameFloats(a: Float32Array, b: Float32Array): boolean {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));
}

const textsOf = (from: number, to: number) => Array.from({ length: to - from }, (_, k) => `text number ${from + k}`);

let scratch: string;
beforeAll(async () => {
  scratch = await mkdtemp(join(tmpdir(), 'sot-embcache-'));
});
afterAll(async () => {
  await rm(scratch, { recursive: true, force: true });
});
const freshRoot = () => mkdtemp(join(scratch, 'root-'));

async function chunkFiles(cache: EmbeddingCache): Promise<string[]> {
  return (await readdir(cache.dir)).filter((n) => n.endsWith('.chunk')).sort();
}

/** Captures SotCacheWarning messages emitted while `fn` runs. */
async function warningsDuring<T>(fn: () => Promise<T>): Promise<{ result: T; warnings: string[] }> {
  const warnings: string[] = [];
  const spy = vi.spyOn(process, 'emitWarning').mockImplementation(((msg: string | Error) => {
    warnings.push(String(msg));
  }) as typeof process.emitWarning);
  try {
    return { result: await fn(), warnings };
  } finally {
    spy.mockRestore();
  }
}

describe('embedding cache', () => {
  test('round trip: put then get returns the same vectors, bit for bit, in a fresh instance too', async () => {
    const root = await freshRoot();
    const texts = textsOf(0, 300);
    const cache = await EmbeddingCache.open(root, 'test-embedder/v1', DIM);
    await cache.put(hashTexts(texts), expected(texts));
    const again = await EmbeddingCache.open(root, 'test-embedder/v1', DIM);
    const query = [...textsOf(250, 300), 'never stored', ...textsOf(0, 10)];
    const { vectors, missing } = await again.get(query.map(hashText));
    expect(missing).toEqual([50]);
    const want = expected(query);
    want.fill(0, 50 * DIM, 51 * DIM);
    expect(vectors).toEqual(want);
    expect(again.size).toBe(300);
    const meta = JSON.parse(await readFile(join(again.dir, 'meta.json'), 'utf8'));
    expect(meta).toMatchObject({ embedderId: 'test-embedder/v1', dim: DIM });
  });

  test('embedWithCache embeds only the misses, each distinct text once', async () => {
    const root = await freshRoot();
    const embedder = new CountingEmbedder();
    const cache = await EmbeddingCache.open(root, embedder.id, DIM);
    const first = textsOf(0, 100);
    expect(await embedWithCache(embedder, first, cache, { batchSize: 32 })).toEqual(expected(first));
    expect(embedder.texts).toHaveLength(100);
    expect(embedder.calls).toBe(4);

    embedder.texts = [];
    const second = [...textsOf(50, 150), 'text number 120', 'text number 3'];
    expect(await embedWithCache(embedder, second, cache, { batchSize: 32 })).toEqual(expected(second));
    expect(embedder.texts.sort()).toEqual(textsOf(100, 150).sort());

    // Another process (a fresh instance) embeds nothing at all.
    embedder.texts = [];
    const fresh = await EmbeddingCache.open(root, embedder.id, DIM);
    expect(await embedWithCache(embedder, second, fresh)).toEqual(expected(second));
    expect(embedder.texts).toEqual([]);
  });

  test('different embedder ids never share vectors; a cache and an embedder must agree', async () => {
    const root = await freshRoot();
    const a = new CountingEmbedder('model-a');
    const b = new CountingEmbedder('model-b');
    const ca = await EmbeddingCache.open(root, a.id, DIM);
    const cb = await EmbeddingCache.open(root, b.id, DIM);
    expect(ca.dir).not.toBe(cb.dir);
    await embedWithCache(a, textsOf(0, 10), ca);
    await embedWithCache(b, textsOf(0, 10), cb);
    expect(b.texts).toHaveLength(10);
    await expect(embedWithCache(a, ['x'], cb)).rejects.toBeInstanceOf(OptionError);
  });

  test('a dimension that differs from the cache is an error, never mixed vectors', async () => {
    const root = await freshRoot();
    await (await EmbeddingCache.open(root, 'same-id', DIM)).put(hashTexts(['a']), expected(['a']));
    const err = await EmbeddingCache.open(root, 'same-id', DIM * 2).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ShapeError);
    expect((err as Error).message).toMatch(/dimension mismatch.*holds 8-dimensional.*gives 16/);

    // A chunk of another dimension inside an otherwise matching cache (a tampered or mixed folder).
    const other = await freshRoot();
    const wide = await EmbeddingCache.open(other, 'same-id', DIM * 2);
    await wide.put(hashTexts(['b']), new Float32Array(DIM * 2));
    const narrow = await EmbeddingCache.open(root, 'same-id', DIM);
    const [name] = await chunkFiles(wide);
    await writeFile(join(narrow.dir, name!), await readFile(join(wide.dir, name!)));
    const err2 = await narrow.get([hashText('a')]).catch((e: unknown) => e);
    expect(err2).toBeInstanceOf(ShapeError);
    // embedWithCache does not swallow it either.
    await expect(embedWithCache(new CountingEmbedder('same-id'), ['a'], narrow)).rejects.toBeInstanceOf(ShapeError);
    expect((err2 as Error).message).toMatch(/dimension mismatch.*16-dimensional/);

    await expect(narrow.put(hashTexts(['c']), expected(['c']))).rejects.toBeInstanceOf(ShapeError); // sticky
    const unbroken = await EmbeddingCache.open(other, 'same-id', DIM * 2);
    await expect(unbroken.put(hashTexts(['a', 'b']), new Float32Array(DIM * 2))).rejects.toBeInstanceOf(ShapeError);
  });

  test('a truncated chunk and a corrupted chunk are ignored with a warning, never returned', async () => {
    const root = await freshRoot();
    const writer = await EmbeddingCache.open(root, 'test-embedder/v1', DIM);
    const [a, b, c] = [textsOf(0, 40), textsOf(40, 80), textsOf(80, 120)];
    for (const t of [a, b, c]) await writer.put(hashTexts(t), expected(t));
    const names = await chunkFiles(writer);
    expect(names).toHaveLength(3);
    // Which file holds which batch: chunk names are content hashes.
    const holder = async (text: string) => {
      for (const n of names) if ((await readFile(join(writer.dir, n))).includes(hashText(text))) return n;
      throw new Error('not found');
    };
    const truncated = await holder(a[0]!);
    const flipped = await holder(b[0]!);
    await truncate(join(writer.dir, truncated), (await stat(join(writer.dir, truncated))).size - 7);
    const bytes = await readFile(join(writer.dir, flipped));
    bytes[bytes.length - 100] = bytes[bytes.length - 100]! ^ 0x40; // inside the vectors: only the checksum can tell
    await writeFile(join(writer.dir, flipped), bytes);

    const reader = await EmbeddingCache.open(root, 'test-embedder/v1', DIM);
    const all = [...a, ...b, ...c];
    const { result, warnings } = await warningsDuring(() => reader.get(hashTexts(all)));
    expect(result.missing).toEqual(Array.from({ length: 80 }, (_, i) => i));
    expect(result.vectors.subarray(80 * DIM)).toEqual(expected(c));
    expect(result.vectors.subarray(0, 80 * DIM).every((v) => v === 0)).toBe(true);
    expect(warnings.some((w) => w.includes(truncated) && /truncated/.test(w))).toBe(true);
    expect(warnings.some((w) => w.includes(flipped) && /checksum/.test(w))).toBe(true);

    // embedWithCache re-embeds exactly the lost texts and heals the cache.
    const embedder = new CountingEmbedder();
    const { result: healed } = await warningsDuring(() => embedWithCache(embedder, all, reader));
    expect(healed).toEqual(expected(all));
    expect(embedder.texts.sort()).toEqual([...a, ...b].sort());
    const { result: later } = await warningsDuring(async () =>
      (await EmbeddingCache.open(root, 'test-embedder/v1', DIM)).get(hashTexts(all)),
    );
    expect(later.missing).toEqual([]);
    expect(later.vectors).toEqual(expected(all));
  });

  test('a cache folder that vanished or cannot be written: embedWithCache warns and still returns every vector', async () => {
    const root = await freshRoot();
    const embedder = new CountingEmbedder();
    const cache = await EmbeddingCache.open(root, embedder.id, DIM);
    await rm(cache.dir, { recursive: true });
    await writeFile(cache.dir, 'a file where the folder was');
    const texts = textsOf(0, 50);
    const { result, warnings } = await warningsDuring(() => embedWithCache(embedder, texts, cache));
    expect(result).toEqual(expected(texts));
    expect(warnings.some((w) => /without the cache/.test(w))).toBe(true);
    expect(warnings.some((w) => /without writing the embedding cache/.test(w))).toBe(true);
    await expect(cache.get([hashText('x')])).rejects.toBeInstanceOf(IoError);
  });

  test('temp files of a killed writer are ignored; stale ones are removed', async () => {
    const root = await freshRoot();
    const cache = await EmbeddingCache.open(root, 'test-embedder/v1', DIM);
    const t = textsOf(0, 20);
    await cache.put(hashTexts(t), expected(t));
    const [name] = await chunkFiles(cache);
    const full = await readFile(join(cache.dir, name!));
    // What a writer killed mid-write leaves: a partial copy under a temp name.
    const fresh = join(cache.dir, '.tmp-99999-aaaaaaaaaaaa');
    const stale = join(cache.dir, '.tmp-99998-bbbbbbbbbbbb');
    // ... and under the atomic writer's names, `.<name>.<pid>.<12 hex>.tmp`.
    const fresh2 = join(cache.dir, `.${name}.99999.cccccccccccc.tmp`);
    const stale2 = join(cache.dir, `.${name}.99998.dddddddddddd.tmp`);
    await writeFile(fresh, full.subarray(0, full.length >> 1));
    await writeFile(stale, full.subarray(0, 100));
    await writeFile(fresh2, full.subarray(0, full.length >> 1));
    await writeFile(stale2, full.subarray(0, 100));
    const old = new Date(Date.now() - 2 * 3600 * 1000);
    await utimes(stale, old, old);
    await utimes(stale2, old, old);

    const reader = await EmbeddingCache.open(root, 'test-embedder/v1', DIM);
    const { vectors, missing } = await reader.get(hashTexts([...t, 'other']));
    expect(missing).toEqual([20]);
    expect(vectors.subarray(0, 20 * DIM)).toEqual(expected(t));
    const left = await readdir(cache.dir);
    expect(left).toContain('.tmp-99999-aaaaaaaaaaaa'); // may belong to a live writer
    expect(left).not.toContain('.tmp-99998-bbbbbbbbbbbb');
    expect(left).toContain(`.${name}.99999.cccccccccccc.tmp`);
    expect(left).not.toContain(`.${name}.99998.dddddddddddd.tmp`);
  });

  describe('across processes', () => {
    let script: string;

    beforeAll(async () => {
      // The child processes run the real cache module, transpiled from the sources.
      const out = await mkdtemp(join(scratch, 'child-'));
      await mkdir(join(out, 'embed'), { recursive: true });
      await mkdir(join(out, 'io'), { recursive: true });
      const src = join(import.meta.dirname, '..', 'src');
      const files = [
        'errors.ts',
        'embed/cache.ts',
        'embed/call.ts',
        'embed/cache-chunk.ts',
        'embed/cache-index.ts',
        'io/atomic.ts',
        'io/files.ts',
      ];
      for (const f of files) {
        const js = ts.transpileModule(await readFile(join(src, f), 'utf8'), {
          compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022 },
        }).outputText;
        await writeFile(join(out, f.replace(/\.ts$/, '.js')), js);
      }
      await writeFile(join(out, 'package.json'), '{"type":"module"}');
      script = join(out, 'writer.js');
      await writeFile(
        script,
        `
import { createHash } from 'node:crypto';
import { EmbeddingCache, hashTexts } from './embed/cache.js';
const [root, from, to, batch, loops] = process.argv.slice(2);
const DIM = ${DIM};
// The same function as vectorOf in the test (which checks every value against its own copy).
function vectorOf(text, dim = DIM) {
  const d = createHash('sha256').update('vec:' + text).digest();
  return Float32Array.from({ length: dim }, (_, j) => (d[j % 32] - 127.5) / 64 + j);
}
const started = Date.now();
const cache = await EmbeddingCache.open(root, 'test-embedder/v1', DIM);
for (let loop = 0; loop < Number(loops); loop++) {
  for (let s = Number(from); s < Number(to); s += Number(batch)) {
    const texts = [];
    for (let i = s; i < Math.min(Number(to), s + Number(batch)); i++) texts.push('text number ' + i + (loop ? ' loop ' + loop : ''));
    const v = new Float32Array(texts.length * DIM);
    texts.forEach((t, i) => v.set(vectorOf(t), i * DIM));
    await cache.put(hashTexts(texts), v);
  }
}
process.stdout.write(JSON.stringify({ started, ended: Date.now() }));
`,
      );
    });

    const run = (args: (string | number)[]) =>
      spawn(process.execPath, [script, ...args.map(String)], { stdio: ['ignore', 'pipe', 'pipe'] });
    const exit = (child: ReturnType<typeof run>) =>
      new Promise<{ code: number | null; signal: string | null; err: string; out: string }>((resolve) => {
        let err = '';
        let out = '';
        child.stderr!.on('data', (d: Buffer) => {
          err += d.toString();
        });
        child.stdout!.on('data', (d: Buffer) => {
          out += d.toString();
        });
        child.on('close', (code, signal) => resolve({ code, signal, err, out }));
      });

    test('two processes writing overlapping batches at once: a reader then sees every vector, correct', async () => {
      const root = await freshRoot();
      const a = run([root, 0, 20000, 50, 1]);
      const b = run([root, 10000, 30000, 70, 1]);
      const [ea, eb] = await Promise.all([exit(a), exit(b)]);
      expect(ea).toMatchObject({ code: 0, err: '' });
      expect(eb).toMatchObject({ code: 0, err: '' });
      // They did write at the same time (otherwise this test would prove nothing).
      const [ta, tb] = [JSON.parse(ea.out), JSON.parse(eb.out)];
      expect(ta.started < tb.ended && tb.started < ta.ended).toBe(true);
      const reader = await EmbeddingCache.open(root, 'test-embedder/v1', DIM);
      const all = textsOf(0, 30000);
      const { vectors, missing } = await reader.get(hashTexts(all));
      expect(missing).toEqual([]);
      expect(sameFloats(vectors, expected(all))).toBe(true);
      expect((await readdir(reader.dir)).filter((n) => n.endsWith('.tmp') || n.startsWith('.tmp-'))).toEqual([]);
      expect(await chunkFiles(reader)).toHaveLength(400 + 286);
    });

    test('a writer killed with SIGKILL mid-run leaves only whole chunks: whatever is found is correct', async () => {
      const root = await freshRoot();
      const child = run([root, 0, 2000, 25, 1000]);
      const ended = exit(child);
      // Let it write for a while, then kill it wherever it is.
      for (let i = 0; i < 200; i++) {
        await new Promise((r) => setTimeout(r, 25));
        const dirs = await readdir(root).catch(() => []);
        if (dirs.length > 0 && (await readdir(join(root, dirs[0]!))).filter((n) => n.endsWith('.chunk')).length > 100)
          break;
      }
      child.kill('SIGKILL');
      expect((await ended).signal).toBe('SIGKILL');
      const reader = await EmbeddingCache.open(root, 'test-embedder/v1', DIM);
      const all = [...textsOf(0, 2000), ...Array.from({ length: 2000 }, (_, i) => `text number ${i} loop 1`)];
      const { result, warnings } = await warningsDuring(() => reader.get(hashTexts(all)));
      expect(warnings).toEqual([]);
      const found = all.length - result.missing.length;
      expect(found).toBeGreaterThan(100 * 25);
      const missing = new Set(result.missing);
      all.forEach((t, i) => {
        if (!missing.has(i)) expect(result.vectors.subarray(i * DIM, (i + 1) * DIM)).toEqual(vectorOf(t));
      });
    });
  });
});
