// Reliability, part 1: a corpus of bad inputs through the real `sot purify`
// CLI (a child process) and through the numeric API. Every bad input must
// give a clear error (file, line or index, what is wrong), the documented
// exit code and no output at all, not even a temporary file; the inputs that
// look odd but are valid (BOM, CRLF, duplicated ids, a 100 MB line, references
// larger than the dataset) must work. Small hand-made inputs live in
// __test__/fixtures/bad/, large ones are generated in a temp dir.
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  createWriteStream,
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { AbortError, OptionError, ShapeError, SotError } from '../src/errors.js';
import { learnWeights } from '../src/learner.js';
import { costMatrix, sinkhorn, sinkhornDivergence } from '../src/ot.js';
import { selectTopK } from '../src/selection.js';
import { purify } from '../src/pipeline/purify.js';
import { embedFile } from '../src/pipeline/embed-file.js';
import { fit } from '../src/fit/fit.js';
import { score } from '../src/fit/score.js';
import type { Embedder } from '../src/embed/types.js';
import { CLI, DATA_DIR, ROOT } from './datasets.js';

const FIX = join(ROOT, '__test__', 'fixtures', 'bad');
const HARMFUL = join(FIX, 'harmful.jsonl');
const scratch = mkdtempSync(join(tmpdir(), 'sot-rel-in-'));
const CACHE = join(scratch, 'cache');
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

const env = (): NodeJS.ProcessEnv => ({
  ...process.env,
  SOT_DATA_DIR: DATA_DIR,
  SOT_CACHE_DIR: CACHE,
  SOT_OFFLINE: '1',
});

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
  json: {
    ok: boolean;
    n?: number;
    k?: number;
    outputs?: Record<string, string>;
    error?: { code: string; message: string; file?: string; line?: number; field?: string };
  };
  /** Everything in the output folder afterwards (also temp files). */
  left: string[];
  outDir: string;
}

let runs = 0;
/** `sot purify <input> --json` with every output in a fresh folder. */
function purifyCli(input: string, args: string[] = ['--harmful', HARMFUL], timeout = 120_000): Run {
  const outDir = join(scratch, `out-${++runs}`);
  spawnSync('mkdir', ['-p', outDir]);
  const ext = input.endsWith('.csv') ? 'csv' : input.endsWith('.json') ? 'json' : 'jsonl';
  const r = spawnSync(process.execPath, [CLI, 'purify', input, ...args, '-o', join(outDir, `out.${ext}`), '--json'], {
    env: env(),
    encoding: 'utf8',
    timeout,
    maxBuffer: 1 << 26,
  });
  return {
    code: r.status,
    stdout: r.stdout,
    stderr: r.stderr,
    json: JSON.parse(r.stdout || '{}'),
    left: readdirSync(outDir),
    outDir,
  };
}

const fixtureListing = () => readdirSync(FIX).sort();
const before = fixtureListing();
afterAll(() => expect(fixtureListing()).toEqual(before)); // nothing ever written next to an input

const sha = (b: string | Buffer) => createHash('sha256').update(b).digest('hex');

describe('bad input files through `sot purify`: clear error, exit 3, nothing written', () => {
  // [fixture, line, message pattern, field]
  const cases: Array<[string, number | undefined, RegExp, string?]> = [
    ['truncated.jsonl', 5, /truncated\.jsonl:5: invalid JSON: Unterminated string at column 41/],
    ['invalid-utf8.jsonl', 3, /invalid-utf8\.jsonl:3: line is not valid UTF-8 .*Caf\uFFFD au lait/],
    ['empty.jsonl', undefined, /empty\.jsonl: the dataset has no records/],
    ['blank.jsonl', undefined, /blank\.jsonl: the dataset has no records/],
    ['header-only.csv', undefined, /header-only\.csv: the dataset has no records/],
    ['missing-field.jsonl', 3, /missing-field\.jsonl:3: missing field "prompt"/, 'prompt'],
    ['mistyped-field.jsonl', 3, /mistyped-field\.jsonl:3: field "prompt" is an array, expected a string/, 'prompt'],
    ['mixed-formats.jsonl', 3, /mixed-formats\.jsonl:3: .*looks like messages .*mixed record formats/, 'prompt'],
    ['not-an-object.jsonl', 2, /not-an-object\.jsonl:2: expected a JSON object, found a string/],
    ['no-words.jsonl', 3, /no-words\.jsonl:3: record has no words/],
    ['ragged.csv', 3, /ragged\.csv:3: row has 3 fields but the header has 2/],
    ['unclosed-quote.csv', 3, /unclosed-quote\.csv:3: quoted field opened on line 3 is never closed/],
    ['truncated.json', 5, /truncated\.json:5: invalid JSON: Expected ',' or ']'/],
  ];
  it.each(cases)('%s', (name, line, pattern, field) => {
    const r = purifyCli(join(FIX, name));
    expect(r.code).toBe(3);
    expect(r.json.ok).toBe(false);
    expect(r.json.error).toMatchObject({ code: 'ERR_INPUT', file: join(FIX, name) });
    expect(r.json.error!.line).toBe(line);
    expect(r.json.error!.field).toBe(field);
    expect(r.json.error!.message).toMatch(pattern);
    expect(r.left).toEqual([]);
  });

  it('a bad line in a harmful reference file names that file and line', () => {
    const r = purifyCli(join(FIX, 'good.jsonl'), ['--harmful', join(FIX, 'harmful-truncated.jsonl')]);
    expect(r.code).toBe(3);
    expect(r.json.error).toMatchObject({ code: 'ERR_INPUT', file: join(FIX, 'harmful-truncated.jsonl'), line: 2 });
    expect(r.left).toEqual([]);
  });

  it('without --json the message goes to stderr as `sot: file:line: what`', () => {
    const r = spawnSync(
      process.execPath,
      [CLI, 'purify', join(FIX, 'truncated.jsonl'), '--harmful', HARMFUL, '-o', join(scratch, 'never.jsonl')],
      { env: env(), encoding: 'utf8' },
    );
    expect(r.status).toBe(3);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(/^sot: .*truncated\.jsonl:5: invalid JSON: /);
    expect(existsSync(join(scratch, 'never.jsonl'))).toBe(false);
  });
});

describe('odd but valid inputs work', () => {
  it('a UTF-8 BOM and CRLF line ends (JSONL): read, records kept byte for byte; written with LF line ends and no BOM', () => {
    const r = purifyCli(join(FIX, 'bom-crlf.jsonl'), ['--harmful', HARMFUL, '--keep', '1']);
    expect(r.code).toBe(0);
    expect(r.json).toMatchObject({ ok: true, n: 5, k: 5 });
    const input = readFileSync(join(FIX, 'bom-crlf.jsonl'), 'utf8').replace(/^\uFEFF/, '');
    const want = input.split('\r\n').filter((l) => l !== '');
    const out = readFileSync(r.json.outputs!.dataset!, 'utf8');
    expect(out).not.toMatch(/\r|^\uFEFF/);
    const got = out.split('\n').filter((l) => l !== '');
    expect(got.map((l) => l.replace(/,"sot_weight":[^}]*}$/, '}'))).toEqual(want);
  });

  it('a UTF-8 BOM and CRLF line ends (CSV, with a quoted multi-line cell)', () => {
    const r = purifyCli(join(FIX, 'bom-crlf.csv'), ['--harmful', HARMFUL, '--keep', '1']);
    expect(r.code).toBe(0);
    expect(r.json).toMatchObject({ ok: true, n: 5, k: 5 });
    const out = readFileSync(r.json.outputs!.dataset!, 'utf8');
    expect(out.startsWith('id,prompt,response,sot_weight\r\n')).toBe(true);
    expect(out).toContain('"Red leaves drift\r\nand fall."');
  });

  it('duplicated ids (and duplicated records) are fine: SOT does not interpret ids; equal records get equal scores', () => {
    const r = purifyCli(join(FIX, 'duplicate-ids.jsonl'));
    expect(r.code).toBe(0);
    expect(r.json).toMatchObject({ ok: true, n: 5, k: 4 });
    const rows = readFileSync(r.json.outputs!.scores!, 'utf8')
      .trim()
      .split('\n')
      .slice(1)
      .map((l) => l.split(','));
    expect(rows).toHaveLength(5);
    expect(rows[0]![2]).toBe(rows[1]![2]); // lines 1 and 2 are the same record
    expect(rows[2]![2]).toBe(rows[3]![2]);
  });

  it('references far larger than the dataset (5 records vs 520 + 400 harmful, 406 anchor)', () => {
    const r = purifyCli(join(FIX, 'good.jsonl'), ['--harmful', 'advbench,harmbench', '--anchor', 'safe-refusals']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.json).toMatchObject({ ok: true, n: 5, k: 4 });
  });
});

describe('K = 0 and K > n', () => {
  it.each([
    [['--keep-count', '0'], /keep must be between 1 and the 5 samples, got 0/],
    [['--keep-count', '6'], /keep must be between 1 and the 5 samples, got 6/],
    [['--keep', '0'], /keep fraction must lie in \(0, 1\], got 0/],
  ])('%j is a clear usage error (exit 2) before anything is embedded, nothing written', (extra, pattern) => {
    const cache = mkdtempSync(join(scratch, 'k-cache-'));
    const r = purifyCli(join(FIX, 'good.jsonl'), ['--harmful', HARMFUL, ...extra, '--cache-dir', cache]);
    expect(r.code).toBe(2);
    expect(r.json.error).toMatchObject({ code: 'ERR_OPTION' });
    expect(r.json.error!.message).toMatch(pattern);
    expect(r.left).toEqual([]);
    expect(readdirSync(cache)).toEqual([]); // the count was checked as soon as n was known
  });

  it('sot score --keep-count 0 is the same usage error (only --threshold may keep nothing); a missing folder is found first', () => {
    const dir = mkdtempSync(join(scratch, 'score-k0-'));
    const model = join(dir, 'm.sot-model');
    const sot = (args: string[]) =>
      spawnSync(process.execPath, [CLI, ...args, '--json'], { env: env(), encoding: 'utf8' });
    expect(sot(['fit', join(FIX, 'good.jsonl'), '--harmful', HARMFUL, '--model-file', model]).status).toBe(0);
    const r = sot([
      'score',
      join(FIX, 'good.jsonl'),
      '--model-file',
      model,
      '--keep-count',
      '0',
      '--scores',
      join(dir, 's.csv'),
      '-o',
      join(dir, 'o.jsonl'),
    ]);
    expect(r.status).toBe(2);
    expect(JSON.parse(r.stdout).error).toMatchObject({ code: 'ERR_OPTION', message: expect.stringMatching(/keep/) });
    expect(readdirSync(dir)).toEqual(['m.sot-model']);
    const t = sot([
      'score',
      join(FIX, 'good.jsonl'),
      '--model-file',
      model,
      '--threshold',
      '1e9',
      '--scores',
      join(dir, 's.csv'),
      '-o',
      join(dir, 'o.jsonl'),
    ]);
    expect(t.status).toBe(0);
    expect(readFileSync(join(dir, 'o.jsonl'), 'utf8')).toBe('');
    const nodir = sot(['score', join(FIX, 'good.jsonl'), '--model-file', model, '--scores', join(dir, 'no', 's.csv')]);
    expect(nodir.status).toBe(4);
    expect(JSON.parse(nodir.stdout).error.message).toMatch(/the folder .*no does not exist/);
  });

  it.each([[['--keep-count', '-1']], [['--keep-count', '1.5']], [['--keep', '1.5']], [['--keep', 'x']]])(
    '%j is rejected by the parser (exit 2)',
    (extra) => {
      const r = spawnSync(
        process.execPath,
        [CLI, 'purify', join(FIX, 'good.jsonl'), '--harmful', HARMFUL, ...extra, '-o', join(scratch, 'never.jsonl')],
        { env: env(), encoding: 'utf8' },
      );
      expect(r.status).toBe(2);
      expect(r.stderr).toMatch(/--keep(-count)? must be/);
      expect(existsSync(join(scratch, 'never.jsonl'))).toBe(false);
    },
  );
});

/** Writes 4 small records and one with a `size`-byte field, streaming (the test process never holds it). */
async function bigLineFile(
  path: string,
  size: number,
  opts: { field: 'blob' | 'response'; truncate?: boolean },
): Promise<{ bigLine: number; bigSha: string }> {
  const out = createWriteStream(path);
  const write = (s: string) =>
    new Promise<void>((res, rej) => (out.write(s) ? res() : out.once('drain', res), out.once('error', rej)));
  const small = readFileSync(join(FIX, 'good.jsonl'), 'utf8').trim().split('\n');
  await write(`${small.slice(0, 2).join('\n')}\n`);
  const hash = createHash('sha256');
  const head =
    opts.field === 'blob'
      ? '{"id":9,"prompt":"Describe this attachment.","response":"It is a long log file.","blob":"'
      : '{"id":9,"prompt":"Repeat the words.","response":"';
  hash.update(head);
  await write(head);
  const words = ['alpha', 'beta', 'gamma', 'delta', 'epsilon', 'zeta', 'theta', 'kappa'];
  const piece = `${Array.from({ length: 8192 }, (_, i) => `${words[i % 8]}${i % 97}`).join(' ')} `;
  for (let n = 0; n < size; n += piece.length) {
    hash.update(piece);
    await write(piece);
  }
  const tail = opts.truncate ? '' : '"}';
  hash.update(tail);
  await write(`${tail}\n${small.slice(2).join('\n')}\n`);
  await new Promise<void>((res) => out.end(res));
  return { bigLine: 3, bigSha: hash.digest('hex') };
}

/** Runs the CLI under /usr/bin/time when there is one, for the peak RSS. */
function timedPurify(
  input: string,
  args: string[],
): Promise<{ code: number | null; stdout: string; stderr: string; seconds: number; rssMB?: number }> {
  const time = existsSync('/usr/bin/time');
  const argv = [CLI, 'purify', input, ...args, '--json'];
  const t0 = performance.now();
  const child = time
    ? spawn('/usr/bin/time', ['-f', 'MAXRSS_KB=%M', process.execPath, ...argv], { env: env() })
    : spawn(process.execPath, argv, { env: env() });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => (stdout += d));
  child.stderr.on('data', (d) => (stderr += d));
  return new Promise((res) =>
    child.on('close', (code) => {
      const m = /MAXRSS_KB=(\d+)/.exec(stderr);
      res({
        code,
        stdout,
        stderr: stderr.replace(/MAXRSS_KB=\d+\n?/, ''),
        seconds: (performance.now() - t0) / 1000,
        rssMB: m ? Number(m[1]) / 1024 : undefined,
      });
    }),
  );
}

describe('a single 100 MB line', () => {
  const MB100 = 100 * 1024 * 1024;

  it('in a field that is not embedded: read, purified and copied byte for byte (bounded time and memory)', async () => {
    const path = join(scratch, 'big-blob.jsonl');
    const { bigSha } = await bigLineFile(path, MB100, { field: 'blob' });
    const out = join(scratch, 'big-blob.out.jsonl');
    const r = await timedPurify(path, [
      '--harmful',
      HARMFUL,
      '--keep',
      '1',
      '--no-weight-field',
      '--no-html',
      '-o',
      out,
    ]);
    console.log(
      `100 MB line (not embedded): exit ${r.code} in ${r.seconds.toFixed(1)} s, peak RSS ${r.rssMB?.toFixed(0) ?? '?'} MB`,
    );
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ ok: true, n: 6, k: 6 });
    // Kept records are copied unchanged (no weight field): the output is the input.
    expect(statSync(out).size).toBe(statSync(path).size);
    const bigOut = readFileSync(out, 'utf8').split('\n')[2]!;
    expect(sha(bigOut)).toBe(bigSha);
    expect(r.seconds).toBeLessThan(60);
    if (r.rssMB !== undefined) expect(r.rssMB).toBeLessThan(2048);
    rmSync(path);
    rmSync(out);
  }, 180_000);

  it('truncated: a clear error naming the line and the column, exit 3, nothing written', async () => {
    const path = join(scratch, 'big-truncated.jsonl');
    await bigLineFile(path, MB100, { field: 'response', truncate: true });
    const outDir = mkdtempSync(join(scratch, 'big-out-'));
    const r = await timedPurify(path, ['--harmful', HARMFUL, '-o', join(outDir, 'o.jsonl')]);
    console.log(
      `100 MB truncated line: exit ${r.code} in ${r.seconds.toFixed(1)} s, peak RSS ${r.rssMB?.toFixed(0) ?? '?'} MB`,
    );
    expect(r.code).toBe(3);
    const e = JSON.parse(r.stdout).error;
    expect(e).toMatchObject({ code: 'ERR_INPUT', line: 3 });
    expect(e.message).toMatch(
      new RegExp(
        `^${basename(path).replace('.', '\\.')}|big-truncated\\.jsonl:3: invalid JSON: Unterminated string at column \\d{9}`,
      ),
    );
    expect(e.message.length).toBeLessThan(400); // an excerpt, not the line
    expect(readdirSync(outDir)).toEqual([]);
    expect(r.seconds).toBeLessThan(60);
    rmSync(path);
  }, 180_000);

  // A 100 MB text that is embedded: ~11 s and ~1.4 GB peak RSS on two shared cores
  // (the built-in embedder reads its first 400 characters; reading, hashing and the
  // report take the rest; ~77 s and 3.5 GB before it did). Correct, but heavy for every
  // CI run: SOT_RELIABILITY_LONG=1 runs it.
  it.runIf(process.env.SOT_RELIABILITY_LONG === '1')(
    'embedded (the response): correct, no hang',
    async () => {
      const path = join(scratch, 'big-text.jsonl');
      await bigLineFile(path, MB100, { field: 'response' });
      const r = await timedPurify(path, ['--harmful', HARMFUL, '--no-html', '-o', join(scratch, 'big-text.out.jsonl')]);
      console.log(
        `100 MB embedded line: exit ${r.code} in ${r.seconds.toFixed(1)} s, peak RSS ${r.rssMB?.toFixed(0) ?? '?'} MB`,
      );
      expect(r.code).toBe(0);
      expect(JSON.parse(r.stdout)).toMatchObject({ ok: true, n: 6, k: 5 });
      rmSync(path);
    },
    600_000,
  );
});

// ---------------------------------------------------------------- vectors

type M = { data: Float32Array; rows: number; cols: number };
function rand(rows: number, cols: number, seed: number): M {
  let s = seed;
  const data = new Float32Array(rows * cols).map(
    () => (s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32 - 0.5,
  );
  return { data, rows, cols };
}
const sets = () => ({ downstream: rand(30, 8, 1), anchor: rand(6, 8, 2), harmful: rand(6, 8, 3) });

async function rejection(p: Promise<unknown>): Promise<SotError> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(SotError);
    return err as SotError;
  }
  throw new Error('resolved, expected a rejection');
}

describe('arguments of the wrong kind: ERR_OPTION naming the argument, never a TypeError', () => {
  const x = [
    [1, 0],
    [0, 1],
  ];
  const y = [
    [1, 2],
    [2, 1],
  ];
  it.each([
    ['sinkhorn(null)', () => sinkhorn(null as never), /problem must be an object, got null/],
    ['a null matrix', () => sinkhorn({ x: null as never, y }), /x must be a matrix .* got null/],
    ['null options', () => sinkhorn({ x, y }, null as never), /options must be an object, got null/],
    [
      'a signal that is no AbortSignal',
      () => sinkhorn({ x, y }, { signal: {} as never }),
      /signal must be an AbortSignal/,
    ],
    [
      'warmStart of arrays',
      () => sinkhorn({ x, y }, { warmStart: { f: [0, 0] as never } }),
      /warmStart\.f must be a Float64Array/,
    ],
    [
      'a weights object of 2^32 + 1',
      () => sinkhorn({ x, y, a: { length: 2 ** 32 + 1 } as never }),
      /a must be an array of numbers/,
    ],
    ['costMatrix(null, y)', () => costMatrix(null as never, y), /x must be a matrix/],
    ['learnWeights(null)', () => learnWeights(null as never), /sets must be an object, got null/],
    ['learnWeights(sets, null)', () => learnWeights(sets(), null as never), /options must be an object, got null/],
    [
      'selectTopK keep "all"',
      () => selectTopK(new Float64Array([1, 2]), 'all' as never),
      /keep must be \{ count \} or \{ fraction \}, got all/,
    ],
  ])('%s', async (_, call, message) => {
    const e = await rejection(call());
    expect(e).toBeInstanceOf(OptionError);
    expect(e.message).toMatch(message);
  });
});

describe('bad vectors through the numeric API', () => {
  it.each([
    ['NaN', NaN, 'ERR_NON_FINITE', /harmful\[4\]\[5\] is NaN/],
    ['+Inf', Infinity, 'ERR_NON_FINITE', /harmful\[4\]\[5\] is inf/],
    ['-Inf', -Infinity, 'ERR_NON_FINITE', /harmful\[4\]\[5\] is -inf/],
  ])('learnWeights: %s in a vector is located (set, row, column)', async (_, v, code, pattern) => {
    const s = sets();
    s.harmful.data[4 * 8 + 5] = v;
    const e = await rejection(learnWeights(s));
    expect(e.code).toBe(code);
    expect(e.index).toBe(4);
    expect(e.message).toMatch(pattern);
  });

  it('learnWeights: a zero-norm vector under the cosine cost is ERR_ZERO_NORM with its row; fine under sqeuclidean', async () => {
    const s = sets();
    s.downstream.data.fill(0, 7 * 8, 8 * 8);
    const e = await rejection(learnWeights(s));
    expect(e.code).toBe('ERR_ZERO_NORM');
    expect(e.index).toBe(7);
    expect(e.message).toMatch(/downstream\[7\] is the zero vector/);
    const r = await learnWeights(s, { cost: 'sqeuclidean' });
    expect(r.weights.every((w) => Number.isFinite(w) && w > 0)).toBe(true);
  });

  it('learnWeights: a dimension mismatch names both sets', async () => {
    const s = sets();
    const e = await rejection(learnWeights({ ...s, anchor: rand(6, 7, 4) }));
    expect(e).toBeInstanceOf(ShapeError);
    expect(e.message).toMatch(/downstream has dimension 8 but anchor has dimension 7/);
  });

  it('huge but finite values: fine under the cosine cost (scale-free), refused under sqeuclidean before they overflow', async () => {
    for (const v of [1e30, 3.4e38, 1e-38, 1e-44]) {
      const s = sets();
      for (let j = 0; j < 8; j++) s.downstream.data[3 * 8 + j] = j % 2 ? v : -v;
      const r = await learnWeights(s);
      expect(r.weights.every((w) => Number.isFinite(w) && w > 0)).toBe(true);
      expect(Math.abs(r.weights.reduce((a, b) => a + b, 0) - 1)).toBeLessThan(1e-9);
    }
    const s = sets();
    s.downstream.data[3 * 8 + 1] = 1e38;
    // Before the fix the costs became inf (or 0 when the f32 dot product overflowed) and
    // sinkhorn failed with a misleading ERR_NUMERIC.
    const e = await rejection(sinkhorn({ x: s.downstream, y: s.harmful, cost: 'sqeuclidean' }));
    expect(e.code).toBe('ERR_NON_FINITE');
    expect(e.index).toBe(3);
    expect(e.message).toMatch(
      /x\[3\] has squared norm 1.00e76, too large for the squared Euclidean cost in f32 \(at most 8.51e37/,
    );
    expect((await rejection(costMatrix(s.downstream, s.harmful, { cost: 'sqeuclidean' }))).code).toBe('ERR_NON_FINITE');
    expect((await rejection(learnWeights(s, { cost: 'sqeuclidean' }))).message).toMatch(
      /^downstream\[3\] has squared norm/,
    );
    const ok = sets();
    ok.downstream.data[3 * 8 + 1] = 1e18; // squared norm 1e36: fits
    const c = await costMatrix(ok.downstream, ok.harmful, { cost: 'sqeuclidean' });
    expect(c.data.every(Number.isFinite)).toBe(true);
  });

  it('sinkhorn and sinkhornDivergence: NaN, zero-norm and mismatched inputs are typed errors with an index', async () => {
    const x = rand(5, 4, 9);
    x.data[2 * 4 + 3] = NaN;
    expect((await rejection(sinkhorn({ x, y: rand(3, 4, 8) }))).index).toBe(2);
    expect((await rejection(sinkhornDivergence({ x: rand(5, 4, 9), y: rand(3, 5, 8) }))).code).toBe('ERR_SHAPE');
    const z = rand(5, 4, 9);
    z.data.fill(0, 0, 4);
    expect((await rejection(sinkhornDivergence({ x: rand(5, 4, 9), y: z }))).message).toMatch(
      /y\[0\] is the zero vector/,
    );
    expect(
      (await rejection(sinkhorn({ cost: { data: new Float32Array([0, Infinity, 1, 2]), rows: 2, cols: 2 } }))).message,
    ).toMatch(/cost\[0\]\[1\] is inf/);
    expect((await rejection(sinkhorn({ x: [[1, 2], [3]], y: [[1, 2]] }))).message).toMatch(
      /x\[1\] has 1 values but x\[0\] has 2/,
    );
  });
});

describe('bad vectors from an embedder through purify()', () => {
  /** An embedder that returns what `make` says, to inject faults. */
  const fake = (make: (texts: string[], dim: number) => Float32Array, dim = 8): Embedder => ({
    id: `fake-${Math.random()}`,
    dim,
    embed: async (texts) => make(texts, dim),
  });
  const good = (texts: string[], dim: number) => {
    const v = new Float32Array(texts.length * dim);
    texts.forEach((t, i) => {
      for (let j = 0; j < dim; j++)
        v[i * dim + j] = Math.sin(t.length * (j + 1) + i * 0.1) + 0.01 * t.charCodeAt(j % t.length);
    });
    return v;
  };
  const run = async (embedder: Embedder, cache: boolean) => {
    const dir = mkdtempSync(join(scratch, 'api-'));
    const out = join(dir, 'o.jsonl');
    try {
      await purify({
        input: join(FIX, 'good.jsonl'),
        harmful: [HARMFUL],
        output: out,
        embedder,
        embeddingCache: cache ? join(dir, 'cache') : false,
      });
      return { err: undefined, left: readdirSync(dir) };
    } catch (err) {
      return { err: err as SotError, left: readdirSync(dir).filter((f) => f !== 'cache') };
    }
  };

  it.each([true, false])(
    'NaN, zero, wrong-length vectors are clear errors, nothing written (cache %s)',
    async (cache) => {
      let r = await run(
        fake((t, d) => good(t, d).map((v, i) => (i === 2 * d + 1 ? NaN : v))),
        cache,
      );
      expect(r.err?.code).toBe('ERR_NON_FINITE');
      expect(r.err?.message).toMatch(/downstream\[2\]\[1\] is NaN/);
      expect(r.left).toEqual([]);
      r = await run(
        fake((t, d) => good(t, d).map((v, i) => (Math.floor(i / d) === 1 ? 0 : v))),
        cache,
      );
      expect(r.err?.code).toBe('ERR_ZERO_NORM');
      expect(r.left).toEqual([]);
      for (const delta of [-1, +1]) {
        r = await run(
          fake((t, d) => new Float32Array((t.length + delta) * d).fill(0.5)),
          cache,
        );
        expect(r.err).toBeInstanceOf(ShapeError);
        expect(r.err?.message).toMatch(/embedder "fake-.*" returned \d+ values for 5 texts of dimension 8/);
        expect(r.left).toEqual([]);
      }
      for (const [answer, named] of [
        [(t: string[], d: number) => Array.from(good(t, d)), 'an Array'],
        [(t: string[], d: number) => Float64Array.from(good(t, d)), 'a Float64Array'],
        [() => 'vectors', 'a string'],
        [() => null, 'null'],
      ] as const) {
        r = await run({ id: 'typed', dim: 8, embed: async (t: string[]) => answer(t, 8) as never }, cache);
        expect(r.err).toBeInstanceOf(OptionError);
        expect(r.err?.message).toBe(`embedder "typed" returned ${named}, not a Float32Array`);
        expect(r.left).toEqual([]);
      }
    },
  );

  it('a dim or preferredBatch that is no positive integer is an OptionError naming the embedder, before it is called', async () => {
    let calls = 0;
    const counting = (extra: Partial<Embedder>): Embedder => ({
      id: 'odd',
      dim: 8,
      embed: async (t) => {
        calls++;
        return good(t, 8);
      },
      ...extra,
    });
    for (const [extra, message] of [
      [{ dim: 0 }, /embedder "odd": dim must be an integer from 1 to 1048576, got 0/],
      [{ dim: 2.5 }, /dim must be an integer .* got 2\.5/],
      [{ dim: '8' as never }, /dim must be an integer .* got 8/],
      [{ dim: -1 }, /got -1/],
      [{ preferredBatch: Number.NaN }, /embedder "odd": preferredBatch must be a positive integer, got NaN/],
      [{ preferredBatch: 0 }, /preferredBatch must be a positive integer, got 0/],
    ] as const) {
      for (const cache of [true, false]) {
        const r = await run(counting(extra), cache);
        expect(r.err, JSON.stringify(extra)).toBeInstanceOf(OptionError);
        expect(r.err?.message).toMatch(message);
        expect(r.left).toEqual([]);
      }
    }
    expect(calls).toBe(0);
  });

  it('an abort stops the run while an embedder that ignores the signal has not answered', async () => {
    const never: Embedder = { id: 'never', dim: 8, embed: () => new Promise<Float32Array>(() => {}) };
    for (const cache of [join(scratch, 'never-cache'), false] as const) {
      const dir = mkdtempSync(join(scratch, 'never-'));
      const controller = new AbortController();
      setTimeout(() => controller.abort(), 200);
      const started = performance.now();
      const err = await purify({
        input: join(FIX, 'good.jsonl'),
        harmful: [HARMFUL],
        output: join(dir, 'o.jsonl'),
        embedder: never,
        embeddingCache: cache,
        signal: controller.signal,
      }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(AbortError);
      expect(performance.now() - started).toBeLessThan(5000);
      expect(readdirSync(dir)).toEqual([]);
    }
  });
});

describe('bad precomputed vectors through `sot purify --vectors-field`', () => {
  const dir = mkdtempSync(join(scratch, 'vectors-'));
  const write = (name: string, vec: (i: number) => unknown) => {
    const path = join(dir, name);
    const rows = Array.from({ length: 6 }, (_, i) =>
      JSON.stringify({ prompt: `question ${i} about cats`, response: `answer ${i}`, vec: vec(i) }),
    );
    writeFileSync(path, `${rows.join('\n')}\n`);
    return path;
  };
  const good = (i: number) => [1 + (i % 3), 2, 3, 4 - (i % 2)];
  const harmful = write('harmful-vectors.jsonl', (i) => [4, 3, 2, 1 + i]);
  const run = (input: string, refs = harmful) => purifyCli(input, ['--harmful', refs, '--vectors-field', 'vec']);

  it.each([
    [
      'overflow.jsonl',
      (i: number) => (i === 3 ? [1e39, 2, 3, 4] : good(i)),
      3,
      'ERR_INPUT',
      /overflow\.jsonl:4: "vec"\[0\] is 1e\+39, not a finite number/,
    ],
    [
      'null.jsonl',
      (i: number) => (i === 3 ? [1, null, 3, 4] : good(i)),
      3,
      'ERR_INPUT',
      /null\.jsonl:4: "vec"\[1\] is null, not a finite number/,
    ],
    [
      'nan-string.jsonl',
      (i: number) => (i === 3 ? '[NaN,2,3,4]' : good(i)),
      3,
      'ERR_INPUT',
      /nan-string\.jsonl:4: "vec" is a string but not a JSON array of numbers/,
    ],
    [
      'empty-vector.jsonl',
      (i: number) => (i === 3 ? [] : good(i)),
      3,
      'ERR_INPUT',
      /empty-vector\.jsonl:4: "vec" must be a non-empty array of numbers/,
    ],
    [
      'zero.jsonl',
      (i: number) => (i === 3 ? [0, 0, 0, 0] : good(i)),
      3,
      'ERR_ZERO_NORM',
      /downstream\[3\] is the zero vector/,
    ],
    [
      'short.jsonl',
      (i: number) => (i === 3 ? [1, 2, 3] : good(i)),
      3,
      'ERR_SHAPE',
      /short\.jsonl:4: embedding dimension mismatch: "vec" has 3 numbers, earlier vectors have 4/,
    ],
  ])('%s: clear error, exit %i, nothing written', (name, vec, code, errCode, pattern) => {
    const r = run(write(name, vec));
    expect(r.code).toBe(code);
    expect(r.json.error!.code).toBe(errCode);
    expect(r.json.error!.message).toMatch(pattern);
    expect(r.left).toEqual([]);
  });

  it('a reference of another dimension is a ShapeError naming it; huge but finite values are fine (cosine)', () => {
    const r = run(
      write('ok.jsonl', good),
      write('harmful-3d.jsonl', () => [1, 2, 3]),
    );
    expect(r.code).toBe(3);
    // (The references are read first, so the dataset is the one named: both dimensions are in the message.)
    expect(r.json.error!.message).toMatch(
      /ok\.jsonl:1: embedding dimension mismatch: "vec" has 4 numbers, earlier vectors have 3/,
    );
    expect(r.left).toEqual([]);
    const big = run(write('huge.jsonl', (i) => (i === 3 ? [1e30, 2, 3, 4] : good(i))));
    expect(big.code).toBe(0);
    expect(big.json).toMatchObject({ ok: true, n: 6, k: 5 });
  });
});

describe('unwritable outputs are found before the work', () => {
  it('a missing output folder or an output onto the input: exit 4 before anything is embedded, input intact', () => {
    const cache = mkdtempSync(join(scratch, 'out-cache-'));
    const before = readFileSync(join(FIX, 'good.jsonl'));
    for (const [extra, pattern] of [
      [
        ['-o', join(scratch, 'no-such-folder', 'o.jsonl')],
        /cannot write .*no-such-folder\/o\.jsonl: the folder .*no-such-folder does not exist/,
      ],
      [
        ['-o', join(scratch, 'ok.jsonl'), '--scores', join(scratch, 'missing', 's.csv')],
        /the folder .*missing does not exist/,
      ],
      [['-o', join(FIX, 'good.jsonl')], /refusing to write .*good\.jsonl: it is the input file/],
    ] as const) {
      const r = spawnSync(
        process.execPath,
        [CLI, 'purify', join(FIX, 'good.jsonl'), '--harmful', HARMFUL, '--cache-dir', cache, '--json', ...extra],
        { env: env(), encoding: 'utf8' },
      );
      expect(r.status).toBe(4);
      const e = JSON.parse(r.stdout).error;
      expect(e.code).toBe('ERR_IO');
      expect(e.message).toMatch(pattern);
      expect(readdirSync(cache)).toEqual([]); // failed before the embedding stage
    }
    expect(readFileSync(join(FIX, 'good.jsonl')).equals(before)).toBe(true);
    expect(existsSync(join(scratch, 'ok.jsonl'))).toBe(false);
  });
});

describe('an embedder option that is not an Embedder', () => {
  it.each([
    ['a plain object', { kind: 'builtin', dim: 512 }, /got an object with kind, dim/],
    ['a string', 'builtin', /got "builtin"/],
    ['null', null, /got null/],
  ])('%s: ERR_OPTION naming the option, nothing written (purify, fit, embedFile, score)', async (_, given, got) => {
    const dir = mkdtempSync(join(tmpdir(), 'sot-bad-embedder-'));
    const input = join(FIX, 'good.jsonl');
    const embedder = given as unknown as Embedder;
    const calls = [
      purify({ input, output: join(dir, 'out.jsonl'), harmful: ['advbench'], dataDir: DATA_DIR, embedder }),
      fit({ input, model: join(dir, 'm.sotmodel'), harmful: ['advbench'], dataDir: DATA_DIR, embedder }),
      embedFile({ input, output: join(dir, 'e.npy'), embedder }),
      score({
        input,
        model: join(dir, 'none.sotmodel'),
        output: join(dir, 's.jsonl'),
        keep: { fraction: 0.8 },
        embedder,
      }),
    ];
    for (const call of calls) {
      const e = await rejection(call);
      expect(e.code).toBe('ERR_OPTION');
      expect(e.message).toMatch(/^embedder must be an Embedder \(from createEmbedder\(\) or new HashingEmbedder\(\)\)/);
      expect(e.message).toMatch(got);
    }
    expect(readdirSync(dir)).toEqual([]);
  });
});
