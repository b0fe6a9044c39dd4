// Defaults are defined once (the core's Rust `Default`s, read through the
// binding; the pipeline's in src/defaults.ts). Whatever else states one (the
// TSDoc of the option types, the docs' tables, the README) is checked here
// against that source, so a changed default fails until every text follows.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { coreDefaults, EMBEDDER_LEARNER_DEFAULTS, PURIFY_DEFAULTS } from '../src/defaults.js';
import { BUILTIN_DIM_HELP, LLM_DEFAULTS, OPENAI_DEFAULTS, TRANSFORMERS_DEFAULTS } from '../src/embed/defaults.js';
import { learnWeights } from '../src/learner.js';
import { sinkhorn } from '../src/ot.js';
import { parseBytes } from '../src/storage.js';
import { ROOT } from './datasets.js';
import { plantedSets, randomMatrix } from './helpers.js';

const read = (p: string) => readFileSync(join(ROOT, p), 'utf8');

/** `{ key: the value its TSDoc states after "Default" }` for the members of one interface of a source file. */
function documentedDefaults(file: string, iface: string): Record<string, string> {
  const src = read(file);
  const start = src.indexOf(`export interface ${iface} `);
  expect(start, `${iface} in ${file}`).toBeGreaterThanOrEqual(0);
  const body = src.slice(start, src.indexOf('\n}\n', start));
  const out: Record<string, string> = {};
  for (const m of body.matchAll(/\/\*\*((?:(?!\*\/)[\s\S])*)\*\/\s*(\w+)\?:/g)) {
    const stated = /\b[Dd]efault:?\s+`?([\w.+-]+(?: [KMGT]iB)?)`?/.exec(m[1]!.replace(/\s*\n\s*\*\s*/g, ' '));
    if (stated) out[m[2]!] = stated[1]!.replace(/\.$/, ''); // the sentence's full stop
  }
  return out;
}

/** A stated value as the value it names: numbers (1e-5, 0.05), sizes (4 GiB), booleans. */
function value(s: string): unknown {
  if (s === 'true' || s === 'false') return s === 'true';
  if (/ [KMGT]iB$/.test(s)) return parseBytes('stated', s.replace(' ', ''));
  const x = Number(s);
  return Number.isNaN(x) ? s : x;
}

describe('the single source', () => {
  it('is what the core applies when an option is left out', async () => {
    const d = coreDefaults();
    const { sets } = plantedSets(30, 6, 8, 3);
    const [implicit, explicit] = await Promise.all([
      learnWeights(sets),
      learnWeights(sets, {
        eps: d.learner.eps,
        lambda: d.learner.lambda,
        tau: d.learner.tau,
        step: d.learner.step,
        maxSteps: d.learner.maxSteps,
        tol: d.learner.tol,
      }),
    ]);
    expect(Array.from(implicit.weights)).toEqual(Array.from(explicit.weights));
    const other = await learnWeights(sets, { lambda: d.learner.lambda + 0.5 });
    expect(Array.from(other.weights)).not.toEqual(Array.from(implicit.weights));
    const cost = { cost: randomMatrix(12, 9, 5) };
    const [s0, s1] = await Promise.all([
      sinkhorn(cost),
      sinkhorn(cost, { eps: d.sinkhorn.eps, tol: d.sinkhorn.tol, maxIter: d.sinkhorn.maxIter }),
    ]);
    expect(s0.value).toBe(s1.value);
    expect(s0.eps).toBe(d.sinkhorn.eps);
  });

  it('is frozen', () => {
    const d = coreDefaults();
    expect(Object.isFrozen(d) && Object.isFrozen(d.learner) && Object.isFrozen(PURIFY_DEFAULTS)).toBe(true);
  });
});

describe('texts that state a default agree with it', () => {
  const d = coreDefaults();

  it('the TSDoc of LearnerOptions, SinkhornOptions, StorageOptions and HashingEmbedderOptions', () => {
    const learner = documentedDefaults('src/learner.ts', 'LearnerOptions');
    for (const k of [
      'eps',
      'lambda',
      'tau',
      'step',
      'maxSteps',
      'tol',
      'debiased',
      'maxSelfAnchor',
      'ownHarmShare',
      'ownHarmMass',
    ] as const) {
      expect(value(learner[k] ?? 'undocumented'), `LearnerOptions.${k}`).toBe(d.learner[k]);
    }
    const inner = /\/\*\*([^*]*)\*\/\s*inner\?:/.exec(read('src/learner.ts'))![1]!;
    expect(inner).toContain(`tolerance (${d.learner.innerTol.toExponential()})`);
    expect(inner).toContain(`iteration cap (${d.learner.innerMaxIter})`);
    expect(inner).toContain(`over-relaxation (${d.learner.innerOverrelax})`);

    const solve = documentedDefaults('src/ot.ts', 'SinkhornOptions');
    for (const k of ['eps', 'tol', 'maxIter', 'checkEvery', 'overrelax'] as const)
      expect(value(solve[k] ?? 'undocumented'), `SinkhornOptions.${k}`).toBe(d.sinkhorn[k]);

    const storage = documentedDefaults('src/storage.ts', 'StorageOptions');
    for (const k of ['budget', 'neighbours', 'storeKernel', 'verify'] as const)
      expect(value(storage[k] ?? 'undocumented'), `StorageOptions.${k}`).toBe(d.storage[k]);

    const builtin = EMBEDDER_LEARNER_DEFAULTS.builtin!;
    expect(read('src/pipeline/options.ts').replace(/\s*\n\s*\*\s*/g, ' ')).toContain(
      `(the built-in embedder: eps ${builtin.eps}, lambda ${builtin.lambda})`,
    );

    const embed = documentedDefaults('src/embed/hashing.ts', 'HashingEmbedderOptions');
    for (const k of ['seed', 'wordWeight'] as const)
      expect(value(embed[k] ?? 'undocumented'), `HashingEmbedderOptions.${k}`).toBe(d.embed[k]);
    const dim = /\/\*\*((?:(?!\*\/)[\s\S])*)\*\/\s*dim\?:/
      .exec(read('src/embed/hashing.ts'))![1]!
      .replace(/\s*\n\s*\*\s*/g, ' ');
    expect(dim).toContain(`automatic, from the documents fitted on: ${BUILTIN_DIM_HELP} (`);
  });

  it("the model embedders' TSDoc states their defaults", () => {
    const cases = [
      ['src/embed/transformers.ts', 'TransformersEmbedderOptions', TRANSFORMERS_DEFAULTS, ['maxWorkers']],
      ['src/embed/openai.ts', 'OpenAIEmbedderOptions', OPENAI_DEFAULTS, []],
      ['src/embed/llm.ts', 'LlmEmbedderOptions', LLM_DEFAULTS, []],
    ] as const;
    for (const [file, iface, defaults, unstated] of cases) {
      const doc = documentedDefaults(file, iface);
      for (const [k, v] of Object.entries(defaults))
        if (!(unstated as readonly string[]).includes(k))
          expect(value(doc[k] ?? 'undocumented'), `${iface}.${k}`).toBe(v);
    }
  });

  it("docs/api.md: the learner's options and the Sinkhorn options table", () => {
    const api = read('docs/api.md');
    const para = api.slice(api.indexOf('Options: `cost`'), api.indexOf('`storage` (how the'));
    const stated = Object.fromEntries([...para.matchAll(/`(\w+)` \(([^)]+)\)/g)].map((m) => [m[1], m[2]]));
    for (const k of ['eps', 'lambda', 'tau', 'step', 'maxSteps'] as const)
      expect(value(stated[k] ?? 'undocumented'), `api.md learner ${k}`).toBe(d.learner[k]);
    expect(para).toContain(
      `inner: { tol: ${d.learner.innerTol.toExponential()}, maxIter: ${d.learner.innerMaxIter}, overrelax: ${d.learner.innerOverrelax} }`,
    );
    expect(api).toContain(`when J changes by less than \`tol\` (${d.learner.tol.toExponential()})`);
    expect(api).toContain(`\`maxSelfAnchor\` = ${d.learner.maxSelfAnchor}`);

    const rows = Object.fromEntries([...api.matchAll(/^\| `(\w+)` \| `([^`]+)` \|/gm)].map((m) => [m[1], m[2]]));
    for (const k of ['eps', 'tol', 'maxIter', 'checkEvery', 'overrelax'] as const)
      expect(value(rows[k] ?? 'undocumented'), `api.md Sinkhorn ${k}`).toBe(d.sinkhorn[k]);
    expect(api).toContain(`default ${d.storage.budget / 1024 ** 3} GiB`);
    expect(api).toContain(`per row, default ${d.storage.neighbours}`);
  });

  it("docs/cli.md and the README's option tables", () => {
    const builtin = EMBEDDER_LEARNER_DEFAULTS.builtin!;
    for (const file of ['docs/cli.md', 'README.md']) {
      const text = read(file);
      const keep = /`--keep ([\d.]+)`[^|]*\|[^|]*\(default (\d+)%\)/.exec(text);
      expect(keep, `${file}: --keep row`).not.toBeNull();
      const { fraction } = PURIFY_DEFAULTS.keep as { fraction: number };
      expect(Number(keep![1])).toBe(fraction);
      expect(Number(keep![2]) / 100).toBe(fraction);
    }
    const cli = read('docs/cli.md');
    expect(cli).toContain(`| \`--neighbours ${d.storage.neighbours}\` |`);
    expect(cli).toContain(`| \`--dim\` | dimension of the built-in embedder (default: ${BUILTIN_DIM_HELP}) |`);
    expect(cli).toContain(`| \`--max-line-bytes ${PURIFY_DEFAULTS.maxLineBytes / 1024 ** 2}MiB\` |`);
    expect(cli).toContain(`| \`--weight-field ${PURIFY_DEFAULTS.weightField}\` /`);
    expect(cli).toContain(
      `eps ${builtin.eps} and lambda ${builtin.lambda} with the built-in embedder (the default), else the core's ${d.learner.eps} and ${d.learner.lambda}; tau ${d.learner.tau}; max-steps ${d.learner.maxSteps}; own-harm ${d.learner.ownHarmShare} (`,
    );
  });
});
