import assert from 'node:assert/strict';
import { test } from 'node:test';
import { AppError } from '../../src/core/errors.ts';
import {
  FEATURE_CATALOGUE,
  FEATURE_NAMES,
  RECOMMENDER_FEATURES,
  T_STAGE_CODES,
  encodeTStage,
  gradeGroupFromPatterns,
  gradeGroupFromScore,
  toModelRow,
} from '../../src/clinical/features.ts';
import { parseClinicalNote } from '../../src/clinical/note.ts';
import { parseDecimal, psaInNgPerMl } from '../../src/clinical/observations.ts';

test('the catalogue lists every feature once, with type, unit, range and description', () => {
  assert.deepEqual(FEATURE_NAMES, [
    'age', 'sex', 'psa', 'gleason_primary', 'gleason_secondary', 'gleason_score', 'grade_group', 't_stage',
    'pct_positive_cores', 'prior_treatment', 'ecog', 'metastasis',
  ]);
  assert.equal(new Set(FEATURE_NAMES).size, FEATURE_NAMES.length);
  for (const feature of FEATURE_CATALOGUE) {
    assert.ok(feature.description.length > 20, feature.name);
    if (feature.type === 'number' || feature.type === 'integer') {
      assert.ok('min' in feature && 'max' in feature && feature.min < feature.max, `${feature.name} has a range`);
    }
  }
  const ranges = Object.fromEntries(FEATURE_CATALOGUE.filter((f) => 'min' in f).map((f) => [f.name, [f.min, f.max]]));
  assert.deepEqual(ranges, {
    age: [18, 110], psa: [0, 10000], gleason_primary: [3, 5], gleason_secondary: [3, 5], gleason_score: [6, 10], grade_group: [1, 5],
    t_stage: [1, 4], pct_positive_cores: [0, 100], ecog: [0, 4],
  });
});

test('the recommender reads numeric catalogue features in a fixed order', () => {
  assert.deepEqual(RECOMMENDER_FEATURES, ['age', 'psa', 'grade_group', 't_stage', 'pct_positive_cores', 'prior_treatment']);
  for (const name of RECOMMENDER_FEATURES) assert.ok(FEATURE_NAMES.includes(name));
});

test('toModelRow: numbers as they are, booleans as 1/0, missing as null', () => {
  const features = parseClinicalNote('68-year-old man, PSA 12.4 ng/mL, Gleason 3+4=7, cT2b, 4/12 cores positive, s/p radical prostatectomy.');
  assert.deepEqual(toModelRow(features, RECOMMENDER_FEATURES), [68, 12.4, 2, 2.2, 33.3, 1]);
  const naive = parseClinicalNote('Treatment-naive. PSA 5.');
  assert.deepEqual(toModelRow(naive, RECOMMENDER_FEATURES), [null, 5, null, null, null, 0]);
  assert.deepEqual(toModelRow(naive, ['prior_treatment', 'psa']), [0, 5]);
});

test('toModelRow refuses a name outside the catalogue and a category without a numeric encoding', () => {
  const features = parseClinicalNote('PSA 5');
  assert.throws(() => toModelRow(features, ['psa', 'psa_density']), (e: unknown) => e instanceof AppError && e.code === 'MODEL_MANIFEST_INVALID' && /psa_density/.test(e.message));
  assert.throws(() => toModelRow(features, ['sex']), (e: unknown) => e instanceof AppError && e.code === 'MODEL_MANIFEST_INVALID' && /category/.test(e.message));
});

test('T stage encoding keeps the AJCC order', () => {
  const ordered = ['T1', 'T1a', 'T1b', 'T1c', 'T2', 'T2a', 'T2b', 'T2c', 'T3', 'T3a', 'T3b', 'T4'];
  assert.deepEqual(Object.keys(T_STAGE_CODES), ordered);
  const codes = ordered.map((c) => encodeTStage(c) ?? NaN);
  assert.deepEqual(codes, [1, 1.1, 1.2, 1.3, 2, 2.1, 2.2, 2.3, 3, 3.1, 3.2, 4]);
  for (const invalid of ['T3c', 'T4a', 'T0', 'TX', 'T5', 'toString', 'constructor']) assert.equal(encodeTStage(invalid), undefined, invalid);
});

test('ISUP 2014 grade groups from patterns and from a score', () => {
  const table: Array<[number, number, number]> = [[3, 3, 1], [3, 4, 2], [4, 3, 3], [4, 4, 4], [3, 5, 4], [5, 3, 4], [4, 5, 5], [5, 4, 5], [5, 5, 5]];
  for (const [primary, secondary, group] of table) assert.equal(gradeGroupFromPatterns(primary, secondary), group, `${primary}+${secondary}`);
  assert.deepEqual([6, 7, 8, 9, 10].map(gradeGroupFromScore), [1, undefined, 4, 5, 5]);
});

test('parseDecimal reads points and decimal commas and refuses ambiguity', () => {
  assert.deepEqual(parseDecimal('12.4'), { value: 12.4 });
  assert.deepEqual(parseDecimal('4,5'), { value: 4.5 });
  assert.deepEqual(parseDecimal('0,125'), { value: 0.125 });
  assert.deepEqual(parseDecimal('−3'), { value: -3 });
  assert.ok(Object.is((parseDecimal('-0') as { value: number }).value, 0));
  assert.deepEqual(parseDecimal('1,250'), { reason: 'is ambiguous: the comma may separate thousands or decimals' });
  assert.deepEqual(parseDecimal('4.2.1'), { reason: 'is not a number' });
  assert.deepEqual(parseDecimal('abc'), { reason: 'is not a number' });
});

test('PSA unit conversion', () => {
  assert.equal(psaInNgPerMl(4, 'ng/mL'), 4);
  assert.equal(psaInNgPerMl(4, 'µg/L'), 4);
  assert.equal(psaInNgPerMl(4, 'μg/l'), 4);
  assert.equal(psaInNgPerMl(4, 'mcg/L'), 4);
  assert.equal(psaInNgPerMl(15, 'pg/mL'), 0.015);
  assert.equal(psaInNgPerMl(4000, 'ng/L'), 4);
  assert.equal(psaInNgPerMl(4, 'ng/dL'), undefined);
  assert.equal(psaInNgPerMl(4, 'mmol/L'), undefined);
});
