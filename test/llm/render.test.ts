import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { test } from 'node:test';
import { AppError } from '../../src/core/errors.ts';
import { LLM_OUTPUT_JSON_SCHEMA, parseTemplate, promptVariables, renderPrompt, renderTemplate, type PromptInput } from '../../src/llm/render.ts';
import { abstained, escalation, noRecommender, recommended } from './cases.ts';

const render = (template: string, input: PromptInput = recommended): string => renderTemplate(parseTemplate(template), promptVariables(input));

function refusedWith(pattern: RegExp): (e: unknown) => boolean {
  return (e: unknown) => e instanceof AppError && e.code === 'PROMPT_INVALID' && pattern.test(e.message);
}

test('values render in place: text as is, numbers to three decimals, null as "missing", booleans as words', () => {
  assert.equal(render('Pipeline {{pipeline}}: {{ recommendation.display }} at {{recommendation.probability}}.'), 'Pipeline wsi-prognosis: Radical prostatectomy at 0.682.');
  assert.equal(render('{{#each features}}{{name}}={{value}};{{/each}}'), 'ageYears=67;gradeGroup=3;mriPirads=missing;priorBiopsy=false;psa=12.4;tStage=T2b;');
  assert.equal(render('{{recommendation.code}} {{recommendation.probability}}', abstained), 'missing missing');
});

test('#each lists findings most likely first, and the item\'s fields and the outer variables are both visible', () => {
  assert.equal(render('{{#each findings}}[{{code}} {{probability}} {{pipeline}}]{{/each}}'), '[gleason-4 0.743 wsi-prognosis][gleason-3 0.166 wsi-prognosis][benign 0.091 wsi-prognosis]');
  assert.equal(render('{{#each recommendation.alternatives}}{{display}}|{{/each}}'), 'External beam radiotherapy|Active surveillance|');
  assert.equal(render('{{#each recommendation.reasons}}{{code}}:{{feature}}|{{/each}}', abstained), 'FEATURE_MISSING:ageYears|LOW_IMAGE_CONFIDENCE:missing|');
  // A reason reads in the fixed words of its code, never in the message it carries.
  assert.equal(render('{{#each recommendation.reasons}}{{message}}|{{/each}}', abstained), 'a required clinical value is missing|the image classifier is not confident|');
});

test('#if takes the else branch for false, missing values and empty lists, and the then branch for numbers', () => {
  const t = '{{#if recommendation.recommended}}R{{else}}{{#if recommendation.abstained}}A{{else}}N{{/if}}{{/if}}';
  assert.deepEqual([render(t, recommended), render(t, abstained), render(t, noRecommender)], ['R', 'A', 'N']);
  assert.equal(render('{{#if features}}some{{else}}none{{/if}}', noRecommender), 'none');
  assert.equal(render('{{#if recommendation.code}}code{{else}}no code{{/if}}', abstained), 'no code');
  assert.equal(render('{{#each findings}}{{#if probability}}+{{/if}}{{/each}}', { ...noRecommender, findings: [{ code: 'a', label: 'A', probability: 0 }] }), '+');
});

test('a block tag or comment alone on its line removes the line; inline tags keep their surroundings', () => {
  const template = [
    '{{! a comment line }}',
    'Findings:',
    '  {{#each findings}}',
    '- {{label}}',
    '  {{/each}}',
    'End {{! inline comment }}here',
    '',
  ].join('\n');
  assert.equal(render(template), 'Findings:\n- Gleason pattern 4\n- Gleason pattern 3\n- Benign tissue\nEnd here\n');
  assert.equal(render('a\r\n{{#if pipeline}}\r\nb\r\n{{/if}}\r\nc'), 'a\r\nb\r\nc');
});

test('a value is inserted once and never read as template text', () => {
  const input: PromptInput = { ...noRecommender, pipeline: '{{recommendation.status}} {{#each findings}}' };
  assert.equal(render('[{{pipeline}}]', input), '[{{recommendation.status}} {{#each findings}}]');
});

test('unknown variables are refused with their position and the list of known ones', () => {
  assert.throws(() => parseTemplate('Hello\n  {{patient.name}}'), refusedWith(/line 2, column 3: unknown variable "patient\.name"\. Known variables.*findings\[\]\.label/));
  assert.throws(() => parseTemplate('{{note}}'), refusedWith(/unknown variable "note"/));
  assert.throws(() => parseTemplate('{{metadata}}'), refusedWith(/unknown variable "metadata"/));
  // Item fields exist only inside their #each.
  assert.throws(() => parseTemplate('{{label}}'), refusedWith(/unknown variable "label"/));
  assert.throws(() => parseTemplate('{{#each features}}{{label}}{{/each}}'), refusedWith(/unknown variable "label"/));
  // JavaScript's own properties are not variables.
  for (const name of ['constructor', '__proto__', 'pipeline.length', 'findings.constructor', 'recommendation.toString']) {
    assert.throws(() => parseTemplate(`{{${name}}}`), refusedWith(/unknown variable/), name);
  }
});

test('malformed templates are refused with a message that names the fix', () => {
  assert.throws(() => parseTemplate(''), refusedWith(/empty/));
  assert.throws(() => parseTemplate('   \n'), refusedWith(/empty/));
  assert.throws(() => parseTemplate('x {{pipeline'), refusedWith(/line 1, column 3: "\{\{" is never closed/));
  assert.throws(() => parseTemplate('{{#each findings}}{{code}}'), refusedWith(/\{\{#each findings\}\} is never closed; add \{\{\/each\}\}/));
  assert.throws(() => parseTemplate('{{/if}}'), refusedWith(/closes a block that was never opened/));
  assert.throws(() => parseTemplate('{{#if pipeline}}{{#each findings}}{{/if}}{{/each}}'), refusedWith(/\{\{\/if\}\} closes \{\{#each findings\}\}.*close it with \{\{\/each\}\} first/));
  assert.throws(() => parseTemplate('{{else}}'), refusedWith(/\{\{else\}\} belongs inside \{\{#if/));
  assert.throws(() => parseTemplate('{{#if pipeline}}a{{else}}b{{else}}c{{/if}}'), refusedWith(/once/));
  assert.throws(() => parseTemplate('{{findings}}'), refusedWith(/"findings" is a list; write \{\{#each findings\}\}/));
  assert.throws(() => parseTemplate('{{recommendation}}'), refusedWith(/group of values; use one of them, e\.g\. \{\{recommendation\.status\}\}/));
  assert.throws(() => parseTemplate('{{#each pipeline}}x{{/each}}'), refusedWith(/needs a list/));
  assert.throws(() => parseTemplate('{{#if recommendation}}x{{/if}}'), refusedWith(/group of values/));
  // Anything that is not a plain path is not evaluated: no expressions, helpers or partials.
  for (const tag of ['{{pipeline.toUpperCase()}}', '{{> partial}}', '{{#with recommendation}}', '{{{pipeline}}}', '{{pipeline | upper}}', '{{#each findings as f}}', '{{}}']) {
    assert.throws(() => parseTemplate(tag), refusedWith(/is not a variable|unknown variable/), tag);
  }
  assert.throws(() => parseTemplate('x'.repeat(64 * 1024 + 1)), refusedWith(/more than the 65536 allowed/));
});

test('promptVariables copies only the listed fields: extra properties, the note, reason messages and withheld classes stay out', () => {
  const caseRecord = {
    ...abstained,
    note: 'Alice Example, born 1950-02-03, MRN 4471-0092',
    metadata: { patientName: 'Alice Example' },
    findings: abstained.findings.map((f) => ({ ...f, stage: 'classify', sourceFile: 'alice-example.jpg' })),
    recommendation: { ...escalation, reasons: [{ code: 'FEATURE_UNPARSEABLE' as const, message: 'could not read "Alice Example 4471-0092" as a PSA value', feature: 'psa' }] },
  };
  const variables = promptVariables(caseRecord);
  const serialised = JSON.stringify(variables);
  assert.doesNotMatch(serialised, /Alice|1950-02-03|4471|alice-example|withheld/i);
  assert.deepEqual(variables.recommendation.reasons, [{ code: 'FEATURE_UNPARSEABLE', message: 'a value in the note could not be read', feature: 'psa' }]);
  assert.deepEqual(Object.keys(variables).sort(), ['features', 'findings', 'pipeline', 'recommendation']);
  assert.deepEqual(Object.keys(variables.findings[0] ?? {}).sort(), ['code', 'label', 'probability']);
  assert.equal(variables.recommendation.status, 'abstained');
  assert.equal(variables.recommendation.code, null);
  assert.deepEqual(variables.recommendation.alternatives, []);
});

test('the shipped template parses and renders each kind of case without leftovers', async () => {
  const template = await readFile('prompts/treatment-recommendation.v1.md', 'utf8');
  const byCase = { recommended, abstained, noRecommender };
  for (const [name, input] of Object.entries(byCase)) {
    const { system, user } = renderPrompt(template, input);
    assert.doesNotMatch(user, /\{\{|\}\}/, name);
    assert.doesNotMatch(user, /\n\n\n/, `${name}: block lines leave no blank runs`);
    assert.match(system, /JSON/, 'JSON mode needs the word JSON in the messages');
    assert.ok(system.includes(JSON.stringify(LLM_OUTPUT_JSON_SCHEMA)));
  }
  const rec = renderPrompt(template, recommended).user;
  assert.match(rec, /^- Gleason pattern 4 \(gleason-4\): 0\.743$/m);
  assert.match(rec, /^- mriPirads: missing$/m);
  assert.match(rec, /Treatment recommender \(prostate-risk 2\.1\.0\): Radical prostatectomy \(radical-prostatectomy\),\nprobability 0\.682\./);
  const abst = renderPrompt(template, abstained).user;
  assert.match(abst, /gave NO recommendation/);
  assert.match(abst, /^- FEATURE_MISSING: a required clinical value is missing \(ageYears\)$/m);
  assert.match(abst, /^- LOW_IMAGE_CONFIDENCE: the image classifier is not confident$/m);
  assert.doesNotMatch(abst, /quoted-note-text|withheld/);
  assert.doesNotMatch(abst, /Treatment recommender \(/);
  assert.match(renderPrompt(template, noRecommender).user, /No treatment recommender ran in this pipeline\.\n/);
  assert.match(renderPrompt(template, noRecommender).user, /Clinical values read from the note .*\n- none recorded\n/);
});
