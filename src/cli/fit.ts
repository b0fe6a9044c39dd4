// `sot fit` and `sot score`: fit once, score anywhere (docs/model-file.md).
import { type Command, Option } from 'commander';
import type { Embedder } from '../embed/types.js';
import { OptionError } from '../errors.js';
import { fit } from '../fit/fit.js';
import { score } from '../fit/score.js';

/** What main.ts shares with the subcommands registered here. */
export interface CliHelpers {
  dataOptions(cmd: Command): Command;
  dataConfig(f: never, signal?: AbortSignal): Promise<Record<string, unknown> & { embedder: Embedder }>;
  interruptible<T>(work: (signal: AbortSignal) => Promise<T>): Promise<T>;
  number(name: string, min?: number, max?: number): (v: string) => number;
  integer(name: string, min?: number): (v: string) => number;
  size(name: string): (v: string) => number;
  list(v: string, prev?: string[]): string[];
}

type Flags = Record<string, unknown> & { json?: boolean; quiet?: boolean };

/** Learner flags shared with `sot purify`. */
export function learnerFlags(f: Flags) {
  return {
    eps: f.eps as number | undefined,
    lambda: f.lambda as number | undefined,
    tau: f.tau as number | undefined,
    maxSteps: f.maxSteps as number | undefined,
    storage: f.neighbours === undefined ? undefined : { neighbours: f.neighbours as number },
  };
}

export function registerFitCommands(prog: Command, h: CliHelpers): void {
  registerShardWorker(prog, h);
  h.dataOptions(
    prog
      .command('fit')
      .description('learn on a dataset (or a uniform sample of it) and write a model file that `sot score` applies to any records')
      .argument('<input>', 'dataset: .jsonl, .json, .csv or .parquet (never modified)')
      .requiredOption('--harmful <sets>', 'harmful reference: files and/or named sets (comma-separated)', h.list)
      .option('--anchor <sets>', 'safe anchor: ~50 clean samples of the same task (files and/or named sets)', h.list)
      .option('--model-file <file>', 'model file to write (default: <input>.sot-model)')
      .option('--sample <n>', 'learn on this many records drawn uniformly (default: all)', h.integer('--sample', 1))
      .option('--seed <n>', 'seed of the sample (default 0)', h.integer('--seed'))
      .option('--eps <x>', 'entropic regularisation, in cost units', h.number('--eps', 0))
      .option('--lambda <x>', 'weight of the push away from the harmful set', h.number('--lambda', 0))
      .option('--tau <x>', 'KL regularisation towards uniform weights', h.number('--tau', 0))
      .option('--max-steps <n>', 'learner steps at most', h.integer('--max-steps', 1))
      .option('--memory-budget <size>', 'memory the run may take, e.g. 8GB', h.size('--memory-budget'))
      .option('--neighbours <n>', 'nearest references per sample when the costs are truncated', h.integer('--neighbours', 1))
      .option('--data-dir <dir>', 'offline mirror of the named reference sets (env SOT_DATA_DIR)')
      .option('--offline', 'never download reference sets (env SOT_OFFLINE=1)'),
  ).action(async (input: string, f: Flags) => {
    await h.interruptible(async (signal) => {
      const res = await fit({
        input,
        ...(await h.dataConfig(f as never, signal)),
        harmful: f.harmful as string[],
        anchor: (f.anchor as string[] | undefined) ?? [],
        model: f.modelFile as string | undefined,
        sample: f.sample as number | undefined,
        seed: f.seed as number | undefined,
        learner: learnerFlags(f),
        memoryBudget: f.memoryBudget as number | undefined,
        dataDir: f.dataDir as string | undefined,
        offline: f.offline === true ? true : undefined,
        signal,
      });
      if (f.json) process.stdout.write(`${JSON.stringify({ ok: true, model: res.model, records: res.records, sample: res.sample, steps: res.steps, converged: res.converged, warnings: res.warnings })}\n`);
      else {
        for (const w of res.warnings) process.stderr.write(`warning: ${w}\n`);
        process.stdout.write(`fitted on ${res.sample} of ${res.records} records (${res.steps} steps${res.converged ? '' : ', not converged'})\n  model: ${res.model}\n`);
      }
    });
  });

  h.dataOptions(
    prog
      .command('score')
      .description('score records against a model file (written by `sot fit`); with --keep, --keep-count or --threshold also write the purified dataset')
      .argument('<input>', 'dataset: .jsonl, .json, .csv or .parquet (never modified)')
      .requiredOption('--model-file <file>', 'model file written by `sot fit`')
      .option('--scores <file>', 'per-record scores CSV (default: <input>.scores.csv)')
      .option('-o, --output <file>', 'purified dataset (default: <input>.purified.<ext>; needs --keep, --keep-count or --threshold)')
      .option('--keep <fraction>', 'fraction of records to keep', h.number('--keep', 0, 1))
      .option('--keep-count <n>', 'number of records to keep', h.integer('--keep-count'))
      .option('--threshold <score>', 'keep the records scoring at least this (the model file lists the fit sample\'s score quantiles)', h.number('--threshold'))
      .option('--weight-field <name>', 'field added to kept records with their training weight', 'sot_weight')
      .option('--no-weight-field', 'write kept records unchanged'),
  ).action(async (input: string, f: Flags) => {
    const chosen = ['keep', 'keepCount', 'threshold'].filter((k) => f[k] !== undefined);
    if (chosen.length > 1) throw new OptionError('ERR_OPTION', 'use one of --keep, --keep-count and --threshold');
    // The model rebuilds the built-in embedder; any other must be named, and must match the model's.
    const embedder = f.embedder !== undefined || f.vectorsField !== undefined || f.vectorsNpy !== undefined;
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
        keep: f.keepCount !== undefined ? { count: f.keepCount as number } : f.keep !== undefined ? { fraction: f.keep as number } : undefined,
        threshold: f.threshold as number | undefined,
        weightField: f.weightField === false ? null : (f.weightField as string),
        signal,
      });
      if (f.json) process.stdout.write(`${JSON.stringify({ ok: true, records: res.records, kept: res.kept, outputs: res.outputs })}\n`);
      else process.stdout.write(`scored ${res.records} records${res.kept === null ? '' : `, kept ${res.kept}`}\n  scores:  ${res.outputs.scores}${res.outputs.dataset ? `\n  dataset: ${res.outputs.dataset}` : ''}\n`);
    });
  });
}

/** `sot shard-worker`: runs the shards that `sot purify --shards N --redis URL` queues. */
export function registerShardWorker(prog: Command, h: CliHelpers): void {
  prog
    .command('shard-worker')
    .description('run the shard jobs of `sot purify --shards N --redis URL` (any number of workers, on machines sharing --work-dir)')
    .requiredOption('--redis <url>', 'Redis URL, e.g. redis://127.0.0.1:6379')
    .option('--concurrency <n>', 'shards this process runs at once (default 1)', h.integer('--concurrency', 1))
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
export async function purifyShardedCli(input: string, f: Flags, h: CliHelpers): Promise<void> {
  const { purifySharded } = await import('../fit/shards.js');
  if (f.method !== undefined && f.method !== 'sot') throw new OptionError('ERR_OPTION', '--shards runs the SOT learner only (no --method)');
  await h.interruptible(async (signal) => {
    const res = await purifySharded({
      input,
      ...(await h.dataConfig(f as never, signal)),
      harmful: f.harmful as string[],
      anchor: (f.anchor as string[] | undefined) ?? [],
      output: f.output as string | undefined,
      scores: f.scores as string | undefined,
      keep: f.keepCount !== undefined ? { count: f.keepCount as number } : { fraction: (f.keep as number | undefined) ?? 0.8 },
      weightField: f.weightField === false ? null : (f.weightField as string),
      shards: f.shards as number,
      workers: f.workers as number | undefined,
      redis: f.redis as string | undefined,
      workDir: f.workDir as string | undefined,
      sample: f.sample as number | undefined,
      seed: f.seed as number | undefined,
      learner: learnerFlags(f),
      memoryBudget: f.memoryBudget as number | undefined,
      dataDir: f.dataDir as string | undefined,
      offline: f.offline === true ? true : undefined,
      signal,
    });
    if (f.json) process.stdout.write(`${JSON.stringify({ ok: true, n: res.n, k: res.k, sample: res.sample, attempts: res.attempts, outputs: res.outputs })}\n`);
    else process.stdout.write(`kept ${res.k} of ${res.n} records (fitted on ${res.sample}, ${res.attempts.length} shards)\n  dataset: ${res.outputs.dataset}\n  scores:  ${res.outputs.scores}\n`);
  });
}
