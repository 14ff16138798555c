import assert from 'node:assert/strict';
import { cp, mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import sharp from 'sharp';
import { build } from '../../src/api/app.ts';
import type { CaseResult } from '../../src/core/result.ts';
import { startCaseWorker } from '../../src/worker/run-case.ts';
import { platformTargets, TEST_API_KEY } from '../support/platform.ts';

const auth = { authorization: `Bearer ${TEST_API_KEY}` };
const silent = { info() {}, warn() {}, error() {} };

function s3Event(key: string, version: string, distribution: string) {
  return {
    Records: [{
      eventName: 'ObjectCreated:Put',
      s3: { bucket: { name: 'photos' }, object: { key, eTag: `etag-${version}`, versionId: version, userMetadata: { 'X-Amz-Meta-Distribution': distribution } } },
    }],
  };
}

for (const target of platformTargets()) {
  test(`[${target.name}] photo-triage from S3 events: localised → detection, crop stored, crop classified; widespread → whole photo; a replay adds nothing`, { timeout: 120_000 }, async (t) => {
    const inbox = await mkdtemp(path.join(tmpdir(), 'dxflow-photo-inbox-'));
    t.after(() => rm(inbox, { recursive: true, force: true }));
    await mkdir(path.join(inbox, 'photos'));
    await cp('samples/photo-lesion-irregular.jpg', path.join(inbox, 'photos', 'lesion.jpg'));
    await cp('samples/photo-spots-widespread.jpg', path.join(inbox, 'photos', 'spots.jpg'));
    const { platform } = await target.open(t, { DXFLOW_EVENTS_INBOX_DIR: inbox });
    const app = await build(platform);
    t.after(() => app.close());
    const worker = await startCaseWorker(platform, silent);
    t.after(() => worker.stop());
    const post = async (body: object) => ((await app.inject({ method: 'POST', url: '/v1/events/s3', payload: body, headers: auth })).json() as { cases: Array<{ caseId: string; duplicate: boolean }> }).cases[0];
    const get = async (id: string) => (await app.inject({ method: 'GET', url: `/v1/cases/${id}`, headers: auth })).json() as CaseResult;
    const finished = async (id: string) => {
      for (let i = 0; i < 600; i++) {
        const r = await get(id);
        if (r.status === 'succeeded' || r.status === 'failed') return r;
        await new Promise((res) => setTimeout(res, 100));
      }
      throw new Error('the case did not finish');
    };

    const localized = await post(s3Event('lesion.jpg', 'v1', 'localized'));
    assert.ok(localized?.caseId);
    const r = await finished(localized.caseId);
    assert.equal(r.status, 'succeeded', JSON.stringify(r.error));
    assert.equal(r.pipeline, 'photo-triage');
    assert.deepEqual(r.timings.map((s) => [s.stage, s.status]), [
      ['validate', 'succeeded'], ['triage', 'succeeded'], ['detect', 'succeeded'], ['classify-crop', 'succeeded'],
      ['classify-whole', 'skipped'], ['llm', 'succeeded'], ['billing', 'succeeded'],
    ]);
    // The crop is stored, referenced in the result and served; the crop classifier named the lesion.
    const crop = r.detection?.crop;
    assert.ok(crop && r.detection && r.detection.detections.length >= 1);
    const png = await app.inject({ method: 'GET', url: `/v1/cases/${r.id}/files/${crop.objectKey.split('/').pop()}`, headers: auth });
    assert.equal(png.statusCode, 200);
    const meta = await sharp(png.rawPayload).metadata();
    assert.deepEqual([meta.width, meta.height], [crop.width, crop.height]);
    const top = r.findings.filter((f) => f.stage === 'classify-crop').sort((a, b) => b.probability - a.probability)[0];
    assert.equal(top?.code, 'irregular-lesion');
    assert.ok(r.llm && r.llm.prompt.name === 'photo-triage');
    assert.ok(r.billing);

    // Widespread: no detection, the whole photograph is classified.
    const widespread = await post(s3Event('spots.jpg', 'w1', 'widespread'));
    const w = await finished(widespread?.caseId as string);
    assert.equal(w.status, 'succeeded', JSON.stringify(w.error));
    assert.deepEqual(w.timings.filter((s) => s.status === 'skipped').map((s) => s.stage), ['detect', 'classify-crop']);
    assert.equal(w.detection, null);
    assert.ok(w.findings.some((f) => f.stage === 'classify-whole'));

    // A replayed event: the same case, nothing new in the database.
    const replay = await post(s3Event('lesion.jpg', 'v1', 'localized'));
    assert.deepEqual([replay?.caseId, replay?.duplicate], [localized.caseId, true]);
    const [n] = await platform.db.query<{ n: number }>('SELECT count(*)::int AS n FROM dxflow_case');
    assert.equal(n?.n, 2);
  });
}
