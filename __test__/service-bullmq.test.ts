// The service on BullMQ with a real redis-server and `sot worker` processes:
// the API end to end, cancellation across processes, a worker SIGKILLed
// mid-job (another worker finishes it, with byte-identical outputs), a
// worker stopped by SIGTERM (it hands its job back), and 100 concurrent
// submissions that all reach a final state.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Tokens, sha256 } from '../src/service/auth.js';
import { createServer, type SotServer } from '../src/service/server.js';
import { IoError } from '../src/errors.js';
import { CLI, harmfulPairs, withoutRunFigures, writeJsonl } from './datasets.js';
import {
  SLOW,
  type CliProcess,
  type RedisInstance,
  client,
  dataset,
  freePort,
  removeTempDirs,
  sleep,
  smallDataset,
  spawnCli,
  startRedis,
  stopProcess,
  tempDir,
} from './service-helpers.js';

let redis: RedisInstance;
let dir: string;
let root: string;
let server: SotServer;
let api: ReturnType<typeof client>;
let train: string;
const workers: CliProcess[] = [];

function startWorker(extra: string[] = [], env: Record<string, string> = {}): CliProcess {
  const w = spawnCli(
    ['worker', '--redis', redis.url, '--data-root', root, '--lock', '2', '--backoff', '0', '--offline', ...extra],
    env,
  );
  workers.push(w);
  return w;
}

beforeAll(async () => {
  redis = await startRedis();
  dir = tempDir();
  root = join(dir, 'root');
  train = dataset(dir, 200);
  server = await createServer({
    dataRoot: root,
    redis: redis.url,
    tokens: new Tokens([{ tenant: 'alice', sha256: sha256('token-a') }]),
    maxQueuedPerTenant: 200,
    sweepMs: 3_600_000,
  });
  api = client(await server.listen(0), 'token-a');
});

// A test that fails midway leaves its workers running; they must not take the next test's jobs.
afterEach(async () => {
  await Promise.all(workers.splice(0).map((w) => stopProcess(w.proc, 'SIGKILL')));
});

afterAll(async () => {
  await Promise.all(workers.map((w) => stopProcess(w.proc, 'SIGKILL')));
  await server?.close(0);
  await redis?.stop();
  removeTempDirs();
});

describe('sot serve --redis with sot worker', () => {
  it('runs a job on a worker, fails bad input once, cancels running and queued jobs', async () => {
    const w = startWorker();
    await w.waitFor(/sot worker: ready/);
    expect((await api.call('GET', '/readyz')).status).toBe(200);

    const ok = await api.upload(train, { harmful: ['advbench'] });
    expect(ok.status).toBe(202);
    const done = await api.waitFinal(ok.body.id);
    expect(done.body.state).toBe('succeeded');
    expect(done.body.result.records).toBe(200);
    expect(
      (await api.call('GET', `/v1/jobs/${ok.body.id}/files/dataset`)).bytes.toString().trim().split('\n'),
    ).toHaveLength(160);

    const bad = await api.upload(train, { harmful: ['advbench'], recordFormat: 'messages' });
    const failed = await api.waitFinal(bad.body.id);
    expect(failed.body.state).toBe('failed');
    expect(failed.body.error.code).toBe('ERR_INPUT');
    expect(failed.body.attempts).toBe(1); // bad input is never retried

    const running = await api.upload(train, SLOW);
    const queued = await api.upload(train, { harmful: ['advbench'] });
    await api.waitState(running.body.id, (j) => j.state === 'running' && j.stage === 'learn');
    expect((await api.call('DELETE', `/v1/jobs/${queued.body.id}`)).status).toBe(200);
    expect((await api.call('DELETE', `/v1/jobs/${running.body.id}`)).body.state).toBe('cancelled');
    expect(existsSync(join(root, 'alice', 'jobs', running.body.id))).toBe(false);
    // The worker stopped the cancelled run and is free again.
    const next = await api.upload(train, { harmful: ['advbench'] });
    expect((await api.waitFinal(next.body.id, 20_000)).body.state).toBe('succeeded');
    expect(existsSync(join(root, 'alice', 'jobs', queued.body.id))).toBe(false);
    await stopProcess(w.proc);
    expect((await w.exited).code).toBe(0);
  });

  it('hands a job of a SIGKILLed worker to another, whose outputs are byte-identical to a run on one thread', async () => {
    const pair = [startWorker([], { SOT_NUM_THREADS: '2' }), startWorker([], { SOT_NUM_THREADS: '2' })];
    await Promise.all(pair.map((w) => w.waitFor(/sot worker: ready/)));
    const sub = await api.upload(train, SLOW);
    const running = await api.waitState(sub.body.id, (j) => j.state === 'running' && j.stage === 'learn');
    const pid = Number(running.body.worker.split(':').pop());
    const a = pair.find((w) => w.proc.pid === pid)!;
    const b = pair.find((w) => w.proc.pid !== pid)!;
    expect(a).toBeDefined();
    a.proc.kill('SIGKILL');
    expect((await a.exited).signal).toBe('SIGKILL');

    const done = await api.waitFinal(sub.body.id, 60_000);
    expect(done.body.state).toBe('succeeded');
    expect(done.body.attempts).toBe(2);
    expect(done.body.worker).toMatch(new RegExp(`:${b.proc.pid}$`));

    // An uninterrupted run of the same job, for comparison, on a worker with another thread count.
    await stopProcess(b.proc);
    const c = startWorker([], { SOT_NUM_THREADS: '1' });
    await c.waitFor(/sot worker: ready/);
    const again = await api.upload(train, SLOW);
    const ref = await api.waitFinal(again.body.id, 60_000);
    expect(ref.body.attempts).toBe(1);
    const file = async (id: string, name: string) => (await api.call('GET', `/v1/jobs/${id}/files/${name}`)).bytes;
    expect((await file(sub.body.id, 'dataset')).equals(await file(again.body.id, 'dataset'))).toBe(true);
    expect((await file(sub.body.id, 'scores')).equals(await file(again.body.id, 'scores'))).toBe(true);
    const killed = (await file(sub.body.id, 'report')).toString('utf8');
    expect(JSON.parse(killed).createdAt).toBe(sub.body.createdAt); // the submission time, whoever ran it
    // Same report but for the job's own id in its paths and the run figures (times, memory, seconds).
    const norm = (text: string, id: string) => withoutRunFigures(text.split(id).join('<id>'));
    expect(norm(killed, sub.body.id)).toBe(norm((await file(again.body.id, 'report')).toString('utf8'), again.body.id));
    await stopProcess(c.proc);
  });

  it('on SIGTERM a worker hands its running job back, and another finishes it', async () => {
    const a = startWorker(['--grace', '0']);
    await a.waitFor(/sot worker: ready/);
    const sub = await api.upload(train, SLOW);
    await api.waitState(sub.body.id, (j) => j.state === 'running' && j.stage === 'learn');
    a.proc.kill('SIGTERM');
    expect((await a.exited).code).toBe(0);
    expect(a.output()).toMatch(/sot worker: stopped/);
    expect((await api.job(sub.body.id)).body.state).toBe('queued');
    const b = startWorker();
    const done = await api.waitFinal(sub.body.id, 60_000);
    expect(done.body.state).toBe('succeeded');
    expect(done.body.attempts).toBe(2);
    await stopProcess(b.proc);
  });

  it("runs no more of one tenant's jobs at once than its limit, on all workers together", async () => {
    const ws = [startWorker(['--max-running-per-tenant', '1']), startWorker(['--max-running-per-tenant', '1'])];
    await Promise.all(ws.map((w) => w.waitFor(/sot worker: ready/)));
    const ids = [(await api.upload(train, SLOW)).body.id, (await api.upload(train, SLOW)).body.id];
    let most = 0;
    for (;;) {
      const states = await Promise.all(ids.map(async (id) => (await api.job(id)).body.state));
      most = Math.max(most, states.filter((s) => s === 'running').length);
      if (states.every((s) => s === 'succeeded' || s === 'failed')) {
        expect(states).toEqual(['succeeded', 'succeeded']);
        break;
      }
      await sleep(50);
    }
    expect(most).toBe(1);
    await Promise.all(ws.map((w) => stopProcess(w.proc)));
  });

  it('after a restart, queues again the unfinished jobs Redis lost', async () => {
    const sub = await api.upload(train, { harmful: ['advbench'] }); // no worker runs now
    expect(sub.status).toBe(202);
    await server.close(0);
    const conn = new Redis(redis.url);
    await conn.flushall();
    conn.disconnect();
    server = await createServer({
      dataRoot: root,
      redis: redis.url,
      tokens: new Tokens([{ tenant: 'alice', sha256: sha256('token-a') }]),
      maxQueuedPerTenant: 200,
      sweepMs: 3_600_000,
    });
    api = client(await server.listen(0), 'token-a');
    startWorker();
    expect((await api.waitFinal(sub.body.id)).body.state).toBe('succeeded');
  });

  it('sot serve --redis and sot worker say at once that Redis is unreachable, and exit 4', async () => {
    const url = `redis://127.0.0.1:${await freePort()}`; // released: nothing listens on it
    const tokens = join(dir, 'tokens.json');
    writeFileSync(tokens, JSON.stringify({ tokens: [{ tenant: 'alice', sha256: sha256('token-a') }] }));
    const common = ['--data-root', join(dir, 'down'), '--offline'];
    for (const args of [
      ['serve', '--redis', url, '--tokens', tokens, '--port', '0', ...common],
      ['worker', '--redis', url, ...common],
    ]) {
      const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', timeout: 30_000 });
      expect(r.status, `${args[0]}: ${r.stderr}`).toBe(4);
      expect(r.stderr).toContain(`cannot reach Redis at ${url}: connect ECONNREFUSED`);
    }
    await expect(createServer({ dataRoot: join(dir, 'down'), redis: url, tokens: new Tokens([]) })).rejects.toThrow(
      IoError,
    );
  });

  it('says a Redis outage once when it starts and once when it ends, and carries on', async () => {
    const own = await startRedis();
    const w = spawnCli(['worker', '--redis', own.url, '--data-root', join(dir, 'outage'), '--offline']);
    workers.push(w);
    await w.waitFor(/sot worker: ready/);
    await own.stop();
    await w.waitFor(/sot worker: .*ECONNREFUSED.* \(retrying\)/);
    await sleep(3_000); // the connections retry every few hundred milliseconds, silently
    const again = await startRedis(Number(new URL(own.url).port));
    try {
      await w.waitFor(/sot worker: Redis is reachable again/, 30_000);
      expect(w.output().match(/\(retrying\)/g)).toHaveLength(1);
      expect(w.output()).not.toMatch(/Unhandled error event/);
      expect(w.proc.exitCode).toBeNull();
    } finally {
      await again.stop();
    }
  }, 60_000);

  it('takes 100 concurrent submissions and brings every job to a final state', async () => {
    const ws = [
      startWorker(['--concurrency', '2', '--max-running-per-tenant', '4', '--metrics-port', '0']),
      startWorker(['--concurrency', '2', '--max-running-per-tenant', '4']),
    ];
    await Promise.all(ws.map((w) => w.waitFor(/sot worker: ready/)));
    const small = smallDataset(dir, 40, 'small.jsonl');
    // A small harmful reference in the tenant's folder keeps each job cheap.
    mkdirSync(join(root, 'alice', 'refs'), { recursive: true });
    writeJsonl(join(root, 'alice', 'refs', 'harmful.jsonl'), harmfulPairs().slice(0, 20));
    const subs = await Promise.all(
      Array.from({ length: 100 }, (_, i) =>
        api.upload(small, {
          harmful: ['refs/harmful.jsonl'],
          seed: i,
          keep: { count: 30 },
          html: false,
          learner: { maxSteps: 20 },
        }),
      ),
    );
    expect(subs.map((s) => s.status)).toEqual(Array(100).fill(202));
    expect(new Set(subs.map((s) => s.body.id)).size).toBe(100);
    const finals = await Promise.all(subs.map((s) => api.waitFinal(s.body.id, 120_000)));
    expect(finals.map((f) => f.body.state)).toEqual(Array(100).fill('succeeded'));
    expect(finals.every((f) => f.body.result.kept === 30)).toBe(true);
    const m = (await api.call('GET', '/metrics')).bytes.toString('utf8');
    expect(m).toMatch(/^sot_queue_depth\{kind="waiting"\} 0$/m);
    expect(m).toMatch(/^sot_queue_depth\{kind="active"\} 0$/m);
    // The worker's own metrics: what it ran, stage by stage.
    const workerMetrics = await (await fetch(/metrics on ([^\s)]+)/.exec(ws[0]!.output())![1]!)).text();
    expect(workerMetrics).toMatch(/^sot_stage_seconds_count\{stage="learn"\} [1-9]/m);
    expect(workerMetrics).toMatch(/^sot_records_total [1-9]/m);
    const listed = await api.call('GET', '/v1/jobs?limit=1000&state=succeeded');
    expect(listed.body.jobs.length).toBeGreaterThanOrEqual(100);
    expect(readFileSync(small, 'utf8').trim().split('\n')).toHaveLength(40); // the input is never touched
  });
});
