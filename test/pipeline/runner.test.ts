import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { test } from 'node:test';
import { z } from 'zod';
import { AppError } from '../../src/core/errors.ts';
import type { PipelineSpec } from '../../src/core/pipeline-spec.ts';
import { insertCase } from '../../src/pipeline/case-store.ts';
import { createRunner } from '../../src/pipeline/runner.ts';
import { parsePipelineSpec, type PipelineCatalog } from '../../src/pipeline/spec.ts';
import { createStageRegistry, defineStage } from '../../src/pipeline/stage.ts';
import type { Platform } from '../../src/platform.ts';
import { platformTargets } from '../support/platform.ts';

interface Script {
  calls: Record<string, number>;
  /** Per stage id: what each call does, in order (the last repeats). */
  plan: Record<string, Array<'ok' | 'transient' | 'permanent' | 'bug' | 'bad-output' | 'hang'>>;
  release?: () => void;
}

function harness(platform: Platform, script: Script, owner = 'owner-a') {
  const step = defineStage({
    name: 'test.step',
    description: 'scripted',
    params: z.object({ finding: z.string().optional() }).strict(),
    output: z.object({ n: z.number() }),
    async run(ctx) {
      const n = (script.calls[ctx.stageId] = (script.calls[ctx.stageId] ?? 0) + 1);
      const plan = script.plan[ctx.stageId] ?? ['ok'];
      const action = plan[Math.min(n - 1, plan.length - 1)];
      if (action === 'transient') throw new AppError('STORAGE_UNAVAILABLE', 'store flaked');
      if (action === 'permanent') throw new AppError('CORRUPT_IMAGE', 'pixels are garbage');
      if (action === 'bug') throw new TypeError('undefined is not a function');
      if (action === 'bad-output') return { data: { n: 'x' as unknown as number } };
      if (action === 'hang') await new Promise<void>((r) => { script.release = r; });
      const findings = ctx.params.finding ? [{ stage: ctx.stageId, code: ctx.params.finding, label: ctx.params.finding, probability: 0.75 }] : [];
      return { data: { n }, findings };
    },
  });
  const stages = createStageRegistry([step]);
  const spec: PipelineSpec = parsePipelineSpec({
    name: 'scripted', version: 1, accepts: ['png'],
    stages: [
      { id: 'first', uses: 'test.step', with: { finding: 'alpha' } },
      { id: 'second', uses: 'test.step', with: { finding: 'beta' } },
    ],
  }, 'scripted.yaml', stages);
  const pipelines: PipelineCatalog = { get: () => spec, list: () => [spec] };
  const runner = createRunner({ db: platform.db, objects: platform.objects, stages, pipelines, owner, waitSeconds: 600, leaseSeconds: 60, retry: { attempts: 3, backoffMs: 1 } });
  return { runner, spec };
}

async function newCase(platform: Platform): Promise<string> {
  const id = randomUUID();
  const stored = await platform.objects.put(`cases/${id}/input`, Buffer.from('not read by the scripted stages'));
  await platform.db.transaction((tx) => insertCase(tx, {
    id, pipeline: 'scripted', pipelineVersion: 1, status: 'queued', metadata: {},
    input: { objectKey: stored.key, sha256: stored.sha256, bytes: stored.bytes, mediaType: 'png', mimeType: 'image/png' },
  }));
  return id;
}

for (const target of platformTargets()) {
  test(`[${target.name}] runner: stages run in order, findings and timings are stored`, async (t) => {
    const { platform } = await target.open(t, {}, { withQueue: false });
    const script: Script = { calls: {}, plan: {} };
    const { runner } = harness(platform, script);
    const id = await newCase(platform);
    const out = await runner.run(id);
    assert.equal(out.kind, 'finished');
    if (out.kind !== 'finished') return;
    assert.equal(out.result.status, 'succeeded');
    assert.deepEqual(out.result.findings.map((f) => f.code).sort(), ['alpha', 'beta']);
    assert.deepEqual(out.result.timings.map((s) => [s.stage, s.status, s.attempts]), [['first', 'succeeded', 1], ['second', 'succeeded', 1]]);
    assert.ok(out.result.timings.every((s) => s.durationMs >= 0));
    assert.ok(out.result.completedAt);
    // Running a finished case again does nothing.
    const again = await runner.run(id);
    assert.equal(again.kind, 'finished');
    assert.deepEqual(script.calls, { first: 1, second: 1 });
  });

  test(`[${target.name}] runner: transient errors are retried, permanent ones are not`, async (t) => {
    const { platform } = await target.open(t, {}, { withQueue: false });
    const flaky: Script = { calls: {}, plan: { second: ['transient', 'transient', 'ok'] } };
    const a = harness(platform, flaky);
    const ok = await a.runner.run(await newCase(platform));
    assert.ok(ok.kind === 'finished' && ok.result.status === 'succeeded');
    assert.equal(ok.result.timings.find((s) => s.stage === 'second')?.attempts, 3);

    const corrupt: Script = { calls: {}, plan: { second: ['permanent', 'ok'] } };
    const b = harness(platform, corrupt);
    const failedId = await newCase(platform);
    const failed = await b.runner.run(failedId);
    assert.ok(failed.kind === 'finished');
    assert.equal(failed.result.status, 'failed');
    assert.deepEqual(failed.result.error, { code: 'CORRUPT_IMAGE', message: 'pixels are garbage', hint: failed.result.error?.hint, stage: 'second' });
    assert.equal(corrupt.calls['second'], 1, 'a permanent error must not be retried');
    // The work before the failure is kept; the failed stage is recorded with its attempts.
    assert.deepEqual(failed.result.timings.map((s) => [s.stage, s.status]), [['first', 'succeeded'], ['second', 'failed']]);
    assert.deepEqual(failed.result.findings.map((f) => f.code), ['alpha']);
  });

  test(`[${target.name}] runner: exhausted retries, bugs and invalid output end in a recorded error`, async (t) => {
    const { platform } = await target.open(t, {}, { withQueue: false });
    const cases: Array<[Script['plan'], string, number]> = [
      [{ first: ['transient'] }, 'STORAGE_UNAVAILABLE', 3],
      [{ first: ['bug'] }, 'INTERNAL', 1],
      [{ first: ['bad-output'] }, 'STAGE_OUTPUT_INVALID', 1],
    ];
    for (const [plan, code, calls] of cases) {
      const script: Script = { calls: {}, plan };
      const { runner } = harness(platform, script);
      const out = await runner.run(await newCase(platform));
      assert.ok(out.kind === 'finished');
      assert.equal(out.result.status, 'failed');
      assert.equal(out.result.error?.code, code);
      assert.equal(out.result.error?.stage, 'first');
      assert.equal(script.calls['first'], calls);
    }
  });

  test(`[${target.name}] runner: a crashed run is resumed from its checkpoints and never duplicates results`, async (t) => {
    const { platform } = await target.open(t, {}, { withQueue: false });
    const script: Script = { calls: {}, plan: { second: ['hang', 'ok'] } };
    const dead = harness(platform, script, 'worker-that-dies');
    const id = await newCase(platform);
    const abandoned = dead.runner.run(id);
    while (!script.release) await new Promise((r) => setTimeout(r, 5));

    // Another worker cannot take the case while the lease is live…
    const other = harness(platform, script, 'worker-b');
    assert.deepEqual(await other.runner.run(id), { kind: 'busy' });
    // …but can once it expires (the first worker is presumed dead).
    await platform.db.query(`UPDATE dxflow_case SET lease_until = now() - interval '1 second' WHERE id = $1`, [id]);
    const resumed = await other.runner.run(id);
    assert.ok(resumed.kind === 'finished' && resumed.result.status === 'succeeded');
    assert.equal(script.calls['first'], 1, 'the checkpointed stage must not run again');
    assert.equal(script.calls['second'], 2);

    // The "dead" worker wakes up late: its writes must change nothing.
    script.release?.();
    await abandoned;
    const rows = await platform.db.query<{ n: number }>(`SELECT count(*)::int AS n FROM dxflow_finding WHERE case_id = $1`, [id]);
    assert.equal(rows[0]?.n, 2);
    const stages = await platform.db.query<{ n: number }>(`SELECT count(*)::int AS n FROM dxflow_stage_run WHERE case_id = $1`, [id]);
    assert.equal(stages[0]?.n, 2);
    const after = await other.runner.run(id);
    assert.ok(after.kind === 'finished' && after.result.status === 'succeeded' && after.result.findings.length === 2);
  });
}

for (const target of platformTargets()) {
  test(`[${target.name}] abandoned cases: the sweep takes running cases with an expired lease, never waiting queued ones`, async (t) => {
    const { platform } = await target.open(t, {}, { withQueue: false });
    const { listAbandoned } = await import('../../src/pipeline/case-store.ts');
    const queued = await newCase(platform);
    const live = await newCase(platform);
    const dead = await newCase(platform);
    await platform.db.query(`UPDATE dxflow_case SET status = 'running', lease_owner = 'w1', lease_until = now() + interval '1 minute' WHERE id = $1`, [live]);
    await platform.db.query(`UPDATE dxflow_case SET status = 'running', lease_owner = 'w2', lease_until = now() - interval '1 second' WHERE id = $1`, [dead]);
    assert.deepEqual(await listAbandoned(platform.db, { includeQueued: false }), [dead]);
    assert.deepEqual((await listAbandoned(platform.db, { includeQueued: true })).sort(), [queued, dead].sort());
  });
}

for (const target of platformTargets()) {
  test(`[${target.name}] runner: a stage that skips later stages; skipped stages are recorded and stay skipped on a re-run`, async (t) => {
    const { platform } = await target.open(t, {}, { withQueue: false });
    const calls: string[] = [];
    const router = defineStage({
      name: 'test.router',
      description: 'skips by metadata',
      params: z.object({}).strict(),
      output: z.object({ branch: z.string() }),
      async run(ctx) {
        calls.push(ctx.stageId);
        const localized = ctx.metadata['distribution'] === 'localized';
        return { data: { branch: localized ? 'localized' : 'widespread' }, skip: localized ? ['whole'] : ['crop'] };
      },
    });
    const step = defineStage({
      name: 'test.step', description: 'records', params: z.object({}).strict(), output: z.object({ ok: z.boolean() }),
      async run(ctx) {
        calls.push(ctx.stageId);
        return { data: { ok: true } };
      },
    });
    const stages = createStageRegistry([router, step]);
    const spec = parsePipelineSpec({
      name: 'routed', version: 1, accepts: ['png'],
      stages: [{ id: 'route', uses: 'test.router' }, { id: 'crop', uses: 'test.step' }, { id: 'whole', uses: 'test.step' }, { id: 'after', uses: 'test.step' }],
    }, 'routed.yaml', stages);
    const runner = createRunner({ db: platform.db, objects: platform.objects, stages, pipelines: { get: () => spec, list: () => [spec] }, owner: 'o', waitSeconds: 600, leaseSeconds: 60, retry: { attempts: 1, backoffMs: 1 } });
    const id = randomUUID();
    const stored = await platform.objects.put(`cases/${id}/input`, Buffer.from('x'));
    await platform.db.transaction((tx) => insertCase(tx, {
      id, pipeline: 'routed', pipelineVersion: 1, status: 'queued', metadata: { distribution: 'localized' },
      input: { objectKey: stored.key, sha256: stored.sha256, bytes: stored.bytes, mediaType: 'png', mimeType: 'image/png' },
    }));
    const out = await runner.run(id);
    assert.equal(out.kind === 'finished' && out.result.status, 'succeeded');
    assert.deepEqual(calls, ['route', 'crop', 'after']);
    assert.deepEqual(out.kind === 'finished' && out.result.timings.map((s) => [s.stage, s.status]), [['route', 'succeeded'], ['crop', 'succeeded'], ['whole', 'skipped'], ['after', 'succeeded']]);
    // Resumed from the checkpoints (as after a crash): the skipped stage stays skipped.
    await platform.db.query(`DELETE FROM dxflow_stage_run WHERE case_id = $1 AND stage = 'after'`, [id]);
    await platform.db.query(`UPDATE dxflow_case SET status = 'running', lease_owner = NULL, lease_until = NULL WHERE id = $1`, [id]);
    await runner.run(id);
    assert.deepEqual(calls, ['route', 'crop', 'after', 'after']);
  });
}
