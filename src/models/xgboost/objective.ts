import { AppError } from '../../core/errors.ts';

// What an XGBoost objective means at prediction time: how the stored base_score becomes a margin and
// how a margin becomes the reported prediction. XGBoost stores base_score in the *output* space
// (a probability for logistic objectives, a mean count for Poisson, ...) and converts it once with the
// objective's ProbToMargin before adding tree outputs; the inverse link (PredTransform) is applied
// after the trees. Both steps run in float32 in XGBoost, so they are rounded to float32 here too.
//
// Verified against xgboost 1.7.4 (models/xgboost-reference and test/models/xgboost-oracle.test.ts):
// - binary:logistic, reg:logistic: margin0 = logit(base_score); prediction = sigmoid(margin).
// - binary:logitraw: margin0 = base_score itself (no logit, although the margin is a log-odds);
//   prediction = margin.
// - count:poisson, reg:gamma, reg:tweedie: margin0 = ln(base_score); prediction = exp(margin).
// - multi:softprob, multi:softmax: margin0 = base_score itself, added raw to every class margin (no
//   conversion: the multi-class objective keeps the default identity ProbToMargin); prediction =
//   softmax over classes. multi:softmax reports class indices in XGBoost; here it is treated as softprob
//   so that callers always receive probabilities.
// - reg:squarederror and the other identity objectives: margin0 = base_score; prediction = margin.
// xgboost 1.7 estimates base_score from the training labels only for reg:absoluteerror; everywhere else
// the stored value is the user's base_score or the 0.5 default. Either way the stored value is the one
// that counts here.

export type OutputTransform = 'identity' | 'sigmoid' | 'exp' | 'softmax';

export interface ObjectiveSpec {
  readonly name: string;
  readonly transform: OutputTransform;
  /** True for multi-class objectives: one output group (and one tree per round) per class. */
  readonly multiclass: boolean;
  /** base_score (output space, float32) → margin (float32), as the objective's ProbToMargin. */
  baseMargin(baseScore: number): number;
}

const fround = Math.fround;

function logitMargin(name: string) {
  return (p: number): number => {
    if (!(p > 0 && p < 1)) throw new AppError('MODEL_MANIFEST_INVALID', `XGBoost model: base_score ${p} is outside (0, 1), which objective "${name}" requires`);
    // `0 -` rather than unary minus: base_score 0.5 gives margin 0, not -0.
    return fround(0 - Math.log(fround(fround(1 / p) - 1)));
  };
}

function logMargin(name: string) {
  return (mean: number): number => {
    if (!(mean > 0)) throw new AppError('MODEL_MANIFEST_INVALID', `XGBoost model: base_score ${mean} must be positive for objective "${name}"`);
    return fround(Math.log(mean));
  };
}

const identityMargin = (v: number): number => v;

function spec(name: string, transform: OutputTransform, baseMargin: (v: number) => number): ObjectiveSpec {
  return { name, transform, multiclass: transform === 'softmax', baseMargin };
}

const SUPPORTED: ReadonlyMap<string, ObjectiveSpec> = new Map([
  spec('binary:logistic', 'sigmoid', logitMargin('binary:logistic')),
  spec('reg:logistic', 'sigmoid', logitMargin('reg:logistic')),
  spec('binary:logitraw', 'identity', identityMargin),
  spec('multi:softprob', 'softmax', identityMargin),
  spec('multi:softmax', 'softmax', identityMargin),
  spec('reg:squarederror', 'identity', identityMargin),
  spec('reg:squaredlogerror', 'identity', identityMargin),
  spec('reg:pseudohubererror', 'identity', identityMargin),
  spec('reg:absoluteerror', 'identity', identityMargin),
  spec('count:poisson', 'exp', logMargin('count:poisson')),
  spec('reg:gamma', 'exp', logMargin('reg:gamma')),
  spec('reg:tweedie', 'exp', logMargin('reg:tweedie')),
  spec('rank:pairwise', 'identity', identityMargin),
  spec('rank:ndcg', 'identity', identityMargin),
  spec('rank:map', 'identity', identityMargin),
].map((s) => [s.name, s]));

export function supportedObjectives(): string[] {
  return [...SUPPORTED.keys()];
}

export function objectiveSpec(name: string): ObjectiveSpec {
  const found = SUPPORTED.get(name);
  if (!found) {
    throw new AppError('MODEL_MANIFEST_INVALID', `XGBoost model: objective "${name}" is not supported; supported objectives are ${supportedObjectives().join(', ')}`);
  }
  return found;
}

/**
 * Turns margins into predictions in place, in float32 like XGBoost's PredTransform. Softmax subtracts
 * the largest margin first so that exp never overflows.
 */
export function transformMargins(transform: OutputTransform, margins: Float64Array, out: number[]): void {
  const n = margins.length;
  switch (transform) {
    case 'identity':
      for (let i = 0; i < n; i++) out[i] = margins[i] as number;
      return;
    case 'sigmoid':
      for (let i = 0; i < n; i++) out[i] = fround(1 / (1 + Math.exp(-(margins[i] as number))));
      return;
    case 'exp':
      for (let i = 0; i < n; i++) out[i] = fround(Math.exp(margins[i] as number));
      return;
    case 'softmax': {
      let max = -Infinity;
      for (let i = 0; i < n; i++) max = Math.max(max, margins[i] as number);
      let sum = 0;
      for (let i = 0; i < n; i++) {
        const e = Math.exp((margins[i] as number) - max);
        out[i] = e;
        sum += e;
      }
      for (let i = 0; i < n; i++) out[i] = fround((out[i] as number) / sum);
      return;
    }
  }
}
