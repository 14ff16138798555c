import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { test } from 'node:test';
import sharp from 'sharp';
import { AppError } from '../../src/core/errors.ts';
import type { Finding, InputRecord } from '../../src/core/result.ts';
import { createModelCatalog } from '../../src/models/catalog.ts';
import { createDetectorCatalog, type Detection, type DetectorSource, type ObjectDetector } from '../../src/models/detector.ts';
import { isStageWait, type StageContext, type StageDefinition, type StageResult } from '../../src/pipeline/stage.ts';
import { createModelClassifyCropStage } from '../../src/pipeline/stages/model-classify-crop.ts';
import { createModelDetectStage, type DetectOutput, paddedRegion } from '../../src/pipeline/stages/model-detect.ts';
import { evaluatePredicate, Predicate, resolveField, routeStage } from '../../src/pipeline/stages/route.ts';

const LIMITS = { maxPixels: 50_000_000, maxBytes: 50_000_000 };

interface Fake {
  ctx: StageContext<unknown> & { metadata: Record<string, unknown> };
  objects: Map<string, Buffer>;
  reads: { input: number };
}

/** A stage context as the runner builds it, with an in-memory object store. */
function fakeContext(options: { stageId: string; params: unknown; input?: Buffer; outputs?: Map<string, unknown>; metadata?: Record<string, unknown> }): Fake {
  const objects = new Map<string, Buffer>();
  const reads = { input: 0 };
  const bytes = options.input ?? Buffer.alloc(0);
  const input: InputRecord = { objectKey: 'cases/c1/input', sha256: 'a'.repeat(64), bytes: bytes.length, mediaType: 'jpeg', mimeType: 'image/jpeg', width: 640, height: 480 };
  const ctx = {
    caseId: 'c1',
    pipeline: 'photo-triage',
    stageId: options.stageId,
    seq: 1,
    input,
    params: options.params,
    outputs: options.outputs ?? new Map<string, unknown>(),
    metadata: options.metadata ?? {},
    async readInput() {
      reads.input++;
      return bytes;
    },
    inputSource() {
      throw new Error('not read by these stages');
    },
    note: undefined,
    async readNote() {
      return undefined;
    },
    async putObject(name: string, data: Buffer) {
      const key = `cases/c1/${name}`;
      objects.set(key, data);
      return key;
    },
    signal: new AbortController().signal,
  };
  return { ctx, objects, reads };
}

/** Validates the raw `with:` block as the pipeline loader does, runs the stage, checks the output schema. */
async function runStage<P, O>(stage: StageDefinition<P, O>, fake: Fake, rawParams: unknown): Promise<StageResult<O>> {
  const params = stage.params.parse(rawParams);
  const result = await stage.run({ ...fake.ctx, params } as StageContext<P>);
  if (isStageWait(result)) assert.fail('the stage should not wait');
  stage.output.parse(result.data);
  return result;
}

const detectorCatalog = createDetectorCatalog('models', { intraOpThreads: 1 });
const models = createModelCatalog('models', { intraOpThreads: 1 });
test.after(async () => {
  await detectorCatalog.close();
  await models.close();
});

// ---------------------------------------------------------------------------------------------
// model.detect

test('model.detect finds the lesion of a sample photograph, stores its padded crop and records one finding', async () => {
  const stage = createModelDetectStage({ models: detectorCatalog, limits: LIMITS });
  const input = await readFile('samples/photo-lesion-irregular.jpg');
  const fake = fakeContext({ stageId: 'detect', params: {}, input });
  const result = await runStage(stage, fake, { model: 'demo-lesion-detector' });
  const out = result.data;
  assert.deepEqual(out.image, { width: 640, height: 480 });
  assert.equal(out.detections.length, 1, JSON.stringify(out.detections));
  assert.equal(out.best?.label, 'lesion');
  assert.deepEqual(out.counts, { lesion: 1, spot: 0 });
  assert.ok((out.best?.score ?? 0) >= 0.3);

  assert.ok(out.crop);
  assert.equal(out.crop.objectKey, 'cases/c1/crop-detect.png');
  const png = fake.objects.get(out.crop.objectKey);
  assert.ok(png);
  const meta = await sharp(png).metadata();
  assert.deepEqual([meta.format, meta.width, meta.height], ['png', out.crop.width, out.crop.height]);
  // Default padding 0.15 of the box on each side.
  const box = out.best?.box;
  assert.ok(box);
  assert.ok(Math.abs(out.crop.region.width - box.width * 1.3) <= 2.5, `crop ${out.crop.region.width} for box ${box.width}`);
  assert.ok(out.crop.region.x <= box.x && out.crop.region.x + out.crop.region.width >= box.x + box.width);

  assert.deepEqual(result.findings?.map((f) => [f.stage, f.code]), [['detect', 'lesion']]);
  assert.equal(result.findings?.[0]?.probability, out.best?.score);
  assert.equal(result.models?.[0]?.name, 'demo-lesion-detector');
});

test('model.detect on widespread spots: many spot detections, one finding per label, bestOf limits the crop to lesions', async () => {
  const stage = createModelDetectStage({ models: detectorCatalog, limits: LIMITS });
  const input = await readFile('samples/photo-spots-widespread.jpg');
  const golden = JSON.parse(await readFile('models/demo-lesion-detector/golden.json', 'utf8')) as { cases: Array<{ input: string; objects: Array<{ label: string }> }> };
  const planted = golden.cases.find((c) => c.input.endsWith('photo-spots-widespread.jpg'))?.objects ?? [];
  const spots = planted.filter((o) => o.label === 'spot').length;
  assert.ok(spots >= 10);

  const fake = fakeContext({ stageId: 'detect', params: {}, input });
  const all = await runStage(stage, fake, { model: 'demo-lesion-detector' });
  assert.ok((all.data.counts['spot'] ?? 0) >= spots * 0.8, `${all.data.counts['spot']} spots detected of ${spots}`);
  const codes = all.findings?.map((f) => f.code) ?? [];
  assert.equal(new Set(codes).size, codes.length, 'findings are unique per code (the store keeps one per stage and code)');
  const spotFinding = all.findings?.find((f) => f.code === 'spot');
  assert.equal(spotFinding?.probability, Math.max(...all.data.detections.filter((d) => d.label === 'spot').map((d) => d.score)));
  const scores = all.data.detections.map((d) => d.score);
  assert.deepEqual(scores, [...scores].sort((a, b) => b - a), 'best first');

  const lesionsOnly = fakeContext({ stageId: 'find-lesion', params: {}, input });
  const limited = await runStage(stage, lesionsOnly, { model: 'demo-lesion-detector', bestOf: ['lesion'] });
  const hasLesion = planted.some((o) => o.label === 'lesion');
  if (hasLesion) {
    assert.equal(limited.data.best?.label, 'lesion');
  } else {
    assert.equal(limited.data.best, null);
    assert.equal(limited.data.crop, null);
    assert.equal(lesionsOnly.objects.size, 0);
  }
});

/** A detector that returns fixed detections, to check the crop geometry exactly. */
function fixedDetector(detections: Detection[]): DetectorSource {
  const detector = {
    ref: { name: 'fixed', version: '1', kind: 'onnx', sha256: 'b'.repeat(64) },
    manifest: { detection: { labels: [{ code: 'lesion', display: 'Lesion' }, { code: 'spot', display: 'Spot' }] } },
    async detect() {
      return detections;
    },
    async close() {},
  } as unknown as ObjectDetector;
  return { detector: async () => detector };
}

test('model.detect crops exactly the padded box, clipped to the image, and saves nothing when asked not to', async () => {
  const width = 200;
  const height = 100;
  const raw = Buffer.alloc(width * height * 3);
  for (let i = 0; i < width * height; i++) {
    raw[i * 3] = i % width;
    raw[i * 3 + 1] = Math.floor(i / width);
    raw[i * 3 + 2] = 7;
  }
  const input = await sharp(raw, { raw: { width, height, channels: 3 } }).png().toBuffer();
  const detections: Detection[] = [
    { code: 'spot', display: 'Spot', score: 0.9, box: { x: 180, y: 80, width: 15, height: 15 } },
    { code: 'lesion', display: 'Lesion', score: 0.8, box: { x: 50, y: 20, width: 40, height: 30 } },
    { code: 'lesion', display: 'Lesion', score: 0.4, box: { x: 120, y: 10, width: 10, height: 10 } },
  ];
  const stage = createModelDetectStage({ models: fixedDetector(detections), limits: LIMITS });

  const fake = fakeContext({ stageId: 'detect', params: {}, input });
  const result = await runStage(stage, fake, { model: 'fixed', padding: 0.25, bestOf: ['lesion'] });
  // 50 - 10 = 40, 20 - 7.5 → 12, 90 + 10 = 100, 50 + 7.5 → 58.
  assert.deepEqual(result.data.crop?.region, { x: 40, y: 12, width: 60, height: 46 });
  assert.deepEqual(result.data.best?.box, { x: 50, y: 20, width: 40, height: 30 });
  const png = fake.objects.get('cases/c1/crop-detect.png');
  assert.ok(png);
  const { data, info } = await sharp(png).raw().toBuffer({ resolveWithObject: true });
  assert.deepEqual([info.width, info.height], [60, 46]);
  assert.deepEqual([data[0], data[1], data[2]], [40, 12, 7], 'top-left pixel of the crop is image pixel (40, 12)');
  const last = (46 * 60 - 1) * info.channels;
  assert.deepEqual([data[last], data[last + 1]], [99, 57]);
  assert.deepEqual(result.data.counts, { lesion: 2, spot: 1 });
  assert.deepEqual(result.findings?.map((f: Finding) => [f.code, f.probability]), [['spot', 0.9], ['lesion', 0.8]]);

  // The spot near the corner: its padded box is clipped to the image.
  assert.deepEqual(paddedRegion({ x: 180, y: 80, width: 15, height: 15 }, 0.5, width, height), { left: 172, top: 72, width: 28, height: 28 });

  const noCrop = fakeContext({ stageId: 'detect', params: {}, input });
  const plain = await runStage(stage, noCrop, { model: 'fixed', saveCrop: false });
  assert.equal(plain.data.crop, null);
  assert.equal(plain.data.best?.label, 'spot', 'without bestOf the best detection of any label');
  assert.equal(noCrop.objects.size, 0);

  const none = createModelDetectStage({ models: fixedDetector([]), limits: LIMITS });
  const empty = await runStage(none, fakeContext({ stageId: 'detect', params: {}, input }), { model: 'fixed' });
  assert.deepEqual([empty.data.best, empty.data.crop, empty.data.detections, empty.findings], [null, null, [], []]);
  assert.deepEqual(empty.data.counts, { lesion: 0, spot: 0 });
});

test('model.detect params are validated', () => {
  const stage = createModelDetectStage({ models: fixedDetector([]), limits: LIMITS });
  assert.equal(stage.params.safeParse({ model: 'm', padding: -0.1 }).success, false);
  assert.equal(stage.params.safeParse({ model: 'm', crop: true }).success, false, 'unknown keys are refused');
  assert.deepEqual(stage.params.parse({ model: 'm' }), { model: 'm', saveCrop: true, padding: 0.15 });
});

// ---------------------------------------------------------------------------------------------
// route

const detectOutput = {
  model: 'demo-lesion-detector', version: '1.0.0', image: { width: 640, height: 480 },
  detections: [{ label: 'lesion', display: 'Lesion', score: 0.82, box: { x: 1, y: 2, width: 3, height: 4 } }],
  counts: { lesion: 1, spot: 0 }, best: { label: 'lesion', display: 'Lesion', score: 0.82, box: { x: 1, y: 2, width: 3, height: 4 } }, crop: null,
};

test('field paths read metadata, the input record and earlier outputs, own properties only', () => {
  const scope = { metadata: { distribution: 'localized', site: { side: 'left' }, count: 3 }, input: { mediaType: 'jpeg' }, outputs: new Map<string, unknown>([['detect', detectOutput]]) };
  assert.equal(resolveField(scope, 'metadata.distribution'), 'localized');
  assert.equal(resolveField(scope, 'metadata.site.side'), 'left');
  assert.equal(resolveField(scope, 'input.mediaType'), 'jpeg');
  assert.equal(resolveField(scope, 'outputs.detect.best.score'), 0.82);
  assert.equal(resolveField(scope, 'outputs.detect.detections.0.label'), 'lesion');
  assert.equal(resolveField(scope, 'outputs.detect.detections.length'), 1);
  assert.equal(resolveField(scope, 'outputs.detect.counts.spot'), 0);
  assert.equal(resolveField(scope, 'outputs.detect.detections.5.label'), undefined);
  assert.equal(resolveField(scope, 'outputs.missing.best'), undefined);
  assert.equal(resolveField(scope, 'metadata.constructor'), undefined);
  assert.equal(resolveField(scope, 'metadata.distribution.length'), undefined, 'strings are not walked');
});

test('predicates: equals, in, exists, comparisons and all / any / not', () => {
  const scope = { metadata: { distribution: 'widespread', age: 54, flagged: false, empty: null }, input: {}, outputs: new Map<string, unknown>([['detect', detectOutput]]) };
  const check = (p: unknown) => evaluatePredicate(Predicate.parse(p), scope);
  assert.equal(check({ field: 'metadata.distribution', equals: 'widespread' }), true);
  assert.equal(check({ field: 'metadata.distribution', equals: 'Widespread' }), false, 'case-sensitive');
  assert.equal(check({ field: 'metadata.age', equals: '54' }), false, 'no type coercion');
  assert.equal(check({ field: 'metadata.flagged', equals: false }), true);
  assert.equal(check({ field: 'metadata.missing', equals: null }), false, 'missing is not null');
  assert.equal(check({ field: 'metadata.distribution', in: ['localized', 'widespread'] }), true);
  assert.equal(check({ field: 'metadata.distribution', in: ['localized'] }), false);
  assert.equal(check({ field: 'metadata.age', exists: true }), true);
  assert.equal(check({ field: 'metadata.empty', exists: true }), false, 'null does not exist');
  assert.equal(check({ field: 'metadata.missing', exists: false }), true);
  assert.equal(check({ field: 'outputs.detect.best', exists: true }), true);
  assert.equal(check({ field: 'outputs.detect.best.score', gte: 0.82 }), true);
  assert.equal(check({ field: 'outputs.detect.best.score', gt: 0.82 }), false);
  assert.equal(check({ field: 'outputs.detect.counts.spot', lt: 5 }), true);
  assert.equal(check({ field: 'metadata.distribution', lte: 5 }), false, 'comparisons need a number');
  assert.equal(check({ all: [{ field: 'metadata.age', gt: 50 }, { field: 'outputs.detect.counts.lesion', equals: 1 }] }), true);
  assert.equal(check({ any: [{ field: 'metadata.age', gt: 60 }, { not: { field: 'metadata.distribution', equals: 'localized' } }] }), true);
  assert.equal(check({ not: { all: [{ field: 'metadata.age', gt: 50 }] } }), false);
  assert.equal(Predicate.safeParse({ field: 'note.text', equals: 'x' }).success, false, 'only metadata, input and outputs');
  assert.equal(Predicate.safeParse({ field: 'metadata.a', equals: 'x', in: ['x'] }).success, false, 'one test per predicate');
  assert.equal(Predicate.safeParse({ field: 'metadata', exists: true }).success, false, 'a field below the root');
});

const triage = {
  branches: [
    { name: 'localized', when: { field: 'metadata.distribution', equals: 'localized' }, then: ['detect', 'classify-crop'] },
    { name: 'widespread', when: { field: 'metadata.distribution', in: ['widespread', 'generalized'] }, then: ['classify-image'] },
  ],
  otherwise: ['detect', 'classify-crop', 'classify-image'],
};

test('route picks the first matching branch and skips the stages only other branches name', async () => {
  const localized = await runStage(routeStage, fakeContext({ stageId: 'triage', params: {}, metadata: { distribution: 'localized' } }), triage);
  assert.deepEqual(localized.data, { branch: 'localized', skip: ['classify-image'] });
  const widespread = await runStage(routeStage, fakeContext({ stageId: 'triage', params: {}, metadata: { distribution: 'generalized' } }), triage);
  assert.deepEqual(widespread.data, { branch: 'widespread', skip: ['detect', 'classify-crop'] });
  const unknown = await runStage(routeStage, fakeContext({ stageId: 'triage', params: {}, metadata: {} }), triage);
  assert.deepEqual(unknown.data, { branch: 'otherwise', skip: [] });
  const noOtherwise = await runStage(routeStage, fakeContext({ stageId: 'triage', params: {}, metadata: {} }), { branches: triage.branches });
  assert.deepEqual(noOtherwise.data, { branch: 'otherwise', skip: ['detect', 'classify-crop', 'classify-image'] });
  // Routing on an earlier stage's output; unnamed branches are numbered.
  const outputs = new Map<string, unknown>([['detect', { ...detectOutput, best: null, detections: [], counts: { lesion: 0, spot: 0 } }]]);
  const onOutput = await runStage(routeStage, fakeContext({ stageId: 'after-detect', params: {}, outputs }), {
    branches: [{ when: { field: 'outputs.detect.best', exists: true }, then: ['classify-crop'] }, { when: { field: 'outputs.detect.counts.lesion', equals: 0 }, then: ['classify-image'] }],
  });
  assert.deepEqual(onOutput.data, { branch: 'branch-2', skip: ['classify-crop'] });
  assert.equal(onOutput.findings, undefined, 'route reports no findings and no metadata values');
});

test('route params are validated and a route may not name itself', async () => {
  assert.equal(routeStage.params.safeParse({ branches: [] }).success, false);
  assert.equal(routeStage.params.safeParse({ branches: [{ when: { field: 'metadata.a', exists: true }, then: ['Bad Id'] }] }).success, false);
  assert.equal(routeStage.params.safeParse({ branches: [{ name: 'otherwise', when: { field: 'metadata.a', exists: true }, then: [] }] }).success, false);
  assert.equal(routeStage.params.safeParse({ branches: [{ name: 'a', when: { field: 'metadata.a', exists: true }, then: [] }, { name: 'a', when: { field: 'metadata.b', exists: true }, then: [] }] }).success, false);
  await assert.rejects(
    runStage(routeStage, fakeContext({ stageId: 'triage', params: {} }), { branches: [{ when: { field: 'metadata.a', exists: true }, then: ['triage'] }] }),
    (e: unknown) => e instanceof AppError && e.code === 'PIPELINE_SPEC_INVALID',
  );
});

// ---------------------------------------------------------------------------------------------
// model.classify-crop, and the whole photo-triage chain

test('detect then classify-crop: each sample lesion gets its class from its crop', async () => {
  const detect = createModelDetectStage({ models: detectorCatalog, limits: LIMITS });
  for (const [file, expected] of [['photo-lesion-irregular.jpg', 'irregular-lesion'], ['photo-lesion-regular.jpg', 'regular-lesion']] as const) {
    const input = await readFile(`samples/${file}`);
    const first = fakeContext({ stageId: 'detect', params: {}, input });
    const detected = await runStage(detect, first, { model: 'demo-lesion-detector', bestOf: ['lesion'] });
    assert.ok(detected.data.crop, file);
    const objects = first.objects;
    const classify = createModelClassifyCropStage({ models, objects: { get: async (key) => objects.get(key) ?? assert.fail(`no object ${key}`) }, limits: LIMITS });
    const second = fakeContext({ stageId: 'classify-crop', params: {}, input, outputs: new Map([['detect', detected.data]]) });
    const result = await runStage(classify, second, { model: 'demo-lesion-classifier', imageFrom: 'detect' });
    assert.equal(result.data.source, 'crop');
    assert.equal(result.data.cropKey, detected.data.crop.objectKey);
    assert.equal(second.reads.input, 0, 'the whole image is not read when there is a crop');
    assert.equal(result.data.top.code, expected, `${file}: ${JSON.stringify(result.data.probabilities)}`);
    assert.ok(result.data.top.probability > 0.8, `${file}: ${result.data.top.probability}`);
    assert.deepEqual(result.findings?.map((f) => f.stage), ['classify-crop', 'classify-crop']);
  }
});

test('classify-crop falls back to the whole image when nothing was detected or detection did not run', async () => {
  const input = await readFile('samples/photo-lesion-regular.jpg');
  const gets: string[] = [];
  const classify = createModelClassifyCropStage({ models, objects: { get: async (key) => { gets.push(key); return Buffer.alloc(0); } }, limits: LIMITS });
  const nothing: DetectOutput = { ...detectOutput, detections: [], counts: { lesion: 0, spot: 0 }, best: null, crop: null };
  for (const outputs of [new Map<string, unknown>([['detect', nothing]]), new Map<string, unknown>()]) {
    const fake = fakeContext({ stageId: 'classify-crop', params: {}, input, outputs });
    const result = await runStage(classify, fake, { model: 'demo-lesion-classifier', imageFrom: 'detect' });
    assert.equal(result.data.source, 'image');
    assert.equal(result.data.cropKey, null);
    assert.equal(fake.reads.input, 1);
  }
  assert.deepEqual(gets, []);
  const wrong = fakeContext({ stageId: 'classify-crop', params: {}, input, outputs: new Map<string, unknown>([['detect', { probabilities: {} }]]) });
  await assert.rejects(runStage(classify, wrong, { model: 'demo-lesion-classifier', imageFrom: 'detect' }), (e: unknown) => e instanceof AppError && e.code === 'PIPELINE_SPEC_INVALID');
});
