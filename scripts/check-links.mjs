#!/usr/bin/env node
// Checks the relative links of Markdown files offline: every link to a file
// must name one that exists, and every #anchor must name a heading of its
// target (GitHub's heading ids). Links with a scheme (https:, mailto:) are not
// followed. Code spans and fenced code blocks are skipped.
//
//   node scripts/check-links.mjs [FILE.md ...]
//
// Without arguments: README.md, CONTRIBUTING.md, BENCHMARKS.md, CHANGELOG.md
// and docs/*.md. Prints one line per broken link (file:line: target: why) and
// exits 1 when there is any.
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');

/** The lines of a Markdown file with code blocks blanked and, unless `keepSpans`, code spans removed (line numbers kept). */
function proseLines(text, keepSpans = false) {
  let fence = null;
  return text.split('\n').map((line) => {
    const open = line.match(/^\s*(`{3,}|~{3,})/);
    if (fence) {
      if (open && open[1][0] === fence[0] && open[1].length >= fence.length) fence = null;
      return '';
    }
    if (open) {
      fence = open[1];
      return '';
    }
    return keepSpans ? line : line.replace(/(`+)[\s\S]*?\1/g, '');
  });
}

/** GitHub's id of a heading: lower case, punctuation dropped, spaces to hyphens. */
export function slug(heading) {
  return heading
    .replace(/!?\[([^\]]*)\]\([^)]*\)/g, '$1')
    .replace(/<[^>]+>/g, '')
    .trim()
    .toLowerCase()
    .replace(/[^\p{L}\p{N}\p{M} _-]/gu, '')
    .replace(/ /g, '-');
}

const anchorCache = new Map();
/** The heading ids of a Markdown file (repeats get -1, -2, ... as on GitHub), plus explicit <a id/name>. */
function anchors(file) {
  if (anchorCache.has(file)) return anchorCache.get(file);
  const ids = new Set();
  const seen = new Map();
  for (const line of proseLines(readFileSync(file, 'utf8'), true)) {
    const h = line.match(/^ {0,3}#{1,6}\s+(.*?)\s*#*\s*$/);
    if (h) {
      const base = slug(h[1].replace(/`/g, ''));
      const n = seen.get(base) ?? 0;
      seen.set(base, n + 1);
      ids.add(n === 0 ? base : `${base}-${n}`);
    }
    for (const a of line.matchAll(/<a\s+(?:id|name)="([^"]+)"/g)) ids.add(a[1]);
  }
  anchorCache.set(file, ids);
  return ids;
}

/** The link targets of one line: inline [text](target "title"), images, and [ref]: target definitions. */
function targets(line) {
  const out = [];
  for (const m of line.matchAll(/\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)/g)) out.push(m[1]);
  const def = line.match(/^ {0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+"[^"]*")?\s*$/);
  if (def) out.push(def[1]);
  return out;
}

/** Broken links of one Markdown file, as "file:line: target: why". */
export function checkFile(file) {
  const problems = [];
  const lines = proseLines(readFileSync(file, 'utf8'));
  lines.forEach((line, i) => {
    for (const target of targets(line)) {
      if (/^[a-z][a-z0-9+.-]*:/i.test(target)) continue; // https:, mailto:, ...: not checked offline
      const [pathPart, anchor] = target.split('#', 2);
      const path = decodeURIComponent(pathPart);
      const dest = path === '' ? file : resolve(dirname(file), path);
      const where = `${relative(root, file)}:${i + 1}: ${target}`;
      if (!existsSync(dest)) {
        problems.push(`${where}: no such file`);
        continue;
      }
      if (anchor === undefined || anchor === '') continue;
      if (statSync(dest).isDirectory() || !/\.md$/i.test(dest)) {
        problems.push(`${where}: an anchor into a file that is not Markdown`);
        continue;
      }
      if (!anchors(dest).has(decodeURIComponent(anchor)))
        problems.push(`${where}: no heading with id "${anchor}" in ${relative(root, dest)}`);
    }
  });
  return problems;
}

function defaultFiles() {
  const docs = join(root, 'docs');
  const pages = existsSync(docs)
    ? readdirSync(docs)
        .filter((f) => f.endsWith('.md'))
        .map((f) => join(docs, f))
    : [];
  return ['README.md', 'CONTRIBUTING.md', 'BENCHMARKS.md', 'CHANGELOG.md']
    .map((f) => join(root, f))
    .filter(existsSync)
    .concat(pages.sort());
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const args = process.argv.slice(2);
  const files = args.length ? args.map((f) => resolve(f)) : defaultFiles();
  const missing = files.filter((f) => !existsSync(f));
  const problems = [...missing.map((f) => `${f}: no such file`), ...files.filter(existsSync).flatMap(checkFile)];
  for (const p of problems) console.log(p);
  console.log(`links: ${files.length} files checked, ${problems.length} broken`);
  process.exit(problems.length ? 1 : 0);
}
