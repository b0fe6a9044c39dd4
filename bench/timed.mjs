// A Node process timed by GNU time (/usr/bin/time, where the machine has
// it): the bench scripts' one way to take a run's wall time and peak
// resident set (its maximum resident set).
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';

export const gnuTime = existsSync('/usr/bin/time') ? '/usr/bin/time' : null;

/**
 * `spawnSync` of `node argv...` (utf8, large buffers; `options` added), with
 * `wall` in seconds and `peakRss` in bytes from GNU time (null without it).
 */
export function runNode(argv, options = {}) {
  const [exe, args] = gnuTime
    ? [gnuTime, ['-f', 'gnutime %e %M', process.execPath, ...argv]]
    : [process.execPath, argv];
  const r = spawnSync(exe, args, { encoding: 'utf8', maxBuffer: 1 << 26, ...options });
  const m = /gnutime ([\d.]+) (\d+)/.exec(r.stderr ?? '');
  return { ...r, wall: m ? Number(m[1]) : null, peakRss: m ? Number(m[2]) * 1024 : null };
}
