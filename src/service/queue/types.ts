import type { JobRef } from '../jobs.js';

/** The job queue, embedded (in-process) or BullMQ on Redis. The job's record on disk is the truth; the queue carries references. */
export interface JobQueue {
  /** Picks up what the queue held before (a restart); call once before anything else. */
  start(): Promise<void>;
  enqueue(ref: JobRef): Promise<void>;
  /** Stops a waiting or running job; resolves once no worker of this process will write to it again. */
  cancel(ref: JobRef): Promise<void>;
  depth(): Promise<{ waiting: number; active: number }>;
  /** Whether the queue can take jobs (for /readyz). */
  ready(): Promise<boolean>;
  /** Stops taking jobs; running ones get `graceMs` to finish, then are handed back (queued again). */
  close(graceMs: number): Promise<void>;
}
