// The options of `sot purify` and `sot embed`, one table per help group. A new
// option is one entry in its group's table; its help text may be a function of
// the defaults (read when the help is shown, so that it states the values
// that will actually apply and `sot --help` needs no native binary).
import { type Command, InvalidArgumentError, Option } from 'commander';
import {
  coreDefaults,
  DEFAULT_FIT_SAMPLE,
  DEFAULT_SHARD_REFIT,
  DEFAULT_SHARD_RETRIES,
  EMBEDDER_LEARNER_DEFAULTS,
  PURIFY_DEFAULTS,
  REFIT_AUTO,
  type CoreDefaults,
  type EmbedderLearnerDefaults,
} from '../defaults.js';
import { BUILTIN_DIM_HELP, LLM_DEFAULTS, OPENAI_DEFAULTS, TRANSFORMERS_DEFAULTS } from '../embed/defaults.js';
import { EMBEDDERS } from '../embed/providers.js';
import { FILE_FORMATS, MAX_LINE_BYTES, RECORD_FORMATS } from '../io/index.js';
import { METHODS } from '../learner.js';
import { defaultBudget } from '../pipeline/memory.js';
import type { ReasonsFor } from '../pipeline/audit.js';
import { parseBytes } from '../storage.js';

/** What a help text may quote. `core` is undefined when the native binary cannot be loaded. */
export interface HelpDefaults {
  core: CoreDefaults | undefined;
  embedders: Readonly<Partial<Record<string, EmbedderLearnerDefaults>>>;
  purify: typeof PURIFY_DEFAULTS;
  memoryBudget: number;
}

export interface Flag {
  /** Commander's flags, e.g. `--eps <x>`. */
  flags: string;
  help: string | ((d: HelpDefaults) => string);
  parse?: (value: string, previous: never) => unknown;
  choices?: readonly string[];
  /** The value commander sets when the flag is absent (shown in the help). */
  value?: unknown;
  /** Checked after unknown options, so that a misspelled flag gets its hint first. */
  required?: boolean;
}

export type Group = 'input' | 'references' | 'selection' | 'learner' | 'embedder' | 'scale' | 'output';

export const GROUP_TITLES: Record<Group, string> = {
  input: 'Input:',
  references: 'References:',
  selection: 'Selection:',
  learner: 'Learner:',
  embedder: 'Embedder:',
  scale: 'Scale-out (fit on a sample, score in shards; docs/model-file.md):',
  output: 'Output:',
};

// ------------------------------------------------------------ value parsers

export function number(name: string, min?: number, max?: number) {
  return (v: string) => {
    const x = Number(v);
    if (v.trim() === '' || !Number.isFinite(x) || (min !== undefined && x < min) || (max !== undefined && x > max)) {
      throw new InvalidArgumentError(
        `${name} must be a number${min !== undefined ? ` >= ${min}` : ''}${max !== undefined ? ` and <= ${max}` : ''}`,
      );
    }
    return x;
  };
}

export function integer(name: string, min = 0) {
  return (v: string) => {
    const x = Number(v);
    if (!/^\d+$/.test(v.trim()) || x < min) throw new InvalidArgumentError(`${name} must be an integer >= ${min}`);
    return x;
  };
}

/** A refit flag: a number of passes, or `auto` (until the marginal error is small). */
export function refitFlag(name: string) {
  return (v: string): number | 'auto' => {
    if (v.trim() === 'auto') return 'auto';
    if (!/^\d+$/.test(v.trim())) throw new InvalidArgumentError(`${name} must be an integer >= 0 or auto`);
    return Number(v);
  };
}

export function size(name: string) {
  return (v: string) => {
    try {
      return parseBytes(name, v);
    } catch (err) {
      throw new InvalidArgumentError((err as Error).message);
    }
  };
}

export const list = (v: string, prev: string[] = []) => [
  ...prev,
  ...v
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean),
];

// ------------------------------------------------------------ default texts

/** `8 GiB`, `256 MiB`, `1.5 GiB`: sizes as the help shows them. */
export function formatBytes(b: number): string {
  const units = ['bytes', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  let x = b;
  while (x >= 1024 && i < units.length - 1) {
    x /= 1024;
    i++;
  }
  return `${Number.isInteger(x) ? x : x.toFixed(1)} ${units[i]}`;
}

const UNAVAILABLE = "the native core's (it could not be loaded)";

/** A core default, or a note that it cannot be read without the binary. */
function core(d: HelpDefaults, pick: (c: CoreDefaults) => number | string): string {
  return d.core === undefined ? UNAVAILABLE : String(pick(d.core));
}

/**
 * A learner option's default as it applies: embedders that bring their own
 * value first (the built-in one is the default embedder), then the core's.
 */
function learnerDefault(d: HelpDefaults, key: 'eps' | 'lambda' | 'tau'): string {
  const own = Object.entries(d.embedders)
    .filter(([, v]) => v?.[key] !== undefined)
    .map(([kind, v]) => `${v![key]} with --embedder ${kind}${kind === 'builtin' ? ' (the default)' : ''}`);
  const base = core(d, (c) => c.learner[key]);
  return own.length === 0 ? `default ${base}` : `default ${own.join(', ')}; ${base} with the others`;
}

// ------------------------------------------------------------ the tables

/** How records become texts (purify and embed). */
export const INPUT: Flag[] = [
  { flags: '--format <format>', help: 'file format (default: from the extension)', choices: FILE_FORMATS },
  {
    flags: '--record-format <layout>',
    help: 'record layout (default: detected from the first record)',
    choices: RECORD_FORMATS,
  },
  {
    flags: '--prompt-field <field>',
    help: 'field(s) holding the prompt (comma-separated, joined by a blank line)',
    parse: list,
  },
  { flags: '--response-field <field>', help: 'field holding the response' },
  { flags: '--text-field <field>', help: 'field holding the whole text (no template)' },
  {
    flags: '--template <template>',
    help: 'embedding text built from {prompt} and {response}',
    value: PURIFY_DEFAULTS.template,
  },
  { flags: '--skip-invalid', help: 'skip (and count) invalid records instead of failing on the first' },
  {
    flags: '--max-line-bytes <size>',
    help: (d) =>
      `longest line (or whole .json file) read, e.g. 512MiB (default ${formatBytes(d.purify.maxLineBytes)}, at most ${MAX_LINE_BYTES} bytes)`,
    parse: size('--max-line-bytes'),
  },
];

/** How texts become vectors (purify and embed). */
export const EMBEDDER: Flag[] = [
  {
    flags: '--embedder <kind>',
    help: 'embedder (default builtin; precomputed when --vectors-field/--vectors-npy is given)',
    choices: EMBEDDERS,
  },
  {
    flags: '--dim <n>',
    help: `builtin: vector length (default ${BUILTIN_DIM_HELP})`,
    parse: integer('--dim', 8),
  },
  {
    flags: '--model <name>',
    help: 'transformers: model folder or name under --model-dir; openai: model name (env SOT_EMBEDDINGS_MODEL); llm: a .gguf chat model file',
  },
  { flags: '--model-dir <dir>', help: 'transformers: folder of local models (default <cache dir>/models)' },
  { flags: '--allow-remote-models', help: 'transformers: allow downloading the model from the Hugging Face hub' },
  {
    flags: '--dtype <dtype>',
    help: 'transformers: weights variant: fp32 (onnx/model.onnx), q8 (onnx/model_quantized.onnx), fp16, ...',
  },
  {
    flags: '--max-length <n>',
    help: `transformers: tokens per text at most (default ${TRANSFORMERS_DEFAULTS.maxLength}, or the model's limit when lower)`,
    parse: integer('--max-length', 1),
  },
  {
    flags: '--embed-url <url>',
    help: 'openai: base URL up to /v1 (env SOT_EMBEDDINGS_URL or OPENAI_BASE_URL; default https://api.openai.com/v1)',
  },
  { flags: '--embed-key <key>', help: 'openai: API key (prefer env SOT_EMBEDDINGS_KEY or OPENAI_API_KEY)' },
  {
    flags: '--embed-dimensions <n>',
    help: 'openai: ask the model for shorter vectors (`dimensions`)',
    parse: integer('--embed-dimensions', 1),
  },
  {
    flags: '--embed-batch <n>',
    help: `openai, transformers: texts per request / forward pass at most (default ${OPENAI_DEFAULTS.batchSize} / ${TRANSFORMERS_DEFAULTS.batchSize})`,
    parse: integer('--embed-batch', 1),
  },
  {
    flags: '--embed-concurrency <n>',
    help: `openai, transformers, llm: requests in flight / passes queued per worker / records evaluated at once (default ${OPENAI_DEFAULTS.concurrency} / ${TRANSFORMERS_DEFAULTS.concurrency} / ${LLM_DEFAULTS.concurrency})`,
    parse: integer('--embed-concurrency', 1),
  },
  {
    flags: '--embed-workers <n>',
    help: `transformers: worker processes, each with its own ONNX Runtime session (default the cores, at most ${TRANSFORMERS_DEFAULTS.maxWorkers})`,
    parse: integer('--embed-workers', 1),
  },
  {
    flags: '--embed-threads <n>',
    help: 'transformers: ONNX Runtime threads per worker (default the cores divided among the workers); llm: CPU threads per evaluation (default the cores less one)',
    parse: integer('--embed-threads', 1),
  },
  {
    flags: '--context-size <n>',
    help: `llm: tokens per record at most, chat template included; longer records are cut (default ${LLM_DEFAULTS.contextSize})`,
    parse: integer('--context-size', 8),
  },
  {
    flags: '--embed-max-tokens <n>',
    help: `transformers: padded tokens per forward pass, texts x longest (default ${TRANSFORMERS_DEFAULTS.maxBatchTokens})`,
    parse: integer('--embed-max-tokens', 1),
  },
  {
    flags: '--embed-timeout <ms>',
    help: `openai: per-request timeout in ms (default ${OPENAI_DEFAULTS.timeoutMs})`,
    parse: integer('--embed-timeout', 1),
  },
  {
    flags: '--embed-retries <n>',
    help: `openai: retries per request on 429/5xx/timeouts/network errors (default ${OPENAI_DEFAULTS.maxRetries})`,
    parse: integer('--embed-retries', 0),
  },
  {
    flags: '--vectors-field <field>',
    help: 'precomputed: field of every record (dataset and reference files) holding its vector',
  },
  {
    flags: '--vectors-npy <file>',
    help: "precomputed: .npy matrix of the dataset's vectors, row i for record i (reference files need a .npy of the same stem beside them)",
  },
  { flags: '--cache-dir <dir>', help: 'download and embedding cache (env SOT_CACHE_DIR; default ~/.cache/sot)' },
  { flags: '--no-cache', help: 'do not read or write the embedding cache' },
];

/** The reference sets purify pushes from and pulls to. */
export const REFERENCES: Flag[] = [
  {
    flags: '--harmful <sets>',
    help: 'harmful reference: files and/or named sets (comma-separated; see `sot sets`) (required)',
    parse: list,
    required: true,
  },
  {
    flags: '--anchor <sets>',
    help: 'safe anchor: ~50 clean samples of the same task (files and/or named sets)',
    parse: list,
  },
  { flags: '--data-dir <dir>', help: 'offline mirror of the named reference sets (env SOT_DATA_DIR)' },
  { flags: '--offline', help: 'never download reference sets (env SOT_OFFLINE=1)' },
];

/** Which records purify keeps. */
export const SELECTION: Flag[] = [
  {
    flags: '--keep <fraction|auto>',
    help: (d) =>
      `fraction of records to keep, or 'auto': nothing dropped when the data look clean; when they look contaminated, the lowest scores up to the estimate's upper end (the estimated share and its margin), and never fewer than the default drops; the default when the estimate is inconclusive (method sot) (default ${'fraction' in d.purify.keep ? d.purify.keep.fraction : `${d.purify.keep.count} records`})`,
    parse: (v: string) => (v.trim() === 'auto' ? 'auto' : number('--keep', 0, 1)(v)),
  },
  { flags: '--keep-count <n>', help: 'number of records to keep (instead of --keep)', parse: integer('--keep-count') },
  {
    flags: '--method <method>',
    help: 'scoring method (the others are baselines)',
    choices: METHODS,
    value: PURIFY_DEFAULTS.method,
  },
  { flags: '--seed <n>', help: 'seed of the random baseline (default 0)', parse: integer('--seed') },
];

/** The run's memory budget (purify, fit, embed): the built-in embedder's length and the learner's cost storage follow it. */
export const MEMORY_BUDGET: Flag = {
  flags: '--memory-budget <size>',
  help: (d) =>
    `memory the run may take, e.g. 8GB or 512MiB: the built-in embedder's automatic length keeps its vectors within 1/16 of it (never below 512), and the learner's costs are stored dense when they fit, else truncated to each sample's nearest references (default ${formatBytes(d.memoryBudget)} here: 8 GiB, or half the RAM if less)`,
  parse: size('--memory-budget'),
};

/** The push-pull learner and how its costs are held. */
export const LEARNER: Flag[] = [
  {
    flags: '--eps <x>',
    help: (d) => `entropic regularisation, in cost units (${learnerDefault(d, 'eps')})`,
    parse: number('--eps', 0),
  },
  {
    flags: '--lambda <x>',
    help: (d) => `weight of the push away from the harmful set (${learnerDefault(d, 'lambda')})`,
    parse: number('--lambda', 0),
  },
  {
    flags: '--tau <x>',
    help: (d) => `KL regularisation towards uniform weights (${learnerDefault(d, 'tau')})`,
    parse: number('--tau', 0),
  },
  {
    flags: '--own-harm <share>',
    help: (d) =>
      `share of the records, the most harmful-looking of a first solve, that join the harmful set for a second one (0: one solve; default ${core(d, (c) => c.learner.ownHarmShare)})`,
    parse: number('--own-harm', 0, 0.5),
  },
  {
    flags: '--max-steps <n>',
    help: (d) => `learner steps at most (default ${core(d, (c) => c.learner.maxSteps)})`,
    parse: integer('--max-steps', 1),
  },
  MEMORY_BUDGET,
  {
    flags: '--neighbours <n>',
    help: (d) =>
      `nearest references per sample when the costs are truncated (default ${core(d, (c) => c.storage.neighbours)})`,
    parse: integer('--neighbours', 1),
  },
];

/** Sharded purification: fit on a sample, score shards in workers, merge. */
export const SCALE_OUT: Flag[] = [
  {
    flags: '--shards <n>',
    help: 'fit on a uniform sample, score the records in n shards in worker processes, merge',
    parse: integer('--shards', 1),
  },
  {
    flags: '--workers <n>',
    help: 'with --shards: worker processes at once (default: shards, at most the cores)',
    parse: integer('--workers', 1),
  },
  {
    flags: '--sample <n>',
    help: `with --shards: records to fit on (default: all up to ${DEFAULT_FIT_SAMPLE})`,
    parse: integer('--sample', 1),
  },
  {
    flags: '--refit <n|auto>',
    help: `with --shards: column updates of the fitted potentials over all records, one pass each, or 'auto': until the marginal error is below ${REFIT_AUTO.tolerance}, at most ${REFIT_AUTO.maxPasses} passes (default ${DEFAULT_SHARD_REFIT} when the sample is smaller than the records, else 0)`,
    parse: refitFlag('--refit'),
  },
  {
    flags: '--save-model <file>',
    help: 'with --shards: also write the final (refined) model file, with the dataset and scores',
  },
  {
    flags: '--retries <n>',
    help: `with --shards: attempts after a shard's first failure, each alone (default ${DEFAULT_SHARD_RETRIES}; a failure on the input is not retried)`,
    parse: integer('--retries'),
  },
  { flags: '--redis <url>', help: 'with --shards: queue the shards on this Redis for `sot shard-worker` processes' },
  {
    flags: '--work-dir <dir>',
    help: 'with --shards: folder for the model and the shard results (shared with the workers when --redis)',
  },
];

/** The removed-records file: purify's and score's. */
export const REMOVED: Flag[] = [
  {
    flags: '--removed <file>',
    help: "every dropped record, in the input's format, with its score, rank, pull, push and reason (default: <input>.removed.<ext>, or <output>.removed.<ext> with --output)",
  },
  { flags: '--no-removed', help: 'do not write the removed records' },
];

/** Where purify writes. */
export const PURIFY_OUTPUT: Flag[] = [
  { flags: '-o, --output <file>', help: 'purified dataset (default: <input>.purified.<ext>)' },
  { flags: '--scores <file>', help: 'per-sample scores CSV (default: <output>.scores.csv)' },
  { flags: '--report <file>', help: 'JSON report (default: <output>.report.json)' },
  { flags: '--html <file>', help: 'HTML report (default: <output>.report.html)' },
  { flags: '--no-html', help: 'do not write the HTML report' },
  ...REMOVED,
  {
    flags: '--reasons <which>',
    help: 'records whose nearest harmful references are looked up (default dropped)',
    choices: ['dropped', 'all'],
  },
  {
    flags: '--reason-neighbours <n>',
    help: 'nearest harmful references per explained record (default 3)',
    parse: integer('--reason-neighbours', 1),
  },
  {
    flags: '--group-field <field>',
    help: 'field whose values the report breaks the records down by (default: source, category, ... when present)',
  },
  {
    flags: '--weight-field <name>',
    help: 'field added to kept records with their training weight (a field the records already have is refused)',
    value: PURIFY_DEFAULTS.weightField,
  },
  { flags: '--no-weight-field', help: 'write kept records unchanged' },
];

/** Where embed writes. */
export const EMBED_OUTPUT: Flag[] = [
  {
    flags: '-o, --output <file>',
    help: '.npy file to write (float32, rows x dim); - or a pipe is streamed to (required)',
    required: true,
  },
];

/** How every data command reports. */
export const REPORTING: Flag[] = [
  { flags: '--json', help: 'print a machine-readable JSON summary (or error) on stdout' },
  { flags: '-q, --quiet', help: 'no progress output' },
];

/** The input kinds the readers accept, as the commands' help names them. */
export const INPUT_KINDS = FILE_FORMATS.map((f) => `.${f}`).join(', ');

/** The learner options the LEARNER flags set (purify, fit, purify --shards). */
export function learnerFlags(f: Record<string, unknown>) {
  return {
    eps: f.eps as number | undefined,
    lambda: f.lambda as number | undefined,
    tau: f.tau as number | undefined,
    ownHarmShare: f.ownHarm as number | undefined,
    maxSteps: f.maxSteps as number | undefined,
    storage: f.neighbours === undefined ? undefined : { neighbours: f.neighbours as number },
  };
}

/** The references and run settings of purify, fit and purify --shards. */
export function runFlags(f: Record<string, unknown>) {
  return {
    harmful: f.harmful as string[],
    anchor: (f.anchor as string[] | undefined) ?? [],
    seed: f.seed as number | undefined,
    learner: learnerFlags(f),
    memoryBudget: f.memoryBudget as number | undefined,
    dataDir: f.dataDir as string | undefined,
    offline: f.offline === true ? true : undefined,
  };
}

/** The selection and outputs of purify, with or without --shards (no keep flag: the default K). */
export function purifyFlags(f: Record<string, unknown>) {
  return {
    output: f.output as string | undefined,
    scores: f.scores as string | undefined,
    report: f.report as string | undefined,
    html: f.html === false ? null : (f.html as string | undefined),
    removed: f.removed === false ? null : (f.removed as string | undefined),
    reasons: { for: f.reasons as ReasonsFor | undefined, neighbours: f.reasonNeighbours as number | undefined },
    groupField: f.groupField as string | undefined,
    keep:
      f.keepCount !== undefined
        ? { count: f.keepCount as number }
        : f.keep === 'auto'
          ? ('auto' as const)
          : f.keep !== undefined
            ? { fraction: f.keep as number }
            : undefined,
    weightField: f.weightField === false ? null : (f.weightField as string),
  };
}

// ------------------------------------------------------------ wiring

let helpDefaults: HelpDefaults | undefined;

function readHelpDefaults(): HelpDefaults {
  if (helpDefaults === undefined) {
    let c: CoreDefaults | undefined;
    try {
      c = coreDefaults();
    } catch {
      c = undefined; // no binary for this platform: the help still works, and says so
    }
    helpDefaults = {
      core: c,
      embedders: EMBEDDER_LEARNER_DEFAULTS,
      purify: PURIFY_DEFAULTS,
      memoryBudget: defaultBudget(),
    };
  }
  return helpDefaults;
}

/** The flags commander must see as required, per command (checked by `checkRequired`). */
const REQUIRED = new WeakMap<Command, Option[]>();

/** Adds a group's flags to a command, under the group's heading. */
export function addFlags(cmd: Command, group: Group, flags: readonly Flag[]): Command {
  for (const f of flags) {
    const o = new Option(f.flags, typeof f.help === 'string' ? f.help : '').helpGroup(GROUP_TITLES[group]);
    if (typeof f.help === 'function') {
      const text = f.help;
      Object.defineProperty(o, 'description', {
        get: () => text(readHelpDefaults()),
        set: () => {},
        configurable: true,
      });
    }
    if (f.parse) o.argParser(f.parse as (value: string, previous: unknown) => unknown);
    if (f.choices) o.choices(f.choices as string[]);
    if (f.value !== undefined) o.default(f.value);
    cmd.addOption(o);
    if (f.required) REQUIRED.set(cmd, [...(REQUIRED.get(cmd) ?? []), o]);
  }
  return cmd;
}

/**
 * Required flags, checked before the action runs: after commander's check
 * for unknown options, so `--harmfull` gets "did you mean --harmful?" rather
 * than "--harmful not specified".
 */
export function checkRequired(cmd: Command): void {
  for (const o of REQUIRED.get(cmd) ?? []) {
    if (cmd.getOptionValue(o.attributeName()) === undefined) {
      cmd.error(`error: required option '${o.flags}' not specified`, {
        code: 'commander.missingMandatoryOptionValue',
        exitCode: 2,
      });
    }
  }
}
