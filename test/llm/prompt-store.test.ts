import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test, type TestContext } from 'node:test';
import { migrate } from '../../src/adapters/db/migrate.ts';
import type { SqlDatabase } from '../../src/adapters/db/sql-database.ts';
import { AppError } from '../../src/core/errors.ts';
import { createPrompt, DEFAULT_PROMPTS_DIR, ensureDefaultPrompts, getPrompt, listPrompts, promote } from '../../src/llm/prompt-store.ts';
import { testDatabases, type TestDatabaseFactory } from '../support/db.ts';

const V1 = 'Findings:\n{{#each findings}}\n- {{label}}\n{{/each}}\n';
const V2 = 'Pipeline {{pipeline}}: {{recommendation.display}}\n';

const sha256 = (text: string): string => createHash('sha256').update(text).digest('hex');

function refusedWith(code: string, pattern: RegExp): (e: unknown) => boolean {
  return (e: unknown) => e instanceof AppError && e.code === code && pattern.test(e.message);
}

async function scratchDir(t: TestContext): Promise<string> {
  const dir = await mkdtemp(path.join(tmpdir(), 'dxflow-prompts-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

async function openMigrated(factory: TestDatabaseFactory, t: TestContext): Promise<SqlDatabase> {
  const { db } = await factory.open(t);
  await migrate(db);
  return db;
}

for (const factory of testDatabases()) {
  const on = `(${factory.kind})`;

  test(`versions are numbered 1, 2, … per name, with the text's sha256 and author ${on}`, async (t) => {
    const db = await openMigrated(factory, t);
    const first = await createPrompt(db, 'triage', V1, { createdBy: 'dr-lee' });
    const second = await createPrompt(db, 'triage', V2);
    const other = await createPrompt(db, 'billing-notes', V2);
    assert.deepEqual([first.version, second.version, other.version], [1, 2, 1]);
    assert.equal(first.sha256, sha256(V1));
    assert.equal(first.createdBy, 'dr-lee');
    assert.equal(second.createdBy, null);
    assert.ok(first.createdAt instanceof Date);
    const stored = await getPrompt(db, 'triage', { version: 1 });
    assert.equal(stored.template, V1);
    assert.equal(stored.label, null);
    assert.equal((await getPrompt(db, 'triage', { version: 2 })).template, V2);
  });

  test(`a label points at one version and promote moves it ${on}`, async (t) => {
    const db = await openMigrated(factory, t);
    await createPrompt(db, 'triage', V1);
    await createPrompt(db, 'triage', V2);
    assert.deepEqual(await promote(db, 'triage', 1, 'production'), { previous: null });
    await promote(db, 'triage', 2, 'staging');
    let prod = await getPrompt(db, 'triage', { label: 'production' });
    assert.deepEqual([prod.version, prod.template, prod.label], [1, V1, 'production']);
    assert.deepEqual(await promote(db, 'triage', 2, 'production'), { previous: 1 });
    prod = await getPrompt(db, 'triage', { label: 'production' });
    assert.deepEqual([prod.version, prod.template], [2, V2]);
    assert.deepEqual(
      (await listPrompts(db)).map((p) => [p.name, p.version, p.labels]),
      [['triage', 1, []], ['triage', 2, ['production', 'staging']]],
    );
    // Creating a new version never moves a label.
    await createPrompt(db, 'triage', V1);
    assert.equal((await getPrompt(db, 'triage', { label: 'production' })).version, 2);
  });

  test(`an invalid template is refused and nothing is stored ${on}`, async (t) => {
    const db = await openMigrated(factory, t);
    await assert.rejects(createPrompt(db, 'triage', 'Hello {{patient.name}}'), refusedWith('PROMPT_INVALID', /unknown variable "patient\.name"/));
    await assert.rejects(createPrompt(db, 'triage', '{{#each findings}}'), refusedWith('PROMPT_INVALID', /never closed/));
    await assert.rejects(createPrompt(db, 'Triage Prompt', V1), refusedWith('INVALID_REQUEST', /not a valid prompt name/));
    assert.deepEqual(await listPrompts(db), []);
    // The first valid version is still 1.
    assert.equal((await createPrompt(db, 'triage', V1)).version, 1);
  });

  test(`unknown prompts, versions and labels are PROMPT_NOT_FOUND, saying which ${on}`, async (t) => {
    const db = await openMigrated(factory, t);
    await createPrompt(db, 'triage', V1);
    await assert.rejects(getPrompt(db, 'nonexistent', { label: 'production' }), refusedWith('PROMPT_NOT_FOUND', /no prompt named "nonexistent"/));
    await assert.rejects(getPrompt(db, 'triage', { label: 'production' }), refusedWith('PROMPT_NOT_FOUND', /"triage" has no version labelled "production"/));
    await assert.rejects(getPrompt(db, 'triage', { version: 7 }), refusedWith('PROMPT_NOT_FOUND', /"triage" has no version 7/));
    await assert.rejects(promote(db, 'triage', 2, 'production'), refusedWith('PROMPT_NOT_FOUND', /"triage" has no version 2/));
    await assert.rejects(promote(db, 'nonexistent', 1, 'production'), refusedWith('PROMPT_NOT_FOUND', /no prompt named/));
    await assert.rejects(promote(db, 'triage', 1, 'Production!'), refusedWith('INVALID_REQUEST', /not a valid label/));
    await assert.rejects(getPrompt(db, 'triage', { version: 0 }), refusedWith('INVALID_REQUEST', /not a prompt version/));
  });

  test(`a version cannot be changed or removed, and altered text is refused when read ${on}`, async (t) => {
    const db = await openMigrated(factory, t);
    await createPrompt(db, 'triage', V1);
    await assert.rejects(db.query("UPDATE dxflow_prompt SET template = 'changed' WHERE name = 'triage'"), /immutable; create a new version/);
    await assert.rejects(db.query("DELETE FROM dxflow_prompt WHERE name = 'triage'"), /immutable/);
    assert.equal((await getPrompt(db, 'triage', { version: 1 })).template, V1);
    // Someone with the rights to switch the guard off edits the row anyway: reading it is refused.
    await db.exec("ALTER TABLE dxflow_prompt DISABLE TRIGGER dxflow_prompt_immutable; UPDATE dxflow_prompt SET template = 'Tampered {{pipeline}}' WHERE name = 'triage'; ALTER TABLE dxflow_prompt ENABLE TRIGGER dxflow_prompt_immutable;");
    await assert.rejects(getPrompt(db, 'triage', { version: 1 }), refusedWith('PROMPT_INVALID', /does not match its recorded sha256.*altered outside dxflow/));
  });

  test(`line endings are stored as \\n, so a checkout with CRLF gives the same sha256 ${on}`, async (t) => {
    const db = await openMigrated(factory, t);
    const created = await createPrompt(db, 'triage', `\uFEFF${V1.replace(/\n/g, '\r\n')}`);
    assert.equal(created.sha256, sha256(V1));
    assert.equal((await getPrompt(db, 'triage', { version: 1 })).template, V1);
  });

  test(`concurrent creations of one prompt get distinct consecutive versions ${on}`, async (t) => {
    const db = await openMigrated(factory, t);
    const created = await Promise.all(Array.from({ length: 8 }, (_, i) => createPrompt(db, 'triage', `${V2}{{! copy ${i} }}`)));
    assert.deepEqual(created.map((c) => c.version).sort((a, b) => a - b), [1, 2, 3, 4, 5, 6, 7, 8]);
  });

  test(`the shipped prompts are seeded once as version 1 labelled production ${on}`, async (t) => {
    const db = await openMigrated(factory, t);
    assert.deepEqual(await ensureDefaultPrompts(db), { seeded: ['photo-triage', 'treatment-recommendation'] });
    const shipped = await readFile(path.join(DEFAULT_PROMPTS_DIR, 'treatment-recommendation.v1.md'), 'utf8');
    const prod = await getPrompt(db, 'treatment-recommendation', { label: 'production' });
    assert.deepEqual([prod.version, prod.template, prod.createdBy], [1, shipped, 'dxflow']);
    assert.deepEqual(await ensureDefaultPrompts(db), { seeded: [] });
    assert.equal((await listPrompts(db)).length, 2);
  });

  test(`seeding never touches a prompt the registry already has ${on}`, async (t) => {
    const db = await openMigrated(factory, t);
    const dir = await scratchDir(t);
    await writeFile(path.join(dir, 'README.md'), 'not a prompt');
    await writeFile(path.join(dir, 'triage.v1.md'), V1);
    await writeFile(path.join(dir, 'triage.v2.md'), V2);
    await writeFile(path.join(dir, 'summary.v1.md'), V2);
    await createPrompt(db, 'summary', V1, { createdBy: 'operator' });
    await promote(db, 'summary', 1, 'staging');
    assert.deepEqual(await ensureDefaultPrompts(db, dir), { seeded: ['triage'] });
    // A new name gets every shipped version, production on the newest.
    assert.equal((await getPrompt(db, 'triage', { label: 'production' })).version, 2);
    assert.equal((await getPrompt(db, 'triage', { version: 1 })).template, V1);
    // The operator's prompt is exactly as it was: one version, no production label added.
    assert.deepEqual((await listPrompts(db)).filter((p) => p.name === 'summary').map((p) => [p.version, p.createdBy, p.labels]), [[1, 'operator', ['staging']]]);
    await assert.rejects(getPrompt(db, 'summary', { label: 'production' }), refusedWith('PROMPT_NOT_FOUND', /no version labelled "production"/));
  });

  test(`shipped prompt files are checked: names, version gaps and templates ${on}`, async (t) => {
    const db = await openMigrated(factory, t);
    const misnamed = await scratchDir(t);
    await writeFile(path.join(misnamed, 'triage.md'), V1);
    await assert.rejects(ensureDefaultPrompts(db, misnamed), refusedWith('PROMPT_INVALID', /triage\.md is not named <name>\.v<version>\.md/));
    const gap = await scratchDir(t);
    await writeFile(path.join(gap, 'triage.v2.md'), V1);
    await assert.rejects(ensureDefaultPrompts(db, gap), refusedWith('PROMPT_INVALID', /skip version 1/));
    const broken = await scratchDir(t);
    await writeFile(path.join(broken, 'triage.v1.md'), '{{patient.name}}');
    await assert.rejects(ensureDefaultPrompts(db, broken), refusedWith('PROMPT_INVALID', /triage\.v1\.md: Template error at line 1, column 1: unknown variable/));
    assert.deepEqual(await listPrompts(db), []);
  });
}
