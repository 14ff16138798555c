import { createHash, randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, open, rename, stat, unlink, type FileHandle } from 'node:fs/promises';
import { dirname, join, resolve, sep } from 'node:path';
import { Readable } from 'node:stream';
import { AppError } from '../../core/errors.ts';
import type { ObjectStore, StoredObject } from '../../core/ports.ts';

// The object store of the embedded set-up: one file per object under a root folder, the key being its
// relative path. A put writes a hidden temporary file beside the target, flushes it to disk and renames
// it over the target; rename within one folder is atomic (POSIX rename(2)), so a reader or a crash sees
// the old object or the new one, never part of one. The folder is flushed too, so the rename itself
// survives a power cut.

// Path segments of letters, digits, '.', '_' and '-', joined by '/'. A segment may not start with '.'
// (that excludes '.' and '..', and keeps hidden names free for temporary files).
const KEY = /^[A-Za-z0-9_-][A-Za-z0-9._-]*(\/[A-Za-z0-9_-][A-Za-z0-9._-]*)*$/;
const MAX_KEY_LENGTH = 1024;

// Failures worth retrying: the machine is short of a resource or the disk hiccuped.
const TRANSIENT_CODES = new Set(['EMFILE', 'ENFILE', 'EAGAIN', 'EBUSY', 'EIO', 'ETIMEDOUT', 'EINTR']);
// The key names nothing, or names a folder that only holds other objects.
const MISSING_CODES = new Set(['ENOENT', 'ENOTDIR', 'EISDIR']);

function errnoOf(e: unknown): string | undefined {
  return (e as NodeJS.ErrnoException | undefined)?.code;
}

function notFound(key: string): AppError {
  return new AppError('OBJECT_NOT_FOUND', `object ${key} not found`, { details: { key } });
}

function storageError(e: unknown, action: string, key: string): unknown {
  if (e instanceof AppError) return e;
  const code = errnoOf(e);
  const message = `Could not ${action} object ${key}: ${(e as Error).message}`;
  if (code !== undefined && TRANSIENT_CODES.has(code)) return new AppError('STORAGE_UNAVAILABLE', message, { cause: e, retryable: true });
  return new AppError('INTERNAL', message, { cause: e });
}

async function readFully(file: FileHandle, length: number, position: number): Promise<Buffer> {
  const buffer = Buffer.alloc(length);
  let filled = 0;
  while (filled < length) {
    const { bytesRead } = await file.read(buffer, filled, length - filled, position + filled);
    if (bytesRead === 0) break; // the file was shortened under us: return what is there
    filled += bytesRead;
  }
  return filled === length ? buffer : buffer.subarray(0, filled);
}

async function sha256OfFile(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

async function syncFolder(path: string): Promise<void> {
  let folder: FileHandle | undefined;
  try {
    folder = await open(path, 'r');
    await folder.sync();
  } catch (e) {
    // Some platforms (Windows) cannot open or flush a folder; the rename is then as durable as they allow.
    if (!['EISDIR', 'EPERM', 'EACCES', 'EINVAL'].includes(errnoOf(e) ?? '')) throw e;
  } finally {
    await folder?.close();
  }
}

/**
 * Writes a hidden temporary file beside path, flushes it and renames it over path, so readers and a
 * crash see the old object or the new one; the temporary file is removed when writing fails.
 */
async function writeAtomically(path: string, write: (file: FileHandle) => Promise<unknown>): Promise<void> {
  const folder = dirname(path);
  await mkdir(folder, { recursive: true, mode: 0o700 });
  const temporary = join(folder, `.${randomBytes(8).toString('hex')}.tmp`);
  try {
    // Objects hold patient data: readable by this user only.
    const file = await open(temporary, 'wx', 0o600);
    try {
      await write(file);
      await file.sync();
    } finally {
      await file.close();
    }
    await rename(temporary, path);
  } catch (e) {
    await unlink(temporary).catch(() => undefined);
    throw e;
  }
  await syncFolder(folder);
}

function putError(e: unknown, key: string): unknown {
  if (errnoOf(e) === 'ENOTDIR' || errnoOf(e) === 'EISDIR' || errnoOf(e) === 'EEXIST') {
    return new AppError('INVALID_REQUEST', `Object key ${key} clashes with an existing object or folder: one key cannot be both an object and a prefix of another.`, { cause: e });
  }
  return storageError(e, 'store', key);
}

export function createFolderStore(root: string): ObjectStore {
  const base = resolve(root);

  function pathOf(key: string): string {
    if (typeof key !== 'string' || key.length > MAX_KEY_LENGTH || !KEY.test(key)) {
      throw new AppError('INVALID_REQUEST', `Object key ${JSON.stringify(key)} is not valid: use path segments of letters, digits, '.', '_' and '-' separated by '/', none starting with '.', at most ${MAX_KEY_LENGTH} characters (e.g. cases/<caseId>/input).`);
    }
    const path = join(base, key);
    // The pattern already rules out '..' and absolute paths; this keeps that promise if it ever changes.
    if (!path.startsWith(base + sep)) throw new AppError('INVALID_REQUEST', `Object key ${JSON.stringify(key)} points outside the store.`);
    return path;
  }

  async function sizeOf(path: string): Promise<number | undefined> {
    try {
      const info = await stat(path);
      return info.isFile() ? info.size : undefined;
    } catch (e) {
      if (MISSING_CODES.has(errnoOf(e) ?? '')) return undefined;
      throw e;
    }
  }

  return {
    async put(key: string, data: Buffer): Promise<StoredObject> {
      const path = pathOf(key);
      const sha256 = createHash('sha256').update(data).digest('hex');
      const stored = { key, sha256, bytes: data.length };
      try {
        // The same bytes again (a retried upload, a re-run stage) leave the file, and its mtime, alone.
        if ((await sizeOf(path)) === data.length && (await sha256OfFile(path)) === sha256) return stored;
        await writeAtomically(path, (file) => file.writeFile(data));
        return stored;
      } catch (e) {
        throw putError(e, key);
      }
    },

    async putStream(key: string, source: AsyncIterable<Uint8Array>, options: { maxBytes: number }): Promise<StoredObject> {
      const path = pathOf(key);
      const hash = createHash('sha256');
      let bytes = 0;
      try {
        await writeAtomically(path, async (file) => {
          for await (const chunk of source) {
            bytes += chunk.length;
            if (bytes > options.maxBytes) {
              throw new AppError('FILE_TOO_LARGE', `The upload is larger than ${options.maxBytes} bytes, the limit for this kind of file`);
            }
            hash.update(chunk);
            await file.write(chunk);
          }
        });
        return { key, sha256: hash.digest('hex'), bytes };
      } catch (e) {
        throw putError(e, key);
      }
    },

    async get(key: string): Promise<Buffer> {
      const path = pathOf(key);
      try {
        const file = await open(path, 'r');
        try {
          return await file.readFile();
        } finally {
          await file.close();
        }
      } catch (e) {
        if (MISSING_CODES.has(errnoOf(e) ?? '')) throw notFound(key);
        throw storageError(e, 'read', key);
      }
    },

    async getRange(key: string, start: number, end: number): Promise<Buffer> {
      const path = pathOf(key);
      if (!Number.isSafeInteger(start) || !Number.isSafeInteger(end) || start < 0 || end < start) {
        throw new AppError('INVALID_REQUEST', `Byte range [${start}, ${end}) of object ${key} is not valid: need whole numbers with 0 <= start <= end.`);
      }
      try {
        const file = await open(path, 'r');
        try {
          const { size } = await file.stat();
          if (start > size) {
            throw new AppError('INVALID_REQUEST', `Byte range [${start}, ${end}) starts past the end of object ${key} (${size} bytes).`);
          }
          // Like an HTTP or S3 range request, a range running past the end returns the bytes there are.
          return await readFully(file, Math.min(end, size) - start, start);
        } finally {
          await file.close();
        }
      } catch (e) {
        if (MISSING_CODES.has(errnoOf(e) ?? '')) throw notFound(key);
        throw storageError(e, 'read', key);
      }
    },

    stream(key: string): Readable {
      const path = pathOf(key);
      // Opened lazily by the first read; a missing object arrives as the stream's error, as an AppError.
      return Readable.from((async function* () {
        let file: FileHandle;
        try {
          file = await open(path, 'r');
        } catch (e) {
          if (MISSING_CODES.has(errnoOf(e) ?? '')) throw notFound(key);
          throw storageError(e, 'read', key);
        }
        try {
          for await (const chunk of file.createReadStream({ autoClose: false })) yield chunk as Buffer;
        } catch (e) {
          throw storageError(e, 'read', key);
        } finally {
          await file.close();
        }
      })(), { objectMode: false });
    },

    async head(key: string): Promise<{ bytes: number } | undefined> {
      const path = pathOf(key);
      try {
        const bytes = await sizeOf(path);
        return bytes === undefined ? undefined : { bytes };
      } catch (e) {
        throw storageError(e, 'inspect', key);
      }
    },

    async delete(key: string): Promise<void> {
      const path = pathOf(key);
      try {
        await unlink(path);
      } catch (e) {
        // Deleting what is not there is done already. Emptied folders are left in place: removing
        // them would race with a put into the same folder.
        if (MISSING_CODES.has(errnoOf(e) ?? '')) return;
        throw storageError(e, 'delete', key);
      }
    },
  };
}
