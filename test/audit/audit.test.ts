import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { PGlite } from '@electric-sql/pglite';
import { build } from '../../src/api/app.ts';
import { verifyAuditLog, type AuditEvent } from '../../src/audit/log.ts';
import { multipart } from '../support/images.ts';
import { platformTargets, TEST_API_KEY } from '../support/platform.ts';
import { dxflow } from '../cli/process.ts';

const auth = { authorization: `Bearer ${TEST_API_KEY}` };

for (const target of platformTargets()) {
  test(`[${target.name}] every read, write, export and denial is audited, in an intact hash chain; an edited or deleted row is found`, async (t) => {
    const { platform } = await target.open(t);
    const app = await build(platform);
    t.after(() => app.close());
    const image = await multipart({ image: { bytes: await readFile('samples/tissue-tumour-like.png'), filename: 'x.png' } });
    const created = await app.inject({ method: 'POST', url: '/v1/predict', payload: image.payload, headers: { ...image.headers, ...auth } });
    const id = (created.json() as { id: string }).id;
    await app.inject({ method: 'GET', url: `/v1/cases/${id}`, headers: auth });
    await app.inject({ method: 'GET', url: `/v1/cases/${id}/fhir`, headers: auth });
    await app.inject({ method: 'GET', url: `/v1/cases/${id}`, headers: { authorization: 'Bearer wrong-key-0000000000' } });
    await app.inject({ method: 'GET', url: '/healthz' });

    const rows = await platform.db.query<{ seq: string | number; event: AuditEvent }>('SELECT seq, event FROM dxflow_audit ORDER BY seq');
    assert.deepEqual(rows.map((r) => [r.event.subtype, r.event.outcome, r.event.entity?.id ?? null, r.event.agent.type]), [
      ['write', 0, id, 'api-key'], ['read', 0, id, 'api-key'], ['export', 0, id, 'api-key'], ['deny', 4, id, 'anonymous'],
    ]);
    assert.ok(rows.every((r) => r.event.request.sourceAddress.length > 0 && r.event.request.id.length > 0));
    assert.ok(!JSON.stringify(rows).includes(TEST_API_KEY), 'the key itself is never recorded');
    const intact = await verifyAuditLog(platform.db);
    assert.equal(intact.intact, true);
    assert.equal(intact.intact && intact.records, 4);

    // Append-only: the database refuses edits and deletions…
    await assert.rejects(platform.db.query(`UPDATE dxflow_audit SET event = '{}' WHERE seq = 2`), /append-only/);
    await assert.rejects(platform.db.query('DELETE FROM dxflow_audit WHERE seq = 2'), /append-only/);
    // …and one who bypasses that (the table owner disabling the trigger) is caught by verify.
    await platform.db.exec('ALTER TABLE dxflow_audit DISABLE TRIGGER dxflow_audit_no_change');
    await platform.db.query(`UPDATE dxflow_audit SET event = jsonb_set(event, '{outcome}', '4') WHERE seq = 2`);
    assert.deepEqual(await verifyAuditLog(platform.db), { intact: false, records: 1, firstBadSeq: 2, problem: 'record 2 was changed after it was written' });
    await platform.db.query(`UPDATE dxflow_audit SET event = jsonb_set(event, '{outcome}', '0') WHERE seq = 2`);
    assert.equal((await verifyAuditLog(platform.db)).intact, true, 'putting the value back restores the chain');
    await platform.db.query('DELETE FROM dxflow_audit WHERE seq = 3');
    const deleted = await verifyAuditLog(platform.db);
    assert.equal(deleted.intact, false);
    assert.equal(!deleted.intact && deleted.firstBadSeq, 3);
  });

  test(`[${target.name}] when the audit record cannot be written, the request fails`, async (t) => {
    const { platform } = await target.open(t);
    const app = await build(platform);
    t.after(() => app.close());
    await platform.db.exec('ALTER TABLE dxflow_audit RENAME TO dxflow_audit_gone');
    const res = await app.inject({ method: 'GET', url: '/v1/cases/00000000-0000-4000-8000-000000000000', headers: auth });
    assert.equal(res.statusCode, 503);
    assert.equal((res.json() as { error: { code: string } }).error.code, 'DATABASE_UNAVAILABLE');
  });
}

test('dxflow audit verify: exit 0 with the head on an intact trail, 1 naming the record after tampering', async (t) => {
  const { mkdtemp, rm } = await import('node:fs/promises');
  const { tmpdir } = await import('node:os');
  const dataDir = await mkdtemp(path.join(tmpdir(), 'dxflow-audit-cli-'));
  t.after(() => rm(dataDir, { recursive: true, force: true }));
  const env = { DXFLOW_DATA_DIR: dataDir };
  const empty = await dxflow(['audit', 'verify'], env);
  assert.equal(empty.code, 0, empty.stderr);
  assert.match(empty.stdout, /intact: 0 records/);
  const db = new PGlite(path.join(dataDir, 'db'));
  const { appendAudit } = await import('../../src/audit/log.ts');
  const event: AuditEvent = { action: 'R', subtype: 'read', outcome: 0, agent: { type: 'api-key', id: 'k1' }, entity: null, request: { id: 'r', method: 'GET', route: '/v1/cases/:id', status: 200, sourceAddress: '127.0.0.1' } };
  const wrapped = {
    kind: 'pglite' as const,
    query: async <R>(sql: string, params?: readonly unknown[]) => (await db.query<R>(sql, params as unknown[])).rows,
    exec: async (sql: string) => { await db.exec(sql); },
    transaction: <T>(fn: (tx: { query<R>(sql: string, params?: readonly unknown[]): Promise<R[]> }) => Promise<T>) => db.transaction((tx) => fn({ query: async <R>(sql: string, params?: readonly unknown[]) => (await tx.query<R>(sql, params as unknown[])).rows })),
    close: () => db.close(),
  };
  for (let i = 0; i < 3; i++) await appendAudit(wrapped, event);
  await db.exec(`ALTER TABLE dxflow_audit DISABLE TRIGGER dxflow_audit_no_change; UPDATE dxflow_audit SET event = jsonb_set(event, '{agent,id}', '"someone-else"') WHERE seq = 2;`);
  await db.close();
  const broken = await dxflow(['audit', 'verify'], env);
  assert.equal(broken.code, 1);
  assert.match(broken.stdout, /BROKEN at record 2: record 2 was changed/);
});
