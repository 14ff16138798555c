import { randomUUID } from 'node:crypto';
import { AppError } from '../core/errors.ts';
import type { Database, JobQueue, ObjectStore } from '../core/ports.ts';
import { MEDIA_MIME, type InputRecord, type NoteRecord } from '../core/result.ts';
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
  /** The clinical note as sent: free text, or a JSON object of structured values. */
  note?: Buffer | undefined;
}

/** Longest clinical note accepted; a note is a few KB, and the parser's cost grows with its length. */
export const MAX_NOTE_BYTES = 64 * 1024;

/**
 * Checks a note and tells its format: a JSON object is structured input, anything else must be UTF-8
 * text. An empty note is treated as no note.
 */
export function classifyNote(bytes: Buffer): 'text' | 'json' | undefined {
  if (bytes.length > MAX_NOTE_BYTES) {
    throw new AppError('INVALID_REQUEST', `The clinical note has ${bytes.length} bytes; the limit is ${MAX_NOTE_BYTES}`);
  }
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    throw new AppError('INVALID_REQUEST', 'The clinical note is not UTF-8 text; send plain text or a JSON object');
  }
  const trimmed = text.trim();
  if (trimmed === '') return undefined;
  if (trimmed.startsWith('{')) {
    try {
      const parsed: unknown = JSON.parse(trimmed);
      if (typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed)) return 'json';
    } catch {
      throw new AppError('INVALID_REQUEST', 'The clinical note starts like a JSON object but is not valid JSON; fix it or send plain text');
    }
  }
  return 'text';
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
    const noteFormat = upload.note ? classifyNote(upload.note) : undefined;

    const caseId = randomUUID();
    const stored = await deps.objects.put(`cases/${caseId}/input`, upload.bytes);
    const note: NoteRecord | undefined = upload.note && noteFormat
      ? await deps.objects.put(`cases/${caseId}/note`, upload.note).then((o) => ({ objectKey: o.key, sha256: o.sha256, bytes: o.bytes, format: noteFormat }))
      : undefined;
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
      await insertCase(tx, { id: caseId, pipeline: spec.name, pipelineVersion: spec.version, status: 'queued', input, metadata: upload.metadata ?? {}, note });
      if (options.enqueue) await deps.queue.send(RUN_CASE_QUEUE, { caseId }, { tx });
    });
    return { caseId, input };
  }
  return { accept };
}

export type Intake = ReturnType<typeof createIntake>;
