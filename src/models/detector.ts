import * as ort from 'onnxruntime-node';
import sharp from 'sharp';
import { AppError } from '../core/errors.ts';
import type { OnnxManifest } from '../core/manifest.ts';
import type { ModelRef } from '../core/result.ts';
import { readManifest, readVerifiedArtifact, requireKind, type LoadedManifest } from './manifest.ts';
import { createOnnxSession, type OnnxOptions } from './onnx-classifier.ts';
import { packBatch, type RgbImage } from './preprocess.ts';

// Object detection with a YOLO-style ONNX model: letterbox the image as the manifest says, run the
// model once, read one row per prediction (cx, cy, w, h, objectness, class scores), map the boxes back
// to image pixels, drop low scores, suppress overlapping boxes of the same label, keep the best few.

type DetectionSpec = NonNullable<OnnxManifest['detection']>;
type Preprocess = OnnxManifest['inputs']['preprocess'];

/** An axis-aligned box in image pixels: top-left corner and size. */
export interface Box {
  x: number;
  y: number;
  width: number;
  height: number;
}

export interface Detection {
  code: string;
  display: string;
  /** Objectness × class score, in [0, 1]. */
  score: number;
  box: Box;
}

/** A decoded prediction before NMS: label index, score and corners (x0, y0) – (x1, y1). */
export interface Candidate {
  classIndex: number;
  score: number;
  x0: number;
  y0: number;
  x1: number;
  y1: number;
}

/** Where the image sits in the model input: input = image × scale + offset, per axis. */
export interface Letterbox {
  scaleX: number;
  scaleY: number;
  left: number;
  top: number;
  /** The resized image's size inside the input. */
  width: number;
  height: number;
}

export interface ObjectDetector {
  readonly ref: ModelRef;
  readonly manifest: OnnxManifest & { detection: DetectionSpec };
  /** Detections in image pixels, best first, after the score threshold, NMS and the detection cap. */
  detect(image: RgbImage, options?: { scoreThreshold?: number }): Promise<Detection[]>;
  close(): Promise<void>;
}

/** Where stages get detectors from (the model catalog, once it loads detectors). */
export interface DetectorSource {
  detector(name: string): Promise<ObjectDetector>;
}

/**
 * The letterbox of a width × height image in the model input: `contain` scales by the smaller ratio
 * (aspect kept) and centres the result, `fill` stretches each axis. The training recipe
 * (models/demo-lesion-detector/recipe/train.py, letterbox_geometry) computes the same numbers.
 */
export function letterboxGeometry(width: number, height: number, resize: Preprocess['resize']): Letterbox {
  if (resize.fit === 'fill') {
    return { scaleX: resize.width / width, scaleY: resize.height / height, left: 0, top: 0, width: resize.width, height: resize.height };
  }
  const scale = Math.min(resize.width / width, resize.height / height);
  const w = Math.max(1, Math.min(resize.width, Math.floor(width * scale + 0.5)));
  const h = Math.max(1, Math.min(resize.height, Math.floor(height * scale + 0.5)));
  return { scaleX: w / width, scaleY: h / height, left: Math.floor((resize.width - w) / 2), top: Math.floor((resize.height - h) / 2), width: w, height: h };
}

/** Resizes the image into the model's input frame as letterboxGeometry says, borders filled with padColour. */
export async function letterbox(image: RgbImage, resize: Preprocess['resize'], padColour: readonly [number, number, number]): Promise<{ image: RgbImage; geometry: Letterbox }> {
  const geometry = letterboxGeometry(image.width, image.height, resize);
  const resized = geometry.width === image.width && geometry.height === image.height
    ? image.data
    : await sharp(image.data, { raw: { width: image.width, height: image.height, channels: 3 } })
      .resize(geometry.width, geometry.height, { fit: 'fill' })
      .raw()
      .toBuffer();
  if (geometry.width === resize.width && geometry.height === resize.height) {
    return { image: { data: resized, width: resize.width, height: resize.height }, geometry };
  }
  const canvas = Buffer.alloc(resize.width * resize.height * 3);
  for (let i = 0; i < canvas.length; i += 3) {
    canvas[i] = padColour[0];
    canvas[i + 1] = padColour[1];
    canvas[i + 2] = padColour[2];
  }
  const row = geometry.width * 3;
  for (let y = 0; y < geometry.height; y++) {
    resized.copy(canvas, ((geometry.top + y) * resize.width + geometry.left) * 3, y * row, (y + 1) * row);
  }
  return { image: { data: canvas, width: resize.width, height: resize.height }, geometry };
}

/** Intersection over union of two boxes given by corners. */
export function iou(a: Candidate, b: Candidate): number {
  const iw = Math.min(a.x1, b.x1) - Math.max(a.x0, b.x0);
  const ih = Math.min(a.y1, b.y1) - Math.max(a.y0, b.y0);
  if (iw <= 0 || ih <= 0) return 0;
  const inter = iw * ih;
  const union = (a.x1 - a.x0) * (a.y1 - a.y0) + (b.x1 - b.x0) * (b.y1 - b.y0) - inter;
  return union > 0 ? inter / union : 0;
}

/**
 * Greedy non-maximum suppression: candidates are taken best score first, and one is dropped when it
 * overlaps an already kept box by more than iouThreshold — only a box of the same label when
 * classAware (the default), so a lesion and a spot at the same place are both kept. Stops at
 * maxDetections. Ties keep the input order.
 */
export function nonMaxSuppression(candidates: readonly Candidate[], options: { iouThreshold: number; maxDetections: number; classAware?: boolean }): Candidate[] {
  const classAware = options.classAware ?? true;
  const order = candidates.map((c, i) => ({ c, i })).sort((a, b) => b.c.score - a.c.score || a.i - b.i);
  const kept: Candidate[] = [];
  for (const { c } of order) {
    if (kept.length >= options.maxDetections) break;
    if (kept.some((k) => (!classAware || k.classIndex === c.classIndex) && iou(k, c) > options.iouThreshold)) continue;
    kept.push(c);
  }
  return kept;
}

const sigmoid = (x: number) => 1 / (1 + Math.exp(-x));

/**
 * Reads the rows of one image of a YOLO output ([N, rows, 5 + C] or [N, 5 + C, rows]) and returns those
 * scoring at least scoreThreshold, corners in model-input pixels.
 */
export function decodeYolo(
  data: Float32Array,
  dims: readonly number[],
  options: { classes: number; layout?: 'rows' | 'columns' | undefined; boxes: 'pixels' | 'normalized'; activation: 'sigmoid' | 'none'; inputWidth: number; inputHeight: number; scoreThreshold: number; batchIndex?: number },
): Candidate[] {
  const width = 5 + options.classes;
  if (dims.length !== 3) {
    throw new AppError('MODEL_INFERENCE_FAILED', `a YOLO output has 3 dimensions [N, rows, ${width}] or [N, ${width}, rows]; this one has [${dims.join(', ')}]`);
  }
  const [batch = 0, a = 0, b = 0] = dims;
  const layout = options.layout ?? (b === width ? 'rows' : a === width ? 'columns' : undefined);
  if (!layout || (layout === 'rows' ? b : a) !== width) {
    throw new AppError('MODEL_INFERENCE_FAILED', `the output has dims [${dims.join(', ')}]; with ${options.classes} labels a YOLO output is [N, rows, ${width}] or [N, ${width}, rows]: check detection.labels and detection.layout in the manifest`);
  }
  const n = options.batchIndex ?? 0;
  if (n >= batch || data.length !== batch * a * b) {
    throw new AppError('MODEL_INFERENCE_FAILED', `the output holds ${data.length} values for dims [${dims.join(', ')}]`);
  }
  const rows = layout === 'rows' ? a : b;
  const base = n * a * b;
  // rows: value j of row r at base + r * width + j; columns: at base + j * rows + r.
  const rowStride = layout === 'rows' ? width : 1;
  const valueStride = layout === 'rows' ? 1 : rows;
  const sx = options.boxes === 'normalized' ? options.inputWidth : 1;
  const sy = options.boxes === 'normalized' ? options.inputHeight : 1;
  const act = options.activation === 'sigmoid' ? sigmoid : (x: number) => x;
  const out: Candidate[] = [];
  for (let r = 0; r < rows; r++) {
    const at = (j: number) => data[base + r * rowStride + j * valueStride] as number;
    const objectness = act(at(4));
    // Scores are at most 1, so a row whose objectness is already below the threshold cannot pass.
    if (!(objectness >= options.scoreThreshold)) continue;
    let classIndex = 0;
    let best = -Infinity;
    for (let k = 0; k < options.classes; k++) {
      const s = at(5 + k);
      if (s > best) {
        best = s;
        classIndex = k;
      }
    }
    const score = objectness * act(best);
    if (score > 1 + 1e-6) {
      throw new AppError('MODEL_INFERENCE_FAILED', `row ${r} scores ${score}, above 1: the model outputs logits, so set outputs.activation to "sigmoid" in the manifest`);
    }
    if (!(score >= options.scoreThreshold)) continue;
    const cx = at(0) * sx;
    const cy = at(1) * sy;
    const w = at(2) * sx;
    const h = at(3) * sy;
    if (!(w > 0 && h > 0) || !Number.isFinite(cx) || !Number.isFinite(cy)) continue;
    out.push({ classIndex, score: Math.min(1, score), x0: cx - w / 2, y0: cy - h / 2, x1: cx + w / 2, y1: cy + h / 2 });
  }
  return out;
}

/**
 * Maps corners from model-input pixels back to the image and clips them to it; undefined for a box
 * that lies wholly in the letterbox border.
 */
export function toImageBox(c: Candidate, geometry: Letterbox, imageWidth: number, imageHeight: number): Box | undefined {
  const clip = (v: number, max: number) => Math.min(max, Math.max(0, v));
  const x0 = clip((c.x0 - geometry.left) / geometry.scaleX, imageWidth);
  const x1 = clip((c.x1 - geometry.left) / geometry.scaleX, imageWidth);
  const y0 = clip((c.y0 - geometry.top) / geometry.scaleY, imageHeight);
  const y1 = clip((c.y1 - geometry.top) / geometry.scaleY, imageHeight);
  if (x1 - x0 < 1e-6 || y1 - y0 < 1e-6) return undefined;
  return { x: x0, y: y0, width: x1 - x0, height: y1 - y0 };
}

function requireDetection(loaded: LoadedManifest<OnnxManifest>): OnnxManifest & { detection: DetectionSpec } {
  const { manifest } = loaded;
  if (!manifest.detection) {
    throw new AppError('MODEL_MANIFEST_INVALID', `${manifest.name} has no "detection" section, so it is not an object detector; use it with model.classify, or name a detector`);
  }
  return manifest as OnnxManifest & { detection: DetectionSpec };
}

/** Loads a YOLO-style ONNX detector after checking its artifact against the manifest's sha256. */
export async function loadOnnxDetector(anyKind: LoadedManifest, options: OnnxOptions): Promise<ObjectDetector> {
  const loaded = requireKind(anyKind, 'onnx');
  const manifest = requireDetection(loaded);
  const bytes = await readVerifiedArtifact(loaded);
  const session = await createOnnxSession(bytes, loaded, options);
  for (const [what, name, names] of [['input', manifest.inputs.name, session.inputNames], ['output', manifest.outputs.name, session.outputNames]] as const) {
    if (!names.includes(name)) {
      await session.release();
      throw new AppError('MODEL_MANIFEST_INVALID', `${manifest.name}: manifest ${what} "${name}" is not in the model (it has ${names.join(', ')})`);
    }
  }
  const ref: ModelRef = { name: manifest.name, version: manifest.version, kind: manifest.kind, sha256: manifest.sha256 };
  const d = manifest.detection;
  const { preprocess } = manifest.inputs;
  const activation = manifest.outputs.activation === 'sigmoid' ? 'sigmoid' : 'none';

  return {
    ref,
    manifest,
    async detect(image, detectOptions = {}) {
      const scoreThreshold = detectOptions.scoreThreshold ?? d.scoreThreshold;
      const { image: input, geometry } = await letterbox(image, preprocess.resize, d.padColour);
      const { data, dims } = await packBatch([input], preprocess);
      let results: ort.InferenceSession.OnnxValueMapType;
      try {
        // session.run holds the event loop for its whole duration (a few ms for the demo detector).
        results = await session.run({ [manifest.inputs.name]: new ort.Tensor('float32', data, dims) }, [manifest.outputs.name]);
      } catch (e) {
        throw new AppError('MODEL_INFERENCE_FAILED', `${manifest.name}: ${(e as Error).message}`, { cause: e });
      }
      const output = results[manifest.outputs.name];
      if (!output || output.type !== 'float32') {
        throw new AppError('MODEL_INFERENCE_FAILED', `${manifest.name}: output "${manifest.outputs.name}" is not a float32 tensor`);
      }
      let candidates: Candidate[];
      try {
        candidates = decodeYolo(output.data as Float32Array, output.dims, {
          classes: d.labels.length, layout: d.layout, boxes: d.boxes, activation,
          inputWidth: preprocess.resize.width, inputHeight: preprocess.resize.height, scoreThreshold,
        });
      } catch (e) {
        if (e instanceof AppError) throw new AppError(e.code, `${manifest.name}: ${e.message}`);
        throw e;
      }
      const detections: Detection[] = [];
      // NMS runs in input pixels, where the model drew its boxes; then the kept boxes go back to the image.
      for (const c of nonMaxSuppression(candidates, { iouThreshold: d.iouThreshold, maxDetections: d.maxDetections })) {
        const box = toImageBox(c, geometry, image.width, image.height);
        const label = d.labels[c.classIndex];
        if (box && label) detections.push({ code: label.code, display: label.display, score: c.score, box });
      }
      return detections;
    },
    async close() {
      await session.release();
    },
  };
}

/**
 * Loads each detector once per process. Stands in until the model catalog (catalog.ts) loads
 * detectors itself.
 */
export function createDetectorCatalog(modelsDir: string, options: OnnxOptions): DetectorSource & { close(): Promise<void> } {
  const loading = new Map<string, Promise<ObjectDetector>>();
  return {
    detector(name) {
      let pending = loading.get(name);
      if (!pending) {
        pending = readManifest(modelsDir, name).then((m) => loadOnnxDetector(m, options));
        // A failed load is not cached: fixing the file and retrying must work without a restart.
        pending.catch(() => loading.delete(name));
        loading.set(name, pending);
      }
      return pending;
    },
    async close() {
      const all = await Promise.allSettled(loading.values());
      for (const r of all) if (r.status === 'fulfilled') await r.value.close();
      loading.clear();
    },
  };
}
