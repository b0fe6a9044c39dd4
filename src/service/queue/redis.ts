// The one way SOT opens a Redis connection, and the check a run makes before
// it depends on one.
import { Redis } from 'ioredis';
import { IoError } from '../../errors.js';

/**
 * Says when a Redis outage starts and when it ends, once each: the
 * connections retry every few hundred milliseconds, and each retry's error
 * would otherwise be a line of its own (or ioredis's "Unhandled error event").
 */
export class Outage {
  private down = false;
  constructor(
    private readonly who: string,
    private readonly report: (message: string) => void = (m) => process.emitWarning(m),
  ) {}
  /** An error of a connection, or of a BullMQ worker on it. */
  readonly error = (err: Error): void => {
    if (this.down) return;
    this.down = true;
    this.report(`${this.who}: ${err.message} (retrying)`);
  };
  /** A connection is ready (again). */
  readonly ready = (): void => {
    if (!this.down) return;
    this.down = false;
    this.report(`${this.who}: Redis is reachable again`);
  };
}

/** BullMQ's connections must retry forever (blocking commands); ours too, so a Redis restart is survived. */
export function connect(url: string, outage = new Outage(`Redis at ${url}`)): Redis {
  const conn = new Redis(url, { maxRetriesPerRequest: null });
  conn.on('error', outage.error);
  conn.on('ready', outage.ready);
  return conn;
}

/**
 * Fails with `IoError` unless Redis at `url` answers a PING within
 * `timeoutMs`: a mistyped or unreachable URL is said at once, instead of a
 * run that waits on a connection retried forever.
 */
export async function assertReachable(url: string, timeoutMs = 5_000): Promise<void> {
  let conn: Redis;
  try {
    conn = new Redis(url, {
      lazyConnect: true,
      connectTimeout: timeoutMs,
      maxRetriesPerRequest: 0,
      retryStrategy: () => null,
      enableOfflineQueue: false,
    });
  } catch (err) {
    throw new IoError(`cannot use the Redis URL ${url}: ${(err as Error).message}`, { cause: err });
  }
  let cause: Error | undefined; // the socket's error (connect() itself only says the connection closed)
  conn.on('error', (err: Error) => (cause ??= err));
  try {
    await conn.connect();
    const pong = await conn.ping();
    if (pong !== 'PONG') throw new Error(`PING answered ${pong}`);
  } catch (err) {
    const why = cause ?? (err as Error);
    throw new IoError(`cannot reach Redis at ${url}: ${why.message}`, { cause: why });
  } finally {
    conn.disconnect();
  }
}
