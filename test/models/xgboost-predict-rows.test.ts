import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { csvRecords, predictRows, type FeatureShap, type PredictedRow } from '../../src/cli/models-predict.ts';
import { AppError } from '../../src/core/errors.ts';

// `models predict` on the committed reference models: CSV and JSON Lines in, xgboost's own predictions
// (models/xgboost-reference/*/expected.json) out, with SHAP values keyed by feature name.

const REFERENCE = 'models/xgboost-reference';

interface Expected {
  rows: Array<Array<number | null>>;
  margin: number[][];
  prediction: number[][];
  contributions: number[][][];
}

let dir = '';
before(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'dxflow-xgb-predict-'));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function reference(name: string): Promise<{ modelFile: string; expected: Expected; names: string[] }> {
  const modelFile = path.join(REFERENCE, name, 'model.json');
  const expected = JSON.parse(await readFile(path.join(REFERENCE, name, 'expected.json'), 'utf8')) as Expected;
  const model = JSON.parse(await readFile(modelFile, 'utf8')) as { learner: { feature_names?: string[]; learner_model_param: { num_feature: string } } };
  const stored = model.learner.feature_names ?? [];
  const names = stored.length > 0 ? stored : Array.from({ length: Number(model.learner.learner_model_param.num_feature) }, (_, i) => `f${i}`);
  return { modelFile, expected, names };
}

async function collect(rows: AsyncIterable<PredictedRow>): Promise<PredictedRow[]> {
  const out: PredictedRow[] = [];
  for await (const r of rows) out.push(r);
  return out;
}

async function write(name: string, text: string): Promise<string> {
  const file = path.join(dir, name);
  await writeFile(file, text);
  return file;
}

const MISSING_SPELLINGS = ['', 'NA', 'NaN'];

test('CSV: header of feature names in any order, missing as empty/NA/NaN, xgboost predictions and SHAP out', async () => {
  const { modelFile, expected, names } = await reference('breast-cancer');
  const order = names.map((_, i) => i).reverse();
  let missingCount = 0;
  const lines = [order.map((i) => names[i]).join(','), ...expected.rows.map((row) => order.map((i) => {
    const v = row[i];
    return v === null ? (MISSING_SPELLINGS[missingCount++ % 3] as string) : String(v);
  }).join(','))];
  assert.ok(missingCount > 3);
  const inputFile = await write('bc.csv', `${lines.join('\r\n')}\r\n`);

  const results = await collect(predictRows({ modelFile, inputFile, explain: true }));
  assert.equal(results.length, expected.rows.length);
  results.forEach((r, i) => {
    assert.equal(r.row, i + 1);
    assert.equal(typeof r.prediction, 'number');
    assert.ok(Math.abs((r.prediction as number) - Math.fround(expected.prediction[i]?.[0] as number)) <= 1e-6);
    const shap = r.shap as FeatureShap;
    assert.deepEqual(Object.keys(shap.values), names);
    const want = expected.contributions[i]?.[0] as number[];
    names.forEach((n, f) => assert.ok(Math.abs((shap.values[n] as number) - (want[f] as number)) <= 1e-5, `${n}`));
    const sum = Object.values(shap.values).reduce((a, b) => a + b, shap.bias);
    assert.ok(Math.abs(sum - (expected.margin[i]?.[0] as number)) <= 1e-5);
  });

  const plain = await collect(predictRows({ modelFile, inputFile, explain: false }));
  assert.equal(plain[0]?.shap, undefined);
  assert.deepEqual(Object.keys(plain[0] as object), ['row', 'prediction']);
});

test('JSON Lines: null and absent keys are missing; multi-class gives probabilities and SHAP per class', async () => {
  const { modelFile, expected, names } = await reference('synthetic-multiclass');
  const lines = expected.rows.map((row, r) => {
    const object: Record<string, number | null> = {};
    row.forEach((v, f) => {
      // Leave some missing values out entirely, write others as null.
      if (v !== null || r % 2 === 0) object[names[f] as string] = v;
    });
    return JSON.stringify(object);
  });
  const inputFile = await write('multi.data', `\n${lines.join('\n')}\n\n`);
  const results = await collect(predictRows({ modelFile, inputFile, explain: true }));
  assert.equal(results.length, expected.rows.length);
  results.forEach((r, i) => {
    const p = r.prediction as number[];
    assert.equal(p.length, 3);
    p.forEach((v, c) => assert.ok(Math.abs(v - Math.fround(expected.prediction[i]?.[c] as number)) <= 1e-6));
    const shap = r.shap as Array<FeatureShap & { class: number }>;
    assert.deepEqual(shap.map((s) => s.class), [0, 1, 2]);
    shap.forEach((s, c) => {
      const sum = Object.values(s.values).reduce((a, b) => a + b, s.bias);
      assert.ok(Math.abs(sum - (expected.margin[i]?.[c] as number)) <= 1e-5);
    });
  });
});

test('a model without feature names takes columns f0..fN', async () => {
  const { modelFile, expected } = await reference('synthetic-binary');
  const header = Array.from({ length: 8 }, (_, i) => `f${i}`).join(',');
  const inputFile = await write('f.csv', `${header}\n${expected.rows.map((r) => r.map((v) => v ?? '').join(',')).join('\n')}`);
  const results = await collect(predictRows({ modelFile, inputFile, explain: false }));
  results.forEach((r, i) => assert.ok(Math.abs((r.prediction as number) - Math.fround(expected.prediction[i]?.[0] as number)) <= 1e-6));
});

function invalidRequest(pattern: RegExp) {
  return (e: unknown) => {
    assert.ok(e instanceof AppError, String(e));
    assert.equal(e.code, 'INVALID_REQUEST');
    assert.match(e.message, pattern);
    return true;
  };
}

test('unknown columns, absent columns, bad numbers and malformed lines are refused with row and column', async () => {
  const { modelFile } = await reference('synthetic-binary');
  const header = Array.from({ length: 8 }, (_, i) => `f${i}`);
  const row = '1,2,3,4,5,6,7,8';
  const run = async (name: string, text: string) => collect(predictRows({ modelFile, inputFile: await write(name, text), explain: false }));

  await assert.rejects(run('unknown.csv', `${header.join(',')},age\n${row},1\n`), invalidRequest(/column "age" is not a feature of the model; its features are f0, f1/));
  await assert.rejects(run('absent.csv', `${header.slice(1).join(',')}\n2,3,4,5,6,7,8\n`), invalidRequest(/no column for "f0"/));
  await assert.rejects(run('twice.csv', `${header.join(',')},f3\n${row},4\n`), invalidRequest(/column "f3" appears twice/));
  await assert.rejects(run('bad.csv', `${header.join(',')}\n${row}\n1,2,x7,4,5,6,7,8\n`), invalidRequest(/row 2 \(line 3\), column "f2": "x7" is not a number/));
  await assert.rejects(run('hex.csv', `${header.join(',')}\n1,2,3,0x10,5,6,7,8\n`), invalidRequest(/column "f3": "0x10" is not a number/));
  await assert.rejects(run('short.csv', `${header.join(',')}\n1,2,3\n`), invalidRequest(/row 1 \(line 2\): 3 fields, the header has 8/));
  await assert.rejects(run('empty.csv', ''), invalidRequest(/is empty; expected a header row/));
  await assert.rejects(run('quote.csv', `${header.join(',')}\n"1,2,3,4,5,6,7,8\n`), invalidRequest(/never closed/));

  await assert.rejects(run('unknown.jsonl', '{"f0": 1, "weight": 70}\n'), invalidRequest(/row 1 \(line 1\): key "weight" is not a feature/));
  await assert.rejects(run('string.jsonl', '{"f0": 1}\n\n{"f1": "2.5"}\n'), invalidRequest(/row 2 \(line 3\), key "f1": "2.5" is not a number/));
  await assert.rejects(run('array.jsonl', '[1,2]\n'), invalidRequest(/expected a JSON object/));
  await assert.rejects(run('broken.jsonl', '{"f0": 1,\n'), invalidRequest(/row 1 \(line 1\): not valid JSON/));
  await assert.rejects(collect(predictRows({ modelFile, inputFile: path.join(dir, 'nope.csv'), explain: false })), invalidRequest(/Cannot read the input file .*ENOENT/));
  await assert.rejects(collect(predictRows({ modelFile: path.join(dir, 'nope.json'), inputFile: path.join(dir, 'bad.csv'), explain: false })), invalidRequest(/Cannot read the model file/));
});

test('a file that is not an XGBoost model is refused as an invalid model', async () => {
  const modelFile = await write('not-a-model.json', '{"nodes": []}');
  const inputFile = await write('one.csv', 'f0\n1\n');
  await assert.rejects(collect(predictRows({ modelFile, inputFile, explain: false })), (e: unknown) => e instanceof AppError && e.code === 'MODEL_MANIFEST_INVALID');
});

test('CSV records survive every split of the text into two chunks', async () => {
  const text = '\uFEFFa,"b ""quoted"", too",c\r\n"multi\nline",,"x"\r\n\r\n1, 2 ,3\n"",""""\n';
  const want = [
    { fields: ['a', 'b "quoted", too', 'c'], line: 1 },
    { fields: ['multi\nline', '', 'x'], line: 2 },
    { fields: ['1', ' 2 ', '3'], line: 5 },
    { fields: ['', '"'], line: 6 },
  ];
  async function* chunks(parts: string[]) {
    for (const p of parts) yield p;
  }
  for (let i = 0; i <= text.length; i++) {
    const records = [];
    for await (const r of csvRecords(chunks([text.slice(0, i), text.slice(i)]), 't.csv')) records.push(r);
    assert.deepEqual(records, want, `split at ${i}`);
  }
});
