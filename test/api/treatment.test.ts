import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { test } from 'node:test';
import type { FastifyInstance } from 'fastify';
import sharp from 'sharp';
import { build } from '../../src/api/app.ts';
import type { CaseResult } from '../../src/core/result.ts';
import { validateFhirResource } from '../support/fhir-validator.ts';
import { multipart } from '../support/images.ts';
import { platformTargets, TEST_API_KEY } from '../support/platform.ts';
import { chatCompletion, startChatServer } from '../llm/chat-server.ts';

const auth = { authorization: `Bearer ${TEST_API_KEY}` };
const tumour = await readFile('samples/tissue-tumour-like.png');
const note = await readFile('samples/note-intermediate-risk.txt', 'utf8');

async function predict(app: FastifyInstance, fields: Record<string, string | { bytes: Buffer; filename: string }>): Promise<CaseResult> {
  const { payload, headers } = await multipart({ image: { bytes: tumour, filename: 'slide.png' }, pipeline: 'image-treatment', ...fields });
  const res = await app.inject({ method: 'POST', url: '/v1/predict', payload, headers: { ...headers, ...auth } });
  assert.equal(res.statusCode, 200, res.body);
  return res.json() as CaseResult;
}

const reasonCodes = (r: CaseResult) => (r.recommendation?.status === 'abstained' ? r.recommendation.reasons.map((x) => `${x.code}${x.feature ? `:${x.feature}` : ''}`) : []);

for (const target of platformTargets()) {
  test(`[${target.name}] image + note → recommendation with SHAP, CAM heatmap, LLM text, billing and a valid FHIR bundle`, async (t) => {
    const { platform } = await target.open(t);
    const app = await build(platform);
    t.after(() => app.close());
    const r = await predict(app, { note });
    assert.equal(r.status, 'succeeded');
    assert.equal(r.recommendation?.status, 'recommended');
    if (r.recommendation?.status !== 'recommended') return;
    assert.equal(r.recommendation.code, 'local-therapy');
    assert.equal(r.recommendation.model.name, 'demo-treatment-recommender');
    assert.equal(r.clinical?.values['psa'], 12.4);
    assert.equal(r.clinical?.values['grade_group'], 3);
    assert.ok(r.note && r.note.format === 'text' && /^[0-9a-f]{64}$/.test(r.note.sha256));
    assert.ok(!JSON.stringify(r).includes('routine testing'), 'the note text itself is never part of the result');

    // SHAP: one value per model feature; with the bias they add up to the explained class's margin,
    // so softmax over margins must give back the recommended probability — checked via its log-odds rank.
    const [shap] = r.explanations.shap;
    assert.ok(shap);
    assert.equal(shap.output, 'local-therapy');
    assert.deepEqual(shap.contributions.map((c) => c.feature), ['image_tumour_probability', 'age', 'psa', 'grade_group', 't_stage', 'pct_positive_cores', 'prior_treatment']);
    assert.ok(shap.contributions.every((c) => Number.isFinite(c.contribution)));

    // The CAM heatmap is stored and served.
    const [heatmap] = r.explanations.heatmaps;
    assert.ok(heatmap);
    assert.equal(heatmap.method, 'cam');
    assert.equal(heatmap.label, 'tumour-pattern');
    const name = heatmap.objectKey.split('/').pop() ?? '';
    const png = await app.inject({ method: 'GET', url: `/v1/cases/${r.id}/files/${name}`, headers: auth });
    assert.equal(png.statusCode, 200);
    assert.equal(png.headers['content-type'], 'image/png');
    const meta = await sharp(png.rawPayload).metadata();
    assert.deepEqual([meta.width, meta.height], [heatmap.width, heatmap.height]);
    const input = await app.inject({ method: 'GET', url: `/v1/cases/${r.id}/files/input`, headers: auth });
    assert.equal(input.statusCode, 404, 'the input is not served as a derived file');

    // Offline LLM text with its prompt version; billing marked as suggestions.
    assert.equal(r.llm?.provider, 'offline');
    assert.equal(r.llm?.fallback, false);
    assert.equal(r.llm?.prompt.name, 'treatment-recommendation');
    assert.equal(r.llm?.prompt.label, 'production');
    assert.ok((r.llm?.output.summary.length ?? 0) > 0);
    assert.equal(r.billing?.suggestionsOnly, true);
    const codes = r.billing?.items.map((i) => i.code) ?? [];
    assert.ok(codes.includes('C61') && codes.includes('R97.20') && codes.includes('84153'), codes.join(','));
    assert.ok(r.billing?.items.every((i) => i.rationale.length > 0));

    const fhir = await app.inject({ method: 'GET', url: `/v1/cases/${r.id}/fhir`, headers: auth });
    assert.equal(fhir.statusCode, 200);
    const bundle = fhir.json();
    validateFhirResource(bundle);
    for (const e of bundle.entry) validateFhirResource(e.resource, { bundle });
  });

  test(`[${target.name}] bad or missing clinical values escalate to a specialist with specific reasons`, async (t) => {
    const { platform } = await target.open(t);
    const app = await build(platform);
    t.after(() => app.close());

    const abc = await predict(app, { note: note.replace('an elevated PSA of 12.4 ng/mL', 'PSA: abc') });
    assert.equal(abc.recommendation?.status, 'abstained');
    assert.deepEqual(reasonCodes(abc), ['FEATURE_UNPARSEABLE:psa']);
    assert.equal(abc.clinical?.values['psa'], null, 'an unparseable value stays missing, never zero');
    // Prose after "PSA" is not a value: the model's required PSA is then missing, and says so.
    const prose = await predict(app, { note: note.replace('an elevated PSA of 12.4 ng/mL', 'a PSA abc') });
    assert.deepEqual(reasonCodes(prose), ['FEATURE_MISSING:psa']);

    const negative = await predict(app, { note: note.replace('68-year-old', '-68-year-old').replace('68-year-old man', 'Age: -68. Man') });
    assert.equal(negative.recommendation?.status, 'abstained');
    assert.ok(reasonCodes(negative).includes('FEATURE_OUT_OF_RANGE:age'), reasonCodes(negative).join(','));

    const none = await predict(app, {});
    assert.equal(none.recommendation?.status, 'abstained');
    assert.ok(reasonCodes(none).includes('NO_CLINICAL_NOTE'), reasonCodes(none).join(','));
    assert.ok(reasonCodes(none).includes('FEATURE_MISSING:psa'));
    if (none.recommendation?.status === 'abstained') {
      assert.equal(none.recommendation.display, 'No recommendation — escalate to specialist');
      assert.ok(none.recommendation.withheld && none.recommendation.withheld.length === 3, 'what the model would have said is kept for audit');
    }
    // Escalations suggest no treatment codes.
    assert.ok(!none.billing?.items.some((i) => i.system === 'CPT' && ['55866', '77427'].includes(i.code)));

    const blurred = await sharp(tumour).blur(8).png().toBuffer();
    const { payload, headers } = await multipart({ image: { bytes: blurred, filename: 'blurred.png' }, pipeline: 'image-treatment', note });
    const res = await app.inject({ method: 'POST', url: '/v1/predict', payload, headers: { ...headers, ...auth } });
    const low = res.json() as CaseResult;
    assert.ok(reasonCodes(low).includes('LOW_IMAGE_QUALITY'), reasonCodes(low).join(','));

    const fhir = await app.inject({ method: 'GET', url: `/v1/cases/${none.id}/fhir`, headers: auth });
    const bundle = fhir.json();
    validateFhirResource(bundle);
    const report = bundle.entry.find((e: { resource: { resourceType: string } }) => e.resource.resourceType === 'DiagnosticReport').resource;
    assert.match(report.conclusion, /escalate to specialist/i);
  });

  test(`[${target.name}] a structured JSON note is accepted as a field or a file`, async (t) => {
    const { platform } = await target.open(t);
    const app = await build(platform);
    t.after(() => app.close());
    const json = JSON.stringify({ age: 71, psa: { value: 6.1, unit: 'ng/mL' }, grade_group: 1, t_stage: 'T1c', pct_positive_cores: 8, prior_treatment: false });
    const asField = await predict(app, { note: json });
    assert.equal(asField.note?.format, 'json');
    assert.equal(asField.clinical?.values['psa'], 6.1);
    const asFile = await predict(app, { note: { bytes: Buffer.from(json), filename: 'note.json' } });
    assert.deepEqual(asFile.clinical?.values, asField.clinical?.values);
    const { payload, headers } = await multipart({ image: { bytes: tumour, filename: 'x.png' }, pipeline: 'image-treatment', note: '{"psa": 4.2' });
    const bad = await app.inject({ method: 'POST', url: '/v1/predict', payload, headers: { ...headers, ...auth } });
    assert.equal(bad.statusCode, 400);
    assert.equal(bad.json().error.code, 'INVALID_REQUEST');
  });
}

test('with an OpenAI-compatible endpoint configured, its answer is used and recorded', async (t) => {
  const answer = {
    summary: 'Intermediate-risk disease on the structured findings; confirm histology.',
    differentials: [{ diagnosis: 'Prostatic adenocarcinoma', rationale: 'Tumour-like pattern with grade group 3.' }],
    followUpTests: [{ test: 'Staging MRI', rationale: 'Assess extraprostatic extension.' }],
    treatmentConsiderations: [{ consideration: 'Discuss surgery or radiotherapy', rationale: 'Local therapy recommended by the model.' }],
  };
  const server = await startChatServer(t, () => chatCompletion(JSON.stringify(answer)));
  const [pglite] = platformTargets();
  const { platform } = await pglite!.open(t, { DXFLOW_LLM_BASE_URL: server.baseUrl, DXFLOW_LLM_MODEL: 'local-test-model', DXFLOW_LLM_API_KEY: 'sk-test' });
  const app = await build(platform);
  t.after(() => app.close());
  const r = await predict(app, { note, metadata: JSON.stringify({ patientName: 'Jane Q. Doe' }) });
  assert.equal(r.llm?.provider, 'openai');
  assert.equal(r.llm?.model, 'local-test-model');
  assert.equal(r.llm?.fallback, false);
  assert.deepEqual(r.llm?.tokens, { prompt: 321, completion: 87 });
  assert.deepEqual(r.llm?.output, answer);
  assert.equal(server.requests.length, 1);
  const sent = server.requests[0]?.raw ?? '';
  assert.ok(sent.includes('local-therapy') || sent.includes('Local therapy'), 'the prompt carries the recommendation');
  assert.ok(!sent.includes('Jane') && !sent.includes('routine testing'), 'no metadata and no note text reach the LLM');

  // An escalated case: the prompt gets reason codes in fixed words — not the parser's message quoting
  // the note, not the withheld classes.
  const escalated = await predict(app, { note: note.replace('an elevated PSA of 12.4 ng/mL', 'PSA: abc') });
  assert.equal(escalated.recommendation?.status, 'abstained');
  const second = server.requests[1]?.raw ?? '';
  assert.ok(second.includes('FEATURE_UNPARSEABLE'), 'the reason code is in the prompt');
  assert.ok(!second.includes('abc'), 'the note text quoted by the parser stays out of the prompt');
  for (const code of ['local-therapy', 'active-surveillance', 'systemic-therapy']) assert.ok(!second.includes(code), `withheld class ${code} stays out of the prompt`);
});
