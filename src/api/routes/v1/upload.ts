import type { FastifyRequest } from 'fastify';
import { AppError } from '../../../core/errors.ts';

export interface ParsedUpload {
  bytes: Buffer;
  metadata: Record<string, unknown>;
  pipeline: string | undefined;
  /** The clinical note, from a `note` field (text or JSON) or a `note` file. */
  note: Buffer | undefined;
}

/**
 * Reads a multipart upload: `image` (file, required), `note` (clinical note: text or a JSON object, as a
 * field or a file), `metadata` (JSON object), `pipeline` (name).
 * The byte limit is enforced by the multipart parser while streaming, so an oversize upload is refused
 * before it is held in memory or stored.
 */
export async function readUpload(request: FastifyRequest): Promise<ParsedUpload> {
  if (!request.isMultipart()) {
    throw new AppError('MISSING_FILE', 'The request must be multipart/form-data with the image in a field named "image"');
  }
  let bytes: Buffer | undefined;
  let metadata: Record<string, unknown> = {};
  let pipeline: string | undefined;
  let note: Buffer | undefined;
  for await (const part of request.parts()) {
    if (part.type === 'file' && part.fieldname === 'note') {
      note = await part.toBuffer();
    } else if (part.type === 'file') {
      if (part.fieldname !== 'image') {
        await part.toBuffer();
        throw new AppError('MISSING_FILE', `Unexpected file field "${part.fieldname}"; name the file field "image"`);
      }
      bytes = await part.toBuffer();
    } else if (part.valueTruncated) {
      // busboy cuts an over-long field silently; a cut note or metadata must never be used.
      throw new AppError('INVALID_REQUEST', `The "${part.fieldname}" field is longer than 64 KiB; send a long note as a file part named "note"`);
    } else if (part.fieldname === 'metadata') {
      const text = String(part.value);
      let parsed: unknown;
      try {
        parsed = JSON.parse(text);
      } catch {
        throw new AppError('INVALID_METADATA', 'The "metadata" field is not valid JSON');
      }
      if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
        throw new AppError('INVALID_METADATA', 'The "metadata" field must be a JSON object');
      }
      metadata = parsed as Record<string, unknown>;
    } else if (part.fieldname === 'note') {
      note = Buffer.from(String(part.value), 'utf8');
    } else if (part.fieldname === 'pipeline') {
      pipeline = String(part.value);
    } else {
      throw new AppError('INVALID_REQUEST', `Unknown field "${part.fieldname}"; send "image", "note", "metadata" and "pipeline" only`);
    }
  }
  if (!bytes) throw new AppError('MISSING_FILE', 'No file in the "image" field');
  return { bytes, metadata, pipeline, note };
}
