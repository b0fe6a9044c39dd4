// The named reference sets: which pinned files make each one, where they come
// from, under which licence, and how their rows become samples. Hashes and
// sizes are those of the files at the pinned commits (the offline mirror's
// MANIFEST.tsv lists the same).
import { InputError } from '../errors.js';
import type { SampleText } from '../io/types.js';
import { parseCsv } from '../io/csv.js';

/** Whether a set is pushed away from (`harmful`) or pulled towards (`anchor`). */
export type ReferenceRole = 'harmful' | 'anchor';

export interface ReferenceLicence {
  /** SPDX identifier of the licence the files are distributed under. */
  spdx: string;
  /** The licence text (or licensing section) in the same source, at the pinned commit. */
  url: string;
  /** Upstream licences and terms worth knowing (original dataset, model outputs). */
  note?: string;
}

/** One pinned file of a reference set. */
export interface ReferenceFile {
  /** Path in the offline mirror layout (`<dataDir>/<path>`). */
  path: string;
  /** GitHub `owner/name` of its public home. */
  repo: string;
  /** Commit the file is pinned to. */
  commit: string;
  /** Path inside that repository. */
  sourcePath: string;
  /** Lower-case hex sha256 of the file's bytes. */
  sha256: string;
  bytes: number;
}

export interface ReferenceSetInfo {
  name: string;
  role: ReferenceRole;
  description: string;
  licence: ReferenceLicence;
  files: ReferenceFile[];
  /** Total bytes of its files (what a first download costs). */
  bytes: number;
}

/** A file's text, as the extractor receives it. */
export interface ReferenceFileText {
  file: ReferenceFile;
  text: string;
}

export interface ReferenceSetDefinition extends ReferenceSetInfo {
  /** Turns the files' contents (in `files` order) into samples. */
  extract(files: ReferenceFileText[]): SampleText[];
}

interface Source {
  repo: string;
  commit: string;
  mirror: string;
}

const REFUSAL_DIRECTION: Source = {
  repo: 'andyrdt/refusal_direction',
  commit: '9d852fae1a9121c78b29142de733cb1340770cc3',
  mirror: 'refusal-direction',
};
// HarmBench's data as vendored (unchanged, with its MIT licence file) by AdversariaLLM.
const HARMBENCH: Source = {
  repo: 'busycalibrating/AdversariaLLM',
  commit: 'f970939273ea17b491fadf6001fddc36ed3ae3ff',
  mirror: 'harmbench',
};
const SAFETY_TUNED_LLAMAS: Source = {
  repo: 'vinid/safety-tuned-llamas',
  commit: '36a4b8d5c2177ed165bf61f59b590161394f7f12',
  mirror: 'safety-tuned-llamas',
};

function pinned(source: Source, sourcePath: string, sha256: string, bytes: number): ReferenceFile {
  return {
    path: `${source.mirror}/${sourcePath}`,
    repo: source.repo,
    commit: source.commit,
    sourcePath,
    sha256,
    bytes,
  };
}

function licenceAt(source: Source, path: string): string {
  return `https://github.com/${source.repo}/blob/${source.commit}/${path}`;
}

const REFUSAL_DIRECTION_LICENCE = licenceAt(REFUSAL_DIRECTION, 'LICENSE');

/** The five chat models whose JailbreakBench completions refusal_direction publishes. */
const JBB_RUNS: [model: string, ablation: [string, number], baseline: [string, number]][] = [
  [
    'gemma-2b-it',
    ['eaa2ba6028276e45f4b9ec39525ce4023b6b0888729d228a97e042bc3721cce0', 224542],
    ['d159d0c80eb77b44069be2f780f0bf818e29568ee012bec46fcbdb8cfbc60d5a', 180900],
  ],
  [
    'llama-2-7b-chat-hf',
    ['a86e98952616700db7a8de63264bf24607314406d6d38c8e5ef5633042d3e27f', 240693],
    ['96a37e97647bb280582601d8a02cc67380c5fe18bf21d74f70b757b647c1d989', 214328],
  ],
  [
    'meta-llama-3-8b-instruct',
    ['396e3459e603b17f08c7e99466f1e10f8c3c863d49cda05e4b21ac19d0be2c32', 276297],
    ['924f49b7eafd6e49ed78d4f9811e5c94f378010570e1ec702d1f1dff2b10b69f', 278590],
  ],
  [
    'qwen-1_8b-chat',
    ['d79c10500ce68233e0d094c78ab19dc2975c8ba47c1b748c8e3220125f92b9ed', 191632],
    ['243bcf2922962e47cfa7e87ab7b87ade2247c69819882c7b3dbed45e08d1542f', 128909],
  ],
  [
    'yi-6b-chat',
    ['69de8c73fc80d2c6e70f4efc1102991e15cba0116832931886b4fe2a0f05a2b6', 258306],
    ['333e84a6672e01f78af2981b4989507d3807986692567d1b34c57db216eaa747', 248271],
  ],
];

function jbbRunFiles(kind: 'ablation' | 'baseline'): ReferenceFile[] {
  return JBB_RUNS.map(([model, ablation, baseline]) => {
    const [sha, bytes] = kind === 'ablation' ? ablation : baseline;
    return pinned(
      REFUSAL_DIRECTION,
      `pipeline/runs/${model}/completions/jailbreakbench_${kind}_evaluations.json`,
      sha,
      bytes,
    );
  });
}

// ---- record helpers: a missing or mistyped field names the file and record.

function text(record: Record<string, unknown>, field: string, file: ReferenceFile, line: number): string {
  const v = record[field];
  if (typeof v !== 'string' || v.trim() === '') {
    throw new InputError({ file: file.path, line, field }, `field "${field}" is missing or empty`);
  }
  return v;
}

function parseJson(f: ReferenceFileText): unknown {
  try {
    return JSON.parse(f.text);
  } catch (cause) {
    throw new InputError({ file: f.file.path }, `invalid JSON: ${(cause as Error).message}`, { cause });
  }
}

function csvPairs(prompt: string, response: string | undefined) {
  return (files: ReferenceFileText[]): SampleText[] =>
    files.flatMap((f) =>
      parseCsv(f.text, f.file.path).map(({ line, record: r }) => ({
        prompt: text(r, prompt, f.file, line),
        response: response === undefined ? '' : text(r, response, f.file, line),
      })),
    );
}

/** refusal_direction completion files: `{ completions: [{ prompt, response, is_jailbreak_* }] }`. */
function completions(keep: (c: Record<string, unknown>) => boolean) {
  return (files: ReferenceFileText[]): SampleText[] =>
    files.flatMap((f) => {
      const doc = parseJson(f) as { completions?: unknown };
      if (!Array.isArray(doc.completions))
        throw new InputError({ file: f.file.path, field: 'completions' }, 'no "completions" array');
      return (doc.completions as Record<string, unknown>[]).flatMap((c, i) =>
        keep(c) ? [{ prompt: text(c, 'prompt', f.file, i + 1), response: text(c, 'response', f.file, i + 1) }] : [],
      );
    });
}

function harmbench(files: ReferenceFileText[]): SampleText[] {
  const [behaviours, targetsFile] = files;
  if (behaviours === undefined || targetsFile === undefined) throw new Error('harmbench: two files expected');
  const targets = parseJson(targetsFile) as Record<string, unknown>;
  return parseCsv(behaviours.text, behaviours.file.path).map(({ line, record: r }) => {
    const behaviour = text(r, 'Behavior', behaviours.file, line);
    const id = text(r, 'BehaviorID', behaviours.file, line);
    const target = targets[id];
    if (typeof target !== 'string') {
      throw new InputError({ file: targetsFile.file.path, field: id }, `no target for behaviour "${id}"`);
    }
    const context = r.ContextString ?? '';
    // HarmBench's own prompt layout for contextual behaviours.
    return { prompt: context.trim() === '' ? behaviour : `${context}\n\n---\n\n${behaviour}`, response: target };
  });
}

function instructionOutput(files: ReferenceFileText[]): SampleText[] {
  return files.flatMap((f) => {
    const rows = parseJson(f);
    if (!Array.isArray(rows)) throw new InputError({ file: f.file.path }, 'expected a JSON array');
    return (rows as Record<string, unknown>[]).map((r, i) => {
      const instruction = text(r, 'instruction', f.file, i + 1);
      const input = typeof r.input === 'string' ? r.input.trim() : '';
      return {
        prompt: input === '' ? instruction : `${instruction}\n\n${input}`,
        response: text(r, 'output', f.file, i + 1),
      };
    });
  });
}

function define(def: Omit<ReferenceSetDefinition, 'bytes'>): ReferenceSetDefinition {
  return { ...def, bytes: def.files.reduce((s, f) => s + f.bytes, 0) };
}

const DEFINITIONS: ReferenceSetDefinition[] = [
  define({
    name: 'advbench',
    role: 'harmful',
    description: 'AdvBench harmful behaviours: 520 harmful instructions with an affirmative "Sure, here is" target',
    licence: {
      spdx: 'Apache-2.0',
      url: REFUSAL_DIRECTION_LICENCE,
      note: 'AdvBench itself (llm-attacks/llm-attacks) is MIT',
    },
    files: [
      pinned(
        REFUSAL_DIRECTION,
        'dataset/raw/advbench.csv',
        '6cd1a5c63c07610d7eb67307772ee5606017ee950b5770ab288a2c487489d3e1',
        82125,
      ),
    ],
    extract: csvPairs('goal', 'target'),
  }),
  define({
    name: 'harmbench',
    role: 'harmful',
    description:
      'HarmBench text behaviours (400: standard, contextual with their context, copyright) with their affirmative optimizer targets',
    licence: {
      spdx: 'MIT',
      url: licenceAt(HARMBENCH, 'data/behavior_datasets/LICENSE.txt'),
      note: 'HarmBench (centerforaisafety/HarmBench), as vendored by AdversariaLLM',
    },
    files: [
      pinned(
        HARMBENCH,
        'data/behavior_datasets/harmbench_behaviors_text_all.csv',
        '2745611872be3b2eab141e39bb328b8c1140dc3cd8d0a49da6174260d9ccbfb9',
        198374,
      ),
      pinned(
        HARMBENCH,
        'data/optimizer_targets/harmbench_targets_text.json',
        'dedcac1f8c0108ca79e36589ef9693d5af916ed70878e60fb2c4c20482872e3f',
        53017,
      ),
    ],
    extract: harmbench,
  }),
  define({
    name: 'jailbreakbench',
    role: 'harmful',
    description:
      'JailbreakBench JBB-Behaviors: 100 harmful goals with an affirmative target (overlaps AdvBench and HarmBench)',
    licence: {
      spdx: 'Apache-2.0',
      url: REFUSAL_DIRECTION_LICENCE,
      note: 'JailbreakBench itself (JailbreakBench/jailbreakbench) is MIT',
    },
    files: [
      pinned(
        REFUSAL_DIRECTION,
        'dataset/raw/jailbreakbench.csv',
        '45e9a8923b28f547bb372fbaa9af7df8b38c818a80ae50c3bab97704197ff516',
        23111,
      ),
    ],
    extract: csvPairs('Goal', 'Target'),
  }),
  define({
    name: 'strongreject',
    role: 'harmful',
    description: 'StrongREJECT: 313 forbidden prompts, no responses',
    licence: {
      spdx: 'Apache-2.0',
      url: REFUSAL_DIRECTION_LICENCE,
      note: 'StrongREJECT itself (alexandrasouly/strongreject) is MIT',
    },
    files: [
      pinned(
        REFUSAL_DIRECTION,
        'dataset/raw/strongreject.csv',
        '4dd70357e4ff8b5d0ba5ebafecab5d6dd5633ce8046e3dd1c8bd93e64de44381',
        56359,
      ),
    ],
    extract: csvPairs('forbidden_prompt', undefined),
  }),
  define({
    name: 'jbb-harmful-responses',
    role: 'harmful',
    description:
      'Real harmful answers: JailbreakBench prompts answered by five chat models with their refusal direction ablated, kept where LlamaGuard 2 judged the answer unsafe (402 pairs)',
    licence: {
      spdx: 'Apache-2.0',
      url: REFUSAL_DIRECTION_LICENCE,
      note: "answers generated by Gemma-2B-it, Llama-2-7B-chat, Llama-3-8B-Instruct, Qwen-1.8B-chat and Yi-6B-chat: those models' terms of use apply",
    },
    files: jbbRunFiles('ablation'),
    extract: completions((c) => c.is_jailbreak_llamaguard2 === 1),
  }),
  define({
    name: 'safe-refusals',
    role: 'anchor',
    description:
      'Safe refusals: JailbreakBench prompts answered by five aligned chat models, kept where LlamaGuard 2 judged the answer safe and it reads as a refusal (406 pairs)',
    licence: {
      spdx: 'Apache-2.0',
      url: REFUSAL_DIRECTION_LICENCE,
      note: "answers generated by Gemma-2B-it, Llama-2-7B-chat, Llama-3-8B-Instruct, Qwen-1.8B-chat and Yi-6B-chat: those models' terms of use apply",
    },
    files: jbbRunFiles('baseline'),
    // Safe but compliant answers ("Sure, here are some betting tips") are no refusals: both judges must agree.
    extract: completions((c) => c.is_jailbreak_llamaguard2 === 0 && c.is_jailbreak_substring_matching === 0),
  }),
  define({
    name: 'safety-tuned-llamas',
    role: 'anchor',
    description: 'Safety-Tuned LLaMAs: 2,483 sensitive or harmful instructions with safe answers (mostly refusals)',
    licence: {
      spdx: 'CC-BY-NC-4.0',
      url: `${licenceAt(SAFETY_TUNED_LLAMAS, 'README.md')}#licensing`,
      note: 'non-commercial use only; part of the answers are GPT-generated',
    },
    files: [
      pinned(
        SAFETY_TUNED_LLAMAS,
        'data/training/safety_only_data_Instructions.json',
        '7dde08acf87f10cf74fd1b76f56538eae8e413ae8e6b09e3f7bcd97769058dbe',
        1238429,
      ),
    ],
    extract: instructionOutput,
  }),
];

const BY_NAME = new Map(DEFINITIONS.map((d) => [d.name, d]));

/** Whether `name` is a registered reference set (as opposed to a file path). */
export function isReferenceSetName(name: string): boolean {
  return BY_NAME.has(name);
}

/** The definition of a registered set, or undefined. */
export function referenceSetDefinition(name: string): ReferenceSetDefinition | undefined {
  return BY_NAME.get(name);
}

/** Every registered set, without its extractor. */
export function listReferenceSets(role?: ReferenceRole): ReferenceSetInfo[] {
  return DEFINITIONS.filter((d) => role === undefined || d.role === role).map(({ extract: _extract, ...info }) => ({
    ...info,
    licence: { ...info.licence },
    files: info.files.map((f) => ({ ...f })),
  }));
}
