import { inflateRawSync } from 'node:zlib';
import { AppError } from '../../core/errors.ts';

// Reads the four UIDs that identify a received instance (SOP class, SOP instance, study, series) from a
// data set in any standard transfer syntax, and checks that the data set is well formed from its first
// element to its last. The bytes come from the network (a C-STORE or a STOW-RS part), so every length is
// checked against the bytes that are there before it is used. The values are never copied or re-encoded:
// the received bytes stay the stored bytes.

export interface InstanceIdentity {
  sopClassUid: string;
  sopInstanceUid: string;
  studyInstanceUid: string;
  seriesInstanceUid: string;
}

export const TS = {
  implicitLittle: '1.2.840.10008.1.2',
  explicitLittle: '1.2.840.10008.1.2.1',
  deflatedExplicitLittle: '1.2.840.10008.1.2.1.99',
  explicitBig: '1.2.840.10008.1.2.2',
  jpegBaseline: '1.2.840.10008.1.2.4.50',
  jpegExtended: '1.2.840.10008.1.2.4.51',
  jpegLossless: '1.2.840.10008.1.2.4.57',
  jpegLosslessSv1: '1.2.840.10008.1.2.4.70',
  jpegLsLossless: '1.2.840.10008.1.2.4.80',
  jpegLsNearLossless: '1.2.840.10008.1.2.4.81',
  jpeg2000Lossless: '1.2.840.10008.1.2.4.90',
  jpeg2000: '1.2.840.10008.1.2.4.91',
  rleLossless: '1.2.840.10008.1.2.5',
} as const;

const TAG_SOP_CLASS_UID = 0x00080016;
const TAG_SOP_INSTANCE_UID = 0x00080018;
const TAG_STUDY_INSTANCE_UID = 0x0020000d;
const TAG_SERIES_INSTANCE_UID = 0x0020000e;
const TAG_TRANSFER_SYNTAX_UID = 0x00020010;
const TAG_ITEM = 0xfffee000;
const TAG_ITEM_DELIMITATION = 0xfffee00d;
const TAG_SEQUENCE_DELIMITATION = 0xfffee0dd;
const UNDEFINED_LENGTH = 0xffffffff;
const MAX_DEPTH = 32;

const WANTED: ReadonlyMap<number, { key: keyof InstanceIdentity; name: string }> = new Map([
  [TAG_SOP_CLASS_UID, { key: 'sopClassUid', name: 'SOPClassUID (0008,0016)' }],
  [TAG_SOP_INSTANCE_UID, { key: 'sopInstanceUid', name: 'SOPInstanceUID (0008,0018)' }],
  [TAG_STUDY_INSTANCE_UID, { key: 'studyInstanceUid', name: 'StudyInstanceUID (0020,000D)' }],
  [TAG_SERIES_INSTANCE_UID, { key: 'seriesInstanceUid', name: 'SeriesInstanceUID (0020,000E)' }],
] as const);

const VRS = new Set(['AE', 'AS', 'AT', 'CS', 'DA', 'DS', 'DT', 'FL', 'FD', 'IS', 'LO', 'LT', 'OB', 'OD', 'OF', 'OL', 'OV', 'OW', 'PN', 'SH', 'SL', 'SQ', 'SS', 'ST', 'SV', 'TM', 'UC', 'UI', 'UL', 'UN', 'UR', 'US', 'UT', 'UV']);
const LONG_FORM_VRS = new Set(['OB', 'OD', 'OF', 'OL', 'OV', 'OW', 'SQ', 'SV', 'UC', 'UN', 'UR', 'UT', 'UV']);

/** PS3.5 §9.1: digits and dots, no empty component, at most 64 characters. */
const UID_PATTERN = /^[0-9]+(\.[0-9]+)*$/;

export function isValidUid(uid: string): boolean {
  return uid.length <= 64 && UID_PATTERN.test(uid);
}

interface Encoding {
  littleEndian: boolean;
  explicitVr: boolean;
  deflated: boolean;
}

/**
 * How a transfer syntax encodes its data set (PS3.5 Annex A), or undefined for one that is not a standard
 * transfer syntax: implicit VR LE, explicit VR BE, deflated explicit VR LE, and explicit VR LE for every
 * other standard one (uncompressed and encapsulated alike, A.4).
 */
export function datasetEncoding(transferSyntaxUid: string): Encoding | undefined {
  if (transferSyntaxUid === TS.implicitLittle) return { littleEndian: true, explicitVr: false, deflated: false };
  if (transferSyntaxUid === TS.explicitBig) return { littleEndian: false, explicitVr: true, deflated: false };
  if (transferSyntaxUid === TS.deflatedExplicitLittle || transferSyntaxUid === '1.2.840.10008.1.2.4.95') {
    return { littleEndian: true, explicitVr: true, deflated: true };
  }
  if (
    transferSyntaxUid === TS.explicitLittle ||
    transferSyntaxUid === TS.rleLossless ||
    transferSyntaxUid === '1.2.840.10008.1.2.1.98' ||
    transferSyntaxUid === '1.2.840.10008.1.2.8.1' ||
    /^1\.2\.840\.10008\.1\.2\.4\.[0-9]+$/.test(transferSyntaxUid)
  ) {
    return { littleEndian: true, explicitVr: true, deflated: false };
  }
  return undefined;
}

function tagText(tag: number): string {
  const hex = tag.toString(16).toUpperCase().padStart(8, '0');
  return `(${hex.slice(0, 4)},${hex.slice(4)})`;
}

function corrupt(message: string): AppError {
  return new AppError('CORRUPT_IMAGE', message);
}

/** Element walker over one data set; `limit` is where the readable bytes end. */
class Walker {
  readonly bytes: Uint8Array;
  readonly view: DataView;
  readonly little: boolean;
  readonly found: Partial<InstanceIdentity> = {};
  /** True when the bytes are only a prefix of the data set (a partly inflated deflated one). */
  readonly prefix: boolean;

  constructor(bytes: Uint8Array, little: boolean, prefix: boolean) {
    this.bytes = bytes;
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.little = little;
    this.prefix = prefix;
  }

  need(offset: number, length: number, what: string): void {
    if (offset + length > this.bytes.length) {
      if (this.prefix) throw new NeedMoreBytes();
      throw new AppError('TRUNCATED_IMAGE', `The DICOM data set ends at byte ${this.bytes.length}, inside ${what}; the instance was cut short.`);
    }
  }

  u16(offset: number): number {
    return this.view.getUint16(offset, this.little);
  }

  u32(offset: number): number {
    return this.view.getUint32(offset, this.little);
  }

  tag(offset: number): number {
    this.need(offset, 4, 'an element tag');
    return ((this.u16(offset) << 16) | this.u16(offset + 2)) >>> 0;
  }

  /** Tag, VR and value position of the element at `offset` (PS3.5 §7.1; item tags never carry a VR, §7.5). */
  header(offset: number, explicitVr: boolean): { tag: number; vr: string | undefined; length: number; value: number } {
    const tag = this.tag(offset);
    this.need(offset, 8, `the header of element ${tagText(tag)}`);
    if (!explicitVr || tag >>> 16 === 0xfffe) return { tag, vr: undefined, length: this.u32(offset + 4), value: offset + 8 };
    const vr = String.fromCharCode(this.bytes[offset + 4] ?? 0, this.bytes[offset + 5] ?? 0);
    if (!VRS.has(vr)) throw corrupt(`DICOM element ${tagText(tag)} at byte ${offset} has an invalid value representation ${JSON.stringify(vr)}; the data set does not match its transfer syntax.`);
    if (LONG_FORM_VRS.has(vr)) {
      this.need(offset, 12, `the header of element ${tagText(tag)}`);
      return { tag, vr, length: this.u32(offset + 8), value: offset + 12 };
    }
    return { tag, vr, length: this.u16(offset + 6), value: offset + 8 };
  }

  valueEnd(tag: number, value: number, length: number): number {
    this.need(value, length, `the ${length}-byte value of ${tagText(tag)}`);
    return value + length;
  }

  /**
   * Walks the top-level elements from `start` to the end of the bytes. Returns early, once the wanted
   * UIDs are past, only when reading a prefix; a complete data set is walked to its last byte so that a
   * truncated or garbled one is refused here and not later.
   */
  walkTop(start: number, explicitVr: boolean): void {
    let offset = start;
    while (offset < this.bytes.length) {
      const el = this.header(offset, explicitVr);
      if (el.tag >>> 16 === 0xfffe) throw corrupt(`DICOM item tag ${tagText(el.tag)} at byte ${offset} is outside any sequence.`);
      // Tags ascend (PS3.5 §7.1), so in a prefix nothing wanted comes after SeriesInstanceUID.
      if (this.prefix && el.tag > TAG_SERIES_INSTANCE_UID) return;
      if (el.length === UNDEFINED_LENGTH) {
        offset = this.skipUndefined(el.tag, el.vr, el.value, explicitVr, 1);
        continue;
      }
      const end = this.valueEnd(el.tag, el.value, el.length);
      const wanted = WANTED.get(el.tag);
      if (wanted) {
        if (el.vr !== undefined && el.vr !== 'UI' && el.vr !== 'UN') throw corrupt(`DICOM ${wanted.name} has value representation ${el.vr}; it must be UI.`);
        if (el.length > 128) throw corrupt(`DICOM ${wanted.name} is ${el.length} bytes long; a UID has at most 64.`);
        const uid = Buffer.from(this.bytes.buffer, this.bytes.byteOffset + el.value, el.length).toString('latin1').replace(/[\0 ]+$/, '').replace(/^ +/, '');
        if (!isValidUid(uid)) throw corrupt(`DICOM ${wanted.name} ${JSON.stringify(uid.slice(0, 80))} is not a valid UID (digits and dots, at most 64 characters).`);
        this.found[wanted.key] = uid;
      }
      offset = end;
    }
    if (this.prefix) throw new NeedMoreBytes();
  }

  /** Skips a sequence, an UN sequence or encapsulated pixel data: items up to the sequence delimiter. */
  skipUndefined(tag: number, vr: string | undefined, start: number, explicitVr: boolean, depth: number): number {
    if (vr !== undefined && vr !== 'SQ' && vr !== 'UN' && vr !== 'OB' && vr !== 'OW') {
      throw corrupt(`DICOM element ${tagText(tag)} (${vr}) has an undefined length, which only SQ, UN, OB and OW may have.`);
    }
    if (depth > MAX_DEPTH) throw corrupt(`DICOM sequences are nested more than ${MAX_DEPTH} deep at ${tagText(tag)}.`);
    // PS3.5 §6.2.2: an UN value of undefined length holds a sequence in implicit VR little endian.
    const itemsExplicit = vr === 'UN' ? false : explicitVr;
    let offset = start;
    for (;;) {
      const item = this.header(offset, false);
      if (item.tag === TAG_SEQUENCE_DELIMITATION) return item.value;
      if (item.tag !== TAG_ITEM) throw corrupt(`Expected a DICOM item or sequence delimiter at byte ${offset} inside ${tagText(tag)}, found ${tagText(item.tag)}.`);
      offset = item.length === UNDEFINED_LENGTH ? this.skipItem(item.value, itemsExplicit, depth) : this.valueEnd(item.tag, item.value, item.length);
    }
  }

  skipItem(start: number, explicitVr: boolean, depth: number): number {
    let offset = start;
    for (;;) {
      const el = this.header(offset, explicitVr);
      if (el.tag === TAG_ITEM_DELIMITATION) return el.value;
      if (el.tag >>> 16 === 0xfffe) throw corrupt(`Expected a DICOM element or item delimiter at byte ${offset}, found ${tagText(el.tag)}.`);
      offset = el.length === UNDEFINED_LENGTH ? this.skipUndefined(el.tag, el.vr, el.value, explicitVr, depth + 1) : this.valueEnd(el.tag, el.value, el.length);
    }
  }
}

class NeedMoreBytes extends Error {}

function complete(found: Partial<InstanceIdentity>): InstanceIdentity {
  for (const { key, name } of WANTED.values()) {
    if (found[key] === undefined) throw corrupt(`The DICOM data set has no ${name}; every stored instance needs one.`);
  }
  return found as InstanceIdentity;
}

/** Inflated prefixes tried for a deflated data set, and the most it may inflate to while looking. */
const DEFLATE_PREFIXES = [64 * 1024, 1024 * 1024];
const MAX_INFLATED_PREFIX = 256 * 1024 * 1024;

/**
 * The identity of a data set (no File Meta Information) encoded in `transferSyntaxUid`. Throws
 * AppError CORRUPT_IMAGE or TRUNCATED_IMAGE when the data set is not well formed or lacks a UID, and
 * DICOM_PIXELS_UNSUPPORTED for a transfer syntax that is not a standard one.
 */
export function readDatasetIdentity(dataset: Uint8Array, transferSyntaxUid: string): InstanceIdentity {
  const encoding = datasetEncoding(transferSyntaxUid);
  if (!encoding) {
    throw new AppError('DICOM_PIXELS_UNSUPPORTED', `DICOM transfer syntax ${transferSyntaxUid} is not a standard transfer syntax, so its data set cannot be read; send it in a standard one.`);
  }
  if (!encoding.deflated) {
    const walker = new Walker(dataset, encoding.littleEndian, false);
    walker.walkTop(0, encoding.explicitVr);
    return complete(walker.found);
  }
  // A deflated data set (PS3.5 A.5) is read from a growing inflated prefix: the UIDs are near the start,
  // and inflating the whole of it only to read them would let a small upload expand without bound.
  for (const compressedLength of [...DEFLATE_PREFIXES, dataset.length]) {
    const partial = compressedLength < dataset.length;
    let inflated: Buffer;
    try {
      inflated = inflateRawSync(dataset.subarray(0, Math.min(compressedLength, dataset.length)), { finishFlush: 2 /* Z_SYNC_FLUSH */, maxOutputLength: MAX_INFLATED_PREFIX });
    } catch (e) {
      throw corrupt(`The deflated DICOM data set cannot be inflated (${(e as Error).message}).`);
    }
    // The last pass has the whole data set: it is walked to its end like an uncompressed one.
    const walker = new Walker(inflated, true, partial);
    try {
      walker.walkTop(0, true);
      return complete(walker.found);
    } catch (e) {
      if (!(e instanceof NeedMoreBytes)) throw e;
    }
    if (!partial) break;
  }
  throw new AppError('TRUNCATED_IMAGE', 'The deflated DICOM data set ends before its identifying UIDs; the instance was cut short.');
}

export interface Part10Identity extends InstanceIdentity {
  transferSyntaxUid: string;
  /** Byte offset of the data set, just after the File Meta Information. */
  datasetOffset: number;
}

/**
 * The identity of a DICOM Part 10 file (a STOW-RS part, say): its File Meta Information (explicit VR
 * little endian, PS3.10 §7.1) gives the transfer syntax, then the data set is read as above.
 */
export function readPart10Identity(bytes: Uint8Array): Part10Identity {
  if (bytes.length < 132 || Buffer.from(bytes.buffer, bytes.byteOffset + 128, 4).toString('latin1') !== 'DICM') {
    throw corrupt('The part is not a DICOM Part 10 file (no "DICM" after a 128-byte preamble); send DICOM files with their File Meta Information.');
  }
  const walker = new Walker(bytes, true, false);
  let offset = 132;
  let transferSyntaxUid: string | undefined;
  while (offset < bytes.length && walker.tag(offset) >>> 16 === 0x0002) {
    const el = walker.header(offset, true);
    if (el.length === UNDEFINED_LENGTH) throw corrupt(`DICOM file meta element ${tagText(el.tag)} has an undefined length, which PS3.10 §7.1 does not allow.`);
    const end = walker.valueEnd(el.tag, el.value, el.length);
    if (el.tag === TAG_TRANSFER_SYNTAX_UID) transferSyntaxUid = Buffer.from(bytes.buffer, bytes.byteOffset + el.value, el.length).toString('latin1').replace(/[\0 ]+$/, '').trim();
    offset = end;
  }
  if (!transferSyntaxUid) throw corrupt('The DICOM file meta information has no TransferSyntaxUID (0002,0010), so its data set cannot be read.');
  const identity = readDatasetIdentity(bytes.subarray(offset), transferSyntaxUid);
  return { ...identity, transferSyntaxUid, datasetOffset: offset };
}
