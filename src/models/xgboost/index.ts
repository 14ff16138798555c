import { AppError } from '../../core/errors.ts';
import { compileEnsemble } from './compile.ts';
import { parseXgboostJson, type TreeEnsemble } from './model-json.ts';
import { transformMargins } from './objective.ts';
import { createTreeShap } from './tree-shap.ts';

// XGBoost models evaluated in-process: the JSON model file becomes a compiled evaluator (compile.ts)
// that reproduces XGBoost's float32 margins exactly, plus exact TreeSHAP (tree-shap.ts) for the
// explanation. No Python or native library at run time.

/** A row: one value per feature in model order; null, undefined or NaN mean missing. */
export type FeatureRow = Float64Array | Float32Array | ArrayLike<number | null | undefined>;

export interface XgboostModel {
  /** XGBoost objective name, e.g. "binary:logistic". */
  readonly objective: string;
  readonly numFeature: number;
  /** num_class as stored: the class count for multi-class objectives, 0 otherwise. */
  readonly numClass: number;
  /** Values per prediction: numClass for multi-class objectives, 1 otherwise. */
  readonly outputCount: number;
  readonly featureNames: readonly string[] | undefined;
  /** base_score as stored in the file, in output space (e.g. a probability). */
  readonly baseScore: number;
  /** base_score in margin space: the starting margin of every output group. */
  readonly baseMargin: number;
  /**
   * Predictions: class probabilities for classification (one for binary objectives, one per class for
   * multi-class ones, multi:softmax included), the transformed value for regression.
   */
  predict(row: FeatureRow): number[];
  /** Raw margins (log-odds, log-mean, ...) per output group, as XGBoost's output_margin=True. */
  predictMargin(row: FeatureRow): number[];
  predictBatch(rows: Iterable<FeatureRow>): number[][];
  /**
   * SHAP values in margin space per output group: numFeature contributions then the bias, as XGBoost's
   * pred_contribs=True. Each group's values sum to its margin.
   */
  contributions(row: FeatureRow): number[][];
}

/**
 * Copies a row into `into` as float32 values with NaN for missing, the representation XGBoost predicts
 * on. Refuses a row of the wrong length and infinite values rather than guessing.
 */
export function toFeatureVector(row: FeatureRow, into: Float64Array): Float64Array {
  const n = into.length;
  if (row.length !== n) throw new AppError('INVALID_REQUEST', `The row has ${row.length} values; the model expects ${n} (one per feature, null for missing)`);
  for (let i = 0; i < n; i++) {
    const v = row[i];
    if (v === null || v === undefined) {
      into[i] = Number.NaN;
    } else if (typeof v !== 'number') {
      throw new AppError('INVALID_REQUEST', `Feature ${i} is ${typeof v}, not a number`);
    } else if (v === Infinity || v === -Infinity) {
      throw new AppError('INVALID_REQUEST', `Feature ${i} is ${v}; only finite numbers or null (missing) are accepted`);
    } else {
      into[i] = Math.fround(v);
    }
  }
  return into;
}

function buildModel(ensemble: TreeEnsemble): XgboostModel {
  const evaluate = compileEnsemble(ensemble);
  const { transform } = ensemble.objective;
  const groups = ensemble.numGroup;
  const width = ensemble.numFeature + 1;
  // One scratch vector per model: evaluation is synchronous, so calls never interleave.
  const features = new Float64Array(ensemble.numFeature);
  const margins = new Float64Array(groups);
  let shap: ((x: Float64Array, out: Float64Array) => void) | undefined;
  let shapOut: Float64Array | undefined;

  const predict = (row: FeatureRow): number[] => {
    evaluate(toFeatureVector(row, features), margins);
    const out = new Array<number>(groups);
    transformMargins(transform, margins, out);
    return out;
  };

  return {
    objective: ensemble.objective.name,
    numFeature: ensemble.numFeature,
    numClass: ensemble.numClass,
    outputCount: groups,
    featureNames: ensemble.featureNames,
    baseScore: ensemble.baseScore,
    baseMargin: ensemble.baseMargin,
    predict,
    predictMargin(row) {
      evaluate(toFeatureVector(row, features), margins);
      return Array.from(margins);
    },
    predictBatch(rows) {
      const out: number[][] = [];
      for (const row of rows) out.push(predict(row));
      return out;
    },
    contributions(row) {
      // Built on first use: most callers never ask for explanations.
      shap ??= createTreeShap(ensemble);
      shapOut ??= new Float64Array(groups * width);
      shap(toFeatureVector(row, features), shapOut);
      const values = shapOut;
      return Array.from({ length: groups }, (_, g) => Array.from(values.subarray(g * width, (g + 1) * width)));
    },
  };
}

/**
 * Loads an XGBoost JSON model (`Booster.save_model("model.json")`), given parsed or as text, and
 * compiles it. Throws MODEL_MANIFEST_INVALID naming what is malformed or unsupported.
 */
export function loadXgboostModel(json: unknown): XgboostModel {
  return buildModel(parseXgboostJson(json));
}

export { parseXgboostJson, type TreeEnsemble, type RegressionTree } from './model-json.ts';
export { compileFlat, compileNested, type MarginEvaluator } from './compile.ts';
export { supportedObjectives } from './objective.ts';
