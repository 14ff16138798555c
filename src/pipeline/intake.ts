import { randomUUID } from 'node:crypto';
import { AppError } from '../core/errors.ts';
import type { Database, JobQueue, ObjectStore, SqlExecutor, StoredObject } from '../core/ports.ts';
import { MEDIA_MIME, type InputRecord, type NoteRecord } from '../core/result.ts';
import { inspectImage, type ImageInspection } from '../imaging/inspect.ts';
import { sniffMediaType } from '../imaging/sniff.ts';
import { fromObjectStore } from '../imaging/wsi/byte-source.ts';
import { openSlide } from '../imaging/wsi/slide.ts';
import type { PipelineSpec } from '../core/pipeline-spec.ts';
import type { PipelineCatalog } from './spec.ts';
import { insertCase } from './case-store.ts';
import { decodeInput, type ImageLimits } from './stages/decode-input.ts';

export const RUN_CASE_QUEUE = 'run-case';

export interface IntakeDeps {
  db: Database;
  objects: ObjectStore;
  queue: JobQueue;
  pipelines: PipelineCatalog;
  limits: ImageLimits & { maxSlideBytes: number };
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

export interface AcceptOptions {
  /** Send the run-case job in the case's transaction (else the caller runs the case itself). */
  enqueue: boolean;
  /** More writes that belong to the new case, in its transaction (an event row, say). */
  inTransaction?: (tx: SqlExecutor, caseId: string) => Promise<void>;
}

/** A file already streamed into the store at `cases/<caseId>/input` (large uploads, whole slides). */
export interface StoredUpload {
  caseId: string;
  stored: StoredObject;
  pipeline: string;
  metadata?: Record<string, unknown>;
  note?: Buffer | undefined;
}

/** Where an upload's bytes go; the case id is chosen first so the input can be streamed straight there. */
export const inputKey = (caseId: string) => `cases/${caseId}/input`;

/**
 * Accepts an upload as a case. Everything a user can get wrong (type, size, dimensions, truncation) is
 * checked before the case exists, so bad input is refused with its own code and leaves no trace (a file
 * streamed into the store first is deleted again). Original file names are not kept: they often carry
 * patient names. With `enqueue`, the run-case job is sent in the same transaction as the case row
 * (DESIGN.md §3).
 *
 * Whole-slide images (a TIFF for a pipeline that accepts `slide`) are never read whole: the slide's
 * directories are parsed and one tile of the smallest level decoded, through range reads of the stored
 * object.
 */
export function createIntake(deps: IntakeDeps) {
  function checkNote(upload: { note?: Buffer | undefined }) {
    return upload.note ? classifyNote(upload.note) : undefined;
  }

  async function checkImage(bytes: Buffer, spec: PipelineSpec): Promise<ImageInspection> {
    if (bytes.length > deps.limits.maxBytes) {
      throw new AppError('FILE_TOO_LARGE', `The file has ${bytes.length} bytes; the limit is ${deps.limits.maxBytes} (DXFLOW_LIMITS_MAX_BYTES)`);
    }
    // Headers and limits first: a decompression bomb is refused here, before any pixel is allocated.
    const info = inspectImage(bytes, deps.limits);
    if (!spec.accepts.includes(info.mediaType)) {
      throw new AppError('UNSUPPORTED_MEDIA_TYPE', `Pipeline "${spec.name}" accepts ${spec.accepts.join(', ')}; this file is ${info.mediaType}`);
    }
    // Then a full decode, so a truncated or corrupt file is a 422 now rather than a failed case later.
    await decodeInput(bytes, deps.limits);
    return info;
  }

  async function checkSlide(stored: StoredObject): Promise<{ width: number; height: number }> {
    if (stored.bytes > deps.limits.maxSlideBytes) {
      throw new AppError('FILE_TOO_LARGE', `The slide has ${stored.bytes} bytes; the limit is ${deps.limits.maxSlideBytes} (DXFLOW_LIMITS_MAX_SLIDE_BYTES)`);
    }
    const slide = await openSlide(fromObjectStore(deps.objects, stored.key, stored.bytes));
    const base = slide.levels[0];
    const smallest = slide.levels.length - 1;
    if (!base) throw new AppError('CORRUPT_IMAGE', 'The file is a TIFF without tiled image levels; send a pyramidal whole-slide image (SVS, or a tiled pyramidal TIFF).');
    // One tile of the smallest level proves the codec works on this file before any worker is asked.
    await slide.readTile(smallest, 0, 0);
    return { width: base.width, height: base.height };
  }

  async function insert(caseId: string, spec: PipelineSpec, input: InputRecord, upload: { metadata?: Record<string, unknown> | undefined; note?: Buffer | undefined }, noteFormat: 'text' | 'json' | undefined, options: AcceptOptions) {
    const { enqueue } = options;
    const note: NoteRecord | undefined = upload.note && noteFormat
      ? await deps.objects.put(`cases/${caseId}/note`, upload.note).then((o) => ({ objectKey: o.key, sha256: o.sha256, bytes: o.bytes, format: noteFormat }))
      : undefined;
    await deps.db.transaction(async (tx) => {
      await insertCase(tx, { id: caseId, pipeline: spec.name, pipelineVersion: spec.version, status: 'queued', input, metadata: upload.metadata ?? {}, note });
      if (enqueue) await deps.queue.send(RUN_CASE_QUEUE, { caseId }, { tx });
      await options.inTransaction?.(tx, caseId);
    });
    if (enqueue) deps.queue.wake(RUN_CASE_QUEUE);
  }

  const isSlideFor = (spec: PipelineSpec, head: Uint8Array) => spec.accepts.includes('slide') && safeSniff(head) === 'tiff';

  /** Accepts a file already in the store; deletes it again when it is refused. */
  async function acceptStored(upload: StoredUpload, options: AcceptOptions): Promise<{ caseId: string; input: InputRecord }> {
    const { caseId, stored } = upload;
    try {
      const spec = deps.pipelines.get(upload.pipeline);
      const noteFormat = checkNote(upload);
      const head = await deps.objects.getRange(stored.key, 0, 16);
      let input: InputRecord;
      if (isSlideFor(spec, head)) {
        const size = await checkSlide(stored);
        input = { objectKey: stored.key, sha256: stored.sha256, bytes: stored.bytes, mediaType: 'slide', mimeType: MEDIA_MIME.slide, ...size };
      } else {
        if (stored.bytes > deps.limits.maxBytes) {
          throw new AppError('FILE_TOO_LARGE', `The file has ${stored.bytes} bytes; the limit is ${deps.limits.maxBytes} (DXFLOW_LIMITS_MAX_BYTES)`);
        }
        const info = await checkImage(await deps.objects.get(stored.key), spec);
        input = { objectKey: stored.key, sha256: stored.sha256, bytes: stored.bytes, mediaType: info.mediaType, mimeType: MEDIA_MIME[info.mediaType], width: info.width, height: info.height };
      }
      await insert(caseId, spec, input, upload, noteFormat, options);
      return { caseId, input };
    } catch (e) {
      await deps.objects.delete(stored.key).catch(() => undefined);
      await deps.objects.delete(`cases/${caseId}/note`).catch(() => undefined);
      throw e;
    }
  }

  async function accept(upload: NewCase, options: AcceptOptions): Promise<{ caseId: string; input: InputRecord }> {
    const spec = deps.pipelines.get(upload.pipeline);
    if (isSlideFor(spec, upload.bytes)) {
      if (!options.enqueue) {
        throw new AppError('SLIDE_REQUIRES_ASYNC', `Pipeline "${spec.name}" analyses whole-slide images on queue workers; POST the slide to /v1/cases and follow the case`);
      }
      checkNote(upload);
      const caseId = randomUUID();
      const stored = await deps.objects.put(inputKey(caseId), upload.bytes);
      return acceptStored({ caseId, stored, pipeline: upload.pipeline, ...(upload.metadata ? { metadata: upload.metadata } : {}), note: upload.note }, options);
    }
    const info = await checkImage(upload.bytes, spec);
    const noteFormat = checkNote(upload);
    const caseId = randomUUID();
    const stored = await deps.objects.put(inputKey(caseId), upload.bytes);
    const input: InputRecord = {
      objectKey: stored.key,
      sha256: stored.sha256,
      bytes: stored.bytes,
      mediaType: info.mediaType,
      mimeType: MEDIA_MIME[info.mediaType],
      width: info.width,
      height: info.height,
    };
    try {
      await insert(caseId, spec, input, upload, noteFormat, options);
    } catch (e) {
      // Nothing of a refused case stays behind (the transaction rolled the rows back).
      await deps.objects.delete(stored.key).catch(() => undefined);
      await deps.objects.delete(`cases/${caseId}/note`).catch(() => undefined);
      throw e;
    }
    return { caseId, input };
  }
  return { accept, acceptStored };
}

function safeSniff(head: Uint8Array): string | undefined {
  try {
    return sniffMediaType(head);
  } catch {
    return undefined;
  }
}

export type Intake = ReturnType<typeof createIntake>;
