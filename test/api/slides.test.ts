import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { test } from 'node:test';
import sharp, { type OverlayOptions } from 'sharp';
import { build } from '../../src/api/app.ts';
import type { CaseResult } from '../../src/core/result.ts';
import { openFileSource } from '../../src/imaging/wsi/byte-source.ts';
import { openSlide } from '../../src/imaging/wsi/slide.ts';
import { startCaseWorker } from '../../src/worker/run-case.ts';
import type { Bundle, Media, Resource } from '@medplum/fhirtypes';
import { validateFhirResource } from '../support/fhir-validator.ts';
import { multipart } from '../support/images.ts';
import { platformTargets, TEST_API_KEY } from '../support/platform.ts';

const auth = { authorization: `Bearer ${TEST_API_KEY}` };
const slide = await readFile('samples/slide-demo.tif');
const note = await readFile('samples/note-intermediate-risk.txt', 'utf8');
const truth = JSON.parse(await readFile('samples/slide-demo.truth.json', 'utf8')) as { tile: number; cols: number; rows: number; cells: string[][] | string[] };
const silent = { info() {}, warn() {}, error() {} };

for (const target of platformTargets()) {
  test(`[${target.name}] a slide through POST /v1/cases: progress, slide score, heatmap; Deep Zoom of the slide and the heatmap`, { timeout: 120_000 }, async (t) => {
    const { platform } = await target.open(t);
    const app = await build(platform);
    t.after(() => app.close());
    const worker = await startCaseWorker(platform, silent);
    t.after(() => worker.stop());

    const { payload, headers } = await multipart({ image: { bytes: slide, filename: 'slide.tif' }, note, pipeline: 'wsi-prognosis' });
    const accepted = await app.inject({ method: 'POST', url: '/v1/cases', payload, headers: { ...headers, ...auth } });
    assert.equal(accepted.statusCode, 202, accepted.body);
    const { id } = accepted.json() as { id: string };

    // Before the tiles are scored, the heatmap is not there yet.
    let result = (await app.inject({ method: 'GET', url: `/v1/cases/${id}`, headers: auth })).json() as CaseResult;
    const seen = new Set<string>();
    for (let i = 0; i < 1200 && result.status !== 'succeeded' && result.status !== 'failed'; i++) {
      const p = result.progress[0];
      if (p) seen.add(`${p.tilesDone}/${p.tilesTotal}`);
      if (i === 0) {
        const early = await app.inject({ method: 'GET', url: `/v1/cases/${id}/heatmap.dzi`, headers: auth });
        assert.ok([409, 200].includes(early.statusCode), early.body);
      }
      await new Promise((r) => setTimeout(r, 50));
      result = (await app.inject({ method: 'GET', url: `/v1/cases/${id}`, headers: auth })).json() as CaseResult;
    }
    assert.equal(result.status, 'succeeded', JSON.stringify(result.error));
    assert.equal(result.input?.mediaType, 'slide');
    const progress = result.progress[0];
    assert.ok(progress && progress.tilesDone === progress.tilesTotal && progress.tilesTotal > 100);
    assert.ok(seen.size >= 1, 'progress was visible while the tiles were scored');

    // The sample's tumour region makes the pooled slide score high, and the recommender answers.
    const tumour = result.findings.find((f) => f.code === 'tumour-pattern');
    assert.ok(tumour && tumour.probability > 0.9, JSON.stringify(result.findings));
    assert.ok(result.recommendation);

    // The FHIR bundle carries the slide score, the recommendation and the heatmap as Media, and is valid.
    const fhir = await app.inject({ method: 'GET', url: `/v1/cases/${id}/fhir`, headers: auth });
    assert.equal(fhir.statusCode, 200);
    const bundle = fhir.json() as Bundle & { entry: Array<{ resource: Resource }> };
    const resources = bundle.entry.flatMap((e) => (e.resource ? [e.resource] : []));
    validateFhirResource(bundle);
    for (const e of bundle.entry) validateFhirResource(e.resource, { bundle });
    const media = resources.filter((r): r is Media => r.resourceType === 'Media');
    assert.equal(media.length, 1);
    assert.match(JSON.stringify(media[0]), /heatmap-tiles\.png/);
    assert.ok(resources.some((r) => r.resourceType === 'Observation' && JSON.stringify(r).includes('tumour-pattern')));

    // slide.dzi describes the slide's level 0; the top tile is the whole slide, shrunk.
    const dzi = await app.inject({ method: 'GET', url: `/v1/cases/${id}/slide.dzi`, headers: auth });
    assert.equal(dzi.statusCode, 200);
    assert.match(dzi.headers['content-type'] as string, /xml/);
    assert.match(dzi.body, /TileSize="254" Overlap="1" Format="jpeg"/);
    assert.match(dzi.body, /Width="4608" Height="3456"/);
    const levels = Math.ceil(Math.log2(4608)) + 1;
    const top = await app.inject({ method: 'GET', url: `/v1/cases/${id}/slide_files/${levels - 1}/0_0.jpeg`, headers: auth });
    assert.equal(top.statusCode, 200);
    assert.equal(top.headers['content-type'], 'image/jpeg');
    // The corner tile overlaps its neighbours on two sides only: 254 + 1.
    assert.deepEqual(await sharp(top.rawPayload).metadata().then((m) => [m.format, m.width, m.height]), ['jpeg', 255, 255]);
    // A level-0-resolution tile agrees with the slide's own pixels (up to JPEG re-encoding).
    const source = await openFileSource('samples/slide-demo.tif');
    t.after(() => source.close());
    const region = await (await openSlide(source)).readRegion(254 * 3 - 1, 254 * 2 - 1, 0, 256, 256);
    const tile = await sharp((await app.inject({ method: 'GET', url: `/v1/cases/${id}/slide_files/${levels - 1}/3_2.jpeg`, headers: auth })).rawPayload).raw().toBuffer();
    let diff = 0;
    for (let i = 0; i < tile.length; i++) diff += Math.abs((tile[i] as number) - (region.data[i] as number));
    assert.ok(diff / tile.length < 4, `mean difference ${diff / tile.length}`);

    // The heatmap overlay has the slide's size; glass cells are transparent, tumour cells opaque.
    const hdzi = await app.inject({ method: 'GET', url: `/v1/cases/${id}/heatmap.dzi`, headers: auth });
    assert.equal(hdzi.statusCode, 200);
    assert.match(hdzi.body, /Format="png"/);
    assert.match(hdzi.body, /Width="4608" Height="3456"/);
    // Deep Zoom level levels-4 is 1/8 of level 0: 576×432, in 3×2 tiles; read it whole.
    const eighth = levels - 4;
    const overlay = sharp({ create: { width: 576, height: 432, channels: 4, background: { r: 0, g: 0, b: 0, alpha: 0 } } });
    const parts: OverlayOptions[] = [];
    for (let row = 0; row < 2; row++) {
      for (let col = 0; col < 3; col++) {
        const res = await app.inject({ method: 'GET', url: `/v1/cases/${id}/heatmap_files/${eighth}/${col}_${row}.png`, headers: auth });
        assert.equal(res.statusCode, 200, res.body);
        assert.equal(res.headers['content-type'], 'image/png');
        parts.push({ input: await sharp(res.rawPayload).extract({ left: col === 0 ? 0 : 1, top: row === 0 ? 0 : 1, width: Math.min(254, 576 - col * 254), height: Math.min(254, 432 - row * 254) }).toBuffer(), left: col * 254, top: row * 254 });
      }
    }
    const { data } = await overlay.composite(parts).raw().toBuffer({ resolveWithObject: true });
    // Each 192-px truth cell is 24 px here; sample its centre.
    const cells = truth.cells.map((r) => (typeof r === 'string' ? r.split('') : r));
    let glassTransparent = 0, glass = 0, tumourOpaque = 0, tumours = 0;
    cells.forEach((r, row) => r.forEach((cell, col) => {
      const alpha = data[((row * 24 + 12) * 576 + col * 24 + 12) * 4 + 3] as number;
      if (cell === 'g') { glass++; if (alpha === 0) glassTransparent++; }
      if (cell === 't') { tumours++; if (alpha > 200) tumourOpaque++; }
    }));
    assert.ok(glassTransparent / glass > 0.9, `${glassTransparent}/${glass} glass cells transparent`);
    assert.equal(tumourOpaque, tumours, 'every tumour cell is scored and drawn');

    // Errors: a tile off the grid, a malformed name, a case that is not a slide.
    assert.equal((await app.inject({ method: 'GET', url: `/v1/cases/${id}/slide_files/${levels}/0_0.jpeg`, headers: auth })).statusCode, 400);
    assert.equal((await app.inject({ method: 'GET', url: `/v1/cases/${id}/slide_files/3/0_0.png`, headers: auth })).statusCode, 400);
    assert.equal((await app.inject({ method: 'GET', url: `/v1/cases/${id}/slide_files/0/0_0.jpeg` })).statusCode, 401);
    const image = await multipart({ image: { bytes: await readFile('samples/tissue-tumour-like.png'), filename: 'x.png' } });
    const png = (await app.inject({ method: 'POST', url: '/v1/predict', payload: image.payload, headers: { ...image.headers, ...auth } })).json() as CaseResult;
    const notSlide = await app.inject({ method: 'GET', url: `/v1/cases/${png.id}/slide.dzi`, headers: auth });
    assert.equal(notSlide.statusCode, 404);
    assert.equal((notSlide.json() as { error: { code: string } }).error.code, 'OBJECT_NOT_FOUND');
    assert.equal((await app.inject({ method: 'GET', url: '/v1/cases/00000000-0000-4000-8000-000000000000/slide.dzi', headers: auth })).statusCode, 404);
  });
}

for (const target of platformTargets()) {
  test(`[${target.name}] slides are refused on /v1/predict (SLIDE_REQUIRES_ASYNC) and over the slide size limit (413), leaving nothing stored`, async (t) => {
    const { platform, dataDir } = await target.open(t, { DXFLOW_LIMITS_MAX_SLIDE_BYTES: String(1024 * 1024) });
    const app = await build(platform);
    t.after(() => app.close());
    const sync = await multipart({ image: { bytes: slide, filename: 'slide.tif' }, pipeline: 'wsi-prognosis' });
    const predicted = await app.inject({ method: 'POST', url: '/v1/predict', payload: sync.payload, headers: { ...sync.headers, ...auth } });
    assert.equal(predicted.statusCode, 422, predicted.body);
    assert.equal((predicted.json() as { error: { code: string } }).error.code, 'SLIDE_REQUIRES_ASYNC');
    const big = await multipart({ image: { bytes: slide, filename: 'slide.tif' }, pipeline: 'wsi-prognosis' });
    const refused = await app.inject({ method: 'POST', url: '/v1/cases', payload: big.payload, headers: { ...big.headers, ...auth } });
    assert.equal(refused.statusCode, 413, refused.body);
    assert.equal((refused.json() as { error: { code: string } }).error.code, 'FILE_TOO_LARGE');
    const [count] = await platform.db.query<{ n: number }>('SELECT count(*)::int AS n FROM dxflow_case');
    assert.equal(count?.n, 0);
    const { readdir } = await import('node:fs/promises');
    const files = await readdir(`${dataDir}/objects`, { recursive: true, withFileTypes: true }).catch(() => []);
    assert.deepEqual(files.filter((f) => f.isFile()).map((f) => f.name), [], 'no object left behind');
  });
}
