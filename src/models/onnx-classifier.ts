import * as ort from 'onnxruntime-node';
import { AppError } from '../core/errors.ts';
import type { OnnxManifest } from '../core/manifest.ts';
import type { ModelRef } from '../core/result.ts';
import { readVerifiedArtifact, requireKind, type LoadedManifest } from './manifest.ts';
import { toInputTensor, type RgbImage } from './preprocess.ts';

export interface ClassProbability {
  code: string;
  display: string;
  probability: number;
}

export interface ImageClassifier {
  readonly ref: ModelRef;
  readonly manifest: OnnxManifest;
  classify(image: RgbImage): Promise<ClassProbability[]>;
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

/** Loads an ONNX image classifier after checking its artifact against the manifest's sha256. */
export async function loadOnnxClassifier(anyKind: LoadedManifest, options: OnnxOptions): Promise<ImageClassifier> {
  const loaded = requireKind(anyKind, 'onnx');
  const { manifest } = loaded;
  const bytes = await readVerifiedArtifact(loaded);
  let session: ort.InferenceSession;
  try {
    session = await ort.InferenceSession.create(bytes, {
      intraOpNumThreads: options.intraOpThreads,
      interOpNumThreads: 1,
      executionMode: 'sequential',
      graphOptimizationLevel: 'all',
    });
  } catch (e) {
    throw new AppError('MODEL_MANIFEST_INVALID', `${manifest.name}: onnxruntime could not load ${loaded.artifactPath}: ${(e as Error).message}`, { cause: e });
  }
  if (!session.inputNames.includes(manifest.inputs.name)) {
    throw new AppError('MODEL_MANIFEST_INVALID', `${manifest.name}: manifest input "${manifest.inputs.name}" is not in the model (it has ${session.inputNames.join(', ')})`);
  }
  if (!session.outputNames.includes(manifest.outputs.name)) {
    throw new AppError('MODEL_MANIFEST_INVALID', `${manifest.name}: manifest output "${manifest.outputs.name}" is not in the model (it has ${session.outputNames.join(', ')})`);
  }
  const ref: ModelRef = { name: manifest.name, version: manifest.version, kind: manifest.kind, sha256: manifest.sha256 };
  const labels = manifest.outputs.labels;

  return {
    ref,
    manifest,
    async classify(image) {
      const { data, dims } = await toInputTensor(image, manifest.inputs.preprocess);
      let output: ort.Tensor | undefined;
      try {
        const feeds = { [manifest.inputs.name]: new ort.Tensor('float32', data, dims) };
        // Fetch only the declared output: the feature map is computed on demand (explanations).
        const results = await session.run(feeds, [manifest.outputs.name]);
        output = results[manifest.outputs.name];
      } catch (e) {
        throw new AppError('MODEL_INFERENCE_FAILED', `${manifest.name}: ${(e as Error).message}`, { cause: e });
      }
      if (!output || output.type !== 'float32' || output.data.length !== labels.length) {
        throw new AppError('MODEL_INFERENCE_FAILED', `${manifest.name}: output "${manifest.outputs.name}" has ${output?.data.length ?? 0} values, the manifest lists ${labels.length} labels`);
      }
      const probs = activate(output.data as Float32Array, manifest.outputs.activation);
      return labels.map((l, i) => ({ code: l.code, display: l.display, probability: Math.min(1, Math.max(0, probs[i] ?? 0)) }));
    },
    async close() {
      await session.release();
    },
  };
}
