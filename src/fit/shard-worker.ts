// Worker process of `purify --shards`: runs one shard (JSON task in argv[2])
// and exits 0, or prints the error as JSON on stderr and exits 1.
import { InputError, SotError } from '../errors.js';
import { runTask, type AnyShardTask } from './shard.js';

const ac = new AbortController();
process.once('SIGTERM', () => ac.abort());
try {
  await runTask(JSON.parse(process.argv[2]!) as AnyShardTask, ac.signal);
} catch (err) {
  const e = err as Error;
  // an input error's place (file, line, field) travels too: the coordinator rethrows it as one
  const where = err instanceof InputError ? { file: err.file, line: err.line, field: err.field } : {};
  process.stderr.write(
    `${JSON.stringify({ code: err instanceof SotError ? err.code : 'ERR_INTERNAL', message: e?.message ?? String(err), ...where })}\n`,
  );
  process.exitCode = 1;
}
