// The HTTP API end to end on the embedded queue: submissions (upload and
// path), results, auth and tenant isolation, traversal attempts, options
// validation, cancellation, limits, retention, metrics; every answer is
// checked against the OpenAPI document.
import { mkdirSync, readdirSync, readFileSync, existsSync, symlinkSync, writeFileSync, copyFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createServer, type SotServer } from '../src/service/server.js';
import { Tokens, loadTokens, sha256 } from '../src/service/auth.js';
import { SERVICE_DEFAULTS, resolveConfig } from '../src/service/index.js';
import {
  SLOW,
  client,
  dataset,
  removeTempDirs,
  smallDataset,
  tempDir,
  unexercisedOperations,
} from './service-helpers.js';

let dir: string;
let root: string;
let server: SotServer;
let base: string;
let alice: ReturnType<typeof client>;
let bob: ReturnType<typeof client>;
let train: string;

const byJson = (a: unknown, b: unknown) => JSON.stringify(a).localeCompare(JSON.stringify(b));

beforeAll(async () => {
  dir = tempDir();
  root = join(dir, 'root');
  train = dataset(dir, 200);
  server = await createServer({
    dataRoot: root,
    tokens: new Tokens([
      { tenant: 'alice', sha256: sha256('token-a') },
      { tenant: 'bob', sha256: sha256('token-b') },
    ]),
    concurrency: 1,
    maxQueuedPerTenant: 3,
    maxUploadBytes: 200_000,
    sweepMs: 3_600_000,
    dataDir: process.env.SOT_DATA_DIR,
    offline: true,
  });
  base = await server.listen(0);
  alice = client(base, 'token-a');
  bob = client(base, 'token-b');
});

afterAll(async () => {
  await server?.close(0);
  removeTempDirs();
});

describe('sot serve (embedded queue)', () => {
  it('purifies an uploaded dataset and serves its files', async () => {
    const sub = await alice.upload(train, { harmful: ['advbench'], keep: { fraction: 0.9 } });
    expect(sub.status).toBe(202);
    expect(sub.body.state).toBe('queued');
    expect(sub.headers.get('location')).toBe(`/v1/jobs/${sub.body.id}`);
    const done = await alice.waitFinal(sub.body.id);
    expect(done.body.state).toBe('succeeded');
    expect(done.body.attempts).toBe(1);
    expect(done.body.result).toMatchObject({
      records: 200,
      kept: 180,
      removed: 20,
      files: ['dataset', 'scores', 'removed', 'report', 'html'],
    });

    const ds = await alice.call('GET', `/v1/jobs/${sub.body.id}/files/dataset`);
    expect(ds.status).toBe(200);
    expect(ds.headers.get('content-type')).toBe('application/x-ndjson');
    const kept = ds.bytes
      .toString('utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(kept).toHaveLength(180);
    expect(kept[0]).toHaveProperty('sot_weight');
    const scores = await alice.call('GET', `/v1/jobs/${sub.body.id}/files/scores`);
    expect(scores.bytes.toString('utf8').trim().split('\n')).toHaveLength(201);
    // The removed records: the input's records that are not in the dataset, each with its score, rank and reason.
    const rm = await alice.call('GET', `/v1/jobs/${sub.body.id}/files/removed`);
    expect(rm.status).toBe(200);
    expect(rm.headers.get('content-type')).toBe('application/x-ndjson');
    expect(rm.headers.get('content-disposition')).toBe(`attachment; filename="${sub.body.id}.removed.jsonl"`);
    const removed = rm.bytes
      .toString('utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(removed).toHaveLength(20);
    const input = readFileSync(train, 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    const strip = ({
      sot_weight: _w,
      sot_score: _s,
      sot_rank: _r,
      sot_pull: _p,
      sot_push: _q,
      sot_reason: _x,
      ...rec
    }: Record<string, unknown>) => rec;
    expect([...kept, ...removed].map(strip).sort(byJson)).toEqual([...input].sort(byJson));
    for (const r of removed) {
      expect(r.sot_rank).toBeGreaterThanOrEqual(180);
      expect(r.sot_reason).toEqual(expect.stringMatching(/\(push [-+]\d\.\d\d/));
    }
    const report = await alice.call('GET', `/v1/jobs/${sub.body.id}/files/report`);
    expect(report.body.createdAt).toBe(sub.body.createdAt); // the submission time: a rerun writes the same report
    expect(report.body.selection).toEqual({ n: 200, k: 180 });
    // the contamination estimate in the job's status, as the report has it
    expect(report.body.contamination).toMatchObject({ level: 0.9, verdict: expect.any(String) });
    expect(done.body.result.contamination).toEqual(report.body.contamination);
    const html = await alice.call('GET', `/v1/jobs/${sub.body.id}/files/html`);
    expect(html.headers.get('content-security-policy')).toBe('sandbox allow-scripts');
    expect(html.bytes.toString('utf8')).toContain('<html');
  });

  it('writes no removed file when the job says removed: false', async () => {
    const sub = await alice.upload(train, {
      harmful: ['advbench'],
      keep: { fraction: 0.9 },
      removed: false,
      html: false,
    });
    const done = await alice.waitFinal(sub.body.id);
    expect(done.body.result).toMatchObject({ removed: 20, files: ['dataset', 'scores', 'report'] });
    expect(readdirSync(join(root, 'alice', 'jobs', sub.body.id, 'out')).sort()).toEqual([
      'purified.jsonl',
      'report.json',
      'scores.csv',
    ]);
    expect((await alice.call('GET', `/v1/jobs/${sub.body.id}/files/removed`)).status).toBe(404);
    expect((await alice.call('DELETE', `/v1/jobs/${sub.body.id}`)).status).toBe(200);
  });

  it('takes a path under the tenant folder, and refuses traversal, absolute paths and symlinks out', async () => {
    mkdirSync(join(root, 'alice', 'data'), { recursive: true });
    mkdirSync(join(root, 'bob', 'data'), { recursive: true });
    copyFileSync(train, join(root, 'alice', 'data', 'train.jsonl'));
    copyFileSync(train, join(root, 'bob', 'data', 'secret.jsonl'));
    writeFileSync(join(dir, 'outside.jsonl'), readFileSync(train));
    symlinkSync(join(dir, 'outside.jsonl'), join(root, 'alice', 'data', 'escape.jsonl'));
    symlinkSync(join(root, 'bob'), join(root, 'alice', 'bobdir'));

    const ok = await alice.submitPath('data/train.jsonl', { harmful: ['advbench'] });
    expect(ok.status).toBe(202);
    expect(ok.body.input).toEqual({ source: 'path', name: 'data/train.jsonl', bytes: readFileSync(train).length });
    expect((await alice.waitFinal(ok.body.id)).body.state).toBe('succeeded');
    expect(readFileSync(join(root, 'alice', 'data', 'train.jsonl'))).toEqual(readFileSync(train)); // input never modified

    const cases: Array<[string, number]> = [
      ['../bob/data/secret.jsonl', 400],
      ['data/../../bob/data/secret.jsonl', 400],
      [join(root, 'bob', 'data', 'secret.jsonl'), 400],
      ['/etc/passwd', 400],
      ['data/escape.jsonl', 403],
      ['bobdir/data/secret.jsonl', 403],
      ['data/missing.jsonl', 400],
      ['data', 400],
    ];
    for (const [path, status] of cases) {
      const r = await alice.submitPath(path, { harmful: ['advbench'] });
      expect(r.status, path).toBe(status);
      expect(r.body.error.code, path).toBe('ERR_PATH');
    }
    // A reference file is a tenant path too.
    const ref = await alice.submitPath('data/train.jsonl', { harmful: ['../bob/data/secret.jsonl'] });
    expect(ref.status).toBe(400);
    // No job folder was left behind by the refusals.
    expect(readdirSync(join(root, 'alice', 'jobs'))).toHaveLength(2);
  });

  it('needs a token, and a tenant sees only its own jobs', async () => {
    const none = await alice.call('GET', '/v1/jobs', { token: null });
    expect(none.status).toBe(401);
    expect(none.headers.get('www-authenticate')).toMatch(/^Bearer/);
    expect((await alice.call('GET', '/v1/jobs', { token: 'token-x' })).status).toBe(401);
    expect((await alice.upload(train, { harmful: ['advbench'] }, { token: 'nope' })).status).toBe(401);

    const mine = await alice.call('GET', '/v1/jobs');
    expect(mine.status).toBe(200);
    expect(mine.body.jobs.length).toBeGreaterThanOrEqual(2);
    const id = mine.body.jobs[0].id;
    const theirs = await bob.call('GET', '/v1/jobs');
    expect(theirs.body.jobs).toEqual([]);
    expect((await bob.job(id)).status).toBe(404);
    expect((await bob.call('GET', `/v1/jobs/${id}/files/dataset`)).status).toBe(404);
    expect((await bob.call('DELETE', `/v1/jobs/${id}`)).status).toBe(404);
    expect((await alice.job(id)).body.state).toBe('succeeded'); // bob's DELETE did nothing
    // Ids are checked before any file is touched.
    expect((await alice.call('GET', '/v1/jobs/..%2f..%2fbob')).status).toBe(400);
    expect((await alice.call('GET', `/v1/jobs/${id}/files/..%2fjob.json`)).status).toBe(400);

    // Paging, newest first.
    const p1 = await alice.call('GET', '/v1/jobs?limit=1');
    expect(p1.body.jobs).toHaveLength(1);
    expect(p1.body.next).toBe('1');
    const p2 = await alice.call('GET', `/v1/jobs?limit=1&cursor=${p1.body.next}`);
    expect(p2.body.jobs[0].createdAt <= p1.body.jobs[0].createdAt).toBe(true);
    expect((await alice.call('GET', '/v1/jobs?limit=0')).status).toBe(400);
  });

  it('refuses bad options with the option named, and fails bad input once, without retrying', async () => {
    const cases: Array<[unknown, RegExp]> = [
      [{}, /harmful/],
      [{ harmful: ['advbench'], keep: { fraction: 2 } }, /keep/],
      [{ harmful: ['advbench'], learner: { epss: 1 } }, /epss/],
      [{ harmful: ['advbench'], output: '/etc/x' }, /output/],
      [{ harmful: ['advbench'], memoryBudget: '1TB' }, /memoryBudget/],
    ];
    for (const [options, re] of cases) {
      const r = await alice.upload(train, options);
      expect(r.status, JSON.stringify(options)).toBe(400);
      expect(r.body.error.code).toBe('ERR_OPTION');
      expect(r.body.error.message).toMatch(re);
    }
    const form = new FormData();
    form.append('options', '{not json');
    expect((await alice.call('POST', '/v1/jobs', { form })).status).toBe(400);

    const bad = join(dir, 'bad.jsonl');
    writeFileSync(bad, '{"instruction": "a", "output": "b"}\n{broken\n');
    const sub = await alice.upload(bad, { harmful: ['advbench'] });
    expect(sub.status).toBe(202);
    const done = await alice.waitFinal(sub.body.id);
    expect(done.body.state).toBe('failed');
    expect(done.body.error.code).toBe('ERR_INPUT');
    expect(done.body.error.message).toMatch(/:2:/);
    expect(done.body.error.message).not.toContain(root);
    expect(done.body.attempts).toBe(1);
    expect((await alice.call('GET', `/v1/jobs/${sub.body.id}/files/dataset`)).status).toBe(409);
  });

  it('answers a malformed multipart body or an over-long path with 4xx in the API error shape', async () => {
    const auth = { authorization: 'Bearer token-a' };
    const cut =
      '--XYZ\r\nContent-Disposition: form-data; name="options"\r\n\r\n{"harmful":["advbench"]}\r\n' +
      '--XYZ\r\nContent-Disposition: form-data; name="dataset"; filename="a.jsonl"\r\n\r\n{"prompt":"a"';
    for (const [type, body] of [
      ['multipart/form-data; boundary=XYZ', cut],
      ['multipart/form-data', 'garbage'],
    ]) {
      const r = await fetch(`${base}/v1/jobs`, { method: 'POST', headers: { ...auth, 'content-type': type! }, body });
      expect(r.status, type).toBe(400);
      expect(await r.json()).toMatchObject({ error: { code: 'ERR_REQUEST', message: /^malformed multipart body: / } });
    }
    const long = await fetch(`${base}/v1/jobs/${'x'.repeat(5000)}`, { headers: auth });
    expect(long.status).toBe(414);
    const text = await long.text();
    expect(JSON.parse(text)).toMatchObject({ error: { code: 'ERR_REQUEST' } });
    expect(text).not.toContain('xxxxxxxxxx');
  });

  it('cancels a running job and a queued one, and removes their files', async () => {
    const running = await alice.upload(train, SLOW);
    const queued = await alice.upload(train, { harmful: ['advbench'] });
    await alice.waitState(running.body.id, (j) => j.state === 'running' && j.stage === 'learn');
    expect((await alice.job(queued.body.id)).body.state).toBe('queued'); // concurrency 1

    const t0 = Date.now();
    const del = await alice.call('DELETE', `/v1/jobs/${running.body.id}`);
    expect(del.status).toBe(200);
    expect(del.body.state).toBe('cancelled');
    expect(Date.now() - t0).toBeLessThan(5_000);
    expect((await alice.job(running.body.id)).status).toBe(404);
    expect(existsSync(join(root, 'alice', 'jobs', running.body.id))).toBe(false);

    const del2 = await alice.call('DELETE', `/v1/jobs/${queued.body.id}`);
    expect(del2.status).toBe(200); // queued, running or done by now: gone either way
    expect(existsSync(join(root, 'alice', 'jobs', queued.body.id))).toBe(false);
  });

  it('answers 429 with Retry-After past the per-tenant queue limit, and 413 past the upload limit', async () => {
    const ids: string[] = [];
    ids.push((await alice.upload(train, SLOW)).body.id);
    await alice.waitState(ids[0]!, (j) => j.state === 'running');
    for (let i = 0; i < 3; i++) {
      const r = await alice.upload(train, { harmful: ['advbench'] });
      expect(r.status).toBe(202);
      ids.push(r.body.id);
    }
    const full = await alice.upload(train, { harmful: ['advbench'] });
    expect(full.status).toBe(429);
    expect(full.body.error.code).toBe('ERR_BUSY');
    expect(Number(full.headers.get('retry-after'))).toBeGreaterThan(0);
    expect((await bob.upload(train, { harmful: ['advbench'] })).status).toBe(202); // another tenant is not blocked

    const big = smallDataset(dir, 2000, 'big.jsonl');
    const tooBig = await bob.upload(big, { harmful: ['advbench'] });
    expect(tooBig.status).toBe(413);
    expect(tooBig.body.error.code).toBe('ERR_TOO_LARGE');
    expect(readdirSync(join(root, 'bob', 'jobs'))).toHaveLength(1); // the partial upload is gone

    for (const id of ids) await alice.call('DELETE', `/v1/jobs/${id}`);
  });

  it('lets another tenant go ahead while one is at its running limit', async () => {
    const f = await createServer({
      dataRoot: join(dir, 'fair-root'),
      tokens: loadTokens({ env: 'alice:token-a,bob:token-b' }),
      concurrency: 2,
      maxRunningPerTenant: 1,
      sweepMs: 3_600_000,
      dataDir: process.env.SOT_DATA_DIR,
      offline: true,
    });
    try {
      const base2 = await f.listen(0);
      const a = client(base2, 'token-a');
      const b = client(base2, 'token-b');
      // Far slower than the rest: cancelled below, once the others have shown the order.
      const slow = await a.upload(train, {
        ...SLOW,
        learner: { ...SLOW.learner, inner: { tol: 1e-300, maxIter: 200_000 } },
      });
      await a.waitState(slow.body.id, (j) => j.state === 'running');
      const second = await a.upload(train, { harmful: ['advbench'] });
      const other = await b.upload(train, { harmful: ['advbench'] });
      expect((await b.waitFinal(other.body.id)).body.state).toBe('succeeded');
      expect((await a.job(second.body.id)).body.state).toBe('queued'); // behind alice's running job, not behind bob
      expect((await a.job(slow.body.id)).body.state).toBe('running');
      await a.call('DELETE', `/v1/jobs/${slow.body.id}`);
      expect((await a.waitFinal(second.body.id)).body.state).toBe('succeeded');
    } finally {
      await f.close(0);
    }
  });

  it('keeps a tenant within its disk quota: an upload that does not fit gets 413, a full folder 507', async () => {
    const qroot = join(dir, 'quota-root');
    const q = await createServer({
      dataRoot: qroot,
      tokens: loadTokens({ env: 'carol:token-c' }),
      quotaBytes: 60_000,
      sweepMs: 3_600_000,
      dataDir: process.env.SOT_DATA_DIR,
      offline: true,
    });
    try {
      const carol = client(await q.listen(0), 'token-c');
      const small = smallDataset(dir, 60, 'quota-small.jsonl');
      const big = smallDataset(dir, 400, 'quota-big.jsonl');
      expect((await carol.upload(big, { harmful: ['advbench'] })).status).toBe(413);
      const ok = await carol.upload(small, { harmful: ['advbench'] });
      expect(ok.status).toBe(202);
      await carol.waitFinal(ok.body.id);
      let full = await carol.upload(small, { harmful: ['advbench'] });
      for (let i = 0; i < 5 && full.status === 202; i++) {
        await carol.waitFinal(full.body.id);
        full = await carol.upload(small, { harmful: ['advbench'] });
      }
      expect(full.status).toBe(507);
      expect(full.body.error.code).toBe('ERR_QUOTA');
      // Deleting jobs frees the room again.
      for (const j of (await carol.call('GET', '/v1/jobs')).body.jobs) await carol.call('DELETE', `/v1/jobs/${j.id}`);
      expect((await carol.upload(small, { harmful: ['advbench'] })).status).toBe(202);
    } finally {
      await q.close(0);
    }
  });

  it('serves health, readiness, metrics and its OpenAPI document', async () => {
    const c = client(base);
    expect((await c.call('GET', '/healthz')).body).toEqual({ ok: true });
    expect((await c.call('GET', '/readyz')).body).toEqual({ ready: true });
    const doc = await c.call('GET', '/openapi.json');
    expect(doc.body.openapi).toBe('3.1.0');
    const m = (await c.call('GET', '/metrics')).bytes.toString('utf8');
    expect(m).toMatch(/^sot_jobs\{state="succeeded"\} [1-9]/m);
    expect(m).toMatch(/^sot_job_runs_total\{outcome="cancelled"\} [1-9]/m);
    expect(m).toMatch(/^sot_stage_seconds_count\{stage="learn"\} [1-9]/m);
    expect(m).toMatch(/^sot_records_total [1-9]/m);
    expect(m).toMatch(/^sot_queue_depth\{kind="waiting"\} \d/m);
  });

  it('deletes finished jobs past the retention time', async () => {
    const job = (await alice.call('GET', '/v1/jobs?state=succeeded')).body.jobs[0];
    expect(await server.sweep()).toBe(0); // a week by default
    const short = await createServer({
      dataRoot: root,
      tokens: loadTokens({ env: 'alice:token-a' }),
      retentionMs: 0,
      sweepMs: 3_600_000,
    });
    try {
      expect(await short.sweep()).toBeGreaterThan(0);
    } finally {
      await short.close(0);
    }
    expect((await alice.job(job.id)).status).toBe(404);
  });

  it('exercised every operation of the OpenAPI document', () => {
    expect(unexercisedOperations()).toEqual([]);
  });
});

describe('service configuration', () => {
  it('fills in the defaults and names a bad value', () => {
    const c = resolveConfig({ dataRoot: 'rel/root', maxUploadBytes: '10MB' });
    expect(c.dataRoot).toBe(join(process.cwd(), 'rel/root'));
    expect(c.maxUploadBytes).toBe(10_000_000);
    expect(c.concurrency).toBe(SERVICE_DEFAULTS.concurrency);
    expect(() => resolveConfig({ dataRoot: 'x', concurrency: 0 })).toThrow(/concurrency must be an integer >= 1/);
    expect(() => resolveConfig({ dataRoot: 'x', graceMs: -1 })).toThrow(/graceMs/);
    expect(() => resolveConfig({ dataRoot: 'x', redis: 'http://h' })).toThrow(/redis/);
    expect(() => resolveConfig({ dataRoot: '' })).toThrow(/dataRoot/);
  });
});

describe('tokens', () => {
  it('keeps only hashes and reads files and the environment', () => {
    const t = loadTokens({ env: 'alice:one,bob:two' });
    expect(t.tenantOf('Bearer one')).toBe('alice');
    expect(t.tenantOf('bearer two')).toBe('bob');
    expect(t.tenantOf('Bearer three')).toBeUndefined();
    expect(t.tenantOf('one')).toBeUndefined();
    expect(JSON.stringify(t)).not.toContain('one');
    expect(() => loadTokens({ env: '../x:tok' })).toThrow(/tenant/);
    expect(() => loadTokens({})).toThrow(/no tokens/);
  });
});
