import assert from 'node:assert/strict';
import { copyFile, mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { startServer } from './process.ts';

const KEY = 'serve-test-key-0123456789';
const sample = await readFile('samples/tissue-tumour-like.png');

async function submit(url: string, pipeline: string): Promise<string> {
  const form = new FormData();
  form.append('image', new Blob([sample]), 'sample.png');
  const res = await fetch(`${url}/v1/cases?pipeline=${pipeline}`, { method: 'POST', body: form, headers: { authorization: `Bearer ${KEY}` } });
  assert.equal(res.status, 202, await res.clone().text());
  return ((await res.json()) as { id: string }).id;
}

interface CaseBody { status: string; findings: Array<{ code: string }>; timings: Array<{ stage: string; finishedAt: string }>; completedAt: string | null }

async function getCase(url: string, id: string): Promise<CaseBody> {
  const res = await fetch(`${url}/v1/cases/${id}`, { headers: { authorization: `Bearer ${KEY}` } });
  return (await res.json()) as CaseBody;
}

test('serve prints the URL and a local API key that works; the case is processed', async (t) => {
  const dataDir = await mkdtemp(path.join(tmpdir(), 'dxflow-serve-'));
  const server = await startServer({ DXFLOW_DATA_DIR: dataDir });
  t.after(() => { server.child.kill('SIGTERM'); return server.exited; });
  const key = (await readFile(path.join(dataDir, 'api-key'), 'utf8')).trim();
  assert.match(key, /^dxf_/);
  assert.ok(server.output().includes(key), 'the key is printed');
  const form = new FormData();
  form.append('image', new Blob([sample]), 'sample.png');
  const res = await fetch(`${server.url}/v1/predict`, { method: 'POST', body: form, headers: { authorization: `Bearer ${key}` } });
  assert.equal(res.status, 200);
  assert.equal(((await res.json()) as CaseBody).findings[0]?.code, 'tumour-pattern');
});

test('a server killed while a queued case runs resumes it on restart; it completes once', async (t) => {
  const dataDir = await mkdtemp(path.join(tmpdir(), 'dxflow-kill-'));
  const pipelinesDir = await mkdtemp(path.join(tmpdir(), 'dxflow-pipelines-'));
  await copyFile('pipelines/image-classify.yaml', path.join(pipelinesDir, 'image-classify.yaml'));
  await writeFile(path.join(pipelinesDir, 'slow-classify.yaml'), [
    'name: slow-classify', 'version: 1', 'accepts: [png, jpeg]', 'stages:',
    '  - id: validate', '    uses: image.validate',
    '  - id: wait', '    uses: util.delay', '    with: { ms: 4000 }',
    '  - id: classify', '    uses: model.classify', '    with: { model: demo-tissue-classifier }', '',
  ].join('\n'));
  const env = { DXFLOW_DATA_DIR: dataDir, DXFLOW_PIPELINES_DIR: pipelinesDir, DXFLOW_API_KEY: KEY };

  const first = await startServer(env);
  const id = await submit(first.url, 'slow-classify');
  let body = await getCase(first.url, id);
  for (let i = 0; i < 200 && !body.timings.some((s) => s.stage === 'validate'); i++) {
    await new Promise((r) => setTimeout(r, 50));
    body = await getCase(first.url, id);
  }
  assert.equal(body.status, 'running', 'killed while the case is running');
  const validatedAt = body.timings.find((s) => s.stage === 'validate')?.finishedAt;
  assert.ok(validatedAt);
  first.child.kill('SIGKILL');
  await first.exited;

  const killedAt = Date.now();
  const second = await startServer(env);
  t.after(() => { second.child.kill('SIGTERM'); return second.exited; });
  for (let i = 0; i < 300 && (body.status === 'running' || body.status === 'queued'); i++) {
    await new Promise((r) => setTimeout(r, 100));
    body = await getCase(second.url, id);
  }
  assert.equal(body.status, 'succeeded', JSON.stringify(body));
  assert.deepEqual(body.timings.map((s) => s.stage), ['validate', 'wait', 'classify'], 'each stage recorded once');
  assert.ok(Date.parse(body.timings[0]?.finishedAt ?? '') < killedAt, 'the checkpointed stage was not run again');
  assert.deepEqual(body.findings.map((f) => f.code).sort(), ['benign-pattern', 'tumour-pattern'], 'findings are not duplicated');
});
