import assert from 'node:assert/strict';
import { ClinicalFeatures, type FeatureIssueCode, type FeatureValue } from '../../src/core/report.ts';
import { FEATURE_NAMES, type FeatureName } from '../../src/clinical/features.ts';

export interface Expected {
  values?: Partial<Record<FeatureName, FeatureValue>>;
  /** Span texts per feature, in note order; a feature not listed must have no span. */
  spans?: Partial<Record<FeatureName, string[]>>;
  /** [code, feature] of every issue, in order. */
  issues?: Array<[FeatureIssueCode, FeatureName | undefined]>;
}

export const ALL_NULL: Readonly<Record<FeatureName, null>> = Object.fromEntries(FEATURE_NAMES.map((n) => [n, null])) as Record<FeatureName, null>;

/** Checks a parse result completely: schema, every value, every span (and its offsets), every issue. */
export function assertFeatures(result: ClinicalFeatures, expected: Expected, text?: string): void {
  ClinicalFeatures.parse(result);
  assert.deepEqual(Object.keys(result.values), [...FEATURE_NAMES], 'every catalogue feature is a key, in catalogue order');
  assert.deepEqual(result.values, { ...ALL_NULL, ...expected.values });
  const spans: Record<string, string[]> = {};
  for (const span of result.spans) {
    if (text !== undefined) {
      assert.equal(span.source, 'note');
      assert.ok(span.start !== undefined && span.end !== undefined, `note span of ${span.feature} has offsets`);
      assert.equal(text.slice(span.start, span.end), span.text, `span of ${span.feature} is the text at its offsets`);
    }
    (spans[span.feature] ??= []).push(span.text);
  }
  assert.deepEqual(spans, expected.spans ?? {});
  assert.deepEqual(result.issues.map((i) => [i.code, i.feature]), expected.issues ?? []);
}
