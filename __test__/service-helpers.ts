// Helpers of the service tests: a real redis-server on a free loopback port,
// small real datasets, an HTTP client and the OpenAPI check of responses.
import { Ajv2020 } from 'ajv/dist/2020.js';
import addFormats from 'ajv-formats';
import { type ChildProcess, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer as netServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'vitest';
import { openApiDocument } from '../src/service/openapi.js';
import { CLI, alpacaOk, contaminated, writeJsonl } from './datasets.js';

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const temps: string[] = [];

/** A temporary folder, removed by `removeTempDirs` (each test file's afterAll). */
export function tempDir(prefix = 'sot-svc-'): string {
  const d = mkdtempSync(join(tmpdir(), prefix));
  temps.push(d);
  return d;
}

export function removeTempDirs(): void {
  for (const d of temps.splice(0)) rmSync(d, { recursive: true, force: true });
}

/** A real contaminated dataset of `n` records (`n / 10` harmful) in JSONL. */
export function dataset(dir: string, n = 200, name = 'train.jsonl'): string {
  const { records } = contaminated(n - Math.floor(n / 10), Math.floor(n / 10));
  return writeJsonl(
    join(dir, name),
    records.map(({ instruction, input, output }) => ({ instruction, input, output })),
  );
}

/** `n` clean records (tiny jobs). */
export function smallDataset(dir: string, n: number, name: string): string {
  return writeJsonl(join(dir, name), alpacaOk().slice(0, n));
}

/**
 * Options that make a job run for a couple of seconds on a few hundred
 * records (many inner Sinkhorn iterations), so that it can be cancelled or
 * killed while it runs.
 */
export const SLOW = {
  harmful: ['advbench'],
  learner: { maxSteps: 40, tol: 1e-300, inner: { tol: 1e-300, maxIter: 4000 } },
};

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = netServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

export interface RedisInstance {
  url: string;
  stop(): Promise<void>;
}

/** A throwaway redis-server on 127.0.0.1 (no persistence; on `port`, or a free one), stopped by `stop`. */
export async function startRedis(port?: number): Promise<RedisInstance> {
  port ??= await freePort();
  const dir = tempDir('sot-redis-');
  const proc = spawn(
    'redis-server',
    ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let out = '';
  proc.stdout!.on('data', (d) => (out += d));
  await new Promise<void>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`redis-server did not start:\n${out}`)), 10_000);
    proc.once('error', (err) =>
      reject(new Error(`cannot run redis-server (install the redis-server package): ${err.message}`)),
    );
    proc.stdout!.on('data', () => {
      if (/Ready to accept connections/.test(out)) {
        clearTimeout(t);
        resolve();
      }
    });
  });
  return { url: `redis://127.0.0.1:${port}`, stop: async () => void (await stopProcess(proc)) };
}

export async function stopProcess(proc: ChildProcess, signal: NodeJS.Signals = 'SIGTERM'): Promise<number | null> {
  if (proc.exitCode !== null || proc.signalCode !== null) return proc.exitCode;
  return new Promise((resolve) => {
    proc.once('exit', (code) => resolve(code));
    proc.kill(signal);
  });
}

// ---- OpenAPI: every response a test sees is checked against the document.

const doc = openApiDocument() as {
  paths: Record<
    string,
    Record<string, { responses: Record<string, { content?: Record<string, { schema: object }> }> }>
  >;
};
const ajv = new Ajv2020({ strict: false, allErrors: true });
addFormats.default(ajv);
ajv.addSchema(doc as object, 'openapi.json');
const seen = new Set<string>();
const validators = new Map<string, ReturnType<typeof ajv.compile>>();

/** `/v1/jobs/abc/files/report` -> `/v1/jobs/{id}/files/{name}` */
function template(path: string): string {
  const p = path.split('?')[0]!;
  for (const t of Object.keys(doc.paths)) {
    const re = new RegExp(`^${t.replace(/\{[^}]+\}/g, '[^/]+')}$`);
    if (re.test(p)) return t;
  }
  return p;
}

export function checkAgainstOpenApi(
  method: string,
  path: string,
  status: number,
  contentType: string | null,
  body: unknown,
): void {
  const t = template(path);
  const op = doc.paths[t]?.[method.toLowerCase()];
  expect(op, `${method} ${t} is not in the OpenAPI document`).toBeDefined();
  const res = op!.responses[String(status)];
  expect(
    res,
    `${method} ${t} answered ${status} (${JSON.stringify(body).slice(0, 400)}), not in the OpenAPI document`,
  ).toBeDefined();
  seen.add(`${method.toLowerCase()} ${t}`);
  const type = (contentType ?? '').split(';')[0]!.trim();
  const media = res!.content?.[type];
  if (res!.content) expect(media, `${method} ${t} ${status}: ${type} not documented`).toBeDefined();
  if (type !== 'application/json') return;
  const schema = media!.schema as { $ref?: string };
  const key = `${method} ${t} ${status}`;
  const validate = validators.get(key) ?? ajv.compile(schema.$ref ? { $ref: `openapi.json${schema.$ref}` } : schema);
  validators.set(key, validate);
  const ok = validate(body);
  expect(
    ok,
    `${method} ${t} ${status}: ${ajv.errorsText(validate.errors)}\n${JSON.stringify(body).slice(0, 500)}`,
  ).toBe(true);
}

/** Operations of the document no test has called yet. */
export function unexercisedOperations(): string[] {
  return Object.entries(doc.paths).flatMap(([p, ops]) =>
    Object.keys(ops)
      .filter((m) => m !== 'parameters')
      .map((m) => `${m} ${p}`)
      .filter((k) => !seen.has(k)),
  );
}

export interface Answer<T = any> {
  status: number;
  headers: Headers;
  body: T;
  bytes: Buffer;
}

/** An HTTP client that checks every answer against the OpenAPI document. */
export function client(base: string, token?: string) {
  const call = async <T = any>(
    method: string,
    path: string,
    init: { json?: unknown; form?: FormData; token?: string | null } = {},
  ): Promise<Answer<T>> => {
    const headers: Record<string, string> = {};
    const tok = init.token === undefined ? token : init.token;
    if (tok) headers.authorization = `Bearer ${tok}`;
    let body: string | FormData | undefined;
    if (init.json !== undefined) {
      headers['content-type'] = 'application/json';
      body = JSON.stringify(init.json);
    } else if (init.form) body = init.form;
    const res = await fetch(base + path, { method, headers, body });
    const bytes = Buffer.from(await res.arrayBuffer());
    const type = res.headers.get('content-type');
    const parsed = type?.startsWith('application/json') ? JSON.parse(bytes.toString('utf8')) : bytes.toString('utf8');
    checkAgainstOpenApi(method, path, res.status, type, parsed);
    return { status: res.status, headers: res.headers, body: parsed as T, bytes };
  };
  return {
    call,
    upload: (file: string, options: unknown, extra: { token?: string | null; filename?: string } = {}) => {
      const form = new FormData();
      form.append('options', JSON.stringify(options));
      form.append('dataset', new Blob([readFileSync(file)]), extra.filename ?? 'train.jsonl');
      return call('POST', '/v1/jobs', { form, token: extra.token });
    },
    submitPath: (path: string, options: unknown) => call('POST', '/v1/jobs', { json: { path, options } }),
    job: (id: string) => call('GET', `/v1/jobs/${id}`),
    /** Polls until the job is final (or gone). */
    async waitFinal(id: string, timeoutMs = 60_000) {
      const t0 = Date.now();
      for (;;) {
        const r = await call('GET', `/v1/jobs/${id}`);
        if (r.status !== 200 || ['succeeded', 'failed', 'cancelled'].includes(r.body.state)) return r;
        if (Date.now() - t0 > timeoutMs) throw new Error(`job ${id} still ${r.body.state} after ${timeoutMs} ms`);
        await sleep(200);
      }
    },
    async waitState(id: string, pred: (job: any) => boolean, timeoutMs = 30_000) {
      const t0 = Date.now();
      for (;;) {
        const r = await call('GET', `/v1/jobs/${id}`);
        if (pred(r.body)) return r;
        if (Date.now() - t0 > timeoutMs)
          throw new Error(`job ${id}: condition not met after ${timeoutMs} ms (last: ${JSON.stringify(r.body)})`);
        await sleep(50);
      }
    },
  };
}

export function writeTokens(dir: string, tokens: Record<string, string>): string {
  const path = join(dir, 'tokens.json');
  writeFileSync(
    path,
    JSON.stringify({
      tokens: Object.entries(tokens).map(([tenant, t]) => ({
        tenant,
        sha256: createHash('sha256').update(t).digest('hex'),
      })),
    }),
  );
  return path;
}

export interface CliProcess {
  proc: ChildProcess;
  output(): string;
  /** Resolves once the output matches `re`. */
  waitFor(re: RegExp, timeoutMs?: number): Promise<void>;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** `node dist/cli.js <args>` (the built CLI), its output collected. */
export function spawnCli(args: string[], env: Record<string, string> = {}): CliProcess {
  const proc = spawn(process.execPath, [CLI, ...args], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  const waiters: Array<() => void> = [];
  const onData = (d: Buffer) => {
    out += d.toString('utf8');
    for (const w of waiters.splice(0)) w();
  };
  proc.stdout!.on('data', onData);
  proc.stderr!.on('data', onData);
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    proc.once('exit', (code, signal) => resolve({ code, signal })),
  );
  return {
    proc,
    output: () => out,
    exited,
    async waitFor(re, timeoutMs = 20_000) {
      const t0 = Date.now();
      while (!re.test(out)) {
        if (proc.exitCode !== null || proc.signalCode !== null) throw new Error(`process exited before ${re}:\n${out}`);
        if (Date.now() - t0 > timeoutMs) throw new Error(`no ${re} after ${timeoutMs} ms:\n${out}`);
        await new Promise<void>((r) => {
          waiters.push(r);
          setTimeout(r, 100);
        });
      }
    },
  };
}
