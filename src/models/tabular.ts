import type { XgboostManifest } from '../core/manifest.ts';
import type { ModelRef } from '../core/model-ref.ts';
import { AppError } from '../core/errors.ts';
import { readVerifiedArtifact, requireKind, type LoadedManifest } from './manifest.ts';
import { loadXgboostModel, type XgboostModel } from './xgboost/index.ts';

export interface TabularModel {
  readonly ref: ModelRef;
  readonly manifest: XgboostManifest;
  readonly model: XgboostModel;
}

/** Loads an XGBoost model after checking its sha256 and that it agrees with its manifest. */
export async function loadTabularModel(anyKind: LoadedManifest): Promise<TabularModel> {
  const loaded = requireKind(anyKind, 'xgboost');
  const { manifest } = loaded;
  const bytes = await readVerifiedArtifact(loaded);
  let json: unknown;
  try {
    json = JSON.parse(bytes.toString('utf8'));
  } catch {
    throw new AppError('MODEL_MANIFEST_INVALID', `${loaded.artifactPath} is not JSON; XGBoost models are read from save_model("model.json")`);
  }
  const model = loadXgboostModel(json);
  const features = manifest.inputs.features;
  if (features.length !== model.numFeature) {
    throw new AppError('MODEL_MANIFEST_INVALID', `${manifest.name}: the manifest lists ${features.length} features, the model has ${model.numFeature}`);
  }
  if (model.featureNames && model.featureNames.some((n, i) => n !== features[i]?.name)) {
    throw new AppError('MODEL_MANIFEST_INVALID', `${manifest.name}: manifest features (${features.map((f) => f.name).join(', ')}) differ from the model's (${model.featureNames.join(', ')})`);
  }
  const classes = model.outputCount === 1 ? 2 : model.outputCount;
  if (manifest.outputs.labels.length !== classes) {
    throw new AppError('MODEL_MANIFEST_INVALID', `${manifest.name}: the manifest lists ${manifest.outputs.labels.length} labels, the model has ${classes} classes`);
  }
  return { ref: { name: manifest.name, version: manifest.version, kind: manifest.kind, sha256: manifest.sha256 }, manifest, model };
}

/** Class probabilities in label order; a binary model's single output p becomes [1 − p, p]. */
export function classProbabilities(t: TabularModel, row: readonly (number | null)[]): number[] {
  const p = t.model.predict(row);
  return t.model.outputCount === 1 ? [1 - (p[0] ?? 0), p[0] ?? 0] : p;
}
