import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import * as ort from 'onnxruntime-node';
import sharp from 'sharp';
import { AppError } from '../../src/core/errors.ts';
import { camForClass, computeCam, gradCamMap, gradCamStep, gradCamWeights, normaliseCam } from '../../src/models/cam.ts';
import { readManifest, readVerifiedArtifact } from '../../src/models/manifest.ts';
import { toInputTensor } from '../../src/models/preprocess.ts';

// Grad-CAM (Selvaraju et al., ICCV 2017) by central differences through onnxruntime, against the exact
// relation for a linear head and against torch autograd for non-linear heads. The heads, the feature
// map and the autograd references come from
// models/demo-tissue-classifier/recipe/export_cam_head_fixtures.py (test/fixtures/cam/).

const FIXTURES = join(import.meta.dirname, '..', 'fixtures', 'cam');
const DIMS = [64, 12, 12] as const;
const CELLS = DIMS[1] * DIMS[2];

interface ClassReference {
  classIndex: number;
  logit: number;
  weights: number[];
  map: number[];
}
interface HeadFixture {
  name: 'linear' | 'mlp' | 'tanh';
  file: string;
  input: string;
  output: string;
  classes: ClassReference[];
  reluKinkMargin?: number;
  /** The same head exported with a fixed batch size of 3. */
  fixedBatchFile?: string;
}
interface Expected {
  features: { file: string; dims: number[]; sha256: string };
  heads: HeadFixture[];
}
interface HeadJson {
  weight: number[][];
  bias: number[];
}

let expected: Expected;
let features: Float32Array;
let demoHead: HeadJson;
const sessions = new Map<string, ort.InferenceSession>();

before(async () => {
  expected = JSON.parse(await readFile(join(FIXTURES, 'expected.json'), 'utf8')) as Expected;
  const bytes = await readFile(join(FIXTURES, expected.features.file));
  assert.equal(createHash('sha256').update(bytes).digest('hex'), expected.features.sha256, 'features.f32 is not the file expected.json was computed from; rerun the recipe');
  // Little-endian float32 as the recipe writes it, read explicitly so the host's byte order does not matter.
  features = Float32Array.from({ length: bytes.length / 4 }, (_, i) => bytes.readFloatLE(i * 4));
  assert.deepEqual(expected.features.dims, [1, ...DIMS]);
  demoHead = JSON.parse(await readFile('models/demo-tissue-classifier/head.json', 'utf8')) as HeadJson;
  for (const head of expected.heads) {
    sessions.set(head.name, await ort.InferenceSession.create(join(FIXTURES, head.file), { intraOpNumThreads: 1 }));
  }
});

after(async () => {
  for (const session of sessions.values()) await session.release();
});

function fixture(name: HeadFixture['name']): { head: HeadFixture; session: ort.InferenceSession } {
  const head = expected.heads.find((h) => h.name === name);
  const session = sessions.get(name);
  assert.ok(head && session, `fixture head ${name}`);
  return { head, session };
}

/** Largest absolute difference relative to the largest reference magnitude (norm-wise, so near-zero weights do not dominate). */
function relativeError(actual: ArrayLike<number>, reference: ArrayLike<number>): number {
  assert.equal(actual.length, reference.length);
  let worst = 0;
  let scale = 0;
  for (let i = 0; i < reference.length; i++) {
    worst = Math.max(worst, Math.abs((actual[i] as number) - (reference[i] as number)));
    scale = Math.max(scale, Math.abs(reference[i] as number));
  }
  return worst / scale;
}

function maxAbsDifference(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let worst = 0;
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs((a[i] as number) - (b[i] as number)));
  return worst;
}

async function logits(session: ort.InferenceSession, head: HeadFixture, map: Float32Array): Promise<Float32Array> {
  const out = await session.run({ [head.input]: new ort.Tensor('float32', map, [1, ...DIMS]) }, [head.output]);
  return out[head.output]?.data as Float32Array;
}

test('the fixture heads run in onnxruntime and give the logits torch computed', async () => {
  for (const head of expected.heads) {
    const got = await logits(fixture(head.name).session, head, features);
    // float32 inference against the float64 reference: a few float32 roundings of logits of order 1.
    head.classes.forEach((c) => assert.ok(Math.abs((got[c.classIndex] as number) - c.logit) < 1e-5, `${head.name} logit ${c.classIndex}: ${got[c.classIndex]} vs ${c.logit}`));
  }
});

test('linear head (GAP + the demo model’s own layer): Grad-CAM weights are w_k,c / HW, and the map is the CAM', async () => {
  const { head, session } = fixture('linear');
  // Both on the synthetic map and on the demo model's real feature map of the tumour sample.
  const demoFeatures = await demoFeatureMap('samples/patch-96-tumour.png');
  for (const [what, map] of [['synthetic map', features], ['tumour sample', demoFeatures]] as const) {
    for (const k of [0, 1]) {
      const alpha = await gradCamWeights(session, head.input, head.output, map, DIMS, k);
      // ∂y_k/∂A_c,ij = w_k,c / HW for y_k = Σ_c w_k,c · mean_ij A_c,ij + b_k, so α_c = w_k,c / HW.
      const exact = (demoHead.weight[k] as number[]).map((w) => w / CELLS);
      // Measured 1e-5 (see gradCamStep); 1e-4 leaves a factor 10 for other CPUs' float32 kernels.
      const error = relativeError(alpha, exact);
      assert.ok(error < 1e-4, `${what}, class ${k}: relative error ${error}`);
      // Grad-CAM = CAM / HW, which normalisation removes: the same picture.
      const cam = camForClass(map, DIMS, demoHead, k).map;
      assert.ok(maxAbsDifference(gradCamMap(map, DIMS, alpha), cam) < 1e-4, `${what}, class ${k}: Grad-CAM map differs from CAM`);
    }
  }
  // The fixture's autograd reference agrees with the closed form (the recipe exported the right layer).
  for (const c of head.classes) {
    const stale = relativeError(c.weights, (demoHead.weight[c.classIndex] as number[]).map((w) => w / CELLS));
    assert.ok(stale < 1e-6, `head-linear.onnx was exported from another head.json (${stale}); rerun export_cam_head_fixtures.py`);
  }
});

test('ReLU MLP head: Grad-CAM weights and maps match torch autograd', async () => {
  const { head, session } = fixture('mlp');
  // Central differences are exact on one linear piece of a ReLU head: the default step must stay
  // inside the smallest pooled shift that switches a hidden unit (computed by the recipe).
  const step = gradCamStep(features);
  assert.ok(head.reluKinkMargin !== undefined && step < head.reluKinkMargin / 10, `step ${step} vs kink margin ${head.reluKinkMargin}`);
  for (const c of head.classes) {
    const alpha = await gradCamWeights(session, head.input, head.output, features, DIMS, c.classIndex);
    const error = relativeError(alpha, c.weights);
    // Only float32 rounding is left (measured 2.6e-5); 2e-4 is 8 times that and 20 times below 1/255.
    assert.ok(error < 2e-4, `class ${c.classIndex}: relative error ${error}`);
    const mapError = maxAbsDifference(gradCamMap(features, DIMS, alpha), c.map);
    assert.ok(mapError < 1e-3, `class ${c.classIndex}: map differs by ${mapError}`);
  }
  // The head is really non-linear: its weights depend on where they are taken (another feature map
  // switches other hidden units), which no single linear layer, and so no CAM, can reproduce.
  const elsewhere = await gradCamWeights(session, head.input, head.output, new Float32Array(features.length), DIMS, 1);
  const here = await gradCamWeights(session, head.input, head.output, features, DIMS, 1);
  assert.ok(relativeError(elsewhere, here) > 0.1, `weights at the zero map differ by only ${relativeError(elsewhere, here)}`);
});

test('tanh MLP head (smooth): Grad-CAM weights and maps match torch autograd', async () => {
  const { head, session } = fixture('tanh');
  for (const c of head.classes) {
    const alpha = await gradCamWeights(session, head.input, head.output, features, DIMS, c.classIndex);
    const error = relativeError(alpha, c.weights);
    // Measured 4.8e-5 at the default step (rounding-dominated; truncation is ~1e-7 there).
    assert.ok(error < 2e-4, `class ${c.classIndex}: relative error ${error}`);
    assert.ok(maxAbsDifference(gradCamMap(features, DIMS, alpha), c.map) < 1e-3);
  }
});

test('a step past the nearest ReLU kink blurs the gradient: why the step is small', async () => {
  const { head, session } = fixture('mlp');
  const margin = head.reluKinkMargin ?? 0;
  const errors = [];
  for (const c of head.classes) {
    const alpha = await gradCamWeights(session, head.input, head.output, features, DIMS, c.classIndex, { step: 2 * margin });
    errors.push(relativeError(alpha, c.weights));
  }
  assert.ok(Math.max(...errors) > 1e-3, `errors ${errors.join(', ')} with a step of twice the kink margin`);
});

test('splitting the shifted copies into several batches gives the same weights', async () => {
  const { head, session } = fixture('mlp');
  const whole = await gradCamWeights(session, head.input, head.output, features, DIMS, 1);
  // 5 copies per batch: 26 runs, the last one partial.
  const split = await gradCamWeights(session, head.input, head.output, features, DIMS, 1, { maxBatchBytes: 5 * DIMS[0] * CELLS * 4 });
  assert.ok(relativeError(split, whole) < 1e-6, `split batches differ by ${relativeError(split, whole)}`);
});

test('a head with a fixed batch size of 3 gets padded batches and the same weights', async () => {
  const { head, session } = fixture('mlp');
  assert.ok(head.fixedBatchFile);
  const fixed = await ort.InferenceSession.create(join(FIXTURES, head.fixedBatchFile), { intraOpNumThreads: 1 });
  try {
    const [input] = fixed.inputMetadata;
    assert.ok(input?.isTensor);
    assert.equal(input.shape[0], 3, 'the fixture must fix the batch axis');
    for (const c of head.classes) {
      const alpha = await gradCamWeights(fixed, head.input, head.output, features, DIMS, c.classIndex);
      const dynamic = await gradCamWeights(session, head.input, head.output, features, DIMS, c.classIndex);
      assert.ok(relativeError(alpha, dynamic) < 1e-6, `class ${c.classIndex}: fixed batch differs by ${relativeError(alpha, dynamic)}`);
      assert.ok(relativeError(alpha, c.weights) < 2e-4);
    }
  } finally {
    await fixed.release();
  }
});

test('Grad-CAM refuses heads and arguments that do not fit, with codes', async () => {
  const { head, session } = fixture('mlp');
  const code = async (fn: () => Promise<unknown>) => {
    try {
      await fn();
    } catch (e) {
      assert.ok(e instanceof AppError, String(e));
      return `${e.code}: ${e.message}`;
    }
    assert.fail('expected an AppError');
  };
  assert.match(await code(() => gradCamWeights(session, head.input, 'scores', features, DIMS, 0)), /^MODEL_MANIFEST_INVALID: .*no output "scores" \(it has logits\)/);
  assert.match(await code(() => gradCamWeights(session, 'image', head.output, features, DIMS, 0)), /^MODEL_MANIFEST_INVALID: .*no input "image" \(it has features\)/);
  assert.match(await code(() => gradCamWeights(session, head.input, head.output, features, DIMS, 2)), /^INTERNAL: Class index 2 is outside the head's 2 classes/);
  assert.match(await code(() => gradCamWeights(session, head.input, head.output, features, [32, 12, 12], 0)), /^INTERNAL: .*holds 9216 values, not 32 × 12 × 12/);
  // A head that expects another feature map shape fails in onnxruntime; the message says where.
  const small = features.subarray(0, 32 * CELLS);
  assert.match(await code(() => gradCamWeights(session, head.input, head.output, small, [32, 12, 12], 0)), /^MODEL_INFERENCE_FAILED: The Grad-CAM head could not run/);
});

test('an all-zero feature map gives finite weights and an all-zero map', async () => {
  const { head, session } = fixture('mlp');
  const zeros = new Float32Array(DIMS[0] * CELLS);
  assert.equal(gradCamStep(zeros), 2 ** -6);
  const alpha = await gradCamWeights(session, head.input, head.output, zeros, DIMS, 0);
  assert.ok(alpha.every(Number.isFinite));
  assert.deepEqual(Array.from(gradCamMap(zeros, DIMS, alpha)), Array.from(normaliseCam(computeCam(zeros, DIMS, alpha))));
  assert.ok(gradCamMap(zeros, DIMS, alpha).every((v) => v === 0));
});

/** The demo model's `features` output for one image, preprocessed as its manifest says. */
async function demoFeatureMap(file: string): Promise<Float32Array> {
  const loaded = await readManifest('models', 'demo-tissue-classifier');
  const { manifest } = loaded;
  assert.ok(manifest.kind === 'onnx');
  const { data, info } = await sharp(file).removeAlpha().raw().toBuffer({ resolveWithObject: true });
  const input = await toInputTensor({ data, width: info.width, height: info.height }, manifest.inputs.preprocess);
  const session = await ort.InferenceSession.create(await readVerifiedArtifact(loaded), { intraOpNumThreads: 1 });
  try {
    const out = await session.run({ [manifest.inputs.name]: new ort.Tensor('float32', input.data, input.dims) }, ['features']);
    return out['features']?.data as Float32Array;
  } finally {
    await session.release();
  }
}
