// Issue 16, defect 6: the reports cut texts (excerpts of the lowest-scored
// samples, excerpts inside skipped-record reasons) and embed user strings.
// A cut between the two halves of a surrogate pair leaves a lone surrogate,
// which is ill-formed in report.json and in the HTML page's embedded JSON.
// Texts here put emoji, astral letters, flags, ZWJ sequences and combining
// marks at every cut position.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { purify } from '../src/pipeline/purify.js';
import { excerpt } from '../src/report/build.js';
import { ROOT } from './datasets.js';

const scratch = mkdtempSync(join(tmpdir(), 'sot-report-text-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));
const HARMFUL = join(ROOT, '__test__', 'fixtures', 'bad', 'harmful.jsonl');

// Two-unit code points, a ZWJ family, a flag, a letter with two combining marks, a skin-tone modifier.
const PATTERN = '😀𝔘👩‍👩‍👧🇫🇷e\u0301\u0302👍🏽x';
const LONE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/** Every string in a JSON value (keys too). */
function strings(v: unknown, out: string[] = []): string[] {
  if (typeof v === 'string') out.push(v);
  else if (Array.isArray(v)) v.forEach((x) => strings(x, out));
  else if (typeof v === 'object' && v !== null) for (const [k, x] of Object.entries(v)) out.push(k), strings(x, out);
  return out;
}

function expectWellFormed(value: unknown): void {
  const bad = strings(value).filter((s) => LONE.test(s));
  expect(bad, 'strings with a lone surrogate').toEqual([]);
}

describe('report text is cut between characters (defect 6)', () => {
  it('excerpt never splits a code point or a grapheme, at every cut position', () => {
    const segmenter = new Intl.Segmenter(undefined, { granularity: 'grapheme' });
    for (let k = 0; k < 40; k++) {
      const text = 'w'.repeat(k) + PATTERN.repeat(40);
      for (const max of [10, 17, 60, 240]) {
        const cut = excerpt(text, max);
        expect(cut.length).toBeLessThanOrEqual(max);
        expect(LONE.test(cut)).toBe(false);
        expect(cut.endsWith('…')).toBe(true);
        // The kept part is a prefix made of whole graphemes of the text.
        const kept = cut.slice(0, -1);
        expect(text.startsWith(kept)).toBe(true);
        const boundaries = new Set([...segmenter.segment(text)].map((s) => s.index));
        expect(boundaries.has(kept.length)).toBe(true);
      }
    }
    // A single grapheme longer than the excerpt (endless combining marks) is cut at a code point.
    const marks = `a${'\u0301'.repeat(500)}`;
    expect(excerpt(marks, 50)).toBe(`a${'\u0301'.repeat(48)}…`);
    expect(LONE.test(excerpt(`${'😀'.repeat(100)}`, 50))).toBe(false);
  });

  it('purify writes report.json and the HTML page with no lone surrogate anywhere', async () => {
    const input = join(scratch, 'emoji.jsonl');
    const lines: string[] = [];
    for (let k = 0; k < 48; k++) {
      // The rendered text is "prompt response": its 240-unit excerpt is cut at every offset of PATTERN.
      lines.push(
        JSON.stringify({
          prompt: `w${'w'.repeat(k)} ${PATTERN.repeat(30)}`,
          response: `answer ${k} ${PATTERN.repeat(5)}`,
        }),
      );
    }
    // Invalid lines whose error excerpts (kept as skipped reasons in the report) are cut inside emoji.
    for (let k = 0; k < 6; k++) lines.push(`{"prompt": "${'😀'.repeat(20 + k)}" oops ${'😀'.repeat(40)}}`);
    lines.push(`[${'"😀😀😀",'.repeat(30)}1]`);
    writeFileSync(input, `${lines.join('\n')}\n`);
    const out = join(scratch, 'out.jsonl');
    const res = await purify({ input, harmful: [HARMFUL], output: out, skipInvalid: true, embeddingCache: false });
    expect(res.report.input.skipped).toBe(7);
    expect(res.report.lowest.length).toBe(25);
    expectWellFormed(res.report);

    const bytes = readFileSync(res.outputs.report);
    const text = new TextDecoder('utf-8', { fatal: true }).decode(bytes); // well-formed UTF-8
    const report = JSON.parse(text);
    expectWellFormed(report);
    expect(report.lowest.every((l: { excerpt: string }) => l.excerpt.endsWith('…'))).toBe(true);
    expect(report.input.skippedReasons.length).toBeGreaterThan(0);

    const html = readFileSync(res.outputs.html!, 'utf8');
    const embedded = /<script type="application\/json" id="sot-report">([\s\S]*?)<\/script>/.exec(html)?.[1];
    expect(embedded).toBeDefined();
    const data = JSON.parse(embedded!);
    expectWellFormed(data);
    expect(data.lowest.map((l: { excerpt: string }) => l.excerpt)).toEqual(
      report.lowest.map((l: { excerpt: string }) => l.excerpt),
    );

    // And a browser renders the page, excerpts included.
    const chromium = ['chromium', 'chromium-browser', 'google-chrome'].find(
      (b) => spawnSync(b, ['--version']).status === 0,
    );
    expect(chromium, "Chromium is needed for this test (.ci/run installs Debian's chromium)").toBeDefined();
    const dom = spawnSync(
      chromium!,
      ['--headless', '--no-sandbox', '--disable-gpu', '--dump-dom', `file://${res.outputs.html}`],
      { encoding: 'utf8', timeout: 60_000 },
    );
    expect(dom.status).toBe(0);
    expect(Number(/<body[^>]*data-rendered="(\d+)"/.exec(dom.stdout)?.[1])).toBeGreaterThan(48);
    expect((dom.stdout.match(/<td class="ex"[ >]/g) ?? []).length).toBe(48); // the record table: all 48 on its first page
  });
});
