import { inflateRawSync } from 'node:zlib';
import { AppError } from '../core/errors.ts';
import { describeTransferSyntax, TRANSFER_SYNTAXES } from './uids.ts';

// The structural check every DICOM upload passes before any library reads it. It walks the whole
// element tree itself (PS3.5 §7: tags, VRs, lengths, sequences, items, encapsulated fragments) and
// refuses, with a specific code, what would make a parser misbehave: a length past the end of the file
// or of the value holding it, an item that never closes, nesting deeper than `maxDepth`, more than
// `maxElements` elements, a deflated data set that inflates past `maxBytes`, or a walk that outlives
// its deadline. Only a file that passes is handed to dicom-parser (parse.ts), and the walk follows the
// same rules dicom-parser applies (implicit VR sequences are recognised by the item tag that follows,
// UN of undefined length holds implicit VR items), so what the library will traverse is what was checked.
//
// Time limit: the walk and every pixel loop check a Deadline. Library and codec calls cannot be
// interrupted, but they only ever see input whose structure and declared sizes were checked first, so
// their work is linear in bytes and pixels that are already bounded. A worker thread would add a hard
// stop at the price of a copy of every file and a second copy of each codec per worker; the deadline
// in our own loops covers everything whose cost the file can inflate.

export interface DicomLimits {
  /** Largest rows × columns × frames decoded (DXFLOW_LIMITS_MAX_PIXELS). */
  maxPixels: number;
  /** Largest size a deflated data set may inflate to, in bytes (DXFLOW_LIMITS_MAX_BYTES; default 64 MiB). */
  maxBytes?: number;
  /** Most elements, items and fragments in the whole file (default 500,000). */
  maxElements?: number;
  /** Deepest sequence nesting (default 32). */
  maxDepth?: number;
  /** Longest a parse plus one frame's decode may take, in milliseconds (default 10,000). */
  timeoutMs?: number;
}

export const DICOM_LIMIT_DEFAULTS = {
  maxBytes: 64 * 1024 * 1024,
  // An enhanced multi-frame CT or MR of a few thousand frames carries ~100 elements per frame in its
  // functional groups; half a million leaves room for that, and bounds the objects a parser builds.
  maxElements: 500_000,
  // No real data set nests sequences this deep (SR content trees, the deepest, stay well under 20).
  maxDepth: 32,
  timeoutMs: 10_000,
} as const;

const count = new Intl.NumberFormat('en-US');

/** A point in time after which reading the file stops with DICOM_TOO_COMPLEX. */
export class Deadline {
  readonly ms: number;
  private readonly at: number;

  constructor(ms: number) {
    this.ms = ms;
    this.at = performance.now() + ms;
  }

  check(while_: string): void {
    if (performance.now() > this.at) {
      throw new AppError(
        'DICOM_TOO_COMPLEX',
        `Reading the DICOM file took longer than ${count.format(this.ms)} ms (stopped while ${while_}); the file is built to be expensive to read, or far larger than an image needs. Re-export it from the source system.`,
        { details: { timeoutMs: this.ms } },
      );
    }
  }
}

export function tagText(tag: number): string {
  const hex = tag.toString(16).toUpperCase().padStart(8, '0');
  return `(${hex.slice(0, 4)},${hex.slice(4)})`;
}

export interface Fragment {
  /** Where the fragment's bytes start in GuardedDicom.bytes. */
  offset: number;
  length: number;
}

/** Where the top-level Pixel Data (7FE0,0010) is. */
export interface PixelDataLocation {
  vr: string | undefined;
  /** Where the value starts (native), or where the first item starts (encapsulated). */
  valueOffset: number;
  /** The declared length of a native value; undefined for encapsulated pixel data. */
  length: number | undefined;
  /** Encapsulated pixel data, when the walk went past the header: PS3.5 A.4 Basic Offset Table and fragments. */
  basicOffsetTable?: number[];
  fragments?: Fragment[];
}

export interface GuardedDicom {
  transferSyntaxUid: string;
  /**
   * The bytes to parse: the file itself or, for a deflated data set, the file meta information followed
   * by the inflated data set, with the meta's transfer syntax rewritten to Explicit VR Little Endian so
   * a parser reads it as such. Every offset reported here is into these bytes.
   */
  bytes: Uint8Array;
  deflated: boolean;
  littleEndian: boolean;
  explicitVr: boolean;
  /** Where the data set starts, after the file meta information group. */
  dataSetOffset: number;
  /** Elements, items and fragments walked. */
  elements: number;
  /** Deepest sequence nesting seen (0: none). */
  depth: number;
  pixelData?: PixelDataLocation;
  /** (7FE0,0008) Float Pixel Data or (7FE0,0009) Double Float Pixel Data at the top level. */
  floatPixelData: boolean;
  /** (7FE0,0001) Extended Offset Table and (7FE0,0002) its lengths: 64-bit values (PS3.3 C.7.6.3.1.8). */
  extendedOffsetTable?: { offsets: ValueLocation; lengths: ValueLocation | undefined };
  /**
   * The first top-level element with a 64-bit VR (OV, SV, UV), which dicom-parser reads with a 16-bit
   * length: the parser must stop before it. Such elements sit in groups 7FE0 and later in practice.
   */
  parserStopTag?: number;
}

export interface ValueLocation {
  valueOffset: number;
  length: number;
}

export type GuardMode = 'header' | 'full';

const PREAMBLE_LENGTH = 128;
const UNDEFINED_LENGTH = 0xffffffff;
const TAG_TRANSFER_SYNTAX_UID = 0x00020010;
const TAG_PIXEL_DATA = 0x7fe00010;
const TAG_FLOAT_PIXEL_DATA = 0x7fe00008;
const TAG_DOUBLE_FLOAT_PIXEL_DATA = 0x7fe00009;
const TAG_EXTENDED_OFFSET_TABLE = 0x7fe00001;
const TAG_EXTENDED_OFFSET_TABLE_LENGTHS = 0x7fe00002;
const TAG_ITEM = 0xfffee000;
const TAG_ITEM_DELIMITATION = 0xfffee00d;
const TAG_SEQUENCE_DELIMITATION = 0xfffee0dd;
const EXPLICIT_VR_LITTLE_ENDIAN = '1.2.840.10008.1.2.1';

/** PS3.5 §6.2: the value representations; LONG_FORM_VRS use a 32-bit length (§7.1.2). */
const VRS = new Set(['AE', 'AS', 'AT', 'CS', 'DA', 'DS', 'DT', 'FL', 'FD', 'IS', 'LO', 'LT', 'OB', 'OD', 'OF', 'OL', 'OV', 'OW', 'PN', 'SH', 'SL', 'SQ', 'SS', 'ST', 'SV', 'TM', 'UC', 'UI', 'UL', 'UN', 'UR', 'US', 'UT', 'UV']);
const LONG_FORM_VRS = new Set(['OB', 'OD', 'OF', 'OL', 'OV', 'OW', 'SQ', 'SV', 'UC', 'UN', 'UR', 'UT', 'UV']);
/** The 64-bit VRs added in 2019; dicom-parser reads them with a 16-bit length and would misread the rest. */
const UNREAD_VRS = new Set(['OV', 'SV', 'UV']);
/** Longest transfer syntax UID value read (PS3.5 Table 6.2-1: UI is at most 64 bytes). */
const MAX_UID_VALUE = 1024;

interface ElementHeader {
  tag: number;
  vr: string | undefined;
  length: number;
  at: number;
  valueOffset: number;
}

function corrupt(message: string, details?: Record<string, unknown>): AppError {
  return new AppError('CORRUPT_IMAGE', message, details ? { details } : {});
}

const isPrivate = (tag: number): boolean => ((tag >>> 16) & 1) === 1;

class Walker {
  readonly bytes: Uint8Array;
  readonly view: DataView;
  readonly little: boolean;
  readonly mode: GuardMode;
  readonly maxElements: number;
  readonly maxDepth: number;
  readonly deadline: Deadline;
  elements = 0;
  deepest = 0;
  pixelData: PixelDataLocation | undefined;
  floatPixelData = false;
  extendedOffsets: ValueLocation | undefined;
  extendedLengths: ValueLocation | undefined;
  parserStopTag: number | undefined;

  constructor(bytes: Uint8Array, little: boolean, mode: GuardMode, limits: Required<Omit<DicomLimits, 'maxPixels' | 'maxBytes' | 'timeoutMs'>>, deadline: Deadline) {
    this.bytes = bytes;
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.little = little;
    this.mode = mode;
    this.maxElements = limits.maxElements;
    this.maxDepth = limits.maxDepth;
    this.deadline = deadline;
  }

  /** Counts one element, item or fragment against the limit, and looks at the clock now and then. */
  count(at: number): void {
    this.elements++;
    if (this.elements > this.maxElements) {
      throw new AppError(
        'DICOM_TOO_COMPLEX',
        `The DICOM file holds more than ${count.format(this.maxElements)} elements, items and fragments (the limit was reached at byte ${count.format(at)}); no image needs that many. Re-export the image without the extra data.`,
        { details: { maxElements: this.maxElements } },
      );
    }
    if ((this.elements & 0xff) === 0) this.deadline.check(`walking element ${count.format(this.elements)} at byte ${count.format(at)}`);
  }

  /**
   * Requires `length` bytes at `at` inside a value that ends at `end`. Past the end of the file is
   * truncation; past the end of the enclosing value, with the file going on, is damage.
   */
  need(at: number, length: number, end: number, what: string): void {
    if (at + length <= end) return;
    if (at + length > this.bytes.length) throw new AppError('TRUNCATED_IMAGE', `The DICOM file ends at byte ${this.bytes.length}, inside ${what}.`);
    throw corrupt(`DICOM data at byte ${at} (${what}) runs past the end of the value that holds it (byte ${end}).`);
  }

  tagAt(at: number): number {
    return ((this.view.getUint16(at, this.little) << 16) | this.view.getUint16(at + 2, this.little)) >>> 0;
  }

  /** PS3.5 §7.1: tag, VR and length. Item and delimitation tags never carry a VR (§7.5). */
  header(at: number, explicitVr: boolean, end: number): ElementHeader {
    this.need(at, 8, end, 'an element header');
    const tag = this.tagAt(at);
    if (!explicitVr || tag >>> 16 === 0xfffe) return { tag, vr: undefined, length: this.view.getUint32(at + 4, this.little), at, valueOffset: at + 8 };
    const vr = String.fromCharCode(this.bytes[at + 4] ?? 0, this.bytes[at + 5] ?? 0);
    if (!VRS.has(vr)) {
      throw corrupt(`DICOM element ${tagText(tag)} at byte ${at} has an invalid value representation ${JSON.stringify(vr)}; the file is not valid explicit VR DICOM.`);
    }
    if (LONG_FORM_VRS.has(vr)) {
      this.need(at, 12, end, `the header of element ${tagText(tag)}`);
      return { tag, vr, length: this.view.getUint32(at + 8, this.little), at, valueOffset: at + 12 };
    }
    return { tag, vr, length: this.view.getUint16(at + 6, this.little), at, valueOffset: at + 8 };
  }

  /**
   * The end of a defined-length value, refusing one that claims more bytes than its container holds.
   * Past the end of the file that is damage for an element (a wrong length: the existing convention,
   * which dcmtk shares) but truncation for pixel data, whose declared size is known to be right.
   */
  valueEnd(element: ElementHeader, end: number, pixelData = false): number {
    const valueEnd = element.valueOffset + element.length;
    if (pixelData && valueEnd > this.bytes.length && end >= this.bytes.length) {
      throw new AppError('TRUNCATED_IMAGE', `The DICOM file ends at byte ${this.bytes.length}, inside a fragment of its Pixel Data (${element.length} bytes from byte ${element.valueOffset}).`);
    }
    if (valueEnd > end) {
      const room = end - element.valueOffset;
      const where = end >= this.bytes.length ? 'in the file' : 'in the item that holds it';
      throw corrupt(
        `DICOM element ${tagText(element.tag)} at byte ${element.valueOffset} declares ${element.length} bytes but only ${Math.max(0, room)} remain ${where}.`,
        { tag: tagText(element.tag), declared: element.length, remaining: Math.max(0, room) },
      );
    }
    return valueEnd;
  }

  private nest(depth: number, element: ElementHeader): void {
    if (depth > this.maxDepth) {
      throw corrupt(`DICOM sequences are nested more than ${this.maxDepth} deep at element ${tagText(element.tag)} (byte ${element.at}); no real data set nests that deep.`);
    }
    if (depth > this.deepest) this.deepest = depth;
  }

  /**
   * Walks the elements of a data set from `start` to `end`. `context` is where the data set is: the
   * top level, an item of defined length (ends exactly at `end`) or an item of undefined length (ends
   * at its Item Delimitation Item, which must come before `end`). Returns where the walk stopped.
   */
  dataSet(start: number, end: number, explicitVr: boolean, depth: number, context: 'top' | 'item' | { undefinedItemAt: number }): number {
    let at = start;
    while (at < end) {
      const element = this.header(at, explicitVr, end);
      this.count(at);
      if (element.tag === TAG_ITEM_DELIMITATION) {
        if (typeof context === 'object') return element.valueOffset;
        throw corrupt(`DICOM Item Delimitation Item at byte ${at} is outside any item of undefined length.`);
      }
      if (element.tag >>> 16 === 0xfffe) throw corrupt(`DICOM item tag ${tagText(element.tag)} at byte ${at} is outside any sequence.`);
      if (element.vr !== undefined && UNREAD_VRS.has(element.vr)) {
        if (context !== 'top') {
          throw new AppError(
            'DICOM_PIXELS_UNSUPPORTED',
            `DICOM element ${tagText(element.tag)} at byte ${at}, inside a sequence, has value representation ${element.vr} (64-bit, added in 2019), which the DICOM reader does not read; convert the file (e.g. with dcmconv) before sending it.`,
          );
        }
        this.parserStopTag ??= element.tag;
        const location = { valueOffset: element.valueOffset, length: element.length };
        if (element.tag === TAG_EXTENDED_OFFSET_TABLE) this.extendedOffsets = location;
        if (element.tag === TAG_EXTENDED_OFFSET_TABLE_LENGTHS) this.extendedLengths = location;
      }
      if (context === 'top') {
        // Groups 0000 (commands) and 0001 do not belong in a data set (PS3.5 §7.1, §7.8.1); right after
        // the file meta a parser would take them for more meta information.
        if (element.tag >>> 16 < 0x0002) throw corrupt(`DICOM element ${tagText(element.tag)} at byte ${at} is in group ${tagText(element.tag).slice(1, 5)}, which a data set may not use.`);
        if (element.tag === TAG_FLOAT_PIXEL_DATA || element.tag === TAG_DOUBLE_FLOAT_PIXEL_DATA) this.floatPixelData = true;
        if (element.tag === TAG_PIXEL_DATA) {
          const after = this.topLevelPixelData(element, explicitVr);
          if (after === undefined) return at;
          at = after;
          continue;
        }
      }
      at = this.value(element, explicitVr, end, depth);
    }
    if (typeof context === 'object') {
      const what = `an item of undefined length that starts at byte ${context.undefinedItemAt} and has no Item Delimitation Item`;
      if (end >= this.bytes.length) throw new AppError('TRUNCATED_IMAGE', `The DICOM file ends at byte ${this.bytes.length}, inside ${what}.`);
      throw corrupt(`DICOM ${what} before the end of the value that holds it (byte ${end}).`);
    }
    return at;
  }

  /** Skips or descends into one element's value; returns the offset after it. */
  private value(element: ElementHeader, explicitVr: boolean, end: number, depth: number): number {
    const { tag, vr } = element;
    if (element.length === UNDEFINED_LENGTH) {
      if (explicitVr) {
        if (vr === 'SQ') return this.undefinedLengthSequence(element, true, end, depth + 1);
        if (vr === 'UN') {
          // PS3.5 §6.2.2: an UN value of undefined length is a sequence in implicit VR little endian,
          // which a big endian data set cannot hold as such.
          if (!this.little) throw corrupt(`DICOM element ${tagText(tag)} (UN) has an undefined length in a big endian data set, where its implicit VR little endian content cannot be read.`);
          return this.undefinedLengthSequence(element, false, end, depth + 1);
        }
        if (tag === TAG_PIXEL_DATA && (vr === 'OB' || vr === 'OW')) return this.encapsulated(element, end).end;
        throw corrupt(`DICOM element ${tagText(tag)} (${vr}) at byte ${element.at} has an undefined length, which only SQ, UN and encapsulated Pixel Data may have.`);
      }
      if (tag === TAG_PIXEL_DATA) throw corrupt(`DICOM Pixel Data at byte ${element.at} has an undefined (encapsulated) length in an implicit VR data set; PS3.5 A.4 requires explicit VR for encapsulated pixel data.`);
      this.need(element.valueOffset, 4, end, `the value of element ${tagText(tag)}`);
      const next = this.tagAt(element.valueOffset);
      if (next === TAG_ITEM || next === TAG_SEQUENCE_DELIMITATION) return this.undefinedLengthSequence(element, false, end, depth + 1);
      throw corrupt(`DICOM element ${tagText(tag)} at byte ${element.at} has an undefined length but is not a sequence (no item follows it).`);
    }
    const valueEnd = this.valueEnd(element, end);
    if (explicitVr && vr === 'SQ') {
      this.definedLengthSequence(element, true, valueEnd, depth + 1);
    } else if (!explicitVr && element.length > 0 && !isPrivate(tag) && element.valueOffset + 4 <= this.bytes.length) {
      // Implicit VR has no VR to say what is a sequence; dicom-parser (and dcmtk without a dictionary)
      // treat a non-private value that starts with an item or sequence delimiter tag as one.
      const next = this.tagAt(element.valueOffset);
      if (next === TAG_ITEM || next === TAG_SEQUENCE_DELIMITATION) this.definedLengthSequence(element, false, valueEnd, depth + 1);
    }
    return valueEnd;
  }

  /** A sequence of undefined length: items until a Sequence Delimitation Item (PS3.5 §7.5.2). */
  private undefinedLengthSequence(element: ElementHeader, explicitVr: boolean, end: number, depth: number): number {
    this.nest(depth, element);
    const what = `sequence ${tagText(element.tag)} that starts at byte ${element.at}, before its Sequence Delimitation Item`;
    let at = element.valueOffset;
    for (;;) {
      this.need(at, 8, end, what);
      const item = this.header(at, false, end);
      this.count(at);
      if (item.tag === TAG_SEQUENCE_DELIMITATION) return item.valueOffset;
      if (item.tag !== TAG_ITEM) {
        throw corrupt(`Expected a DICOM item or sequence delimiter at byte ${at} inside ${tagText(element.tag)}, found ${tagText(item.tag)}.`);
      }
      at = this.item(item, explicitVr, end, depth);
    }
  }

  /** A sequence of defined length: items filling exactly [valueOffset, end). */
  private definedLengthSequence(element: ElementHeader, explicitVr: boolean, end: number, depth: number): void {
    this.nest(depth, element);
    let at = element.valueOffset;
    while (at < end) {
      const item = this.header(at, false, end);
      this.count(at);
      if (item.tag !== TAG_ITEM) {
        throw corrupt(`Expected a DICOM item at byte ${at} inside sequence ${tagText(element.tag)} of defined length, found ${tagText(item.tag)}.`);
      }
      at = this.item(item, explicitVr, end, depth);
    }
  }

  private item(item: ElementHeader, explicitVr: boolean, end: number, depth: number): number {
    if (item.length === UNDEFINED_LENGTH) return this.dataSet(item.valueOffset, end, explicitVr, depth, { undefinedItemAt: item.at });
    const itemEnd = this.valueEnd(item, end);
    this.dataSet(item.valueOffset, itemEnd, explicitVr, depth, 'item');
    return itemEnd;
  }

  /**
   * Encapsulated pixel data (PS3.5 A.4): a Basic Offset Table item, one item per fragment, then a
   * Sequence Delimitation Item. Fragments are opaque here; the codecs check what is inside them.
   */
  encapsulated(element: ElementHeader, end: number): { end: number; basicOffsetTable: number[]; fragments: Fragment[] } {
    const what = `the encapsulated Pixel Data that starts at byte ${element.at}, before its Sequence Delimitation Item`;
    let at = element.valueOffset;
    this.need(at, 8, end, what);
    const table = this.header(at, false, end);
    this.count(at);
    if (table.tag !== TAG_ITEM || table.length === UNDEFINED_LENGTH || table.length % 4 !== 0) {
      throw corrupt(`DICOM encapsulated Pixel Data at byte ${element.at} does not start with a Basic Offset Table item of a length divisible by 4 (PS3.5 A.4).`);
    }
    const tableEnd = this.valueEnd(table, end, true);
    const basicOffsetTable: number[] = [];
    for (let p = table.valueOffset; p < tableEnd; p += 4) basicOffsetTable.push(this.view.getUint32(p, this.little));
    at = tableEnd;
    const fragments: Fragment[] = [];
    for (;;) {
      this.need(at, 8, end, what);
      const item = this.header(at, false, end);
      this.count(at);
      if (item.tag === TAG_SEQUENCE_DELIMITATION) return { end: item.valueOffset, basicOffsetTable, fragments };
      if (item.tag !== TAG_ITEM || item.length === UNDEFINED_LENGTH) {
        throw corrupt(`DICOM encapsulated Pixel Data has ${item.tag === TAG_ITEM ? 'a fragment of undefined length' : `tag ${tagText(item.tag)}`} at byte ${at}, where a fragment item or the sequence delimiter must be.`);
      }
      at = this.valueEnd(item, end, true);
      fragments.push({ offset: item.valueOffset, length: item.length });
    }
  }

  /**
   * The top-level Pixel Data. In header mode the walk stops here (returns undefined), so reading a
   * header never costs more than the header; in full mode the value is checked against the file.
   */
  private topLevelPixelData(element: ElementHeader, explicitVr: boolean): number | undefined {
    const native = element.length !== UNDEFINED_LENGTH;
    if (!native && (!explicitVr || (element.vr !== 'OB' && element.vr !== 'OW'))) return this.value(element, explicitVr, this.bytes.length, 0);
    if (this.mode === 'header') {
      this.pixelData = { vr: element.vr, valueOffset: element.valueOffset, length: native ? element.length : undefined };
      return undefined;
    }
    if (native) {
      const end = element.valueOffset + element.length;
      if (end > this.bytes.length) {
        throw new AppError('TRUNCATED_IMAGE', `The DICOM file ends at byte ${this.bytes.length}, inside its Pixel Data (${element.length} bytes from byte ${element.valueOffset}).`);
      }
      this.pixelData = { vr: element.vr, valueOffset: element.valueOffset, length: element.length };
      return end;
    }
    const { end, basicOffsetTable, fragments } = this.encapsulated(element, this.bytes.length);
    this.pixelData = { vr: element.vr, valueOffset: element.valueOffset, length: undefined, basicOffsetTable, fragments };
    return end;
  }
}

/** Whether the bytes start like a DICOM Part 10 file: a 128-byte preamble and "DICM". */
export function hasPart10Prefix(bytes: Uint8Array): boolean {
  return bytes.length >= PREAMBLE_LENGTH + 4 && bytes[128] === 0x44 && bytes[129] === 0x49 && bytes[130] === 0x43 && bytes[131] === 0x4d;
}

/**
 * Checks the structure of a DICOM Part 10 file against the limits and returns where everything is.
 * `header` stops at the top-level Pixel Data (for inspecting uploads); `full` walks every element,
 * item and fragment to the end of the file (before decoding pixels).
 */
export function guardDicom(bytes: Uint8Array, limits: DicomLimits, mode: GuardMode, deadline = new Deadline(limits.timeoutMs ?? DICOM_LIMIT_DEFAULTS.timeoutMs)): GuardedDicom {
  if (bytes.length < PREAMBLE_LENGTH + 4) {
    throw new AppError('TRUNCATED_IMAGE', `The DICOM file ends at byte ${bytes.length}, before its 128-byte preamble and "DICM" prefix; send the complete Part 10 file.`);
  }
  if (!hasPart10Prefix(bytes)) {
    throw corrupt('The file has no "DICM" prefix after the 128-byte preamble; it is not a DICOM Part 10 file (a bare data set must be written as Part 10 first, e.g. with dcmconv).');
  }
  const walkLimits = { maxElements: limits.maxElements ?? DICOM_LIMIT_DEFAULTS.maxElements, maxDepth: limits.maxDepth ?? DICOM_LIMIT_DEFAULTS.maxDepth };
  const meta = new Walker(bytes, true, mode, walkLimits, deadline);

  // PS3.10 §7.1: the File Meta Information (group 0002) is always explicit VR little endian. The group
  // ends at the first tag outside group 0002, which holds whether or not the group length is right.
  let at = PREAMBLE_LENGTH + 4;
  let transferSyntax: { uid: string; valueOffset: number; length: number } | undefined;
  while (at < bytes.length) {
    meta.need(at, 4, bytes.length, 'an element tag');
    if (meta.tagAt(at) >>> 16 !== 0x0002) break;
    const element = meta.header(at, true, bytes.length);
    meta.count(at);
    if (element.vr === 'SQ' || (element.vr !== undefined && UNREAD_VRS.has(element.vr))) {
      throw corrupt(`DICOM file meta element ${tagText(element.tag)} has value representation ${element.vr}, which PS3.10 §7.1 does not use there.`);
    }
    if (element.length === UNDEFINED_LENGTH) {
      throw corrupt(`DICOM file meta element ${tagText(element.tag)} has an undefined length, which PS3.10 §7.1 does not allow.`);
    }
    const end = meta.valueEnd(element, bytes.length);
    if (element.tag === TAG_TRANSFER_SYNTAX_UID) {
      if (element.length > MAX_UID_VALUE) throw corrupt(`DICOM TransferSyntaxUID (0002,0010) is ${element.length} bytes long, far more than a UID (64 bytes).`);
      // Values are padded to even length with a NUL (PS3.5 §6.2); some writers pad with a space.
      const uid = Buffer.from(bytes.buffer, bytes.byteOffset + element.valueOffset, element.length).toString('latin1').replace(/[\0 ]+$/, '').replace(/^ +/, '');
      transferSyntax = { uid, valueOffset: element.valueOffset, length: element.length };
    }
    at = end;
  }
  if (!transferSyntax || transferSyntax.uid === '') {
    throw corrupt('The DICOM file meta information has no TransferSyntaxUID (0002,0010), so its data set cannot be read.');
  }
  const uid = transferSyntax.uid;
  const encoding = TRANSFER_SYNTAXES[uid]?.dataSet ?? 'explicit-le';
  if (encoding === 'jpip-deflated') {
    throw new AppError(
      'DICOM_PIXELS_UNSUPPORTED',
      `DICOM transfer syntax ${describeTransferSyntax(uid)} refers to pixel data on a JPIP server instead of carrying it; send the image itself (e.g. Explicit VR Little Endian).`,
      { details: { transferSyntaxUid: uid } },
    );
  }

  const dataSetOffset = at;
  let data = bytes;
  if (encoding === 'deflated-le') {
    const inflated = inflateDataSet(bytes.subarray(dataSetOffset), limits.maxBytes ?? DICOM_LIMIT_DEFAULTS.maxBytes);
    data = new Uint8Array(dataSetOffset + inflated.length);
    data.set(bytes.subarray(0, dataSetOffset));
    data.set(inflated, dataSetOffset);
    // The parser is given the inflated data set as what it now is: explicit VR little endian.
    const value = Buffer.alloc(transferSyntax.length);
    value.write(EXPLICIT_VR_LITTLE_ENDIAN, 'latin1');
    data.set(value, transferSyntax.valueOffset);
  }
  const littleEndian = encoding !== 'explicit-be';
  const explicitVr = encoding !== 'implicit-le';
  if (explicitVr && dataSetOffset + 6 <= data.length && !VRS.has(String.fromCharCode(data[dataSetOffset + 4] ?? 0, data[dataSetOffset + 5] ?? 0))) {
    throw corrupt(
      `The DICOM data set has no valid value representation in its first element (byte ${dataSetOffset}) although transfer syntax ${describeTransferSyntax(uid)} says it is explicit VR; it is probably implicit VR under the wrong transfer syntax. Re-write the file with a tool that fixes this (e.g. dcmconv) before sending it.`,
    );
  }
  const walker = new Walker(data, littleEndian, mode, walkLimits, deadline);
  walker.elements = meta.elements;
  walker.dataSet(dataSetOffset, data.length, explicitVr, 0, 'top');
  const result: GuardedDicom = {
    transferSyntaxUid: uid,
    bytes: data,
    deflated: encoding === 'deflated-le',
    littleEndian,
    explicitVr,
    dataSetOffset,
    elements: walker.elements,
    depth: walker.deepest,
    floatPixelData: walker.floatPixelData,
  };
  if (walker.pixelData) result.pixelData = walker.pixelData;
  if (walker.extendedOffsets) result.extendedOffsetTable = { offsets: walker.extendedOffsets, lengths: walker.extendedLengths };
  if (walker.parserStopTag !== undefined) result.parserStopTag = walker.parserStopTag;
  return result;
}

/**
 * Inflates a Deflated Explicit VR Little Endian data set (PS3.5 A.5: raw deflate, RFC 1951), stopping
 * as soon as the output passes `maxBytes`: a few kilobytes of deflate can expand a thousandfold.
 */
export function inflateDataSet(deflated: Uint8Array, maxBytes: number): Buffer {
  try {
    return inflateRawSync(deflated, { maxOutputLength: maxBytes });
  } catch (error) {
    if (error instanceof RangeError && (error as { code?: string }).code === 'ERR_BUFFER_TOO_LARGE') {
      throw new AppError(
        'DICOM_DEFLATE_BOMB',
        `The deflated DICOM data set (${count.format(deflated.length)} bytes) inflates to more than ${count.format(maxBytes)} bytes, the limit for an uncompressed upload (DXFLOW_LIMITS_MAX_BYTES); decompression was stopped there. Send the file uncompressed (Explicit VR Little Endian) if it is genuine.`,
        { cause: error, details: { deflatedBytes: deflated.length, maxBytes } },
      );
    }
    const message = error instanceof Error ? error.message : String(error);
    if (/unexpected end/i.test(message)) {
      throw new AppError('TRUNCATED_IMAGE', `The deflated DICOM data set ends before its deflate stream does (${message}); re-upload the complete file.`, { cause: error });
    }
    throw corrupt(`The deflated DICOM data set cannot be inflated (${message}); the file is damaged.`);
  }
}
