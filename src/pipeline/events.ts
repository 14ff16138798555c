import { readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { z } from 'zod';
import { AppError, toAppError } from '../core/errors.ts';
import type { Database } from '../core/ports.ts';
import type { Intake } from './intake.ts';

// Event-driven intake (DESIGN.md §1.3): an object-store notification (S3 or MinIO) or a file appearing in
// a watched folder becomes one case. Each object version becomes at most one case, however often the
// event is delivered: the event row is inserted in the case's own transaction, keyed by source, bucket,
// key and version (or ETag).

export interface ObjectEvent {
  source: 's3' | 'folder';
  bucket: string;
  key: string;
  /** Version id, else ETag, else sequencer: what tells one upload of a key from the next. */
  version: string;
  /** User metadata sent with the object (x-amz-meta-*), lower-case keys without the prefix. */
  metadata: Record<string, string>;
}

export interface EventOutcome {
  bucket: string;
  key: string;
  caseId: string | null;
  duplicate: boolean;
  error?: { code: string; message: string };
}

/** Where the objects events name are read from. */
export interface EventObjectSource {
  get(bucket: string, key: string): Promise<Buffer>;
}

const S3Record = z.object({
  eventName: z.string(),
  s3: z.object({
    bucket: z.object({ name: z.string().min(1) }),
    object: z.object({
      key: z.string().min(1),
      size: z.number().optional(),
      eTag: z.string().optional(),
      versionId: z.string().optional(),
      sequencer: z.string().optional(),
      userMetadata: z.record(z.string(), z.string()).optional(),
    }),
  }),
});
const S3Notification = z.object({ Records: z.array(z.unknown()) });

/**
 * The records of an S3 (or MinIO, which sends the same shape) event notification that announce a new
 * object. Keys arrive URL-encoded with '+' for spaces (S3 event format). Other records (deletions, test
 * events) are ignored; a body that is not a notification is INVALID_REQUEST.
 */
export function parseS3Notification(body: unknown): ObjectEvent[] {
  const parsed = S3Notification.safeParse(body);
  if (!parsed.success) {
    throw new AppError('INVALID_REQUEST', 'The body is not an S3 event notification: expected {"Records": [...]} as S3 and MinIO send it');
  }
  const events: ObjectEvent[] = [];
  for (const [i, raw] of parsed.data.Records.entries()) {
    const record = S3Record.safeParse(raw);
    if (!record.success) throw new AppError('INVALID_REQUEST', `Record ${i} is not an S3 event record (eventName, s3.bucket.name, s3.object.key)`);
    const { eventName, s3 } = record.data;
    if (!/^(s3:)?ObjectCreated:/.test(eventName)) continue;
    const version = s3.object.versionId ?? s3.object.eTag ?? s3.object.sequencer;
    if (!version) throw new AppError('INVALID_REQUEST', `Record ${i} has no versionId, eTag or sequencer, so a replay could not be told from a new upload`);
    let key: string;
    try {
      key = decodeURIComponent(s3.object.key.replace(/\+/g, ' '));
    } catch {
      throw new AppError('INVALID_REQUEST', `Record ${i} has a key that is not URL-encoded as S3 sends it`);
    }
    const metadata = Object.fromEntries(Object.entries(s3.object.userMetadata ?? {})
      .map(([k, v]) => [k.toLowerCase().replace(/^x-amz-meta-/, ''), v]));
    events.push({ source: 's3', bucket: s3.bucket.name, key, version: version.replace(/^"|"$/g, ''), metadata });
  }
  return events;
}

/** The embedded stand-in for buckets: <root>/<bucket>/<key>, never outside root. */
export function folderObjectSource(root: string): EventObjectSource {
  const base = path.resolve(root);
  return {
    async get(bucket, key) {
      const file = path.resolve(base, bucket, key);
      if (!file.startsWith(base + path.sep)) throw new AppError('INVALID_REQUEST', `Bucket ${bucket} and key ${key} point outside the inbox`);
      try {
        if (!(await stat(file)).isFile()) throw new Error('not a file');
        return await readFile(file);
      } catch {
        throw new AppError('OBJECT_NOT_FOUND', `The event names s3://${bucket}/${key}, which is not in the inbox ${base}; the object may have been deleted`);
      }
    },
  };
}

function isUniqueViolation(e: unknown): boolean {
  return (e as { code?: string } | undefined)?.code === '23505' || /duplicate key|unique constraint/i.test(String((e as Error)?.message));
}

export function createEventIntake(deps: { db: Database; intake: Intake; source: EventObjectSource; pipeline: string }) {
  async function existing(e: ObjectEvent): Promise<string | null | undefined> {
    const [row] = await deps.db.query<{ case_id: string | null }>(
      `SELECT case_id FROM dxflow_event WHERE source = $1 AND bucket = $2 AND object_key = $3 AND version = $4`,
      [e.source, e.bucket, e.key, e.version],
    );
    return row ? row.case_id : undefined;
  }

  /** One event: a new case, the case an earlier delivery made, or the error that refused the object. */
  async function ingestOne(e: ObjectEvent, readObject: () => Promise<Buffer>, note?: Buffer): Promise<EventOutcome> {
    const base = { bucket: e.bucket, key: e.key };
    const before = await existing(e);
    if (before !== undefined) return { ...base, caseId: before, duplicate: true };
    try {
      const bytes = await readObject();
      // The key and file name are not kept with the case (they often carry names); the metadata the
      // uploader attached is, for routing.
      const { caseId } = await deps.intake.accept({ bytes, pipeline: deps.pipeline, metadata: { ...e.metadata, source: e.source }, note }, {
        enqueue: true,
        inTransaction: (tx, id) => tx.query(
          `INSERT INTO dxflow_event (source, bucket, object_key, version, case_id) VALUES ($1, $2, $3, $4, $5)`,
          [e.source, e.bucket, e.key, e.version, id],
        ).then(() => undefined),
      });
      return { ...base, caseId, duplicate: false };
    } catch (err) {
      // Another delivery of the same event won the race for the event row.
      if (isUniqueViolation(err)) return { ...base, caseId: (await existing(e)) ?? null, duplicate: true };
      const app = toAppError(err);
      return { ...base, caseId: null, duplicate: false, error: { code: app.code, message: app.message } };
    }
  }

  return {
    ingestOne,
    async ingest(events: readonly ObjectEvent[]): Promise<EventOutcome[]> {
      const out: EventOutcome[] = [];
      for (const e of events) out.push(await ingestOne(e, () => deps.source.get(e.bucket, e.key)));
      return out;
    },
  };
}

export type EventIntake = ReturnType<typeof createEventIntake>;
