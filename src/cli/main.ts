import { Command, CommanderError } from 'commander';
import { fstatSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { AbortError, OptionError, SotError } from '../errors.js';
import { createEmbedder, type EmbedderKind } from '../embed/providers.js';
import type { FieldMapping } from '../io/types.js';
import type { ContaminationEstimate, Method } from '../learner.js';
import type { PurifyOptions } from '../pipeline/options.js';
import type { PurifyReport } from '../report/types.js';
import { purify } from '../pipeline/purify.js';
import { embedFile } from '../pipeline/embed-file.js';
import { rerenderReport } from '../pipeline/outputs.js';
import { listReferenceSets } from '../refsets/index.js';
import { EXIT, EXIT_HELP, exitCodeOf } from './exit-codes.js';
import {
  addFlags,
  checkRequired,
  EMBED_OUTPUT,
  EMBEDDER,
  INPUT,
  INPUT_KINDS,
  LEARNER,
  MEMORY_BUDGET,
  purifyFlags,
  runFlags,
  PURIFY_OUTPUT,
  REFERENCES,
  REPORTING,
  SCALE_OUT,
  SELECTION,
} from './flags.js';
import { ProgressLine } from './progress.js';
import { registerServeCommands } from './serve.js';
import { purifyShardedCli, registerFitCommands } from './fit.js';

const pkg = createRequire(import.meta.url)('../../package.json') as { version: string };

/** One line on how contaminated the data looked (empty without an estimate). */
function contaminationLine(c: ContaminationEstimate | undefined): string {
  if (!c) return '';
  const pct = (x: number) => `${(100 * x).toFixed(1)}%`;
  return `  contamination: ${pct(c.estimate)} (${Math.round(100 * c.level)}% interval ${pct(c.low)}-${pct(c.high)})${c.verdict === 'inconclusive' ? ': inconclusive' : c.clean ? ': looks clean' : ''}\n`;
}

/** What `sot purify` prints of its run (`--json`: one object), whole-dataset or sharded (`sharded`: its sample and attempts). */
function printPurified(
  r: PurifyReport,
  outputs: {
    dataset: string;
    scores: string;
    report: string;
    html: string | null;
    removed: string | null;
    model?: string | null;
  },
  json: boolean,
  sharded?: { sample: number; attempts: number[] },
): void {
  const { n, k } = r.selection;
  const contamination = r.contamination ?? undefined;
  if (json) {
    process.stdout.write(
      `${JSON.stringify({ ok: true, n, k, skipped: r.input.skipped, outputs, contamination: contamination ?? null, learner: r.learner && { steps: r.learner.steps, converged: r.learner.converged, innerIterations: r.learner.innerIterations, storage: r.learner.storage }, memory: r.memory, warnings: r.warnings, timings: r.timings, ...(sharded ? { sample: sharded.sample, attempts: sharded.attempts } : {}) })}\n`,
    );
    return;
  }
  for (const w of r.warnings) process.stderr.write(`warning: ${w}\n`);
  const skipped = r.input.skipped ? ` (${r.input.skipped} invalid records skipped)` : '';
  const how = sharded ? ` (fitted on ${sharded.sample}, ${sharded.attempts.length} shards)` : '';
  process.stdout.write(
    `kept ${k} of ${n} records${skipped}${how}\n${contaminationLine(contamination)}  dataset: ${outputs.dataset}\n  scores:  ${outputs.scores}\n  report:  ${outputs.report}${outputs.removed ? `\n  removed: ${outputs.removed}` : ''}${outputs.html ? `\n  html:    ${outputs.html}` : ''}${outputs.model ? `\n  model:   ${outputs.model}` : ''}\n`,
  );
}

interface DataFlags {
  format?: PurifyOptions['format'];
  recordFormat?: PurifyOptions['recordFormat'];
  promptField?: string[];
  responseField?: string;
  textField?: string;
  template: string;
  skipInvalid?: boolean;
  maxLineBytes?: number;
  dim?: number;
  embedder?: EmbedderKind;
  model?: string;
  modelDir?: string;
  allowRemoteModels?: boolean;
  dtype?: string;
  maxLength?: number;
  embedUrl?: string;
  embedKey?: string;
  embedDimensions?: number;
  embedBatch?: number;
  embedConcurrency?: number;
  embedWorkers?: number;
  embedThreads?: number;
  embedMaxTokens?: number;
  contextSize?: number;
  embedTimeout?: number;
  embedRetries?: number;
  vectorsField?: string;
  vectorsNpy?: string;
  cacheDir?: string;
  cache: boolean;
  json?: boolean;
  quiet?: boolean;
}

function fields(f: DataFlags): FieldMapping | undefined {
  if (!f.promptField && !f.responseField && !f.textField) return undefined;
  return { prompt: f.promptField, response: f.responseField, text: f.textField };
}

async function dataConfig(f: DataFlags, signal?: AbortSignal) {
  const embedder = await createEmbedder({
    kind: f.embedder,
    dim: f.dim,
    model: f.model,
    modelDir: f.modelDir,
    allowRemoteModels: f.allowRemoteModels,
    dtype: f.dtype,
    maxLength: f.maxLength,
    url: f.embedUrl,
    apiKey: f.embedKey,
    dimensions: f.embedDimensions,
    batchSize: f.embedBatch,
    concurrency: f.embedConcurrency,
    workers: f.embedWorkers,
    threads: f.embedThreads,
    maxBatchTokens: f.embedMaxTokens,
    contextSize: f.contextSize,
    timeoutMs: f.embedTimeout,
    maxRetries: f.embedRetries,
    vectorsField: f.vectorsField,
    vectorsNpy: f.vectorsNpy,
    cacheDir: f.cacheDir,
    signal,
  });
  return {
    format: f.format,
    recordFormat: f.recordFormat,
    fields: fields(f),
    template: f.template,
    skipInvalid: f.skipInvalid,
    maxLineBytes: f.maxLineBytes,
    embedder,
    cacheDir: f.cacheDir,
    embeddingCache: f.cache ? undefined : (false as const),
  };
}

/**
 * Runs a command with SIGINT/SIGTERM tied to an AbortSignal; a run they stop
 * rejects with an AbortError that names the signal, whichever stage it hit.
 * Once the outputs are being renamed into place a signal no longer stops the
 * run (they commit as a unit): it completes, and says so.
 */
async function interruptible<T>(work: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const ac = new AbortController();
  let received: NodeJS.Signals | undefined;
  const stop = (sig: NodeJS.Signals) => {
    received = sig;
    ac.abort(new AbortError(`interrupted by ${sig}; no output was written`));
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  try {
    const result = await work(ac.signal);
    if (received !== undefined)
      process.stderr.write(
        `sot: ${received} came while the outputs were being committed, which is not interrupted: the run completed and every output was written\n`,
      );
    return result;
  } catch (err) {
    throw ac.signal.aborted ? ac.signal.reason : err;
  } finally {
    process.off('SIGINT', stop);
    process.off('SIGTERM', stop);
  }
}

/** `-o -` is standard output. */
const outputPath = (p: string) => (p === '-' ? '/dev/stdout' : p);

/** Whether `path` is this process's standard output: its summary then goes to stderr, away from the data. */
function isStdout(path: string): boolean {
  try {
    const a = statSync(path);
    const b = fstatSync(1);
    return a.dev === b.dev && a.ino === b.ino;
  } catch {
    return false;
  }
}

const fitHelpers = { dataConfig: dataConfig as never, interruptible };

function program(): Command {
  const prog = new Command('sot')
    .description('Safety Optimal Transport: purify LLM fine-tuning datasets before training')
    .version(pkg.version)
    .exitOverride() // before the subcommands, which inherit it: main() maps errors to exit codes
    .showHelpAfterError('(run with --help for usage)')
    // Required flags are checked here, after unknown options (see checkRequired).
    .hook('preAction', (_prog, command) => checkRequired(command))
    .addHelpText(
      'after',
      `
Examples:
  sot purify train.jsonl --harmful advbench,harmbench --anchor clean50.jsonl
  sot purify chats.parquet --harmful my-harmful.csv --keep 0.9 --json
  sot embed train.jsonl -o train.npy
  sot report train.purified.report.json -o report.html
  sot sets

${EXIT_HELP}`,
    );

  const purifyCmd = prog
    .command('purify')
    .description('score every sample, keep the top K and write the purified dataset, a scores file and a report')
    .argument('<input>', `dataset: ${INPUT_KINDS} (never modified)`);
  addFlags(purifyCmd, 'input', INPUT);
  addFlags(purifyCmd, 'references', REFERENCES);
  addFlags(purifyCmd, 'selection', SELECTION);
  addFlags(purifyCmd, 'learner', LEARNER);
  addFlags(purifyCmd, 'embedder', EMBEDDER);
  addFlags(purifyCmd, 'scale', SCALE_OUT);
  addFlags(purifyCmd, 'output', [...PURIFY_OUTPUT, ...REPORTING]);
  purifyCmd.action(async (input: string, f: DataFlags & Record<string, unknown>) => {
    if (f.keep !== undefined && f.keepCount !== undefined)
      throw new OptionError('ERR_OPTION', 'use --keep or --keep-count, not both');
    if (f.saveModel !== undefined && f.shards === undefined)
      throw new OptionError('ERR_OPTION', '--save-model needs --shards (or use sot fit / sot score --save-model)');
    if (f.shards !== undefined)
      return purifyShardedCli(input, f, fitHelpers, (res) =>
        printPurified(res.report, res.outputs, f.json === true, res),
      );
    const bar = new ProgressLine(process.stderr, !f.quiet && !f.json);
    await interruptible(async (signal) => {
      try {
        const res = await purify({
          input,
          ...(await dataConfig(f, signal)),
          ...runFlags(f),
          ...purifyFlags(f),
          method: f.method as Method,
          signal,
          onProgress: (e) => bar.update(e),
        });
        bar.done();
        printPurified(res.report, res.outputs, f.json === true);
      } finally {
        bar.done();
      }
    });
  });

  const embedCmd = prog
    .command('embed')
    .description('embed a dataset (or reference file) into a .npy matrix, one row per record, and fill the cache')
    .argument('<input>', `dataset: ${INPUT_KINDS}`);
  addFlags(embedCmd, 'input', INPUT);
  addFlags(embedCmd, 'embedder', [...EMBEDDER, MEMORY_BUDGET]);
  addFlags(embedCmd, 'output', [...EMBED_OUTPUT, ...REPORTING]);
  embedCmd.action(async (input: string, f: DataFlags & { output: string; memoryBudget?: number }) => {
    const bar = new ProgressLine(process.stderr, !f.quiet && !f.json);
    await interruptible(async (signal) => {
      try {
        const output = outputPath(f.output);
        const summary = isStdout(output) ? process.stderr : process.stdout;
        const res = await embedFile({
          input,
          output,
          ...(await dataConfig(f, signal)),
          memoryBudget: f.memoryBudget,
          signal,
          onProgress: (e) => bar.update(e),
        });
        bar.done();
        if (f.json) summary.write(`${JSON.stringify({ ok: true, ...res })}\n`);
        else summary.write(`embedded ${res.rows} records (${res.dim}-d, ${res.embedder}) -> ${res.output}\n`);
      } finally {
        bar.done();
      }
    });
  });

  prog
    .command('report')
    .description('render the HTML page of a JSON report written by `sot purify`')
    .argument('<report.json>', 'JSON report')
    .requiredOption('-o, --output <file>', 'HTML file to write; - or a pipe is streamed to')
    .action(async (reportPath: string, f: { output: string }) => {
      const output = outputPath(f.output);
      const summary = isStdout(output) ? process.stderr : process.stdout;
      await rerenderReport(reportPath, output);
      summary.write(`wrote ${output}\n`);
    });

  prog
    .command('sets')
    .description('list the named reference sets, their sources and licences')
    .option('--json', 'machine-readable output')
    .action((f: { json?: boolean }) => {
      const sets = listReferenceSets();
      if (f.json) {
        process.stdout.write(`${JSON.stringify(sets)}\n`);
        return;
      }
      for (const s of sets) {
        process.stdout.write(
          `${s.name.padEnd(24)} ${s.role.padEnd(8)} ${s.licence.spdx.padEnd(14)} ${s.description}\n${' '.repeat(34)}licence: ${s.licence.url}\n`,
        );
      }
    });

  registerServeCommands(prog);
  registerFitCommands(prog, fitHelpers);
  return prog;
}

/** Runs the CLI; resolves to the exit code (never throws). */
export async function main(argv: string[]): Promise<number> {
  // A reader that closes the pipe early (`sot sets | head`) wants no more output: end quietly, as shell tools do.
  for (const stream of [process.stdout, process.stderr])
    stream.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code !== 'EPIPE' && stream === process.stdout)
        process.stderr.write(`sot: cannot write to standard output: ${err.message}\n`);
      process.exit(err.code === 'EPIPE' ? EXIT.ok : EXIT.io);
    });
  const prog = program();
  const json = argv.includes('--json');
  try {
    await prog.parseAsync(argv, { from: 'user' });
    return EXIT.ok;
  } catch (err) {
    if (err instanceof CommanderError) {
      // Help and version exit 0; everything else commander rejects is a usage error.
      if (err.exitCode === 0) return EXIT.ok;
      if (json)
        process.stdout.write(
          `${JSON.stringify({ ok: false, error: { code: 'ERR_OPTION', message: usageMessage(err) } })}\n`,
        );
      return EXIT.usage;
    }
    const code = exitCodeOf(err);
    const e = err as Error & { code?: string };
    if (json) {
      process.stdout.write(
        `${JSON.stringify({ ok: false, error: { code: e instanceof SotError ? e.code : 'ERR_INTERNAL', message: e.message, ...pickLocation(e) } })}\n`,
      );
    } else {
      process.stderr.write(`sot: ${e instanceof SotError ? e.message : (e?.stack ?? String(err))}\n`);
      if (code === EXIT.internal)
        process.stderr.write('sot: this is a bug; please report it with the command you ran\n');
    }
    return code;
  }
}

/** Commander's message on one line, without its `error: ` prefix. */
function usageMessage(err: CommanderError): string {
  return err.message
    .replace(/^error: /, '')
    .replace(/\s*\n\s*/g, ' ')
    .trim();
}

function pickLocation(e: unknown): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const k of ['file', 'line', 'field', 'index', 'path', 'url'] as const) {
    const v = (e as Record<string, unknown>)[k];
    if (v !== undefined) out[k] = v;
  }
  return out;
}
