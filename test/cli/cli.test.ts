import assert from 'node:assert/strict';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { validateFhirResource } from '../support/fhir-validator.ts';
import { dxflow } from './process.ts';

test('dxflow --help lists every command, and every command has --help', async () => {
  const main = await dxflow(['--help']);
  assert.equal(main.code, 0);
  for (const c of ['serve', 'migrate', 'analyze', 'models', 'prompts', 'slide', 'pipelines']) {
    assert.match(main.stdout, new RegExp(`^  ${c} `, 'm'));
    const sub = await dxflow([c, '--help']);
    assert.equal(sub.code, 0, c);
    assert.match(sub.stdout, new RegExp(`Usage: dxflow ${c}`));
  }
  const unknown = await dxflow(['frobnicate']);
  assert.equal(unknown.code, 2);
  assert.match(unknown.stderr, /unknown command "frobnicate"/);
  const badFlag = await dxflow(['analyze', '--colour', 'x']);
  assert.equal(badFlag.code, 2);
  assert.match(badFlag.stderr, /Unknown option '--colour'/);
});

test('dxflow analyze prints the result as JSON and as a valid FHIR R4 Bundle', async () => {
  const json = await dxflow(['analyze', 'samples/tissue-tumour-like.png']);
  assert.equal(json.code, 0, json.stderr);
  const result = JSON.parse(json.stdout);
  assert.equal(result.status, 'succeeded');
  assert.equal(result.findings[0].code, 'tumour-pattern');

  const fhir = await dxflow(['analyze', 'samples/tissue-tumour-like.jpg', '--format', 'fhir', '--pipeline', 'image-classify']);
  assert.equal(fhir.code, 0, fhir.stderr);
  const bundle = JSON.parse(fhir.stdout);
  assert.equal(bundle.resourceType, 'Bundle');
  validateFhirResource(bundle);
  for (const e of bundle.entry) validateFhirResource(e.resource);
});

test('dxflow analyze refuses bad input with the error code and a non-zero exit', async () => {
  const dir = await mkdtemp(path.join(tmpdir(), 'dxflow-cli-'));
  const txt = path.join(dir, 'scan.png');
  await writeFile(txt, 'this is a text file with a .png name\n');
  const res = await dxflow(['analyze', txt]);
  assert.equal(res.code, 1);
  assert.match(res.stderr, /UNSUPPORTED_MEDIA_TYPE/);
  const missing = await dxflow(['analyze', path.join(dir, 'nope.png')]);
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, /Cannot read the image/);
  const format = await dxflow(['analyze', txt, '--format', 'xml']);
  assert.equal(format.code, 2);
});

test('invalid configuration stops the start and names the variable', async () => {
  const res = await dxflow(['migrate'], { DXFLOW_PORT: 'eighty' });
  assert.equal(res.code, 78);
  assert.match(res.stderr, /CONFIG_INVALID/);
  assert.match(res.stderr, /DXFLOW_PORT/);
});

test('dxflow migrate applies the migrations once', async () => {
  const dir = await mkdtemp(path.join(tmpdir(), 'dxflow-cli-'));
  const first = await dxflow(['migrate'], { DXFLOW_DATA_DIR: dir });
  assert.equal(first.code, 0, first.stderr);
  assert.match(first.stdout, /applied \d+ migration/);
  const second = await dxflow(['migrate'], { DXFLOW_DATA_DIR: dir });
  assert.match(second.stdout, /up to date/);
});

test('dxflow analyze runs the image + note flow', async () => {
  const res = await dxflow(['analyze', 'samples/tissue-tumour-like.png', '--pipeline', 'image-treatment', '--note', 'samples/note-intermediate-risk.txt']);
  assert.equal(res.code, 0, res.stderr);
  const result = JSON.parse(res.stdout);
  assert.equal(result.recommendation.status, 'recommended');
  assert.equal(result.recommendation.code, 'local-therapy');
  assert.equal(result.explanations.shap[0].contributions.length, 7);
  assert.equal(result.explanations.heatmaps.length, 1);
  assert.equal(result.llm.prompt.name, 'treatment-recommendation');
  const missing = await dxflow(['analyze', 'samples/tissue-tumour-like.png', '--pipeline', 'image-treatment', '--note', 'no-such-note.txt']);
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, /Cannot read the note/);
});

test('dxflow models predict prints one JSON object per row, with SHAP by feature with --explain', async () => {
  const res = await dxflow(['models', 'predict', '--model', 'models/breast-cancer-xgb/model.json', '--input', 'models/breast-cancer-xgb/examples.csv', '--explain']);
  assert.equal(res.code, 0, res.stderr);
  const rows = res.stdout.trim().split('\n').map((l) => JSON.parse(l));
  assert.equal(rows.length, 5);
  for (const row of rows) {
    const p = Array.isArray(row.prediction) ? row.prediction[0] : row.prediction;
    assert.ok(p >= 0 && p <= 1);
    assert.ok('bias' in row.shap && 'mean_radius' in row.shap.values, JSON.stringify(row.shap).slice(0, 200));
    // SHAP values plus the bias add up to the margin, whose sigmoid is the prediction.
    const margin = row.shap.bias + Object.values(row.shap.values as Record<string, number>).reduce((a, b) => a + b, 0);
    assert.ok(Math.abs(1 / (1 + Math.exp(-margin)) - p) < 1e-5);
  }
  const usage = await dxflow(['models', 'predict', '--model', 'models/breast-cancer-xgb/model.json']);
  assert.equal(usage.code, 2);
});

test('dxflow prompts lists, creates and promotes versions', async () => {
  const dir = await mkdtemp(path.join(tmpdir(), 'dxflow-cli-'));
  const env = { DXFLOW_DATA_DIR: dir };
  const list = await dxflow(['prompts', 'list'], env);
  assert.equal(list.code, 0, list.stderr);
  assert.match(list.stdout, /treatment-recommendation/);
  const template = path.join(dir, 'v2.md');
  await writeFile(template, `${await readFile('prompts/treatment-recommendation.v1.md', 'utf8')}\nBe brief.\n`);
  const created = await dxflow(['prompts', 'create', 'treatment-recommendation', template], env);
  assert.equal(created.code, 0, created.stderr);
  assert.match(created.stdout, /2/);
  const promoted = await dxflow(['prompts', 'promote', 'treatment-recommendation', '2', 'staging'], env);
  assert.equal(promoted.code, 0, promoted.stderr);
  const after = await dxflow(['prompts', 'list'], env);
  assert.match(after.stdout, /staging/);
  const bad = await dxflow(['prompts', 'promote', 'no-such-prompt', '1'], env);
  assert.notEqual(bad.code, 0);
});
