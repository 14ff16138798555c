import assert from 'node:assert/strict';
import { test } from 'node:test';
import { suggestBilling } from '../../src/clinical/billing.ts';
import { BILLING_CODES_V1, BILLING_TABLE_VERSION, TUMOUR_SUGGESTION_THRESHOLD } from '../../src/clinical/billing-codes-v1.ts';
import { parseClinicalNote } from '../../src/clinical/note.ts';
import { Billing, ESCALATE_DISPLAY, type Recommendation } from '../../src/core/report.ts';

const model = { name: 'treatment-recommender', version: '1.0.0', kind: 'xgboost', sha256: 'a'.repeat(64) };

function recommended(code: string, probability = 0.71): Recommendation {
  return { status: 'recommended', code, display: code, probability, alternatives: [], model };
}

const abstained: Recommendation = {
  status: 'abstained',
  display: ESCALATE_DISPLAY,
  reasons: [{ code: 'LOW_CONFIDENCE', message: 'The top class local-therapy has probability 0.410, below 0.6' }],
  withheld: [{ code: 'local-therapy', display: 'Local therapy', probability: 0.41 }],
  model,
};

const codes = (billing: Billing): string[] => billing.items.map((i) => `${i.system} ${i.code}`);

test('a tumour pattern suggests C61 (for confirmation) and the biopsy examination 88305', () => {
  const billing = Billing.parse(suggestBilling({ findings: [{ code: 'tumour-pattern', probability: 0.87 }, { code: 'benign-pattern', probability: 0.13 }] }));
  assert.equal(billing.suggestionsOnly, true);
  assert.equal(billing.tableVersion, 'dxflow-billing-2026.1');
  assert.deepEqual(codes(billing), ['ICD-10-CM C61', 'CPT 88305']);
  const c61 = billing.items[0];
  assert.equal(c61?.display, 'Malignant neoplasm of prostate');
  assert.deepEqual(c61?.basedOn, ['tumour-pattern']);
  assert.match(c61?.rationale ?? '', /^Image finding tumour-pattern \(probability 0\.87\), at or above 0\.50\./);
  assert.match(c61?.rationale ?? '', /pathologist has confirmed/);
  assert.deepEqual(billing.items[1]?.basedOn, ['tumour-pattern', 'benign-pattern']);
});

test('C61 only from the threshold; a benign pattern gets the examination code and no diagnosis', () => {
  const below = suggestBilling({ findings: [{ code: 'tumour-pattern', probability: TUMOUR_SUGGESTION_THRESHOLD - 0.01 }, { code: 'benign-pattern', probability: 0.51 }] });
  assert.deepEqual(codes(below), ['CPT 88305']);
  const at = suggestBilling({ findings: [{ code: 'tumour-pattern', probability: TUMOUR_SUGGESTION_THRESHOLD }] });
  assert.deepEqual(codes(at), ['ICD-10-CM C61', 'CPT 88305']);
  assert.deepEqual(codes(suggestBilling({ findings: [] })), []);
});

test('an elevated PSA suggests R97.20 and the PSA test 84153; a normal one only the test', () => {
  const clinical = parseClinicalNote('68-year-old man, PSA 7.2 ng/mL.');
  const billing = suggestBilling({ findings: [], clinical });
  assert.deepEqual(codes(billing), ['ICD-10-CM R97.20', 'CPT 84153']);
  assert.equal(billing.items[0]?.display, 'Elevated prostate specific antigen [PSA]');
  assert.match(billing.items[0]?.rationale ?? '', /^PSA 7\.2 ng\/mL is above 4 ng\/mL\./);
  assert.equal(billing.items[1]?.display, 'Prostate specific antigen (PSA), total');

  assert.deepEqual(codes(suggestBilling({ findings: [], clinical: parseClinicalNote('PSA 4 ng/mL') })), ['CPT 84153']);
  // After treatment a raised PSA is not R97.20 (R97.21 needs the trend).
  assert.deepEqual(codes(suggestBilling({ findings: [], clinical: parseClinicalNote('s/p radical prostatectomy, PSA 5.1') })), ['CPT 84153']);
  // A PSA the parser did not use (contradictory) suggests nothing.
  assert.deepEqual(codes(suggestBilling({ findings: [], clinical: parseClinicalNote('PSA 5.1, PSA 9') })), []);
});

test('a recommendation adds its treatment codes; an abstention adds none', () => {
  const findings = [{ code: 'tumour-pattern', probability: 0.9 }];
  const clinical = parseClinicalNote('PSA 7.2 ng/mL');
  assert.deepEqual(codes(suggestBilling({ findings, clinical, recommendation: recommended('local-therapy') })), ['ICD-10-CM C61', 'ICD-10-CM R97.20', 'CPT 88305', 'CPT 84153', 'CPT 55866', 'CPT 77427']);
  assert.deepEqual(codes(suggestBilling({ findings, clinical, recommendation: recommended('systemic-therapy') })), ['ICD-10-CM C61', 'ICD-10-CM R97.20', 'CPT 88305', 'CPT 84153', 'CPT 96402', 'CPT 96413']);
  const abstainedBilling = suggestBilling({ findings, clinical, recommendation: abstained });
  assert.deepEqual(codes(abstainedBilling), ['ICD-10-CM C61', 'ICD-10-CM R97.20', 'CPT 88305', 'CPT 84153']);
  assert.ok(abstainedBilling.items.every((i) => !i.basedOn.includes('local-therapy')));
  assert.deepEqual(codes(suggestBilling({ findings, recommendation: recommended('watchful-waiting') })), ['ICD-10-CM C61', 'CPT 88305']);
});

test('a code reached twice is listed once with both reasons', () => {
  const billing = suggestBilling({ findings: [], clinical: parseClinicalNote('PSA 3.1'), recommendation: recommended('active-surveillance', 0.8) });
  assert.deepEqual(codes(billing), ['CPT 84153', 'CPT 55700']);
  assert.deepEqual(billing.items[0]?.basedOn, ['psa', 'active-surveillance']);
  assert.match(billing.items[0]?.rationale ?? '', /The note records PSA 3\.1 ng\/mL\..*The recommender recommends active-surveillance \(probability 0\.80\)\./);
});

test('output is deterministic and independent of finding order', () => {
  const a = suggestBilling({ findings: [{ code: 'benign-pattern', probability: 0.2 }, { code: 'tumour-pattern', probability: 0.8 }], recommendation: recommended('local-therapy') });
  const b = suggestBilling({ findings: [{ code: 'tumour-pattern', probability: 0.8 }, { code: 'benign-pattern', probability: 0.2 }], recommendation: recommended('local-therapy') });
  assert.deepEqual(a, b);
});

test('the table is versioned, its codes have the right shape, and each row says why', () => {
  assert.equal(BILLING_CODES_V1.version, BILLING_TABLE_VERSION);
  for (const row of BILLING_CODES_V1.rows) {
    if (row.system === 'ICD-10-CM') assert.match(row.code, /^[A-TV-Z][0-9][0-9AB](\.[0-9A-TV-Z]{1,4})?$/, row.code);
    else assert.match(row.code, /^\d{5}$/, row.code);
    assert.ok(row.display.length > 5 && row.rationale.length > 30, row.code);
  }
  // The displays of the codes the brief relies on, as their code sets define them.
  const display = (code: string) => BILLING_CODES_V1.rows.find((r) => r.code === code)?.display;
  assert.equal(display('C61'), 'Malignant neoplasm of prostate');
  assert.equal(display('R97.20'), 'Elevated prostate specific antigen [PSA]');
  assert.match(display('88305') ?? '', /level IV/);
  assert.match(display('84153') ?? '', /total/);
});
