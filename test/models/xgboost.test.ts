import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { AppError } from '../../src/core/errors.ts';
import { compileFlat, compileNested, loadXgboostModel, parseXgboostJson, type TreeEnsemble } from '../../src/models/xgboost/index.ts';

// The committed reference models (models/xgboost-reference/recipe.py) against what xgboost 1.7.4
// itself predicted on held-out rows, missing values included.

const REFERENCE = 'models/xgboost-reference';

interface Expected {
  objective: string;
  /** The last rows sit on split thresholds or a quarter float32 ulp below them (see the recipe). */
  boundaryRows: number;
  rows: Array<Array<number | null>>;
  margin: number[][];
  prediction: number[][];
  contributions: number[][][];
}

function readReference(name: string): { text: string; expected: Expected } {
  return {
    text: readFileSync(path.join(REFERENCE, name, 'model.json'), 'utf8'),
    expected: JSON.parse(readFileSync(path.join(REFERENCE, name, 'expected.json'), 'utf8')) as Expected,
  };
}

const names = readdirSync(REFERENCE, { withFileTypes: true }).filter((d) => d.isDirectory()).map((d) => d.name).sort();

test('the reference set covers the objectives, missing values and values on split thresholds', () => {
  assert.deepEqual(names, ['breast-cancer', 'synthetic-binary', 'synthetic-multiclass', 'synthetic-proportion', 'synthetic-regression']);
  const objectives = new Set(names.map((n) => readReference(n).expected.objective));
  assert.deepEqual([...objectives].sort(), ['binary:logistic', 'multi:softprob', 'reg:logistic', 'reg:squarederror']);
  for (const name of names) {
    const { rows } = readReference(name).expected;
    assert.ok(rows.some((r) => r.includes(null)), `${name} has held-out rows with missing values`);
    assert.ok(rows.some((r) => !r.includes(null)), `${name} has complete held-out rows`);
    assert.equal(readReference(name).expected.boundaryRows, 6, `${name} has rows on split thresholds`);
  }
});

for (const name of names) {
  test(`${name}: margins, predictions and SHAP values equal xgboost's`, () => {
    const { text, expected } = readReference(name);
    const model = loadXgboostModel(text);
    assert.equal(model.objective, expected.objective);
    expected.rows.forEach((row, r) => {
      const where = `${name} row ${r}`;
      const margin = model.predictMargin(row);
      const wantMargin = expected.margin[r] as number[];
      assert.equal(margin.length, wantMargin.length, where);
      margin.forEach((m, g) => {
        // Float32 arithmetic in XGBoost's order: equal to the last bit, not just to 1e-6.
        assert.equal(m, Math.fround(wantMargin[g] as number), `${where} margin ${g}`);
      });

      const prediction = model.predict(row);
      const wantPrediction = expected.prediction[r] as number[];
      assert.equal(prediction.length, wantPrediction.length, where);
      // The fixtures hold float32 values as their shortest text; Math.fround restores them exactly.
      prediction.forEach((p, g) => assert.ok(Math.abs(p - Math.fround(wantPrediction[g] as number)) <= 1e-6, `${where} prediction ${g}: ${p} vs ${wantPrediction[g]}`));

      const contributions = model.contributions(row);
      const wantContributions = expected.contributions[r] as number[][];
      assert.equal(contributions.length, wantContributions.length, where);
      contributions.forEach((group, g) => {
        const want = wantContributions[g] as number[];
        assert.equal(group.length, model.numFeature + 1, where);
        // 1e-5, relative above 1: XGBoost computes SHAP in float32, whose own resolution at 89 (a
        // contribution in synthetic-regression) is 7.6e-6, so an absolute 1e-5 would test its rounding.
        group.forEach((c, f) => {
          const w = Math.fround(want[f] as number);
          assert.ok(Math.abs(c - w) <= 1e-5 * Math.max(1, Math.abs(w)), `${where} group ${g} contribution ${f}: ${c} vs ${w}`);
        });
        const sum = group.reduce((a, b) => a + b, 0);
        // Float64 SHAP against a float32 margin: allow a few float32 ulps of the margin.
        assert.ok(Math.abs(sum - (margin[g] as number)) <= 1e-5 * Math.max(1, Math.abs(margin[g] as number)), `${where} group ${g}: contributions sum to ${sum}, margin ${margin[g]}`);
      });
    });
  });
}

test('the generated evaluator and the flat loop give identical margins', () => {
  for (const name of names) {
    const { text, expected } = readReference(name);
    const ensemble = parseXgboostJson(text);
    const nested = compileNested(ensemble);
    const flat = compileFlat(ensemble);
    const a = new Float64Array(ensemble.numGroup);
    const b = new Float64Array(ensemble.numGroup);
    for (const row of expected.rows) {
      const x = Float64Array.from(row, (v) => (v === null ? Number.NaN : Math.fround(v)));
      nested(x, a);
      flat(x, b);
      assert.deepEqual(a, b, name);
    }
  }
});

test('breast-cancer: feature names, counts and base score come from the file', () => {
  const model = loadXgboostModel(JSON.parse(readReference('breast-cancer').text));
  assert.equal(model.numFeature, 30);
  assert.equal(model.numClass, 0);
  assert.equal(model.outputCount, 1);
  assert.equal(model.featureNames?.[0], 'mean_radius');
  assert.equal(model.featureNames?.length, 30);
  assert.equal(model.baseScore, 0.5);
  assert.equal(model.baseMargin, 0);
});

test('synthetic-binary: base_score 0.3 is a probability, turned into log-odds', () => {
  const model = loadXgboostModel(readReference('synthetic-binary').text);
  assert.equal(model.baseScore, Math.fround(0.3));
  assert.ok(Math.abs(model.baseMargin - Math.log(0.3 / 0.7)) < 1e-6);
  assert.equal(model.featureNames, undefined);
});

test('multi-class: one probability per class, summing to 1; base_score is added raw to each class', () => {
  const { text, expected } = readReference('synthetic-multiclass');
  const model = loadXgboostModel(text);
  assert.equal(model.numClass, 3);
  assert.equal(model.outputCount, 3);
  assert.equal(model.baseMargin, 0.5);
  for (const row of expected.rows) {
    const p = model.predict(row);
    assert.equal(p.length, 3);
    assert.ok(Math.abs(p.reduce((a, b) => a + b, 0) - 1) < 1e-6);
  }
});

test('rows may be number arrays with NaN, arrays with null or undefined, or typed arrays', () => {
  const { text, expected } = readReference('breast-cancer');
  const model = loadXgboostModel(text);
  const row = expected.rows.find((r) => r.includes(null)) as Array<number | null>;
  const want = model.predict(row);
  assert.deepEqual(model.predict(row.map((v) => v ?? Number.NaN)), want);
  assert.deepEqual(model.predict(row.map((v) => v ?? undefined)), want);
  assert.deepEqual(model.predict(Float64Array.from(row, (v) => v ?? Number.NaN)), want);
  assert.deepEqual(model.predict(Float32Array.from(row, (v) => v ?? Number.NaN)), want);
  assert.deepEqual(model.predictBatch([row, row]), [want, want]);
  // Missing is not zero: the same row with zeros predicts differently.
  assert.notDeepEqual(model.predict(row.map((v) => v ?? 0)), want);
});

test('a row of the wrong length or with an infinite value is refused', () => {
  const model = loadXgboostModel(readReference('synthetic-binary').text);
  const isInvalid = (pattern: RegExp) => (e: unknown) => e instanceof AppError && e.code === 'INVALID_REQUEST' && pattern.test(e.message);
  assert.throws(() => model.predict([1, 2, 3]), isInvalid(/3 values; the model expects 8/));
  assert.throws(() => model.contributions(new Float64Array(9)), isInvalid(/9 values/));
  assert.throws(() => model.predict([0, 0, 0, Infinity, 0, 0, 0, 0]), isInvalid(/Feature 3 is Infinity/));
  assert.throws(() => model.predict(['1', 0, 0, 0, 0, 0, 0, 0] as unknown as number[]), isInvalid(/Feature 0 is string/));
});

// Shapley values by definition (Lundberg et al. 2018, Eq. 1 with the path-dependent conditional
// expectation of Algorithm 1), enumerating every feature subset: exponential, but independent of the
// polynomial algorithm under test.
function bruteForceShap(ensemble: TreeEnsemble, x: Float64Array): number[] {
  const m = ensemble.numFeature;
  const valueOf = (subset: number): number => {
    let total = ensemble.baseMargin;
    for (const tree of ensemble.trees) {
      const expect = (node: number): number => {
        const l = tree.left[node] as number;
        if (l === -1) return tree.threshold[node] as number;
        const r = tree.right[node] as number;
        const f = tree.feature[node] as number;
        if (subset & (1 << f)) {
          const v = x[f] as number;
          const left = Number.isNaN(v) ? tree.defaultLeft[node] === 1 : v < (tree.threshold[node] as number);
          return expect(left ? l : r);
        }
        return (expect(l) * (tree.cover[l] as number) + expect(r) * (tree.cover[r] as number)) / (tree.cover[node] as number);
      };
      total += expect(0);
    }
    return total;
  };
  const factorial = (n: number): number => (n <= 1 ? 1 : n * factorial(n - 1));
  const values = new Float64Array(1 << m);
  for (let s = 0; s < 1 << m; s++) values[s] = valueOf(s);
  const phi = new Array<number>(m + 1).fill(0);
  for (let i = 0; i < m; i++) {
    for (let s = 0; s < 1 << m; s++) {
      if (s & (1 << i)) continue;
      let size = 0;
      for (let k = s; k; k &= k - 1) size++;
      const weight = (factorial(size) * factorial(m - size - 1)) / factorial(m);
      phi[i] = (phi[i] as number) + weight * ((values[s | (1 << i)] as number) - (values[s] as number));
    }
  }
  phi[m] = values[0] as number;
  return phi;
}

test('TreeSHAP equals Shapley values computed by enumerating all feature subsets', () => {
  const { text, expected } = readReference('synthetic-binary');
  const ensemble = parseXgboostJson(text);
  const model = loadXgboostModel(text);
  for (const row of expected.rows.slice(0, 6)) {
    const x = Float64Array.from(row, (v) => (v === null ? Number.NaN : Math.fround(v)));
    const want = bruteForceShap(ensemble, x);
    const got = model.contributions(row)[0] as number[];
    got.forEach((c, f) => assert.ok(Math.abs(c - (want[f] as number)) < 1e-9, `feature ${f}: ${c} vs ${want[f]}`));
  }
});
