// `sot fit` and `sot score`: fit once, score anywhere (docs/model-file.md).
import type { Command } from 'commander';
import { PURIFY_DEFAULTS, REFIT_AUTO } from '../defaults.js';
import type { Embedder } from '../embed/types.js';
import { OptionError } from '../errors.js';
import type { ShardedResult } from '../fit/shards.js';
import { fit } from '../fit/fit.js';
import { score } from '../fit/score.js';
import { ProgressLine } from './progress.js';
import {
  addFlags,
  EMBEDDER,
  type Flag,
  INPUT,
  INPUT_KINDS,
  integer,
  LEARNER,
  purifyFlags,
  runFlags,
  number,
  REFERENCES,
  refitFlag,
  REMOVED,
  REPORTING,
} from './flags.js';

/** What main.ts shares with the subcommands registered here. */
export interface CliHelpers {
  dataConfig(f: never, signal?: AbortSignal): Promise<Record<string, unknown> & { embedder: Embedder }>;
  interruptible<T>(work: (signal: AbortSignal) => Promise<T>): Promise<T>;
}

const FIT_OUTPUT: Flag[] = [
  { flags: '--model-file <file>', help: 'model file to write (default: <input>.sot-model)' },
  {
    flags: '--sample <n>',
    help: 'learn on this many records drawn uniformly (default: all)',
    parse: integer('--sample', 1),
  },
  { flags: '--seed <n>', help: 'seed of the sample (default 0)', parse: integer('--seed') },
  {
    flags: '--refit <n|auto>',
    help: `after learning, column updates of the model's potentials over every record, one pass each, or 'auto': until the marginal error is below ${REFIT_AUTO.tolerance}, at most ${REFIT_AUTO.maxPasses} passes; written into the model file (default 0: read only the sample)`,
    parse: refitFlag('--refit'),
  },
];

const SCORE_SELECTION: Flag[] = [
  { flags: '--model-file <file>', help: 'model file written by `sot fit` (required)', required: true },
  {
    flags: '--keep <fraction|auto>',
    help: "fraction of records to keep, or 'auto': the share the fit's automatic K keeps of its sample, from the model's contamination estimate (as `sot purify --keep auto`)",
    parse: (v: string) => (v.trim() === 'auto' ? 'auto' : number('--keep', 0, 1)(v)),
  },
  { flags: '--keep-count <n>', help: 'number of records to keep', parse: integer('--keep-count') },
  {
    flags: '--threshold <score>',
    help: "keep the records scoring at least this (the model file lists the fit sample's score quantiles)",
    parse: number('--threshold'),
  },
  {
    flags: '--refit <n|auto>',
    help: `column updates of the model's potentials over these records before scoring, one pass each, or 'auto' (as for fit) (default 0; the model file is not changed: see --save-model)`,
    parse: refitFlag('--refit'),
  },
];

const SCORE_OUTPUT: Flag[] = [
  { flags: '--scores <file>', help: 'per-record scores CSV (default: <input>.scores.csv)' },
  {
    flags: '--save-model <file>',
    help: 'write the refined model here with the other outputs (needs --refit; may be the --model-file itself)',
  },
  {
    flags: '-o, --output <file>',
    help: 'purified dataset (default: <input>.purified.<ext>; needs --keep, --keep-count or --threshold)',
  },
  {
    flags: '--weight-field <name>',
    help: 'field added to kept records with their training weight',
    value: PURIFY_DEFAULTS.weightField,
  },
  { flags: '--no-weight-field', help: 'write kept records unchanged' },
  ...REMOVED,
];

type Flags = Record<string, unknown> & { json?: boolean; quiet?: boolean };

/** What fitting reads from the flags, in `sot fit` and `sot purify --shards`. */
function fitFlags(f: Flags) {
  return { ...runFlags(f), sample: f.sample as number | undefined };
}

export function registerFitCommands(prog: Command, h: CliHelpers): void {
  registerShardWorker(prog, h);
  const fitCmd = prog
    .command('fit')
    .description(
      'learn on a dataset (or a uniform sample of it) and write a model file that `sot score` applies to any records',
    )
    .argument('<input>', `dataset: ${INPUT_KINDS} (never modified)`);
  addFlags(fitCmd, 'input', INPUT);
  addFlags(fitCmd, 'references', REFERENCES);
  addFlags(fitCmd, 'learner', LEARNER);
  addFlags(fitCmd, 'embedder', EMBEDDER);
  addFlags(fitCmd, 'output', [...FIT_OUTPUT, ...REPORTING]);
  fitCmd.action(async (input: string, f: Flags) => {
    const bar = new ProgressLine(process.stderr, !f.quiet && !f.json);
    await h.interruptible(async (signal) => {
      const res = await fit({
        input,
        ...(await h.dataConfig(f as never, signal)),
        ...fitFlags(f),
        model: f.modelFile as string | undefined,
        refit: f.refit as number | 'auto' | undefined,
        signal,
        onProgress: (e) => bar.update(e),
      }).finally(() => bar.done());
      if (f.json)
        process.stdout.write(
          `${JSON.stringify({ ok: true, model: res.model, records: res.records, sample: res.sample, refit: res.refit, refitError: res.refitError, steps: res.steps, converged: res.converged, warnings: res.warnings })}\n`,
        );
      else {
        for (const w of res.warnings) process.stderr.write(`warning: ${w}\n`);
        const refined = res.refit
          ? `, refined over all records in ${res.refit} pass(es), marginal error ${res.refitError?.toExponential(1)}`
          : '';
        process.stdout.write(
          `fitted on ${res.sample} of ${res.records} records (${res.steps} steps${res.converged ? '' : ', not converged'}${refined})\n  model: ${res.model}\n`,
        );
      }
    });
  });

  const scoreCmd = prog
    .command('score')
    .description(
      'score records against a model file (written by `sot fit`); with --keep, --keep-count or --threshold also write the purified dataset',
    )
    .argument('<input>', `dataset: ${INPUT_KINDS} (never modified)`);
  addFlags(scoreCmd, 'input', INPUT);
  addFlags(scoreCmd, 'selection', SCORE_SELECTION);
  addFlags(scoreCmd, 'embedder', EMBEDDER);
  addFlags(scoreCmd, 'output', [...SCORE_OUTPUT, ...REPORTING]);
  scoreCmd.action(async (input: string, f: Flags) => {
    const chosen = ['keep', 'keepCount', 'threshold'].filter((k) => f[k] !== undefined);
    if (chosen.length > 1) throw new OptionError('ERR_OPTION', 'use one of --keep, --keep-count and --threshold');
    // The model rebuilds the built-in embedder; any other must be named, and must match the model's.
    const embedder = f.embedder !== undefined || f.vectorsField !== undefined || f.vectorsNpy !== undefined;
    const bar = new ProgressLine(process.stderr, !f.quiet && !f.json);
    await h.interruptible(async (signal) => {
      const cfg = await h.dataConfig(f as never, signal);
      const res = await score({
        input,
        format: cfg.format as never,
        recordFormat: cfg.recordFormat as never,
        fields: cfg.fields as never,
        skipInvalid: cfg.skipInvalid as boolean | undefined,
        maxLineBytes: cfg.maxLineBytes as number | undefined,
        cacheDir: cfg.cacheDir as string | undefined,
        embeddingCache: cfg.embeddingCache as false | undefined,
        embedder: embedder ? cfg.embedder : undefined,
        model: f.modelFile as string,
        scores: f.scores as string | undefined,
        output: f.output as string | undefined,
        keep:
          f.keepCount !== undefined
            ? { count: f.keepCount as number }
            : f.keep === 'auto'
              ? 'auto'
              : f.keep !== undefined
                ? { fraction: f.keep as number }
                : undefined,
        threshold: f.threshold as number | undefined,
        refit: f.refit as number | 'auto' | undefined,
        saveModel: f.saveModel as string | undefined,
        weightField: f.weightField === false ? null : (f.weightField as string),
        removed: f.removed === false ? null : (f.removed as string | undefined),
        signal,
        onProgress: (e) => bar.update(e),
      }).finally(() => bar.done());
      if (f.json)
        process.stdout.write(
          `${JSON.stringify({ ok: true, records: res.records, kept: res.kept, refit: res.refit, outputs: res.outputs, warnings: res.warnings })}\n`,
        );
      else
        process.stdout.write(
          `scored ${res.records} records${res.kept === null ? '' : `, kept ${res.kept}`}${res.refit.passes ? ` after ${res.refit.passes} refit pass(es), marginal error ${res.refit.error?.toExponential(1)}` : ''}\n  scores:  ${res.outputs.scores}${res.outputs.dataset ? `\n  dataset: ${res.outputs.dataset}` : ''}${res.outputs.removed ? `\n  removed: ${res.outputs.removed}` : ''}${res.outputs.model ? `\n  model:   ${res.outputs.model}` : ''}\n`,
        );
      for (const w of res.warnings) process.stderr.write(`warning: ${w}\n`);
    });
  });
}

/** `sot shard-worker`: runs the shards that `sot purify --shards N --redis URL` queues. */
export function registerShardWorker(prog: Command, _h: CliHelpers): void {
  prog
    .command('shard-worker')
    .description(
      'run the shard jobs of `sot purify --shards N --redis URL` (any number of workers, on machines sharing --work-dir)',
    )
    .requiredOption('--redis <url>', 'Redis URL, e.g. redis://127.0.0.1:6379')
    .option('--concurrency <n>', 'shards this process runs at once (default 1)', integer('--concurrency', 1))
    .action(async (f: { redis: string; concurrency?: number }) => {
      const { startShardWorker } = await import('../service/queue/shards.js');
      const w = await startShardWorker(f.redis, { concurrency: f.concurrency });
      process.stderr.write(`sot shard-worker: waiting for shards on ${f.redis}\n`);
      await new Promise<void>((resolve) => {
        process.once('SIGINT', resolve);
        process.once('SIGTERM', resolve);
      });
      await w.close();
    });
}

/** `sot purify --shards N`: the purify flags, run as fit on a sample + sharded scoring. */
export async function purifyShardedCli(
  input: string,
  f: Flags,
  h: CliHelpers,
  print: (res: ShardedResult) => void,
): Promise<void> {
  const { purifySharded } = await import('../fit/shards.js');
  if (f.method !== undefined && f.method !== 'sot')
    throw new OptionError('ERR_OPTION', '--shards runs the SOT learner only (no --method)');
  await h.interruptible(async (signal) => {
    const res = await purifySharded({
      input,
      ...(await h.dataConfig(f as never, signal)),
      ...purifyFlags(f),
      shards: f.shards as number,
      workers: f.workers as number | undefined,
      retries: f.retries as number | undefined,
      redis: f.redis as string | undefined,
      workDir: f.workDir as string | undefined,
      refit: f.refit as number | 'auto' | undefined,
      saveModel: f.saveModel as string | undefined,
      ...fitFlags(f),
      signal,
    });
    print(res);
  });
}
