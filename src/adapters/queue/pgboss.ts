import { PgBoss, type Db, type JobResult, type JobWithMetadata, type QueueOptions } from 'pg-boss';
import { AppError } from '../../core/errors.ts';
import type { JobQueue, SqlExecutor } from '../../core/ports.ts';
import type { SqlDatabase, SqlSession } from '../db/sql-database.ts';

// The job queue: pg-boss in the same database as everything else, PGlite or PostgreSQL alike. pg-boss
// reaches the database only through its `db.executeSql` seam, which is handed our Database — so there
// is one connection setup, one set of type parsers, and a job can be sent inside the caller's own
// transaction (DESIGN.md §3: enqueue in the same transaction as the state change it belongs to).

export interface PgBossQueueOptions {
  /** Schema for pg-boss's tables (created if missing); pg-boss's own default, 'pgboss', when unset. */
  schema?: string;
  /** How often an idle worker looks for new jobs, in seconds; pg-boss accepts 0.5 at the least. */
  pollingIntervalSeconds?: number;
  /**
   * Queues created at start. A queue is otherwise created on its first send or work; a send inside a
   * transaction cannot create one (that needs the database outside the transaction), so queues sent
   * to inside transactions must be listed here or used once before.
   */
  queues?: readonly (string | QueueDeclaration)[];
  /** Retry policy of the queues created here; a send's own retryLimit wins. */
  retry?: { limit?: number; delaySeconds?: number; backoff?: boolean };
  /** How long stop() waits for handlers in flight; their jobs are then failed, to be retried. */
  stopTimeoutMs?: number;
  /** Told about pg-boss's background failures (a poll or maintenance run); pg-boss carries on and retries. */
  onError?: (error: Error) => void;
}

/** A queue with its own policy: exclusive queues hold one queued-or-running job per singletonKey. */
export interface QueueDeclaration {
  name: string;
  exclusive?: boolean;
  /**
   * A running job must report every this many seconds (pg-boss does it while the handler runs); a job
   * whose worker died is retried once a report is missed, instead of after the 15-minute expiry.
   */
  heartbeatSeconds?: number;
  retryLimit?: number;
}

export type PgBossQueue = JobQueue & { boss: PgBoss };

const DEFAULT_POLLING_INTERVAL_SECONDS = 0.5;
const DEFAULT_STOP_TIMEOUT_MS = 30_000;
const SUPERVISE_SECONDS = 10;
const NIL_UUID = '00000000-0000-0000-0000-000000000000';

function hasExecRows(executor: SqlExecutor): executor is SqlSession {
  return typeof (executor as Partial<SqlSession>).execRows === 'function';
}

/** pg-boss's database seam over a database or a transaction. */
function seamOver(executor: SqlExecutor): Db {
  return {
    async executeSql(text: string, values?: unknown[]): Promise<{ rows: unknown[] }> {
      if ((values === undefined || values.length === 0) && hasExecRows(executor)) {
        // Without parameters pg-boss may send several statements in one string: its schema install
        // and migrations, and its BEGIN … COMMIT maintenance blocks whose rows it reads. The simple-
        // query protocol runs one statement or many, exactly as pg-boss's own pool would, so no SQL
        // has to be split or inspected here.
        return { rows: await executor.execRows(text) };
      }
      return { rows: await executor.query(text, values ?? []) };
    },
  };
}

function failureOutput(e: unknown): Record<string, unknown> {
  if (e instanceof AppError) return { ...e.toJSON(), retryable: e.retryable };
  if (e instanceof Error) return { name: e.name, message: e.message };
  return { message: String(e) };
}

/** Starts pg-boss on db (installing or migrating its schema as needed). */
export async function createPgBossQueue(db: SqlDatabase, options: PgBossQueueOptions = {}): Promise<PgBossQueue> {
  const pollingIntervalSeconds = options.pollingIntervalSeconds ?? DEFAULT_POLLING_INTERVAL_SECONDS;
  const queueOptions: QueueOptions = {
    ...(options.retry?.limit === undefined ? {} : { retryLimit: options.retry.limit }),
    ...(options.retry?.delaySeconds === undefined ? {} : { retryDelay: options.retry.delaySeconds }),
    ...(options.retry?.backoff === undefined ? {} : { retryBackoff: options.retry.backoff }),
  };
  const boss = new PgBoss({
    db: seamOver(db),
    ...(options.schema === undefined ? {} : { schema: options.schema }),
    backend: db.kind === 'pglite' ? 'pglite' : 'postgres',
    // dxflow schedules nothing; the cron monitor would only add background statements, which on the
    // embedded database queue up behind requests on its single connection.
    schedule: false,
    // Jobs whose worker died (a missed heartbeat) are found on the monitor pass; every 10 s instead of
    // pg-boss's 60 s, so a lost tile batch is retried within seconds of its heartbeat lapsing.
    superviseIntervalSeconds: SUPERVISE_SECONDS,
    monitorIntervalSeconds: SUPERVISE_SECONDS,
  });
  // An EventEmitter 'error' without a listener would crash the process.
  boss.on('error', (error) => options.onError?.(error));
  await boss.start();

  const ready = new Set<string>();
  let creating = Promise.resolve();

  function ensureQueue(name: string, declared?: QueueDeclaration): Promise<void> {
    // One at a time: pg-boss creates a queue under an advisory lock, and concurrent first uses of one
    // name would only repeat the work.
    const step = creating.then(async () => {
      if (ready.has(name)) return;
      const own = {
        ...queueOptions,
        ...(declared?.exclusive ? { policy: 'exclusive' as const } : {}),
        ...(declared?.heartbeatSeconds === undefined ? {} : { heartbeatSeconds: declared.heartbeatSeconds }),
        ...(declared?.retryLimit === undefined ? {} : { retryLimit: declared.retryLimit }),
      };
      if (!(await boss.getQueue(name))) {
        await boss.createQueue(name, own);
      } else {
        // A queue's policy is fixed when it is created; its other options follow the declaration.
        const { policy: _policy, ...changeable } = own as typeof own & { policy?: string };
        if (Object.keys(changeable).length > 0) await boss.updateQueue(name, changeable);
      }
      // createQueue drops the queue from pg-boss's in-memory queue cache, and the next send would
      // reload it through the database outside any transaction — which a send inside a transaction
      // must not do (PGlite has one connection). Any lookup by queue name refills the cache now.
      await boss.getJobById(name, NIL_UUID);
      ready.add(name);
    });
    creating = step.catch(() => undefined);
    return step;
  }

  try {
    for (const q of options.queues ?? []) await (typeof q === 'string' ? ensureQueue(q) : ensureQueue(q.name, q));
  } catch (e) {
    await boss.stop({ graceful: false, close: false });
    throw e;
  }

  let stopping: Promise<void> | undefined;
  const workerIds = new Map<string, string[]>();

  return {
    boss,

    async send(queue, data, sendOptions = {}) {
      const { tx, singletonKey, retryLimit } = sendOptions;
      if (tx !== undefined && !ready.has(queue)) {
        throw new AppError('INTERNAL', `Queue "${queue}" does not exist yet and cannot be created inside a transaction; list it in the queue options ("queues") so it is created at start.`);
      }
      await ensureQueue(queue);
      return boss.send(queue, data, {
        ...(tx === undefined ? {} : { db: seamOver(tx) }),
        ...(singletonKey === undefined ? {} : { singletonKey }),
        ...(retryLimit === undefined ? {} : { retryLimit }),
      });
    },

    async sendMany(queue, jobs, sendOptions = {}) {
      if (jobs.length === 0) return;
      const { tx } = sendOptions;
      if (tx !== undefined && !ready.has(queue)) {
        throw new AppError('INTERNAL', `Queue "${queue}" does not exist yet and cannot be created inside a transaction; list it in the queue options ("queues") so it is created at start.`);
      }
      await ensureQueue(queue);
      await boss.insert(queue, jobs.map((j) => ({ data: j.data, ...(j.singletonKey === undefined ? {} : { singletonKey: j.singletonKey }) })), tx === undefined ? {} : { db: seamOver(tx) });
    },

    async releaseActive(queue) {
      await ensureQueue(queue);
      const active = (await boss.findJobs(queue)).filter((j) => j.state === 'active');
      if (active.length > 0) await boss.fail(queue, active.map((j) => j.id), { reason: 'the process running it stopped' });
      return active.length;
    },

    async work(queue, { concurrency }, handler) {
      if (!Number.isInteger(concurrency) || concurrency < 1) {
        throw new AppError('INTERNAL', `Worker concurrency for queue "${queue}" must be a positive integer, got ${concurrency}.`);
      }
      await ensureQueue(queue);
      // One pg-boss worker per slot, each holding one job at a time, so that each slot knows its own
      // worker id: after a job it asks for the next one at once (pg-boss would otherwise wait out its
      // polling interval after every job of a batch-size-1 worker), and wake() can reach them all.
      const ids = workerIds.get(queue) ?? [];
      workerIds.set(queue, ids);
      for (let slot = 0; slot < concurrency; slot++) {
        // Filled in when work() resolves; a handler that runs before that skips the early fetch.
        const slot: { id?: string } = {};
        slot.id = await boss.work<Record<string, unknown>>(
          queue,
          // Per-job results so that a failure can be marked as final instead of retried.
          { localConcurrency: 1, batchSize: 1, pollingIntervalSeconds, perJobResults: true, includeMetadata: true },
          async (jobs): Promise<JobResult[]> => {
            const results = await Promise.all(jobs.map(async (job): Promise<JobResult> => {
              try {
                await handler({ id: job.id, data: job.data ?? {}, lastAttempt: job.retryCount >= (job as JobWithMetadata).retryLimit });
                return { id: job.id, status: 'completed' };
              } catch (e) {
                // A failure known to be permanent (an AppError that is not retryable, e.g. a corrupt
                // image) ends the job now; any other failure may be transient and is retried up to
                // retryLimit.
                const permanent = e instanceof AppError && !e.retryable;
                return { id: job.id, status: permanent ? 'deadletter' : 'failed', output: failureOutput(e) };
              }
            }));
            if (slot.id !== undefined) boss.notifyWorker(slot.id);
            return results;
          },
        );
        ids.push(slot.id);
      }
    },

    wake(queue) {
      for (const id of workerIds.get(queue) ?? []) boss.notifyWorker(id);
    },


    stop() {
      // Waits up to stopTimeoutMs for handlers in flight to finish; the database stays open (its owner
      // closes it).
      stopping ??= boss.stop({ graceful: true, close: false, timeout: options.stopTimeoutMs ?? DEFAULT_STOP_TIMEOUT_MS });
      return stopping;
    },
  };
}
