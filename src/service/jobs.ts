// Jobs on disk: the one record of a job is `<dataRoot>/<tenant>/jobs/<id>/job.json`,
// written atomically by whoever moves the job on (the server, the embedded
// queue or any `sot worker` sharing the data root). Its outputs are in `out/`.
import { randomBytes } from 'node:crypto';
import { lstat, mkdir, readdir, readFile, realpath, rm, stat } from 'node:fs/promises';
import { extname, isAbsolute, join, normalize, sep } from 'node:path';
import { writeFileAtomic } from '../io/index.js';
import { HttpError } from './errors.js';
import type { fileNames, jobStates } from './schemas.js';
import type { ContaminationEstimate } from '../learner.js';

export type JobState = (typeof jobStates)[number];
export type FileName = (typeof fileNames)[number];
export const TERMINAL: readonly JobState[] = ['succeeded', 'failed', 'cancelled'];

/** What a client sent as options (checked against `jobOptionsSchema`). */
export type JobOptions = Record<string, unknown> & {
  harmful: string[];
  anchor?: string[];
  html?: boolean;
  removed?: boolean;
  format?: string;
};

export interface JobRecord {
  id: string;
  tenant: string;
  state: JobState;
  stage: string | null;
  progress: { done: number; total?: number } | null;
  /** Runs started (a retry or a run taken over from a dead worker counts). */
  attempts: number;
  createdAt: string;
  startedAt?: string;
  finishedAt?: string;
  /** `host:pid` of the process that runs (or last ran) the job. */
  worker?: string;
  input: { source: 'upload' | 'path'; name: string; bytes: number };
  options: JobOptions;
  error?: { code: string; message: string };
  result?: {
    records: number;
    kept: number;
    removed: number;
    removedFraction: number;
    files: FileName[];
    warnings: string[];
    recordsPerSecond?: number;
    /** The run's contamination estimate, as the report gives it (null: the method gives none). */
    contamination?: ContaminationEstimate | null;
  };
}

export interface JobRef {
  tenant: string;
  id: string;
}

export const newJobId = () => randomBytes(16).toString('hex');

/** The public view of a record (the tenant is implied by the token). */
export function publicJob(r: JobRecord): Omit<JobRecord, 'tenant'> {
  const { tenant: _tenant, ...rest } = r;
  return rest;
}

export class JobStore {
  constructor(readonly root: string) {}

  tenantDir(tenant: string): string {
    return join(this.root, tenant);
  }
  jobDir(r: JobRef): string {
    return join(this.root, r.tenant, 'jobs', r.id);
  }
  outDir(r: JobRef): string {
    return join(this.jobDir(r), 'out');
  }
  /** The uploaded dataset of a job (its extension tells the format). */
  uploadPath(r: JobRef, name: string): string {
    return join(this.jobDir(r), `input${datasetExt(name)}`);
  }

  /** Where each output of a job goes; the dataset and the removed records keep the input's extension. */
  outputs(r: JobRef, inputName: string): Record<FileName, string> {
    const out = this.outDir(r);
    return {
      dataset: join(out, `purified${datasetExt(inputName)}`),
      scores: join(out, 'scores.csv'),
      removed: join(out, `removed${datasetExt(inputName)}`),
      report: join(out, 'report.json'),
      html: join(out, 'report.html'),
    };
  }

  async read(r: JobRef): Promise<JobRecord | undefined> {
    try {
      const rec = JSON.parse(await readFile(join(this.jobDir(r), 'job.json'), 'utf8')) as JobRecord;
      return rec.tenant === r.tenant && rec.id === r.id ? rec : undefined;
    } catch {
      return undefined; // missing, or removed while read
    }
  }

  /** Writes a record; its folder must exist (a job removed meanwhile stays removed). */
  async write(rec: JobRecord): Promise<void> {
    await writeFileAtomic(join(this.jobDir(rec), 'job.json'), `${JSON.stringify(rec)}\n`);
  }

  /** Read-modify-write; a no-op (undefined) when the job is gone. */
  async update(r: JobRef, fn: (rec: JobRecord) => JobRecord | undefined): Promise<JobRecord | undefined> {
    const rec = await this.read(r);
    if (!rec) return undefined;
    const next = fn(rec);
    if (!next) return rec;
    await this.write(next).catch(() => undefined); // removed meanwhile
    return next;
  }

  async list(tenant: string): Promise<JobRecord[]> {
    const ids = await readdir(join(this.root, tenant, 'jobs')).catch(() => [] as string[]);
    const recs = await Promise.all(
      ids.filter((id) => /^[0-9a-f]{32}$/.test(id)).map((id) => this.read({ tenant, id })),
    );
    return recs
      .filter((r): r is JobRecord => r !== undefined)
      .sort((a, b) =>
        a.createdAt === b.createdAt ? a.id.localeCompare(b.id) : a.createdAt.localeCompare(b.createdAt),
      );
  }

  async tenants(): Promise<string[]> {
    const names = await readdir(this.root, { withFileTypes: true }).catch(() => []);
    return names.filter((d) => d.isDirectory()).map((d) => d.name);
  }

  async remove(r: JobRef): Promise<void> {
    // Retried: a worker may still be writing the job's record (ENOTEMPTY while it lands a temp file).
    await rm(this.jobDir(r), { recursive: true, force: true, maxRetries: 5, retryDelay: 50 });
  }

  /** Bytes under a tenant's folder. */
  async usage(tenant: string): Promise<number> {
    return du(this.tenantDir(tenant));
  }

  /**
   * A client-given path, relative to the tenant's folder, as a real path
   * inside it: absolute paths and `..` are refused (400), and so is a path
   * whose real location (symlinks followed) leaves the folder (403).
   */
  async resolveTenantPath(tenant: string, rel: string): Promise<string> {
    if (typeof rel !== 'string' || rel === '' || rel.includes('\0'))
      throw new HttpError(400, 'ERR_PATH', 'path must be a non-empty relative path');
    if (isAbsolute(rel) || /^[A-Za-z]:|^\\/.test(rel))
      throw new HttpError(400, 'ERR_PATH', `path must be relative to your folder, got an absolute path: ${rel}`);
    const norm = normalize(rel);
    if (norm === '..' || norm.startsWith(`..${sep}`) || rel.split(/[\\/]/).includes('..'))
      throw new HttpError(400, 'ERR_PATH', `path must not contain '..': ${rel}`);
    const base = this.tenantDir(tenant);
    let real: string;
    let realBase: string;
    try {
      realBase = await realpath(base);
      real = await realpath(join(base, norm));
    } catch {
      throw new HttpError(400, 'ERR_PATH', `no such file in your folder: ${rel}`);
    }
    if (!real.startsWith(realBase + sep))
      throw new HttpError(403, 'ERR_PATH', `path leaves your folder (a symbolic link?): ${rel}`);
    if (!(await stat(real)).isFile()) throw new HttpError(400, 'ERR_PATH', `not a file: ${rel}`);
    return real;
  }

  async ensureTenant(tenant: string): Promise<void> {
    await mkdir(join(this.tenantDir(tenant), 'jobs'), { recursive: true });
  }
}

/** The dataset extension of a file name (`.jsonl` when it has none we know). */
export function datasetExt(name: string): string {
  const ext = extname(name).toLowerCase();
  return ['.jsonl', '.json', '.csv', '.parquet'].includes(ext) ? ext : '.jsonl';
}

async function du(path: string): Promise<number> {
  const s = await lstat(path).catch(() => undefined);
  if (!s) return 0;
  if (!s.isDirectory()) return s.size;
  const names = await readdir(path).catch(() => [] as string[]);
  let total = 0;
  for (const n of names) total += await du(join(path, n));
  return total;
}
