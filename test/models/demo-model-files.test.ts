import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import * as ort from 'onnxruntime-node';
import sharp from 'sharp';
import { parse } from 'yaml';
import { OnnxManifest } from '../../src/core/manifest.ts';

// The shipped demo classifier (models/demo-tissue-classifier) must be internally consistent: the
// manifest validates and names the exact artifact bytes, the graph has the declared inputs and
// outputs, the reference outputs written by the training recipe reproduce under onnxruntime-node,
// and the CAM head matches the graph.

const repoRoot = join(import.meta.dirname, '..', '..');
const modelDir = join(repoRoot, 'models', 'demo-tissue-classifier');

type Preprocess = OnnxManifest['inputs']['preprocess'];

interface GoldenCase {
  input: string;
  probabilities: number[];
  featuresShape: number[];
  featuresMean: number;
}
interface Golden {
  sha256: string;
  labels: string[];
  tolerance: number;
  cases: GoldenCase[];
}
interface Head {
  weight: number[][];
  bias: number[];
  featureOutput: string;
}

async function readJson<T>(name: string): Promise<T> {
  return JSON.parse(await readFile(join(modelDir, name), 'utf8')) as T;
}

async function loadManifest(): Promise<OnnxManifest> {
  return OnnxManifest.parse(parse(await readFile(join(modelDir, 'manifest.yaml'), 'utf8')));
}

/** Decodes an image file, resizes it as the manifest says and lays it out as one float32 NCHW sample. */
async function imageTensorData(path: string, preprocess: Preprocess): Promise<Float32Array> {
  const { width, height, fit } = preprocess.resize;
  const { data, info } = await sharp(path).removeAlpha().resize(width, height, { fit }).raw().toBuffer({ resolveWithObject: true });
  assert.equal(info.channels, 3);
  const plane = width * height;
  const out = new Float32Array(3 * plane);
  for (let c = 0; c < 3; c++) {
    const mean = preprocess.mean[c] ?? 0;
    const std = preprocess.std[c] ?? 1;
    for (let i = 0; i < plane; i++) {
      out[c * plane + i] = ((data[i * 3 + c] ?? 0) / preprocess.scale - mean) / std;
    }
  }
  return out;
}

async function batchTensor(paths: string[], preprocess: Preprocess): Promise<ort.Tensor> {
  const { width, height } = preprocess.resize;
  const samples = await Promise.all(paths.map((p) => imageTensorData(p, preprocess)));
  const data = new Float32Array(samples.length * 3 * width * height);
  samples.forEach((s, i) => data.set(s, i * s.length));
  return new ort.Tensor('float32', data, [samples.length, 3, height, width]);
}

function float32Data(tensor: ort.Tensor | undefined, name: string): Float32Array {
  assert.ok(tensor, `the model returned no ${name} output`);
  assert.equal(tensor.type, 'float32');
  return tensor.data as Float32Array;
}

test('manifest.yaml validates and its sha256 is the sha256 of model.onnx', async () => {
  const manifest = await loadManifest();
  assert.equal(manifest.name, 'demo-tissue-classifier');
  assert.equal(manifest.kind, 'onnx');
  const artifact = await readFile(join(modelDir, manifest.artifact));
  assert.equal(createHash('sha256').update(artifact).digest('hex'), manifest.sha256);
  assert.ok(artifact.length < 1_000_000, `model.onnx is ${artifact.length} bytes; the demo artifact must stay under 1 MB`);
  assert.deepEqual(manifest.outputs.labels.map((l) => l.code), ['benign-pattern', 'tumour-pattern']);
  assert.equal(manifest.outputs.activation, 'none', 'softmax is inside the graph; applying it again would flatten the probabilities');
  assert.ok(manifest.card);
  await stat(join(modelDir, manifest.card));
});

test('manifest metrics are the numbers the recipe measured', async () => {
  const manifest = await loadManifest();
  const measured = await readJson<Record<string, number>>('metrics.json');
  for (const key of ['accuracy', 'auc', 'testImages']) {
    assert.equal(manifest.metrics[key], measured[key], `metrics.${key}`);
  }
  const card = await readFile(join(modelDir, 'MODEL_CARD.md'), 'utf8');
  assert.match(card, new RegExp(`\\| accuracy \\(argmax\\) \\| ${(measured.accuracy ?? NaN).toFixed(4)} \\|`));
  assert.match(card, new RegExp(`\\| ROC AUC \\(p\\(tumour-pattern\\)\\) \\| ${(measured.auc ?? NaN).toFixed(4)} \\|`));
});

test('onnxruntime-node loads the model with the input and outputs the manifest names', async () => {
  const manifest = await loadManifest();
  const session = await ort.InferenceSession.create(join(modelDir, manifest.artifact));
  try {
    assert.deepEqual(session.inputNames, [manifest.inputs.name]);
    assert.ok(manifest.outputs.featureMap);
    assert.deepEqual([...session.outputNames].sort(), [manifest.outputs.name, manifest.outputs.featureMap].sort());
    const [input] = session.inputMetadata;
    assert.ok(input?.isTensor);
    assert.equal(input.type, 'float32');
    const { width, height } = manifest.inputs.preprocess.resize;
    assert.equal(typeof input.shape[0], 'string', 'the batch axis must be dynamic');
    assert.deepEqual(input.shape.slice(1), [3, height, width]);
  } finally {
    await session.release();
  }
});

test('golden patches reproduce the recipe probabilities, batched, and head.json reproduces them from the feature map', async () => {
  const manifest = await loadManifest();
  const golden = await readJson<Golden>('golden.json');
  const head = await readJson<Head>('head.json');
  assert.equal(golden.sha256, manifest.sha256, 'golden.json was written for another model.onnx; rerun the recipe');
  assert.deepEqual(golden.labels, manifest.outputs.labels.map((l) => l.code));
  assert.equal(golden.cases.length, 3);
  assert.equal(head.featureOutput, manifest.outputs.featureMap);

  const session = await ort.InferenceSession.create(join(modelDir, manifest.artifact));
  try {
    const input = await batchTensor(golden.cases.map((c) => join(repoRoot, c.input)), manifest.inputs.preprocess);
    const outputs = await session.run({ [manifest.inputs.name]: input });
    const probabilities = float32Data(outputs[manifest.outputs.name], manifest.outputs.name);
    const features = float32Data(outputs[head.featureOutput], head.featureOutput);
    const featureDims = outputs[head.featureOutput]?.dims ?? [];
    const [, channels = 0, fh = 0, fw = 0] = featureDims;
    const labels = golden.labels.length;
    const perSample = channels * fh * fw;
    assert.equal(head.weight.length, labels);
    assert.ok(head.weight.every((row) => row.length === channels));

    golden.cases.forEach((c, n) => {
      assert.deepEqual([1, ...featureDims.slice(1)], c.featuresShape, `${c.input} feature map shape`);
      const got = Array.from(probabilities.subarray(n * labels, (n + 1) * labels));
      got.forEach((p, k) => {
        assert.ok(Math.abs(p - (c.probabilities[k] ?? NaN)) <= golden.tolerance, `${c.input}: p[${k}] = ${p}, expected ${c.probabilities[k]}`);
      });

      const map = features.subarray(n * perSample, (n + 1) * perSample);
      const mean = map.reduce((s, v) => s + v, 0) / perSample;
      assert.ok(Math.abs(mean - c.featuresMean) <= golden.tolerance, `${c.input}: feature mean ${mean}, expected ${c.featuresMean}`);

      // Global average pooling then the linear head must give the graph's own probabilities, which
      // is what makes class activation maps from head.json faithful to the model.
      const pooled = Array.from({ length: channels }, (_, ch) => {
        let s = 0;
        for (let i = 0; i < fh * fw; i++) s += map[ch * fh * fw + i] ?? 0;
        return s / (fh * fw);
      });
      const logits = head.weight.map((row, k) => row.reduce((s, w, ch) => s + w * (pooled[ch] ?? 0), head.bias[k] ?? 0));
      const top = Math.max(...logits);
      const exps = logits.map((l) => Math.exp(l - top));
      const total = exps.reduce((s, e) => s + e, 0);
      exps.forEach((e, k) => {
        assert.ok(Math.abs(e / total - (got[k] ?? NaN)) <= 1e-4, `${c.input}: head.json gives p[${k}] = ${e / total}, graph gives ${got[k]}`);
      });
    });
  } finally {
    await session.release();
  }
});

test('512x512 samples, resized by sharp as the manifest says, get their class with p > 0.9', async () => {
  const manifest = await loadManifest();
  const codes = manifest.outputs.labels.map((l) => l.code);
  const samples: [string, string][] = [
    ['tissue-tumour-like.png', 'tumour-pattern'],
    ['tissue-tumour-like.jpg', 'tumour-pattern'],
    ['tissue-benign-like.png', 'benign-pattern'],
  ];
  const session = await ort.InferenceSession.create(join(modelDir, manifest.artifact));
  try {
    for (const [file, expected] of samples) {
      const path = join(repoRoot, 'samples', file);
      const meta = await sharp(path).metadata();
      assert.deepEqual([meta.width, meta.height], [512, 512], file);
      assert.ok((await stat(path)).size < 300_000, `${file} must stay under 300 KB`);
      const outputs = await session.run({ [manifest.inputs.name]: await batchTensor([path], manifest.inputs.preprocess) });
      const p = float32Data(outputs[manifest.outputs.name], manifest.outputs.name);
      const probability = p[codes.indexOf(expected)] ?? NaN;
      assert.ok(probability > 0.9, `${file}: p(${expected}) = ${probability}`);
    }
  } finally {
    await session.release();
  }
});
