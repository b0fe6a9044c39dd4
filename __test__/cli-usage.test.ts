// The CLI never misleads: its help states the defaults that will apply (read
// from the core and the embedders, checked here against a real run), a typo
// gets a hint before any other complaint, usage errors are JSON under --json,
// a record-format error names the flags that fix it, and no error shows a
// temporary file's name. Each case runs the built CLI in a child process.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { coreDefaults, EMBEDDER_LEARNER_DEFAULTS, PURIFY_DEFAULTS } from '../src/defaults.js';
import { BUILTIN_DIM_HELP } from '../src/embed/defaults.js';
import { HashingEmbedder } from '../src/embed/hashing.js';
import { OpenAIEmbedder } from '../src/embed/openai.js';
import { FILE_FORMATS } from '../src/io/index.js';
import { alpacaOk, CLI, DATA_DIR, writeJsonl } from './datasets.js';

function sot(args: string[]) {
  const env = {
    ...process.env,
    SOT_DATA_DIR: DATA_DIR,
    SOT_CACHE_DIR: mkdtempSync(join(tmpdir(), 'sot-cache-')),
    SOT_OFFLINE: '1',
  };
  const r = spawnSync(process.execPath, [CLI, ...args], { env, encoding: 'utf8', timeout: 120_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** The help text of one option, its wrapped lines joined. */
function optionHelp(help: string, flag: string): string {
  const lines = help.split('\n');
  const i = lines.findIndex((l) => l.trimStart().startsWith(flag));
  expect(i, `${flag} in the help`).toBeGreaterThanOrEqual(0);
  const out = [lines[i]!];
  for (let j = i + 1; j < lines.length && /^\s{20,}\S/.test(lines[j]!); j++) out.push(lines[j]!);
  return out.map((l) => l.trim()).join(' ');
}

const small = () => {
  const dir = mkdtempSync(join(tmpdir(), 'sot-usage-'));
  return { dir, input: writeJsonl(join(dir, 'train.jsonl'), alpacaOk().slice(0, 40)) };
};

describe('sot purify --help', () => {
  const help = sot(['purify', '--help']);

  it('groups the options: input, references, selection, learner, embedder, output', () => {
    expect(help.code).toBe(0);
    const headings = help.stdout.split('\n').filter((l) => /^[A-Z][a-z]+:$/.test(l));
    expect(headings).toEqual([
      'Arguments:',
      'Input:',
      'References:',
      'Selection:',
      'Learner:',
      'Embedder:',
      'Output:',
      'Options:',
    ]);
    const section = (h: string) => help.stdout.split(`\n${h}\n`)[1]!.split('\n\n')[0]!;
    expect(section('Learner:')).toMatch(/--eps[\s\S]*--lambda[\s\S]*--tau[\s\S]*--max-steps/);
    expect(section('References:')).toMatch(/--harmful[\s\S]*--anchor/);
    expect(section('Selection:')).toMatch(/--keep /);
    expect(section('Embedder:')).toMatch(/--embedder/);
  });

  it("states the core's defaults and the default embedder's own, and --keep's", () => {
    const core = coreDefaults();
    const builtin = EMBEDDER_LEARNER_DEFAULTS.builtin!;
    expect(builtin).toBe(new HashingEmbedder().learnerDefaults);
    expect(optionHelp(help.stdout, '--eps')).toContain(
      `default ${builtin.eps} with --embedder builtin (the default); ${core.learner.eps} with the others`,
    );
    expect(optionHelp(help.stdout, '--lambda')).toContain(
      `default ${builtin.lambda} with --embedder builtin (the default); ${core.learner.lambda} with the others`,
    );
    expect(optionHelp(help.stdout, '--tau')).toContain(`default ${core.learner.tau}`);
    expect(optionHelp(help.stdout, '--max-steps')).toContain(`default ${core.learner.maxSteps}`);
    expect(optionHelp(help.stdout, '--neighbours')).toContain(`default ${core.storage.neighbours}`);
    expect(optionHelp(help.stdout, '--dim')).toContain(`default ${BUILTIN_DIM_HELP}`);
    expect(optionHelp(help.stdout, '--keep ')).toContain(
      `default ${(PURIFY_DEFAULTS.keep as { fraction: number }).fraction}`,
    );
  });

  it("states the openai embedder's own defaults as it applies them", () => {
    const e = new OpenAIEmbedder({ model: 'm', env: {} });
    expect(optionHelp(help.stdout, '--embed-batch')).toContain(`(default ${e.batchSize} / `);
    expect(optionHelp(help.stdout, '--embed-concurrency')).toContain(`(default ${e.concurrency} / `);
    expect(optionHelp(help.stdout, '--embed-timeout')).toContain(`(default ${e.timeoutMs})`);
    expect(optionHelp(help.stdout, '--embed-retries')).toContain(`(default ${e.maxRetries})`);
    expect(optionHelp(help.stdout, '--embed-url')).toContain(`default ${e.baseUrl})`);
  });

  it('lists every format the readers accept under --format', () => {
    const format = optionHelp(help.stdout, '--format');
    for (const f of FILE_FORMATS) expect(format).toContain(`"${f}"`);
    expect(FILE_FORMATS).toContain('tsv');
  });

  it('the defaults it states are those a run applies', () => {
    const { input } = small();
    const r = sot(['purify', input, '--harmful', 'advbench', '--json', '--no-html']);
    expect(r.code, r.stderr).toBe(0);
    const report = JSON.parse(readFileSync(JSON.parse(r.stdout).outputs.report, 'utf8'));
    const stated = (flag: string) =>
      Number(/default ([\d.]+) with --embedder builtin/.exec(optionHelp(help.stdout, flag))![1]);
    expect(report.options.learner.eps).toBe(stated('--eps'));
    expect(report.options.learner.lambda).toBe(stated('--lambda'));
    expect(report.options.keep).toEqual({
      fraction: Number(/default ([\d.]+)/.exec(optionHelp(help.stdout, '--keep '))![1]),
    });
    expect(report.selection.k).toBe(Math.round(40 * 0.8));
  });
});

describe('usage errors', () => {
  it('a misspelled flag gets "did you mean", even when a required flag is missing', () => {
    const r = sot(['purify', 'train.jsonl', '--harmfull', 'advbench']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("unknown option '--harmfull'");
    expect(r.stderr).toContain('Did you mean --harmful?');
    expect(r.stderr).not.toContain('not specified');
    const eps = sot(['purify', 'train.jsonl', '--harmful', 'advbench', '--epss', '0.1']);
    expect(eps.code).toBe(2);
    expect(eps.stderr).toContain('Did you mean --eps?');
  });

  it('a missing required flag is still named when nothing is misspelled', () => {
    const r = sot(['purify', 'train.jsonl']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("required option '--harmful <sets>' not specified");
    const e = sot(['embed', 'train.jsonl']);
    expect(e.code).toBe(2);
    expect(e.stderr).toContain("required option '-o, --output <file>' not specified");
  });

  it('with --json, usage errors also print { ok: false, error } on stdout', () => {
    const cases: Array<[string[], RegExp]> = [
      [
        ['purify', 'train.jsonl', '--harmfull', 'advbench', '--json'],
        /unknown option '--harmfull' \(Did you mean --harmful\?\)/,
      ],
      [['purify', 'train.jsonl', '--json'], /required option '--harmful <sets>' not specified/],
      [
        ['purify', 'train.jsonl', '--harmful', 'advbench', '--keep', '2', '--json'],
        /--keep must be a number >= 0 and <= 1/,
      ],
      [['purify', '--json'], /missing required argument 'input'/],
      [
        ['purify', 'train.jsonl', '--harmful', 'advbench', '--format', 'xml', '--json'],
        /Allowed choices are jsonl, json, csv, tsv, parquet/,
      ],
      [
        ['purify', 'train.jsonl', '--harmful', 'advbench', '--keep', '0.5', '--keep-count', '3', '--json'],
        /use --keep or --keep-count, not both/,
      ],
    ];
    for (const [args, message] of cases) {
      const r = sot(args);
      expect(r.code, args.join(' ')).toBe(2);
      const out = JSON.parse(r.stdout);
      expect(out).toEqual({ ok: false, error: { code: 'ERR_OPTION', message: expect.stringMatching(message) } });
    }
  });
});

describe('record formats', () => {
  it('an unknown layout names the flags that fix it, and those flags do', () => {
    const dir = mkdtempSync(join(tmpdir(), 'sot-usage-'));
    const rows = alpacaOk()
      .slice(0, 40)
      .map((p) => ({ ask: p.instruction, reply: p.output }));
    const input = writeJsonl(join(dir, 'odd.jsonl'), rows);
    const r = sot(['purify', input, '--harmful', 'advbench', '--no-html']);
    expect(r.code).toBe(3);
    expect(r.stderr).toContain('--prompt-field');
    expect(r.stderr).toContain('--response-field');
    expect(r.stderr).toContain(`${input}:1`);
    const fixed = sot([
      'purify',
      input,
      '--harmful',
      'advbench',
      '--no-html',
      '--prompt-field',
      'ask',
      '--response-field',
      'reply',
      '--json',
    ]);
    expect(fixed.code, fixed.stderr).toBe(0);
    expect(JSON.parse(fixed.stdout)).toMatchObject({ ok: true, n: 40 });
  });

  it('detects capitalised fields and chat exports (messages/conversations, role/content or from/value)', () => {
    const dir = mkdtempSync(join(tmpdir(), 'sot-usage-'));
    const pairs = alpacaOk().slice(0, 40);
    const layouts: Record<string, (p: (typeof pairs)[number]) => unknown> = {
      Alpaca: (p) => ({ Instruction: p.instruction, Input: p.input, Output: p.output }),
      Prompt: (p) => ({ Prompt: p.instruction, Response: p.output }),
      conversationsRole: (p) => ({
        conversations: [
          { role: 'user', content: p.instruction },
          { role: 'assistant', content: p.output },
        ],
      }),
      messagesFrom: (p) => ({
        messages: [
          { from: 'human', value: p.instruction },
          { from: 'gpt', value: p.output },
        ],
      }),
    };
    for (const [name, make] of Object.entries(layouts)) {
      const input = writeJsonl(join(dir, `${name}.jsonl`), pairs.map(make));
      const r = sot(['purify', input, '--harmful', 'advbench', '--no-html', '--json']);
      expect(r.code, `${name}: ${r.stdout}${r.stderr}`).toBe(0);
      const report = JSON.parse(readFileSync(JSON.parse(r.stdout).outputs.report, 'utf8'));
      expect(report.input.records, name).toBe(40);
    }
  });
});

describe('error messages', () => {
  it('name the output the user gave, never a temporary file', () => {
    const { dir, input } = small();
    // A valid name, too long once the writer adds its temporary suffix.
    const output = join(dir, `${'o'.repeat(240)}.jsonl`);
    const r = sot(['purify', input, '--harmful', 'advbench', '--no-html', '-o', output]);
    expect(r.code).toBe(4);
    expect(r.stderr).toContain(`cannot write ${output}`);
    expect(r.stderr).toContain('ENAMETOOLONG');
    expect(r.stderr).not.toMatch(/\.tmp\b/);
    expect(readdirSync(dir).sort()).toEqual(['train.jsonl']);
  });
});
