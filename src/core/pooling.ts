import { AppError } from './errors.ts';

// Pooling turns the scores of a slide's tiles into one slide score (DESIGN.md §1.1). Three rules, as
// named by a model manifest:
// - mean: every tile counts the same; right when the label describes the whole tissue.
// - top-k: the mean of the k highest tiles; right when a small focus decides the slide (a few tiles of
//   tumour in a large biopsy), and less noisy than the single maximum.
// - attention: a softmax-weighted mean with per-tile weights from the model (attention-based multiple
//   instance learning, Ilse, Tomczak & Welling, ICML 2018).
// All sums are in float64, so rounding stays far below any clinically meaningful difference even for
// the ~10⁵ tiles of a large slide.

export type PoolingMethod = { kind: 'mean' } | { kind: 'top-k'; k: number } | { kind: 'attention' };

type Scores = ArrayLike<number>;

function checkScores(scores: Scores, what = 'tile scores'): void {
  if (scores.length === 0) throw new AppError('INVALID_REQUEST', `Cannot pool an empty list of ${what}: the slide has no scored tiles.`);
  for (let i = 0; i < scores.length; i++) {
    if (!Number.isFinite(scores[i])) {
      throw new AppError('INVALID_REQUEST', `The ${what} must be finite numbers; entry ${i} is ${String(scores[i])}.`);
    }
  }
}

/** The arithmetic mean of the scores. */
export function meanPool(scores: Scores): number {
  checkScores(scores);
  let sum = 0;
  for (let i = 0; i < scores.length; i++) sum += scores[i] as number;
  return sum / scores.length;
}

/** The mean of the k largest scores; when k exceeds the number of scores, the mean of all of them. */
export function topKPool(scores: Scores, k: number): number {
  checkScores(scores);
  if (!Number.isInteger(k) || k < 1) throw new AppError('INVALID_REQUEST', `Top-k pooling needs k to be a positive integer, got ${k}.`);
  const sorted = Float64Array.from(scores).sort();
  const take = Math.min(k, sorted.length);
  let sum = 0;
  for (let i = sorted.length - take; i < sorted.length; i++) sum += sorted[i] as number;
  return sum / take;
}

/**
 * Σ softmax(logits)ᵢ · scoresᵢ. The softmax is computed as exp(lᵢ − max l) / Σ exp(lⱼ − max l): equal to
 * the textbook form, but the largest exponent is 0, so logits of any size neither overflow to
 * Infinity (which would give Infinity / Infinity = NaN) nor all underflow to 0.
 */
export function attentionPool(scores: Scores, attentionLogits: Scores): number {
  checkScores(scores);
  checkScores(attentionLogits, 'attention logits');
  if (attentionLogits.length !== scores.length) {
    throw new AppError('INVALID_REQUEST', `Attention pooling needs one logit per tile: ${scores.length} scores but ${attentionLogits.length} logits.`);
  }
  let max = -Infinity;
  for (let i = 0; i < attentionLogits.length; i++) max = Math.max(max, attentionLogits[i] as number);
  let weightSum = 0;
  let weighted = 0;
  for (let i = 0; i < scores.length; i++) {
    const w = Math.exp((attentionLogits[i] as number) - max);
    weightSum += w;
    weighted += w * (scores[i] as number);
  }
  // weightSum ≥ 1 (the maximum contributes exp(0)), so the division is always defined.
  return weighted / weightSum;
}

/** Pools tile scores into a slide score by the method a model manifest names. */
export function poolScores(method: PoolingMethod, scores: Scores, attention?: Scores): number {
  switch (method.kind) {
    case 'mean':
      return meanPool(scores);
    case 'top-k':
      return topKPool(scores, method.k);
    case 'attention':
      if (attention === undefined) {
        throw new AppError('INVALID_REQUEST', 'Attention pooling needs the attention logits of the tiles; the model produced none.');
      }
      return attentionPool(scores, attention);
    default: {
      const unknown: never = method;
      throw new AppError('INVALID_REQUEST', `Unknown pooling method ${JSON.stringify(unknown)}; use mean, top-k or attention.`);
    }
  }
}
