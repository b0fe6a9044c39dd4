// `sot serve`: the HTTP API (Fastify) in front of a job queue. Every route
// under /v1 needs a bearer token; its tenant sees and touches only
// `<dataRoot>/<tenant>/`.
import multipart from '@fastify/multipart';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, stat } from 'node:fs/promises';
import { pipeline } from 'node:stream/promises';
import { isReferenceSetName } from '../refsets/index.js';
import { parseBytes } from '../storage.js';
import { resolveConfig, type ServiceConfig } from './config.js';
import type { Tokens } from './auth.js';
import { HttpError } from './errors.js';
import {
  JobStore,
  TERMINAL,
  datasetExt,
  newJobId,
  publicJob,
  type FileName,
  type JobOptions,
  type JobRecord,
  type JobRef,
} from './jobs.js';
import { Metrics } from './metrics.js';
import { openApiDocument } from './openapi.js';
import { BullQueue } from './queue/bullmq.js';
import { assertReachable } from './queue/redis.js';
import { EmbeddedQueue } from './queue/embedded.js';
import type { JobQueue } from './queue/types.js';
import { fileParamSchema, idParamSchema, jobStates, listQuerySchema } from './schemas.js';
import { checkOptions, checkPathSubmission } from './validate.js';

export type ServerOptions = Parameters<typeof resolveConfig>[0] & { tokens: Tokens; logger?: boolean };

export interface SotServer {
  app: FastifyInstance;
  config: ServiceConfig;
  store: JobStore;
  /** Listens; resolves to the base URL. */
  listen(port?: number, host?: string): Promise<string>;
  /** Removes the files of jobs finished longer ago than the retention time (also run every `sweepMs`). */
  sweep(): Promise<number>;
  /** Graceful shutdown: no new jobs, running ones get `graceMs` to finish and are then handed back; then the server closes. */
  close(graceMs?: number): Promise<void>;
}

const CONTENT_TYPES: Record<string, string> = {
  '.jsonl': 'application/x-ndjson',
  '.json': 'application/json',
  '.csv': 'text/csv; charset=utf-8',
  '.parquet': 'application/vnd.apache.parquet',
};

/** The download name of each file after the job id, from the file's extension: the records keep the input's. */
const DOWNLOAD_SUFFIX: Record<FileName, (ext: string) => string> = {
  dataset: (ext) => ext,
  scores: () => '.csv',
  removed: (ext) => `.removed${ext}`,
  report: () => '.json',
  html: () => '.html',
};

declare module 'fastify' {
  interface FastifyRequest {
    tenant: string;
  }
}

export async function createServer(options: ServerOptions): Promise<SotServer> {
  const cfg = resolveConfig(options);
  const store = new JobStore(cfg.dataRoot);
  await mkdir(cfg.dataRoot, { recursive: true });
  let queue: JobQueue;
  const metrics = new Metrics({
    states: async () => {
      const counts = Object.fromEntries(jobStates.map((s) => [s, 0])) as Record<string, number>;
      for (const t of await store.tenants()) for (const r of await store.list(t)) counts[r.state]!++;
      return counts;
    },
    depth: () => queue.depth(),
  });
  // An unreachable Redis is said at start (IoError); once running, the queue's connections retry through outages.
  if (cfg.redis) await assertReachable(cfg.redis);
  queue = cfg.redis ? new BullQueue(store, { ...cfg, redis: cfg.redis }) : new EmbeddedQueue(store, cfg, metrics);
  await queue.start();

  let closing = false;
  /** Submissions between their limit check and their record on disk, per tenant. */
  const pending = new Map<string, number>();
  let admission: Promise<unknown> = Promise.resolve();

  const app = Fastify({
    logger: options.logger ?? false,
    bodyLimit: 1 << 20,
    // what the router refuses (a path parameter too long, a bad URL) in the API's error shape, the path not echoed
    frameworkErrors: (err, _req, reply) =>
      (reply as unknown as FastifyReply)
        .code(err.statusCode ?? 400)
        .send({ error: { code: 'ERR_REQUEST', message: `${err.code}: the request's URL was refused` } }),
  });
  app.decorateRequest('tenant', '');
  await app.register(multipart, { limits: { files: 1, fields: 4, fieldSize: 1 << 16, parts: 6 } });

  app.setErrorHandler((err: Error & { statusCode?: number; code?: string; validation?: unknown }, _req, reply) => {
    if (err instanceof HttpError)
      return reply
        .code(err.status)
        .headers(err.headers)
        .send({ error: { code: err.code, message: err.message } });
    if (err.validation) return reply.code(400).send({ error: { code: 'ERR_OPTION', message: err.message } });
    if (err.code === 'FST_REQ_FILE_TOO_LARGE')
      return reply.code(413).send({
        error: {
          code: 'ERR_TOO_LARGE',
          message: `the upload is larger than ${cfg.maxUploadBytes} bytes (or than your remaining quota)`,
        },
      });
    if (err.statusCode && err.statusCode >= 400 && err.statusCode < 500)
      return reply.code(err.statusCode).send({ error: { code: 'ERR_REQUEST', message: err.message } });
    app.log.error(err);
    return reply.code(500).send({ error: { code: 'ERR_INTERNAL', message: 'internal error' } });
  });
  app.setNotFoundHandler((req, reply) =>
    reply
      .code(404)
      .send({ error: { code: 'ERR_NOT_FOUND', message: `no route ${req.method} ${req.url.split('?')[0]}` } }),
  );

  app.addHook('onRequest', async (req) => {
    if (!req.url.startsWith('/v1/')) return;
    const tenant = options.tokens.tenantOf(req.headers.authorization);
    if (!tenant)
      throw new HttpError(401, 'ERR_AUTH', 'a valid bearer token is required', {
        'www-authenticate': 'Bearer realm="sot"',
      });
    req.tenant = tenant;
  });

  app.get('/healthz', async () => ({ ok: true }));
  app.get('/readyz', async (_req, reply) => {
    if (closing || !(await queue.ready()))
      return reply.code(503).send({
        error: { code: 'ERR_UNAVAILABLE', message: closing ? 'shutting down' : 'the queue is not reachable' },
      });
    return { ready: true };
  });
  app.get('/metrics', async (_req, reply) =>
    reply.type(metrics.registry.contentType).send(await metrics.registry.metrics()),
  );
  const doc = openApiDocument();
  app.get('/openapi.json', async () => doc);

  /** Checks the limits and reserves a place for one submission of `tenant`. */
  const admit = (tenant: string): Promise<() => void> => {
    const step = admission.then(async () => {
      if (closing) throw new HttpError(503, 'ERR_UNAVAILABLE', 'the server is shutting down');
      const busy = (why: string) => new HttpError(429, 'ERR_BUSY', why, { 'retry-after': String(cfg.retryAfterS) });
      const allPending = [...pending.values()].reduce((a, b) => a + b, 0);
      if ((await queue.depth()).waiting + allPending >= cfg.maxQueued)
        throw busy(`the queue is full (${cfg.maxQueued} jobs waiting)`);
      const mine = (await store.list(tenant)).filter((r) => r.state === 'queued').length + (pending.get(tenant) ?? 0);
      if (mine >= cfg.maxQueuedPerTenant) throw busy(`you have ${mine} jobs waiting, the most allowed`);
      if ((await store.usage(tenant)) >= cfg.quotaBytes)
        throw new HttpError(
          507,
          'ERR_QUOTA',
          `your folder holds ${cfg.quotaBytes} bytes or more, your quota: delete jobs first`,
        );
      pending.set(tenant, (pending.get(tenant) ?? 0) + 1);
      let released = false;
      return () => {
        if (released) return;
        released = true;
        pending.set(tenant, pending.get(tenant)! - 1);
      };
    });
    admission = step.catch(() => undefined);
    return step;
  };

  app.post('/v1/jobs', async (req, reply) => {
    const tenant = req.tenant;
    const release = await admit(tenant);
    const ref: JobRef = { tenant, id: newJobId() };
    let created = false;
    try {
      await store.ensureTenant(tenant);
      let rec: JobRecord;
      if (req.isMultipart()) {
        const room = Math.max(0, Math.min(cfg.maxUploadBytes, cfg.quotaBytes - (await store.usage(tenant))));
        let options: JobOptions | undefined;
        let upload: { name: string; bytes: number } | undefined;
        try {
          for await (const part of req.parts({ limits: { fileSize: room } })) {
            if (part.type === 'field') {
              if (part.fieldname !== 'options')
                throw new HttpError(
                  400,
                  'ERR_OPTION',
                  `unknown form field '${part.fieldname}' (expected options, dataset)`,
                );
              try {
                options = checkOptions<JobOptions>(JSON.parse(String(part.value)));
              } catch (err) {
                throw err instanceof HttpError
                  ? err
                  : new HttpError(400, 'ERR_OPTION', `options is not valid JSON: ${(err as Error).message}`);
              }
              continue;
            }
            if (part.fieldname !== 'dataset')
              throw new HttpError(400, 'ERR_OPTION', `unknown file field '${part.fieldname}' (expected dataset)`);
            if (!options) throw new HttpError(400, 'ERR_OPTION', 'send the options field before the dataset file');
            const name = `upload${datasetExt(part.filename ?? '')}`;
            await mkdir(store.jobDir(ref));
            created = true;
            const dest = store.uploadPath(ref, name);
            await pipeline(part.file, createWriteStream(dest, { flags: 'wx' })); // streamed: never held whole
            upload = { name, bytes: (await stat(dest)).size };
          }
        } catch (err) {
          throw malformedMultipart(err) ?? err;
        }
        if (!options || !upload)
          throw new HttpError(400, 'ERR_OPTION', 'a multipart submission needs an options field and a dataset file');
        rec = newRecord(ref, options, { source: 'upload', ...upload });
      } else {
        const body = checkPathSubmission<{ path: string; options: JobOptions }>(req.body);
        const real = await store.resolveTenantPath(tenant, body.path);
        await mkdir(store.jobDir(ref));
        created = true;
        rec = newRecord(ref, body.options, { source: 'path', name: body.path, bytes: (await stat(real)).size });
      }
      checkJobBudget(rec.options, cfg);
      for (const h of [...rec.options.harmful, ...(rec.options.anchor ?? [])]) await checkReference(store, tenant, h);
      await store.write(rec);
      await queue.enqueue(ref);
      return reply.code(202).header('location', `/v1/jobs/${ref.id}`).send(publicJob(rec));
    } catch (err) {
      if (created) await store.remove(ref);
      throw err;
    } finally {
      release();
    }
  });

  app.get('/v1/jobs', { schema: { querystring: listQuerySchema } }, async (req) => {
    const q = req.query as { limit?: number; cursor?: string; state?: string };
    const limit = q.limit ?? 50;
    const from = Number(q.cursor ?? 0);
    const all = (await store.list(req.tenant)).filter((r) => !q.state || r.state === q.state).reverse();
    const page = all.slice(from, from + limit);
    return { jobs: page.map(publicJob), next: from + limit < all.length ? String(from + limit) : null };
  });

  const own = async (req: FastifyRequest): Promise<JobRecord> => {
    const rec = await store.read({ tenant: req.tenant, id: (req.params as { id: string }).id });
    if (!rec) throw new HttpError(404, 'ERR_NOT_FOUND', 'no such job');
    return rec;
  };

  app.get('/v1/jobs/:id', { schema: { params: idParamSchema } }, async (req) => publicJob(await own(req)));

  app.delete('/v1/jobs/:id', { schema: { params: idParamSchema } }, async (req) => {
    let rec = await own(req);
    if (!TERMINAL.includes(rec.state)) {
      // Recorded first: a worker that picks the job up from now on skips it.
      rec =
        (await store.update(rec, (r) => ({
          ...r,
          state: 'cancelled',
          stage: null,
          progress: null,
          finishedAt: new Date().toISOString(),
        }))) ?? rec;
      await queue.cancel(rec);
    }
    await store.remove(rec);
    return publicJob(rec);
  });

  app.get('/v1/jobs/:id/files/:name', { schema: { params: fileParamSchema } }, async (req, reply: FastifyReply) => {
    const rec = await own(req);
    const name = (req.params as { name: FileName }).name;
    if (rec.state !== 'succeeded')
      throw new HttpError(409, 'ERR_NOT_READY', `the job is ${rec.state}; files come with success`);
    if (!rec.result?.files.includes(name)) throw new HttpError(404, 'ERR_NOT_FOUND', `this job has no ${name} file`);
    const path = store.outputs(rec, rec.input.name)[name];
    const size = await stat(path).then(
      (s) => s.size,
      () => undefined,
    );
    if (size === undefined) throw new HttpError(404, 'ERR_NOT_FOUND', `the ${name} file is gone`);
    const ext = path.slice(path.lastIndexOf('.'));
    const type =
      name === 'html'
        ? 'text/html; charset=utf-8'
        : name === 'report'
          ? 'application/json'
          : (CONTENT_TYPES[ext] ?? 'application/octet-stream');
    reply
      .header('content-type', type)
      .header('content-length', size)
      .header('content-disposition', `attachment; filename="${rec.id}${DOWNLOAD_SUFFIX[name](ext)}"`);
    // The report page runs in an opaque origin: it cannot reach the API with the caller's credentials.
    if (name === 'html') reply.header('content-security-policy', 'sandbox allow-scripts');
    return reply.send(createReadStream(path));
  });

  const sweep = async (): Promise<number> => {
    const before = Date.now() - cfg.retentionMs;
    let removed = 0;
    for (const t of await store.tenants()) {
      for (const r of await store.list(t)) {
        if (TERMINAL.includes(r.state) && r.finishedAt && Date.parse(r.finishedAt) <= before) {
          await store.remove(r);
          removed++;
        }
      }
    }
    return removed;
  };
  const sweeper = setInterval(() => void sweep().catch((err: Error) => app.log.error(err)), cfg.sweepMs);
  sweeper.unref();

  return {
    app,
    config: cfg,
    store,
    async listen(port = 8080, host = '127.0.0.1') {
      return app.listen({ port, host });
    },
    sweep,
    async close(graceMs = cfg.graceMs) {
      if (closing) return;
      closing = true;
      clearInterval(sweeper);
      await queue.close(graceMs);
      await app.close();
    },
  };
}

function newRecord(ref: JobRef, options: JobOptions, input: JobRecord['input']): JobRecord {
  return {
    ...ref,
    state: 'queued',
    stage: null,
    progress: null,
    attempts: 0,
    createdAt: new Date().toISOString(),
    input,
    options,
  };
}

/** A job may ask for less memory than the server's per-job budget, never more. */
function checkJobBudget(o: JobOptions, cfg: ServiceConfig): void {
  if (o.memoryBudget === undefined) return;
  let bytes: number;
  try {
    bytes = parseBytes('memoryBudget', o.memoryBudget as number | string);
  } catch (err) {
    throw new HttpError(400, 'ERR_OPTION', `options/memoryBudget: ${(err as Error).message}`);
  }
  if (bytes > cfg.jobMemoryBudget)
    throw new HttpError(
      400,
      'ERR_OPTION',
      `options/memoryBudget must be at most ${cfg.jobMemoryBudget} bytes, this server's budget per job`,
    );
}

/** A reference is a named set or a file in the tenant's folder (checked again when the job runs). */
async function checkReference(store: JobStore, tenant: string, name: string): Promise<void> {
  if (isReferenceSetName(name)) return;
  await store.resolveTenantPath(tenant, name);
}

/**
 * The parser's own complaint about the body (a missing boundary, a cut-off
 * part) as a 400: it carries neither an HTTP status nor a system error code,
 * which our errors and the file system's do.
 */
function malformedMultipart(err: unknown): HttpError | undefined {
  const e = err as Error & { code?: unknown; statusCode?: unknown };
  if (err instanceof HttpError || !(err instanceof Error) || e.code !== undefined || e.statusCode !== undefined)
    return undefined;
  return new HttpError(400, 'ERR_REQUEST', `malformed multipart body: ${e.message}`);
}
