import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { fstatSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { AbortError, OptionError, SotError } from '../errors.js';
import { createEmbedder, EMBEDDERS, type EmbedderKind } from '../embed/providers.js';
import { MAX_LINE_BYTES } from '../io/index.js';
import type { FieldMapping } from '../io/types.js';
import { METHODS, type Method } from '../learner.js';
import type { PurifyOptions } from '../pipeline/options.js';
import { purify } from '../pipeline/purify.js';
import { parseBytes } from '../storage.js';
import { embedFile } from '../pipeline/embed-file.js';
import { rerenderReport } from '../pipeline/outputs.js';
import { listReferenceSets } from '../refsets/index.js';
import { EXIT, EXIT_HELP, exitCodeOf } from './exit-codes.js';
import { ProgressLine } from './progress.js';
import { registerServeCommands } from './serve.js';

const pkg = createRequire(import.meta.url)('../../package.json') as { version: string };

function number(name: string, min?: number, max?: number) {
  return (v: string) => {
    const x = Number(v);
    if (v.trim() === '' || !Number.isFinite(x) || (min !== undefined && x < min) || (max !== undefined && x > max)) {
      throw new InvalidArgumentError(`${name} must be a number${min !== undefined ? ` >= ${min}` : ''}${max !== undefined ? ` and <= ${max}` : ''}`);
    }
    return x;
  };
}

function integer(name: string, min = 0) {
  return (v: string) => {
    const x = Number(v);
    if (!/^\d+$/.test(v.trim()) || x < min) throw new InvalidArgumentError(`${name} must be an integer >= ${min}`);
    return x;
  };
}

function size(name: string) {
  return (v: string) => {
    try {
      return parseBytes(name, v);
    } catch (err) {
      throw new InvalidArgumentError((err as Error).message);
    }
  };
}

const list = (v: string, prev: string[] = []) => [...prev, ...v.split(',').map((s) => s.trim()).filter(Boolean)];

/** Options shared by `purify` and `embed`: how records become texts and texts vectors. */
function dataOptions(cmd: Command): Command {
  return cmd
    .addOption(new Option('--format <format>', 'file format (default: from the extension)').choices(['jsonl', 'json', 'csv', 'parquet']))
    .addOption(
      new Option('--record-format <layout>', 'record layout (default: detected from the first record)').choices([
        'alpaca',
        'messages',
        'sharegpt',
        'prompt-response',
        'text',
      ]),
    )
    .option('--prompt-field <field>', 'field(s) holding the prompt (comma-separated, joined by a blank line)', list)
    .option('--response-field <field>', 'field holding the response')
    .option('--text-field <field>', 'field holding the whole text (no template)')
    .option('--template <template>', 'embedding text built from {prompt} and {response}', '{prompt}\n\n{response}')
    .option('--skip-invalid', 'skip (and count) invalid records instead of failing on the first')
    .option('--max-line-bytes <size>', `longest line (or whole .json file) read, e.g. 512MiB (default 256MiB, at most ${MAX_LINE_BYTES} bytes)`, size('--max-line-bytes'))
    .addOption(new Option('--embedder <kind>', 'embedder (default builtin; precomputed when --vectors-field/--vectors-npy is given)').choices(EMBEDDERS as readonly string[]))
    .option('--dim <n>', 'dimension of the built-in embedder (default 512)', integer('--dim', 8))
    .option('--model <name>', 'transformers: model folder or name under --model-dir; openai: model name (env SOT_EMBEDDINGS_MODEL); llm: a .gguf chat model file')
    .option('--model-dir <dir>', 'transformers: folder of local models (default <cache dir>/models)')
    .option('--allow-remote-models', 'transformers: allow downloading the model from the Hugging Face hub')
    .option('--dtype <dtype>', 'transformers: weights variant: fp32 (onnx/model.onnx), q8 (onnx/model_quantized.onnx), fp16, ...')
    .option('--max-length <n>', 'transformers: tokens per text at most', integer('--max-length', 1))
    .option('--embed-url <url>', 'openai: base URL up to /v1 (env SOT_EMBEDDINGS_URL or OPENAI_BASE_URL; default https://api.openai.com/v1)')
    .option('--embed-key <key>', 'openai: API key (prefer env SOT_EMBEDDINGS_KEY or OPENAI_API_KEY)')
    .option('--embed-dimensions <n>', 'openai: ask the model for shorter vectors (`dimensions`)', integer('--embed-dimensions', 1))
    .option('--embed-batch <n>', 'openai, transformers: texts per request / forward pass (default 64 / 32)', integer('--embed-batch', 1))
    .option('--embed-concurrency <n>', 'openai, transformers, llm: requests / passes / records in flight (default 4 / 1 / 1)', integer('--embed-concurrency', 1))
    .option('--context-size <n>', 'llm: tokens per record at most, chat template included; longer records are cut (default 2048)', integer('--context-size', 8))
    .option('--threads <n>', 'llm: CPU threads per evaluation (default: the cores less one)', integer('--threads', 1))
    .option('--embed-timeout <ms>', 'openai: per-request timeout in ms (default 60000)', integer('--embed-timeout', 1))
    .option('--embed-retries <n>', 'openai: retries per request on 429/5xx/timeouts/network errors (default 5)', integer('--embed-retries', 0))
    .option('--vectors-field <field>', 'precomputed: field of every record (dataset and reference files) holding its vector')
    .option('--vectors-npy <file>', 'precomputed: .npy matrix of the dataset\'s vectors, row i for record i (reference files need a .npy of the same stem beside them)')
    .option('--cache-dir <dir>', 'download and embedding cache (env SOT_CACHE_DIR; default ~/.cache/sot)')
    .option('--no-cache', 'do not read or write the embedding cache')
    .option('--json', 'print a machine-readable JSON summary on stdout')
    .option('-q, --quiet', 'no progress output');
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
  contextSize?: number;
  threads?: number;
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
    contextSize: f.contextSize,
    threads: f.threads,
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
    if (received !== undefined) process.stderr.write(`sot: ${received} came while the outputs were being committed, which is not interrupted: the run completed and every output was written\n`);
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

function program(): Command {
  const prog = new Command('sot')
    .description('Safety Optimal Transport: purify LLM fine-tuning datasets before training')
    .version(pkg.version)
    .exitOverride() // before the subcommands, which inherit it: main() maps errors to exit codes
    .showHelpAfterError('(run with --help for usage)')
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

  dataOptions(
    prog
      .command('purify')
      .description('score every sample, keep the top K and write the purified dataset, a scores file and a report')
      .argument('<input>', 'dataset: .jsonl, .json, .csv or .parquet (never modified)')
      .requiredOption('--harmful <sets>', 'harmful reference: files and/or named sets (comma-separated; see `sot sets`)', list)
      .option('--anchor <sets>', 'safe anchor: ~50 clean samples of the same task (files and/or named sets)', list)
      .option('-o, --output <file>', 'purified dataset (default: <input>.purified.<ext>)')
      .option('--scores <file>', 'per-sample scores CSV (default: <output>.scores.csv)')
      .option('--report <file>', 'JSON report (default: <output>.report.json)')
      .option('--html <file>', 'HTML report (default: <output>.report.html)')
      .option('--no-html', 'do not write the HTML report')
      .option('--keep <fraction>', 'fraction of samples to keep', number('--keep', 0, 1))
      .option('--keep-count <n>', 'number of samples to keep (instead of --keep)', integer('--keep-count'))
      .option('--weight-field <name>', 'field added to kept records with their training weight (a field the records already have is refused)', 'sot_weight')
      .option('--no-weight-field', 'write kept records unchanged')
      .addOption(new Option('--method <method>', 'scoring method').choices(METHODS as readonly string[]).default('sot'))
      .option('--eps <x>', 'entropic regularisation, in cost units (default 0.05)', number('--eps', 0))
      .option('--lambda <x>', 'weight of the push away from the harmful set (default 1.5)', number('--lambda', 0))
      .option('--tau <x>', 'KL regularisation towards uniform weights (default 0.2)', number('--tau', 0))
      .option('--max-steps <n>', 'learner steps at most (default 500)', integer('--max-steps', 1))
      .option('--memory-budget <size>', 'memory the run may take, e.g. 8GB or 512MiB: the costs are stored dense when they fit, else truncated to each sample\'s nearest references (default 8 GiB, or half the RAM if less)', size('--memory-budget'))
      .option('--neighbours <n>', 'nearest references per sample when the costs are truncated (default 256)', integer('--neighbours', 1))
      .option('--seed <n>', 'seed of the random baseline', integer('--seed'))
      .option('--data-dir <dir>', 'offline mirror of the named reference sets (env SOT_DATA_DIR)')
      .option('--offline', 'never download reference sets (env SOT_OFFLINE=1)'),
  ).action(async (input: string, f: DataFlags & Record<string, unknown>) => {
    if (f.keep !== undefined && f.keepCount !== undefined) throw new OptionError('ERR_OPTION', 'use --keep or --keep-count, not both');
    const bar = new ProgressLine(process.stderr, !f.quiet && !f.json);
    await interruptible(async (signal) => {
      try {
        const res = await purify({
          input,
          ...(await dataConfig(f, signal)),
          harmful: f.harmful as string[],
          anchor: (f.anchor as string[] | undefined) ?? [],
          output: f.output as string | undefined,
          scores: f.scores as string | undefined,
          report: f.report as string | undefined,
          html: f.html === false ? null : (f.html as string | undefined),
          keep: f.keepCount !== undefined ? { count: f.keepCount as number } : { fraction: (f.keep as number | undefined) ?? 0.8 },
          weightField: f.weightField === false ? null : (f.weightField as string),
          method: f.method as Method,
          learner: {
            eps: f.eps as number | undefined,
            lambda: f.lambda as number | undefined,
            tau: f.tau as number | undefined,
            maxSteps: f.maxSteps as number | undefined,
            storage: f.neighbours === undefined ? undefined : { neighbours: f.neighbours as number },
          },
          memoryBudget: f.memoryBudget as number | undefined,
          seed: f.seed as number | undefined,
          dataDir: f.dataDir as string | undefined,
          offline: f.offline === true ? true : undefined,
          signal,
          onProgress: (e) => bar.update(e),
        });
        bar.done();
        const r = res.report;
        if (f.json) {
          process.stdout.write(
            `${JSON.stringify({ ok: true, n: res.n, k: res.k, skipped: r.input.skipped, outputs: res.outputs, learner: r.learner && { steps: r.learner.steps, converged: r.learner.converged, innerIterations: r.learner.innerIterations, storage: r.learner.storage }, memory: r.memory, warnings: res.warnings, timings: r.timings })}\n`,
          );
        } else {
          for (const w of res.warnings) process.stderr.write(`warning: ${w}\n`);
          const skipped = r.input.skipped ? ` (${r.input.skipped} invalid records skipped)` : '';
          process.stdout.write(
            `kept ${res.k} of ${res.n} records${skipped}\n  dataset: ${res.outputs.dataset}\n  scores:  ${res.outputs.scores}\n  report:  ${res.outputs.report}${res.outputs.html ? `\n  html:    ${res.outputs.html}` : ''}\n`,
          );
        }
      } finally {
        bar.done();
      }
    });
  });

  dataOptions(
    prog
      .command('embed')
      .description('embed a dataset (or reference file) into a .npy matrix, one row per record, and fill the cache')
      .argument('<input>', 'dataset: .jsonl, .json, .csv or .parquet')
      .requiredOption('-o, --output <file>', '.npy file to write (float32, rows x dim); - or a pipe is streamed to'),
  ).action(async (input: string, f: DataFlags & { output: string }) => {
    const bar = new ProgressLine(process.stderr, !f.quiet && !f.json);
    await interruptible(async (signal) => {
      try {
        const output = outputPath(f.output);
        const summary = isStdout(output) ? process.stderr : process.stdout;
        const res = await embedFile({ input, output, ...(await dataConfig(f, signal)), signal, onProgress: (e) => bar.update(e) });
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
        process.stdout.write(`${s.name.padEnd(24)} ${s.role.padEnd(8)} ${s.licence.spdx.padEnd(14)} ${s.description}\n${' '.repeat(34)}licence: ${s.licence.url}\n`);
      }
    });

  registerServeCommands(prog);
  return prog;
}

/** Runs the CLI; resolves to the exit code (never throws). */
export async function main(argv: string[]): Promise<number> {
  const prog = program();
  const json = argv.includes('--json');
  try {
    await prog.parseAsync(argv, { from: 'user' });
    return EXIT.ok;
  } catch (err) {
    if (err instanceof CommanderError) {
      // Help and version exit 0; everything else commander rejects is a usage error.
      return err.exitCode === 0 ? EXIT.ok : EXIT.usage;
    }
    const code = exitCodeOf(err);
    const e = err as Error & { code?: string };
    if (json) {
      process.stdout.write(
        `${JSON.stringify({ ok: false, error: { code: e instanceof SotError ? e.code : 'ERR_INTERNAL', message: e.message, ...pickLocation(e) } })}\n`,
      );
    } else {
      process.stderr.write(`sot: ${e instanceof SotError ? e.message : (e?.stack ?? String(err))}\n`);
      if (code === EXIT.internal) process.stderr.write('sot: this is a bug; please report it with the command you ran\n');
    }
    return code;
  }
}

function pickLocation(e: unknown): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const k of ['file', 'line', 'field', 'index', 'path', 'url'] as const) {
    const v = (e as Record<string, unknown>)[k];
    if (v !== undefined) out[k] = v;
  }
  return out;
}
