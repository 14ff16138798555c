import assert from 'node:assert/strict';
import { test } from 'node:test';
import { build } from '../../src/api/app.ts';
import { platformTargets, TEST_API_KEY } from '../support/platform.ts';

const target = platformTargets()[0];

test('more requests per minute than the limit with one key: 429 RATE_LIMITED with Retry-After; health checks are not counted', { skip: !target }, async (t) => {
  if (!target) return;
  const { platform } = await target.open(t, { DXFLOW_LIMITS_REQUESTS_PER_MINUTE: '3' });
  const app = await build(platform);
  t.after(() => app.close());
  const ask = () => app.inject({ method: 'GET', url: '/v1/cases/00000000-0000-4000-8000-000000000000', headers: { authorization: `Bearer ${TEST_API_KEY}` } });
  for (let i = 0; i < 3; i++) assert.equal((await ask()).statusCode, 404);
  const limited = await ask();
  assert.equal(limited.statusCode, 429, limited.body);
  assert.equal((limited.json() as { error: { code: string } }).error.code, 'RATE_LIMITED');
  assert.ok(Number(limited.headers['retry-after']) > 0, `Retry-After: ${String(limited.headers['retry-after'])}`);
  for (let i = 0; i < 5; i++) assert.equal((await app.inject({ method: 'GET', url: '/healthz' })).statusCode, 200);
});
