// Outputs that would overwrite other files (issue 16, defect 3): an output
// that is the input, a reference file, precomputed vectors or another output
// (after symlinks, `..` and hard links) is refused before any work, naming
// both paths; a pipe or device is streamed to when it is a command's only
// output, refused by `sot purify` (the null device aside) and never renamed
// over; a weight field that records already have is refused in the counting
// pass, before anything is embedded. `fit`'s model file and `purify --shards
// --save-model` are held to the same checks.
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  copyFileSync,
  existsSync,
  linkSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { fit } from '../src/fit/fit.js';
import { embedFile } from '../src/pipeline/embed-file.js';
import { purify } from '../src/pipeline/purify.js';
import type { PurifyOptions, StageProgress } from '../src/pipeline/options.js';
import { InputError, IoError } from '../src/errors.js';
import { cachedFilePath } from '../src/refsets/fetch.js';
import { referenceSetDefinition } from '../src/refsets/registry.js';
import { alpacaOk, CLI, DATA_DIR, harmfulPairs, writeJsonl } from './datasets.js';

const root = mkdtempSync(join(tmpdir(), 'sot-collide-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

const clean = alpacaOk();
let n = 0;
/** A fresh folder with a 120-record dataset, a harmful and an anchor file; every file's bytes are remembered. */
function setup() {
  const dir = join(root, `case-${n++}`);
  mkdirSync(dir);
  const input = writeJsonl(join(dir, 'train.jsonl'), clean.slice(100, 220));
  const harmful = writeJsonl(join(dir, 'harmful.jsonl'), harmfulPairs().slice(0, 20));
  const anchor = writeJsonl(join(dir, 'anchor.jsonl'), clean.slice(0, 20));
  const before = new Map([input, harmful, anchor].map((p) => [p, readFileSync(p)]));
  const unchanged = () => {
    for (const [p, bytes] of before) expect(readFileSync(p), p).toEqual(bytes);
  };
  return { dir, input, harmful, anchor, unchanged };
}

/** Runs purify and returns the error, with the progress events seen (none: no work was done). */
async function refused(
  o: Omit<PurifyOptions, 'onProgress' | 'embeddingCache'>,
): Promise<{ err: unknown; events: StageProgress[] }> {
  const events: StageProgress[] = [];
  const err = await purify({ ...o, embeddingCache: false, onProgress: (e) => events.push(e) }).then(
    () => undefined,
    (e: unknown) => e,
  );
  return { err, events };
}

const cli = (args: string[], cwd?: string) =>
  spawnSync(process.execPath, [CLI, ...args], {
    cwd,
    encoding: 'utf8',
    timeout: 120_000,
    env: { ...process.env, SOT_OFFLINE: '1' },
  });

describe('purify refuses an output onto a file it reads or another output, before any work', () => {
  it('the harmful or anchor reference file: named directly, through a symlink, through `..`, or hard-linked', async () => {
    const { dir, input, harmful, anchor, unchanged } = setup();
    symlinkSync(anchor, join(dir, 'link-to-anchor.jsonl'));
    linkSync(harmful, join(dir, 'hard-harmful.jsonl'));
    mkdirSync(join(dir, 'sub'));
    const cases: Array<[Partial<PurifyOptions>, RegExp]> = [
      [
        { output: harmful },
        /refusing to write the dataset output .*harmful\.jsonl: it is the harmful reference file .*harmful\.jsonl/,
      ],
      [
        { scores: anchor },
        /refusing to write the scores output .*anchor\.jsonl: it is the anchor reference file .*anchor\.jsonl/,
      ],
      [
        { report: join(dir, 'link-to-anchor.jsonl') },
        /the JSON report .*link-to-anchor\.jsonl: it is the anchor reference file/,
      ],
      [
        { html: `${dir}/sub/../harmful.jsonl` },
        /the HTML report .*sub\/\.\.\/harmful\.jsonl: it is the harmful reference file/,
      ],
      [
        { output: join(dir, 'hard-harmful.jsonl') },
        /hard-harmful\.jsonl: it is the harmful reference file .*harmful\.jsonl/,
      ],
    ];
    for (const [o, message] of cases) {
      const { err, events } = await refused({ input, harmful: [harmful], anchor: [anchor], ...o });
      expect(err).toBeInstanceOf(IoError);
      expect((err as Error).message).toMatch(message);
      expect(events).toEqual([]); // not even the counting pass
    }
    unchanged();
    expect(readdirSync(dir).sort()).toEqual([
      'anchor.jsonl',
      'hard-harmful.jsonl',
      'harmful.jsonl',
      'link-to-anchor.jsonl',
      'sub',
      'train.jsonl',
    ]);
  });

  it("a named set's copy in the data dir or the cache", async () => {
    const { dir, input, unchanged } = setup();
    const advbench = referenceSetDefinition('advbench')!.files[0]!;
    const mirror = join(dir, 'mirror');
    const copy = join(mirror, advbench.path);
    mkdirSync(dirname(copy), { recursive: true });
    copyFileSync(join(DATA_DIR, advbench.path), copy);
    const cached = cachedFilePath(advbench, join(dir, 'cache'));
    mkdirSync(dirname(cached), { recursive: true });
    copyFileSync(copy, cached);
    for (const [o, message] of [
      [
        { removed: copy },
        /refusing to write the removed records .*advbench\.csv: it is the data-dir copy of reference set "advbench"/,
      ],
      [{ scores: cached }, /refusing to write the scores output .*: it is the cached copy of reference set "advbench"/],
    ] as const) {
      const { err, events } = await refused({
        input,
        harmful: ['advbench'],
        dataDir: mirror,
        cacheDir: join(dir, 'cache'),
        ...o,
      });
      expect(err).toBeInstanceOf(IoError);
      expect((err as Error).message).toMatch(message);
      expect(events).toEqual([]);
    }
    for (const p of [copy, cached])
      expect(createHash('sha256').update(readFileSync(p)).digest('hex')).toBe(advbench.sha256);
    unchanged();
  });

  it('two outputs naming the same file (also through a symlink or a hard link)', async () => {
    const { dir, input, harmful, unchanged } = setup();
    const out = join(dir, 'out.jsonl');
    writeFileSync(join(dir, 'r.json'), 'a previous report\n');
    linkSync(join(dir, 'r.json'), join(dir, 'r-hard.html'));
    symlinkSync(join(dir, 'r.json'), join(dir, 'r-link.html'));
    const cases: Array<[Partial<PurifyOptions>, RegExp]> = [
      [
        { output: out, scores: out },
        /refusing to write the scores output .*out\.jsonl: it is also the dataset output .*out\.jsonl/,
      ],
      [{ output: out, report: `${dir}/x/../out.jsonl` }, /the JSON report .*: it is also the dataset output/],
      [
        { report: join(dir, 'r.json'), html: join(dir, 'r.json') },
        /refusing to write the HTML report .*r\.json: it is also the JSON report .*r\.json/,
      ],
      [
        { report: join(dir, 'r.json'), html: join(dir, 'r-hard.html') },
        /the HTML report .*r-hard\.html: it is also the JSON report .*r\.json/,
      ],
      [
        { report: join(dir, 'r.json'), html: join(dir, 'r-link.html') },
        /the HTML report .*r-link\.html: it is also the JSON report/,
      ],
    ];
    for (const [o, message] of cases) {
      const { err, events } = await refused({ input, harmful: [harmful], ...o });
      expect(err).toBeInstanceOf(IoError);
      expect((err as Error).message).toMatch(message);
      expect(events).toEqual([]);
    }
    unchanged();
    expect(readFileSync(join(dir, 'r.json'), 'utf8')).toBe('a previous report\n');
    expect(existsSync(out)).toBe(false);
  });

  it('the CLI: exit 4 naming both paths, nothing written', () => {
    const { dir, unchanged } = setup();
    const a = cli(
      ['purify', 'train.jsonl', '--harmful', 'harmful.jsonl', '--anchor', 'anchor.jsonl', '-o', 'anchor.jsonl', '-q'],
      dir,
    );
    expect(a.status).toBe(4);
    expect(a.stderr).toMatch(
      /refusing to write the dataset output anchor\.jsonl: it is the anchor reference file anchor\.jsonl/,
    );
    const b = cli(
      ['purify', 'train.jsonl', '--harmful', 'harmful.jsonl', '-o', 'o.jsonl', '--scores', 'o.jsonl', '-q'],
      dir,
    );
    expect(b.status).toBe(4);
    expect(b.stderr).toMatch(/refusing to write the scores output o\.jsonl: it is also the dataset output o\.jsonl/);
    const c = cli(
      ['purify', 'train.jsonl', '--harmful', 'harmful.jsonl', '--report', 'r.json', '--html', './r.json', '-q'],
      dir,
    );
    expect(c.status).toBe(4);
    expect(c.stderr).toMatch(/refusing to write the HTML report \.\/r\.json: it is also the JSON report r\.json/);
    unchanged();
    expect(readdirSync(dir).sort()).toEqual(['anchor.jsonl', 'harmful.jsonl', 'train.jsonl']);
  });
});

describe('fit and purify --shards refuse a model file onto a file they read, before any work', () => {
  it('fit: the input, the harmful or anchor file (also through a symlink), or a missing folder; the CLI exits 4', async () => {
    const { dir, input, harmful, anchor, unchanged } = setup();
    symlinkSync(harmful, join(dir, 'link-to-harmful.jsonl'));
    const base = { input, harmful: [harmful], anchor: [anchor], embeddingCache: false as const };
    const cases: Array<[string, RegExp]> = [
      [input, /refusing to write the model file .*train\.jsonl: it is the input file .*train\.jsonl/],
      [harmful, /refusing to write the model file .*harmful\.jsonl: it is the harmful reference file/],
      [join(dir, 'link-to-harmful.jsonl'), /it is the harmful reference file .*harmful\.jsonl/],
      [anchor, /refusing to write the model file .*anchor\.jsonl: it is the anchor reference file/],
      [join(dir, 'no-such-folder', 'm.sot-model'), /the folder .*no-such-folder does not exist/],
    ];
    for (const [model, message] of cases) {
      const events: unknown[] = [];
      const err = await fit({ ...base, model, onProgress: (e) => events.push(e) }).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err, model).toBeInstanceOf(IoError);
      expect((err as Error).message).toMatch(message);
      expect(events).toEqual([]);
    }
    const a = cli(['fit', 'train.jsonl', '--harmful', 'harmful.jsonl', '--model-file', 'train.jsonl', '-q'], dir);
    expect(a.status).toBe(4);
    expect(a.stderr).toMatch(/refusing to write the model file train\.jsonl: it is the input file train\.jsonl/);
    const b = cli(
      ['purify', 'train.jsonl', '--harmful', 'harmful.jsonl', '--shards', '2', '--save-model', 'harmful.jsonl', '-q'],
      dir,
    );
    expect(b.status).toBe(4);
    expect(b.stderr).toMatch(/refusing to write the model output harmful\.jsonl: it is the harmful reference file/);
    unchanged();
    expect(readdirSync(dir).sort()).toEqual(['anchor.jsonl', 'harmful.jsonl', 'link-to-harmful.jsonl', 'train.jsonl']);
  });
});

describe('non-regular outputs', () => {
  it('purify refuses a FIFO output before any work and leaves it a FIFO', async () => {
    const { dir, input, harmful, unchanged } = setup();
    const fifo = join(dir, 'pipe');
    expect(spawnSync('mkfifo', [fifo]).status).toBe(0);
    for (const o of [{ output: fifo }, { scores: fifo }, { html: fifo }]) {
      const { err, events } = await refused({ input, harmful: [harmful], ...o });
      expect(err).toBeInstanceOf(IoError);
      expect((err as Error).message).toMatch(
        /refusing to write the (dataset output|scores output|HTML report) .*pipe: it is not a regular file .*\(or \/dev\/null, to discard it\)/,
      );
      expect(events).toEqual([]);
      expect(statSync(fifo).isFIFO()).toBe(true);
    }
    unchanged();
    expect(readdirSync(dir).filter((f) => f.endsWith('.tmp'))).toEqual([]);
  });

  it('purify discards an output named /dev/null and writes the others; /dev/null stays the null device', async () => {
    const { dir, input, harmful, unchanged } = setup();
    const res = await purify({
      input,
      harmful: [harmful],
      html: '/dev/null',
      scores: '/dev/null',
      embeddingCache: false,
    });
    expect(res.outputs.html).toBe('/dev/null');
    expect(statSync('/dev/null').isCharacterDevice()).toBe(true);
    expect(readFileSync('/dev/null', 'utf8')).toBe('');
    expect(readdirSync(dir).sort()).toEqual([
      'anchor.jsonl',
      'harmful.jsonl',
      'train.jsonl',
      'train.purified.jsonl',
      'train.purified.report.json',
      'train.removed.jsonl',
    ]);
    unchanged();
  });

  it('sot embed streams to a FIFO (its only output) instead of renaming a file over it', async () => {
    const { dir } = setup();
    expect(cli(['embed', 'train.jsonl', '-o', 'file.npy', '-q'], dir).status).toBe(0);
    const fifo = join(dir, 'vectors.fifo');
    expect(spawnSync('mkfifo', [fifo]).status).toBe(0);
    // A reader on the FIFO, as a shell pipeline would have.
    const reader = spawn('cat', [fifo], { stdio: ['ignore', 'pipe', 'ignore'] });
    const got: Buffer[] = [];
    reader.stdout.on('data', (b: Buffer) => got.push(b));
    const done = new Promise<void>((res) => reader.on('close', () => res()));
    const r = await new Promise<{ code: number | null }>((res) => {
      const c = spawn(process.execPath, [CLI, 'embed', 'train.jsonl', '-o', 'vectors.fifo', '-q'], {
        cwd: dir,
        stdio: 'ignore',
      });
      c.on('exit', (code) => res({ code }));
    });
    const fifoAfter = statSync(fifo).isFIFO();
    if (!fifoAfter) reader.kill(); // the old behaviour: a file renamed over the FIFO, the reader left waiting
    await done;
    expect(r.code).toBe(0);
    expect(fifoAfter).toBe(true);
    expect(Buffer.concat(got)).toEqual(readFileSync(join(dir, 'file.npy')));
    expect(readdirSync(dir).filter((f) => f.endsWith('.tmp'))).toEqual([]);
  });

  it('sot embed -o - and sot report -o /dev/stdout write to the pipe, the summary to stderr', () => {
    const { dir } = setup();
    expect(cli(['embed', 'train.jsonl', '-o', 'file.npy', '-q'], dir).status).toBe(0);
    const e = spawnSync(process.execPath, [CLI, 'embed', 'train.jsonl', '-o', '-', '-q'], {
      cwd: dir,
      timeout: 120_000,
    });
    expect(e.status).toBe(0);
    expect(e.stdout).toEqual(readFileSync(join(dir, 'file.npy')));
    expect(e.stderr.toString()).toMatch(/embedded 120 records .* -> \/dev\/stdout/);
    expect(cli(['purify', 'train.jsonl', '--harmful', 'harmful.jsonl', '-q'], dir).status).toBe(0);
    expect(cli(['report', 'train.purified.report.json', '-o', 'page.html'], dir).status).toBe(0);
    const r = spawnSync(process.execPath, [CLI, 'report', 'train.purified.report.json', '-o', '/dev/stdout'], {
      cwd: dir,
      encoding: 'utf8',
      timeout: 120_000,
    });
    expect(r.status).toBe(0);
    expect(r.stdout).toBe(readFileSync(join(dir, 'page.html'), 'utf8'));
    expect(r.stderr).toBe('wrote /dev/stdout\n');
  });
});

describe('embed and report refuse to write onto their input', () => {
  it('sot embed -o onto the input (or a link to it), and embedFile: an IoError before any work', async () => {
    const { dir, input, unchanged } = setup();
    symlinkSync(input, join(dir, 'link.jsonl'));
    for (const o of ['train.jsonl', 'link.jsonl', './sub/../train.jsonl']) {
      const r = cli(['embed', 'train.jsonl', '-o', o, '-q'], dir);
      expect(r.status).toBe(4);
      expect(r.stderr).toContain(`refusing to write the output ${o}: it is the input file train.jsonl`);
    }
    const events: StageProgress[] = [];
    const err = await embedFile({
      input,
      output: join(dir, 'link.jsonl'),
      embeddingCache: false,
      onProgress: (e) => events.push(e),
    }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(IoError);
    expect(events).toEqual([]);
    unchanged();
  });

  it('sot report -o onto the report it renders: exit 4, the report intact', () => {
    const { dir } = setup();
    expect(cli(['purify', 'train.jsonl', '--harmful', 'harmful.jsonl', '-q'], dir).status).toBe(0);
    const report = readFileSync(join(dir, 'train.purified.report.json'));
    const r = cli(['report', 'train.purified.report.json', '-o', 'train.purified.report.json'], dir);
    expect(r.status).toBe(4);
    expect(r.stderr).toContain(
      'refusing to write the HTML page train.purified.report.json: it is the report it renders train.purified.report.json',
    );
    expect(readFileSync(join(dir, 'train.purified.report.json'))).toEqual(report);
  });
});

describe('a weight field the records already have', () => {
  it('--weight-field naming an existing field is an InputError naming the field and the first line having it, before embedding', async () => {
    const { input, harmful, unchanged } = setup();
    const { err, events } = await refused({ input, harmful: [harmful], weightField: 'output' });
    expect(err).toBeInstanceOf(InputError);
    expect(err).toMatchObject({ field: 'output', line: 1 });
    expect((err as Error).message).toMatch(
      /train\.jsonl:1: the record already has the weight field "output", .* pick another --weight-field .* --no-weight-field/,
    );
    expect(events.filter((e) => e.stage !== 'read')).toEqual([]); // refused in the counting pass: nothing embedded
    unchanged();
  });

  it('the default sot_weight already in a record (line 7) is refused too; --no-weight-field writes the records unchanged', async () => {
    const { dir, harmful } = setup();
    const rows = clean.slice(100, 160).map((r, i) => (i === 6 ? { ...r, sot_weight: 0.25 } : r));
    const input = writeJsonl(join(dir, 'again.jsonl'), rows);
    const { err, events } = await refused({ input, harmful: [harmful] });
    expect(err).toMatchObject({ code: 'ERR_INPUT', field: 'sot_weight', line: 7 });
    expect((err as Error).message).toMatch(
      /again\.jsonl:7: the record already has the default weight field "sot_weight" \(was it purified before\?\)/,
    );
    expect(events.filter((e) => e.stage !== 'read')).toEqual([]);
    expect(existsSync(join(dir, 'again.purified.jsonl'))).toBe(false);
    const r = cli(['purify', 'again.jsonl', '--harmful', 'harmful.jsonl', '-q'], dir);
    expect(r.status).toBe(3);
    expect(r.stderr).toContain('again.jsonl:7: the record already has the default weight field "sot_weight"');
    const ok = await purify({
      input,
      harmful: [harmful],
      weightField: null,
      keep: { fraction: 1 },
      embeddingCache: false,
    });
    expect(ok.k).toBe(60);
    expect(readFileSync(join(dir, 'again.purified.jsonl'), 'utf8')).toBe(readFileSync(input, 'utf8'));
  });

  it('CSV: a header holding the field names it on the first record', async () => {
    const { dir, harmful } = setup();
    const input = join(dir, 't.csv');
    writeFileSync(
      input,
      'prompt,response,output\n' +
        clean
          .slice(0, 30)
          .map((r, i) => `"${r.instruction.replaceAll('"', '""')}","${r.output.replaceAll('"', '""')}",x${i}`)
          .join('\n') +
        '\n',
    );
    const { err } = await refused({
      input,
      harmful: [harmful],
      weightField: 'output',
      fields: { prompt: 'prompt', response: 'response' },
    });
    expect(err).toMatchObject({ code: 'ERR_INPUT', field: 'output', line: 2 });
  });
});
