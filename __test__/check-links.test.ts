// The docs' link checker (scripts/check-links.mjs, run by CI through
// scripts/check-docs.sh): it must catch a missing file and a missing anchor,
// follow GitHub's heading ids, and pass the repository's own docs.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

const script = resolve(__dirname, '..', 'scripts', 'check-links.mjs');
const dir = mkdtempSync(join(tmpdir(), 'sot-links-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function check(...files: string[]) {
  const r = spawnSync(process.execPath, [script, ...files], { encoding: 'utf8' });
  return { status: r.status, lines: r.stdout.trim().split('\n') };
}

describe('check-links', () => {
  it('reports missing files and anchors, with file and line', () => {
    writeFileSync(join(dir, 'other.md'), '# Other page\n\n## Options: `--eps` and λ\n\n## Repeat\n\n## Repeat\n');
    const page = join(dir, 'page.md');
    writeFileSync(
      page,
      [
        '# Page',
        '',
        '[fine](other.md) [fine too](other.md#options---eps-and-λ) [second repeat](other.md#repeat-1) [here](#page)',
        '[gone](missing.md) [no anchor](other.md#nothing) [external](https://example.invalid/x)',
        '`[in a code span](nowhere.md)`',
        '```',
        '[in a code block](nowhere.md)',
        '```',
        '[ref]: ./missing-too.md',
      ].join('\n'),
    );
    const r = check(page);
    expect(r.status).toBe(1);
    expect(r.lines).toEqual([
      expect.stringMatching(/page\.md:4: missing\.md: no such file$/),
      expect.stringMatching(/page\.md:4: other\.md#nothing: no heading with id "nothing"/),
      expect.stringMatching(/page\.md:9: \.\/missing-too\.md: no such file$/),
      'links: 1 files checked, 3 broken',
    ]);
  });

  it('passes a page whose links all resolve', () => {
    const page = join(dir, 'good.md');
    writeFileSync(page, '# Good\n\nSee [other](other.md#other-page) and [this](#good).\n');
    expect(check(page)).toEqual({ status: 0, lines: ['links: 1 files checked, 0 broken'] });
  });

  it("passes the repository's README, CONTRIBUTING, BENCHMARKS, CHANGELOG and docs/", () => {
    const r = check();
    expect(r.lines.at(-1)).toMatch(/ 0 broken$/);
    expect(r.status).toBe(0);
  });
});
