import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { test } from 'node:test';
import { readInstanceIds } from '../../src/imaging/dicom-ids.ts';
import { createDicomIngest } from '../../src/pipeline/dicom-ingest.ts';
import { platformTargets } from '../support/platform.ts';

const PYDICOM = '/usr/lib/python3/dist-packages/pydicom/data/test_files';
const missing = existsSync(`${PYDICOM}/CT_small.dcm`) ? false : 'python3-pydicom (public DICOM test files) is not installed';

for (const target of platformTargets()) {
  test(`[${target.name}] DICOM instances group into studies; a quiet study becomes one case; the same study again makes none`, { skip: missing }, async (t) => {
    const { platform } = await target.open(t);
    const quarantine = new Set<string>();
    const ingest = createDicomIngest({
      db: platform.db, objects: platform.objects, intake: platform.intake, pipeline: 'image-classify', quietSeconds: 0,
      readIds: readInstanceIds,
      async prepare(bytes) {
        const ids = readInstanceIds(bytes);
        return quarantine.has(ids.sopInstanceUid) ? { status: 'quarantined', reason: 'burned-in text possible' } : { status: 'released', bytes };
      },
    });
    const ct = await readFile(`${PYDICOM}/CT_small.dcm`);
    const mr = await readFile(`${PYDICOM}/MR_small.dcm`);
    const first = await ingest.store(ct);
    assert.equal(first.status, 'stored');
    assert.equal((await ingest.store(ct)).status, 'duplicate');
    assert.equal((await ingest.store(mr)).status, 'stored');
    quarantine.add(readInstanceIds(mr).sopInstanceUid);
    assert.equal((await ingest.store(mr)).status, 'quarantined');

    const made = await ingest.completeQuietStudies();
    assert.equal(made.length, 2);
    assert.ok(made.every((m) => m.caseId), JSON.stringify(made));
    const cases = await platform.db.query<{ id: string; metadata: Record<string, unknown> }>('SELECT id, metadata FROM dxflow_case ORDER BY created_at');
    assert.equal(cases.length, 2);
    assert.deepEqual(cases.map((c) => c.metadata['modality']).sort(), ['CT', 'MR']);

    // The same study sent again: nothing new, now or after another quiet period.
    assert.equal((await ingest.store(ct)).status, 'duplicate');
    assert.deepEqual(await ingest.completeQuietStudies(), []);
    const [count] = await platform.db.query<{ n: number }>('SELECT count(*)::int AS n FROM dxflow_case');
    assert.equal(count?.n, 2);

    // Not DICOM at all: refused with a code, nothing stored.
    await assert.rejects(ingest.store(Buffer.from('not a dicom file at all, just text')), { code: 'CORRUPT_IMAGE' });
  });
}
