// Benchmark data: named sources of the data mirror (SOT_DATA_DIR, default
// ../shared/data) read into { prompt, response } samples. A source is
// described in a config file (see bench/quality/config.json, "sources"):
// files, an optional JSON root, a `where` filter, the prompt fields (joined by
// a blank line) and the response field, or one `text` field; deduplicated
// within the source by prompt and response (or by prompt alone). A `group`
// regex names what a sample belongs to (its first capture group, e.g. the
// dialogue of an hh-rlhf side), so tasks can keep groups apart; default the prompt.
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');

/** The data mirror; fails loudly when it is missing. */
export function dataDir() {
  const dir = process.env.SOT_DATA_DIR || resolve(root, '..', 'shared', 'data');
  if (!existsSync(dir)) throw new Error(`no data mirror at ${dir} (set SOT_DATA_DIR)`);
  return dir;
}

/** `obj` at a dotted path (`.` is the object itself; digits index arrays). */
export function at(obj, path) {
  if (path === '.') return obj;
  let v = obj;
  for (const part of path.split('.')) v = v == null ? undefined : v[/^\d+$/.test(part) ? Number(part) : part];
  return v;
}

function readRecords(dir, file) {
  const text = readFileSync(join(dir, file), 'utf8');
  if (!file.endsWith('.jsonl')) return JSON.parse(text);
  const out = [];
  for (const line of text.split('\n')) {
    if (!line.trim()) continue;
    try {
      out.push(JSON.parse(line));
    } catch {
      /* alpaca-libre v2 has 14 malformed lines: skipped, as `sot purify --skip-invalid` would */
    }
  }
  return out;
}

/** Normal form of a prompt for deduplication and disjointness checks. */
export const norm = (s) =>
  s
    .toLowerCase()
    .replace(/\s+/g, ' ')
    .trim()
    .replace(/[ .!?]+$/, '');

/** The samples of source `name` of `sources` (a config's "sources" object). */
export function loadSource(sources, name, dir = dataDir()) {
  const s = sources[name];
  if (!s) throw new Error(`config: unknown source ${name}`);
  const seen = new Set();
  const out = [];
  for (const file of s.files) {
    let rows = readRecords(dir, file);
    if (s.root) rows = at(rows, s.root);
    for (const r of rows) {
      if (s.where && !Object.entries(s.where).every(([k, v]) => at(r, k) === v)) continue;
      const sample = s.text
        ? { prompt: String(at(r, s.text) ?? ''), response: '' }
        : {
            prompt: s.prompt
              .map((p) => at(r, p))
              .filter((x) => typeof x === 'string' && x.trim())
              .join('\n\n'),
            response: s.response ? String(at(r, s.response) ?? '') : '',
          };
      // Deduplicate within a source, by prompt or (default) by prompt and response.
      const key = s.dedupe === 'prompt' ? norm(sample.prompt) : `${norm(sample.prompt)}\u0000${norm(sample.response)}`;
      if (!norm(sample.prompt) || seen.has(key)) continue;
      seen.add(key);
      const g = s.group ? new RegExp(s.group).exec(sample.prompt) : null;
      sample.group = norm(g?.[1] ?? sample.prompt);
      out.push(sample);
    }
  }
  return out;
}
