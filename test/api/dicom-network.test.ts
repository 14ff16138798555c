import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { build } from '../../src/api/app.ts';
import type { CaseResult } from '../../src/core/result.ts';
import { readCase } from '../../src/pipeline/case-store.ts';
import { startDicomScp } from '../../src/worker/dicom-scp.ts';
import { startCaseWorker } from '../../src/worker/run-case.ts';
import { dcmtkMissing, PYDICOM_TEST_FILES, runTool } from '../dicom/net-dcmtk.ts';
import { platformTargets, TEST_API_KEY } from '../support/platform.ts';

const auth = { authorization: `Bearer ${TEST_API_KEY}` };
const silent = { info() {}, warn() {}, error() {} };
const KEY_HEX = 'a1'.repeat(32);

async function waitForCases(platform: { db: { query<R>(sql: string): Promise<R[]> } }, n: number): Promise<string[]> {
  for (let i = 0; i < 300; i++) {
    const rows = await platform.db.query<{ id: string; status: string }>('SELECT id, status FROM dxflow_case ORDER BY created_at');
    if (rows.length >= n && rows.every((r) => r.status === 'succeeded' || r.status === 'failed')) return rows.map((r) => r.id);
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`expected ${n} finished cases`);
}

for (const target of platformTargets()) {
  test(`[${target.name}] storescu → C-STORE SCP → de-identified study → one case with a result; the same study again makes none; STOW-RS too`, { skip: dcmtkMissing(), timeout: 120_000 }, async (t) => {
    process.env['DXFLOW_DEID_KEY'] = KEY_HEX;
    t.after(() => { delete process.env['DXFLOW_DEID_KEY']; });
    const { platform } = await target.open(t, { DXFLOW_DICOM_QUIET_SECONDS: '1' });
    const scp = await startDicomScp(platform, silent);
    t.after(() => scp.close());
    const worker = await startCaseWorker(platform, silent);
    t.after(() => worker.stop());
    const ct = path.join(PYDICOM_TEST_FILES, 'CT_small.dcm');

    const send = await runTool('storescu', ['-aec', 'DXFLOW', '127.0.0.1', String(scp.port), ct]);
    assert.equal(send.code, 0, send.stderr);
    const [caseId] = await waitForCases(platform, 1);
    const result = await readCase(platform.db, caseId as string) as CaseResult;
    assert.equal(result.status, 'succeeded', JSON.stringify(result.error));
    assert.equal(result.input?.mediaType, 'dicom');
    assert.ok(result.findings.length > 0);

    // What was stored is the de-identified instance: no value of the original's identity is in it.
    const stored = await platform.objects.get(result.input?.objectKey as string);
    for (const phi of ['CompressedSamples^CT1', '1CT1', '1.3.6.1.4.1.5962.1.2.1.20040119072730.12322']) {
      assert.ok(!stored.includes(Buffer.from(phi)), `"${phi}" survived`);
    }
    const [instance] = await platform.db.query<{ study_uid: string }>('SELECT study_uid FROM dxflow_dicom_instance');
    assert.match(instance?.study_uid ?? '', /^2\.25\./);

    // The same study again (a re-send): accepted by the SCP, no second case even after the quiet period.
    const again = await runTool('storescu', ['-aec', 'DXFLOW', '127.0.0.1', String(scp.port), ct]);
    assert.equal(again.code, 0, again.stderr);
    await new Promise((r) => setTimeout(r, 2500));
    const [count] = await platform.db.query<{ n: number }>('SELECT count(*)::int AS n FROM dxflow_case');
    assert.equal(count?.n, 1);
    // A wrong called AE title is refused.
    const wrong = await runTool('storescu', ['-aec', 'NOTDXFLOW', '127.0.0.1', String(scp.port), ct]);
    assert.notEqual(wrong.code, 0);

    // STOW-RS: another study over DICOMweb, then the same request again.
    const app = await build(platform);
    t.after(() => app.close());
    const mr = await readFile(path.join(PYDICOM_TEST_FILES, 'MR_small.dcm'));
    const boundary = 'dxflow-test-boundary';
    const body = Buffer.concat([
      Buffer.from(`--${boundary}\r\nContent-Type: application/dicom\r\n\r\n`), mr, Buffer.from(`\r\n--${boundary}--\r\n`),
    ]);
    const headers = { ...auth, 'content-type': `multipart/related; type="application/dicom"; boundary=${boundary}` };
    const stow = await app.inject({ method: 'POST', url: '/dicomweb/studies', payload: body, headers });
    assert.equal(stow.statusCode, 200, stow.body);
    assert.match(stow.headers['content-type'] as string, /application\/dicom\+json/);
    const referenced = (stow.json() as Record<string, { Value?: Array<Record<string, { Value?: string[] }>> }>)['00081199']?.Value ?? [];
    assert.equal(referenced.length, 1);
    assert.match(referenced[0]?.['00081155']?.Value?.[0] ?? '', /^2\.25\./, 'the response names the de-identified instance');
    const second = await app.inject({ method: 'POST', url: '/dicomweb/studies', payload: body, headers });
    assert.equal(second.statusCode, 200);
    await waitForCases(platform, 2);
    await new Promise((r) => setTimeout(r, 2500));
    const [total] = await platform.db.query<{ n: number }>('SELECT count(*)::int AS n FROM dxflow_case');
    assert.equal(total?.n, 2);
    // Not DICOM: 409 with a failure reason, nothing stored.
    const junk = Buffer.concat([Buffer.from(`--${boundary}\r\nContent-Type: application/dicom\r\n\r\nnot dicom\r\n--${boundary}--\r\n`)]);
    const refused = await app.inject({ method: 'POST', url: '/dicomweb/studies', payload: junk, headers });
    assert.equal(refused.statusCode, 409, refused.body);
  });
}
