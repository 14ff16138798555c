import { open, type FileHandle } from 'node:fs/promises';
import { AppError } from '../../core/errors.ts';
import type { ObjectStore } from '../../core/ports.ts';

// Whole slides are read in place (DESIGN.md §1.1): a slide of many gigabytes is never loaded whole, only
// the byte ranges the TIFF structure points at. Everything in imaging/wsi reads through this port.

export interface ByteSource {
  /** Total length in bytes; every read is checked against it before it is issued. */
  readonly size: number;
  /** Exactly `length` bytes starting at `offset` (the caller has checked the range). */
  read(offset: number, length: number): Promise<Buffer>;
}

/** A local file, read by position through one open handle. Call close() when done. */
export interface FileByteSource extends ByteSource {
  close(): Promise<void>;
}

export async function openFileSource(path: string): Promise<FileByteSource> {
  const handle: FileHandle = await open(path, 'r');
  const { size } = await handle.stat();
  return {
    size,
    async read(offset, length) {
      const buffer = Buffer.allocUnsafe(length);
      let filled = 0;
      // A positional read may return fewer bytes than asked (e.g. on network file systems); loop until done.
      while (filled < length) {
        const { bytesRead } = await handle.read(buffer, filled, length - filled, offset + filled);
        if (bytesRead === 0) throw new AppError('TRUNCATED_IMAGE', `${path} ended at byte ${offset + filled} while reading ${length} bytes at offset ${offset}.`);
        filled += bytesRead;
      }
      return buffer;
    },
    close: () => handle.close(),
  };
}

/** An object in the object store, read by range; `size` comes from ObjectStore.head. */
export function fromObjectStore(store: ObjectStore, key: string, size: number): ByteSource {
  return {
    size,
    // getRange reads [start, end).
    read: (offset, length) => store.getRange(key, offset, offset + length),
  };
}

/** An in-memory buffer (small images, tests). */
export function fromBuffer(bytes: Buffer): ByteSource {
  return { size: bytes.length, read: async (offset, length) => bytes.subarray(offset, offset + length) };
}

/**
 * Reads a range after checking it lies inside the source. `what` names the structure being read so
 * that the error says which part of the file is damaged.
 */
export async function readRange(source: ByteSource, offset: number, length: number, what: string): Promise<Buffer> {
  if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0) {
    throw new AppError('CORRUPT_IMAGE', `The ${what} has an invalid position (offset ${offset}, length ${length}).`);
  }
  if (offset + length > source.size) {
    throw new AppError('TRUNCATED_IMAGE', `The ${what} lies at bytes ${offset}–${offset + length} but the file has only ${source.size} bytes.`);
  }
  if (length === 0) return Buffer.alloc(0);
  const bytes = await source.read(offset, length);
  if (bytes.length !== length) throw new AppError('TRUNCATED_IMAGE', `Reading the ${what} returned ${bytes.length} of ${length} bytes.`);
  return bytes;
}
