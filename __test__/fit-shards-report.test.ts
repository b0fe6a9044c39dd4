// purify --shards writes what the whole-dataset run writes: the JSON report
// (same schema), its HTML page, and the removed records with their reasons,
// each reason the one the whole-dataset code gives that record against the
// same model; all committed together or not at all.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parquetWriteFile } from 'hyparquet-writer';
import { beforeAll, describe, expect, it } from 'vitest';
import { fit } from '../src/fit/fit.js';
import { harmfulReference, loadModel, modelEmbedder, saveModel } from '../src/fit/model.js';
import { score } from '../src/fit/score.js';
import { scoreMatrix, selectByScore } from '../src/fit/scoring.js';
import { gibbsWeights } from '../src/selection.js';
import { readShard, runShard } from '../src/fit/shard.js';
import { purifySharded, type ShardedOptions } from '../src/fit/shards.js';
import type { Scores } from '../src/learner.js';
import { explainRecords } from '../src/pipeline/audit.js';
import { embedDataset, openEmbeddingCache } from '../src/pipeline/embedding.js';
import { openDataset } from '../src/io/index.js';
import { PipelineInput } from '../src/pipeline/input.js';
import { REMOVED_FIELDS } from '../src/pipeline/outputs.js';
import { loadReferences } from '../src/pipeline/references.js';
import type { PurifyOptions } from '../src/pipeline/options.js';
import { checkReport } from '../src/report/validate.js';
import { CLI, contaminated, readJsonl, writeJsonl, type Contaminated } from './datasets.js';

const HARMFUL = ['advbench'];
const THRESHOLD = 0;

describe('the sharded run writes the report, the page and the removed records', () => {
  let c: Contaminated;
  let data: string;
  let anchor: string;
  let common: ShardedOptions;

  beforeAll(() => {
    c = contaminated(360, 40);
    data = writeJsonl(join(c.dir, 'train.jsonl'), c.records);
    anchor = writeJsonl(join(c.dir, 'anchor.jsonl'), c.anchor);
    // Fitted on a sample, no refit: the model is the one fit() writes with these options.
    common = {
      input: data,
      harmful: HARMFUL,
      anchor: [anchor],
      embeddingCache: false,
      shards: 3,
      sample: 200,
      refit: 0,
      keep: { count: 300 },
      createdAt: '2026-01-01T00:00:00.000Z',
    };
  });

  it('a report of the same schema; every removed record with the whole-dataset reason against the same model', async () => {
    const out = join(c.dir, 'sharded.jsonl');
    const res = await purifySharded({ ...common, output: out, groupField: 'source' });
    expect(res.k).toBe(300);
    // the whole run's outputs, and the model file (none asked for here)
    expect(Object.keys(res.outputs).sort()).toEqual(['dataset', 'html', 'model', 'removed', 'report', 'scores']);
    expect(res.outputs.model).toBeNull();

    // The report validates against the schema the page reads, and says what a sharded run is.
    const report = checkReport(JSON.parse(readFileSync(res.outputs.report, 'utf8')), res.outputs.report);
    expect(report).toEqual(res.report);
    expect(report.selection).toEqual({ n: 400, k: 300 });
    expect(report.input).toMatchObject({ path: data, format: 'jsonl', records: 400, skipped: 0 });
    expect(report.learner).toBeNull(); // no per-step trace over all records
    // one attempt each in the fit's two passes and the scoring
    expect(report.sharded).toMatchObject({ shards: 3, attempts: [3, 3, 3], refit: 0 });
    expect(report.sharded!.fit).toMatchObject({ records: 400, sample: 200, seed: 0 });
    expect(report.references.harmful[0]!.source).toBe('advbench');
    expect(Object.keys(report.timings)).toEqual(['fit', 'refit', 'score', 'select', 'reasons', 'write']);
    expect(report.records!.index).toHaveLength(400);
    expect(report.groups!.field).toBe('source');
    expect(report.groups!.rows.reduce((a, g) => a + g.dropped, 0)).toBe(100);
    expect(report.projection.downstream).toHaveLength(400);
    expect(report.projection.downstreamTotal).toBe(400);
    expect(report.projection.downstream.map((p) => p[3])).toEqual(c.records.map((_, i) => i));
    expect(report.contributions!.maxResidual).toBeLessThan(1e-9); // the scores are exactly pull + push
    // the files the report describes are these bytes
    const { createHash } = await import('node:crypto');
    const sha = (p: string) => createHash('sha256').update(readFileSync(p)).digest('hex');
    expect(report.files!.dataset.sha256).toBe(sha(out));
    expect(report.files!.removed!.sha256).toBe(sha(res.outputs.removed!));

    // The removed file holds exactly the records not kept, in input order.
    const kept = readJsonl(out).map((r) => r.id);
    const removed = readJsonl(res.outputs.removed!);
    const keptSet = new Set(kept);
    expect(removed.map((r) => r.id)).toEqual(c.records.map((r) => r.id).filter((id) => !keptSet.has(id)));
    expect(removed).toHaveLength(100);

    // The whole-dataset code (explainRecords) on every record at once, against the same model.
    const modelPath = join(c.dir, 'same.sot-model');
    await fit({ ...common, model: modelPath });
    const model = await loadModel(modelPath);
    const embedder = modelEmbedder(model, modelPath);
    const input = await PipelineInput.open({ input: data, template: model.header.template ?? undefined });
    const { matrix } = await embedDataset(input, 400, embedder, await openEmbeddingCache({}, embedder), {});
    const s = await scoreMatrix(model, matrix);
    const selection = await selectByScore(s.score, { count: 300 });
    const scores = {
      method: 'sot',
      scores: s.score,
      learned: { weights: await gibbsWeights(s.score), pull: s.pull, push: s.push, anchorIsDownstream: false },
      warnings: [],
    } as unknown as Scores;
    const refs = await loadReferences({ harmful: HARMFUL } as PurifyOptions);
    const reference = harmfulReference(model);
    const all = model.harmful.points;
    const audit = await explainRecords({
      downstream: matrix,
      harmful: reference,
      ownHarm: {
        points: { data: all.data.subarray(reference.rows * all.cols), rows: all.rows - reference.rows, cols: all.cols },
        members: model.header.references.ownHarmRecords!,
      },
      refs: refs.harmful,
      scores,
      selection,
      cost: model.header.cost,
      tau: model.header.tau,
    });
    const dropped = c.records.map((r, i) => [r.id, i] as const).filter(([id]) => !keptSet.has(id));
    expect(dropped.map(([, i]) => selection.kept[i])).toEqual(dropped.map(() => 0)); // the same selection
    removed.forEach((r, j) => {
      const i = dropped[j]![1];
      expect(r[REMOVED_FIELDS.reason]).toBe(audit.reason(i));
      expect(r[REMOVED_FIELDS.reason]).toMatch(/advbench #\d+ \(cost |the data's own harm \(cost /);
      expect(r[REMOVED_FIELDS.score]).toBe(s.score[i]);
      expect(r[REMOVED_FIELDS.rank]).toBe(selection.rank[i]);
      expect(r[REMOVED_FIELDS.pull]).toBe(audit.contributions!.pull[i]);
      expect(r[REMOVED_FIELDS.push]).toBe(audit.contributions!.push[i]);
    });
    // the fit's own-harm points among them, named by the records of the file they average
    const ownCited = removed.filter((r) => /the data's own harm \(cost /.test(r[REMOVED_FIELDS.reason] as string));
    expect(ownCited.length).toBeGreaterThan(0);
    expect(model.header.references.ownHarmRecords!.flat().every((i) => i < 400)).toBe(true);
    // the report's table carries the same reasons and nearest references
    const t = report.records!;
    // on the map, a record is kept as the selection says
    expect(report.projection.downstream.map((p) => p[2])).toEqual(Array.from(selection.kept));
    for (const [, i] of dropped) {
      expect(t.reason[i]).toBe(audit.reason(i));
      expect(t.nearest[i]!.map((x) => x[1])).toEqual(audit.nearest(i)!.map((x) => x.index));
    }
    expect(t.reason.filter((x) => x !== '')).toHaveLength(100); // kept records have none (reasons: dropped)
  }, 240_000);

  it('a threshold: the workers find reasons only below it; with --reasons all, every record has one', async () => {
    const r = await purifySharded({
      ...common,
      keep: undefined,
      threshold: THRESHOLD,
      reasons: { for: 'all', neighbours: 2 },
      html: null,
      output: join(c.dir, 'threshold.jsonl'),
    });
    expect(r.outputs.html).toBeNull();
    expect(r.k).toBeGreaterThan(0);
    expect(r.k).toBeLessThan(400);
    expect(r.report.options).toMatchObject({ threshold: THRESHOLD });
    expect(r.report.options).not.toHaveProperty('keep');
    const removed = readJsonl(r.outputs.removed!);
    expect(removed).toHaveLength(400 - r.k);
    for (const x of removed) expect(x[REMOVED_FIELDS.score]).toBeLessThan(THRESHOLD);
    const t = r.report.records!;
    expect(t.reason.every((x) => x !== '')).toBe(true);
    expect(t.nearest.every((x) => x!.length === 2)).toBe(true);

    // A worker under a threshold finds the nearest references of exactly its records below it.
    const model = join(c.dir, 'threshold.sot-model');
    await fit({ ...common, model });
    const task = { input: data, model, shard: 1, from: 100, to: 250, out: join(c.dir, 'shard.bin') };
    await runShard({ ...task, reasons: { neighbours: 3, below: THRESHOLD } });
    const shard = await readShard(task.out);
    const below = Array.from(shard.score.keys()).filter((i) => shard.score[i]! < THRESHOLD);
    expect(below.length).toBeGreaterThan(0);
    expect(Array.from(shard.near.rows)).toEqual(below.map((i) => i + 100));
    expect(shard.near.k).toBe(3);
    expect(shard.near.index).toHaveLength(3 * below.length);
  }, 240_000);

  it('commits all outputs or none: a removed record that has sot_reason, an abort after the shards', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sot-shards-none-'));
    const taken = writeJsonl(
      join(dir, 'taken.jsonl'),
      c.records.map((r, i) => (i === 7 ? { ...r, sot_reason: 'mine' } : r)),
    );
    // a report into a missing folder: refused before the fit
    let fitted = false;
    const missing = await purifySharded({
      ...common,
      report: join(dir, 'missing', 'r.json'),
      onProgress: () => (fitted = true),
    }).catch((e: unknown) => e);
    expect(missing).toMatchObject({ code: 'ERR_IO' });
    expect((missing as Error).message).toMatch(/the folder .*missing does not exist/);
    expect(fitted).toBe(false);
    // keep one record: record 7 is removed, and the removed file would replace its field
    const err = await purifySharded({ ...common, input: taken, keep: { count: 1 } }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'ERR_INPUT', file: taken, field: 'sot_reason' });
    expect(readdirSync(dir)).toEqual(['taken.jsonl']);
    const ac = new AbortController();
    const late = await purifySharded({
      ...common,
      output: join(dir, 'late.jsonl'),
      signal: ac.signal,
      onShard: (e) => {
        if (e.state === 'done') ac.abort(); // the first shard of the scoring pass done: abort the rest
      },
    }).catch((e: unknown) => e);
    expect(late).toMatchObject({ code: 'ERR_ABORTED' });
    expect(readdirSync(dir)).toEqual(['taken.jsonl']);
  }, 240_000);

  it('the removed file in the input format (TSV, JSON, Parquet): the records and reasons of the JSON Lines run', async () => {
    const small = c.records.slice(0, 160);
    const dir = mkdtempSync(join(tmpdir(), 'sot-shards-formats-'));
    const cols = ['id', 'instruction', 'input', 'output', 'source'] as const;
    const quote = (v: unknown) => `"${String(v).replace(/"/g, '""')}"`;
    writeFileSync(
      join(dir, 'small.tsv'),
      `${[cols.join('\t'), ...small.map((r) => cols.map((k) => quote(r[k])).join('\t'))].join('\n')}\n`,
    );
    writeFileSync(join(dir, 'small.json'), JSON.stringify(small, null, 2));
    writeJsonl(join(dir, 'small.jsonl'), small);
    parquetWriteFile({
      filename: join(dir, 'small.parquet'),
      columnData: cols.map((k) => ({
        name: k,
        data: small.map((r) => r[k]),
        type: k === 'id' ? 'INT32' : 'STRING',
      })) as never,
      rowGroupSize: 50,
    });
    const removed = async (format: string) => {
      const r = await purifySharded({
        ...common,
        input: join(dir, `small.${format}`),
        sample: 100,
        shards: 2,
        keep: { count: 120 },
        html: null,
      });
      expect(r.outputs.removed).toBe(join(dir, `small.removed.${format}`));
      const got: Array<[string, unknown, unknown]> = [];
      for await (const { record } of await openDataset(r.outputs.removed!)) {
        const v = record.value;
        got.push([String(v.id), Number(v.sot_score), v.sot_reason]);
      }
      return got;
    };
    const want = await removed('jsonl');
    expect(want).toHaveLength(40);
    for (const format of ['tsv', 'json', 'parquet']) {
      // the same model (no refit): the same scores, whatever the shards' split (bytes or record index)
      expect(await removed(format), format).toEqual(want);
    }
  }, 240_000);

  it("keep 'auto': the fit's automatic K on its sample, scaled to all records (on all records: the whole run's K)", async () => {
    const { purify } = await import('../src/pipeline/purify.js');
    const harmful = ['advbench', 'harmbench']; // with both, the estimate sees this data's 10% (contamination.test.ts)
    const whole = await purify({
      input: data,
      harmful,
      anchor: [anchor],
      embeddingCache: false,
      keep: 'auto',
      output: join(c.dir, 'auto-whole.jsonl'),
      html: null,
    });
    const all = await purifySharded({
      ...common,
      harmful,
      sample: undefined,
      refit: undefined,
      keep: 'auto',
      html: null,
      output: join(c.dir, 'auto-all.jsonl'),
    });
    expect(all.sample).toBe(400);
    expect(whole.k).toBeLessThan(400); // the estimate is not clean: the automatic K drops records
    expect(all.k).toBe(whole.k);
    expect(all.report.contamination).toEqual(whole.contamination);
    expect(all.report.options).toMatchObject({ keep: 'auto' });
    const part = await purifySharded({
      ...common,
      harmful,
      sample: 300,
      keep: 'auto',
      html: null,
      output: join(c.dir, 'auto-part.jsonl'),
    });
    const f = await fit({ ...common, harmful, sample: 300, model: join(c.dir, 'auto.sot-model') });
    expect(f.sample).toBe(300);
    expect(f.autoKeep).not.toBeNull(); // a verdict, not an inconclusive estimate
    expect(f.autoKeep!).toBeLessThan(300);
    expect(f.contamination?.verdict).toBe('contaminated');
    // the fit's K scaled to all records, never more than the default 80% on contaminated data
    expect(part.k).toBe(Math.min(Math.round((f.autoKeep! * 400) / 300), 320));
    expect(readJsonl(part.outputs.removed!)).toHaveLength(400 - part.k);
    // sot score --keep auto: the same rule from the model file's header
    const model = join(c.dir, 'auto.sot-model');
    expect((await loadModel(model)).header).toMatchObject({ contamination: f.contamination, autoKeep: f.autoKeep });
    const scored = await score({ input: data, model, keep: 'auto', scores: join(c.dir, 'auto.scores.csv') });
    expect(scored.kept).toBe(part.k);
    expect(readJsonl(scored.outputs.dataset!)).toHaveLength(part.k);
    expect(scored.warnings).toEqual([]);
    const cli = spawnSync(
      process.execPath,
      [
        CLI,
        'score',
        data,
        '--model-file',
        model,
        '--keep',
        'auto',
        '--json',
        '-o',
        join(c.dir, 'auto-cli.jsonl'),
        '--scores',
        join(c.dir, 'auto-cli.csv'),
      ],
      { encoding: 'utf8' },
    );
    expect(cli.status, cli.stderr).toBe(0);
    expect(JSON.parse(cli.stdout)).toMatchObject({ ok: true, records: 400, kept: part.k, warnings: [] });
    // a model file written before the header carried the automatic K: refused, naming it, before any output
    const old = await loadModel(model);
    delete old.header.autoKeep;
    const oldFile = join(c.dir, 'old.sot-model');
    await saveModel(oldFile, old);
    const oldScores = join(c.dir, 'old.scores.csv');
    await expect(score({ input: data, model: oldFile, keep: 'auto', scores: oldScores })).rejects.toMatchObject({
      code: 'ERR_OPTION',
      message: expect.stringContaining(oldFile),
    });
    expect(existsSync(oldScores)).toBe(false);
    // a damaged one: a model file error naming the file
    old.header.autoKeep = -3;
    await saveModel(oldFile, old);
    await expect(score({ input: data, model: oldFile, keep: 'auto', scores: oldScores })).rejects.toMatchObject({
      code: 'ERR_INPUT',
      file: oldFile,
      problem: 'corrupt',
    });
    expect(existsSync(oldScores)).toBe(false);
  }, 240_000);

  it('sot purify --shards prints the report, removed and html paths; --json the same keys as the whole run', () => {
    const out = join(c.dir, 'cli.jsonl');
    const args = ['purify', data, '--harmful', 'advbench', '--anchor', anchor, '--shards', '2', '--sample', '200'];
    const text = spawnSync(process.execPath, [CLI, ...args, '-o', out, '--no-cache'], { encoding: 'utf8' });
    expect(text.status, text.stderr).toBe(0);
    expect(text.stdout).toMatch(/^kept 320 of 400 records \(fitted on 200, 2 shards\)\n/);
    for (const k of ['dataset', 'scores', 'report', 'removed', 'html']) expect(text.stdout).toMatch(`  ${k}:`);
    const json = spawnSync(
      process.execPath,
      [CLI, ...args, '-o', out, '--no-cache', '--json', '--no-html', '--reason-neighbours', '1'],
      { encoding: 'utf8' },
    );
    expect(json.status, json.stderr).toBe(0);
    const j = JSON.parse(json.stdout);
    expect(Object.keys(j).sort()).toEqual(
      [
        'ok',
        'n',
        'k',
        'skipped',
        'outputs',
        'contamination',
        'learner',
        'memory',
        'warnings',
        'timings',
        'sample',
        'attempts',
      ].sort(),
    );
    expect(j.outputs.html).toBeNull();
    const report = JSON.parse(readFileSync(j.outputs.report, 'utf8'));
    expect(report.records.nearest.find((x: unknown) => x !== null)).toHaveLength(1);

    // The page renders in headless Chromium.
    const html = JSON.parse(
      spawnSync(process.execPath, [CLI, ...args, '-o', out, '--no-cache', '--json'], { encoding: 'utf8' }).stdout,
    ).outputs.html as string;
    const chromium = ['chromium', 'chromium-browser', 'google-chrome'].find(
      (b) => spawnSync(b, ['--version']).status === 0,
    );
    expect(chromium, "Chromium is needed for this test (.ci/run installs Debian's chromium)").toBeDefined();
    const dom = spawnSync(chromium!, ['--headless', '--no-sandbox', '--disable-gpu', '--dump-dom', `file://${html}`], {
      encoding: 'utf8',
      timeout: 60_000,
    });
    expect(dom.status).toBe(0);
    expect(dom.stdout).toMatch(/fitted on 200 of 400 records/);
    expect((dom.stdout.match(/<canvas/g) ?? []).length).toBe(3);
    expect((dom.stdout.match(/<tr class="row /g) ?? []).length).toBe(50);
  }, 240_000);
});
