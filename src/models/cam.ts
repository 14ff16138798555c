import * as ort from 'onnxruntime-node';
import { AppError } from '../core/errors.ts';

// Class activation maps: where in the image the classifier found the evidence for a class.
//
// CAM (Zhou et al., "Learning Deep Features for Discriminative Localization", CVPR 2016) is exact for
// a network that ends in global average pooling (GAP) and one linear layer: the class score is
//   y_k = Σ_c w_k,c · mean_ij A_c,ij + b_k = mean_ij CAM_k(i, j) + b_k,  CAM_k = Σ_c w_k,c · A_c,
// so the map is the score spread over the image, not an approximation of it.
//
// Grad-CAM (Selvaraju et al., "Grad-CAM: Visual Explanations from Deep Networks via Gradient-based
// Localization", ICCV 2017, eq. 1-2) handles any differentiable head: channel weights are the spatially
// averaged gradients α_k,c = (1/HW) Σ_ij ∂y_k/∂A_c,ij, and the map is ReLU(Σ_c α_k,c · A_c). For GAP +
// linear, ∂y_k/∂A_c,ij = w_k,c / HW, so α_k,c = w_k,c / HW and Grad-CAM is CAM divided by HW.

/** Shape of one feature map: channels, height, width (the batch axis removed). */
export type FeatureDims = readonly [channels: number, height: number, width: number];

/** The linear layer over globally average-pooled features, as in a model's head.json. */
export interface LinearHead {
  weight: readonly (readonly number[])[];
}

export interface ClassActivationMap {
  /** ReLU then divided by the maximum: values in [0, 1], row-major, height × width. */
  map: Float32Array;
  height: number;
  width: number;
  /** Extremes of the map before ReLU and scaling, in logit units (the class score is their spatial mean plus the bias). */
  rawMin: number;
  rawMax: number;
}

function checkFeatures(features: Float32Array, dims: FeatureDims): void {
  const [channels, height, width] = dims;
  if (![channels, height, width].every((d) => Number.isInteger(d) && d > 0)) {
    throw new AppError('INTERNAL', `Feature map dims must be three positive integers (channels, height, width), got [${dims.join(', ')}].`);
  }
  if (features.length !== channels * height * width) {
    throw new AppError('INTERNAL', `Feature map holds ${features.length} values, not ${channels} × ${height} × ${width}.`);
  }
}

/**
 * Raw class activation map CAM(i, j) = Σ_c weights[c] · A_c(i, j), row-major height × width, in the
 * units of the class score (no ReLU, no scaling: its spatial mean plus the bias is the logit).
 * Sums are accumulated in float64 so that 64 to 2,048 channels add no visible rounding.
 */
export function computeCam(features: Float32Array, dims: FeatureDims, weights: ArrayLike<number>): Float32Array {
  checkFeatures(features, dims);
  const [channels, height, width] = dims;
  if (weights.length !== channels) {
    throw new AppError('MODEL_MANIFEST_INVALID', `The head has ${weights.length} weights per class but the feature map has ${channels} channels; the head does not belong to this feature map.`);
  }
  const plane = height * width;
  const sum = new Float64Array(plane);
  for (let c = 0; c < channels; c++) {
    const w = weights[c] as number;
    if (w === 0) continue;
    const offset = c * plane;
    for (let i = 0; i < plane; i++) sum[i] = (sum[i] as number) + w * (features[offset + i] as number);
  }
  return Float32Array.from(sum);
}

/**
 * Display form of a map: negative evidence dropped (ReLU, as both papers do for display), then divided
 * by the maximum so the strongest evidence is 1. A map with no positive value stays all zeros: there
 * is no evidence to show, and dividing by a zero maximum must not invent NaN.
 */
export function normaliseCam(raw: Float32Array): Float32Array {
  let max = 0;
  for (const v of raw) {
    if (!Number.isFinite(v)) {
      throw new AppError('MODEL_INFERENCE_FAILED', 'The class activation map holds NaN or infinite values: the feature map or the head weights are not finite.');
    }
    if (v > max) max = v;
  }
  const out = new Float32Array(raw.length);
  if (max === 0) return out;
  for (let i = 0; i < raw.length; i++) {
    const v = raw[i] as number;
    out[i] = v > 0 ? v / max : 0;
  }
  return out;
}

/** Accepts feature-map dims as [C, H, W] or as a batch-of-one tensor's [1, C, H, W]. */
function featureDims(dims: readonly number[]): FeatureDims {
  if (dims.length === 4 && dims[0] === 1) return [dims[1] as number, dims[2] as number, dims[3] as number];
  if (dims.length === 3) return [dims[0] as number, dims[1] as number, dims[2] as number];
  throw new AppError('INTERNAL', `A class activation map needs one feature map, [C, H, W] or [1, C, H, W]; got dims [${dims.join(', ')}].`);
}

/**
 * CAM for one class of a GAP + linear model: the normalised map for display plus the raw extremes.
 * `dims` may be the feature tensor's own dims ([1, C, H, W]).
 */
export function camForClass(features: Float32Array, dims: readonly number[], head: LinearHead, classIndex: number): ClassActivationMap {
  const shape = featureDims(dims);
  const weights = head.weight[classIndex];
  if (!Number.isInteger(classIndex) || weights === undefined || classIndex < 0) {
    throw new AppError('INTERNAL', `Class index ${classIndex} is outside the head's ${head.weight.length} classes.`);
  }
  const raw = computeCam(features, shape, weights);
  let rawMin = Infinity;
  let rawMax = -Infinity;
  for (const v of raw) {
    if (v < rawMin) rawMin = v;
    if (v > rawMax) rawMax = v;
  }
  return { map: normaliseCam(raw), height: shape[1], width: shape[2], rawMin, rawMax };
}

/** Grad-CAM map from channel weights: ReLU(Σ_c α_c · A_c), normalised as {@link normaliseCam}. */
export function gradCamMap(features: Float32Array, dims: FeatureDims, weights: ArrayLike<number>): Float32Array {
  return normaliseCam(computeCam(features, dims, weights));
}

/**
 * The finite-difference step of {@link gradCamWeights}: 2⁻⁶ times the feature map's root mean square,
 * rounded to a power of two, so the step means the same whatever the units of the features.
 *
 * A central difference of a head evaluated in float32 (unit roundoff u = 2⁻²⁴) has two errors:
 * - rounding: the two evaluations differ only through channel c, so every other channel rounds the
 *   same way and cancels; what is left is about one rounding of the logit, u·|y|, divided by the step.
 *   It grows as 1/ε.
 * - truncation: zero for a head linear in the pooled features, and for a ReLU head when no hidden unit
 *   switches within ±ε of the pooled feature; (ε²/6)·∂³y/∂t³ for a smooth head (tanh, GELU). A ReLU
 *   kink inside ±ε mixes the slopes on its two sides, so larger steps explain a blurred gradient.
 * Measured on the fixtures (test/fixtures/cam, feature RMS ≈ 0.5), as the largest error relative to
 * the largest |α|: 1.0e-5 (linear head), 2.6e-5 (ReLU MLP), 4.8e-5 (tanh MLP) at this step; the error
 * doubles with each halving of the step below it, and the ReLU head breaks (3e-2) at 2⁵ times it, where
 * the step passes the nearest kink (27 times the step away). 2⁻⁶ keeps the error about two orders of
 * magnitude below the 1/255 resolution of a displayed map while crossing few kinks.
 */
export function gradCamStep(features: Float32Array): number {
  let squares = 0;
  for (const v of features) squares += v * v;
  const rms = Math.sqrt(squares / Math.max(1, features.length));
  // An all-zero (or non-finite) map has no scale of its own; unit steps are then as good as any.
  const scale = Number.isFinite(rms) && rms > 0 ? 2 ** Math.round(Math.log2(rms)) : 1;
  return scale * 2 ** -6;
}

export interface GradCamOptions {
  /** Finite-difference step added to every element of one channel; default {@link gradCamStep}. */
  step?: number;
  /**
   * Upper bound on one batch (2 × channels shifted copies of the map): above it the copies run in
   * several batches. The default, 64 MB, is 13 times the demo's 128 copies of 64×12×12 floats
   * (4.7 MB); a 1,280-channel 7×7 map (EfficientNet-B0) would need 642 MB at once, so it is split.
   */
  maxBatchBytes?: number;
}

const DEFAULT_MAX_BATCH_BYTES = 64 * 1024 * 1024;

/** The head's batch size when its input fixes the leading dimension; undefined when it is dynamic. */
function fixedBatchSize(head: ort.InferenceSession, inputName: string): number | undefined {
  const meta = head.inputMetadata.find((m) => m.name === inputName);
  if (meta === undefined) {
    throw new AppError('MODEL_MANIFEST_INVALID', `The head has no input "${inputName}" (it has ${head.inputNames.join(', ')}).`);
  }
  const first = meta.isTensor ? meta.shape[0] : undefined;
  return typeof first === 'number' && first > 0 ? first : undefined;
}

/**
 * Grad-CAM channel weights α_c = (1/HW) Σ_ij ∂y_k/∂A_c,ij for a head given as an ONNX model mapping the
 * feature map [N, C, H, W] to class scores [N, K] (logits: Grad-CAM explains the score before softmax).
 *
 * onnxruntime computes no gradients, but α needs only the sum of the gradient over each channel, which
 * is the derivative along the direction 1_c that shifts every element of channel c by the same amount:
 *   Σ_ij ∂y_k/∂A_c,ij = d/dt y_k(A + t·1_c) at t = 0.
 * It is taken by central differences, y_k(A + ε·1_c) − y_k(A − ε·1_c), for all channels in one batch
 * of 2C shifted copies (split only when larger than `maxBatchBytes`; a head exported with a fixed
 * batch size gets batches of exactly that size, the last one padded with unshifted copies). The divisor is the shift actually stored in float32 (Σ_ij (A⁺ − A⁻)), not 2ε·HW, so rounding
 * of the shifted inputs does not enter the result. Exact up to float32 rounding for a head linear in
 * the pooled features, and for a ReLU head whose kinks are farther than ε; O(ε²) for smooth heads (see
 * {@link gradCamStep} for the step and the measured error).
 */
export async function gradCamWeights(
  head: ort.InferenceSession,
  inputName: string,
  outputName: string,
  features: Float32Array,
  dims: FeatureDims,
  classIndex: number,
  options: GradCamOptions = {},
): Promise<Float64Array> {
  checkFeatures(features, dims);
  const [channels, height, width] = dims;
  if (!Number.isInteger(classIndex) || classIndex < 0) throw new AppError('INTERNAL', `Class index ${classIndex} is not a non-negative integer.`);
  if (!head.outputNames.includes(outputName)) {
    throw new AppError('MODEL_MANIFEST_INVALID', `The head has no output "${outputName}" (it has ${head.outputNames.join(', ')}).`);
  }
  const step = options.step ?? gradCamStep(features);
  if (!(step > 0) || !Number.isFinite(step)) throw new AppError('INTERNAL', `The finite-difference step must be a positive number, got ${step}.`);

  const plane = height * width;
  const size = channels * plane;
  const rows = 2 * channels;
  const fixed = fixedBatchSize(head, inputName);
  const batch = fixed ?? Math.min(rows, Math.max(1, Math.floor((options.maxBatchBytes ?? DEFAULT_MAX_BATCH_BYTES) / (size * 4))));

  // Row 2c holds A + ε·1_c, row 2c + 1 holds A − ε·1_c.
  const scores = new Float64Array(rows);
  const shifts = new Float64Array(rows);
  for (let first = 0; first < rows; first += batch) {
    const count = Math.min(batch, rows - first);
    // Rows past `count` exist only to fill a fixed batch; they hold the unshifted map and are not read.
    const runRows = fixed ?? count;
    const data = new Float32Array(runRows * size);
    for (let r = count; r < runRows; r++) data.set(features, r * size);
    for (let r = 0; r < count; r++) {
      const row = first + r;
      const channel = row >> 1;
      const sign = row % 2 === 0 ? 1 : -1;
      const base = r * size;
      data.set(features, base);
      const start = base + channel * plane;
      let shift = 0;
      for (let i = 0; i < plane; i++) {
        const original = features[channel * plane + i] as number;
        data[start + i] = original + sign * step; // stored as float32: the shift is re-read below
        shift += (data[start + i] as number) - original;
      }
      shifts[row] = shift;
    }
    let output: ort.Tensor | undefined;
    try {
      const results = await head.run({ [inputName]: new ort.Tensor('float32', data, [runRows, channels, height, width]) }, [outputName]);
      output = results[outputName];
    } catch (e) {
      throw new AppError('MODEL_INFERENCE_FAILED', `The Grad-CAM head could not run on a batch of ${runRows} feature maps: ${(e as Error).message}`, { cause: e });
    }
    if (!output || output.type !== 'float32' || output.dims.length !== 2 || output.dims[0] !== runRows) {
      throw new AppError('MODEL_MANIFEST_INVALID', `The Grad-CAM head output "${outputName}" must be float32 [N, classes]; it is ${output?.type ?? 'missing'} [${output?.dims.join(', ') ?? ''}].`);
    }
    const classes = output.dims[1] as number;
    if (classIndex >= classes) throw new AppError('INTERNAL', `Class index ${classIndex} is outside the head's ${classes} classes.`);
    const values = output.data as Float32Array;
    for (let r = 0; r < count; r++) scores[first + r] = values[r * classes + classIndex] as number;
  }

  const weights = new Float64Array(channels);
  for (let c = 0; c < channels; c++) {
    // (y⁺ − y⁻) / Σ_ij(A⁺ − A⁻) is the mean gradient over the channel's cells: α_c itself.
    const difference = (scores[2 * c] as number) - (scores[2 * c + 1] as number);
    weights[c] = difference / ((shifts[2 * c] as number) - (shifts[2 * c + 1] as number));
  }
  return weights;
}
