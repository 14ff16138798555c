import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { test } from 'node:test';
import { build } from '../../src/api/app.ts';
import { multipart } from '../support/images.ts';
import { platformTargets, TEST_API_KEY } from '../support/platform.ts';

const auth = { authorization: `Bearer ${TEST_API_KEY}` };
const promtoolMissing = spawnSync('promtool', ['--version']).status === 0 ? false : 'promtool (Debian package prometheus) is not installed';

for (const target of platformTargets()) {
  test(`[${target.name}] GET /metrics: request latency by route, case counts; valid for promtool; no ids in labels`, async (t) => {
    const { platform } = await target.open(t);
    const app = await build(platform);
    t.after(() => app.close());
    const image = await multipart({ image: { bytes: await readFile('samples/tissue-tumour-like.png'), filename: 'x.png' } });
    const created = await app.inject({ method: 'POST', url: '/v1/predict', payload: image.payload, headers: { ...image.headers, ...auth } });
    const id = (created.json() as { id: string }).id;
    await app.inject({ method: 'GET', url: `/v1/cases/${id}`, headers: auth });
    await app.inject({ method: 'GET', url: `/v1/cases/${id}` });

    const res = await app.inject({ method: 'GET', url: '/metrics' });
    assert.equal(res.statusCode, 200);
    assert.match(res.headers['content-type'] as string, /text\/plain/);
    const text = res.body;
    assert.match(text, /dxflow_http_request_duration_seconds_count\{method="POST",route="\/v1\/predict",status="200"\} 1/);
    assert.match(text, /dxflow_http_request_duration_seconds_count\{method="GET",route="\/v1\/cases\/:id",status="200"\} 1/);
    assert.match(text, /dxflow_http_request_duration_seconds_count\{method="GET",route="\/v1\/cases\/:id",status="401"\} 1/);
    assert.match(text, /dxflow_cases\{status="succeeded"\} 1/);
    assert.ok(!text.includes(id), 'no case id in any label');

    if (promtoolMissing) return t.diagnostic(promtoolMissing);
    const check = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
    assert.equal(check.status, 0, `${check.stdout}${check.stderr}`);
  });
}
