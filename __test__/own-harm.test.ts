// The data's own harm (docs/learner-defaults.md): the learner's second solve,
// with its lowest-weighted records joined to the harmful reference, on the
// paper's setting: alpaca-libre with 10% hh-rlhf red-team dialogues (the
// `rejected`, more harmful side), a 50-record anchor, K = 80%, the built-in
// embedder and named harmful references. The dialogues are in-domain harm
// that the reference (requests and answers) resembles only loosely.
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { harmfulForReasons, harmfulReference, saveModel } from '../src/fit/model.js';
import { fit, loadModel, purify, score } from '../src/index.js';
import { DATA_DIR, alpacaOk, readJsonl, shuffle, writeJsonl } from './datasets.js';

const dir = mkdtempSync(join(tmpdir(), 'sot-own-harm-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function dialogues(): string[] {
  return readFileSync(join(DATA_DIR, 'hh-rlhf/harmless-base/test.jsonl'), 'utf8')
    .split('\n')
    .filter((l) => l.trim())
    .map((l) => (JSON.parse(l) as { rejected: string }).rejected.trim());
}

const render = (p: { instruction: string; input: string; output: string }) =>
  `${p.instruction}${p.input ? `\n\n${p.input}` : ''}\n\n${p.output}`;

const clean = shuffle(alpacaOk(), 21);
const records = shuffle(
  [
    ...clean.slice(0, 900).map((p) => ({ text: render(p), source: 'benign' })),
    ...shuffle(dialogues(), 5)
      .slice(0, 100)
      .map((text) => ({ text, source: 'harmful' })),
  ],
  9,
).map((r, id) => ({ id, ...r }));
const input = writeJsonl(join(dir, 'train.jsonl'), records);
const anchor = writeJsonl(
  join(dir, 'anchor.jsonl'),
  clean.slice(900, 950).map((p) => ({ text: render(p) })),
);
const common = {
  input,
  anchor: [anchor],
  harmful: ['advbench', 'harmbench', 'strongreject'],
  dataDir: DATA_DIR,
  offline: true,
  embeddingCache: false as const,
  html: null,
  keep: { fraction: 0.8 },
};

/** Share of the injected dialogues in a purified file. */
function recall(path: string): number {
  return readJsonl<{ source: string }>(path).filter((r) => r.source === 'harmful').length / 100;
}

/** What the purify run found, for the model file's test. */
const purified = { ownHarmMembers: [] as number[][] };

describe("the data's own harm", () => {
  it('keeps far fewer in-domain harmful dialogues than one solve, and as many clean records', async () => {
    const once = await purify({ ...common, output: join(dir, 'once.jsonl'), learner: { ownHarmShare: 0 } });
    const twice = await purify({ ...common, output: join(dir, 'twice.jsonl') });
    const [r1, r2] = [recall(once.outputs.dataset), recall(twice.outputs.dataset)];
    // one solve keeps about half of them (BENCHMARKS.md: 0.55 at 2,000 records)
    expect(r1).toBeGreaterThan(0.4);
    expect(r2).toBeLessThan(r1 - 0.15);
    // K is the same, so the clean records dropped are fewer by as many
    expect(twice.k).toBe(once.k);
    // the contamination estimate is the first solve's, whatever the second does
    expect(twice.contamination).toEqual(once.contamination);
    // the report names the records taken as the data's own harm: 5% of 1,000, the dialogues among them at
    // over twice their 10% share of the data (14 of 50 here)
    const own = twice.report.learner!.ownHarm;
    expect(own).toEqual(Array.from(twice.scores.learned!.fitted.ownHarmRows));
    expect(own).toHaveLength(50);
    expect(own.filter((i) => records[i]!.source === 'harmful').length).toBeGreaterThan(10);
    expect(once.report.learner!.ownHarm).toEqual([]);

    // Reasons cite what the learner pushed away from: a dropped dialogue's nearest harmful point is
    // mostly an own-harm point, the mean of 3 other records taken, mostly dialogues themselves
    // (79 of 87 dropped dialogues here, 94% of their points' records).
    const members = twice.report.learner!.ownHarmMembers;
    purified.ownHarmMembers = members;
    expect(members).toHaveLength(50);
    members.forEach((m, j) => {
      expect(m).toHaveLength(3);
      expect(m.every((i) => own.includes(i) && i !== own[j])).toBe(true);
    });
    const t = twice.report.records!;
    const cites: number[] = [];
    let dropped = 0;
    t.index.forEach((i, s) => {
      if (t.kept[s] || records[i]!.source !== 'harmful') return;
      dropped++;
      const [set, j] = t.nearest[s]![0]!;
      if (set !== 'own-harm') return;
      const m = members[j]!;
      cites.push(...m);
      expect(t.reason[s]).toMatch(
        new RegExp(`the data's own harm \\(cost 0\\.\\d{3}\\): records ${m[0]}, ${m[1]} and ${m[2]}, among those`),
      );
      expect(t.cited[`own-harm #${j}`]).toMatch(new RegExp(`^records ${m.join(', ')}: \\S`));
    });
    expect(cites.length / 3).toBeGreaterThan(0.7 * dropped);
    expect(cites.filter((i) => records[i]!.source === 'harmful').length).toBeGreaterThan(0.8 * cites.length);
    // one solve pushes the reference only, and its reasons cite it only
    expect(once.report.records!.nearest.flat().some((x) => x?.[0] === 'own-harm')).toBe(false);
  }, 120_000);

  it('fit() writes the joined records into the model, and score() reproduces the purify ranking', async () => {
    const model = join(dir, 'm.sot-model');
    const f = await fit({ ...common, model });
    const m = await loadModel(model);
    // 5% of the 1,000 records joined the 1,188 + reference points, after them
    expect(m.header.references.ownHarm).toBe(50);
    const refs = m.header.references.harmful.reduce((a, r) => a + r.count, 0);
    expect(m.harmful.points.rows).toBe(refs + 50);
    expect(m.harmful.potential.length).toBe(refs + 50);
    const s = await score({
      input,
      model,
      embeddingCache: false,
      keep: { fraction: 0.8 },
      output: join(dir, 's.jsonl'),
    });
    expect(Array.from(s.scores)).toEqual(Array.from(f.sampleScores));
    expect(recall(s.outputs.dataset!)).toBe(recall(join(dir, 'twice.jsonl')));
    // the records each point averages, as indices of the fitted file (its sample is all of it here)
    const records_ = m.header.references.ownHarmRecords!;
    expect(f.sample).toBe(1000);
    expect(records_).toEqual(purified.ownHarmMembers); // the same learner on the same records
    // a sharded run's reasons look among every harmful point; in a file written before the list, the reference's
    expect(harmfulForReasons(m)).toEqual({ points: m.harmful.points, ownHarm: records_ });
    const { ownHarmRecords: _, ...before } = m.header.references;
    const older = { ...m, header: { ...m.header, references: before } };
    expect(harmfulForReasons(older)).toEqual({ points: harmfulReference(older), ownHarm: [] });
    expect(harmfulReference(older).rows).toBe(refs);
    // a damaged count or record list is a corrupt model file, naming it, before any output
    const damaged = [
      ...[-1, 2.5, m.harmful.points.rows, 'x'].map((ownHarm) => ({ ownHarm })),
      { ownHarmRecords: records_.slice(1) },
      { ownHarmRecords: [[1000], ...records_.slice(1)] },
      { ownHarmRecords: [[], ...records_.slice(1)] },
      { ownHarmRecords: 'x' },
    ];
    for (const bad of damaged) {
      const file = join(dir, 'bad.sot-model');
      await saveModel(file, {
        ...m,
        header: { ...m.header, references: { ...m.header.references, ...(bad as object) } },
      });
      const scores = join(dir, 'bad.scores.csv');
      await expect(score({ input, model: file, embeddingCache: false, scores })).rejects.toMatchObject({
        code: 'ERR_INPUT',
        file,
        problem: 'corrupt',
      });
      expect(existsSync(scores)).toBe(false);
    }
  }, 120_000);
});
