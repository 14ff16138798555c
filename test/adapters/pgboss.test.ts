import assert from 'node:assert/strict';
import { test } from 'node:test';
import { AppError } from '../../src/core/errors.ts';
import { createPgBossQueue, type PgBossQueue, type PgBossQueueOptions } from '../../src/adapters/queue/pgboss.ts';
import type { SqlDatabase } from '../../src/adapters/db/sql-database.ts';
import { testDatabases } from '../support/db.ts';

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

async function waitFor<T>(what: string, probe: () => Promise<T | undefined> | T | undefined, timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await delay(50);
  }
}

async function jobState(queue: PgBossQueue, name: string, id: string): Promise<{ state: string; output: unknown } | null> {
  const job = await queue.boss.getJobById<Record<string, unknown>>(name, id);
  return job === null ? null : { state: job.state, output: job.output };
}

/** Runs body with a started queue, and stops the queue however body ends. */
async function withQueue(db: SqlDatabase, schema: string, options: PgBossQueueOptions, body: (queue: PgBossQueue) => Promise<void>): Promise<void> {
  const errors: Error[] = [];
  const queue = await createPgBossQueue(db, { schema, onError: (e) => errors.push(e), ...options });
  try {
    await body(queue);
  } finally {
    await queue.stop();
  }
  assert.deepEqual(errors, [], 'pg-boss reported no background errors');
}

for (const factory of testDatabases()) {
  const on = `(${factory.kind})`;

  test(`a job sent is handed to a worker with its data, and completes ${on}`, async (t) => {
    const { db, schema } = await factory.open(t);
    const started = performance.now();
    await withQueue(db, schema, {}, async (queue) => {
      const ready = performance.now();
      const received: { id: string; data: Record<string, unknown> }[] = [];
      await queue.work('run-case', { concurrency: 1 }, async (job) => {
        received.push(job);
      });
      const id = await queue.send('run-case', { caseId: 'case-1', traceparent: '00-abc-def-01' });
      assert.ok(id);
      await waitFor('the job to be handled', () => (received.length > 0 ? true : undefined));
      const handled = performance.now();
      assert.deepEqual(received, [{ id, data: { caseId: 'case-1', traceparent: '00-abc-def-01' }, lastAttempt: false }]);
      const state = await waitFor('completion', async () => ((await jobState(queue, 'run-case', id))?.state === 'completed' ? true : undefined));
      assert.equal(state, true);
      t.diagnostic(`pg-boss on ${factory.kind}: start ${Math.round(ready - started)} ms, first send → handler ${Math.round(handled - ready)} ms (polling every 0.5 s)`);
    });
  });

  test(`a job sent inside a transaction that rolls back never exists; one that commits is delivered ${on}`, async (t) => {
    const { db, schema } = await factory.open(t);
    await db.exec('CREATE TABLE dxflow_case_stub (id text PRIMARY KEY)');
    await withQueue(db, schema, { queues: ['run-case'] }, async (queue) => {
      let rolledBackId: string | null = null;
      await assert.rejects(db.transaction(async (tx) => {
        await tx.query('INSERT INTO dxflow_case_stub VALUES ($1)', ['rolled-back']);
        rolledBackId = await queue.send('run-case', { caseId: 'rolled-back' }, { tx });
        assert.ok(rolledBackId);
        throw new Error('the request failed after enqueueing');
      }), /after enqueueing/);
      assert.ok(rolledBackId);
      assert.equal(await jobState(queue, 'run-case', rolledBackId), null);

      const committedId = await db.transaction(async (tx) => {
        await tx.query('INSERT INTO dxflow_case_stub VALUES ($1)', ['committed']);
        return queue.send('run-case', { caseId: 'committed' }, { tx });
      });
      assert.ok(committedId);

      const received: string[] = [];
      await queue.work('run-case', { concurrency: 1 }, async (job) => {
        received.push(String(job.data['caseId']));
      });
      await waitFor('the committed job', () => (received.length > 0 ? true : undefined));
      await delay(700); // longer than one poll: the rolled-back job would have arrived by now
      assert.deepEqual(received, ['committed']);
      assert.equal((await jobState(queue, 'run-case', committedId))?.state, 'completed');
    });
  });

  test(`a send inside a transaction to a queue that does not exist yet is refused with a clear message ${on}`, async (t) => {
    const { db, schema } = await factory.open(t);
    await withQueue(db, schema, {}, async (queue) => {
      await assert.rejects(
        db.transaction((tx) => queue.send('never-declared', { caseId: 'x' }, { tx })),
        (e: unknown) => e instanceof AppError && /Queue "never-declared" does not exist yet/.test(e.message),
      );
      // Used once outside a transaction, it can then be sent to inside one.
      await queue.send('never-declared', { caseId: 'first' });
      const id = await db.transaction((tx) => queue.send('never-declared', { caseId: 'second' }, { tx }));
      assert.equal((await jobState(queue, 'never-declared', id ?? ''))?.state, 'created');
    });
  });

  test(`a failing handler is retried retryLimit times, then the job ends as failed ${on}`, async (t) => {
    const { db, schema } = await factory.open(t);
    await withQueue(db, schema, {}, async (queue) => {
      let attempts = 0;
      await queue.work('flaky', { concurrency: 1 }, async () => {
        attempts++;
        throw new Error(`attempt ${attempts} failed`);
      });
      const id = await queue.send('flaky', { caseId: 'c' }, { retryLimit: 2 });
      assert.ok(id);
      const final = await waitFor('the job to fail for good', async () => {
        const job = await jobState(queue, 'flaky', id);
        return job?.state === 'failed' ? job : undefined;
      });
      assert.equal(attempts, 3, 'one attempt and two retries');
      assert.deepEqual(final.output, { name: 'Error', message: 'attempt 3 failed' });
      await delay(700);
      assert.equal(attempts, 3, 'no attempt after the job failed');
    });
  });

  test(`a permanent failure (non-retryable AppError) ends the job at once, without retries ${on}`, async (t) => {
    const { db, schema } = await factory.open(t);
    await withQueue(db, schema, {}, async (queue) => {
      let attempts = 0;
      await queue.work('intake', { concurrency: 1 }, async () => {
        attempts++;
        throw new AppError('CORRUPT_IMAGE', 'the PNG stream ends inside IDAT');
      });
      const id = await queue.send('intake', { caseId: 'c' }, { retryLimit: 3 });
      assert.ok(id);
      const final = await waitFor('the job to fail', async () => {
        const job = await jobState(queue, 'intake', id);
        return job?.state === 'failed' ? job : undefined;
      });
      assert.equal(attempts, 1);
      assert.deepEqual(final.output, {
        code: 'CORRUPT_IMAGE',
        message: 'the PNG stream ends inside IDAT',
        hint: new AppError('CORRUPT_IMAGE', '').hint,
        retryable: false,
      });
    });
  });

  test(`work runs up to concurrency handlers at the same time ${on}`, async (t) => {
    const { db, schema } = await factory.open(t);
    await withQueue(db, schema, {}, async (queue) => {
      let running = 0;
      let mostAtOnce = 0;
      let done = 0;
      await queue.work('tile-batch', { concurrency: 3 }, async () => {
        running++;
        mostAtOnce = Math.max(mostAtOnce, running);
        await delay(400);
        running--;
        done++;
      });
      for (let i = 0; i < 6; i++) await queue.send('tile-batch', { batch: i });
      await waitFor('all six jobs', () => (done === 6 ? true : undefined), 20_000);
      assert.equal(mostAtOnce, 3);
    });
  });

  test(`a job sent before a restart is delivered by the next process ${on}`, async (t) => {
    const { db, schema } = await factory.open(t);
    const before = await createPgBossQueue(db, { schema, queues: ['run-case'] });
    const id = await before.send('run-case', { caseId: 'before-restart' });
    await before.stop();
    await withQueue(db, schema, {}, async (after) => {
      const received: string[] = [];
      await after.work('run-case', { concurrency: 1 }, async (job) => {
        received.push(job.id);
      });
      await waitFor('the job from before the restart', () => (received.length > 0 ? true : undefined));
      assert.deepEqual(received, [id]);
    });
  });

  test(`stop waits for a handler in flight to finish, and its job completes ${on}`, async (t) => {
    const { db, schema } = await factory.open(t);
    const queue = await createPgBossQueue(db, { schema });
    let finished = false;
    let started = false;
    await queue.work('slow', { concurrency: 1 }, async () => {
      started = true;
      await delay(800);
      finished = true;
    });
    const id = await queue.send('slow', {});
    assert.ok(id);
    await waitFor('the handler to start', () => (started ? true : undefined));
    await queue.stop();
    assert.equal(finished, true, 'stop returned only after the handler finished');
    assert.equal((await jobState(queue, 'slow', id))?.state, 'completed');
    await queue.stop(); // stopping twice is harmless
  });
}
