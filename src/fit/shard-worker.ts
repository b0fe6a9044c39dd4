// Worker process of `purify --shards`: runs one shard (JSON task in argv[2])
// and exits 0, or prints the error as JSON on stderr and exits 1.
import { runTask, shardError, type AnyShardTask } from './shard.js';

const ac = new AbortController();
process.once('SIGTERM', () => ac.abort());
try {
  await runTask(JSON.parse(process.argv[2]!) as AnyShardTask, ac.signal);
} catch (err) {
  // an input error's place (file, line, field) travels too: the coordinator rethrows it as one
  process.stderr.write(`${JSON.stringify(shardError(err))}\n`);
  process.exitCode = 1;
}
