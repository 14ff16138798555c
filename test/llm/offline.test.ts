import assert from 'node:assert/strict';
import { test } from 'node:test';
import { LlmOutput } from '../../src/core/report.ts';
import { createOfflineProvider, OFFLINE_MODEL } from '../../src/llm/providers/offline.ts';
import { promptVariables, renderPrompt, type PromptInput } from '../../src/llm/render.ts';
import { abstained, noRecommender, recommended } from './cases.ts';

const TEMPLATE = 'Case from {{pipeline}}.';

async function answer(input: PromptInput): Promise<LlmOutput> {
  const completion = await createOfflineProvider().complete(renderPrompt(TEMPLATE, input), new AbortController().signal);
  assert.equal(completion.tokens, undefined, 'no tokens are spent offline');
  return LlmOutput.parse(JSON.parse(completion.text));
}

test('the offline provider names itself and its rules version', () => {
  const provider = createOfflineProvider();
  assert.equal(provider.name, 'offline');
  assert.equal(provider.model, OFFLINE_MODEL);
});

test('a recommended case: findings as differentials, the recommendation and its alternatives as considerations, missing values as follow-up', async () => {
  const output = await answer(recommended);
  assert.match(output.summary, /^Image findings: Gleason pattern 4 \(74\.3%\), Gleason pattern 3 \(16\.6%\), Benign tissue \(9\.1%\)\./);
  assert.match(output.summary, /suggests Radical prostatectomy with probability 0\.682/);
  assert.match(output.summary, /Missing clinical values: mriPirads\./);
  assert.match(output.summary, /not by a language model/);
  assert.deepEqual(output.differentials.map((d) => d.diagnosis), ['Gleason pattern 4', 'Gleason pattern 3', 'Benign tissue']);
  assert.deepEqual(output.followUpTests.map((f) => f.test), ['Record mriPirads']);
  assert.deepEqual(output.treatmentConsiderations.map((c) => c.consideration), ['Radical prostatectomy', 'Alternative: External beam radiotherapy', 'Alternative: Active surveillance']);
});

test('an abstained case proposes no treatment and turns each reason into a follow-up', async () => {
  const output = await answer(abstained);
  assert.match(output.summary, /no recommendation and the case should be escalated to a specialist: a required clinical value is missing \(ageYears\); the image classifier is not confident\./);
  assert.deepEqual(output.followUpTests.map((f) => f.rationale).slice(0, 2), ['ageYears is missing from the clinical note.', 'the image classifier is not confident']);
  assert.deepEqual(output.treatmentConsiderations.map((c) => c.consideration), ['No treatment recommendation: escalate to a specialist']);
  assert.deepEqual(output.followUpTests.map((f) => f.test), ['Record ageYears', 'Specialist review of the images and the note', 'Specialist review of the images']);
  assert.doesNotMatch(JSON.stringify(output), /withheld|quoted-note-text/i, 'neither the withheld class nor a reason\'s own message is used');
});

test('a pipeline without a recommender gets findings and no treatment considerations', async () => {
  const output = await answer(noRecommender);
  assert.match(output.summary, /No treatment recommender ran in this pipeline\./);
  assert.deepEqual(output.treatmentConsiderations, []);
  assert.deepEqual(output.followUpTests, []);
  assert.deepEqual(output.differentials.map((d) => d.diagnosis), ['Eczema']);
});

test('large inputs stay within the output schema\'s limits, and the answer is deterministic', async () => {
  const many: PromptInput = {
    pipeline: 'stress',
    findings: Array.from({ length: 40 }, (_, i) => ({ code: `c${i}`, label: `Class ${i}`, probability: 0.025 })),
    features: Object.fromEntries(Array.from({ length: 30 }, (_, i) => [`value${i}`, null])),
    recommendation: {
      status: 'abstained',
      reasons: Array.from({ length: 120 }, (_, i) => ({ code: 'FEATURE_OUT_OF_RANGE' as const, feature: `value${i}` })),
    },
  };
  const output = await answer(many);
  assert.ok(output.summary.length <= 2000);
  assert.match(output.summary, /… Produced by dxflow's offline rules/);
  assert.equal(output.followUpTests.length, 10);
  assert.deepEqual(output.differentials, [], 'no finding reaches the differential threshold');
  assert.deepEqual(await answer(many), output);
  // The order of the caller's findings and features does not change the answer.
  const shuffled: PromptInput = { ...recommended, findings: [...recommended.findings].reverse(), features: Object.fromEntries(Object.entries(recommended.features).reverse()) };
  assert.deepEqual(await answer(shuffled), await answer(recommended));
});

test('an aborted signal is honoured', async () => {
  const controller = new AbortController();
  controller.abort(new Error('shutting down'));
  await assert.rejects(createOfflineProvider().complete({ system: '', user: '', variables: promptVariables(recommended) }, controller.signal), /shutting down/);
});
