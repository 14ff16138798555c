import assert from 'node:assert/strict';
import { cp, mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { AppError } from '../../src/core/errors.ts';
import { readImageHeader } from '../../src/imaging/header.ts';
import { decodeRgb } from '../../src/imaging/raster.ts';
import { sniffMediaType } from '../../src/imaging/sniff.ts';
import { readManifest } from '../../src/models/manifest.ts';
import { loadOnnxClassifier } from '../../src/models/onnx-classifier.ts';
import { toInputTensor } from '../../src/models/preprocess.ts';

const NAME = 'demo-tissue-classifier';

async function decodeFile(file: string) {
  const bytes = await readFile(file);
  const type = sniffMediaType(bytes);
  return decodeRgb(bytes, type, readImageHeader(bytes, type), { maxPixels: 1e8 });
}

test('onnxruntime + manifest preprocessing reproduce the recipe’s golden probabilities', async () => {
  const golden = JSON.parse(await readFile(`models/${NAME}/golden.json`, 'utf8')) as {
    tolerance: number; labels: string[]; cases: Array<{ input: string; probabilities: number[] }>;
  };
  const classifier = await loadOnnxClassifier(await readManifest('models', NAME), { intraOpThreads: 1 });
  try {
    assert.equal(classifier.ref.sha256.length, 64);
    for (const c of golden.cases) {
      const out = await classifier.classify(await decodeFile(c.input));
      assert.deepEqual(out.map((o) => o.code), golden.labels);
      out.forEach((o, i) => assert.ok(Math.abs(o.probability - (c.probabilities[i] as number)) < golden.tolerance, `${c.input} ${o.code}: ${o.probability} vs ${c.probabilities[i]}`));
    }
  } finally {
    await classifier.close();
  }
});

async function copyModel(): Promise<string> {
  const dir = await mkdtemp(path.join(tmpdir(), 'dxflow-models-'));
  await cp(`models/${NAME}`, path.join(dir, NAME), { recursive: true });
  return dir;
}

async function loadError(dir: string, name = NAME): Promise<AppError> {
  try {
    await loadOnnxClassifier(await readManifest(dir, name), { intraOpThreads: 1 });
  } catch (e) {
    assert.ok(e instanceof AppError, String(e));
    return e;
  }
  assert.fail('expected the model to be refused');
}

test('an artifact whose sha256 differs from the manifest is refused', async () => {
  const dir = await copyModel();
  const file = path.join(dir, NAME, 'model.onnx');
  const bytes = await readFile(file);
  bytes[bytes.length - 10] = (bytes[bytes.length - 10] as number) ^ 0xff;
  await writeFile(file, bytes);
  const err = await loadError(dir);
  assert.equal(err.code, 'MODEL_CHECKSUM_MISMATCH');
  assert.match(err.message, /manifest says 6c6a|manifest says [0-9a-f]{4}/);
});

test('missing and invalid manifests get their own codes', async () => {
  assert.equal((await loadError('models', 'no-such-model')).code, 'MODEL_NOT_FOUND');
  assert.equal((await loadError('models', '../etc')).code, 'MODEL_NOT_FOUND');
  const dir = await copyModel();
  const manifestFile = path.join(dir, NAME, 'manifest.yaml');
  const original = await readFile(manifestFile, 'utf8');

  await writeFile(manifestFile, original.replace('layout: nchw', 'layout: chwn'));
  const bad = await loadError(dir);
  assert.equal(bad.code, 'MODEL_MANIFEST_INVALID');
  assert.match(bad.message, /inputs\.preprocess\.layout/);

  await writeFile(manifestFile, original.replace('  name: image', '  name: pixels'));
  const wrongInput = await loadError(dir);
  assert.equal(wrongInput.code, 'MODEL_MANIFEST_INVALID');
  assert.match(wrongInput.message, /input "pixels" is not in the model \(it has image\)/);

  await writeFile(manifestFile, original.replace('artifact: model.onnx', 'artifact: ../../escape.onnx'));
  assert.match((await loadError(dir)).message, /artifact must be a file inside/);
});

test('preprocessing follows the manifest: scale, mean/std, channel order and layout', async () => {
  // A 2×1 image: one red pixel, one blue pixel.
  const image = { data: Buffer.from([255, 0, 0, 0, 0, 255]), width: 2, height: 1 };
  const base = { resize: { width: 2, height: 1, fit: 'fill' as const }, scale: 255, mean: [0.5, 0, 0], std: [0.5, 1, 1] };
  const nchw = await toInputTensor(image, { ...base, colour: 'rgb', layout: 'nchw' });
  assert.deepEqual(nchw.dims, [1, 3, 1, 2]);
  assert.deepEqual(Array.from(nchw.data), [1, -1, 0, 0, 0, 1]);
  const nhwc = await toInputTensor(image, { ...base, colour: 'rgb', layout: 'nhwc' });
  assert.deepEqual(nhwc.dims, [1, 1, 2, 3]);
  assert.deepEqual(Array.from(nhwc.data), [1, 0, 0, -1, 0, 1]);
  const bgr = await toInputTensor(image, { ...base, colour: 'bgr', layout: 'nchw' });
  // Channel 0 is now blue, normalised with mean[0]/std[0].
  assert.deepEqual(Array.from(bgr.data), [-1, 1, 0, 0, 1, 0]);
});

test('classifyBatch agrees with classify image by image, and runs off the event loop', async () => {
  const classifier = await loadOnnxClassifier(await readManifest('models', NAME), { intraOpThreads: 1 });
  try {
    const images = await Promise.all(['samples/patch-96-benign.png', 'samples/patch-96-tumour.png', 'samples/patch-96-borderline.png'].map(decodeFile));
    const { probabilities } = await classifier.classifyBatch(images);
    for (const [i, image] of images.entries()) {
      const one = await classifier.classify(image);
      one.forEach((c, j) => assert.ok(Math.abs(c.probability - (probabilities[i * one.length + j] as number)) < 1e-5));
    }
    // A large batch keeps the model busy for a while; timers must keep firing meanwhile.
    const many = Array.from({ length: 2048 }, (_, i) => images[i % images.length] as (typeof images)[number]);
    let ticks = 0;
    const timer = setInterval(() => { ticks++; }, 5);
    const t0 = performance.now();
    await classifier.classifyBatch(many);
    const ms = performance.now() - t0;
    clearInterval(timer);
    assert.ok(ms < 50 || ticks >= ms / 5 / 4, `only ${ticks} timer ticks during a ${Math.round(ms)} ms batch: inference held the event loop`);
  } finally {
    await classifier.close();
  }
});
