import assert from 'node:assert/strict';
import { cp, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { attentionPool } from '../../src/core/pooling.ts';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import sharp from 'sharp';
import { synthesiseSlide } from '../../src/imaging/wsi/synth.ts';
import { randomUUID } from 'node:crypto';
import { inputKey, RUN_CASE_QUEUE } from '../../src/pipeline/intake.ts';
import { TILE_BATCH_QUEUE } from '../../src/pipeline/tiles.ts';
import { startCaseWorker } from '../../src/worker/run-case.ts';
import type { Platform } from '../../src/platform.ts';
import type { CaseResult } from '../../src/core/result.ts';
import { platformTargets } from '../support/platform.ts';

const NOTE = 'Age: 67\nPSA: 8.4 ng/mL\nGrade group: 2\nT stage: T2\nPositive cores: 30%\nNo prior treatment.';
const silent = { info() {}, warn() {}, error() {} };

async function slideBytes(t: { after(fn: () => Promise<void>): void }, options: { width: number; height: number; seed?: number }): Promise<Buffer> {
  const dir = await mkdtemp(path.join(tmpdir(), 'dxflow-fanout-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const out = path.join(dir, 'slide.tif');
  await synthesiseSlide({ ...options, out, mpp: 0.5, tileSize: 256, bigtiff: true });
  return readFile(out);
}

async function waitFor(platform: Platform, caseId: string, done: (c: CaseResult) => boolean, timeoutMs = 60_000): Promise<CaseResult> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const { readCase } = await import('../../src/pipeline/case-store.ts');
    const c = await readCase(platform.db, caseId);
    if (c && done(c)) return c;
    if (Date.now() > until) throw new Error(`case ${caseId} did not get there in ${timeoutMs} ms: ${JSON.stringify({ status: c?.status, progress: c?.progress, error: c?.error })}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

for (const target of platformTargets()) {
  test(`${target.name}: a slide fans out to tile batches, pools into a slide score, heatmap and recommendation`, { timeout: 120_000 }, async (t) => {
    const { platform } = await target.open(t);
    const bytes = await slideBytes(t, { width: 4000, height: 3000 });
    const { caseId, input } = await platform.intake.accept({ bytes, pipeline: 'wsi-prognosis', note: Buffer.from(NOTE) }, { enqueue: true });
    assert.equal(input.mediaType, 'slide');
    assert.deepEqual([input.width, input.height], [4000, 3000]);
    const worker = await startCaseWorker(platform, silent);
    t.after(() => worker.stop());
    const result = await waitFor(platform, caseId, (c) => c.status === 'succeeded' || c.status === 'failed');
    assert.equal(result.status, 'succeeded', JSON.stringify(result.error));

    // Progress: every planned tile scored, in ceil(tiles / 64) batches.
    const [progress] = result.progress;
    assert.ok(progress);
    assert.equal(progress.stage, 'tiles');
    assert.ok(progress.tilesTotal > 20, `only ${progress.tilesTotal} tissue tiles`);
    assert.equal(progress.tilesDone, progress.tilesTotal);
    assert.equal(progress.batchesTotal, Math.ceil(progress.tilesTotal / 64));

    // One score per tile, no duplicates.
    const [counts] = await platform.db.query<{ n: number; distinct_tiles: number }>(
      `SELECT count(*)::int AS n, count(DISTINCT tile)::int AS distinct_tiles FROM dxflow_tile_score WHERE case_id = $1`, [caseId]);
    assert.deepEqual(counts, { n: progress.tilesTotal, distinct_tiles: progress.tilesTotal });

    // The slide score is the manifest's pooling (top-8 mean) of the stored tile scores.
    const scores = (await platform.db.query<{ score: number }>(`SELECT score FROM dxflow_tile_score WHERE case_id = $1 ORDER BY score DESC`, [caseId])).map((r) => r.score);
    const top8 = scores.slice(0, 8).reduce((a, b) => a + b, 0) / Math.min(8, scores.length);
    const finding = result.findings.find((f) => f.code === 'tumour-pattern');
    assert.ok(finding);
    assert.ok(Math.abs(finding.probability - top8) < 1e-6, `${finding.probability} vs ${top8}`);
    assert.equal(finding.model?.name, 'demo-tissue-classifier');

    // Heatmap: a PNG with one cell per grid tile, placed over the tile grid.
    const [heatmap] = result.explanations.heatmaps;
    assert.ok(heatmap);
    assert.equal(heatmap.method, 'tile-scores');
    const tileSide = 192; // 96 px at 1.0 µm/px on a 0.5 µm/px slide
    assert.deepEqual(heatmap.slideRegion, { width: Math.floor(4000 / tileSide) * tileSide, height: Math.floor(3000 / tileSide) * tileSide });
    const meta = await sharp(await platform.objects.get(heatmap.objectKey)).metadata();
    assert.deepEqual([meta.format, meta.width, meta.height, meta.channels], ['png', heatmap.width, heatmap.height, 4]);

    // The recommender read the slide score and the note.
    assert.ok(result.recommendation);
    assert.equal(result.explanations.shap[0]?.contributions.find((c) => c.feature === 'image_tumour_probability')?.value, finding.probability);
    assert.ok(result.llm && result.billing);
  });

  test(`${target.name}: batches run twice or out of order count once; the last one enqueues the aggregation once`, { timeout: 120_000 }, async (t) => {
    const { platform } = await target.open(t);
    const bytes = await slideBytes(t, { width: 4000, height: 3000, seed: 3 });
    // Accepted without a run-case job, so that only this test runs the case.
    const caseId = randomUUID();
    const stored = await platform.objects.put(inputKey(caseId), bytes);
    await platform.intake.acceptStored({ caseId, stored, pipeline: 'wsi-prognosis' }, { enqueue: false });
    // The first run plans and waits; no worker runs, so the batches stay queued for this test to run.
    const first = await platform.runner.run(caseId);
    assert.equal(first.kind, 'waiting');
    const plan = await platform.fanOut?.plan(caseId, 'tiles');
    assert.ok(plan && plan.batchesTotal >= 2, `need at least 2 batches, got ${plan?.batchesTotal}`);
    const fanOut = platform.fanOut;
    assert.ok(fanOut);
    const batches = Array.from({ length: plan.batchesTotal }, (_, b) => b).reverse();
    // Every batch twice, the copies concurrently.
    for (const batch of batches) {
      const outcomes = await Promise.all([fanOut.runBatch({ caseId, stage: 'tiles', batch }), fanOut.runBatch({ caseId, stage: 'tiles', batch })]);
      assert.ok(outcomes.includes('scored') || outcomes.includes('skipped'));
    }
    const after = await fanOut.plan(caseId, 'tiles');
    assert.equal(after?.batchesDone, plan.batchesTotal);
    assert.equal(after?.tilesDone, plan.tilesTotal);
    const [n] = await platform.db.query<{ n: number }>(`SELECT count(*)::int AS n FROM dxflow_tile_score WHERE case_id = $1`, [caseId]);
    assert.equal(n?.n, plan.tilesTotal);
    // Exactly one run-case job came from the batches (intake did not enqueue: enqueue false).
    const boss = (platform.queue as unknown as { boss: { findJobs(name: string, o: object): Promise<unknown[]> } }).boss;
    const jobs = await boss.findJobs(RUN_CASE_QUEUE, { data: { caseId } });
    assert.equal(jobs.length, 1);
    // The batch jobs the plan sent are still queued (no worker ran): one per batch, no duplicates.
    const queued = await boss.findJobs(TILE_BATCH_QUEUE, { queued: true });
    assert.equal(queued.length, plan.batchesTotal);
    const done = await platform.runner.run(caseId);
    assert.equal(done.kind, 'finished');
    assert.equal(done.kind === 'finished' && done.result.status, 'succeeded');
  });

  test(`${target.name}: attention pooling weighs tile scores by the model's attention output`, { timeout: 120_000 }, async (t) => {
    const dir = await mkdtemp(path.join(tmpdir(), 'dxflow-attention-'));
    t.after(() => rm(dir, { recursive: true, force: true }));
    await cp('test/fixtures/attention-tile-model', path.join(dir, 'models', 'attention-tile-model'), { recursive: true });
    await mkdir(path.join(dir, 'pipelines'));
    await writeFile(path.join(dir, 'pipelines', 'attention-tiles.yaml'), [
      'name: attention-tiles', 'version: 1', 'accepts: [slide]', 'stages:',
      '  - id: tiles', '    uses: slide.tiles', '    with: { model: attention-tile-model, batchSize: 16 }', '',
    ].join('\n'));
    const { platform } = await target.open(t, { DXFLOW_MODELS_DIR: path.join(dir, 'models'), DXFLOW_PIPELINES_DIR: path.join(dir, 'pipelines') });
    const { caseId } = await platform.intake.accept({ bytes: await slideBytes(t, { width: 3000, height: 2400, seed: 5 }), pipeline: 'attention-tiles' }, { enqueue: true });
    const worker = await startCaseWorker(platform, silent);
    t.after(() => worker.stop());
    const result = await waitFor(platform, caseId, (c) => c.status === 'succeeded' || c.status === 'failed');
    assert.equal(result.status, 'succeeded', JSON.stringify(result.error));
    const rows = await platform.db.query<{ score: number; attention: number | null }>(`SELECT score, attention FROM dxflow_tile_score WHERE case_id = $1 ORDER BY tile`, [caseId]);
    assert.ok(rows.length > 16 && rows.every((r) => typeof r.attention === 'number'));
    const expected = attentionPool(rows.map((r) => r.score), rows.map((r) => r.attention as number));
    const mean = rows.reduce((a, r) => a + r.score, 0) / rows.length;
    const finding = result.findings.find((f) => f.code === 'tumour-pattern');
    assert.ok(finding && Math.abs(finding.probability - expected) < 1e-6, `${finding?.probability} vs ${expected}`);
    assert.notEqual(Math.round(expected * 1e6), Math.round(mean * 1e6), 'attention pooling differs from the plain mean here');
  });

  test(`${target.name}: a blank slide fails with NO_TISSUE, and a slide to /v1/predict's path is refused`, { timeout: 60_000 }, async (t) => {
    const { platform } = await target.open(t);
    const dir = await mkdtemp(path.join(tmpdir(), 'dxflow-blank-'));
    t.after(() => rm(dir, { recursive: true, force: true }));
    const out = path.join(dir, 'blank.tif');
    await sharp({ create: { width: 2048, height: 2048, channels: 3, background: { r: 244, g: 242, b: 243 } } })
      .tiff({ tile: true, pyramid: true, compression: 'jpeg', tileWidth: 256, tileHeight: 256, xres: 2000, yres: 2000, resolutionUnit: 'cm' }).toFile(out);
    const blank = await readFile(out);
    await assert.rejects(platform.intake.accept({ bytes: blank, pipeline: 'wsi-prognosis' }, { enqueue: false }), { code: 'SLIDE_REQUIRES_ASYNC' });
    // A slide cut short is refused at intake with its code, and nothing of it is kept.
    const sample = await readFile('samples/slide-demo.tif');
    await assert.rejects(platform.intake.accept({ bytes: sample.subarray(0, 200_000), pipeline: 'wsi-prognosis' }, { enqueue: true }), { code: 'TRUNCATED_IMAGE' });
    const [none] = await platform.db.query<{ n: number }>('SELECT count(*)::int AS n FROM dxflow_case');
    assert.equal(none?.n, 0);
    const { caseId } = await platform.intake.accept({ bytes: blank, pipeline: 'wsi-prognosis' }, { enqueue: true });
    const outcome = await platform.runner.run(caseId);
    assert.equal(outcome.kind, 'finished');
    assert.equal(outcome.kind === 'finished' && outcome.result.error?.code, 'NO_TISSUE');
    assert.equal(outcome.kind === 'finished' && outcome.result.error?.stage, 'tiles');
  });
}
