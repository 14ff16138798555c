import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { cp, mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import * as ort from 'onnxruntime-node';
import sharp from 'sharp';
import { parse } from 'yaml';
import { AppError } from '../../src/core/errors.ts';
import { OnnxManifest } from '../../src/core/manifest.ts';
import { readImageHeader } from '../../src/imaging/header.ts';
import { decodeRgb } from '../../src/imaging/raster.ts';
import { sniffMediaType } from '../../src/imaging/sniff.ts';
import {
  type Box, type Candidate, createDetectorCatalog, decodeYolo, iou, letterbox, letterboxGeometry, loadOnnxDetector, nonMaxSuppression, toImageBox,
} from '../../src/models/detector.ts';
import { readManifest } from '../../src/models/manifest.ts';
import type { RgbImage } from '../../src/models/preprocess.ts';

const NAME = 'demo-lesion-detector';
const modelDir = path.join('models', NAME);

const cand = (classIndex: number, score: number, x0: number, y0: number, x1: number, y1: number): Candidate => ({ classIndex, score, x0, y0, x1, y1 });

function boxIou(a: Box, b: Box): number {
  return iou(cand(0, 1, a.x, a.y, a.x + a.width, a.y + a.height), cand(0, 1, b.x, b.y, b.x + b.width, b.y + b.height));
}

async function decodeFile(file: string): Promise<RgbImage> {
  const bytes = await readFile(file);
  const type = sniffMediaType(bytes);
  return decodeRgb(bytes, type, readImageHeader(bytes, type), { maxPixels: 1e8 });
}

// ---------------------------------------------------------------------------------------------
// Post-processing

test('iou of corner boxes', () => {
  assert.equal(iou(cand(0, 1, 0, 0, 10, 10), cand(0, 1, 0, 0, 10, 10)), 1);
  assert.equal(iou(cand(0, 1, 0, 0, 10, 10), cand(0, 1, 10, 0, 20, 10)), 0, 'touching edges do not overlap');
  assert.equal(iou(cand(0, 1, 0, 0, 10, 10), cand(0, 1, 5, 0, 15, 10)), 50 / 150);
  assert.equal(iou(cand(0, 1, 0, 0, 10, 10), cand(0, 1, 2, 2, 4, 4)), 4 / 100);
});

test('NMS keeps the best of overlapping boxes of one label and every separate box', () => {
  const kept = nonMaxSuppression([
    cand(0, 0.6, 1, 1, 11, 11), // overlaps the best by 81/119 = 0.68
    cand(0, 0.9, 0, 0, 10, 10),
    cand(0, 0.7, 50, 50, 60, 60), // elsewhere
    cand(0, 0.5, 5, 0, 15, 10), // overlaps the best by 1/3: kept at 0.45
  ], { iouThreshold: 0.45, maxDetections: 10 });
  assert.deepEqual(kept.map((k) => k.score), [0.9, 0.7, 0.5]);
  const strict = nonMaxSuppression([cand(0, 0.9, 0, 0, 10, 10), cand(0, 0.5, 5, 0, 15, 10)], { iouThreshold: 0.3, maxDetections: 10 });
  assert.deepEqual(strict.map((k) => k.score), [0.9], 'IoU 1/3 is above a 0.3 threshold');
});

test('NMS is class-aware: an overlapping box of another label survives unless classAware is off', () => {
  const boxes = [cand(0, 0.9, 0, 0, 10, 10), cand(1, 0.8, 0, 0, 10, 10), cand(0, 0.7, 0, 1, 10, 11), cand(1, 0.6, 1, 0, 11, 10)];
  const kept = nonMaxSuppression(boxes, { iouThreshold: 0.45, maxDetections: 10 });
  assert.deepEqual(kept.map((k) => [k.classIndex, k.score]), [[0, 0.9], [1, 0.8]]);
  const agnostic = nonMaxSuppression(boxes, { iouThreshold: 0.45, maxDetections: 10, classAware: false });
  assert.deepEqual(agnostic.map((k) => [k.classIndex, k.score]), [[0, 0.9]]);
});

test('NMS stops at maxDetections, best first, and keeps input order on ties', () => {
  const many = Array.from({ length: 20 }, (_, i) => cand(0, i === 7 ? 0.99 : 0.5, i * 20, 0, i * 20 + 10, 10));
  const kept = nonMaxSuppression(many, { iouThreshold: 0.45, maxDetections: 3 });
  assert.deepEqual(kept.map((k) => k.x0), [140, 0, 20]);
  assert.deepEqual(nonMaxSuppression([], { iouThreshold: 0.45, maxDetections: 3 }), []);
});

/** A YOLO output of `rows` (cx, cy, w, h, objectness, scores...) in the rows or columns layout. */
function yoloTensor(rows: number[][], layout: 'rows' | 'columns'): { data: Float32Array; dims: number[] } {
  const width = rows[0]?.length ?? 0;
  const data = new Float32Array(rows.length * width);
  rows.forEach((row, r) => row.forEach((v, j) => {
    data[layout === 'rows' ? r * width + j : j * rows.length + r] = v;
  }));
  return { data, dims: layout === 'rows' ? [1, rows.length, width] : [1, width, rows.length] };
}

const ROWS = [
  [100, 50, 20, 10, 0.9, 0.8, 0.1], // score 0.72, class 0
  [30, 30, 10, 10, 0.5, 0.2, 0.9], // score 0.45, class 1
  [60, 60, 10, 10, 0.95, 0.2, 0.3], // score 0.285: below 0.3
  [10, 10, 10, 10, 0.2, 1.0, 1.0], // objectness alone is below 0.3
  [20, 20, 0, 10, 0.99, 0.99, 0.0], // no area
];

test('YOLO rows decode the same in both layouts; the score is objectness × best class score', () => {
  const options = { classes: 2, boxes: 'pixels' as const, activation: 'none' as const, inputWidth: 256, inputHeight: 256, scoreThreshold: 0.3 };
  for (const layout of ['rows', 'columns'] as const) {
    const { data, dims } = yoloTensor(ROWS, layout);
    const out = decodeYolo(data, dims, options);
    assert.equal(out.length, 2, layout);
    assert.deepEqual(out[0], { classIndex: 0, score: out[0]?.score, x0: 90, y0: 45, x1: 110, y1: 55 });
    assert.ok(Math.abs((out[0]?.score ?? 0) - 0.72) < 1e-6);
    assert.equal(out[1]?.classIndex, 1);
    assert.ok(Math.abs((out[1]?.score ?? 0) - 0.45) < 1e-6);
    // The explicit layout agrees with the inferred one.
    assert.deepEqual(decodeYolo(data, dims, { ...options, layout }), out);
  }
  const { data, dims } = yoloTensor(ROWS, 'rows');
  assert.equal(decodeYolo(data, dims, { ...options, scoreThreshold: 0.25 }).length, 3, 'a lower threshold lets the 0.285 row through');
  assert.equal(decodeYolo(data, dims, { ...options, scoreThreshold: 0.8 }).length, 0);
});

test('normalized boxes are scaled to the input; sigmoid scores are activated', () => {
  const { data, dims } = yoloTensor([[0.5, 0.25, 0.1, 0.2, 2, 3, -3]], 'rows');
  const [c] = decodeYolo(data, dims, { classes: 2, boxes: 'normalized', activation: 'sigmoid', inputWidth: 200, inputHeight: 100, scoreThreshold: 0.5 });
  assert.ok(c);
  assert.deepEqual([c.x0, c.y0, c.x1, c.y1].map((v) => Math.round(v * 1000) / 1000), [90, 15, 110, 35]);
  const sig = (x: number) => 1 / (1 + Math.exp(-x));
  assert.ok(Math.abs(c.score - sig(2) * sig(3)) < 1e-6);
});

test('an output whose shape does not fit the labels, or logits declared as probabilities, are refused', () => {
  const { data, dims } = yoloTensor(ROWS, 'rows');
  const options = { classes: 3, boxes: 'pixels' as const, activation: 'none' as const, inputWidth: 256, inputHeight: 256, scoreThreshold: 0.3 };
  assert.throws(() => decodeYolo(data, dims, options), (e: unknown) => e instanceof AppError && e.code === 'MODEL_INFERENCE_FAILED' && /detection\.labels/.test(e.message));
  assert.throws(() => decodeYolo(data, [1, 35], options), /3 dimensions/);
  const logits = yoloTensor([[10, 10, 5, 5, 4, 3, -2]], 'rows');
  assert.throws(() => decodeYolo(logits.data, logits.dims, { ...options, classes: 2 }), /set outputs\.activation to "sigmoid"/);
});

// ---------------------------------------------------------------------------------------------
// Letterbox

test('letterbox geometry: aspect kept and centred (contain), or stretched (fill)', () => {
  const resize = { width: 256, height: 256, fit: 'contain' as const };
  assert.deepEqual(letterboxGeometry(640, 480, resize), { scaleX: 0.4, scaleY: 0.4, left: 0, top: 32, width: 256, height: 192 });
  assert.deepEqual(letterboxGeometry(480, 640, resize), { scaleX: 0.4, scaleY: 0.4, left: 32, top: 0, width: 192, height: 256 });
  const odd = letterboxGeometry(1000, 333, resize);
  assert.deepEqual([odd.width, odd.height, odd.left, odd.top], [256, 85, 0, 85]);
  assert.deepEqual(letterboxGeometry(512, 128, { width: 256, height: 256, fit: 'fill' }), { scaleX: 0.5, scaleY: 2, left: 0, top: 0, width: 256, height: 256 });
});

test('letterbox pads with the pad colour around the resized image, and boxes map back to the image', async () => {
  const image: RgbImage = { data: Buffer.alloc(40 * 20 * 3, 200), width: 40, height: 20 };
  const { image: input, geometry } = await letterbox(image, { width: 16, height: 16, fit: 'contain' }, [1, 2, 3]);
  assert.deepEqual([input.width, input.height, geometry.top, geometry.height], [16, 16, 4, 8]);
  const px = (x: number, y: number) => [...input.data.subarray((y * 16 + x) * 3, (y * 16 + x) * 3 + 3)];
  assert.deepEqual(px(0, 0), [1, 2, 3]);
  assert.deepEqual(px(15, 3), [1, 2, 3]);
  assert.deepEqual(px(8, 4), [200, 200, 200]);
  assert.deepEqual(px(8, 11), [200, 200, 200]);
  assert.deepEqual(px(8, 12), [1, 2, 3]);

  // Input (4, 6)-(8, 10) is image (10, 5)-(20, 15); a box reaching into the border is clipped; one wholly in it is dropped.
  assert.deepEqual(toImageBox(cand(0, 1, 4, 6, 8, 10), geometry, 40, 20), { x: 10, y: 5, width: 10, height: 10 });
  assert.deepEqual(toImageBox(cand(0, 1, -2, 2, 4, 6), geometry, 40, 20), { x: 0, y: 0, width: 10, height: 5 });
  assert.equal(toImageBox(cand(0, 1, 2, 0, 6, 3), geometry, 40, 20), undefined);
});

// ---------------------------------------------------------------------------------------------
// The shipped demo detector

async function loadManifestFile(): Promise<OnnxManifest> {
  return OnnxManifest.parse(parse(await readFile(path.join(modelDir, 'manifest.yaml'), 'utf8')));
}

test('the demo detector manifest validates, names its artifact bytes and reports the recipe metrics', async () => {
  const manifest = await loadManifestFile();
  const artifact = await readFile(path.join(modelDir, manifest.artifact));
  assert.equal(createHash('sha256').update(artifact).digest('hex'), manifest.sha256);
  assert.ok(artifact.length < 1_000_000, `model.onnx is ${artifact.length} bytes`);
  assert.ok(manifest.detection);
  assert.equal(manifest.detection.format, 'yolo');
  assert.deepEqual(manifest.detection.labels.map((l) => l.code), ['lesion', 'spot']);
  assert.equal(manifest.inputs.preprocess.resize.fit, 'contain');
  const metrics = JSON.parse(await readFile(path.join(modelDir, 'metrics.json'), 'utf8')) as Record<string, number>;
  for (const key of ['map50', 'precision', 'recall', 'testImages']) assert.equal(manifest.metrics[key], metrics[key], key);
  assert.equal(manifest.detection.scoreThreshold, metrics['scoreThreshold']);
  assert.ok((metrics['map50'] ?? 0) > 0.9, `mAP@0.5 ${metrics['map50']}`);
  const card = await readFile(path.join(modelDir, 'MODEL_CARD.md'), 'utf8');
  assert.match(card, new RegExp(`\\| AP@0\\.5 \\(mAP@0\\.5 for both\\) \\| ${(metrics['ap50_lesion'] ?? NaN).toFixed(4)} \\| ${(metrics['ap50_spot'] ?? NaN).toFixed(4)} \\| ${(metrics['map50'] ?? NaN).toFixed(4)} \\|`));
});

test('the detection section is checked against the rest of the manifest', async () => {
  const raw = parse(await readFile(path.join(modelDir, 'manifest.yaml'), 'utf8')) as Record<string, Record<string, unknown>>;
  const variant = (change: (m: typeof raw) => void) => {
    const m = structuredClone(raw);
    change(m);
    const parsed = OnnxManifest.safeParse(m);
    assert.ok(!parsed.success);
    return parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ');
  };
  assert.match(variant((m) => { (m['detection'] as Record<string, unknown>)['labels'] = [{ code: 'spot', display: 'x' }, { code: 'lesion', display: 'y' }]; }), /detection\.labels: must list the same codes/);
  assert.match(variant((m) => { m['outputs']!['activation'] = 'softmax'; }), /outputs\.activation/);
  assert.match(variant((m) => { (m['inputs']!['preprocess'] as { resize: { fit: string } }).resize.fit = 'cover'; }), /resize\.fit: a detector must see the whole image/);
  assert.match(variant((m) => { (m['detection'] as Record<string, unknown>)['format'] = 'ssd'; }), /detection\.format/);
});

test('onnxruntime loads the detector with a dynamic batch and the YOLO output shape', async () => {
  const manifest = await loadManifestFile();
  const session = await ort.InferenceSession.create(path.join(modelDir, manifest.artifact));
  try {
    assert.deepEqual(session.inputNames, [manifest.inputs.name]);
    assert.deepEqual(session.outputNames, [manifest.outputs.name]);
    const [input] = session.inputMetadata;
    assert.ok(input?.isTensor);
    assert.equal(typeof input.shape[0], 'string', 'the batch axis must be dynamic');
    const { width, height } = manifest.inputs.preprocess.resize;
    const out = await session.run({ image: new ort.Tensor('float32', new Float32Array(2 * 3 * width * height), [2, 3, height, width]) });
    assert.deepEqual(out[manifest.outputs.name]?.dims, [2, (width / 8) * (height / 8), 5 + (manifest.detection?.labels.length ?? 0)]);
  } finally {
    await session.release();
  }
});

test('a manifest without a detection section is refused by the detector loader', async () => {
  await assert.rejects(loadOnnxDetector(await readManifest('models', 'demo-tissue-classifier'), { intraOpThreads: 1 }),
    (e: unknown) => e instanceof AppError && e.code === 'MODEL_MANIFEST_INVALID' && /no "detection" section/.test(e.message));
  const dir = await mkdtemp(path.join(tmpdir(), 'dxflow-detector-'));
  await cp(modelDir, path.join(dir, NAME), { recursive: true });
  const file = path.join(dir, NAME, 'model.onnx');
  const bytes = await readFile(file);
  bytes[bytes.length - 5] = (bytes[bytes.length - 5] as number) ^ 0xff;
  await writeFile(file, bytes);
  await assert.rejects(loadOnnxDetector(await readManifest(dir, NAME), { intraOpThreads: 1 }), (e: unknown) => e instanceof AppError && e.code === 'MODEL_CHECKSUM_MISMATCH');
});

interface Golden {
  sha256: string;
  cases: Array<{ input: string; width: number; height: number; objects: Array<{ label: string; box: [number, number, number, number] }> }>;
}

test('the detector finds every planted object of the sample photographs (IoU > 0.5), and nothing else', async (t) => {
  const golden = JSON.parse(await readFile(path.join(modelDir, 'golden.json'), 'utf8')) as Golden;
  const catalog = createDetectorCatalog('models', { intraOpThreads: 1 });
  t.after(() => catalog.close());
  const detector = await catalog.detector(NAME);
  assert.equal(golden.sha256, detector.ref.sha256, 'golden.json was written for another model.onnx; rerun the recipe');
  assert.equal(golden.cases.length, 3);
  for (const c of golden.cases) {
    const image = await decodeFile(c.input);
    assert.deepEqual([image.width, image.height], [c.width, c.height]);
    const found = await detector.detect(image);
    for (const o of c.objects) {
      const [x0, y0, x1, y1] = o.box;
      const truth = { x: x0, y: y0, width: x1 - x0, height: y1 - y0 };
      const best = Math.max(0, ...found.filter((d) => d.code === o.label).map((d) => boxIou(d.box, truth)));
      assert.ok(best > 0.5, `${c.input}: ${o.label} at [${o.box.join(', ')}] best IoU ${best.toFixed(3)}`);
    }
    assert.ok(found.length <= c.objects.length + 1, `${c.input}: ${found.length} detections for ${c.objects.length} objects`);
    for (const d of found) {
      assert.ok(d.box.x >= 0 && d.box.y >= 0 && d.box.x + d.box.width <= c.width + 1e-6 && d.box.y + d.box.height <= c.height + 1e-6, 'boxes lie inside the image');
    }
  }
});

// A generator written independently of the recipe's (plain star-shaped blobs, linear lighting, pixel
// noise): the detector must find planted lesions in photographs it has never seen the like of exactly.
function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function plantedPhoto(seed: number, width: number, height: number): { image: RgbImage; boxes: Box[] } {
  const rand = mulberry32(seed);
  const between = (lo: number, hi: number) => lo + (hi - lo) * rand();
  const tones = [[238, 204, 180], [214, 163, 128], [186, 132, 98], [150, 104, 74]];
  const tone = tones[Math.floor(rand() * tones.length)] as number[];
  const angle = between(0, 2 * Math.PI);
  const gradient = between(0, 0.35);
  const od = new Float32Array(width * height * 3);
  const short = Math.min(width, height);
  const boxes: Box[] = [];
  const placed: Array<[number, number, number]> = [];
  const count = 1 + Math.floor(rand() * 3);
  for (let n = 0; n < count; n++) {
    const r = between(0.05, 0.11) * short;
    let cx = 0;
    let cy = 0;
    let ok = false;
    for (let tries = 0; tries < 100 && !ok; tries++) {
      cx = between(r * 1.5, width - r * 1.5);
      cy = between(r * 1.5, height - r * 1.5);
      ok = placed.every(([px, py, pr]) => Math.hypot(cx - px, cy - py) > (r + pr) * 1.4);
    }
    if (!ok) continue;
    placed.push([cx, cy, r]);
    const harmonics = [2, 3, 4, 5].map((k) => [k, between(0, 0.1), between(0, 2 * Math.PI)] as const);
    const density = between(0.8, 1.8);
    let bx0 = Infinity;
    let by0 = Infinity;
    let bx1 = -Infinity;
    let by1 = -Infinity;
    const reach = Math.ceil(r * 1.5) + 2;
    for (let y = Math.max(0, Math.floor(cy - reach)); y < Math.min(height, cy + reach); y++) {
      for (let x = Math.max(0, Math.floor(cx - reach)); x < Math.min(width, cx + reach); x++) {
        const dx = x + 0.5 - cx;
        const dy = y + 0.5 - cy;
        const theta = Math.atan2(dy, dx);
        const boundary = harmonics.reduce((s, [k, amp, phase]) => s + amp * Math.cos(k * theta + phase), 1);
        const coverage = Math.min(1, Math.max(0, (1 - Math.hypot(dx, dy) / (r * boundary)) * r / 2 + 0.5));
        if (coverage <= 0) continue;
        const i = (y * width + x) * 3;
        const d = density * coverage * (1 - 0.25 * Math.hypot(dx, dy) / r);
        od[i] = (od[i] as number) + 0.45 * d;
        od[i + 1] = (od[i + 1] as number) + 0.75 * d;
        od[i + 2] = (od[i + 2] as number) + 1.0 * d;
        if (coverage >= 0.5) {
          bx0 = Math.min(bx0, x);
          by0 = Math.min(by0, y);
          bx1 = Math.max(bx1, x + 1);
          by1 = Math.max(by1, y + 1);
        }
      }
    }
    boxes.push({ x: bx0, y: by0, width: bx1 - bx0, height: by1 - by0 });
  }
  const data = Buffer.alloc(width * height * 3);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const light = 0.95 + gradient * ((x / width - 0.5) * Math.cos(angle) + (y / height - 0.5) * Math.sin(angle));
      for (let c = 0; c < 3; c++) {
        const i = (y * width + x) * 3 + c;
        const v = (tone[c] as number) * light * Math.exp(-(od[i] as number)) + (rand() - 0.5) * 8;
        data[i] = Math.max(0, Math.min(255, Math.round(v)));
      }
    }
  }
  return { image: { data, width, height }, boxes };
}

test('the detector finds lesions planted by an independent generator (IoU > 0.5 for most), in a few ms each', async (t) => {
  const catalog = createDetectorCatalog('models', { intraOpThreads: 1 });
  t.after(() => catalog.close());
  const detector = await catalog.detector(NAME);
  let planted = 0;
  let found = 0;
  let falsePositives = 0;
  const times: number[] = [];
  const sizes: Array<[number, number]> = [[640, 480], [480, 640], [512, 512], [800, 450]];
  for (let seed = 1; seed <= 16; seed++) {
    const [width, height] = sizes[seed % sizes.length] as [number, number];
    const { image, boxes } = plantedPhoto(seed, width, height);
    // Through a JPEG, as photographs arrive.
    const jpeg = await sharp(image.data, { raw: { width, height, channels: 3 } }).jpeg({ quality: 90 }).toBuffer();
    const decoded = await decodeRgb(jpeg, 'jpeg', readImageHeader(jpeg, 'jpeg'), { maxPixels: 1e8 });
    const started = performance.now();
    const detections = (await detector.detect(decoded)).filter((d) => d.code === 'lesion');
    times.push(performance.now() - started);
    planted += boxes.length;
    const matched = new Set<number>();
    for (const truth of boxes) {
      const index = detections.findIndex((d, i) => !matched.has(i) && boxIou(d.box, truth) > 0.5);
      if (index >= 0) {
        matched.add(index);
        found++;
      }
    }
    falsePositives += detections.length - matched.size;
  }
  times.sort((a, b) => a - b);
  const median = times[times.length >> 1] ?? NaN;
  t.diagnostic(`${found}/${planted} planted lesions found at IoU > 0.5, ${falsePositives} other lesion detections, median detect ${median.toFixed(1)} ms`);
  assert.ok(planted >= 25);
  assert.ok(found / planted >= 0.85, `${found} of ${planted} planted lesions found`);
  assert.ok(falsePositives <= planted * 0.15, `${falsePositives} false lesion detections`);
  // A loose bound (shared CI machines): the model itself runs in a few ms.
  assert.ok(median < 200, `median detect time ${median} ms`);
});

test('the demo lesion classifier manifest validates and reports the numbers its recipe measured', async () => {
  const dir = path.join('models', 'demo-lesion-classifier');
  const manifest = OnnxManifest.parse(parse(await readFile(path.join(dir, 'manifest.yaml'), 'utf8')));
  const artifact = await readFile(path.join(dir, manifest.artifact));
  assert.equal(createHash('sha256').update(artifact).digest('hex'), manifest.sha256);
  assert.ok(artifact.length < 300_000, `model.onnx is ${artifact.length} bytes`);
  assert.equal(manifest.detection, undefined);
  assert.deepEqual(manifest.outputs.labels.map((l) => l.code), ['regular-lesion', 'irregular-lesion']);
  assert.deepEqual(manifest.inputs.preprocess.resize, { width: 64, height: 64, fit: 'fill' });
  const metrics = JSON.parse(await readFile(path.join(dir, 'metrics.json'), 'utf8')) as Record<string, number>;
  for (const key of ['accuracy', 'auc', 'testImages']) assert.equal(manifest.metrics[key], metrics[key], key);
  const card = await readFile(path.join(dir, 'MODEL_CARD.md'), 'utf8');
  assert.match(card, new RegExp(`\\| accuracy \\(argmax\\) \\| ${(metrics['accuracy'] ?? NaN).toFixed(4)} \\|`));
  assert.match(card, new RegExp(`\\| ROC AUC \\(p\\(irregular-lesion\\)\\) \\| ${(metrics['auc'] ?? NaN).toFixed(4)} \\|`));
});
