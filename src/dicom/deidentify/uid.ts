import { createHmac } from 'node:crypto';
import { AppError } from '../../core/errors.ts';

// Keyed, repeatable replacement of UIDs (PS3.15 E.1.1 action U: "replace with a non-zero length UID
// that is internally consistent within a set of Instances"). The new UID is derived from an
// HMAC-SHA256 of the original under a secret key, so:
//   - the same original UID gives the same new UID in every file and every run with the same key,
//     which keeps Study/Series/Frame of Reference UIDs and every Referenced SOP Instance UID in step
//     across the files of a study de-identified one at a time;
//   - without the key nobody can recompute the mapping from a list of candidate UIDs (a plain hash
//     could be inverted by hashing every UID of a hospital's archive);
//   - a different key gives unrelated UIDs, so two releases of the same study cannot be linked.
// The 128 bits are laid out as a UUID of version 8 (RFC 9562, custom) and written under the 2.25 root
// of ITU-T X.667 / PS3.5 B.2 as "2.25." and the UUID as one decimal integer: at most 44 characters,
// no leading zeros in any component.

/** The least key size accepted: 256 bits, the HMAC-SHA256 block strength. */
export const MIN_KEY_BYTES = 32;

/** The secret behind the UID mapping and the date shift; build it with `deidentificationKey` or `keyFromHex`. */
export interface DeidentificationKey {
  readonly bytes: Buffer;
}

export function deidentificationKey(bytes: Uint8Array, source: string): DeidentificationKey {
  if (bytes.length < MIN_KEY_BYTES) {
    throw new AppError('CONFIG_INVALID', `The de-identification key from ${source} is ${bytes.length} bytes; it must be at least ${MIN_KEY_BYTES} random bytes (for example: head -c 32 /dev/urandom > deid.key).`);
  }
  return { bytes: Buffer.from(bytes) };
}

/** Parses DXFLOW_DEID_KEY: hex digits (whitespace ignored), at least 64 of them. */
export function keyFromHex(text: string, source = 'DXFLOW_DEID_KEY'): DeidentificationKey {
  const hex = text.replace(/\s+/g, '');
  if (hex.length % 2 !== 0 || !/^[0-9a-fA-F]*$/.test(hex)) {
    throw new AppError('CONFIG_INVALID', `${source} must be hexadecimal digits (an even number of them, at least ${MIN_KEY_BYTES * 2}), for example the output of: openssl rand -hex 32`);
  }
  return deidentificationKey(Buffer.from(hex, 'hex'), source);
}

function hmac(key: DeidentificationKey, purpose: string, value: string): Buffer {
  // The purpose label keeps the UID mapping and the date shift independent even for equal inputs.
  return createHmac('sha256', key.bytes).update(purpose).update('\0').update(value, 'utf8').digest();
}

/** The original UID as compared: DICOM pads UI values with a NUL (or, wrongly, a space). */
export function normaliseUid(uid: string): string {
  return uid.replace(/[\0 ]+$/g, '').trim();
}

/** "2.25.<decimal>" for `uid` under `key`; the same inputs always give the same result. */
export function replacementUid(key: DeidentificationKey, uid: string): string {
  const digest = hmac(key, 'dxflow-deid-uid', normaliseUid(uid)).subarray(0, 16);
  const bytes = Buffer.from(digest);
  // UUID version 8 (bits 48-51 = 1000) and the RFC 9562 variant (bits 64-65 = 10).
  bytes[6] = ((bytes[6] ?? 0) & 0x0f) | 0x80;
  bytes[8] = ((bytes[8] ?? 0) & 0x3f) | 0x80;
  return `2.25.${BigInt(`0x${bytes.toString('hex')}`).toString(10)}`;
}

/**
 * Whole days, in [-365, -1], by which every date of one patient is moved (Retain Longitudinal
 * Temporal Information, Modified Dates, PS3.15 E.3.6). Derived from the key and the original Patient
 * ID, so all the files of a patient move by the same amount (intervals between studies survive) while
 * the amount itself is not in the output and cannot be recomputed without the key. Always into the
 * past, never zero: a shifted date is never the real one and never lies in the future.
 */
export function dateShiftDays(key: DeidentificationKey, patientKey: string): number {
  const digest = hmac(key, 'dxflow-deid-date-shift', patientKey);
  return -(1 + (digest.readUInt32BE(0) % 365));
}

/** PS3.5 §9.1: components of digits without leading zeros, separated by dots, at most 64 characters. */
export function isValidUid(uid: string): boolean {
  return uid.length > 0 && uid.length <= 64 && /^(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*$/.test(uid);
}
