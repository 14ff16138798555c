import { randomUUID } from 'node:crypto';
import { AppError } from '../core/errors.ts';
import type { Database, JobQueue, ObjectStore } from '../core/ports.ts';
import { MEDIA_MIME, type InputRecord } from '../core/result.ts';
import { inspectImage } from '../imaging/inspect.ts';
import type { PipelineCatalog } from './spec.ts';
import { insertCase } from './case-store.ts';
import { decodeInput, type ImageLimits } from './stages/decode-input.ts';

export const RUN_CASE_QUEUE = 'run-case';

export interface IntakeDeps {
  db: Database;
  objects: ObjectStore;
  queue: JobQueue;
  pipelines: PipelineCatalog;
  limits: ImageLimits;
}

export interface NewCase {
  bytes: Buffer;
  pipeline: string;
  /** Caller-supplied context; may hold PHI, so it is stored but never serialised in results. */
  metadata?: Record<string, unknown>;
}

/**
 * Accepts an upload as a case. Everything a user can get wrong (type, size, dimensions, truncation) is
 * checked before anything is stored, so bad input is refused with its own code and leaves no trace.
 * Original file names are not kept: they often carry patient names.
 * With `enqueue`, the run-case job is sent in the same transaction as the case row (DESIGN.md §3).
 */
export function createIntake(deps: IntakeDeps) {
  async function accept(upload: NewCase, options: { enqueue: boolean }): Promise<{ caseId: string; input: InputRecord }> {
    const spec = deps.pipelines.get(upload.pipeline);
    if (upload.bytes.length > deps.limits.maxBytes) {
      throw new AppError('FILE_TOO_LARGE', `The file has ${upload.bytes.length} bytes; the limit is ${deps.limits.maxBytes} (DXFLOW_LIMITS_MAX_BYTES)`);
    }
    // Headers and limits first: a decompression bomb is refused here, before any pixel is allocated.
    const info = inspectImage(upload.bytes, deps.limits);
    if (!spec.accepts.includes(info.mediaType)) {
      throw new AppError('UNSUPPORTED_MEDIA_TYPE', `Pipeline "${spec.name}" accepts ${spec.accepts.join(', ')}; this file is ${info.mediaType}`);
    }
    // Then a full decode, so a truncated or corrupt file is a 422 now rather than a failed case later.
    await decodeInput(upload.bytes, deps.limits);

    const caseId = randomUUID();
    const stored = await deps.objects.put(`cases/${caseId}/input`, upload.bytes);
    const input: InputRecord = {
      objectKey: stored.key,
      sha256: stored.sha256,
      bytes: stored.bytes,
      mediaType: info.mediaType,
      mimeType: MEDIA_MIME[info.mediaType],
      width: info.width,
      height: info.height,
    };
    await deps.db.transaction(async (tx) => {
      await insertCase(tx, { id: caseId, pipeline: spec.name, pipelineVersion: spec.version, status: 'queued', input, metadata: upload.metadata ?? {} });
      if (options.enqueue) await deps.queue.send(RUN_CASE_QUEUE, { caseId }, { tx });
    });
    return { caseId, input };
  }
  return { accept };
}

export type Intake = ReturnType<typeof createIntake>;
