// Issue 16, defect 9: messages that blamed the wrong thing. A JSON record
// nested too deep failed with ERR_INTERNAL after all the work (the writer's
// JSON.stringify overflowed the stack); a folder in the working directory
// named like a reference set was taken for it; a crafted report JSON given to
// `sot report` failed with a TypeError. (The 600 MB line: inputs-lines.test.ts.)
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { purify } from '../src/pipeline/purify.js';
import { CLI, DATA_DIR, ROOT } from './datasets.js';

const scratch = mkdtempSync(join(tmpdir(), 'sot-messages-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));
const FIX = join(ROOT, '__test__', 'fixtures', 'bad');
const HARMFUL = join(FIX, 'harmful.jsonl');

function sot(args: string[], cwd = scratch) {
  const json = args[0] === 'purify' ? ['--json'] : []; // `sot report` prints its error on stderr
  const r = spawnSync(process.execPath, [CLI, ...args, ...json], {
    cwd,
    encoding: 'utf8',
    timeout: 120_000,
    env: { ...process.env, SOT_DATA_DIR: DATA_DIR, SOT_CACHE_DIR: join(scratch, 'cache'), SOT_OFFLINE: '1' },
  });
  return { status: r.status, stderr: r.stderr, out: json.length ? JSON.parse(r.stdout || '{}') : r.stdout };
}

const DEEP = '__nested 20000 deep__';
const record = (i: number) =>
  JSON.stringify({ prompt: `How do I bake bread, try ${i}?`, response: `Mix flour and water, then bake it (${i}).` });

describe('a JSON record nested too deep is ERR_INPUT naming record and field, before any work', () => {
  it.each([
    [
      'in a record',
      (deep: string) =>
        `[${record(1)},\n${record(2)},\n{"prompt": "deep one", "response": "x", "meta": ${deep}},\n${record(4)}]\n`,
      3,
      'meta',
    ],
    [
      'in the wrapper object',
      (deep: string) => `{"info": {"notes": ${deep}}, "data": [${record(1)},\n${record(2)}]}\n`,
      undefined,
      'info',
    ],
  ])('%s', (_, build, line, field) => {
    const depth = 20_000;
    const input = join(scratch, `deep-${field}.json`);
    writeFileSync(input, build(`${'['.repeat(depth)}${']'.repeat(depth)}`));
    const outDir = mkdtempSync(join(scratch, 'deep-out-'));
    const r = sot(['purify', input, '--harmful', HARMFUL, '-o', join(outDir, 'o.json')]);
    expect(r.status).toBe(3);
    expect(r.out.error).toMatchObject({ code: 'ERR_INPUT', field, ...(line === undefined ? {} : { line }) });
    expect(r.out.error.message).toMatch(
      new RegExp(`field "${field}" nests arrays or objects more than 1000 levels deep`),
    );
    expect(r.out.timings).toBeUndefined();
    expect(readdirSync(outDir)).toEqual([]);
  });

  it('nesting within the limit is written back unchanged', async () => {
    const nested = JSON.parse(`${'['.repeat(900)}"core"${']'.repeat(900)}`);
    const input = join(scratch, 'nested-ok.json');
    const rows = [1, 2, 3, 4].map((i) => ({ ...JSON.parse(record(i)), meta: nested }));
    writeFileSync(input, JSON.stringify(rows));
    const res = await purify({
      input,
      harmful: [HARMFUL],
      output: join(scratch, 'nested-ok.out.json'),
      keep: { count: 4 },
      embeddingCache: false,
    });
    const back = JSON.parse(readFileSync(res.outputs.dataset, 'utf8')) as Array<{ meta: unknown }>;
    expect(back.map((r) => JSON.stringify(r.meta))).toEqual(rows.map((r) => JSON.stringify(r.meta)));
  });
});

describe('a local file or folder named like a reference set', () => {
  it('the name means the set, with a warning naming the local one and how to use it', () => {
    const cwd = mkdtempSync(join(scratch, 'cwd-'));
    mkdirSync(join(cwd, 'harmbench'));
    writeFileSync(join(cwd, 'input.jsonl'), `${[1, 2, 3, 4, 5].map(record).join('\n')}\n`);
    const r = sot(['purify', 'input.jsonl', '--harmful', 'harmbench', '-o', 'out.jsonl'], cwd);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(r.out.warnings.join('\n')).toMatch(
      /"harmbench" names the built-in reference set, which was used; the local "harmbench" was not \(write \.\/harmbench to use it\)/,
    );
    const report = JSON.parse(readFileSync(join(cwd, 'out.report.json'), 'utf8'));
    expect(report.references.harmful).toEqual([{ source: 'harmbench', count: 400, licence: 'MIT' }]);
  });

  it('written as a path, the local one is used', () => {
    const cwd = mkdtempSync(join(scratch, 'cwd-'));
    mkdirSync(join(cwd, 'harmbench'));
    writeFileSync(join(cwd, 'input.jsonl'), `${[1, 2, 3, 4, 5].map(record).join('\n')}\n`);
    const folder = sot(['purify', 'input.jsonl', '--harmful', './harmbench', '-o', 'out.jsonl'], cwd);
    expect(folder.status).toBe(4);
    expect(folder.out.error.message).toMatch(/\.\/harmbench is not a regular file/);
    writeFileSync(join(cwd, 'advbench.jsonl'), readFileSync(HARMFUL));
    const file = sot(['purify', 'input.jsonl', '--harmful', './advbench.jsonl', '-o', 'out2.jsonl'], cwd);
    expect(file.status).toBe(0);
    expect(JSON.parse(readFileSync(join(cwd, 'out2.report.json'), 'utf8')).references.harmful[0]).toEqual({
      source: './advbench.jsonl',
      count: 3,
    });
  });
});

describe('`sot report` on a crafted report: ERR_INPUT naming the field, never a TypeError', () => {
  let good: Record<string, unknown>;
  beforeAll(async () => {
    const res = await purify({
      input: join(FIX, 'good.jsonl'),
      harmful: [HARMFUL],
      output: join(scratch, 'base.jsonl'),
      embeddingCache: false,
    });
    good = JSON.parse(readFileSync(res.outputs.report, 'utf8'));
  });

  const cases: Array<[string, (r: any) => void, string]> = [
    ['input.path a number', (r) => (r.input.path = 5), 'input.path'],
    ['input missing', (r) => delete r.input, 'input'],
    ['createdAt null', (r) => (r.createdAt = null), 'createdAt'],
    ['selection a string', (r) => (r.selection = 'all'), 'selection'],
    ['references.harmful not an array', (r) => (r.references.harmful = {}), 'references.harmful'],
    ['a reference without a count', (r) => delete r.references.harmful[0].count, 'references.harmful[0].count'],
    ['histogram counts missing', (r) => delete r.histogram.kept, 'histogram.kept'],
    ['histogram edges of the wrong length', (r) => r.histogram.edges.pop(), 'histogram'],
    ['a projected point with one coordinate', (r) => (r.projection.downstream[0] = [1]), 'projection.downstream[0]'],
    ['a lowest excerpt null', (r) => (r.lowest[0].excerpt = null), 'lowest[0].excerpt'],
    ['a timing as text', (r) => (r.timings.read = 'fast'), 'timings.read'],
    ['learner storage a string', (r) => (r.learner.storage.anchor = 'dense'), 'learner.storage.anchor'],
    ['warnings holding a number', (r) => r.warnings.push(7), 'warnings[1]'],
    ['options nested 20000 deep', (r) => (r.options = DEEP), 'options'],
  ];

  it.each(cases)('%s', (_, mutate, field) => {
    const report = structuredClone(good);
    mutate(report);
    const path = join(scratch, `crafted-${field.replace(/\W/g, '_')}.json`);
    writeFileSync(path, JSON.stringify(report).replace(`"${DEEP}"`, `${'['.repeat(20000)}${']'.repeat(20000)}`));
    const html = `${path}.html`;
    const r = sot(['report', path, '-o', html]);
    expect(r.stderr).not.toMatch(/TypeError|ERR_INTERNAL|at .*\.js:\d+/);
    expect(r.status).toBe(3);
    const named = field.replace(/[.[\]]/g, (c) => `\\${c}`);
    expect(r.stderr).toMatch(new RegExp(`crafted-\\w+\\.json: not a valid report: report\\.${named} `));
    expect(existsSync(html)).toBe(false);
  });

  it('the untouched report renders', () => {
    const path = join(scratch, 'untouched.json');
    writeFileSync(path, JSON.stringify(good));
    const r = sot(['report', path, '-o', `${path}.html`]);
    expect(r.status).toBe(0);
    expect(readFileSync(`${path}.html`, 'utf8')).toContain('id="sot-report"');
  });
});
