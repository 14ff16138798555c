import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { test } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { build } from '../../src/api/app.ts';
import type { Platform } from '../../src/platform.ts';
import { validateFhirResource } from '../support/fhir-validator.ts';
import { multipart, noisyJpeg, pngBomb, truncatedJpeg } from '../support/images.ts';
import { platformTargets, TEST_API_KEY } from '../support/platform.ts';
import { startCaseWorker } from '../../src/worker/run-case.ts';

const auth = { authorization: `Bearer ${TEST_API_KEY}` };
const tumour = await readFile('samples/tissue-tumour-like.png');
const benignJpeg = await readFile('samples/tissue-benign-like.png');

async function post(app: FastifyInstance, url: string, bytes: Buffer, filename: string, extra: Record<string, string> = {}) {
  const { payload, headers } = await multipart({ image: { bytes, filename }, ...extra });
  return app.inject({ method: 'POST', url, payload, headers: { ...headers, ...auth } });
}

async function countCases(platform: Platform): Promise<number> {
  const rows = await platform.db.query<{ n: number }>('SELECT count(*)::int AS n FROM dxflow_case');
  return rows[0]?.n ?? -1;
}

for (const target of platformTargets()) {
  test(`[${target.name}] POST /v1/predict analyses the sample and returns a finding`, async (t) => {
    const { platform } = await target.open(t);
    const app = await build(platform);
    t.after(() => app.close());
    const res = await post(app, '/v1/predict', tumour, 'tissue.png');
    assert.equal(res.statusCode, 200, res.body);
    const body = res.json();
    assert.equal(body.status, 'succeeded');
    assert.equal(body.findings[0].code, 'tumour-pattern');
    assert.ok(body.findings[0].probability > 0.9);
    assert.equal(body.findings[0].model.name, 'demo-tissue-classifier');
    assert.equal(body.input.mediaType, 'png');
    assert.equal(body.input.width, 512);
    assert.match(body.input.sha256, /^[0-9a-f]{64}$/);
    assert.deepEqual(body.timings.map((s: { stage: string }) => s.stage), ['validate', 'classify']);
    assert.equal(body.models.length, 1);

    const benign = await post(app, '/v1/predict', benignJpeg, 'b.png');
    assert.equal(benign.json().findings[0].code, 'benign-pattern');

    const fhir = await app.inject({ method: 'GET', url: `/v1/cases/${body.id}/fhir`, headers: auth });
    assert.equal(fhir.statusCode, 200);
    assert.match(String(fhir.headers['content-type']), /application\/fhir\+json/);
    const bundle = fhir.json();
    assert.equal(bundle.resourceType, 'Bundle');
    validateFhirResource(bundle);
    for (const e of bundle.entry) validateFhirResource(e.resource);
    const report = bundle.entry.find((e: { resource: { resourceType: string } }) => e.resource.resourceType === 'DiagnosticReport').resource;
    assert.equal(report.status, 'preliminary');
  });

  test(`[${target.name}] metadata is stored but never returned`, async (t) => {
    const { platform } = await target.open(t);
    const app = await build(platform);
    t.after(() => app.close());
    const res = await post(app, '/v1/predict', tumour, 'Doe_Jane_1970-01-01.png', { metadata: JSON.stringify({ patientName: 'Jane Q. Doe', mrn: 'MRN-00042' }) });
    assert.equal(res.statusCode, 200, res.body);
    assert.ok(!res.body.includes('Jane') && !res.body.includes('MRN-00042') && !res.body.includes('Doe_'), 'PHI leaked into the response');
    const fhir = await app.inject({ method: 'GET', url: `/v1/cases/${res.json().id}/fhir`, headers: auth });
    assert.ok(!fhir.body.includes('Jane') && !fhir.body.includes('MRN-00042'));
    const stored = await platform.db.query<{ metadata: { mrn: string } }>('SELECT metadata FROM dxflow_case WHERE id = $1', [res.json().id]);
    assert.equal(stored[0]?.metadata.mrn, 'MRN-00042');
  });

  test(`[${target.name}] bad input gets its own code, nothing is stored, the server keeps serving`, async (t) => {
    const { platform } = await target.open(t, { DXFLOW_LIMITS_MAX_BYTES: String(2 * 1024 * 1024) });
    const app = await build(platform);
    t.after(() => app.close());
    const good = await post(app, '/v1/predict', tumour, 'ok.png');
    assert.equal(good.statusCode, 200);
    const before = await countCases(platform);

    const bad: Array<[string, Buffer, string, number, string]> = [
      ['a .txt renamed .png', Buffer.from('patient notes, definitely not an image\n'), 'notes.png', 415, 'UNSUPPORTED_MEDIA_TYPE'],
      ['an empty file', Buffer.alloc(0), 'empty.png', 422, 'EMPTY_FILE'],
      ['a truncated JPEG', await truncatedJpeg(), 'cut.jpg', 422, 'TRUNCATED_IMAGE'],
      ['a 30000×30000 PNG of a few KB', pngBomb(), 'bomb.png', 422, 'IMAGE_TOO_LARGE'],
      ['an upload over the byte limit', Buffer.concat([await noisyJpeg(), Buffer.alloc(3 * 1024 * 1024)]), 'big.jpg', 413, 'FILE_TOO_LARGE'],
    ];
    for (const [what, bytes, name, status, code] of bad) {
      for (const url of ['/v1/predict', '/v1/cases']) {
        const res = await post(app, url, bytes, name);
        assert.equal(res.statusCode, status, `${what} → ${url}: ${res.body}`);
        const err = res.json().error;
        assert.equal(err.code, code, what);
        assert.ok(err.message.length > 0 && err.hint.length > 0, `${what}: message and hint`);
      }
    }
    assert.ok(pngBomb().length < 16 * 1024, 'the bomb really is a few KB');
    assert.equal(await countCases(platform), before, 'refused input must leave no case behind');

    const again = await app.inject({ method: 'GET', url: `/v1/cases/${good.json().id}`, headers: auth });
    assert.equal(again.statusCode, 200);
    assert.equal(again.json().status, 'succeeded');
    assert.equal((await post(app, '/v1/predict', tumour, 'ok.png')).statusCode, 200, 'still serving');
  });

  test(`[${target.name}] request errors: auth, missing file, bad metadata, unknown pipeline and case`, async (t) => {
    const { platform } = await target.open(t);
    const app = await build(platform);
    t.after(() => app.close());
    assert.equal((await app.inject({ method: 'GET', url: '/healthz' })).statusCode, 200);
    const ready = await app.inject({ method: 'GET', url: '/readyz' });
    assert.equal(ready.statusCode, 200);
    assert.equal(ready.json().database, platform.db.kind);

    const { payload, headers } = await multipart({ image: { bytes: tumour, filename: 'x.png' } });
    const noKey = await app.inject({ method: 'POST', url: '/v1/predict', payload, headers });
    assert.equal(noKey.statusCode, 401);
    assert.equal(noKey.json().error.code, 'UNAUTHENTICATED');
    const wrongKey = await app.inject({ method: 'GET', url: '/v1/cases/00000000-0000-4000-8000-000000000000', headers: { 'x-api-key': 'wrong-key-wrong-key' } });
    assert.equal(wrongKey.statusCode, 401);

    const noFile = await multipart({ metadata: '{}' });
    const r1 = await app.inject({ method: 'POST', url: '/v1/predict', payload: noFile.payload, headers: { ...noFile.headers, ...auth } });
    assert.equal(r1.json().error.code, 'MISSING_FILE');
    const notMultipart = await app.inject({ method: 'POST', url: '/v1/predict', payload: { a: 1 }, headers: auth });
    assert.equal(notMultipart.statusCode, 400);
    assert.equal(notMultipart.json().error.code, 'MISSING_FILE');
    const badMeta = await post(app, '/v1/predict', tumour, 'x.png', { metadata: '[1,2' });
    assert.equal(badMeta.json().error.code, 'INVALID_METADATA');
    const badPipeline = await post(app, '/v1/predict', tumour, 'x.png', { pipeline: 'no-such-pipeline' });
    assert.equal(badPipeline.statusCode, 400);
    assert.equal(badPipeline.json().error.code, 'PIPELINE_NOT_FOUND');

    for (const id of ['00000000-0000-4000-8000-000000000000', 'not-a-uuid', "1' OR '1'='1"]) {
      const res = await app.inject({ method: 'GET', url: `/v1/cases/${encodeURIComponent(id)}`, headers: auth });
      assert.equal(res.statusCode, 404);
      assert.equal(res.json().error.code, 'CASE_NOT_FOUND');
    }
    const nowhere = await app.inject({ method: 'GET', url: '/v1/nowhere', headers: auth });
    assert.equal(nowhere.json().error.code, 'ROUTE_NOT_FOUND');
  });

  test(`[${target.name}] POST /v1/cases is processed by the queue and completes once`, async (t) => {
    const { platform } = await target.open(t);
    const app = await build(platform);
    const log = { info() {}, warn() {}, error() {} };
    const worker = await startCaseWorker(platform, log);
    t.after(async () => { await worker.stop(); await app.close(); });
    const res = await post(app, '/v1/cases', tumour, 'x.png');
    assert.equal(res.statusCode, 202, res.body);
    const { id, links } = res.json();
    assert.equal(res.headers['location'], links.self);

    const early = await app.inject({ method: 'GET', url: links.fhir, headers: auth });
    if (early.statusCode !== 200) assert.equal(early.json().error.code, 'CASE_NOT_FINISHED');

    let body: { status: string; findings: Array<{ code: string }> } = { status: 'queued', findings: [] };
    for (let i = 0; i < 200 && (body.status === 'queued' || body.status === 'running'); i++) {
      await new Promise((r) => setTimeout(r, 100));
      body = (await app.inject({ method: 'GET', url: `/v1/cases/${id}`, headers: auth })).json();
    }
    assert.equal(body.status, 'succeeded');
    assert.equal(body.findings[0]?.code, 'tumour-pattern');
    const counts = await platform.db.query<{ n: number }>('SELECT count(*)::int AS n FROM dxflow_finding WHERE case_id = $1', [id]);
    assert.equal(counts[0]?.n, 2);
  });
}
