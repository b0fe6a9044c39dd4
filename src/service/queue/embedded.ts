// The embedded queue: jobs run in this process, `concurrency` at a time, at
// most `maxRunningPerTenant` of one tenant, oldest first. The records on disk
// are the queue: after a restart, jobs found `queued` or `running` (the
// process died under them) are queued again and run from the start.
import type { ServiceConfig } from '../config.js';
import { TERMINAL, type JobRef, type JobStore } from '../jobs.js';
import type { Metrics } from '../metrics.js';
import { runJob, type StopReason } from '../worker.js';
import type { JobQueue } from './types.js';

const key = (r: JobRef) => `${r.tenant}/${r.id}`;

export class EmbeddedQueue implements JobQueue {
  private readonly waiting: JobRef[] = [];
  private readonly running = new Map<string, { ref: JobRef; ctrl: AbortController; done: Promise<void> }>();
  private readonly timers = new Map<string, NodeJS.Timeout>();
  private closing = false;

  constructor(
    private readonly store: JobStore,
    private readonly cfg: ServiceConfig,
    private readonly metrics?: Metrics,
  ) {}

  async start(): Promise<void> {
    const found = [];
    for (const tenant of await this.store.tenants()) {
      for (const r of await this.store.list(tenant)) if (!TERMINAL.includes(r.state)) found.push(r);
    }
    found.sort((a, b) => a.createdAt.localeCompare(b.createdAt));
    for (const r of found) {
      if (r.state === 'running')
        await this.store.update(r, (x) => ({ ...x, state: 'queued', stage: null, progress: null }));
      this.waiting.push({ tenant: r.tenant, id: r.id });
    }
    this.pump();
  }

  async enqueue(ref: JobRef): Promise<void> {
    this.waiting.push({ tenant: ref.tenant, id: ref.id });
    this.pump();
  }

  async cancel(ref: JobRef): Promise<void> {
    const i = this.waiting.findIndex((r) => key(r) === key(ref));
    if (i >= 0) this.waiting.splice(i, 1);
    const t = this.timers.get(key(ref));
    if (t) {
      clearTimeout(t);
      this.timers.delete(key(ref));
    }
    const run = this.running.get(key(ref));
    if (run) {
      run.ctrl.abort('cancel' satisfies StopReason);
      await run.done;
    }
  }

  async depth(): Promise<{ waiting: number; active: number }> {
    return { waiting: this.waiting.length + this.timers.size, active: this.running.size };
  }

  async ready(): Promise<boolean> {
    return !this.closing;
  }

  async close(graceMs: number): Promise<void> {
    this.closing = true;
    for (const t of this.timers.values()) clearTimeout(t); // their records say `queued`: the next start picks them up
    this.timers.clear();
    const all = () => Promise.all([...this.running.values()].map((r) => r.done));
    let timer: NodeJS.Timeout | undefined;
    const expired = await Promise.race([
      all().then(() => false),
      new Promise<boolean>((res) => (timer = setTimeout(() => res(true), graceMs))),
    ]);
    clearTimeout(timer);
    if (expired) for (const r of this.running.values()) r.ctrl.abort('shutdown' satisfies StopReason);
    await all();
  }

  /** Starts waiting jobs while there is room, skipping tenants at their limit. */
  private pump(): void {
    while (!this.closing && this.running.size < this.cfg.concurrency) {
      const perTenant = new Map<string, number>();
      for (const r of this.running.values()) perTenant.set(r.ref.tenant, (perTenant.get(r.ref.tenant) ?? 0) + 1);
      const i = this.waiting.findIndex((r) => (perTenant.get(r.tenant) ?? 0) < this.cfg.maxRunningPerTenant);
      if (i < 0) return;
      const [ref] = this.waiting.splice(i, 1);
      this.run(ref!);
    }
  }

  private run(ref: JobRef): void {
    const ctrl = new AbortController();
    const done = runJob(this.store, ref, this.cfg, ctrl.signal, this.metrics)
      .then((outcome) => {
        if (outcome.kind === 'retry' && !this.closing) {
          const t = setTimeout(() => {
            this.timers.delete(key(ref));
            void this.enqueue(ref);
          }, outcome.delayMs);
          this.timers.set(key(ref), t);
        }
      })
      .catch((err: unknown) => {
        process.emitWarning(`sot serve: job ${ref.id} could not be recorded: ${(err as Error)?.message}`);
      })
      .finally(() => {
        this.running.delete(key(ref));
        this.pump();
      });
    this.running.set(key(ref), { ref, ctrl, done });
  }
}
