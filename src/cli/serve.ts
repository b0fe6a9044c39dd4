// `sot serve` and `sot worker`: the purification service (see docs/service.md).
// The service modules are loaded on first use, so other commands do not pay for Fastify or BullMQ.
import { type Command, InvalidArgumentError } from 'commander';
import { createServer as createHttpServer } from 'node:http';
import { OptionError } from '../errors.js';
import { parseBytes } from '../storage.js';

function count(name: string, min = 0) {
  return (v: string) => {
    if (!/^\d+$/.test(v.trim()) || Number(v) < min)
      throw new InvalidArgumentError(`${name} must be an integer >= ${min}`);
    return Number(v);
  };
}
const seconds = (name: string) => (v: string) => count(name)(v) * 1000;
const bytes = (name: string) => (v: string) => {
  try {
    return parseBytes(name, v);
  } catch (err) {
    throw new InvalidArgumentError((err as Error).message);
  }
};

interface Flags {
  dataRoot?: string;
  redis?: string;
  concurrency?: number;
  dataDir?: string;
  offline?: boolean;
  [k: string]: unknown;
}

/** The service configuration from the flags and the environment. */
function base(f: Flags) {
  const dataRoot = f.dataRoot ?? process.env.SOT_SERVE_DATA_ROOT;
  if (!dataRoot) throw new OptionError('ERR_OPTION', '--data-root (or env SOT_SERVE_DATA_ROOT) is required');
  return {
    dataRoot,
    redis: f.redis,
    concurrency: f.concurrency,
    graceMs: f.grace as number | undefined,
    lockMs: f.lock as number | undefined,
    retries: f.retries as number | undefined,
    backoffMs: f.backoff as number | undefined,
    jobMemoryBudget: f.jobMemoryBudget as number | undefined,
    maxRunningPerTenant: f.maxRunningPerTenant as number | undefined,
    dataDir: f.dataDir ?? process.env.SOT_DATA_DIR,
    cacheDir: process.env.SOT_CACHE_DIR,
    offline: f.offline === true || process.env.SOT_OFFLINE === '1' ? true : undefined,
  };
}

/** Resolves on the first SIGTERM or SIGINT. */
const stopSignal = () =>
  new Promise<string>((res) => {
    const on = (s: string) => () => res(s);
    process.once('SIGTERM', on('SIGTERM'));
    process.once('SIGINT', on('SIGINT'));
  });

function common(cmd: Command): Command {
  return cmd
    .option(
      '--data-root <dir>',
      "folder of every tenant's uploads and jobs, shared by the server and its workers (env SOT_SERVE_DATA_ROOT)",
    )
    .option('--concurrency <n>', 'jobs this process runs at once (default 1)', count('--concurrency', 1))
    .option(
      '--max-running-per-tenant <n>',
      'jobs of one tenant running at once, in this process (embedded) or on all workers (default 2)',
      count('--max-running-per-tenant', 1),
    )
    .option(
      '--job-memory-budget <size>',
      'memory budget of one job, e.g. 4GB (default 4 GiB)',
      bytes('--job-memory-budget'),
    )
    .option('--retries <n>', 'retries of a job that failed for a transient reason (default 2)', count('--retries'))
    .option('--backoff <seconds>', 'first retry delay, doubled on each retry (default 5)', seconds('--backoff'))
    .option(
      '--grace <seconds>',
      'on SIGTERM, time running jobs get to finish before they are handed back (default 30)',
      seconds('--grace'),
    )
    .option(
      '--lock <seconds>',
      'BullMQ: a job whose worker stops renewing its lock this long goes to another worker (default 30)',
      seconds('--lock'),
    )
    .option('--data-dir <dir>', 'offline mirror of the named reference sets (env SOT_DATA_DIR)')
    .option('--offline', 'never download reference sets (env SOT_OFFLINE=1)');
}

/** A bare HTTP endpoint for a worker's metrics (a worker has no API of its own). */
async function serveMetrics(
  metrics: { registry: { contentType: string; metrics(): Promise<string> } },
  port: number,
  host: string,
) {
  const server = createHttpServer((req, res) => {
    if (req.url !== '/metrics') return void res.writeHead(404).end();
    metrics.registry.metrics().then(
      (text) => res.writeHead(200, { 'content-type': metrics.registry.contentType }).end(text),
      () => res.writeHead(500).end(),
    );
  });
  await new Promise<void>((resolve, reject) => server.once('error', reject).listen(port, host, resolve));
  const addr = server.address() as { port: number };
  return { url: `http://${host}:${addr.port}/metrics`, close: () => server.close() };
}

/** Adds `serve` and `worker` to the `sot` program. */
export function registerServeCommands(prog: Command): void {
  common(
    prog
      .command('serve')
      .description('run the purification service: an HTTP API with a job queue (embedded, or BullMQ with --redis)')
      .option('--host <host>', 'address to listen on', '127.0.0.1')
      .option('--port <n>', 'port to listen on', count('--port'), 8080)
      .option(
        '--tokens <file>',
        'bearer tokens: {"tokens": [{"tenant": ..., "sha256": ...}]} (and/or env SOT_SERVE_TOKENS=tenant:token,...)',
      )
      .option(
        '--redis <url>',
        'queue jobs in BullMQ on this Redis for `sot worker` processes (default: run them in this process)',
      )
      .option('--max-queued <n>', 'jobs waiting, all tenants, before 429 (default 1000)', count('--max-queued', 1))
      .option(
        '--max-queued-per-tenant <n>',
        'jobs of one tenant waiting before 429 (default 100)',
        count('--max-queued-per-tenant', 1),
      )
      .option('--max-upload <size>', 'largest upload, e.g. 1GB (default 1 GiB)', bytes('--max-upload'))
      .option('--quota <size>', "disk one tenant's folder may take (default 20 GiB)", bytes('--quota'))
      .option(
        '--retention <seconds>',
        "finished jobs' files are deleted this long after they end (default 7 days)",
        seconds('--retention'),
      )
      .option('--log', 'log every request (JSON lines on stdout)'),
  ).action(async (f: Flags) => {
    const { createServer, loadTokens } = await import('../service/index.js');
    const server = await createServer({
      ...base(f),
      tokens: loadTokens({ file: f.tokens as string | undefined, env: process.env.SOT_SERVE_TOKENS }),
      maxQueued: f.maxQueued as number | undefined,
      maxQueuedPerTenant: f.maxQueuedPerTenant as number | undefined,
      maxUploadBytes: f.maxUpload as number | undefined,
      quotaBytes: f.quota as number | undefined,
      retentionMs: f.retention as number | undefined,
      logger: f.log === true,
    });
    const url = await server.listen(f.port as number, f.host as string);
    process.stdout.write(
      `sot serve: listening on ${url} (${f.redis ? 'BullMQ queue' : 'embedded queue'}, data root ${server.config.dataRoot})\n`,
    );
    const sig = await stopSignal();
    process.stdout.write(`sot serve: ${sig}: finishing running jobs (grace ${server.config.graceMs / 1000} s)\n`);
    await server.close();
    process.stdout.write('sot serve: stopped\n');
  });

  common(
    prog
      .command('worker')
      .description(
        'run queued jobs from BullMQ on Redis (any number of workers, on any machines sharing the data root)',
      )
      .requiredOption('--redis <url>', 'the Redis the server queues jobs in')
      .option(
        '--metrics-port <n>',
        "serve this worker's Prometheus metrics (stage durations, records) at http://<host>:<n>/metrics",
        count('--metrics-port'),
      )
      .option('--host <host>', 'address of the metrics endpoint', '127.0.0.1'),
  ).action(async (f: Flags) => {
    const [{ resolveConfig }, { JobStore }, { Metrics }, { startBullWorker }] = await Promise.all([
      import('../service/config.js'),
      import('../service/jobs.js'),
      import('../service/metrics.js'),
      import('../service/queue/bullmq.js'),
    ]);
    const cfg = resolveConfig(base(f));
    const metrics = new Metrics();
    const worker = await startBullWorker(new JobStore(cfg.dataRoot), { ...cfg, redis: f.redis! }, metrics);
    const endpoint =
      f.metricsPort === undefined ? undefined : await serveMetrics(metrics, f.metricsPort as number, f.host as string);
    process.stdout.write(
      `sot worker: ready (concurrency ${cfg.concurrency}, data root ${cfg.dataRoot}${endpoint ? `, metrics on ${endpoint.url}` : ''})\n`,
    );
    const sig = await stopSignal();
    process.stdout.write(`sot worker: ${sig}: finishing running jobs (grace ${cfg.graceMs / 1000} s)\n`);
    await worker.close(cfg.graceMs);
    endpoint?.close();
    process.stdout.write('sot worker: stopped\n');
  });
}
