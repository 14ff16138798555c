import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { test } from 'node:test';
import * as ort from 'onnxruntime-node';
import { AppError } from '../../src/core/errors.ts';
import { readImageHeader } from '../../src/imaging/header.ts';
import { decodeRgb } from '../../src/imaging/raster.ts';
import { sniffMediaType } from '../../src/imaging/sniff.ts';
import { camForClass, computeCam, normaliseCam } from '../../src/models/cam.ts';
import { readManifest, readVerifiedArtifact } from '../../src/models/manifest.ts';
import { toInputTensor } from '../../src/models/preprocess.ts';

// Class activation maps (Zhou et al., CVPR 2016) from a feature map and the linear head's weights.

function assertClose(actual: ArrayLike<number>, expected: ArrayLike<number>, tolerance: number, what: string): void {
  assert.equal(actual.length, expected.length, `${what}: length`);
  for (let i = 0; i < expected.length; i++) {
    const a = actual[i] as number;
    const e = expected[i] as number;
    assert.ok(Math.abs(a - e) <= tolerance, `${what}[${i}] = ${a}, expected ${e} (± ${tolerance})`);
  }
}

function thrownBy(fn: () => unknown): AppError {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof AppError, String(e));
    return e;
  }
  assert.fail('expected an AppError');
}

// Two channels of 2 × 2, row-major:  A0 = [1 2; 3 4],  A1 = [0 2; 0 4],  weights (0.5, −1).
// CAM = 0.5·A0 − A1 = [0.5 −1; 1.5 −2]; after ReLU and division by the maximum 1.5: [1/3 0; 1 0].
const tinyFeatures = Float32Array.from([1, 2, 3, 4, 0, 2, 0, 4]);

test('CAM is the weighted sum of the channels, computed by hand on 2 channels of 2 × 2', () => {
  assert.deepEqual(Array.from(computeCam(tinyFeatures, [2, 2, 2], [0.5, -1])), [0.5, -1, 1.5, -2]);
  assertClose(normaliseCam(computeCam(tinyFeatures, [2, 2, 2], [0.5, -1])), [1 / 3, 0, 1, 0], 1e-7, 'normalised');

  const cam = camForClass(tinyFeatures, [1, 2, 2, 2], { weight: [[1, 0], [0.5, -1]] }, 1);
  assert.equal(cam.height, 2);
  assert.equal(cam.width, 2);
  assert.equal(cam.rawMin, -2);
  assert.equal(cam.rawMax, 1.5);
  assertClose(cam.map, [1 / 3, 0, 1, 0], 1e-7, 'camForClass map');
  // Class 0 weighs only channel 0: its map is A0 / 4.
  assertClose(camForClass(tinyFeatures, [2, 2, 2], { weight: [[1, 0], [0.5, -1]] }, 0).map, [0.25, 0.5, 0.75, 1], 1e-7, 'class 0');
});

test('a map without positive evidence normalises to zeros, never NaN', () => {
  const zeros = camForClass(new Float32Array(8), [2, 2, 2], { weight: [[1, 1]] }, 0);
  assert.deepEqual(Array.from(zeros.map), [0, 0, 0, 0]);
  assert.equal(zeros.rawMin, 0);
  assert.equal(zeros.rawMax, 0);
  const negative = camForClass(tinyFeatures, [2, 2, 2], { weight: [[-1, -1]] }, 0);
  assert.deepEqual(Array.from(negative.map), [0, 0, 0, 0]);
  assert.equal(negative.rawMax, -1);
  assert.equal(negative.rawMin, -8);
});

test('mismatched shapes, classes and non-finite values are refused with codes', () => {
  assert.equal(thrownBy(() => computeCam(tinyFeatures, [2, 2, 2], [1, 2, 3])).code, 'MODEL_MANIFEST_INVALID');
  assert.match(thrownBy(() => computeCam(tinyFeatures, [2, 2, 3], [1, 2])).message, /holds 8 values, not 2 × 2 × 3/);
  assert.equal(thrownBy(() => computeCam(tinyFeatures, [2, 0, 4], [1, 2])).code, 'INTERNAL');
  assert.match(thrownBy(() => camForClass(tinyFeatures, [2, 2, 2], { weight: [[1, 1]] }, 1)).message, /outside the head's 1 classes/);
  assert.match(thrownBy(() => camForClass(tinyFeatures, [2, 1, 2, 2], { weight: [[1, 1]] }, 0)).message, /one feature map/);
  assert.equal(thrownBy(() => normaliseCam(Float32Array.from([0.5, Number.NaN]))).code, 'MODEL_INFERENCE_FAILED');
});

const MODEL = 'demo-tissue-classifier';

interface Head {
  weight: number[][];
  bias: number[];
  featureOutput: string;
  labels: string[];
}

/** The demo model's probabilities and feature map for one image, preprocessed as the manifest says. */
async function runDemoModel(file: string) {
  const loaded = await readManifest('models', MODEL);
  const { manifest } = loaded;
  assert.ok(manifest.kind === 'onnx');
  const head = JSON.parse(await readFile(`models/${MODEL}/head.json`, 'utf8')) as Head;
  const bytes = await readFile(file);
  const type = sniffMediaType(bytes);
  const image = await decodeRgb(bytes, type, readImageHeader(bytes, type), { maxPixels: 1e8 });
  const input = await toInputTensor(image, manifest.inputs.preprocess);
  const session = await ort.InferenceSession.create(await readVerifiedArtifact(loaded), { intraOpNumThreads: 1 });
  try {
    const outputs = await session.run({ [manifest.inputs.name]: new ort.Tensor('float32', input.data, input.dims) }, [manifest.outputs.name, head.featureOutput]);
    const probabilities = outputs[manifest.outputs.name];
    const features = outputs[head.featureOutput];
    assert.ok(probabilities && features);
    return { manifest, head, image, probabilities: Array.from(probabilities.data as Float32Array), features: features.data as Float32Array, featureDims: features.dims };
  } finally {
    await session.release();
  }
}

/** Logits from the CAMs alone: y_k = mean_ij CAM_k(i, j) + b_k, exact for GAP + linear. */
function logitsFromCams(features: Float32Array, head: Head): number[] {
  return head.weight.map((row, k) => {
    const raw = computeCam(features, [64, 12, 12], row);
    return raw.reduce((s, v) => s + v, 0) / raw.length + (head.bias[k] as number);
  });
}

test('demo model: the spatial mean of each CAM plus the bias is the logit, reproducing the graph’s probabilities', async () => {
  for (const file of ['samples/patch-96-tumour.png', 'samples/patch-96-benign.png', 'samples/patch-96-borderline.png']) {
    const { head, probabilities, features, featureDims } = await runDemoModel(file);
    assert.deepEqual(featureDims, [1, 64, 12, 12]);
    const logits = logitsFromCams(features, head);
    const top = Math.max(...logits);
    const exps = logits.map((l) => Math.exp(l - top));
    const total = exps.reduce((s, e) => s + e, 0);
    assertClose(exps.map((e) => e / total), probabilities, 1e-4, `${file}: softmax(mean CAM + bias)`);
    // Probabilities near 0 or 1 hide logit errors; the log-odds the graph implies do not.
    const [p0, p1] = probabilities as [number, number];
    assertClose([(logits[1] as number) - (logits[0] as number)], [Math.log(p1 / p0)], 1e-4, `${file}: logit difference vs log(p1/p0)`);
  }
});

test('demo model: the tumour-pattern CAM of the tumour sample is a display map bracketing the class evidence', async () => {
  const { manifest, head, probabilities, features, featureDims } = await runDemoModel('samples/patch-96-tumour.png');
  assert.deepEqual(head.labels, manifest.outputs.labels.map((l) => l.code));
  const tumour = head.labels.indexOf('tumour-pattern');
  assert.equal(tumour, 1);
  assert.ok((probabilities[tumour] as number) > 0.99, 'the tumour sample is classified as tumour-pattern');

  const cam = camForClass(features, featureDims, head, tumour);
  assert.equal(cam.height, 12);
  assert.equal(cam.width, 12);
  // The raw map's mean is the evidence part of the logit: it lies between the raw extremes.
  const mean = (logitsFromCams(features, head)[tumour] as number) - (head.bias[tumour] as number);
  assert.ok(cam.rawMin < mean && mean < cam.rawMax, `${cam.rawMin} < ${mean} < ${cam.rawMax}`);
  assert.ok(cam.rawMax > 0);
  assert.equal(Math.max(...cam.map), 1);
  assert.ok(cam.map.every((v) => v >= 0 && v <= 1));
  // Maps of the two classes are different explanations, not a rescaled copy of one another.
  const benign = camForClass(features, featureDims, head, 1 - tumour);
  assert.ok(cam.map.some((v, i) => Math.abs(v - (benign.map[i] as number)) > 0.2));
});
