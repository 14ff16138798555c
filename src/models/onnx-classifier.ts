import * as ort from 'onnxruntime-node';
import { AppError } from '../core/errors.ts';
import type { OnnxManifest } from '../core/manifest.ts';
import type { ModelRef } from '../core/result.ts';
import { readVerifiedArtifact, requireKind, type LoadedManifest } from './manifest.ts';
import { packBatch, toInputTensor, type RgbImage } from './preprocess.ts';
import { startInferenceHost, type InferenceHost } from './onnx-host.ts';

export interface ClassProbability {
  code: string;
  display: string;
  probability: number;
}

export interface FeatureMap {
  data: Float32Array;
  /** [C, H, W] of the single image. */
  dims: [number, number, number];
}

export interface ImageClassifier {
  readonly ref: ModelRef;
  readonly manifest: OnnxManifest;
  /** The folder of the manifest (explanation files such as CAM weights are relative to it). */
  readonly dir: string;
  classify(image: RgbImage): Promise<ClassProbability[]>;
  /** Classifies and also returns the manifest's feature map (for class activation maps). */
  classifyWithFeatureMap(image: RgbImage): Promise<{ classes: ClassProbability[]; featureMap: FeatureMap }>;
  /**
   * Classifies a batch of tiles in one session.run: per tile, the probability of every label (row-major,
   * tiles × labels) and, when asked for, one value per tile of another output (attention logits).
   */
  classifyBatch(images: readonly RgbImage[], extraOutput?: string): Promise<{ probabilities: Float32Array; extra: Float32Array | undefined }>;
  close(): Promise<void>;
}

export interface OnnxOptions {
  intraOpThreads: number;
}

function activate(values: Float32Array, activation: 'softmax' | 'sigmoid' | 'none'): number[] {
  const xs = Array.from(values);
  if (activation === 'sigmoid') return xs.map((x) => 1 / (1 + Math.exp(-x)));
  if (activation === 'none') return xs;
  const max = Math.max(...xs);
  const exps = xs.map((x) => Math.exp(x - max));
  const sum = exps.reduce((a, b) => a + b, 0);
  return exps.map((e) => e / sum);
}

/** An onnxruntime session of a verified artifact, with the platform's threading; a load failure names the model. */
export async function createOnnxSession(bytes: Uint8Array, loaded: Pick<LoadedManifest, 'artifactPath'> & { manifest: { name: string } }, options: OnnxOptions): Promise<ort.InferenceSession> {
  try {
    return await ort.InferenceSession.create(bytes, {
      intraOpNumThreads: options.intraOpThreads,
      interOpNumThreads: 1,
      executionMode: 'sequential',
      graphOptimizationLevel: 'all',
    });
  } catch (e) {
    throw new AppError('MODEL_MANIFEST_INVALID', `${loaded.manifest.name}: onnxruntime could not load ${loaded.artifactPath}: ${(e as Error).message}`, { cause: e });
  }
}

/** Loads an ONNX image classifier after checking its artifact against the manifest's sha256. */
export async function loadOnnxClassifier(anyKind: LoadedManifest, options: OnnxOptions): Promise<ImageClassifier> {
  const loaded = requireKind(anyKind, 'onnx');
  const { manifest } = loaded;
  if (manifest.detection) throw new AppError('MODEL_MANIFEST_INVALID', `${manifest.name} is an object detector; use it with the model.detect stage`);
  const bytes = await readVerifiedArtifact(loaded);
  const session = await createOnnxSession(bytes, loaded, options);
  if (!session.inputNames.includes(manifest.inputs.name)) {
    throw new AppError('MODEL_MANIFEST_INVALID', `${manifest.name}: manifest input "${manifest.inputs.name}" is not in the model (it has ${session.inputNames.join(', ')})`);
  }
  if (!session.outputNames.includes(manifest.outputs.name)) {
    throw new AppError('MODEL_MANIFEST_INVALID', `${manifest.name}: manifest output "${manifest.outputs.name}" is not in the model (it has ${session.outputNames.join(', ')})`);
  }
  if (manifest.outputs.featureMap && !session.outputNames.includes(manifest.outputs.featureMap)) {
    throw new AppError('MODEL_MANIFEST_INVALID', `${manifest.name}: manifest featureMap "${manifest.outputs.featureMap}" is not an output of the model (it has ${session.outputNames.join(', ')})`);
  }
  let host: Promise<InferenceHost> | undefined;
  const ref: ModelRef = { name: manifest.name, version: manifest.version, kind: manifest.kind, sha256: manifest.sha256 };
  const labels = manifest.outputs.labels;

  async function run(image: RgbImage, withFeatureMap: boolean) {
    const { data, dims } = await toInputTensor(image, manifest.inputs.preprocess);
    const fetches = withFeatureMap && manifest.outputs.featureMap ? [manifest.outputs.name, manifest.outputs.featureMap] : [manifest.outputs.name];
    let results: ort.InferenceSession.OnnxValueMapType;
    try {
      // Only the declared outputs are fetched: the feature map is computed on demand (explanations).
      results = await session.run({ [manifest.inputs.name]: new ort.Tensor('float32', data, dims) }, fetches);
    } catch (e) {
      throw new AppError('MODEL_INFERENCE_FAILED', `${manifest.name}: ${(e as Error).message}`, { cause: e });
    }
    const output = results[manifest.outputs.name];
    if (!output || output.type !== 'float32' || output.data.length !== labels.length) {
      throw new AppError('MODEL_INFERENCE_FAILED', `${manifest.name}: output "${manifest.outputs.name}" has ${output?.data.length ?? 0} values, the manifest lists ${labels.length} labels`);
    }
    const probs = activate(output.data as Float32Array, manifest.outputs.activation);
    const classes = labels.map((l, i) => ({ code: l.code, display: l.display, probability: Math.min(1, Math.max(0, probs[i] ?? 0)) }));
    return { classes, features: manifest.outputs.featureMap ? results[manifest.outputs.featureMap] : undefined };
  }

  return {
    ref,
    manifest,
    dir: loaded.dir,
    async classify(image) {
      return (await run(image, false)).classes;
    },
    async classifyWithFeatureMap(image) {
      const { classes, features } = await run(image, true);
      if (!features || features.type !== 'float32' || features.dims.length !== 4) {
        throw new AppError('MODEL_MANIFEST_INVALID', `${manifest.name}: featureMap "${manifest.outputs.featureMap ?? '(none)'}" is not a float32 [N,C,H,W] output of the model`);
      }
      const [, c, h, w] = features.dims as [number, number, number, number];
      return { classes, featureMap: { data: features.data as Float32Array, dims: [c, h, w] } };
    },
    async classifyBatch(images, extraOutput) {
      if (images.length === 0) return { probabilities: new Float32Array(0), extra: extraOutput ? new Float32Array(0) : undefined };
      if (extraOutput && !session.outputNames.includes(extraOutput)) {
        throw new AppError('MODEL_MANIFEST_INVALID', `${manifest.name}: output "${extraOutput}" is not in the model (it has ${session.outputNames.join(', ')})`);
      }
      const { data, dims } = await packBatch(images, manifest.inputs.preprocess);
      let results: Record<string, { data: Float32Array; dims: readonly number[]; type: string }>;
      try {
        // Batches run on the model's own thread: a batch takes long enough to stall the event loop.
        if (!host) {
          const starting = startInferenceHost(bytes, { intraOpThreads: options.intraOpThreads });
          host = starting;
          // A thread that failed to start is started again on the next batch.
          starting.catch(() => { if (host === starting) host = undefined; });
        }
        results = await (await host).run({ [manifest.inputs.name]: { data, dims } }, extraOutput ? [manifest.outputs.name, extraOutput] : [manifest.outputs.name]);
      } catch (e) {
        throw new AppError('MODEL_INFERENCE_FAILED', `${manifest.name}: ${(e as Error).message}`, { cause: e });
      }
      const output = results[manifest.outputs.name];
      const k = labels.length;
      if (!output || output.type !== 'float32' || output.data.length !== k * images.length) {
        throw new AppError('MODEL_INFERENCE_FAILED', `${manifest.name}: output "${manifest.outputs.name}" has ${output?.data.length ?? 0} values for ${images.length} tiles × ${k} labels`);
      }
      const raw = output.data as Float32Array;
      const probabilities = new Float32Array(raw.length);
      for (let n = 0; n < images.length; n++) {
        const row = activate(raw.subarray(n * k, (n + 1) * k), manifest.outputs.activation);
        for (let j = 0; j < k; j++) probabilities[n * k + j] = Math.min(1, Math.max(0, row[j] ?? 0));
      }
      let extra: Float32Array | undefined;
      if (extraOutput) {
        const values = results[extraOutput];
        if (!values || values.type !== 'float32' || values.data.length !== images.length) {
          throw new AppError('MODEL_INFERENCE_FAILED', `${manifest.name}: output "${extraOutput}" must hold one float per tile; it has ${values?.data.length ?? 0} for ${images.length} tiles`);
        }
        extra = Float32Array.from(values.data as Float32Array);
      }
      return { probabilities, extra };
    },
    async close() {
      await session.release();
      if (host) await (await host).close();
    },
  };
}
