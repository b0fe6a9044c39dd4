// Prometheus metrics (prom-client), one registry per server or worker process.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export class Metrics {
  readonly registry = new Registry();
  private readonly runs: Counter<'outcome'>;
  private readonly stages: Histogram<'stage'>;
  private readonly records: Counter;
  private readonly running: Gauge;

  /** `states` and `depth` are read at scrape time (from the job store and the queue). */
  constructor(
    o: {
      states?: () => Promise<Record<string, number>>;
      depth?: () => Promise<{ waiting: number; active: number }>;
    } = {},
  ) {
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry, prefix: 'sot_' });
    this.runs = new Counter({
      name: 'sot_job_runs_total',
      help: 'Job runs ended in this process, by outcome',
      labelNames: ['outcome'],
      registers,
    });
    this.stages = new Histogram({
      name: 'sot_stage_seconds',
      help: 'Duration of the purify stages of the jobs run in this process',
      labelNames: ['stage'],
      buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600],
      registers,
    });
    this.records = new Counter({
      name: 'sot_records_total',
      help: 'Records purified by this process (rate() of it: records per second)',
      registers,
    });
    this.running = new Gauge({ name: 'sot_jobs_running_here', help: 'Jobs running in this process', registers });
    if (o.states) {
      const states = o.states;
      new Gauge({
        name: 'sot_jobs',
        help: 'Jobs on the data root, by state',
        labelNames: ['state'],
        registers,
        async collect() {
          for (const [state, n] of Object.entries(await states())) this.set({ state }, n);
        },
      });
    }
    if (o.depth) {
      const depth = o.depth;
      new Gauge({
        name: 'sot_queue_depth',
        help: 'Jobs in the queue: waiting (incl. delayed retries) and active',
        labelNames: ['kind'],
        registers,
        async collect() {
          const d = await depth();
          this.set({ kind: 'waiting' }, d.waiting);
          this.set({ kind: 'active' }, d.active);
        },
      });
    }
  }

  started(): void {
    this.running.inc();
  }
  stage(stage: string, seconds: number): void {
    this.stages.observe({ stage }, seconds);
  }
  finished(outcome: string, records = 0): void {
    this.running.dec();
    this.runs.inc({ outcome });
    if (records) this.records.inc(records);
  }
}
