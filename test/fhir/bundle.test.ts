import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { test } from 'node:test';
import type { Device, DiagnosticReport, Observation, Provenance } from '@medplum/fhirtypes';
import { AppError } from '../../src/core/errors.ts';
import { CaseResult } from '../../src/core/result.ts';
import { toFhirBundle } from '../../src/fhir/bundle.ts';
import { only, references, resolve, resources } from './bundle-query.ts';
import {
  abstainedCase,
  failedCase,
  PLANTED_PATIENT_NAME,
  recommendedCase,
  RISK_MODEL,
  succeededCase,
  TILE_SCORER,
  TISSUE_CLASSIFIER,
  twoModelCase,
} from './cases.ts';
import { validateFhirResource } from '../support/fhir-validator.ts';

const BASE_URL = 'https://dxflow.example.org';
const UUID_V8_URN = /^urn:uuid:[0-9a-f]{8}-[0-9a-f]{4}-8[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

const CASES: Record<string, () => CaseResult> = {
  'succeeded, two findings from one model': succeededCase,
  'failed, no findings': failedCase,
  'findings from two models': twoModelCase,
  'recommended, with SHAP, a heatmap, language-model text and billing suggestions': recommendedCase,
  'abstained, with reasons, withheld probabilities and fallback text': abstainedCase,
};

for (const [name, build] of Object.entries(CASES)) {
  test(`${name}: the synthetic result is a valid CaseResult`, () => {
    CaseResult.parse(build());
  });

  test(`${name}: the bundle and every resource in it are valid FHIR R4`, () => {
    const bundle = toFhirBundle(build(), { baseUrl: BASE_URL });
    validateFhirResource(bundle);
    assert.ok((bundle.entry?.length ?? 0) >= 3);
    for (const entry of bundle.entry ?? []) {
      assert.ok(entry.resource);
      validateFhirResource(entry.resource, { bundle });
    }
  });

  test(`${name}: every reference points to a fullUrl in the bundle, and fullUrls are unique UUIDv8 URNs`, () => {
    const bundle = toFhirBundle(build(), {});
    const fullUrls = (bundle.entry ?? []).map((e) => e.fullUrl ?? '');
    assert.equal(new Set(fullUrls).size, fullUrls.length);
    for (const url of fullUrls) assert.match(url, UUID_V8_URN);
    const refs = references(bundle);
    assert.ok(refs.length > 0);
    for (const ref of refs) assert.ok(fullUrls.includes(ref), `${ref} resolves`);
  });
}

// Golden bundles: (a) the plain image result, (d) a result with every explained part.
const GOLDENS: Record<string, () => CaseResult> = {
  'succeeded-case': succeededCase,
  'recommended-case': recommendedCase,
};

for (const [name, build] of Object.entries(GOLDENS)) {
  test(`the bundle for ${name} equals the golden file`, () => {
    const golden = new URL(`../fixtures/fhir/${name}.bundle.json`, import.meta.url);
    const bundle = toFhirBundle(build(), { baseUrl: BASE_URL });
    if (process.env['UPDATE_GOLDEN'] === '1') writeFileSync(golden, `${JSON.stringify(bundle, null, 2)}\n`);
    assert.ok(existsSync(golden), `golden file missing: run UPDATE_GOLDEN=1 npx node --test test/fhir/ and commit ${golden.pathname}`);
    assert.deepEqual(bundle, JSON.parse(readFileSync(golden, 'utf8')));
  });
}

test('the same result always gives the same bundle, and another case gets other ids', () => {
  const first = toFhirBundle(succeededCase(), {});
  assert.deepEqual(toFhirBundle(succeededCase(), {}), first);
  const other = toFhirBundle({ ...succeededCase(), id: 'another-case' }, {});
  const urls = new Set((first.entry ?? []).map((e) => e.fullUrl));
  for (const entry of other.entry ?? []) assert.ok(!urls.has(entry.fullUrl));
  assert.notDeepEqual(other.identifier, first.identifier);
});

test('succeeded case: a preliminary report that concludes with the top finding and references its Observations', () => {
  const result = succeededCase();
  const bundle = toFhirBundle(result, {});
  assert.equal(bundle.type, 'collection');
  const report = only<DiagnosticReport>(bundle, 'DiagnosticReport');
  assert.equal(report.status, 'preliminary');
  assert.deepEqual(report.identifier, [{ system: 'urn:dxflow:case', value: result.id }]);
  assert.equal(report.category?.[0]?.coding?.[0]?.code, 'PAT');
  assert.equal(report.issued, result.completedAt);
  assert.match(report.conclusion ?? '', /^Top finding: Tumour epithelium \(TUM\), probability 0\.87, model demo-tissue-classifier 1\.2\.0 \(2 findings in total\)\./);
  assert.match(report.conclusion ?? '', /clinician must review/);

  const observations = resources<Observation>(bundle, 'Observation');
  assert.deepEqual(report.result?.map((r) => resolve(bundle, r.reference)), observations);
  assert.deepEqual(
    observations.map((o) => [o.status, o.code.coding?.[0]?.system, o.code.coding?.[0]?.code, o.code.coding?.[0]?.display, o.valueQuantity]),
    result.findings.map((f) => ['preliminary', 'urn:dxflow:finding', f.code, f.label, { value: f.probability, unit: '1', system: 'http://unitsofmeasure.org', code: '1' }]),
  );
  for (const o of observations) {
    assert.equal(o.method?.text, 'Stage "classify" (model.classify) of the dxflow image-classify pipeline');
    const device = resolve(bundle, o.device?.reference) as Device;
    assert.deepEqual(device.identifier, [{ system: 'urn:dxflow:model-sha256', value: TISSUE_CLASSIFIER.sha256 }]);
    assert.deepEqual(device.deviceName, [{ name: TISSUE_CLASSIFIER.name, type: 'model-name' }]);
    assert.deepEqual(device.version, [{ value: TISSUE_CLASSIFIER.version }]);
    assert.match(device.note?.[0]?.text ?? '', /Investigational software/);
  }
});

test('failed case: a cancelled report whose conclusion names the error code and its hint, and no Observations', () => {
  const result = failedCase();
  const bundle = toFhirBundle(result, {});
  const report = only<DiagnosticReport>(bundle, 'DiagnosticReport');
  assert.equal(report.status, 'cancelled');
  assert.equal(report.result, undefined);
  assert.equal(
    report.conclusion,
    'The analysis did not complete: error CORRUPT_IMAGE in stage "validate". The file starts like an image but cannot be decoded; re-export it from the source system.',
  );
  assert.deepEqual(resources(bundle, 'Observation'), []);
  assert.deepEqual(resources(bundle, 'OperationOutcome'), []);
  const provenance = only<Provenance>(bundle, 'Provenance');
  assert.deepEqual(provenance.target.map((t) => resolve(bundle, t.reference)), [report]);
  assert.equal(provenance.entity?.[0]?.what.identifier?.value, result.input?.sha256);
});

test('failed case: findings recorded before the failure are not released', () => {
  const base = failedCase();
  const bundle = toFhirBundle({ ...base, findings: succeededCase().findings }, {});
  validateFhirResource(bundle);
  assert.deepEqual(resources(bundle, 'Observation'), []);
  assert.equal(only<DiagnosticReport>(bundle, 'DiagnosticReport').status, 'cancelled');
});

test('an error code this version does not know still gives a valid conclusion, without free text from the case', () => {
  const base = failedCase();
  const bundle = toFhirBundle({ ...base, error: { code: 'LEGACY_CODE', message: 'secret', hint: 'secret', stage: null } }, {});
  validateFhirResource(bundle);
  assert.equal(only<DiagnosticReport>(bundle, 'DiagnosticReport').conclusion, 'The analysis did not complete: error LEGACY_CODE.');
});

test('two models: one Device per model version, each Observation attributed to the model that produced it', () => {
  const result = twoModelCase();
  const bundle = toFhirBundle(result, {});
  const devices = resources<Device>(bundle, 'Device');
  assert.deepEqual(
    devices.map((d) => d.identifier?.[0]),
    [
      { system: 'urn:dxflow:pipeline', value: 'wsi-prognosis' },
      { system: 'urn:dxflow:model-sha256', value: TILE_SCORER.sha256 },
      { system: 'urn:dxflow:model-sha256', value: RISK_MODEL.sha256 },
    ],
  );
  const observations = resources<Observation>(bundle, 'Observation');
  assert.deepEqual(
    observations.map((o) => (resolve(bundle, o.device?.reference) as Device).identifier?.[0]?.value),
    result.findings.map((f) => f.model?.sha256),
  );
  assert.deepEqual(
    devices.slice(1).map((d) => [d.deviceName?.[0]?.name, d.version?.[0]?.value, d.type?.coding?.[0]?.code]),
    [[TILE_SCORER.name, TILE_SCORER.version, 'onnx'], [RISK_MODEL.name, RISK_MODEL.version, 'xgboost']],
  );
  assert.match(only<DiagnosticReport>(bundle, 'DiagnosticReport').conclusion ?? '', /^Top finding: High risk of progression \(HIGH_RISK\), probability 0\.66, model demo-prostate-risk 2\.0\.0 \(3 findings/);
});

test('a model that appears only on a finding still gets its Device; a finding without a model is attributed to the pipeline', () => {
  const base = twoModelCase();
  const result: CaseResult = {
    ...base,
    models: [TILE_SCORER],
    findings: [...base.findings, { stage: 'rules', code: 'ADEQUATE', label: 'Adequate tissue', probability: 1 }],
  };
  const bundle = toFhirBundle(result, {});
  validateFhirResource(bundle);
  const devices = resources<Device>(bundle, 'Device');
  assert.equal(devices.length, 3);
  const ruleObservation = resources<Observation>(bundle, 'Observation').at(-1);
  assert.deepEqual((resolve(bundle, ruleObservation?.device?.reference) as Device).identifier, [{ system: 'urn:dxflow:pipeline', value: 'wsi-prognosis' }]);
  assert.equal(ruleObservation?.method?.text, 'Stage "rules" of the dxflow wsi-prognosis pipeline');
});

test('a repeated finding still gets its own fullUrl, so the bundle stays valid (bdl-7)', () => {
  const base = succeededCase();
  const repeated = base.findings[0];
  assert.ok(repeated);
  const bundle = toFhirBundle({ ...base, findings: [...base.findings, repeated] }, {});
  validateFhirResource(bundle);
  assert.equal(resources(bundle, 'Observation').length, 3);
});

test('Provenance: targets the report and every Observation, names the Devices as agents and the input hash as source', () => {
  const result = twoModelCase();
  const bundle = toFhirBundle(result, {});
  const provenance = only<Provenance>(bundle, 'Provenance');
  assert.deepEqual(
    provenance.target.map((t) => resolve(bundle, t.reference)),
    [only(bundle, 'DiagnosticReport'), ...resources(bundle, 'Observation')],
  );
  assert.equal(provenance.recorded, result.completedAt);
  assert.deepEqual(provenance.occurredPeriod, { start: result.createdAt, end: result.completedAt });
  assert.deepEqual(
    provenance.agent.map((a) => [a.type?.coding?.[0]?.code, resolve(bundle, a.who.reference)]),
    resources<Device>(bundle, 'Device').map((d, i) => [i === 0 ? 'assembler' : 'performer', d]),
  );
  assert.deepEqual(provenance.activity?.coding?.[0]?.code, 'CREATE');
  assert.deepEqual(provenance.entity, [
    {
      role: 'source',
      what: {
        identifier: { system: 'urn:dxflow:input-sha256', value: result.input?.sha256 },
        display: 'tiff input, 98304×71680 px, 1873215488 bytes',
      },
    },
  ]);
});

test('nothing from file names, object keys, error messages or extra metadata reaches the bundle', () => {
  const base = succeededCase();
  assert.ok(base.input);
  // Fields the CaseResult type does not declare, as a row or request object may still carry them at run time.
  const input = Object.assign({}, base.input, { filename: `${PLANTED_PATIENT_NAME} colon biopsy.png` });
  const withPhi = Object.assign({}, base, { input, metadata: { patientName: PLANTED_PATIENT_NAME, mrn: 'MRN-99173-SENTINEL' } });
  assert.ok(base.input.objectKey.includes(PLANTED_PATIENT_NAME), 'the name is planted in the object key');
  assert.ok(failedCase().error?.message.includes(PLANTED_PATIENT_NAME), 'the name is planted in the error message');

  const json = JSON.stringify([toFhirBundle(withPhi, { baseUrl: BASE_URL }), toFhirBundle(failedCase(), {})]);
  assert.ok(!json.includes('Jane'), 'patient name leaked');
  assert.ok(!/sentinel/i.test(json), 'planted value leaked');
  assert.ok(!json.includes('biopsy') && !json.includes('inputs/'), 'file name or object key leaked');
});

test('unfinished cases: queued is registered with no results; running with findings is partial', () => {
  const base = succeededCase();
  const queued = toFhirBundle({ ...base, status: 'queued', completedAt: null, findings: [], models: [] }, {});
  validateFhirResource(queued);
  assert.equal(only<DiagnosticReport>(queued, 'DiagnosticReport').status, 'registered');
  assert.equal(only<DiagnosticReport>(queued, 'DiagnosticReport').issued, base.updatedAt);
  assert.equal(only<Provenance>(queued, 'Provenance').occurredPeriod, undefined);

  const running = toFhirBundle({ ...base, status: 'running', completedAt: null }, {});
  validateFhirResource(running);
  const report = only<DiagnosticReport>(running, 'DiagnosticReport');
  assert.equal(report.status, 'partial');
  assert.match(report.conclusion ?? '', /^The analysis has not finished\. Top finding so far: Tumour epithelium/);
});

test('options: generatedAt sets the bundle timestamp, baseUrl links the JSON case; bad values are refused', () => {
  const result = succeededCase();
  const bundle = toFhirBundle(result, { generatedAt: '2025-03-14T10:00:00+01:00', baseUrl: 'https://host.example/dxflow/' });
  assert.equal(bundle.timestamp, '2025-03-14T09:00:00.000Z');
  assert.deepEqual(bundle.link, [{ relation: 'alternate', url: `https://host.example/dxflow/v1/cases/${result.id}` }]);
  assert.equal(toFhirBundle(result, {}).timestamp, result.completedAt);
  assert.equal(toFhirBundle(result, {}).link, undefined);

  assert.throws(() => toFhirBundle(result, { baseUrl: 'not a url' }), (e) => e instanceof AppError && e.code === 'CONFIG_INVALID');
  assert.throws(() => toFhirBundle(result, { generatedAt: 'yesterday' }), (e) => e instanceof AppError && e.code === 'INTERNAL' && /generatedAt/.test(e.message));
  assert.throws(() => toFhirBundle({ ...result, completedAt: 'soon' }, {}), (e) => e instanceof AppError && /completedAt "soon"/.test(e.message));
});

test('a pipeline without a known report kind gets category OTH and a text-only report code', () => {
  const bundle = toFhirBundle({ ...succeededCase(), pipeline: 'constructor' }, {});
  validateFhirResource(bundle);
  const report = only<DiagnosticReport>(bundle, 'DiagnosticReport');
  assert.deepEqual(report.category, [{ coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v2-0074', code: 'OTH', display: 'Other' }] }]);
  assert.deepEqual(report.code.coding, [{ system: 'urn:dxflow:pipeline', code: 'constructor' }]);
  assert.equal(resources<Observation>(bundle, 'Observation')[0]?.category, undefined);
});
