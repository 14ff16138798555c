import { z } from 'zod';
import { releaseAllLeases, listAbandoned } from '../pipeline/case-store.ts';
import { RUN_CASE_QUEUE } from '../pipeline/intake.ts';
import type { Platform } from '../platform.ts';

// Job payloads carry ids only — never PHI, never pixels (DESIGN.md §2).
const RunCaseJob = z.object({ caseId: z.string().uuid() });

export interface WorkerLog {
  info(obj: Record<string, unknown>, msg: string): void;
  warn(obj: Record<string, unknown>, msg: string): void;
  error(obj: Record<string, unknown>, msg: string): void;
}

/**
 * Starts consuming run-case jobs. A case another live worker holds is left to it; a case whose worker
 * died is picked up again once its lease expires (the sweeper) or at once on an embedded restart.
 */
export async function startCaseWorker(platform: Platform, log: WorkerLog): Promise<{ stop(): Promise<void> }> {
  const { queue, runner, db, config } = platform;

  if (db.kind === 'pglite') {
    // PGlite is owned by exactly one process, so every lease found at start belongs to a run that died
    // with the previous process: release them and re-enqueue, instead of waiting for the lease to expire.
    const released = await releaseAllLeases(db);
    if (released > 0) log.warn({ cases: released }, 'resuming cases left unfinished by the previous run');
  }
  const requeue = async (includeQueued: boolean) => {
    for (const caseId of await listAbandoned(db, { includeQueued })) {
      await queue.send(RUN_CASE_QUEUE, { caseId }, { singletonKey: `recover:${caseId}` });
    }
  };
  await requeue(db.kind === 'pglite');
  const sweeper = setInterval(() => {
    requeue(false).catch((e: unknown) => log.warn({ err: String(e) }, 'abandoned-case sweep failed'));
  }, config.worker.leaseSeconds * 1000);
  sweeper.unref();

  await queue.work(RUN_CASE_QUEUE, { concurrency: config.worker.concurrency }, async (job) => {
    const { caseId } = RunCaseJob.parse(job.data);
    const t0 = performance.now();
    const outcome = await runner.run(caseId);
    if (outcome.kind === 'busy') {
      log.info({ caseId }, 'case is held by another live worker; leaving it');
      return;
    }
    log.info({ caseId, status: outcome.result.status, ms: Math.round(performance.now() - t0) }, 'case finished');
  });

  return {
    async stop() {
      clearInterval(sweeper);
    },
  };
}
