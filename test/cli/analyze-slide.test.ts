import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { synthesiseSlide } from '../../src/imaging/wsi/synth.ts';
import { dxflow } from './process.ts';

test('dxflow analyze runs a whole slide through wsi-prognosis, reporting tile progress on stderr', { timeout: 120_000 }, async (t) => {
  const dir = await mkdtemp(path.join(tmpdir(), 'dxflow-analyze-slide-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const slide = path.join(dir, 'slide.tif');
  await synthesiseSlide({ width: 5000, height: 4000, out: slide, mpp: 0.5, bigtiff: true, seed: 11 });
  const run = await dxflow(['analyze', slide, '--pipeline', 'wsi-prognosis', '--note', 'samples/note-intermediate-risk.txt'], { DXFLOW_DATA_DIR: path.join(dir, 'data') });
  assert.equal(run.code, 0, run.stderr);
  const result = JSON.parse(run.stdout) as { status: string; input: { mediaType: string }; progress: Array<{ tilesDone: number; tilesTotal: number }>; recommendation: unknown; explanations: { heatmaps: Array<{ method: string }> } };
  assert.equal(result.status, 'succeeded');
  assert.equal(result.input.mediaType, 'slide');
  const p = result.progress[0];
  assert.ok(p && p.tilesTotal > 50 && p.tilesDone === p.tilesTotal);
  assert.match(run.stderr, new RegExp(`tiles ${p.tilesTotal}/${p.tilesTotal} \\(100 %\\)`));
  assert.ok(result.recommendation);
  assert.equal(result.explanations.heatmaps[0]?.method, 'tile-scores');

  // A text file is refused before anything runs, with the slide pipeline named.
  const bad = await dxflow(['analyze', 'samples/note-intermediate-risk.txt', '--pipeline', 'wsi-prognosis'], { DXFLOW_DATA_DIR: path.join(dir, 'data') });
  assert.notEqual(bad.code, 0);
  assert.match(bad.stderr, /UNSUPPORTED_MEDIA_TYPE/);
});
