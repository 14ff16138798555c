import assert from 'node:assert/strict';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { validateFhirResource } from '../support/fhir-validator.ts';
import { dxflow } from './process.ts';

test('dxflow --help lists every command, and every command has --help', async () => {
  const main = await dxflow(['--help']);
  assert.equal(main.code, 0);
  for (const c of ['serve', 'migrate', 'analyze', 'pipelines']) {
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
