import { AppError, toAppError } from '../core/errors.ts';
import type { Database, ObjectStore } from '../core/ports.ts';
import type { CaseResult, InputRecord } from '../core/result.ts';
import { formatIssues } from '../core/pipeline-spec.ts';
import { ReportParts } from '../core/report.ts';
import {
  acquireLease,
  loadCheckpoints,
  markSucceeded,
  markWaiting,
  readCase,
  readInput,
  readMetadata,
  readNoteRecord,
  recordFailure,
  recordSkipped,
  recordStageSuccess,
  renewLease,
  type StoredStageOutput,
} from './case-store.ts';
import type { PipelineCatalog } from './spec.ts';
import { isStageWait, type StageRegistry, type StageResult, type StageWait } from './stage.ts';
import { fromObjectStore } from '../imaging/wsi/byte-source.ts';

export interface RunnerLog {
  info(obj: Record<string, unknown>, msg: string): void;
  warn(obj: Record<string, unknown>, msg: string): void;
}

export interface RunnerDeps {
  db: Database;
  objects: ObjectStore;
  stages: StageRegistry;
  pipelines: PipelineCatalog;
  /** Identifies this process/worker in case leases. */
  owner: string;
  leaseSeconds: number;
  /** How long a case waiting for fanned-out work may go without progress before it is run again. */
  waitSeconds: number;
  retry: { attempts: number; backoffMs: number };
  log?: RunnerLog;
}

export type RunOutcome =
  | { kind: 'finished'; result: CaseResult }
  /** A stage handed work to other workers; the case runs again when that work is done. */
  | { kind: 'waiting'; stage: string; reason: string }
  /** Another live worker holds the case; the caller should let it finish. */
  | { kind: 'busy' };

const sleep = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const t = setTimeout(resolve, ms);
    signal?.addEventListener('abort', () => { clearTimeout(t); reject(signal.reason); }, { once: true });
  });

/**
 * Runs a case's pipeline from where it stopped. Per-stage checkpoints make a re-run resume instead of
 * repeat; transient errors (AppError.retryable) are retried with exponential back-off, permanent ones go
 * straight to the one error handler, which records the failing stage and the stable code on the case.
 */
export function createRunner(deps: RunnerDeps) {
  const { db, objects, stages, pipelines, owner, leaseSeconds } = deps;

  async function run(caseId: string, options: { signal?: AbortSignal; inputBytes?: Buffer; noteBytes?: Buffer } = {}): Promise<RunOutcome> {
    const signal = options.signal ?? new AbortController().signal;
    const row = await acquireLease(db, caseId, owner, leaseSeconds);
    if (!row) {
      const existing = await readCase(db, caseId);
      if (!existing) throw new AppError('CASE_NOT_FOUND', `Case ${caseId} does not exist`);
      if (existing.status === 'succeeded' || existing.status === 'failed') return { kind: 'finished', result: existing };
      return { kind: 'busy' };
    }

    const input = await readInput(db, caseId);
    let leaseRenewedAt = performance.now();
    let failedAt: { stage: string | null; uses: string | null; seq: number; attempts: number; startedAt: Date; t0: number } = {
      stage: null, uses: null, seq: 0, attempts: 0, startedAt: new Date(), t0: performance.now(),
    };
    try {
      if (!input) throw new AppError('INTERNAL', `Case ${caseId} has no input record`);
      const spec = pipelines.get(row.pipeline);
      if (spec.version !== row.pipeline_version) {
        deps.log?.warn({ caseId, pipeline: spec.name, was: row.pipeline_version, now: spec.version }, 'pipeline spec changed since the case was created; running the current version');
      }
      const checkpoints = await loadCheckpoints(db, caseId);
      const metadata = await readMetadata(db, caseId);
      const skipped = new Set([...checkpoints.values()].filter((c) => c.status === 'skipped').map((c) => c.stage));
      const outputs = new Map<string, unknown>();
      // A synchronous request already holds the bytes it just stored; a queued job reads them back.
      let inputBytes: Promise<Buffer> | undefined = options.inputBytes ? Promise.resolve(options.inputBytes) : undefined;
      const readInputBytes = () => (inputBytes ??= objects.get(input.objectKey));
      const note = await readNoteRecord(db, caseId);
      let noteBytes: Promise<Buffer> | undefined = options.noteBytes ? Promise.resolve(options.noteBytes) : undefined;
      const readNote = async () => (note ? (noteBytes ??= objects.get(note.objectKey)) : undefined);
      const inputSource = () => fromObjectStore(objects, input.objectKey, input.bytes);
      const putObject = async (name: string, data: Buffer) => (await objects.put(`cases/${caseId}/${name}`, data)).key;

      for (const [seq, stageSpec] of spec.stages.entries()) {
        const done = checkpoints.get(stageSpec.id);
        if (done?.status === 'succeeded' && done.output) {
          outputs.set(stageSpec.id, done.output.data);
          continue;
        }
        if (skipped.has(stageSpec.id)) continue;
        const def = stages.get(stageSpec.uses);
        if (!def) throw new AppError('STAGE_NOT_FOUND', `Stage "${stageSpec.uses}" is not registered`);
        const params = def.params.parse(stageSpec.with);
        const maxAttempts = stageSpec.retry?.attempts ?? deps.retry.attempts;
        const backoffMs = stageSpec.retry?.backoffMs ?? deps.retry.backoffMs;
        failedAt = { stage: stageSpec.id, uses: stageSpec.uses, seq, attempts: 0, startedAt: new Date(), t0: performance.now() };

        let result: StageResult<unknown> | StageWait | undefined;
        for (let attempt = 1; ; attempt++) {
          failedAt.attempts = attempt;
          try {
            result = await def.run({ caseId, pipeline: spec.name, stageId: stageSpec.id, seq, input: input as InputRecord, params, metadata, outputs, readInput: readInputBytes, inputSource, note, readNote, putObject, signal });
            break;
          } catch (e) {
            const err = toAppError(e);
            if (!err.retryable || attempt >= maxAttempts || signal.aborted) throw err;
            deps.log?.warn({ caseId, stage: stageSpec.id, attempt, code: err.code }, 'transient stage error; retrying');
            if (err.code === 'STORAGE_UNAVAILABLE') inputBytes = undefined;
            await sleep(backoffMs * 2 ** (attempt - 1), signal);
          }
        }
        if (isStageWait(result)) {
          await markWaiting(db, caseId, owner, deps.waitSeconds);
          deps.log?.info({ caseId, stage: stageSpec.id, reason: result.wait.reason }, 'stage waits for fanned-out work');
          return { kind: 'waiting', stage: stageSpec.id, reason: result.wait.reason };
        }
        const checked = def.output.safeParse(result.data);
        if (!checked.success) {
          throw new AppError('STAGE_OUTPUT_INVALID', `Stage "${stageSpec.id}" (${stageSpec.uses}) returned invalid output: ${formatIssues(checked.error)}`);
        }
        const report = result.report ? ReportParts.safeParse(result.report) : undefined;
        if (report && !report.success) {
          throw new AppError('STAGE_OUTPUT_INVALID', `Stage "${stageSpec.id}" (${stageSpec.uses}) returned an invalid report part: ${formatIssues(report.error)}`);
        }
        const stored: StoredStageOutput = {
          data: checked.data,
          ...(result.findings ? { findings: result.findings } : {}),
          ...(result.models ? { models: result.models } : {}),
          ...(report?.success ? { report: report.data } : {}),
        };
        await recordStageSuccess(db, {
          caseId, stage: stageSpec.id, uses: stageSpec.uses, seq, attempts: failedAt.attempts,
          output: stored, durationMs: performance.now() - failedAt.t0, startedAt: failedAt.startedAt,
        });
        // Renew once a third of the lease is gone, not after every stage: a short stage costs no write.
        if (performance.now() - leaseRenewedAt > (leaseSeconds * 1000) / 3) {
          await renewLease(db, caseId, owner, leaseSeconds);
          leaseRenewedAt = performance.now();
        }
        outputs.set(stageSpec.id, checked.data);
        if (result.skip?.length) {
          const later = spec.stages.map((s, i) => ({ stage: s.id, uses: s.uses, seq: i })).filter((s) => s.seq > seq);
          const unknown = result.skip.filter((id) => !later.some((s) => s.stage === id));
          if (unknown.length) throw new AppError('PIPELINE_SPEC_INVALID', `Stage "${stageSpec.id}" skips ${unknown.join(', ')}, which are not later stages of pipeline "${spec.name}"`);
          const skip = later.filter((s) => result.skip?.includes(s.stage));
          await recordSkipped(db, { caseId, stages: skip });
          for (const s of skip) skipped.add(s.stage);
        }
      }
      await markSucceeded(db, caseId, owner);
    } catch (e) {
      const err = toAppError(e);
      // If the database itself is down, recordFailure throws too and the queue retries the whole job
      // (the checkpoints make that a resume). A transient error that outlived its retries is recorded.
      deps.log?.warn({ caseId, stage: failedAt.stage, code: err.code }, 'case failed');
      await recordFailure(db, {
        caseId, owner, stage: failedAt.stage, uses: failedAt.uses, seq: failedAt.seq, attempts: failedAt.attempts,
        durationMs: performance.now() - failedAt.t0, startedAt: failedAt.startedAt,
        error: { code: err.code, message: err.message, hint: err.hint },
      });
    }
    const result = await readCase(db, caseId);
    if (!result) throw new AppError('CASE_NOT_FOUND', `Case ${caseId} disappeared while running`);
    return { kind: 'finished', result };
  }

  return { run };
}

export type Runner = ReturnType<typeof createRunner>;
