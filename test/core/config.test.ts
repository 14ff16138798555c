import assert from 'node:assert/strict';
import { test } from 'node:test';
import { loadConfig } from '../../src/core/config.ts';
import { AppError } from '../../src/core/errors.ts';

test('defaults need nothing: embedded on 127.0.0.1:8080', () => {
  const c = loadConfig({});
  assert.equal(c.host, '127.0.0.1');
  assert.equal(c.port, 8080);
  assert.equal(c.databaseUrl, undefined);
  assert.equal(c.dataDir, '.dxflow');
  assert.equal(c.limits.maxPixels, 50_000_000);
});

test('environment overrides the file, nested keys by DXFLOW_GROUP_KEY', () => {
  const c = loadConfig(
    { DXFLOW_PORT: '9090', DXFLOW_LIMITS_MAX_PIXELS: '1000', DXFLOW_WORKER_CONCURRENCY: '3', DXFLOW_DATABASE_URL: 'postgres://u@h/db' },
    { port: 7000, host: '0.0.0.0', limits: { maxBytes: 500 } },
  );
  assert.equal(c.port, 9090);
  assert.equal(c.host, '0.0.0.0');
  assert.equal(c.limits.maxPixels, 1000);
  assert.equal(c.limits.maxBytes, 500);
  assert.equal(c.worker.concurrency, 3);
  assert.equal(c.databaseUrl, 'postgres://u@h/db');
});

test('invalid values fail with the environment name of the key and what is wrong', () => {
  assert.throws(() => loadConfig({ DXFLOW_PORT: 'eighty' }), (e: unknown) => {
    assert.ok(e instanceof AppError);
    assert.equal(e.code, 'CONFIG_INVALID');
    assert.match(e.message, /DXFLOW_PORT \(port\)/);
    return true;
  });
  assert.throws(() => loadConfig({ DXFLOW_LIMITS_MAX_PIXELS: '-5' }), /DXFLOW_LIMITS_MAX_PIXELS \(limits\.maxPixels\): .*/);
  assert.throws(() => loadConfig({ DXFLOW_DATABASE_URL: 'mysql://x' }), /DXFLOW_DATABASE_URL.*postgres:\/\//);
});

test('a misspelt setting is named, not ignored', () => {
  assert.throws(() => loadConfig({ DXFLOW_PROT: '80' }), /DXFLOW_PROT: unknown setting/);
  assert.throws(() => loadConfig({}, { limits: { maxPixel: 1 } }), /DXFLOW_LIMITS_MAX_PIXEL: unknown setting/);
});
