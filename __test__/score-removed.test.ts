// score() writes the records it drops with their reasons, as purify and a
// sharded run do: the same bytes as a sharded run on the fit's own data, the
// fit's file named where the reasons cite the data's own harm of another file,
// and no excerpts (only the set and the index) from a model file written
// before it held them.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { OptionError } from '../src/errors.js';
import { fit, type FitResult } from '../src/fit/fit.js';
import { decodeModel, encodeModel } from '../src/fit/model.js';
import { score } from '../src/fit/score.js';
import { purifySharded } from '../src/fit/shards.js';
import { contaminated, readJsonl, writeJsonl, type Contaminated } from './datasets.js';

const HARMFUL = ['advbench'];
const CREATED = '2026-01-01T00:00:00.000Z';

type Removed = { id: number; source: string; sot_score: number; sot_rank: number; sot_reason: string };

describe('score: the removed records and their reasons', () => {
  let c: Contaminated;
  let data: string;
  let anchor: string;
  let fitted: FitResult;

  beforeAll(async () => {
    c = contaminated(180, 20);
    data = writeJsonl(join(c.dir, 'train.jsonl'), c.records);
    anchor = writeJsonl(join(c.dir, 'anchor.jsonl'), c.anchor);
    fitted = await fit({
      input: data,
      harmful: HARMFUL,
      anchor: [anchor],
      embeddingCache: false,
      model: join(c.dir, 'train.sotmodel'),
      createdAt: CREATED,
    });
  }, 120_000);

  it('on the fit data: byte for byte the removed file of a sharded run', async () => {
    const s = await score({
      input: data,
      model: fitted.model,
      keep: { count: 150 },
      output: join(c.dir, 'scored.jsonl'),
      embeddingCache: false,
    });
    expect(s.outputs.removed).toBe(join(c.dir, 'scored.removed.jsonl'));
    const removed = readJsonl<Removed>(s.outputs.removed!);
    expect(removed.length).toBe(50);
    // every dropped record, in file order, with its score and a reason that cites a harmful point
    expect(removed.map((r) => r.id)).toEqual(c.records.filter((_, i) => !s.selection!.kept[i]).map((r) => r.id));
    for (const r of removed) {
      expect(r.sot_score).toBe(s.scores[r.id]);
      expect(r.sot_reason).toMatch(/push [+-]\d\.\d\d/);
      expect(r.sot_reason).toMatch(
        /advbench #\d+ \(cost \d\.\d{3}\): ".+"|the data's own harm \(cost \d\.\d{3}\): records \d/,
      );
    }
    const sharded = await purifySharded({
      input: data,
      harmful: HARMFUL,
      anchor: [anchor],
      embeddingCache: false,
      shards: 2,
      workers: 1,
      keep: { count: 150 },
      output: join(c.dir, 'sharded.jsonl'),
      html: null,
      createdAt: CREATED,
    });
    expect(readFileSync(s.outputs.removed!, 'utf8')).toBe(readFileSync(sharded.outputs.removed!, 'utf8'));
  }, 120_000);

  it("on another file: the data's own harm is named by the fit's file", async () => {
    // the harmful records first: the own-harm points (means of the fit's lowest records) are nearest some of them
    const other = writeJsonl(
      join(c.dir, 'other.jsonl'),
      [...c.records].sort((a, b) => Number(b.source === 'harmful') - Number(a.source === 'harmful')),
    );
    const s = await score({ input: other, model: fitted.model, keep: { fraction: 0.8 }, embeddingCache: false });
    expect(s.outputs.removed).toBe(join(c.dir, 'other.removed.jsonl'));
    const reasons = readJsonl<Removed>(s.outputs.removed!).map((r) => r.sot_reason);
    expect(reasons.length).toBe(40);
    const own = reasons.filter((r) => r.includes("the data's own harm"));
    expect(own.length).toBeGreaterThan(0);
    for (const r of own) expect(r).toMatch(new RegExp(`records [\\d, and]+ of ${data.replace(/[.]/g, '\\.')}, among`));
  }, 60_000);

  it('a model file without the excerpts: reasons name the set and the index', async () => {
    const m = decodeModel(readFileSync(fitted.model), fitted.model);
    const { excerpts, ...references } = m.header.references;
    expect(excerpts!.length).toBe(m.harmful.points.rows - (references.ownHarm ?? 0));
    const older = join(c.dir, 'older.sotmodel');
    writeFileSync(older, encodeModel({ ...m, header: { ...m.header, references } }));
    const out = join(c.dir, 'older-removed.jsonl');
    await score({ input: data, model: older, keep: { count: 150 }, removed: out, embeddingCache: false });
    const reasons = readJsonl<Removed>(out).map((r) => r.sot_reason);
    const cited = reasons.filter((r) => r.includes('advbench #'));
    expect(cited.length).toBeGreaterThan(0);
    for (const r of cited) expect(r).not.toMatch(/advbench #\d+ \(cost \d\.\d{3}\): /);
    // a header whose excerpts do not match its points is a corrupt file
    const bad = join(c.dir, 'bad.sotmodel');
    writeFileSync(bad, encodeModel({ ...m, header: { ...m.header, references: { ...references, excerpts: ['x'] } } }));
    await expect(score({ input: data, model: bad, embeddingCache: false })).rejects.toThrow(/references\.excerpts/);
  }, 60_000);

  it('removed: null writes none; a removed path without a selection or on the input is refused', async () => {
    const s = await score({
      input: data,
      model: fitted.model,
      keep: { count: 150 },
      output: join(c.dir, 'none.jsonl'),
      removed: null,
      embeddingCache: false,
    });
    expect(s.outputs.removed).toBeNull();
    await expect(
      score({ input: data, model: fitted.model, removed: join(c.dir, 'r.jsonl'), embeddingCache: false }),
    ).rejects.toThrow(OptionError);
    await expect(
      score({ input: data, model: fitted.model, keep: { count: 150 }, removed: data, embeddingCache: false }),
    ).rejects.toThrow(/input/);
    // the records already carrying a field the removed file adds: refused, naming the line and the field
    const taken = writeJsonl(join(c.dir, 'taken.jsonl'), [
      { ...c.records[0], sot_reason: 'mine' },
      ...c.records.slice(1),
    ]);
    await expect(
      score({ input: taken, model: fitted.model, keep: { count: 1 }, embeddingCache: false }),
    ).rejects.toThrow(/taken\.jsonl:1: .*"sot_reason"/);
    // and nothing is committed: no dataset, no scores, no removed file
    for (const f of ['taken.purified.jsonl', 'taken.scores.csv', 'taken.removed.jsonl'])
      expect(existsSync(join(c.dir, f))).toBe(false);
  }, 60_000);
});
