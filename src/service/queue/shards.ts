// Sharded purification over BullMQ: the coordinator (`purifySharded` with
// `redis`) queues one job per shard; `sot shard-worker` processes, on any
// machines that share the work folder, run them. BullMQ retries a failed
// shard alone (and hands a shard whose worker died to another worker once its
// lock expires); a shard that fails on its input is not retried. When the run
// ends without them (a shard failed for good, or it was aborted), the
// coordinator cancels its shards running on any machine (a message every
// worker hears) and waits until none runs before its caller removes the work
// folder they write into.
export { assertReachable } from './redis.js';
import { Queue, QueueEvents, UnrecoverableError, Worker, type Job } from 'bullmq';
import { AbortError, SotError } from '../../errors.js';
import {
  parseShardError,
  runTask,
  shardError,
  shardFailure,
  type AnyShardTask,
  type ShardError,
} from '../../fit/shard.js';
import { assertReachable, connect, Outage } from './redis.js';

const QUEUE = 'shards';
const PREFIX = 'sot';
/** Pub/sub channel of the job ids to cancel. */
const CANCEL = `${PREFIX}:${QUEUE}:cancel`;
/** How long a cancelled run waits for its running shards to stop (a worker checks between batches). */
const CANCEL_WAIT_MS = 30_000;

/** Queues the shards and waits for all; resolves to the attempts each took. */
export async function runShardsOnQueue(
  redis: string,
  tasks: AnyShardTask[],
  o: { retries: number; signal?: AbortSignal; run: string },
): Promise<number[]> {
  const conn = connect(redis);
  const queue = new Queue(QUEUE, { connection: conn, prefix: PREFIX });
  const eventsConn = connect(redis);
  const events = new QueueEvents(QUEUE, { connection: eventsConn, prefix: PREFIX });
  try {
    await Promise.all([queue.waitUntilReady(), events.waitUntilReady()]);
    const jobs = await Promise.all(
      tasks.map((t) =>
        queue.add('shard', t, {
          jobId: `${o.run}-${t.shard}`,
          attempts: o.retries + 1,
          backoff: { type: 'fixed', delay: 500 },
          removeOnComplete: false,
          removeOnFail: false,
        }),
      ),
    );
    const aborted = new Promise<never>((_, reject) => {
      if (o.signal?.aborted) reject(new AbortError());
      o.signal?.addEventListener('abort', () => reject(new AbortError()), { once: true });
    });
    try {
      await Promise.race([Promise.all(jobs.map((j) => j.waitUntilFinished(events))), aborted]);
    } catch (err) {
      // the failure that ended the run, read before the others are cancelled (they then fail too)
      const failed =
        err instanceof AbortError
          ? undefined
          : (await Promise.all(jobs.map((j) => queue.getJob(j.id!)))).find((j) => j?.failedReason && j.finishedOn);
      // best effort: what ended the run is what the caller gets, even if the cancellation fails
      await cancelRunning(
        conn,
        queue,
        jobs.map((j) => j.id!),
      ).catch(() => undefined);
      if (err instanceof AbortError) throw err;
      const t = failed?.data as AnyShardTask | undefined;
      const e = failedShard(failed?.failedReason ?? (err as Error).message);
      if (!t) throw new SotError(e.code as SotError['code'], `a shard failed: ${e.message}`);
      throw shardFailure(e, t, failed?.attemptsMade ?? '?');
    }
    const done = await Promise.all(jobs.map((j) => queue.getJob(j.id!)));
    return done.map((j) => j?.attemptsMade ?? 1);
  } finally {
    await Promise.all(tasks.map((t) => queue.remove(`${o.run}-${t.shard}`).catch(() => 0)));
    await events.close();
    await queue.close();
    eventsConn.disconnect(); // connections we made: BullMQ leaves them open
    conn.disconnect();
  }
}

/** Cancels the jobs of `ids` that workers are running, and waits (at most `CANCEL_WAIT_MS`) until none is. */
async function cancelRunning(conn: ReturnType<typeof connect>, queue: Queue, ids: string[]): Promise<void> {
  await conn.publish(CANCEL, JSON.stringify(ids));
  const ours = new Set(ids);
  const until = Date.now() + CANCEL_WAIT_MS;
  // the active list is as long as the fleet's worker slots, not the run's shards: one read per poll
  while ((await queue.getActive()).some((j) => ours.has(j.id!)) && Date.now() <= until)
    await new Promise((r) => setTimeout(r, 100));
}

/** A job's failedReason as the shard worker writes it (JSON), or any other error's message. */
function failedShard(reason: string): ShardError {
  const e = parseShardError(reason);
  if (e) return e;
  // not a shard worker's: BullMQ's own (a stalled job), or a worker of another version
  const code = /^(ERR_[A-Z_]+): /.exec(reason)?.[1]; // an older worker's 'ERR_X: message'
  return { code: code ?? 'ERR_INTERNAL', message: code ? reason.slice(code.length + 2) : reason };
}

export interface ShardWorker {
  close(): Promise<void>;
}

/** A `sot shard-worker`: runs shard jobs, `concurrency` at a time. */
export async function startShardWorker(
  redis: string,
  o: { concurrency?: number; lockMs?: number } = {},
): Promise<ShardWorker> {
  await assertReachable(redis);
  const outage = new Outage('sot shard-worker');
  const conn = connect(redis, outage);
  const lockMs = o.lockMs ?? 30_000;
  const worker = new Worker(
    QUEUE,
    async (job: Job<AnyShardTask>, _token?: string, signal?: AbortSignal) => {
      try {
        await runTask(job.data, signal);
      } catch (err) {
        const e = shardError(
          signal?.aborted ? new AbortError('the shard was cancelled: its run ended without it') : err,
        );
        const message = JSON.stringify(e); // the job's failedReason: the coordinator reads the code and an input error's place back
        // Bad input fails the same way every time, and a cancelled run wants none: no retry.
        throw ['ERR_INPUT', 'ERR_OPTION', 'ERR_ABORTED'].includes(e.code)
          ? new UnrecoverableError(message)
          : new Error(message);
      }
    },
    {
      connection: conn,
      prefix: PREFIX,
      concurrency: o.concurrency ?? 1,
      lockDuration: lockMs,
      stalledInterval: Math.max(1000, Math.floor(lockMs / 2)),
      maxStalledCount: 2,
    },
  );
  worker.on('error', outage.error);
  // the coordinators' cancellations: each names job ids; those this worker is not running are no-ops
  const sub = connect(redis, outage);
  sub.on('message', (_channel: string, message: string) => {
    let ids: unknown;
    try {
      ids = JSON.parse(message);
    } catch {
      return; // not a coordinator's: nothing to cancel
    }
    if (Array.isArray(ids)) for (const id of ids) if (typeof id === 'string') worker.cancelJob(id);
  });
  await Promise.all([worker.waitUntilReady(), sub.subscribe(CANCEL)]);
  return {
    async close() {
      await worker.close();
      sub.disconnect();
      conn.disconnect();
    },
  };
}
