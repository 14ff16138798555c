import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test, type TestContext } from 'node:test';
import { migrate } from '../../src/adapters/db/migrate.ts';
import { promptsCommand } from '../../src/cli/prompts.ts';
import { AppError } from '../../src/core/errors.ts';
import { DEFAULT_PROMPTS_DIR, getPrompt } from '../../src/llm/prompt-store.ts';
import { testDatabases } from '../support/db.ts';

// `dxflow prompts …` as a function over a real (embedded) database; the process-level test of the
// command lives with the other CLI tests.

const [embedded] = testDatabases();

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

async function context(t: TestContext) {
  if (!embedded) throw new Error('no test database');
  const { db } = await embedded.open(t);
  await migrate(db);
  const dir = await mkdtemp(path.join(tmpdir(), 'dxflow-prompts-cli-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const run = async (...args: string[]): Promise<Run> => {
    let stdout = '';
    let stderr = '';
    const code = await promptsCommand(args, {
      db,
      defaultsDir: DEFAULT_PROMPTS_DIR,
      out: { write: (text: string) => { stdout += text; } },
      err: { write: (text: string) => { stderr += text; } },
    });
    return { code, stdout, stderr };
  };
  return { db, dir, run };
}

test('list shows the seeded default prompts with their labels', async (t) => {
  const { run } = await context(t);
  const listed = await run('list');
  assert.equal(listed.code, 0, listed.stderr);
  const lines = listed.stdout.trimEnd().split('\n');
  assert.match(lines[0] ?? '', /^NAME\s+VERSION\s+LABELS\s+SHA256\s+CREATED\s+BY$/);
  assert.match(lines[1] ?? '', /^photo-triage\s+1\s+production\s+[0-9a-f]{12}\s+\d{4}-\d\d-\d\dT[\d:.]+Z\s+dxflow$/);
  assert.match(lines[2] ?? '', /^treatment-recommendation\s+1\s+production\s+[0-9a-f]{12}\s+\d{4}-\d\d-\d\dT[\d:.]+Z\s+dxflow$/);
  assert.equal(lines.length, 3);
});

test('show, edit, create and promote: the round trip an operator makes', async (t) => {
  const { db, dir, run } = await context(t);
  const shown = await run('show', 'treatment-recommendation');
  assert.equal(shown.code, 0, shown.stderr);
  assert.equal(shown.stdout, await readFile(path.join(DEFAULT_PROMPTS_DIR, 'treatment-recommendation.v1.md'), 'utf8'));

  const file = path.join(dir, 'v2.md');
  await writeFile(file, `${shown.stdout}\nAnswer in British English.\n`);
  const created = await run('create', 'treatment-recommendation', file, '--by', 'dr-okafor');
  assert.equal(created.code, 0, created.stderr);
  assert.match(created.stdout, /^created treatment-recommendation version 2 \(sha256 [0-9a-f]{64}\)\n/);
  assert.match(created.stdout, /dxflow prompts promote treatment-recommendation 2 production/);
  assert.equal((await getPrompt(db, 'treatment-recommendation', { label: 'production' })).version, 1, 'creating does not promote');
  assert.match((await run('list')).stdout, /treatment-recommendation\s+2\s+-\s+[0-9a-f]{12}\s+\S+\s+dr-okafor/);

  const staged = await run('promote', 'treatment-recommendation', '2', 'staging');
  assert.equal(staged.stdout, 'treatment-recommendation: staging → version 2 (new label)\n');
  const promoted = await run('promote', 'treatment-recommendation', '2');
  assert.equal(promoted.stdout, 'treatment-recommendation: production → version 2 (was version 1)\n');
  assert.match((await run('show', 'treatment-recommendation')).stdout, /Answer in British English\.\n$/);
  assert.doesNotMatch((await run('show', 'treatment-recommendation', '--version', '1')).stdout, /British/);
  assert.match((await run('show', 'treatment-recommendation', '--label', 'staging')).stdout, /British/);
  assert.match((await run('list')).stdout, /treatment-recommendation\s+2\s+production,staging\s/);
});

test('registry failures are AppErrors for the command\'s error handler', async (t) => {
  const { dir, run } = await context(t);
  const file = path.join(dir, 'bad.md');
  await writeFile(file, 'Patient: {{patient.name}}');
  await assert.rejects(run('create', 'treatment-recommendation', file), (e: unknown) => e instanceof AppError && e.code === 'PROMPT_INVALID' && /line 1, column 10: unknown variable "patient\.name"/.test(e.message));
  await assert.rejects(run('create', 'triage', path.join(dir, 'missing.md')), (e: unknown) => e instanceof AppError && e.code === 'INVALID_REQUEST' && /Cannot read the template file/.test(e.message));
  await assert.rejects(run('promote', 'treatment-recommendation', '9'), (e: unknown) => e instanceof AppError && e.code === 'PROMPT_NOT_FOUND');
  await assert.rejects(run('show', 'nonexistent'), (e: unknown) => e instanceof AppError && e.code === 'PROMPT_NOT_FOUND');
});

test('usage mistakes exit with 2 and print the usage', async (t) => {
  const { run } = await context(t);
  const cases: [string[], RegExp][] = [
    [[], /name an action/],
    [['delete', 'x'], /unknown action "delete"/],
    [['list', 'extra'], /usage: dxflow prompts list/],
    [['create', 'only-name'], /usage: dxflow prompts create NAME FILE/],
    [['promote', 'treatment-recommendation', 'two'], /VERSION must be a version number/],
    [['show', 'treatment-recommendation', '--version', '1', '--label', 'production'], /not both/],
    [['list', '--force'], /Unknown option '--force'/],
  ];
  for (const [args, pattern] of cases) {
    const result = await run(...args);
    assert.equal(result.code, 2, args.join(' '));
    assert.match(result.stderr, pattern, args.join(' '));
    assert.match(result.stderr, /Usage: dxflow prompts list \| show/);
    assert.equal(result.stdout, '');
  }
});
