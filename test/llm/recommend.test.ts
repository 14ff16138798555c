import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { test, type TestContext } from 'node:test';
import { migrate } from '../../src/adapters/db/migrate.ts';
import type { SqlDatabase } from '../../src/adapters/db/sql-database.ts';
import { AppError } from '../../src/core/errors.ts';
import { LlmRecommendation } from '../../src/core/report.ts';
import { createLlmProvider } from '../../src/llm/index.ts';
import { createPrompt, ensureDefaultPrompts, getPrompt, promote } from '../../src/llm/prompt-store.ts';
import { createOfflineProvider, OFFLINE_MODEL, offlineOutput } from '../../src/llm/providers/offline.ts';
import { createOpenAiProvider, type OpenAiProviderOptions } from '../../src/llm/providers/openai.ts';
import { createLlmRecommender, parseLlmOutput, type LlmRecommenderOptions } from '../../src/llm/recommend.ts';
import { LLM_OUTPUT_JSON_SCHEMA, OUTPUT_INSTRUCTIONS, promptVariables, renderPrompt } from '../../src/llm/render.ts';
import { testDatabases } from '../support/db.ts';
import { abstained, escalation, modelAnswer, recommended } from './cases.ts';
import { chatCompletion, startChatServer, type Script } from './chat-server.ts';

// The recommendation step end to end: the registry in a real database, the official SDK talking
// HTTP to a real local server that speaks the chat completions protocol.

const MODEL = 'llama-3.1-8b-instruct';
const [embedded] = testDatabases();

async function registry(t: TestContext): Promise<SqlDatabase> {
  if (!embedded) throw new Error('no test database');
  const { db } = await embedded.open(t);
  await migrate(db);
  await ensureDefaultPrompts(db);
  return db;
}

interface Setup {
  provider?: Partial<OpenAiProviderOptions>;
  recommender?: Partial<LlmRecommenderOptions>;
}

async function setup(t: TestContext, script: Script, options: Setup = {}) {
  const db = await registry(t);
  const server = await startChatServer(t, script);
  const provider = createOpenAiProvider({ baseUrl: server.baseUrl, apiKey: 'sk-test-0123456789', model: MODEL, timeoutMs: 5_000, maxRetries: 0, ...options.provider });
  const recommender = createLlmRecommender({ db, provider, onFailure: 'fallback', ...options.recommender });
  return { db, server, recommender };
}

function failedWith(code: string, pattern: RegExp, retryable: boolean): (e: unknown) => boolean {
  return (e: unknown) => {
    assert.ok(e instanceof AppError, `expected an AppError, got ${String(e)}`);
    assert.equal(e.code, code, e.message);
    assert.match(e.message, pattern);
    assert.equal(e.retryable, retryable);
    return true;
  };
}

const answer = (): ReturnType<Script> => chatCompletion(JSON.stringify(modelAnswer));

test('the rendered prompt is sent as the system contract and the user message; the answer, tokens and prompt version are recorded', async (t) => {
  const { db, server, recommender } = await setup(t, answer);
  const result = await recommender.recommend(recommended);
  assert.equal(server.requests.length, 1);
  const [request] = server.requests;
  assert.equal(request?.method, 'POST');
  assert.equal(request?.url, '/v1/chat/completions');
  assert.equal(request?.headers.authorization, 'Bearer sk-test-0123456789');
  const template = (await getPrompt(db, 'treatment-recommendation', { label: 'production' })).template;
  assert.deepEqual(request?.body?.messages, [
    { role: 'system', content: OUTPUT_INSTRUCTIONS },
    { role: 'user', content: renderPrompt(template, recommended).user },
  ]);
  assert.equal(request?.body?.model, MODEL);
  assert.deepEqual(request?.body?.response_format, { type: 'json_object' });
  assert.equal(request?.body?.temperature, 0);
  assert.match(request?.body?.messages[1]?.content ?? '', /- Gleason pattern 4 \(gleason-4\): 0\.743/);

  LlmRecommendation.parse(result);
  assert.deepEqual({ ...result, latencyMs: 0 }, {
    provider: 'openai',
    model: MODEL,
    prompt: { name: 'treatment-recommendation', version: 1, label: 'production' },
    tokens: { prompt: 321, completion: 87 },
    latencyMs: 0,
    fallback: false,
    output: modelAnswer,
  });
  assert.ok(result.latencyMs > 0);
});

test('a name planted in the case metadata, note and reason messages never reaches the request body, nor does a withheld class', async (t) => {
  const { server, recommender } = await setup(t, answer);
  // Everything a case carries, as a caller might pass it along; only the listed fields may travel.
  const caseRecord = {
    ...abstained,
    metadata: { patientName: 'Zebedee Quartermaine', mrn: 'MRN-7781-0043', birthDate: '1949-11-23' },
    note: 'Zebedee Quartermaine (MRN-7781-0043, born 1949-11-23) presents with a changing naevus.',
    findings: abstained.findings.map((f) => ({ ...f, stage: 'classify', uploadedAs: 'zebedee-quartermaine-back.jpg' })),
    recommendation: {
      ...escalation,
      reasons: [...escalation.reasons, { code: 'FEATURE_UNPARSEABLE' as const, message: 'could not read "Zebedee Quartermaine MRN-7781-0043" as an age', feature: 'ageYears' }],
    },
  };
  const result = await recommender.recommend(caseRecord);
  assert.equal(result.fallback, false);
  const [request] = server.requests;
  assert.ok(request);
  assert.match(request.raw, /FEATURE_UNPARSEABLE: a value in the note could not be read \(ageYears\)/, 'the de-identified values do travel');
  for (const phi of ['Zebedee', 'Quartermaine', 'zebedee', 'MRN-7781', '1949-11-23', 'naevus.', 'withheld-excision-class', 'quoted-note-text']) {
    assert.ok(!request.raw.includes(phi), `the request body contains ${phi}`);
  }
});

test('the version the label points at is the one used; promoting changes it without a restart', async (t) => {
  const { db, server, recommender } = await setup(t, answer, { recommender: { label: 'staging' } });
  await assert.rejects(recommender.recommend(recommended), failedWith('PROMPT_NOT_FOUND', /no version labelled "staging"/, false));
  assert.equal(server.requests.length, 0, 'nothing is sent without a prompt');
  await createPrompt(db, 'treatment-recommendation', 'Staging prompt for {{pipeline}}: {{recommendation.display}}.');
  await promote(db, 'treatment-recommendation', 2, 'staging');
  const result = await recommender.recommend(recommended);
  assert.deepEqual(result.prompt, { name: 'treatment-recommendation', version: 2, label: 'staging' });
  assert.equal(server.requests[0]?.body?.messages[1]?.content, 'Staging prompt for wsi-prognosis: Radical prostatectomy.');
});

test('an answer in a ```json fence is accepted, and a server that reports no usage gives null tokens', async (t) => {
  const fenced = `Here is the assessment:\n\n\`\`\`json\n${JSON.stringify(modelAnswer, null, 2)}\n\`\`\`\n`;
  const { recommender } = await setup(t, () => chatCompletion(fenced, { usage: null }));
  const result = await recommender.recommend(recommended);
  assert.equal(result.fallback, false);
  assert.deepEqual(result.output, modelAnswer);
  assert.equal(result.tokens, null);
});

test('an answer that is not JSON falls back to the offline output, marked, or fails with LLM_OUTPUT_INVALID', async (t) => {
  const script = () => chatCompletion('I recommend a radical prostatectomy given the Gleason pattern.');
  const fallback = await (await setup(t, script)).recommender.recommend(recommended);
  assert.equal(fallback.fallback, true);
  assert.equal(fallback.provider, 'offline');
  assert.equal(fallback.model, OFFLINE_MODEL);
  assert.equal(fallback.tokens, null);
  assert.deepEqual(fallback.prompt, { name: 'treatment-recommendation', version: 1, label: 'production' });
  assert.match(fallback.fallbackReason ?? '', /^openai model "llama-3\.1-8b-instruct" failed: LLM_OUTPUT_INVALID: .*not a JSON object/);
  assert.deepEqual(fallback.output, offlineOutput(promptVariables(recommended)));
  LlmRecommendation.parse(fallback);

  const strict = (await setup(t, script, { recommender: { onFailure: 'error' } })).recommender;
  await assert.rejects(strict.recommend(recommended), failedWith('LLM_OUTPUT_INVALID', /answered with \d+ characters that are not a JSON object/, false));
});

test('an answer cut off at the output limit says so', async (t) => {
  const truncated = JSON.stringify(modelAnswer).slice(0, 80);
  const { recommender } = await setup(t, () => chatCompletion(truncated, { finishReason: 'length' }), { recommender: { onFailure: 'error' } });
  await assert.rejects(recommender.recommend(recommended), failedWith('LLM_OUTPUT_INVALID', /cut off at the output limit \(finish reason "length"\)/, false));
});

test('JSON that does not match the output schema falls back, and under the error policy names the fields', async (t) => {
  const wrong = { summary: '', differentials: [{ diagnosis: 'Adenocarcinoma' }], followUpTests: 'MRI', treatmentConsiderations: [] };
  const script = () => chatCompletion(JSON.stringify(wrong));
  const fallback = await (await setup(t, script)).recommender.recommend(recommended);
  assert.equal(fallback.fallback, true);
  assert.match(fallback.fallbackReason ?? '', /LLM_OUTPUT_INVALID: .*does not match the output schema/);
  assert.deepEqual(fallback.output, offlineOutput(promptVariables(recommended)));

  const strict = (await setup(t, script, { recommender: { onFailure: 'error' } })).recommender;
  await assert.rejects(strict.recommend(recommended), (e: unknown) => {
    assert.ok(e instanceof AppError && e.code === 'LLM_OUTPUT_INVALID');
    const issues = e.details?.['issues'] as string[];
    assert.deepEqual(issues.map((issue) => issue.split(':')[0]), ['summary', 'differentials.0.rationale', 'followUpTests']);
    return true;
  });
});

test('a 500 or 429 is retried by the client, then is a retryable LLM_UNAVAILABLE or the marked fallback', async (t) => {
  for (const status of [500, 429]) {
    const script = () => ({ status, headers: { 'retry-after-ms': '5' }, body: { error: { message: status === 500 ? 'CUDA out of memory' : 'rate limit reached', type: 'server_error' } } });
    const strict = await setup(t, script, { provider: { maxRetries: 2 }, recommender: { onFailure: 'error' } });
    await assert.rejects(strict.recommender.recommend(recommended), failedWith('LLM_UNAVAILABLE', new RegExp(`answered HTTP ${status} .* \\(3 attempts\\)`), true));
    assert.equal(strict.server.requests.length, 3, `${status}: one attempt and two retries`);
    assert.deepEqual(strict.server.requests.map((r) => r.headers['x-stainless-retry-count']), ['0', '1', '2']);

    const lenient = await setup(t, script, { provider: { maxRetries: 1 } });
    const result = await lenient.recommender.recommend(recommended);
    assert.equal(lenient.server.requests.length, 2);
    assert.equal(result.fallback, true);
    assert.match(result.fallbackReason ?? '', new RegExp(`LLM_UNAVAILABLE: .*HTTP ${status}`));
  }
});

test('an error page is cut short in the message', async (t) => {
  const page = `<html><body>${'<p>Bad gateway: the upstream model server is restarting.</p>\n'.repeat(200)}</body></html>`;
  const { recommender } = await setup(t, () => ({ status: 502, headers: { 'content-type': 'text/html' }, body: page }), { recommender: { onFailure: 'error' } });
  await assert.rejects(recommender.recommend(recommended), (e: unknown) => {
    failedWith('LLM_UNAVAILABLE', /answered HTTP 502 .*Bad gateway: the upstream model server is restarting\..*…/, true)(e);
    assert.ok((e as AppError).message.length < 450, `${(e as AppError).message.length} characters`);
    return true;
  });
});

test('a server that does not answer within the timeout is a retryable TIMEOUT, or the marked fallback', async (t) => {
  const strict = await setup(t, () => 'hang', { provider: { timeoutMs: 300 }, recommender: { onFailure: 'error' } });
  const started = performance.now();
  await assert.rejects(strict.recommender.recommend(recommended), failedWith('TIMEOUT', /did not answer within 300 ms \(1 attempt\)/, true));
  const elapsed = performance.now() - started;
  assert.ok(elapsed >= 290 && elapsed < 3_000, `gave up after ${elapsed} ms`);

  const lenient = await setup(t, () => 'hang', { provider: { timeoutMs: 300 } });
  const result = await lenient.recommender.recommend(recommended);
  assert.equal(result.fallback, true);
  assert.match(result.fallbackReason ?? '', /TIMEOUT: .*did not answer within 300 ms/);
  assert.ok(result.latencyMs >= 290, 'the latency includes the wait for the failed provider');
});

test('a refused request (4xx) is permanent and not retried', async (t) => {
  const script = () => ({ status: 401, body: { error: { message: 'Incorrect API key provided', type: 'invalid_request_error', code: 'invalid_api_key' } } });
  const { server, recommender } = await setup(t, script, { provider: { maxRetries: 2 }, recommender: { onFailure: 'error' } });
  await assert.rejects(recommender.recommend(recommended), (e: unknown) => {
    failedWith('LLM_REQUEST_REJECTED', /refused the request for model "llama-3\.1-8b-instruct": HTTP 401 Incorrect API key provided/, false)(e);
    assert.deepEqual((e as AppError).details, { status: 401 });
    assert.doesNotMatch((e as AppError).message, /sk-test/, 'the key is never part of a message');
    return true;
  });
  assert.equal(server.requests.length, 1);
});

test('a server that cannot be reached is a retryable LLM_UNAVAILABLE', async (t) => {
  const db = await registry(t);
  // A port that was free a moment ago and has nothing listening now.
  const probe = createServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  const { port } = probe.address() as AddressInfo;
  await new Promise<void>((resolve) => probe.close(() => resolve()));
  const provider = createOpenAiProvider({ baseUrl: `http://127.0.0.1:${port}/v1`, model: MODEL, timeoutMs: 2_000, maxRetries: 0 });
  const recommender = createLlmRecommender({ db, provider, onFailure: 'error' });
  await assert.rejects(recommender.recommend(recommended), failedWith('LLM_UNAVAILABLE', new RegExp(`server at http://127\\.0\\.0\\.1:${port}/v1 could not be reached \\(1 attempt\\): connect ECONNREFUSED`), true));
});

test('a base URL that is not http(s) or carries credentials is a configuration error that does not repeat them', () => {
  const create = (baseUrl: string) => () => createOpenAiProvider({ baseUrl, model: MODEL, timeoutMs: 1_000 });
  assert.throws(create('http://user:s3cret-pass@127.0.0.1:8000/v1'), (e: unknown) => e instanceof AppError && e.code === 'CONFIG_INVALID' && /user name or password/.test(e.message) && !e.message.includes('s3cret'));
  assert.throws(create('ftp://127.0.0.1/v1'), (e: unknown) => e instanceof AppError && e.code === 'CONFIG_INVALID' && /http:\/\/ or https:\/\//.test(e.message));
  assert.throws(create('127.0.0.1:8000'), (e: unknown) => e instanceof AppError && e.code === 'CONFIG_INVALID');
});

test('cancelling the call rejects with the caller\'s reason and does not fall back', async (t) => {
  const { server, recommender } = await setup(t, () => 'hang');
  const controller = new AbortController();
  const pending = recommender.recommend(recommended, controller.signal);
  while (server.requests.length === 0) await new Promise((resolve) => setTimeout(resolve, 5));
  const reason = new AppError('TIMEOUT', 'the stage deadline passed');
  controller.abort(reason);
  await assert.rejects(pending, (e: unknown) => e === reason);
});

test('without a key no Authorization header is sent; json_schema mode sends the output schema', async (t) => {
  const { server, recommender } = await setup(t, answer, { provider: { apiKey: undefined, responseFormat: 'json_schema' } });
  await recommender.recommend(recommended);
  const [request] = server.requests;
  assert.equal(request?.headers.authorization, undefined);
  assert.deepEqual(request?.body?.response_format, { type: 'json_schema', json_schema: { name: 'llm_output', schema: LLM_OUTPUT_JSON_SCHEMA, strict: false } });
  // An empty key (an empty variable in the environment) is no key.
  const empty = await setup(t, answer, { provider: { apiKey: '' } });
  await empty.recommender.recommend(recommended);
  assert.equal(empty.server.requests[0]?.headers.authorization, undefined);
});

test('a body that is not a chat completion is LLM_OUTPUT_INVALID', async (t) => {
  for (const [body, pattern] of [
    [{ object: 'list', data: [] }, /not a chat completion/],
    ['<html>502 Bad Gateway</html>', /body that is not JSON|not a chat completion/],
    [chatCompletion(null).body, /answered with no text \(finish reason stop\)/],
  ] as const) {
    const { recommender } = await setup(t, () => ({ body }), { recommender: { onFailure: 'error' } });
    await assert.rejects(recommender.recommend(recommended), failedWith('LLM_OUTPUT_INVALID', pattern, false));
  }
});

test('with no endpoint configured the offline provider answers, unmarked, and nothing leaves the process', async (t) => {
  const db = await registry(t);
  const provider = createLlmProvider({ model: MODEL, timeoutMs: 1_000 });
  assert.equal(provider.name, 'offline');
  const result = await createLlmRecommender({ db, provider }).recommend(abstained);
  assert.equal(result.fallback, false);
  assert.equal(result.fallbackReason, undefined);
  assert.deepEqual([result.provider, result.model, result.tokens], ['offline', OFFLINE_MODEL, null]);
  assert.deepEqual(result.output, offlineOutput(promptVariables(abstained)));
  assert.equal(createLlmProvider({ baseUrl: 'http://127.0.0.1:11434/v1', model: MODEL, timeoutMs: 1_000 }).name, 'openai');
});

test('a failing fallback provider is not hidden', async (t) => {
  const db = await registry(t);
  const broken = { ...createOfflineProvider(), complete: () => Promise.resolve({ text: '{"summary": ""}' }) };
  const failing = { name: 'openai', model: MODEL, complete: () => Promise.reject(new AppError('LLM_UNAVAILABLE', 'down')) };
  await assert.rejects(createLlmRecommender({ db, provider: failing, fallbackProvider: broken }).recommend(recommended), failedWith('LLM_OUTPUT_INVALID', /offline model "dxflow-rules-1" answered with JSON that does not match/, false));
});

test('parseLlmOutput accepts bare and fenced JSON and refuses arrays and prose', () => {
  const text = JSON.stringify(modelAnswer);
  assert.deepEqual(parseLlmOutput({ text: `  ${text}\n` }, 'm'), modelAnswer);
  assert.deepEqual(parseLlmOutput({ text: `\`\`\`\n${text}\n\`\`\`` }, 'm'), modelAnswer);
  assert.deepEqual(parseLlmOutput({ text: `\`\`\`JSON\r\n${text}\r\n\`\`\`` }, 'm'), modelAnswer);
  // Keys the schema does not know are dropped, not passed on.
  assert.deepEqual(parseLlmOutput({ text: JSON.stringify({ ...modelAnswer, patientName: 'x' }) }, 'm'), modelAnswer);
  assert.throws(() => parseLlmOutput({ text: `[${text}]` }, 'm'), /JSON but not an object/);
  assert.throws(() => parseLlmOutput({ text: 'No.' }, 'm'), /not a JSON object/);
});
