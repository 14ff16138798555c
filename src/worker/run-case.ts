import { z } from 'zod';
import { releaseAllLeases, listAbandoned } from '../pipeline/case-store.ts';
import { RUN_CASE_QUEUE } from '../pipeline/intake.ts';
import type { Platform } from '../platform.ts';
import { TILE_BATCH_QUEUE } from '../pipeline/tiles.ts';

// Job payloads carry ids only — never PHI, never pixels (DESIGN.md §2).
const RunCaseJob = z.object({ caseId: z.string().uuid() });
const TileBatchJob = z.object({ caseId: z.string().uuid(), stage: z.string().min(1), batch: z.number().int().nonnegative() });

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
    for (const name of [RUN_CASE_QUEUE, TILE_BATCH_QUEUE]) {
      const jobs = await queue.releaseActive(name);
      if (jobs > 0) log.warn({ queue: name, jobs }, 'jobs of the previous run go back to the queue');
    }
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
    if (outcome.kind === 'waiting') return;
    log.info({ caseId, status: outcome.result.status, ms: Math.round(performance.now() - t0) }, 'case finished');
  });

  if (platform.fanOut) {
    const { fanOut } = platform;
    await queue.work(TILE_BATCH_QUEUE, { concurrency: config.worker.tileConcurrency }, async (job) => {
      const batch = TileBatchJob.parse(job.data);
      try {
        await fanOut.runBatch(batch, { lastAttempt: job.lastAttempt });
      } catch (e) {
        log.warn({ caseId: batch.caseId, stage: batch.stage, batch: batch.batch, err: String(e) }, 'tile batch failed');
        throw e;
      }
    });
  }

  // DICOM studies whose instances stopped arriving become cases (in any worker; the study row is claimed
  // in the case's transaction).
  let completing = Promise.resolve();
  const studies = setInterval(() => {
    completing = completing.then(async () => {
      for (const s of await platform.dicom.completeQuietStudies()) {
        if (s.caseId) log.info({ caseId: s.caseId }, 'a DICOM study became a case');
        else if (s.error) log.warn({ code: s.error.code }, 'no instance of a DICOM study could be analysed');
      }
    }).catch((e: unknown) => log.warn({ err: String(e) }, 'DICOM study completion failed'));
  }, Math.max(1000, (config.dicom.quietSeconds * 1000) / 2));
  studies.unref();

  return {
    async stop() {
      clearInterval(studies);
      await completing;
      clearInterval(sweeper);
    },
  };
}
