import assert from 'node:assert/strict';
import { test } from 'node:test';
import type {
  Bundle,
  DetectedIssue,
  Device,
  DiagnosticReport,
  Media,
  Observation,
  Provenance,
  Resource,
  RiskAssessment,
} from '@medplum/fhirtypes';
import { AppError } from '../../src/core/errors.ts';
import { ESCALATE_DISPLAY } from '../../src/core/report.ts';
import type { CaseResult } from '../../src/core/result.ts';
import { toFhirBundle } from '../../src/fhir/bundle.ts';
import { RULE_BASED_TEXT_PROVIDER } from '../../src/fhir/codes.ts';
import { createOfflineProvider } from '../../src/llm/providers/offline.ts';
import { only, references, resolve, resources } from './bundle-query.ts';
import {
  abstainedCase,
  failedCase,
  IMAGE_CLASSIFIER,
  PLANTED_PATIENT_NAME,
  recommendedCase,
  TREATMENT_RECOMMENDER,
  WITHHELD,
} from './cases.ts';
import { validateFhirResource } from '../support/fhir-validator.ts';

// The explained parts of a result in the bundle: recommendation or escalation, SHAP, heatmaps, the
// generated summary and billing suggestions.

const BASE_URL = 'https://dxflow.example.org';
const MARGIN = { unit: 'margin', system: 'http://unitsofmeasure.org', code: '1' };

function byCode(bundle: Bundle, code: string): Observation[] {
  return resources<Observation>(bundle, 'Observation').filter((o) => o.code.coding?.some((c) => c.system === 'urn:dxflow:report-part' && c.code === code));
}

function one<T>(list: readonly T[], what: string): T {
  assert.equal(list.length, 1, `exactly one ${what}`);
  return list[0] as T;
}

function device(bundle: Bundle, ref: string | undefined): Device {
  const found = resolve(bundle, ref);
  assert.equal(found?.resourceType, 'Device', `${ref} resolves to a Device`);
  return found as Device;
}

function validate(bundle: Bundle): void {
  validateFhirResource(bundle);
  for (const entry of bundle.entry ?? []) validateFhirResource(entry.resource as Resource, { bundle });
}

test('recommended: a preliminary RiskAssessment with one prediction per class, recommended first, by the recommender Device', () => {
  const result = recommendedCase();
  const bundle = toFhirBundle(result, {});
  const assessment = only<RiskAssessment>(bundle, 'RiskAssessment');
  assert.equal(assessment.status, 'preliminary');
  assert.deepEqual(assessment.code?.coding?.[0], { system: 'urn:dxflow:report-part', code: 'treatment-recommendation', display: 'Treatment recommendation' });
  // R4 requires a subject: typed, described, and pointing at nothing, since dxflow holds no patient data.
  assert.equal(assessment.subject.reference, undefined);
  assert.equal(assessment.subject.identifier, undefined);
  assert.equal(assessment.subject.type, 'Patient');
  assert.match(assessment.subject.display ?? '', /not identified/);
  assert.deepEqual(resources(bundle, 'Patient'), []);

  assert.deepEqual(
    assessment.prediction?.map((p) => [p.outcome?.coding?.[0]?.system, p.outcome?.coding?.[0]?.code, p.outcome?.text, p.probabilityDecimal]),
    [
      ['urn:dxflow:recommendation', 'local-therapy', 'Local therapy (radical prostatectomy or radiotherapy)', 0.78],
      ['urn:dxflow:recommendation', 'active-surveillance', 'Active surveillance', 0.15],
      ['urn:dxflow:recommendation', 'systemic-therapy', 'Systemic therapy (e.g. androgen deprivation)', 0.07],
    ],
  );
  assert.match(assessment.prediction?.[0]?.rationale ?? '', /^Recommended/);
  assert.match(assessment.prediction?.[1]?.rationale ?? '', /not recommended/);
  assert.deepEqual(device(bundle, assessment.performer?.reference).identifier, [{ system: 'urn:dxflow:model-sha256', value: TREATMENT_RECOMMENDER.sha256 }]);
  // The basis is what the recommender read: the image classifier's findings.
  const findings = resources<Observation>(bundle, 'Observation').filter((o) => o.code.coding?.[0]?.system === 'urn:dxflow:finding');
  assert.equal(findings.length, 2);
  assert.deepEqual(assessment.basis?.map((b) => resolve(bundle, b.reference)), findings);
  assert.deepEqual(resources(bundle, 'DetectedIssue'), []);

  const report = only<DiagnosticReport>(bundle, 'DiagnosticReport');
  assert.match(
    report.conclusion ?? '',
    /^Top finding: Tumour-like tissue pattern \(synthetic demo\) \(tumour-pattern\), probability 0\.91, model demo-tissue-classifier 1\.0\.0 \(2 findings in total\)\. Recommendation: Local therapy \(radical prostatectomy or radiotherapy\) \(local-therapy\), probability 0\.78, model demo-treatment-recommender 1\.0\.0\. Preliminary output/,
  );
});

test('recommended: SHAP values as one Observation in the report, focused on the RiskAssessment, one component per feature in margin space', () => {
  const result = recommendedCase();
  const shap = result.explanations.shap[0];
  assert.ok(shap);
  const bundle = toFhirBundle(result, {});
  const observation = one(byCode(bundle, 'shap-contributions'), 'SHAP Observation');
  assert.equal(observation.status, 'preliminary');
  assert.equal(observation.code.text, 'SHAP feature contributions');
  assert.equal(resolve(bundle, observation.focus?.[0]?.reference), only<RiskAssessment>(bundle, 'RiskAssessment'));
  assert.equal(device(bundle, observation.device?.reference).deviceName?.[0]?.name, TREATMENT_RECOMMENDER.name);
  assert.ok(only<DiagnosticReport>(bundle, 'DiagnosticReport').result?.some((r) => resolve(bundle, r.reference) === observation));

  const [output, bias, ...features] = observation.component ?? [];
  assert.deepEqual(output?.valueCodeableConcept, {
    coding: [{ system: 'urn:dxflow:model-output', code: 'local-therapy' }],
    text: 'Local therapy (radical prostatectomy or radiotherapy) (local-therapy), the recommended class',
  });
  assert.equal(bias?.code.coding?.[0]?.code, 'shap-bias');
  assert.deepEqual(bias?.valueQuantity, { value: shap.bias, ...MARGIN });
  assert.deepEqual(
    features.map((c) => [c.code.coding?.[0]?.system, c.code.coding?.[0]?.code, c.valueQuantity]),
    shap.contributions.map((c) => ['urn:dxflow:model-feature', c.feature, { value: c.contribution, ...MARGIN }]),
  );
  assert.match(observation.note?.[0]?.text ?? '', /margin space/);
});

test('recommended: the heatmap is a Media linked from DiagnosticReport.media, served by the case files route', () => {
  const result = recommendedCase();
  for (const [options, url] of [
    [{}, `/v1/cases/${result.id}/files/heatmap-classify-tumour-pattern.png`],
    [{ baseUrl: `${BASE_URL}/` }, `${BASE_URL}/v1/cases/${result.id}/files/heatmap-classify-tumour-pattern.png`],
  ] as const) {
    const bundle = toFhirBundle(result, options);
    const report = only<DiagnosticReport>(bundle, 'DiagnosticReport');
    const media = only<Media>(bundle, 'Media');
    assert.equal(report.media?.length, 1);
    assert.equal(resolve(bundle, report.media?.[0]?.link.reference), media);
    assert.equal(report.media?.[0]?.comment, 'Class activation map (CAM) for Tumour-like tissue pattern (synthetic demo) (tumour-pattern)');
    assert.equal(media.status, 'completed');
    assert.deepEqual(media.type?.coding, [{ system: 'http://terminology.hl7.org/CodeSystem/media-type', code: 'image', display: 'Image' }]);
    assert.deepEqual([media.width, media.height], [96, 96]);
    assert.equal(media.content.contentType, 'image/png');
    assert.equal(media.content.url, url);
    assert.deepEqual(device(bundle, media.device?.reference).identifier, [{ system: 'urn:dxflow:model-sha256', value: IMAGE_CLASSIFIER.sha256 }]);
  }
});

test('a heatmap stored outside its case folder cannot be linked: the mapping fails without quoting the key', () => {
  const base = recommendedCase();
  const [heatmap] = base.explanations.heatmaps;
  assert.ok(heatmap);
  for (const objectKey of [`inputs/${PLANTED_PATIENT_NAME}.png`, `cases/${base.id}/`, `cases/${base.id}/nested/heatmap.png`, `cases/other-case/heatmap-x.png`]) {
    const result: CaseResult = { ...base, explanations: { ...base.explanations, heatmaps: [{ ...heatmap, objectKey }] } };
    assert.throws(
      () => toFhirBundle(result, {}),
      (e) => e instanceof AppError && e.code === 'INTERNAL' && /cannot link it/.test(e.message) && !/Jane|nested|other-case/.test(e.message),
      objectKey,
    );
  }
});

test('recommended: the language-model text is a preliminary Observation marked AI-generated, with prompt version and generator Device', () => {
  const result = recommendedCase();
  const llm = result.llm;
  assert.ok(llm);
  const bundle = toFhirBundle(result, {});
  const observation = one(byCode(bundle, 'llm-recommendation'), 'generated-text Observation');
  assert.equal(observation.status, 'preliminary');
  assert.equal(observation.code.text, 'AI-generated clinical summary');
  assert.equal(observation.valueString, llm.output.summary);
  assert.deepEqual(observation.method?.coding, [{ system: 'urn:dxflow:prompt', code: 'treatment-recommendation.v1' }]);
  assert.match(observation.method?.text ?? '', /version 1 \(label production\), answered by gpt-4o-mini-2024-07-18 \(openai provider\)/);
  assert.match(observation.note?.[0]?.text ?? '', /^AI-generated text: written by the language model gpt-4o-mini-2024-07-18/);
  assert.deepEqual(
    observation.component?.map((c) => [c.code.coding?.[0]?.code, c.valueString]),
    [
      ['differential-diagnosis', 'Prostatic adenocarcinoma, grade group 3 — Tumour-like pattern at 0.91 and grade group 3.'],
      ['follow-up-test', 'Multiparametric MRI of the prostate — Local staging before local therapy.'],
      ['treatment-consideration', 'Local therapy (radical prostatectomy or radiotherapy) — Recommended with probability 0.78; a clinician decides.'],
      ['treatment-consideration', 'Alternative: Active surveillance — Probability 0.15.'],
    ],
  );
  const generator = device(bundle, observation.device?.reference);
  assert.deepEqual(generator.deviceName, [{ name: llm.model, type: 'model-name' }]);
  assert.deepEqual(generator.version, [{ value: llm.model }]);
  assert.equal(generator.type?.coding?.[0]?.code, 'llm');
  assert.ok(only<DiagnosticReport>(bundle, 'DiagnosticReport').result?.some((r) => resolve(bundle, r.reference) === observation));
});

test('recommended: billing suggestions are Observations about the report, never in its results, coded in ICD-10-CM and CPT', () => {
  const result = recommendedCase();
  const bundle = toFhirBundle(result, {});
  const report = only<DiagnosticReport>(bundle, 'DiagnosticReport');
  const suggestions = byCode(bundle, 'billing-code-suggestion');
  assert.deepEqual(
    suggestions.map((o) => o.valueCodeableConcept?.coding),
    [
      [{ system: 'http://hl7.org/fhir/sid/icd-10-cm', code: 'C61', display: 'Malignant neoplasm of prostate' }],
      [{ system: 'http://www.ama-assn.org/go/cpt', code: '88305', display: 'Surgical pathology, level IV' }],
    ],
  );
  const tumour = resources<Observation>(bundle, 'Observation').find((o) => o.code.coding?.[0]?.code === 'tumour-pattern');
  for (const [i, o] of suggestions.entries()) {
    assert.equal(o.status, 'preliminary');
    assert.equal(resolve(bundle, o.focus?.[0]?.reference), report);
    assert.ok(!report.result?.some((r) => resolve(bundle, r.reference) === o), 'not a result of the report');
    assert.deepEqual(o.derivedFrom?.map((d) => resolve(bundle, d.reference)), [tumour]);
    assert.equal(o.method?.text, 'dxflow billing suggestion table dxflow-billing-2025.1');
    const notes = o.note?.map((n) => n.text) ?? [];
    assert.equal(notes[0], result.billing?.items[i]?.rationale);
    assert.match(notes.at(-1) ?? '', /^Suggestion only, for a human coder: not a diagnosis and not a claim/);
  }
  // Nothing that a billing or problem-list system acts on.
  for (const type of ['Claim', 'ChargeItem', 'Account', 'Condition', 'Procedure']) assert.deepEqual(resources(bundle, type as Resource['resourceType']), []);
});

test('recommended: one Device per model and one for the text generator, all Provenance agents; Provenance targets every clinical resource', () => {
  const result = recommendedCase();
  const bundle = toFhirBundle(result, {});
  const devices = resources<Device>(bundle, 'Device');
  assert.deepEqual(
    devices.map((d) => d.identifier?.[0]?.value ?? d.deviceName?.[0]?.name),
    ['image-treatment', IMAGE_CLASSIFIER.sha256, TREATMENT_RECOMMENDER.sha256, result.llm?.model],
  );
  const provenance = only<Provenance>(bundle, 'Provenance');
  assert.deepEqual(provenance.agent.map((a) => resolve(bundle, a.who.reference)), devices);
  const clinical = (bundle.entry ?? []).filter((e) => !['Device', 'Provenance'].includes(e.resource?.resourceType ?? '')).map((e) => e.fullUrl);
  assert.equal(clinical.length, 9);
  assert.deepEqual(provenance.target.map((t) => t.reference), clinical);
  assert.deepEqual(
    provenance.entity?.map((e) => e.what.identifier),
    [{ system: 'urn:dxflow:input-sha256', value: result.input?.sha256 }, { system: 'urn:dxflow:note-sha256', value: result.note?.sha256 }],
  );
});

test('abstained: a DetectedIssue says "escalate to specialist" with each reason coded; no RiskAssessment, no prediction', () => {
  const result = abstainedCase();
  const bundle = toFhirBundle(result, {});
  assert.deepEqual(resources(bundle, 'RiskAssessment'), []);
  const issue = only<DetectedIssue>(bundle, 'DetectedIssue');
  assert.equal(issue.status, 'preliminary');
  assert.deepEqual(issue.code, {
    coding: [{ system: 'urn:dxflow:report-part', code: 'no-recommendation', display: ESCALATE_DISPLAY }],
    text: ESCALATE_DISPLAY,
  });
  assert.deepEqual(
    issue.evidence?.map((e) => [e.code?.[0]?.coding, e.code?.[0]?.text]),
    [
      [[{ system: 'urn:dxflow:abstain-reason', code: 'FEATURE_UNPARSEABLE', display: 'Clinical value could not be read' }], 'Clinical value could not be read (psa)'],
      [[{ system: 'urn:dxflow:abstain-reason', code: 'LOW_IMAGE_CONFIDENCE', display: 'Image classifier not confident enough' }], 'Image classifier not confident enough'],
      [[{ system: 'urn:dxflow:abstain-reason', code: 'LOW_CONFIDENCE', display: 'Recommender not confident enough' }], 'Recommender not confident enough'],
    ],
  );
  assert.match(issue.detail ?? '', /^No recommendation — escalate to specialist\. The treatment recommender demo-treatment-recommender 1\.0\.0 gave no answer/);
  assert.deepEqual(device(bundle, issue.author?.reference).identifier, [{ system: 'urn:dxflow:model-sha256', value: TREATMENT_RECOMMENDER.sha256 }]);

  const report = only<DiagnosticReport>(bundle, 'DiagnosticReport');
  assert.equal(report.status, 'preliminary');
  assert.match(
    report.conclusion ?? '',
    /\(2 findings in total\)\. No recommendation — escalate to specialist: Clinical value could not be read \(psa\); Image classifier not confident enough; Recommender not confident enough\. Preliminary output/,
  );
});

test('abstained: the withheld classes appear nowhere but in the SHAP Observation, which says they were withheld', () => {
  const bundle = toFhirBundle(abstainedCase(), { baseUrl: BASE_URL });
  const withheldTerms = WITHHELD.flatMap((w) => [w.code, w.display]);
  const shap = one(byCode(bundle, 'shap-contributions'), 'SHAP Observation');
  for (const entry of bundle.entry ?? []) {
    if (entry.resource === shap) continue;
    const json = JSON.stringify(entry.resource);
    for (const term of withheldTerms) assert.ok(!json.includes(term), `${entry.resource?.resourceType} names the withheld class "${term}"`);
  }
  for (const w of WITHHELD) assert.ok(!JSON.stringify(bundle).includes(String(w.probability)), `withheld probability ${w.probability} is in the bundle`);
  assert.equal(shap.focus, undefined);
  assert.deepEqual(shap.component?.[0]?.valueCodeableConcept, {
    coding: [{ system: 'urn:dxflow:model-output', code: 'local-therapy' }],
    text: 'local-therapy: the class the model ranks first, withheld; no recommendation was made',
  });
});

test('abstained: the fallback text is marked rule-based, not AI-generated, and the failure text stays out', () => {
  const result = abstainedCase();
  const bundle = toFhirBundle(result, {});
  const observation = one(byCode(bundle, 'llm-recommendation'), 'generated-text Observation');
  assert.equal(observation.code.text, 'Rule-based fallback summary (the language model failed)');
  assert.match(observation.note?.[0]?.text ?? '', /^Rule-based text: written by dxflow's offline rules \(dxflow-rules-1\) from the structured result, not by a language model\. It replaces the configured language model, which failed/);
  assert.ok(!JSON.stringify(observation).includes('AI-generated'));
  const generator = device(bundle, observation.device?.reference);
  assert.equal(generator.type?.coding?.[0]?.code, 'rules');
  assert.match(generator.type?.text ?? '', /not a language model/);
  assert.ok(!JSON.stringify(bundle).includes('LLM_UNAVAILABLE'), 'fallback reason copied');
});

test('a language model that answered as the fallback is still marked AI-generated, and says it is the fallback', () => {
  const base = recommendedCase();
  assert.ok(base.llm);
  const bundle = toFhirBundle({ ...base, llm: { ...base.llm, fallback: true, fallbackReason: 'primary failed' } }, {});
  const observation = one(byCode(bundle, 'llm-recommendation'), 'generated-text Observation');
  assert.equal(observation.code.text, 'AI-generated clinical summary (fallback language model)');
  assert.match(observation.note?.[0]?.text ?? '', /^AI-generated text: .* It replaces the configured language model, which failed for this case\.$/);
});

test('the provider name taken as rule-based is the one the offline provider reports', () => {
  assert.equal(createOfflineProvider().name, RULE_BASED_TEXT_PROVIDER);
  const base = recommendedCase();
  assert.ok(base.llm);
  const bundle = toFhirBundle({ ...base, llm: { ...base.llm, provider: RULE_BASED_TEXT_PROVIDER, model: 'dxflow-rules-1' } }, {});
  assert.equal(one(byCode(bundle, 'llm-recommendation'), 'generated-text Observation').code.text, 'Rule-based summary');
});

test('nothing the note parser read, no abstention message, object key or provider error reaches the bundle', () => {
  const recommended = recommendedCase();
  const abstained = abstainedCase();
  // Where the name is planted, so that this test keeps testing something.
  assert.ok(recommended.clinical?.spans.some((s) => s.text.includes(PLANTED_PATIENT_NAME)));
  assert.ok(recommended.clinical?.issues.some((i) => i.message.includes(PLANTED_PATIENT_NAME)));
  assert.ok(abstained.recommendation?.status === 'abstained' && abstained.recommendation.reasons.some((r) => r.message.includes(PLANTED_PATIENT_NAME)));
  assert.ok(abstained.llm?.fallbackReason?.includes(PLANTED_PATIENT_NAME));
  assert.ok(recommended.note);
  const noteKey = `notes/${PLANTED_PATIENT_NAME}.txt`;
  const withNoteKey: CaseResult = { ...recommended, note: { ...recommended.note, objectKey: noteKey } };

  const json = JSON.stringify([toFhirBundle(withNoteKey, { baseUrl: BASE_URL }), toFhirBundle(abstained, { baseUrl: BASE_URL })]);
  assert.ok(!json.includes('Jane'), 'patient name leaked');
  assert.ok(!/sentinel/i.test(json), 'planted value leaked');
  assert.ok(!json.includes('notes/') && !json.includes('inputs/') && !json.includes('/note"'), 'an object key was copied');
});

test('a failed case releases none of the explained parts', () => {
  const parts = recommendedCase();
  const result: CaseResult = {
    ...failedCase(),
    recommendation: parts.recommendation,
    explanations: parts.explanations,
    llm: parts.llm,
    billing: parts.billing,
  };
  const bundle = toFhirBundle(result, {});
  validate(bundle);
  assert.deepEqual(
    (bundle.entry ?? []).map((e) => e.resource?.resourceType),
    ['DiagnosticReport', 'Device', 'Provenance'],
  );
  assert.equal(only<DiagnosticReport>(bundle, 'DiagnosticReport').media, undefined);
  assert.doesNotMatch(only<DiagnosticReport>(bundle, 'DiagnosticReport').conclusion ?? '', /Recommendation|escalate/);
});

test('blank text from a stage is left out or replaced, so the resources stay valid FHIR', () => {
  const base = recommendedCase();
  assert.ok(base.llm && base.billing && base.recommendation?.status === 'recommended');
  const result: CaseResult = {
    ...base,
    recommendation: { ...base.recommendation, display: ' ', alternatives: [{ code: 'active-surveillance', display: '', probability: 0.22 }] },
    llm: {
      ...base.llm,
      output: {
        summary: '  ',
        differentials: [{ diagnosis: ' ', rationale: 'orphan rationale' }],
        followUpTests: [{ test: 'PSA in 3 months', rationale: ' ' }],
        treatmentConsiderations: [],
      },
    },
    billing: { ...base.billing, items: [{ system: 'CPT', code: '88305', display: '', rationale: '', basedOn: [' '] }] },
  };
  const bundle = toFhirBundle(result, {});
  validate(bundle);
  const text = one(byCode(bundle, 'llm-recommendation'), 'generated-text Observation');
  assert.equal(text.valueString, undefined);
  assert.equal(text.dataAbsentReason?.coding?.[0]?.code, 'unknown');
  assert.deepEqual(text.component?.map((c) => c.valueString), ['PSA in 3 months']);
  const assessment = only<RiskAssessment>(bundle, 'RiskAssessment');
  assert.deepEqual(assessment.prediction?.map((p) => p.outcome?.text), ['local-therapy', 'active-surveillance']);
  assert.match(only<DiagnosticReport>(bundle, 'DiagnosticReport').conclusion ?? '', /Recommendation: local-therapy, probability 0\.78/);
});

test('every reference in the explained bundles resolves, and only to a resource type its element allows', () => {
  for (const build of [recommendedCase, abstainedCase]) {
    const bundle = toFhirBundle(build(), {});
    const urls = new Set((bundle.entry ?? []).map((e) => e.fullUrl));
    for (const ref of references(bundle)) assert.ok(urls.has(ref), `${ref} resolves`);
    // The validator rewrites each urn:uuid reference to Type/id, so Medplum checks the target types.
    validate(bundle);
  }
});
