// `sot serve` (embedded queue) stopped with jobs in flight: killed outright,
// or stopped by SIGTERM past its grace period. After a restart on the same
// data root every job ends; nothing is lost. Also: transient failures are
// retried with backoff, and only they.
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { Tokens, sha256 } from '../src/service/auth.js';
import { createServer } from '../src/service/server.js';
import {
  SLOW,
  type CliProcess,
  client,
  dataset,
  freePort,
  removeTempDirs,
  spawnCli,
  stopProcess,
  tempDir,
  writeTokens,
} from './service-helpers.js';

const procs: CliProcess[] = [];
afterEach(async () => {
  await Promise.all(procs.splice(0).map((p) => stopProcess(p.proc, 'SIGKILL')));
  removeTempDirs();
});

async function serve(root: string, tokens: string, port: number, extra: string[] = []) {
  const p = spawnCli(['serve', '--data-root', root, '--tokens', tokens, '--port', String(port), '--offline', ...extra]);
  procs.push(p);
  await p.waitFor(/listening on/);
  return p;
}

describe('sot serve restarts', () => {
  it('runs again, after a restart, the jobs that were running or queued when it was killed', async () => {
    const dir = tempDir();
    const root = join(dir, 'root');
    const tokens = writeTokens(dir, { alice: 'token-a' });
    const train = dataset(dir, 200);
    const port = await freePort();
    const first = await serve(root, tokens, port);
    const api = client(`http://127.0.0.1:${port}`, 'token-a');
    const running = await api.upload(train, SLOW);
    const queued = await api.upload(train, { harmful: ['advbench'] });
    await api.waitState(running.body.id, (j) => j.state === 'running' && j.stage === 'learn');
    first.proc.kill('SIGKILL');
    await first.exited;

    await serve(root, tokens, port);
    const a = await api.waitFinal(running.body.id);
    const b = await api.waitFinal(queued.body.id);
    expect([a.body.state, b.body.state]).toEqual(['succeeded', 'succeeded']);
    expect(a.body.attempts).toBe(2);
    expect(b.body.attempts).toBe(1);
  });

  it('on SIGTERM stops taking jobs, hands back what outlives the grace period, and a restart finishes it', async () => {
    const dir = tempDir();
    const root = join(dir, 'root');
    const tokens = writeTokens(dir, { alice: 'token-a' });
    const train = dataset(dir, 200);
    const port = await freePort();
    const first = await serve(root, tokens, port, ['--grace', '0']);
    const api = client(`http://127.0.0.1:${port}`, 'token-a');
    const running = await api.upload(train, SLOW);
    await api.waitState(running.body.id, (j) => j.state === 'running' && j.stage === 'learn');
    first.proc.kill('SIGTERM');
    expect((await first.exited).code).toBe(0);
    expect(first.output()).toMatch(/sot serve: stopped/);

    await serve(root, tokens, port);
    const job = await api.waitFinal(running.body.id);
    expect(job.body.state).toBe('succeeded');
    expect(job.body.attempts).toBe(2);
  });

  it('while shutting down answers 503 to submissions and readiness, and lets running jobs finish within the grace period', async () => {
    const dir = tempDir();
    const server = await createServer({
      dataRoot: join(dir, 'root'),
      tokens: new Tokens([{ tenant: 'alice', sha256: sha256('token-a') }]),
      dataDir: process.env.SOT_DATA_DIR,
      offline: true,
    });
    const base = await server.listen(0);
    const api = client(base, 'token-a');
    const train = dataset(dir, 200);
    const running = await api.upload(train, SLOW);
    await api.waitState(running.body.id, (j) => j.state === 'running');
    const closed = server.close(60_000);
    const refused = await api.upload(train, { harmful: ['advbench'] });
    expect(refused.status).toBe(503);
    expect(refused.body.error.code).toBe('ERR_UNAVAILABLE');
    expect((await api.call('GET', '/readyz')).status).toBe(503);
    expect((await api.job(running.body.id)).body.state).toBe('running'); // still served while it drains
    await closed;
    expect((await server.store.read({ tenant: 'alice', id: running.body.id }))?.state).toBe('succeeded');
  });

  it('retries a transient failure with backoff, up to its retries, and never bad input', async () => {
    // A reference-set mirror that is not there (yet): a transient failure.
    const dir = tempDir();
    const server = await createServer({
      dataRoot: join(dir, 'root'),
      tokens: new Tokens([{ tenant: 'alice', sha256: sha256('token-a') }]),
      dataDir: join(dir, 'no-mirror'),
      cacheDir: join(dir, 'no-cache'),
      offline: true,
      retries: 2,
      backoffMs: 50,
    });
    try {
      const api = client(await server.listen(0), 'token-a');
      const train = dataset(dir, 100);
      const job = await api.waitFinal((await api.upload(train, { harmful: ['advbench'] })).body.id);
      expect(job.body.state).toBe('failed');
      expect(job.body.error.code).toBe('ERR_FETCH');
      expect(job.body.attempts).toBe(3);
      const bad = await api.waitFinal(
        (await api.upload(train, { harmful: ['advbench'], keep: { count: 1000 } })).body.id,
      );
      expect(bad.body.error.code).toBe('ERR_OPTION');
      expect(bad.body.attempts).toBe(1);
    } finally {
      await server.close(0);
    }
  });
});
