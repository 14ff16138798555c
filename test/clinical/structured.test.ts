import assert from 'node:assert/strict';
import { test } from 'node:test';
import { AppError } from '../../src/core/errors.ts';
import { parseNote } from '../../src/clinical/note.ts';
import { parseStructuredNote } from '../../src/clinical/structured.ts';
import { ALL_NULL, assertFeatures } from './support.ts';

test('reads a complete structured note, deriving score and grade group, with JSON-key spans', () => {
  const result = parseStructuredNote({
    age: 68, sex: 'M', psa: 12.4, gleason_primary: 3, gleason_secondary: 4, t_stage: 'cT2b',
    pct_positive_cores: 33.3, prior_treatment: false, ecog: 0, metastasis: false,
  });
  assertFeatures(result, {
    values: {
      age: 68, sex: 'male', psa: 12.4, gleason_primary: 3, gleason_secondary: 4, gleason_score: 7, grade_group: 2,
      t_stage: 2.2, pct_positive_cores: 33.3, prior_treatment: false, ecog: 0, metastasis: false,
    },
    spans: {
      age: ['68'], sex: ['"M"'], psa: ['12.4'], gleason_primary: ['3'], gleason_secondary: ['4'], gleason_score: ['3', '4'], grade_group: ['3', '4'],
      t_stage: ['"cT2b"'], pct_positive_cores: ['33.3'], prior_treatment: ['false'], ecog: ['0'], metastasis: ['false'],
    },
  });
  for (const span of result.spans) {
    assert.equal(span.source, 'json');
    assert.equal(span.start, undefined);
  }
  // Derived values point at the keys they were derived from.
  assert.deepEqual(result.spans.filter((s) => s.feature === 'grade_group').map((s) => s.key), ['gleason_primary', 'gleason_secondary']);
});

test('PSA as { value, unit }: units converted, decimal-comma strings read, unknown units reported', () => {
  assert.equal(parseStructuredNote({ psa: { value: 4.5, unit: 'ug/L' } }).values['psa'], 4.5);
  assert.equal(parseStructuredNote({ psa: { value: '4,5', unit: 'ng/ml' } }).values['psa'], 4.5);
  assert.equal(parseStructuredNote({ psa: { value: 150, unit: 'pg/mL' } }).values['psa'], 0.15);
  assert.equal(parseStructuredNote({ psa: { value: 7 } }).values['psa'], 7);
  assert.equal(parseStructuredNote({ psa: '7.1' }).values['psa'], 7.1);
  const result = parseStructuredNote({ psa: { value: 7, unit: 'ng/dL' } });
  assertFeatures(result, { spans: { psa: ['{"value":7,"unit":"ng/dL"}'] }, issues: [['UNKNOWN_UNIT', 'psa']] });
});

test('the same validation as free text: unparseable, out of range, contradictory, unknown fields', () => {
  const result = parseStructuredNote({
    age: 'abc', sex: 'X', psa: -3, gleason_primary: 3, gleason_secondary: 4, gleason_score: 8, t_stage: 2.7, ecog: 1.5,
    metastasis: 'yes', pct_positive_cores: 120, mrn: '12345', name: 'not a feature',
  });
  assertFeatures(result, {
    values: { gleason_primary: 3, gleason_secondary: 4 },
    spans: {
      age: ['"abc"'], sex: ['"X"'], psa: ['-3'], gleason_primary: ['3'], gleason_secondary: ['4'], gleason_score: ['8'], grade_group: ['3', '4', '8'],
      t_stage: ['2.7'], ecog: ['1.5'], metastasis: ['"yes"'], pct_positive_cores: ['120'],
    },
    issues: [
      ['UNPARSEABLE', 'age'], ['UNPARSEABLE', 'sex'], ['OUT_OF_RANGE', 'psa'], ['CONTRADICTORY', 'gleason_score'], ['CONTRADICTORY', 'grade_group'],
      ['UNPARSEABLE', 't_stage'], ['OUT_OF_RANGE', 'pct_positive_cores'], ['UNPARSEABLE', 'ecog'], ['UNPARSEABLE', 'metastasis'],
      ['UNKNOWN_FIELD', undefined], ['UNKNOWN_FIELD', undefined],
    ],
  });
  const messages = result.issues.map((i) => i.message);
  assert.ok(messages.includes("age 'abc' is not a number; age is not used"), messages.join('\n'));
  assert.ok(messages.includes("The structured note has a field 'mrn' that is not a clinical feature; it is ignored"));
  // Unknown fields are named, their values never echoed (they may be identifiers).
  assert.ok(!messages.some((m) => m.includes('12345')));
});

test('a stated grade group is checked against the Gleason keys', () => {
  assertFeatures(parseStructuredNote({ gleason_primary: 4, gleason_secondary: 3, grade_group: 2 }), {
    values: { gleason_primary: 4, gleason_secondary: 3, gleason_score: 7 },
    spans: { gleason_primary: ['4'], gleason_secondary: ['3'], gleason_score: ['4', '3'], grade_group: ['2', '4', '3'] },
    issues: [['CONTRADICTORY', 'grade_group']],
  });
  assert.equal(parseStructuredNote({ gleason_score: 9 }).values['grade_group'], 5);
  assert.equal(parseStructuredNote({ gleason_score: 7, grade_group: 3 }).values['grade_group'], 3);
});

test('T stage as a category string or its ordinal code; pathological stage refused', () => {
  assert.equal(parseStructuredNote({ t_stage: 'T1c' }).values['t_stage'], 1.3);
  assert.equal(parseStructuredNote({ t_stage: 3.1 }).values['t_stage'], 3.1);
  const result = parseStructuredNote({ t_stage: 'pT3a' });
  assert.equal(result.values['t_stage'], null);
  assert.match(result.issues[0]?.message ?? '', /pathological or post-therapy stage/);
});

test('null means not recorded; many unknown fields are summed up', () => {
  assertFeatures(parseStructuredNote({ age: null, psa: null }), {});
  const wide = Object.fromEntries(Array.from({ length: 30 }, (_, i) => [`field_${i}`, i]));
  const issues = parseStructuredNote(wide).issues;
  assert.equal(issues.length, 21);
  assert.equal(issues.at(-1)?.message, 'The structured note has 10 more fields that are not clinical features; they are ignored');
});

test('a structured note that is not an object is INVALID_REQUEST', () => {
  for (const input of [[1, 2], 'PSA 4', 42, true]) {
    assert.throws(() => parseStructuredNote(input), (e: unknown) => e instanceof AppError && e.code === 'INVALID_REQUEST' && /must be a JSON object/.test(e.message));
  }
});

test('parseNote picks the form the case has; none is NO_NOTE; both is refused', () => {
  for (const input of [undefined, {}, { text: null, json: null }]) {
    const result = parseNote(input);
    assert.deepEqual(result.values, ALL_NULL);
    assert.deepEqual(result.issues, [{ code: 'NO_NOTE', message: 'The case has no clinical note' }]);
  }
  assert.equal(parseNote({ text: 'PSA 4.1 ng/mL' }).values['psa'], 4.1);
  assert.equal(parseNote({ json: { psa: 4.1 } }).values['psa'], 4.1);
  assert.deepEqual(parseNote({ text: '  ' }).issues.map((i) => i.code), ['NO_NOTE']);
  assert.throws(() => parseNote({ text: 'PSA 4', json: { psa: 4 } }), (e: unknown) => e instanceof AppError && e.code === 'INVALID_REQUEST');
});
