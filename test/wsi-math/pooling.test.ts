import assert from 'node:assert/strict';
import { test } from 'node:test';
import { AppError } from '../../src/core/errors.ts';
import { attentionPool, meanPool, poolScores, topKPool } from '../../src/core/pooling.ts';

function invalidRequest(pattern: RegExp) {
  return (e: unknown) => e instanceof AppError && e.code === 'INVALID_REQUEST' && pattern.test(e.message);
}

test('mean pooling is the arithmetic mean', () => {
  assert.equal(meanPool([0.2, 0.4, 0.9]), 0.5);
  assert.equal(meanPool(Float32Array.from([1, 0, 0, 0])), 0.25);
});

test('top-k pooling averages the k largest, whatever their order', () => {
  // The two largest of 0.1, 0.9, 0.5, 0.7 are 0.9 and 0.7.
  assert.ok(Math.abs(topKPool([0.1, 0.9, 0.5, 0.7], 2) - 0.8) < 1e-12);
  assert.equal(topKPool([0.1, 0.9, 0.5, 0.7], 1), 0.9);
  // Negative scores sort numerically, not as strings.
  assert.equal(topKPool([-10, -2, -3], 1), -2);
});

test('top-k pooling with k beyond the number of scores takes all of them', () => {
  assert.ok(Math.abs(topKPool([0.1, 0.9, 0.5, 0.7], 10) - 0.55) < 1e-12);
});

test('attention pooling is the softmax-weighted mean', () => {
  // Logits 0 and ln 3 give weights 1/4 and 3/4: 1/4 · 1 + 3/4 · 0 = 0.25.
  assert.ok(Math.abs(attentionPool([1, 0], [0, Math.log(3)]) - 0.25) < 1e-12);
  // Equal logits: the plain mean.
  assert.ok(Math.abs(attentionPool([0.2, 0.4, 0.9], [7, 7, 7]) - 0.5) < 1e-12);
});

test('attention pooling neither overflows nor underflows on huge logits', () => {
  // exp(1000) is Infinity in float64; a naive softmax would return Infinity / Infinity = NaN.
  assert.ok(Math.abs(attentionPool([1, 0], [1000, 1000 + Math.log(3)]) - 0.25) < 1e-12);
  // exp(−1000) is 0; a naive softmax would return 0 / 0 = NaN.
  assert.ok(Math.abs(attentionPool([1, 0], [-1000, -1000 + Math.log(3)]) - 0.25) < 1e-12);
  // One logit dominates completely.
  assert.equal(attentionPool([0.3, 0.8, 0.1], [-1e308, 1e308, 0]), 0.8);
});

test('poolScores dispatches on the method kind', () => {
  const scores = [0.1, 0.9, 0.5, 0.7];
  assert.equal(poolScores({ kind: 'mean' }, scores), meanPool(scores));
  assert.equal(poolScores({ kind: 'top-k', k: 2 }, scores), topKPool(scores, 2));
  assert.equal(poolScores({ kind: 'attention' }, scores, [0, 0, 5, 0]), attentionPool(scores, [0, 0, 5, 0]));
});

test('pooling rejects empty input, length mismatch, missing logits, bad k and non-finite scores', () => {
  assert.throws(() => meanPool([]), invalidRequest(/empty/));
  assert.throws(() => poolScores({ kind: 'top-k', k: 3 }, []), invalidRequest(/empty/));
  assert.throws(() => attentionPool([0.1, 0.2], [1]), invalidRequest(/2 scores but 1 logits/));
  assert.throws(() => poolScores({ kind: 'attention' }, [0.1]), invalidRequest(/attention logits/));
  assert.throws(() => topKPool([0.1], 0), invalidRequest(/positive integer/));
  assert.throws(() => topKPool([0.1], 1.5), invalidRequest(/positive integer/));
  assert.throws(() => meanPool([0.1, Number.NaN]), invalidRequest(/entry 1 is NaN/));
  assert.throws(() => attentionPool([0.1], [Number.POSITIVE_INFINITY]), invalidRequest(/attention logits/));
});
