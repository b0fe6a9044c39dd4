// BullMQ on Redis: the server adds job references to one queue; any number
// of `sot worker` processes, on any machines sharing the data root, run them.
// A worker that dies mid-job stops renewing its lock and BullMQ's stalled-job
// check hands the job to another worker. Cancellation of a running job goes
// to every worker over a Redis channel; the one running it aborts it.
import { DelayedError, Queue, Worker, WaitingError, type Job } from 'bullmq';
import type { Redis } from 'ioredis';
import type { ServiceConfig } from '../config.js';
import { TERMINAL, type JobRef, type JobStore } from '../jobs.js';
import type { Metrics } from '../metrics.js';
import { runJob, type StopReason } from '../worker.js';
import { assertReachable, connect, Outage } from './redis.js';
import type { JobQueue } from './types.js';

const QUEUE = 'jobs';
const PREFIX = 'sot';
const CANCEL_CHANNEL = 'sot:cancel';

/** The server's side: adds, cancels and counts. */
export class BullQueue implements JobQueue {
  private readonly conn: Redis;
  private readonly queue: Queue;

  constructor(
    private readonly store: JobStore,
    private readonly cfg: ServiceConfig & { redis: string },
  ) {
    this.conn = connect(cfg.redis, new Outage('sot serve'));
    this.queue = new Queue(QUEUE, { connection: this.conn, prefix: PREFIX });
  }

  /** Queues again what the records say is unfinished: a no-op for jobs Redis still holds (same job id), a rescue for those it lost. */
  async start(): Promise<void> {
    await this.queue.waitUntilReady();
    for (const tenant of await this.store.tenants()) {
      for (const r of await this.store.list(tenant)) if (!TERMINAL.includes(r.state)) await this.enqueue(r);
    }
  }

  async enqueue(ref: JobRef): Promise<void> {
    await this.queue.add(
      'purify',
      { tenant: ref.tenant, id: ref.id },
      {
        jobId: ref.id,
        // Transient failures come back as thrown errors: BullMQ retries them with backoff.
        attempts: this.cfg.retries + 1,
        backoff: { type: 'exponential', delay: this.cfg.backoffMs },
        removeOnComplete: true,
        removeOnFail: true, // the record on disk keeps the failure
      },
    );
  }

  async cancel(ref: JobRef): Promise<void> {
    const job = await this.queue.getJob(ref.id);
    if (job) await job.remove().catch(() => undefined); // refused while a worker holds it: the channel reaches that worker
    await this.conn.publish(CANCEL_CHANNEL, JSON.stringify(ref));
  }

  async depth(): Promise<{ waiting: number; active: number }> {
    const c = await this.queue.getJobCounts('waiting', 'delayed', 'prioritized', 'active');
    return { waiting: (c.waiting ?? 0) + (c.delayed ?? 0) + (c.prioritized ?? 0), active: c.active ?? 0 };
  }

  async ready(): Promise<boolean> {
    return (
      this.conn.status === 'ready' &&
      (await this.conn.ping().then(
        (p) => p === 'PONG',
        () => false,
      ))
    );
  }

  async close(): Promise<void> {
    await this.queue.close();
    this.conn.disconnect();
  }
}

export interface BullWorker {
  /** Stops taking jobs; running ones get `graceMs`, then go back to the queue for another worker. */
  close(graceMs: number): Promise<void>;
}

/** A `sot worker`: runs jobs from the queue, `cfg.concurrency` at a time. */
export async function startBullWorker(
  store: JobStore,
  cfg: ServiceConfig & { redis: string },
  metrics?: Metrics,
): Promise<BullWorker> {
  await assertReachable(cfg.redis); // said at start; once running, the connections retry through outages
  const running = new Map<string, AbortController>();
  const outage = new Outage('sot worker');
  const sub = connect(cfg.redis, outage);
  await sub.subscribe(CANCEL_CHANNEL);
  sub.on('message', (_channel: string, message: string) => {
    try {
      const ref = JSON.parse(message) as JobRef;
      running.get(ref.id)?.abort('cancel' satisfies StopReason);
    } catch {
      // not ours
    }
  });

  const conn = connect(cfg.redis, outage);
  const peers = new Queue(QUEUE, { connection: conn, prefix: PREFIX });
  /** Jobs of `tenant` other workers (or this one) run now, `job` aside. */
  const runningOf = async (tenant: string, self: string) =>
    (await peers.getActive()).filter((j) => j.id !== self && (j.data as JobRef).tenant === tenant).length;
  const worker = new Worker(
    QUEUE,
    async (job: Job<JobRef>, token?: string) => {
      // Fairness: a tenant at its limit waits (a short, jittered delay so that workers racing for it do not collide again).
      if ((await runningOf(job.data.tenant, job.id!)) >= cfg.maxRunningPerTenant) {
        await job.moveToDelayed(Date.now() + 250 + Math.floor(Math.random() * 500), token);
        throw new DelayedError();
      }
      const ctrl = new AbortController();
      running.set(job.data.id, ctrl);
      try {
        const outcome = await runJob(store, job.data, cfg, ctrl.signal, metrics);
        if (outcome.kind === 'retry') throw new Error(outcome.message);
        if (outcome.kind === 'handed-back') {
          await job.moveToWait(token);
          throw new WaitingError();
        }
      } finally {
        running.delete(job.data.id);
      }
    },
    {
      connection: conn,
      prefix: PREFIX,
      concurrency: cfg.concurrency,
      lockDuration: cfg.lockMs,
      stalledInterval: Math.max(1000, Math.floor(cfg.lockMs / 2)),
      maxStalledCount: 2,
    },
  );
  worker.on('error', outage.error);
  await worker.waitUntilReady();

  return {
    async close(graceMs: number) {
      const closing = worker.close();
      let timer: NodeJS.Timeout | undefined;
      const expired = await Promise.race([
        closing.then(() => false),
        new Promise<boolean>((res) => (timer = setTimeout(() => res(true), graceMs))),
      ]);
      clearTimeout(timer);
      if (expired) for (const c of running.values()) c.abort('shutdown' satisfies StopReason);
      await closing;
      await peers.close();
      sub.disconnect();
      conn.disconnect(); // a connection we made: BullMQ leaves it open
    },
  };
}
