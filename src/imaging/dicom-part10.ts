import { AppError } from '../core/errors.ts';

// A small reader of DICOM Part 10 files (PS3.10 §7) that extracts the Image Pixel and VOI attributes
// needed to size and render an image, and where its Pixel Data starts. It walks the top-level data set
// element by element and stops at Pixel Data, so its cost is the size of the header, not of the pixels.
// Every declared length is checked against the bytes that are actually there before it is used: the
// input is an untrusted upload.

/** Names of the standard transfer syntaxes (PS3.6 Table A-1), for messages that say what was sent. */
const TRANSFER_SYNTAX_NAMES: Record<string, string> = {
  '1.2.840.10008.1.2': 'Implicit VR Little Endian',
  '1.2.840.10008.1.2.1': 'Explicit VR Little Endian',
  '1.2.840.10008.1.2.1.98': 'Encapsulated Uncompressed Explicit VR Little Endian',
  '1.2.840.10008.1.2.1.99': 'Deflated Explicit VR Little Endian',
  '1.2.840.10008.1.2.2': 'Explicit VR Big Endian (retired)',
  '1.2.840.10008.1.2.4.50': 'JPEG Baseline (Process 1)',
  '1.2.840.10008.1.2.4.51': 'JPEG Extended (Process 2 & 4)',
  '1.2.840.10008.1.2.4.57': 'JPEG Lossless, Non-Hierarchical (Process 14)',
  '1.2.840.10008.1.2.4.70': 'JPEG Lossless, Non-Hierarchical, First-Order Prediction (Process 14, Selection Value 1)',
  '1.2.840.10008.1.2.4.80': 'JPEG-LS Lossless',
  '1.2.840.10008.1.2.4.81': 'JPEG-LS Lossy (Near-Lossless)',
  '1.2.840.10008.1.2.4.90': 'JPEG 2000 (Lossless Only)',
  '1.2.840.10008.1.2.4.91': 'JPEG 2000',
  '1.2.840.10008.1.2.4.92': 'JPEG 2000 Part 2 Multi-component (Lossless Only)',
  '1.2.840.10008.1.2.4.93': 'JPEG 2000 Part 2 Multi-component',
  '1.2.840.10008.1.2.4.94': 'JPIP Referenced',
  '1.2.840.10008.1.2.4.95': 'JPIP Referenced Deflate',
  '1.2.840.10008.1.2.4.100': 'MPEG2 Main Profile / Main Level',
  '1.2.840.10008.1.2.4.101': 'MPEG2 Main Profile / High Level',
  '1.2.840.10008.1.2.4.102': 'MPEG-4 AVC/H.264 High Profile / Level 4.1',
  '1.2.840.10008.1.2.4.103': 'MPEG-4 AVC/H.264 BD-compatible High Profile / Level 4.1',
  '1.2.840.10008.1.2.4.104': 'MPEG-4 AVC/H.264 High Profile / Level 4.2 For 2D Video',
  '1.2.840.10008.1.2.4.105': 'MPEG-4 AVC/H.264 High Profile / Level 4.2 For 3D Video',
  '1.2.840.10008.1.2.4.106': 'MPEG-4 AVC/H.264 Stereo High Profile / Level 4.2',
  '1.2.840.10008.1.2.4.107': 'HEVC/H.265 Main Profile / Level 5.1',
  '1.2.840.10008.1.2.4.108': 'HEVC/H.265 Main 10 Profile / Level 5.1',
  '1.2.840.10008.1.2.4.110': 'JPEG XL Lossless',
  '1.2.840.10008.1.2.4.111': 'JPEG XL JPEG Recompression',
  '1.2.840.10008.1.2.4.112': 'JPEG XL',
  '1.2.840.10008.1.2.4.201': 'High-Throughput JPEG 2000 (Lossless Only)',
  '1.2.840.10008.1.2.4.202': 'High-Throughput JPEG 2000 with RPCL Options (Lossless Only)',
  '1.2.840.10008.1.2.4.203': 'High-Throughput JPEG 2000',
  '1.2.840.10008.1.2.5': 'RLE Lossless',
  '1.2.840.10008.1.2.8.1': 'Deflated Image Frame Compression',
};

export const IMPLICIT_VR_LITTLE_ENDIAN = '1.2.840.10008.1.2';
export const EXPLICIT_VR_LITTLE_ENDIAN = '1.2.840.10008.1.2.1';

/** "1.2.840.10008.1.2.4.50 (JPEG Baseline (Process 1))", or the bare UID when it is not a standard one. */
export function describeTransferSyntax(uid: string): string {
  const name = TRANSFER_SYNTAX_NAMES[uid];
  return name ? `${uid} (${name})` : `${uid} (not a standard transfer syntax)`;
}

/** Top-level attributes of the Image Pixel (PS3.3 C.7.6.3), Multi-frame, Modality LUT and VOI LUT modules. */
export interface DicomImageAttributes {
  transferSyntaxUid: string;
  rows?: number;
  columns?: number;
  samplesPerPixel?: number;
  photometricInterpretation?: string;
  planarConfiguration?: number;
  numberOfFrames?: number;
  bitsAllocated?: number;
  bitsStored?: number;
  highBit?: number;
  pixelRepresentation?: number;
  /** First value when the attribute is multi-valued. */
  windowCenter?: number;
  windowWidth?: number;
  rescaleIntercept?: number;
  rescaleSlope?: number;
  /**
   * Where the top-level Pixel Data (7FE0,0010) value starts and its declared length (undefined for an
   * encapsulated, undefined-length value). The length is not checked against the file here; the pixel
   * decoder does that, so that reading the header never depends on the size of the pixels.
   */
  pixelData?: { offset: number; length: number | undefined };
}

const PREAMBLE_LENGTH = 128;
const UNDEFINED_LENGTH = 0xffffffff;
/** Deeper nesting than this is no real data set; it is a file built to exhaust the stack. */
const MAX_SEQUENCE_DEPTH = 32;

const TAG_TRANSFER_SYNTAX_UID = 0x00020010;
const TAG_PIXEL_DATA = 0x7fe00010;
const TAG_ITEM = 0xfffee000;
const TAG_ITEM_DELIMITATION = 0xfffee00d;
const TAG_SEQUENCE_DELIMITATION = 0xfffee0dd;

/** PS3.5 §6.2: the value representations; the ones in LONG_FORM_VRS use a 32-bit length (§7.1.2). */
const VRS = new Set(['AE', 'AS', 'AT', 'CS', 'DA', 'DS', 'DT', 'FL', 'FD', 'IS', 'LO', 'LT', 'OB', 'OD', 'OF', 'OL', 'OV', 'OW', 'PN', 'SH', 'SL', 'SQ', 'SS', 'ST', 'SV', 'TM', 'UC', 'UI', 'UL', 'UN', 'UR', 'US', 'UT', 'UV']);
const LONG_FORM_VRS = new Set(['OB', 'OD', 'OF', 'OL', 'OV', 'OW', 'SQ', 'SV', 'UC', 'UN', 'UR', 'UT', 'UV']);

type NumericAttribute = Exclude<keyof DicomImageAttributes, 'transferSyntaxUid' | 'photometricInterpretation' | 'pixelData'>;
type WantedAttribute =
  | { key: NumericAttribute; name: string; vr: 'US' | 'IS' | 'DS' }
  | { key: 'photometricInterpretation'; name: string; vr: 'CS' };

/** The attributes collected, with the value representation each has (PS3.6 Table 6-1). */
const WANTED: ReadonlyMap<number, WantedAttribute> = new Map<number, WantedAttribute>([
  [0x00280002, { key: 'samplesPerPixel', name: 'SamplesPerPixel', vr: 'US' }],
  [0x00280004, { key: 'photometricInterpretation', name: 'PhotometricInterpretation', vr: 'CS' }],
  [0x00280006, { key: 'planarConfiguration', name: 'PlanarConfiguration', vr: 'US' }],
  [0x00280008, { key: 'numberOfFrames', name: 'NumberOfFrames', vr: 'IS' }],
  [0x00280010, { key: 'rows', name: 'Rows', vr: 'US' }],
  [0x00280011, { key: 'columns', name: 'Columns', vr: 'US' }],
  [0x00280100, { key: 'bitsAllocated', name: 'BitsAllocated', vr: 'US' }],
  [0x00280101, { key: 'bitsStored', name: 'BitsStored', vr: 'US' }],
  [0x00280102, { key: 'highBit', name: 'HighBit', vr: 'US' }],
  [0x00280103, { key: 'pixelRepresentation', name: 'PixelRepresentation', vr: 'US' }],
  [0x00281050, { key: 'windowCenter', name: 'WindowCenter', vr: 'DS' }],
  [0x00281051, { key: 'windowWidth', name: 'WindowWidth', vr: 'DS' }],
  [0x00281052, { key: 'rescaleIntercept', name: 'RescaleIntercept', vr: 'DS' }],
  [0x00281053, { key: 'rescaleSlope', name: 'RescaleSlope', vr: 'DS' }],
]);

/**
 * Longest text value read. The attributes read are short strings (PS3.5 Table 6.2-1: UI 64, CS 16,
 * DS 16, IS 12 bytes per value); a few values of a multi-valued DS fit easily.
 */
const MAX_TEXT_VALUE = 1024;

function tagText(tag: number): string {
  const hex = tag.toString(16).toUpperCase().padStart(8, '0');
  return `(${hex.slice(0, 4)},${hex.slice(4)})`;
}

interface ElementHeader {
  tag: number;
  vr: string | undefined;
  length: number;
  valueOffset: number;
}

/** Bounds-checked little-endian reading of one Part 10 file. */
class DatasetReader {
  readonly bytes: Uint8Array;
  readonly view: DataView;

  constructor(bytes: Uint8Array) {
    this.bytes = bytes;
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  tagAt(offset: number): number {
    this.need(offset, 4, 'an element tag');
    return ((this.view.getUint16(offset, true) << 16) | this.view.getUint16(offset + 2, true)) >>> 0;
  }

  /**
   * Reads the tag, VR and length at `offset` (PS3.5 §7.1). Item and delimitation tags never carry a VR,
   * in either encoding (§7.5).
   */
  elementAt(offset: number, explicitVr: boolean): ElementHeader {
    const tag = this.tagAt(offset);
    this.need(offset, 8, `the header of element ${tagText(tag)}`);
    if (!explicitVr || tag >>> 16 === 0xfffe) {
      return { tag, vr: undefined, length: this.view.getUint32(offset + 4, true), valueOffset: offset + 8 };
    }
    const vr = String.fromCharCode(this.bytes[offset + 4] ?? 0, this.bytes[offset + 5] ?? 0);
    if (!VRS.has(vr)) {
      throw new AppError('CORRUPT_IMAGE', `DICOM element ${tagText(tag)} at byte ${offset} has an invalid value representation ${JSON.stringify(vr)}; the file is not valid explicit VR DICOM.`);
    }
    if (LONG_FORM_VRS.has(vr)) {
      this.need(offset, 12, `the header of element ${tagText(tag)}`);
      return { tag, vr, length: this.view.getUint32(offset + 8, true), valueOffset: offset + 12 };
    }
    return { tag, vr, length: this.view.getUint16(offset + 6, true), valueOffset: offset + 8 };
  }

  /** The end of a defined-length value, refusing one that claims more bytes than the file holds. */
  valueEnd(element: ElementHeader): number {
    const end = element.valueOffset + element.length;
    if (end > this.bytes.length) {
      throw new AppError(
        'CORRUPT_IMAGE',
        `DICOM element ${tagText(element.tag)} at byte ${element.valueOffset} declares ${element.length} bytes but only ${this.bytes.length - element.valueOffset} remain in the file.`,
      );
    }
    return end;
  }

  private need(offset: number, length: number, what: string): void {
    if (offset + length > this.bytes.length) {
      throw new AppError('TRUNCATED_IMAGE', `The DICOM file ends at byte ${this.bytes.length}, inside ${what}.`);
    }
  }
}

/**
 * Reads the file meta information and the top-level image attributes of a DICOM Part 10 file, stopping
 * at Pixel Data. Explicit VR Little Endian and Implicit VR Little Endian data sets are read, which also
 * covers every encapsulated (compressed) transfer syntax, whose data sets are explicit VR little endian
 * (PS3.5 A.4). Big endian and deflated data sets are refused with DICOM_PIXELS_UNSUPPORTED.
 */
export function readDicomImageAttributes(bytes: Uint8Array): DicomImageAttributes {
  const reader = new DatasetReader(bytes);
  if (bytes.length < PREAMBLE_LENGTH + 4) {
    throw new AppError('TRUNCATED_IMAGE', `The DICOM file ends at byte ${bytes.length}, before its 128-byte preamble and "DICM" prefix.`);
  }
  if (String.fromCharCode(...bytes.subarray(PREAMBLE_LENGTH, PREAMBLE_LENGTH + 4)) !== 'DICM') {
    throw new AppError('CORRUPT_IMAGE', 'The file has no "DICM" prefix after the 128-byte preamble; it is not a DICOM Part 10 file.');
  }

  // PS3.10 §7.1: the File Meta Information (group 0002) is always explicit VR little endian, whatever the
  // transfer syntax of the data set that follows. The group ends at the first tag outside group 0002;
  // that holds whether or not the group length (0002,0000) is right, so the group length is not used.
  let offset = PREAMBLE_LENGTH + 4;
  let transferSyntaxUid: string | undefined;
  while (offset < bytes.length && reader.tagAt(offset) >>> 16 === 0x0002) {
    const element = reader.elementAt(offset, true);
    if (element.length === UNDEFINED_LENGTH) {
      throw new AppError('CORRUPT_IMAGE', `DICOM file meta element ${tagText(element.tag)} has an undefined length, which PS3.10 §7.1 does not allow.`);
    }
    const end = reader.valueEnd(element);
    if (element.tag === TAG_TRANSFER_SYNTAX_UID) transferSyntaxUid = text(reader, element, end, 'TransferSyntaxUID');
    offset = end;
  }
  if (!transferSyntaxUid) {
    throw new AppError('CORRUPT_IMAGE', 'The DICOM file meta information has no TransferSyntaxUID (0002,0010), so its data set cannot be read.');
  }

  const explicitVr = datasetIsExplicitVr(transferSyntaxUid);
  const attributes: DicomImageAttributes = { transferSyntaxUid };
  while (offset < bytes.length) {
    const element = reader.elementAt(offset, explicitVr);
    if (element.tag >>> 16 === 0xfffe) {
      throw new AppError('CORRUPT_IMAGE', `DICOM item tag ${tagText(element.tag)} at byte ${offset} is outside any sequence.`);
    }
    if (element.tag === TAG_PIXEL_DATA) {
      attributes.pixelData = { offset: element.valueOffset, length: element.length === UNDEFINED_LENGTH ? undefined : element.length };
      break;
    }
    if (element.length === UNDEFINED_LENGTH) {
      offset = skipUndefinedLength(reader, element, explicitVr, 1);
      continue;
    }
    const end = reader.valueEnd(element);
    const wanted = WANTED.get(element.tag);
    if (wanted) setAttribute(attributes, wanted, reader, element, end);
    offset = end;
  }
  return attributes;
}

/**
 * Transfer syntaxes whose data set is not plain little endian: explicit VR big endian (PS3.5 A.3),
 * deflated explicit VR little endian (A.5) and JPIP Referenced Deflate, which deflates it the same way.
 * Every other standard transfer syntax encodes its data set as explicit VR little endian (A.2, and A.4
 * for encapsulated pixel data), so this reader reads it; a private one that does not follow that rule
 * fails the VR and length checks rather than being misread.
 */
const DATA_SET_NOT_LITTLE_ENDIAN = new Set(['1.2.840.10008.1.2.2', '1.2.840.10008.1.2.1.99', '1.2.840.10008.1.2.4.95']);

function datasetIsExplicitVr(transferSyntaxUid: string): boolean {
  if (transferSyntaxUid === IMPLICIT_VR_LITTLE_ENDIAN) return false;
  if (DATA_SET_NOT_LITTLE_ENDIAN.has(transferSyntaxUid)) {
    throw new AppError(
      'DICOM_PIXELS_UNSUPPORTED',
      `DICOM transfer syntax ${describeTransferSyntax(transferSyntaxUid)} encodes its data set in a form that is not read (only little endian, uncompressed data sets are).`,
      { details: { transferSyntaxUid } },
    );
  }
  return true;
}

/**
 * Skips an element of undefined length: a sequence (SQ), an UN value holding a sequence, or encapsulated
 * pixel data — all three are a run of items closed by a Sequence Delimitation Item (PS3.5 §7.5.2, A.4).
 * Returns the offset just after the delimiter.
 */
function skipUndefinedLength(reader: DatasetReader, element: ElementHeader, explicitVr: boolean, depth: number): number {
  if (explicitVr && element.vr !== undefined && !['SQ', 'UN', 'OB', 'OW'].includes(element.vr)) {
    throw new AppError('CORRUPT_IMAGE', `DICOM element ${tagText(element.tag)} (${element.vr}) has an undefined length, which only SQ, UN, OB and OW may have.`);
  }
  if (depth > MAX_SEQUENCE_DEPTH) {
    throw new AppError('CORRUPT_IMAGE', `DICOM sequences are nested more than ${MAX_SEQUENCE_DEPTH} deep at element ${tagText(element.tag)}.`);
  }
  // PS3.5 §6.2.2: an UN value of undefined length is a sequence encoded in implicit VR little endian.
  const itemsExplicit = element.vr === 'UN' ? false : explicitVr;
  let offset = element.valueOffset;
  for (;;) {
    const item = reader.elementAt(offset, false);
    if (item.tag === TAG_SEQUENCE_DELIMITATION) return item.valueOffset;
    if (item.tag !== TAG_ITEM) {
      throw new AppError('CORRUPT_IMAGE', `Expected a DICOM item or sequence delimiter at byte ${offset} inside ${tagText(element.tag)}, found ${tagText(item.tag)}.`);
    }
    offset = item.length === UNDEFINED_LENGTH ? skipItemElements(reader, item.valueOffset, itemsExplicit, depth) : reader.valueEnd(item);
  }
}

/** Skips the elements of an undefined-length item up to and including its Item Delimitation Item. */
function skipItemElements(reader: DatasetReader, start: number, explicitVr: boolean, depth: number): number {
  let offset = start;
  for (;;) {
    const element = reader.elementAt(offset, explicitVr);
    if (element.tag === TAG_ITEM_DELIMITATION) return element.valueOffset;
    if (element.tag >>> 16 === 0xfffe) {
      throw new AppError('CORRUPT_IMAGE', `Expected a DICOM element or item delimiter at byte ${offset}, found ${tagText(element.tag)}.`);
    }
    offset = element.length === UNDEFINED_LENGTH ? skipUndefinedLength(reader, element, explicitVr, depth + 1) : reader.valueEnd(element);
  }
}

function text(reader: DatasetReader, element: ElementHeader, end: number, name: string): string {
  if (element.length > MAX_TEXT_VALUE) {
    throw new AppError('CORRUPT_IMAGE', `DICOM ${name} ${tagText(element.tag)} is ${element.length} bytes long, far more than its value representation allows.`);
  }
  // Values are padded to even length with a space, or a NUL for UIDs (PS3.5 §6.2).
  return Buffer.from(reader.bytes.buffer, reader.bytes.byteOffset + element.valueOffset, end - element.valueOffset)
    .toString('latin1')
    .replace(/[\0 ]+$/, '')
    .replace(/^ +/, '');
}

function setAttribute(attributes: DicomImageAttributes, wanted: WantedAttribute, reader: DatasetReader, element: ElementHeader, end: number): void {
  const where = `${wanted.name} ${tagText(element.tag)}`;
  // UN is what an explicit VR file written from an implicit one may carry; the bytes are the same.
  if (element.vr !== undefined && element.vr !== wanted.vr && element.vr !== 'UN') {
    throw new AppError('CORRUPT_IMAGE', `DICOM ${where} has value representation ${element.vr}; PS3.6 gives it ${wanted.vr}.`);
  }
  if (element.length === 0) return; // present but empty (a type 2 attribute): treated as absent
  if (wanted.vr === 'CS') {
    attributes[wanted.key] = text(reader, element, end, wanted.name);
    return;
  }
  if (wanted.vr === 'US') {
    if (element.length % 2 !== 0) throw new AppError('CORRUPT_IMAGE', `DICOM ${where} has ${element.length} bytes; an unsigned short needs 2.`);
    attributes[wanted.key] = reader.view.getUint16(element.valueOffset, true);
    return;
  }
  // DS and IS may be multi-valued (backslash-separated); the first value is the one applied (PS3.3 C.11.2.1.2).
  const value = text(reader, element, end, wanted.name);
  const first = (value.split('\\')[0] ?? '').trim();
  const number = Number(first);
  const valid = first !== '' && Number.isFinite(number) && (wanted.vr === 'DS' || Number.isInteger(number));
  if (!valid) {
    throw new AppError('CORRUPT_IMAGE', `DICOM ${where} is not a valid ${wanted.vr === 'DS' ? 'decimal' : 'integer'} string: ${JSON.stringify(value.slice(0, 32))}.`);
  }
  attributes[wanted.key] = number;
}
