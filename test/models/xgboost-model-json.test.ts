import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { AppError } from '../../src/core/errors.ts';
import { compileNested, loadXgboostModel, parseXgboostJson } from '../../src/models/xgboost/index.ts';
import { MAX_NESTED_DEPTH, nestedSource } from '../../src/models/xgboost/compile.ts';

// Loading: what is refused and how the refusal reads; the safety of the generated code; trees too deep
// to nest in source code.

type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

const REFERENCE_TEXT = readFileSync('models/xgboost-reference/synthetic-binary/model.json', 'utf8');
const reference = (): Json => JSON.parse(REFERENCE_TEXT) as Json;
const firstTree = (m: Json): Json => m['learner']['gradient_booster']['model']['trees'][0] as Json;

function refused(pattern: RegExp) {
  return (e: unknown) => {
    assert.ok(e instanceof AppError, `expected an AppError, got ${String(e)}`);
    assert.equal(e.code, 'MODEL_MANIFEST_INVALID');
    assert.match(e.message, pattern);
    return true;
  };
}

test('text that is not JSON, or JSON that is not an XGBoost model, is refused', () => {
  assert.throws(() => loadXgboostModel('{"learner": '), refused(/not JSON.*save_model/));
  assert.throws(() => loadXgboostModel({ model: 'onnx' }), refused(/not an XGBoost JSON model: it has no "learner"/));
  assert.throws(() => loadXgboostModel(null), refused(/not an XGBoost JSON model/));
  const m = reference();
  delete m['learner']['learner_model_param']['num_feature'];
  assert.throws(() => loadXgboostModel(m), refused(/learner\.learner_model_param\.num_feature/));
});

test('boosters other than gbtree are refused by name', () => {
  for (const name of ['gblinear', 'dart']) {
    const m = reference();
    m['learner']['gradient_booster'] = { name, model: {} };
    assert.throws(() => loadXgboostModel(m), refused(new RegExp(`booster "${name}" is not supported`)));
  }
});

test('an unsupported objective is refused by name, with the supported list', () => {
  const m = reference();
  m['learner']['objective'] = { name: 'survival:cox' };
  assert.throws(() => loadXgboostModel(m), refused(/objective "survival:cox" is not supported; supported objectives are .*binary:logistic/));
});

test('categorical splits are refused', () => {
  const m = reference();
  const tree = firstTree(m);
  tree['split_type'][0] = 1;
  assert.throws(() => loadXgboostModel(m), refused(/tree 0 has categorical splits/));
  const typed = reference();
  typed['learner']['feature_types'] = ['c', 'float', 'float', 'float', 'float', 'float', 'float', 'float'];
  assert.throws(() => loadXgboostModel(typed), refused(/categorical features/));
});

test('structurally broken trees are refused before any code is generated', () => {
  const outOfRange = reference();
  firstTree(outOfRange)['split_indices'][0] = 8;
  assert.throws(() => loadXgboostModel(outOfRange), refused(/tree 0: node 0 splits on feature 8, but the model has 8 features/));

  const cycle = reference();
  const tree = firstTree(cycle);
  const leftOfRoot = tree['left_children'][0] as number;
  tree['left_children'][leftOfRoot] = tree['right_children'][0];
  tree['right_children'][leftOfRoot] = tree['right_children'][0] + 1;
  assert.throws(() => loadXgboostModel(cycle), refused(/is reached twice/));

  const backToRoot = reference();
  firstTree(backToRoot)['left_children'][firstTree(backToRoot)['left_children'][0]] = 0;
  assert.throws(() => loadXgboostModel(backToRoot), refused(/outside 1\.\./));

  const short = reference();
  firstTree(short)['default_left'].pop();
  assert.throws(() => loadXgboostModel(short), refused(/tree 0: default_left has \d+ entries, num_nodes is \d+/));

  const groups = reference();
  groups['learner']['gradient_booster']['model']['tree_info'][3] = 1;
  assert.throws(() => loadXgboostModel(groups), refused(/tree 3 belongs to output group 1, the model has 1/));

  const classes = reference();
  classes['learner']['objective'] = { name: 'multi:softprob' };
  assert.throws(() => loadXgboostModel(classes), refused(/needs num_class ≥ 2/));

  const names = reference();
  names['learner']['feature_names'] = ['a', 'b'];
  assert.throws(() => loadXgboostModel(names), refused(/feature_names lists 2 names, num_feature is 8/));

  const base = reference();
  base['learner']['learner_model_param']['base_score'] = '1E0';
  assert.throws(() => loadXgboostModel(base), refused(/base_score 1 is outside \(0, 1\)/));
});

test('text in a numeric field is refused, and no text from the file reaches generated code', () => {
  const injected = reference();
  firstTree(injected)['split_conditions'][0] = '0) || globalThis.process.exit(3) || (0';
  assert.throws(() => loadXgboostModel(injected), refused(/split_conditions\.0/));
  const indexInjected = reference();
  firstTree(indexInjected)['split_indices'][0] = '0] + process.exit(3) + x[0';
  assert.throws(() => loadXgboostModel(indexInjected), refused(/split_indices\.0/));

  const named = reference();
  const hostile = '"); globalThis.pwned = 1; ("';
  named['learner']['feature_names'] = [hostile, 'b', 'c', 'd', 'e', 'f', 'g', 'h'];
  const ensemble = parseXgboostJson(named);
  const source = nestedSource(ensemble);
  assert.ok(!source.includes('pwned'));
  // Only numbers, the fixed identifiers of the template, operators and punctuation.
  const words = new Set(source.match(/[A-Za-z_][A-Za-z_0-9]*/g));
  for (const word of words) assert.match(word, /^(use|strict|function|trees\d+|x|m|m\d+|let|fround|return|margins|e)$/, word);
  const model = loadXgboostModel(named);
  model.predict(new Array<number>(8).fill(0));
  assert.equal((globalThis as Json)['pwned'], undefined);
  assert.equal(model.featureNames?.[0], hostile);
});

/**
 * A regression "tree" that is a chain: node 2i tests x0 < i + 0.5 and goes left to a leaf of value i,
 * right to the next test; missing goes right all the way to the last leaf, of value `depth`.
 */
function chainModel(depth: number): Json {
  const n = 2 * depth + 1;
  const left: number[] = [];
  const right: number[] = [];
  const conditions: number[] = [];
  const cover: number[] = [];
  for (let i = 0; i < depth; i++) {
    left.push(2 * i + 1, -1);
    right.push(2 * i + 2, -1);
    conditions.push(i + 0.5, i);
    cover.push(depth + 1 - i, 1);
  }
  left.push(-1);
  right.push(-1);
  conditions.push(depth);
  cover.push(1);
  const tree = {
    tree_param: { num_nodes: String(n), size_leaf_vector: '0' },
    left_children: left,
    right_children: right,
    split_indices: new Array<number>(n).fill(0),
    split_conditions: conditions,
    default_left: new Array<number>(n).fill(0),
    sum_hessian: cover,
    split_type: new Array<number>(n).fill(0),
    categories_nodes: [],
  };
  return {
    learner: {
      learner_model_param: { base_score: '5E-1', num_class: '0', num_feature: '3' },
      objective: { name: 'reg:squarederror' },
      gradient_booster: { name: 'gbtree', model: { gbtree_model_param: { num_trees: '1' }, trees: [tree], tree_info: [0] } },
    },
  };
}

test('a tree too deep to nest in code is evaluated and explained by the loop', () => {
  const depth = MAX_NESTED_DEPTH + 100;
  const json = chainModel(depth);
  assert.throws(() => compileNested(parseXgboostJson(json)), refused(/deeper than/));
  const model = loadXgboostModel(json);
  assert.deepEqual(model.predict([7.2, 0, 0]), [7.5]);
  assert.deepEqual(model.predict([150, 1, 1]), [150.5]);
  assert.deepEqual(model.predict([null, 0, 0]), [depth + 0.5]);
  assert.deepEqual(model.predict([1e9, 0, 0]), [depth + 0.5]);
  // Expected value: leaf i is reached by cover 1 of depth + 1 rows, as is the last leaf.
  const mean = (depth * (depth + 1)) / 2 / (depth + 1);
  const [shap] = model.contributions([7.2, 0, 0]) as [number[]];
  assert.ok(Math.abs((shap[3] as number) - (0.5 + mean)) < 1e-9);
  assert.ok(Math.abs((shap[0] as number) - (7 - mean)) < 1e-9);
  assert.equal(shap[1], 0);
  assert.equal(shap[2], 0);
});

test('a shallow chain is compiled to code and agrees with the loop', () => {
  const json = chainModel(20);
  const model = loadXgboostModel(json);
  for (const v of [-3, 0.49, 0.5, 3.7, 19.5, 25, null]) {
    const want = v === null || v >= 19.5 ? 20.5 : Math.max(0, Math.round(v)) + 0.5;
    assert.deepEqual(model.predict([v, 0, 0]), [want], `x0 = ${v}`);
  }
});
