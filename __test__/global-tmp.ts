// Every temporary file of a test run, and of the processes its tests start,
// lives under one folder that is removed when the run ends: tests write
// datasets, caches, packed tarballs and model copies to os.tmpdir(), and a
// folder a failing or killed test leaves behind must not pile up across runs.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export default function setup(): () => void {
  const dir = mkdtempSync(join(tmpdir(), 'sot-test-run-'));
  const before = process.env.TMPDIR;
  process.env.TMPDIR = dir; // read by os.tmpdir() in the test workers and every child process
  return () => {
    if (before === undefined) delete process.env.TMPDIR;
    else process.env.TMPDIR = before;
    rmSync(dir, { recursive: true, force: true });
  };
}
