import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { copyFile, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test, type TestContext } from 'node:test';
import { PGlite } from '@electric-sql/pglite';
import pg from 'pg';
import { synthesiseSlide } from '../../src/imaging/wsi/synth.ts';
import { startServer, type Server } from './process.ts';

// A worker killed mid-slide loses nothing: the slide completes once, with one score per tile. Real
// `dxflow serve` processes, killed with SIGKILL while tile batches are being scored.

const KEY = 'slide-kill-key-0123456789';
const NOTE = 'Age: 64\nPSA: 6.1 ng/mL\nGrade group: 2\nT stage: T1\nPositive cores: 20%';

interface Progress { tilesDone: number; tilesTotal: number; batchesDone: number; batchesTotal: number }
interface CaseBody { status: string; progress: Progress[]; findings: Array<{ code: string }>; timings: Array<{ stage: string }>; error: unknown }

async function fixtures(t: TestContext): Promise<{ slide: Buffer; pipelinesDir: string }> {
  const dir = await mkdtemp(path.join(tmpdir(), 'dxflow-slide-kill-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const out = path.join(dir, 'slide.tif');
  await synthesiseSlide({ width: 7000, height: 5000, out, mpp: 0.5, tileSize: 256, bigtiff: true, seed: 7 });
  const pipelinesDir = path.join(dir, 'pipelines');
  const { mkdir } = await import('node:fs/promises');
  await mkdir(pipelinesDir);
  await copyFile('pipelines/image-classify.yaml', path.join(pipelinesDir, 'image-classify.yaml'));
  // Small batches: many of them, so that a kill lands between the first and the last.
  const spec = (await readFile('pipelines/wsi-prognosis.yaml', 'utf8')).replace('batchSize: 64', 'batchSize: 8');
  assert.ok(spec.includes('batchSize: 8'));
  await writeFile(path.join(pipelinesDir, 'wsi-prognosis.yaml'), spec);
  return { slide: await readFile(out), pipelinesDir };
}

async function submit(server: Server, slide: Buffer): Promise<string> {
  const form = new FormData();
  form.append('pipeline', 'wsi-prognosis');
  form.append('note', NOTE);
  form.append('image', new Blob([slide]), 'slide.tif');
  const res = await fetch(`${server.url}/v1/cases`, { method: 'POST', body: form, headers: { authorization: `Bearer ${KEY}` } });
  assert.equal(res.status, 202, await res.clone().text());
  return ((await res.json()) as { id: string }).id;
}

async function getCase(server: Server, id: string): Promise<CaseBody> {
  const res = await fetch(`${server.url}/v1/cases/${id}`, { headers: { authorization: `Bearer ${KEY}` } });
  assert.equal(res.status, 200);
  return (await res.json()) as CaseBody;
}

/** Polls until some but not all batches are scored, then kills the server. */
async function killMidSlide(server: Server, id: string): Promise<Progress> {
  for (let i = 0; i < 3000; i++) {
    const body = await getCase(server, id);
    const p = body.progress[0];
    if (p && p.batchesDone >= 2) {
      assert.ok(p.batchesDone < p.batchesTotal, `the slide finished before the kill (${p.batchesDone} of ${p.batchesTotal} batches)`);
      server.child.kill('SIGKILL');
      await server.exited;
      return p;
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error('no batch was scored in time');
}

async function waitDone(server: Server, id: string): Promise<CaseBody> {
  for (let i = 0; i < 1200; i++) {
    const body = await getCase(server, id);
    if (body.status === 'succeeded' || body.status === 'failed') return body;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error('the slide did not finish within 120 s');
}

async function countRows(query: (sql: string) => Promise<Array<Record<string, unknown>>>, id: string) {
  const [scores] = await query(`SELECT count(*)::int AS n, count(DISTINCT tile)::int AS d FROM dxflow_tile_score WHERE case_id = '${id}'`);
  const [batches] = await query(`SELECT count(*)::int AS n FROM dxflow_tile_batch WHERE case_id = '${id}'`);
  const [stages] = await query(`SELECT count(*)::int AS n FROM dxflow_stage_run WHERE case_id = '${id}' AND stage = 'tiles'`);
  return { scores: scores?.['n'], distinctTiles: scores?.['d'], batches: batches?.['n'], tileStageRuns: stages?.['n'] };
}

function assertCompletedOnce(body: CaseBody, rows: Awaited<ReturnType<typeof countRows>>): void {
  assert.equal(body.status, 'succeeded', JSON.stringify(body.error));
  const p = body.progress[0] as Progress;
  assert.equal(p.tilesDone, p.tilesTotal);
  assert.equal(p.batchesDone, p.batchesTotal);
  assert.deepEqual(rows, { scores: p.tilesTotal, distinctTiles: p.tilesTotal, batches: p.batchesTotal, tileStageRuns: 1 });
  assert.deepEqual(body.timings.map((s) => s.stage), ['tiles', 'note', 'recommend', 'llm', 'billing'], 'each stage recorded once');
  assert.deepEqual(body.findings.map((f) => f.code).sort(), ['benign-pattern', 'tumour-pattern'], 'findings are not duplicated');
}

test('embedded (PGlite): dxflow serve killed mid-slide resumes on restart; the slide completes once', { timeout: 240_000 }, async (t) => {
  const { slide, pipelinesDir } = await fixtures(t);
  const dataDir = await mkdtemp(path.join(tmpdir(), 'dxflow-slide-kill-data-'));
  t.after(() => rm(dataDir, { recursive: true, force: true }));
  const env = { DXFLOW_DATA_DIR: dataDir, DXFLOW_PIPELINES_DIR: pipelinesDir, DXFLOW_API_KEY: KEY, DXFLOW_WORKER_TILE_CONCURRENCY: '1' };

  const first = await startServer(env);
  t.after(() => { first.child.kill('SIGKILL'); });
  const id = await submit(first, slide);
  const atKill = await killMidSlide(first, id);

  const second = await startServer(env);
  const body = await waitDone(second, id);
  assert.ok((body.progress[0] as Progress).batchesTotal > atKill.batchesDone);
  second.child.kill('SIGTERM');
  await second.exited;

  // The data folder is free again: count the rows directly.
  const db = new PGlite(path.join(dataDir, 'db'));
  try {
    const rows = await countRows(async (sql) => (await db.query<Record<string, unknown>>(sql)).rows, id);
    assertCompletedOnce(body, rows);
  } finally {
    await db.close();
  }
});

const url = process.env['DXFLOW_TEST_DATABASE_URL'];

test('PostgreSQL: two servers share a slide; one is killed mid-slide, the other completes it once', { timeout: 240_000, skip: url ? false : 'set DXFLOW_TEST_DATABASE_URL to run against PostgreSQL' }, async (t) => {
  const { slide, pipelinesDir } = await fixtures(t);
  // A database of its own, so that the servers' pg-boss and tables start empty.
  const name = `dxflow_kill_${randomBytes(5).toString('hex')}`;
  const admin = new pg.Client({ connectionString: url });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${name}`);
  const databaseUrl = new URL(url as string);
  databaseUrl.pathname = `/${name}`;
  const shared = await mkdtemp(path.join(tmpdir(), 'dxflow-slide-kill-objects-'));
  t.after(async () => {
    await rm(shared, { recursive: true, force: true });
    await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    await admin.end();
  });
  const env = (n: number) => ({
    DXFLOW_DATA_DIR: path.join(shared, `data-${n}`), DXFLOW_OBJECTS_DIR: path.join(shared, 'objects'), DXFLOW_DATABASE_URL: databaseUrl.href,
    DXFLOW_PIPELINES_DIR: pipelinesDir, DXFLOW_API_KEY: KEY, DXFLOW_WORKER_TILE_CONCURRENCY: '1',
  });

  const doomed = await startServer(env(1));
  t.after(() => { doomed.child.kill('SIGKILL'); });
  const survivor = await startServer(env(2));
  t.after(() => { survivor.child.kill('SIGTERM'); return survivor.exited; });
  const id = await submit(doomed, slide);
  await killMidSlide(doomed, id);
  const body = await waitDone(survivor, id);

  const client = new pg.Client({ connectionString: databaseUrl.href });
  await client.connect();
  try {
    const rows = await countRows(async (sql) => (await client.query<Record<string, unknown>>(sql)).rows, id);
    assertCompletedOnce(body, rows);
    // Both processes scored batches of this slide.
    const workers = await client.query<{ n: number }>(`SELECT count(DISTINCT worker)::int AS n FROM dxflow_tile_batch WHERE case_id = $1`, [id]);
    assert.equal(workers.rows[0]?.n, 2);
  } finally {
    await client.end();
  }
});
