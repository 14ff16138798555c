import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { dxflow, startServer } from './process.ts';

test('dxflow keys: a created key works, is listed without its secret, and stops working once revoked', { timeout: 120_000 }, async (t) => {
  const dataDir = await mkdtemp(path.join(tmpdir(), 'dxflow-keys-'));
  t.after(() => rm(dataDir, { recursive: true, force: true }));
  const env = { DXFLOW_DATA_DIR: dataDir };
  const created = await dxflow(['keys', 'create', 'lab-scanner'], env);
  assert.equal(created.code, 0, created.stderr);
  const key = created.stdout.trim();
  assert.match(key, /^dxf_[A-Za-z0-9_-]{32}$/);
  const id = /key ([0-9a-f-]{36}) created/.exec(created.stderr)?.[1];
  assert.ok(id);
  const listed = await dxflow(['keys', 'list'], env);
  assert.equal(listed.code, 0);
  assert.match(listed.stdout, new RegExp(`${id}\\s+lab-scanner\\s+\\S+\\s+-`));
  assert.ok(!listed.stdout.includes(key), 'keys are never listed');
  assert.equal((await dxflow(['keys', 'create', '../bad name!'], env)).code, 1);
  assert.equal((await dxflow(['keys', 'revoke', '00000000-0000-4000-8000-000000000000'], env)).code, 1);

  const ask = (url: string) => fetch(`${url}/v1/cases/00000000-0000-4000-8000-000000000000`, { headers: { authorization: `Bearer ${key}` } });
  const first = await startServer(env);
  t.after(() => { first.child.kill('SIGKILL'); });
  assert.equal((await ask(first.url)).status, 404, 'the key is accepted (the case does not exist)');
  first.child.kill('SIGTERM');
  await first.exited;
  // The embedded database belongs to one process at a time: revoke between two runs of the server.
  const revoked = await dxflow(['keys', 'revoke', id], env);
  assert.equal(revoked.code, 0, revoked.stderr);
  assert.match((await dxflow(['keys', 'list'], env)).stdout, /lab-scanner\s+\S+\s+\d{4}-/, 'listed as revoked');
  const second = await startServer(env);
  t.after(() => { second.child.kill('SIGTERM'); return second.exited; });
  assert.equal((await ask(second.url)).status, 401);
});
