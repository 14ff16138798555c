import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { AppError } from '../../src/core/errors.ts';
import { migrate } from '../../src/adapters/db/migrate.ts';
import { openPostgres } from '../../src/adapters/db/postgres.ts';
import type { SqlDatabase } from '../../src/adapters/db/sql-database.ts';
import { createTestSchema, postgresTestUrl, testDatabases } from '../support/db.ts';

async function migrationsDir(t: TestContext, files: Record<string, string>): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'dxflow-migrations-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  for (const [name, sql] of Object.entries(files)) await writeFile(join(dir, name), sql);
  return dir;
}

async function tables(db: SqlDatabase): Promise<string[]> {
  const rows = await db.query<{ name: string }>(`SELECT table_name AS name FROM information_schema.tables
    WHERE table_schema = current_schema() ORDER BY table_name`);
  return rows.map((row) => row.name);
}

async function recorded(db: SqlDatabase): Promise<string[]> {
  return (await db.query<{ name: string }>('SELECT name FROM dxflow_migration ORDER BY name')).map((row) => row.name);
}

function refusedWith(code: string, pattern: RegExp): (e: unknown) => boolean {
  return (e: unknown) => e instanceof AppError && e.code === code && pattern.test(e.message);
}

for (const factory of testDatabases()) {
  const on = `(${factory.kind})`;

  test(`the shipped migrations create dxflow's tables, and a second run applies nothing ${on}`, async (t) => {
    const { db } = await factory.open(t);
    const first = await migrate(db);
    assert.deepEqual(first.applied, ['001_cases.sql', '002_prompts.sql', '003_notes.sql', '004_tiles.sql', '005_skipped_stages.sql', '006_dicom_studies.sql', '007_audit.sql']);
    assert.deepEqual(await tables(db), [
      'dxflow_api_key', 'dxflow_audit', 'dxflow_case', 'dxflow_dicom_instance', 'dxflow_dicom_study', 'dxflow_event', 'dxflow_finding', 'dxflow_input', 'dxflow_migration', 'dxflow_note', 'dxflow_prompt', 'dxflow_prompt_label', 'dxflow_stage_run',
      'dxflow_tile_batch', 'dxflow_tile_plan', 'dxflow_tile_score',
    ]);
    const [row] = await db.query<{ sha256: string; applied_at: Date }>('SELECT sha256, applied_at FROM dxflow_migration ORDER BY name LIMIT 1');
    assert.match(row?.sha256 ?? '', /^[0-9a-f]{64}$/);
    assert.ok(row?.applied_at instanceof Date);
    assert.deepEqual(await migrate(db), { applied: [] });
  });

  test(`files are applied in number order, each only once ${on}`, async (t) => {
    const { db } = await factory.open(t);
    const dir = await migrationsDir(t, {
      '002_b.sql': 'ALTER TABLE a ADD COLUMN note text;',
      '001_a.sql': 'CREATE TABLE a (id integer PRIMARY KEY);\nINSERT INTO a VALUES (1);',
      'README.md': 'not a migration',
    });
    assert.deepEqual(await migrate(db, dir), { applied: ['001_a.sql', '002_b.sql'] });
    await writeFile(join(dir, '003_c.sql'), "UPDATE a SET note = 'third';");
    assert.deepEqual(await migrate(db, dir), { applied: ['003_c.sql'] });
    assert.deepEqual(await db.query('SELECT id, note FROM a'), [{ id: 1, note: 'third' }]);
  });

  test(`an applied file whose contents changed is refused before anything else is applied ${on}`, async (t) => {
    const { db } = await factory.open(t);
    const dir = await migrationsDir(t, { '001_a.sql': 'CREATE TABLE a (id integer);' });
    await migrate(db, dir);
    await writeFile(join(dir, '001_a.sql'), 'CREATE TABLE a (id bigint);');
    await writeFile(join(dir, '002_b.sql'), 'CREATE TABLE b (id integer);');
    await assert.rejects(migrate(db, dir), refusedWith('MIGRATION_INVALID', /001_a\.sql was changed after it was applied/));
    assert.deepEqual(await recorded(db), ['001_a.sql']);
    assert.ok(!(await tables(db)).includes('b'));
  });

  test(`line endings alone do not count as a change ${on}`, async (t) => {
    const { db } = await factory.open(t);
    const dir = await migrationsDir(t, { '001_a.sql': 'CREATE TABLE a (id integer);\nCREATE TABLE b (id integer);\n' });
    await migrate(db, dir);
    await writeFile(join(dir, '001_a.sql'), '\uFEFFCREATE TABLE a (id integer);\r\nCREATE TABLE b (id integer);\r\n');
    assert.deepEqual(await migrate(db, dir), { applied: [] });
  });

  test(`a failing file is rolled back entirely and not recorded; fixed, it applies ${on}`, async (t) => {
    const { db } = await factory.open(t);
    const dir = await migrationsDir(t, {
      '001_a.sql': 'CREATE TABLE a (id integer);',
      '002_b.sql': 'CREATE TABLE b (id integer);\nINSERT INTO a VALUES (1);\nSELECT 1/0;',
    });
    await assert.rejects(migrate(db, dir), refusedWith('MIGRATION_FAILED', /002_b\.sql failed and was rolled back: division by zero/));
    assert.deepEqual(await recorded(db), ['001_a.sql']);
    assert.ok(!(await tables(db)).includes('b'));
    assert.deepEqual(await db.query('SELECT count(*) AS n FROM a'), [{ n: 0 }]);
    await writeFile(join(dir, '002_b.sql'), 'CREATE TABLE b (id integer);');
    assert.deepEqual(await migrate(db, dir), { applied: ['002_b.sql'] });
  });

  test(`a database migrated by a newer version is refused ${on}`, async (t) => {
    const { db } = await factory.open(t);
    const newer = await migrationsDir(t, { '001_a.sql': 'CREATE TABLE a (id integer);', '002_b.sql': 'CREATE TABLE b (id integer);' });
    await migrate(db, newer);
    const older = await migrationsDir(t, { '001_a.sql': 'CREATE TABLE a (id integer);' });
    await assert.rejects(migrate(db, older), refusedWith('MIGRATION_INVALID', /has migration 002_b\.sql applied, which this version of dxflow does not have/));
  });

  test(`a file numbered before the last applied one is refused, not applied out of order ${on}`, async (t) => {
    const { db } = await factory.open(t);
    const dir = await migrationsDir(t, { '001_a.sql': 'CREATE TABLE a (id integer);', '003_c.sql': 'CREATE TABLE c (id integer);' });
    await migrate(db, dir);
    await writeFile(join(dir, '002_b.sql'), 'CREATE TABLE b (id integer);');
    await assert.rejects(migrate(db, dir), refusedWith('MIGRATION_INVALID', /002_b\.sql is not applied but the later 003_c\.sql is/));
  });

  test(`badly named or duplicate-numbered files are refused ${on}`, async (t) => {
    const { db } = await factory.open(t);
    const badName = await migrationsDir(t, { '1_a.sql': 'SELECT 1;' });
    await assert.rejects(migrate(db, badName), refusedWith('MIGRATION_INVALID', /1_a\.sql is not named NNN_name\.sql/));
    const duplicate = await migrationsDir(t, { '001_a.sql': 'SELECT 1;', '001_b.sql': 'SELECT 1;' });
    await assert.rejects(migrate(db, duplicate), refusedWith('MIGRATION_INVALID', /001_a\.sql and 001_b\.sql share the number 001/));
    await assert.rejects(migrate(db, join(badName, 'missing')), refusedWith('INTERNAL', /Cannot read the migrations folder/));
  });
}

test('PostgreSQL: processes migrating at the same moment apply each file exactly once', { skip: postgresTestUrl === undefined ? 'DXFLOW_TEST_DATABASE_URL is not set' : false }, async (t) => {
  const url = postgresTestUrl ?? '';
  const schema = await createTestSchema(t, url);
  const dir = await migrationsDir(t, {
    // The sleep holds the first process inside its transaction while the others queue on the lock.
    '001_a.sql': 'CREATE TABLE a (id integer); SELECT pg_sleep(0.2);',
    '002_b.sql': 'CREATE TABLE b (id integer);',
  });
  const processes = await Promise.all([1, 2, 3].map(() => openPostgres(url, { schema, max: 2 })));
  try {
    const results = await Promise.all(processes.map((db) => migrate(db, dir)));
    assert.deepEqual(results.flatMap((result) => result.applied).sort(), ['001_a.sql', '002_b.sql']);
    assert.deepEqual(await recorded(processes[0] as SqlDatabase), ['001_a.sql', '002_b.sql']);
  } finally {
    await Promise.all(processes.map((db) => db.close()));
  }
});
