import type { FastifyRequest } from 'fastify';
import { AppError } from '../../../core/errors.ts';

export interface ParsedUpload<F = Buffer> {
  /** The image: its bytes, or what `storeFile` made of the stream. */
  file: F;
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
export async function readUpload(request: FastifyRequest): Promise<ParsedUpload>;
export async function readUpload<F>(request: FastifyRequest, options: { storeFile(stream: AsyncIterable<Uint8Array>): Promise<F>; discard(file: F): Promise<void>; maxFileBytes: number }): Promise<ParsedUpload<F>>;
/**
 * With `storeFile`, the image is streamed to it (straight into the object store: a whole slide of many
 * gigabytes is never held in memory) instead of being buffered, and `discard` removes it again when the
 * rest of the request turns out to be bad.
 */
export async function readUpload<F>(
  request: FastifyRequest,
  options?: { storeFile(stream: AsyncIterable<Uint8Array>): Promise<F>; discard(file: F): Promise<void>; maxFileBytes: number },
): Promise<ParsedUpload<F | Buffer>> {
  let file: F | Buffer | undefined;
  try {
    return await readParts(request, options, (f) => { file = f; });
  } catch (e) {
    if (file !== undefined && options && !Buffer.isBuffer(file)) await options.discard(file).catch(() => undefined);
    throw e;
  }
}

async function readParts<F>(
  request: FastifyRequest,
  options: { storeFile(stream: AsyncIterable<Uint8Array>): Promise<F>; maxFileBytes: number } | undefined,
  onFile: (file: F | Buffer) => void,
): Promise<ParsedUpload<F | Buffer>> {
  if (!request.isMultipart()) {
    throw new AppError('MISSING_FILE', 'The request must be multipart/form-data with the image in a field named "image"');
  }
  let file: F | Buffer | undefined;
  let metadata: Record<string, unknown> = {};
  let pipeline: string | undefined;
  let note: Buffer | undefined;
  for await (const part of request.parts(options ? { limits: { fileSize: options.maxFileBytes } } : {})) {
    if (part.type === 'file' && part.fieldname === 'note') {
      note = await part.toBuffer();
    } else if (part.type === 'file') {
      if (part.fieldname !== 'image') {
        await part.toBuffer();
        throw new AppError('MISSING_FILE', `Unexpected file field "${part.fieldname}"; name the file field "image"`);
      }
      if (file !== undefined) throw new AppError('INVALID_REQUEST', 'Send one file in the "image" field, not several');
      file = options ? await options.storeFile(part.file) : await part.toBuffer();
      onFile(file);
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
  if (file === undefined) throw new AppError('MISSING_FILE', 'No file in the "image" field');
  return { file, metadata, pipeline, note };
}
