// A tiny DICOM Part 10 encoder for building test files by hand (PS3.10 §7, PS3.5 §7). It writes exactly
// what it is told, including invalid lengths, so tests can build broken files as easily as valid ones.

export type DicomElement =
  | { tag: number; vr: string; value: Uint8Array; declaredLength?: number }
  | { tag: number; vr: 'SQ' | 'UN'; items: DicomElement[][]; undefinedLength: boolean; itemsUndefinedLength?: boolean }
  | { tag: number; vr: 'OB'; fragments: Uint8Array[] };

export const TS = {
  implicitLittle: '1.2.840.10008.1.2',
  explicitLittle: '1.2.840.10008.1.2.1',
  explicitBig: '1.2.840.10008.1.2.2',
  jpegBaseline: '1.2.840.10008.1.2.4.50',
} as const;

const LONG_FORM = new Set(['OB', 'OD', 'OF', 'OL', 'OV', 'OW', 'SQ', 'SV', 'UC', 'UN', 'UR', 'UT', 'UV']);
const UNDEFINED = 0xffffffff;

/** A text value padded to even length: NUL for UI, space otherwise (PS3.5 §6.2). */
export function text(value: string, vr = 'LO'): Uint8Array {
  const padded = value.length % 2 === 0 ? value : value + (vr === 'UI' ? '\0' : ' ');
  return Buffer.from(padded, 'latin1');
}

export function us(...values: number[]): Uint8Array {
  const out = Buffer.alloc(values.length * 2);
  values.forEach((v, i) => out.writeUInt16LE(v, i * 2));
  return out;
}

export function ul(...values: number[]): Uint8Array {
  const out = Buffer.alloc(values.length * 4);
  values.forEach((v, i) => out.writeUInt32LE(v, i * 4));
  return out;
}

export function element(tag: number, vr: string, value: Uint8Array | string): DicomElement {
  return { tag, vr, value: typeof value === 'string' ? text(value, vr) : value };
}

function tagBytes(tag: number): Buffer {
  const out = Buffer.alloc(4);
  out.writeUInt16LE(tag >>> 16, 0);
  out.writeUInt16LE(tag & 0xffff, 2);
  return out;
}

function header(tag: number, vr: string, length: number, explicit: boolean): Buffer {
  if (!explicit || tag >>> 16 === 0xfffe) return Buffer.concat([tagBytes(tag), ul(length)]);
  if (LONG_FORM.has(vr)) return Buffer.concat([tagBytes(tag), Buffer.from(vr, 'latin1'), Buffer.alloc(2), ul(length)]);
  const short = Buffer.alloc(2);
  short.writeUInt16LE(length);
  return Buffer.concat([tagBytes(tag), Buffer.from(vr, 'latin1'), short]);
}

export function encodeElement(e: DicomElement, explicit: boolean): Buffer {
  if ('fragments' in e) {
    // Encapsulated pixel data (PS3.5 A.4): an empty Basic Offset Table item, one item per fragment, then
    // the sequence delimiter.
    const items = [header(0xfffee000, '', 0, explicit), ...e.fragments.flatMap((f) => [header(0xfffee000, '', f.length, explicit), Buffer.from(f)])];
    return Buffer.concat([header(e.tag, e.vr, UNDEFINED, explicit), ...items, header(0xfffee0dd, '', 0, explicit)]);
  }
  if ('items' in e) {
    // PS3.5 §6.2.2: the content of an undefined-length UN value is implicit VR little endian.
    const inner = e.vr === 'UN' ? false : explicit;
    const items = e.items.map((item) => {
      const body = Buffer.concat(item.map((child) => encodeElement(child, inner)));
      return e.itemsUndefinedLength
        ? Buffer.concat([header(0xfffee000, '', UNDEFINED, inner), body, header(0xfffee00d, '', 0, inner)])
        : Buffer.concat([header(0xfffee000, '', body.length, inner), body]);
    });
    const body = Buffer.concat(items);
    if (e.undefinedLength) return Buffer.concat([header(e.tag, e.vr, UNDEFINED, explicit), body, header(0xfffee0dd, '', 0, explicit)]);
    return Buffer.concat([header(e.tag, e.vr, body.length, explicit), body]);
  }
  return Buffer.concat([header(e.tag, e.vr, e.declaredLength ?? e.value.length, explicit), Buffer.from(e.value)]);
}

export interface DicomFileOptions {
  transferSyntax?: string;
  /** Data set elements; written in the order given (tests may put them out of order on purpose). */
  elements: DicomElement[];
  /** Bytes for the 128-byte preamble (zeros by default). */
  preamble?: Uint8Array;
}

const SECONDARY_CAPTURE = '1.2.840.10008.5.1.4.1.1.7';

/** A complete Part 10 file: preamble, "DICM", file meta group (explicit VR LE), then the data set. */
export function dicomFile(options: DicomFileOptions): Buffer {
  const transferSyntax = options.transferSyntax ?? TS.explicitLittle;
  const instance = '2.25.1234567890';
  const metaBody = Buffer.concat([
    encodeElement(element(0x00020001, 'OB', new Uint8Array([0, 1])), true),
    encodeElement(element(0x00020002, 'UI', SECONDARY_CAPTURE), true),
    encodeElement(element(0x00020003, 'UI', instance), true),
    encodeElement(element(0x00020010, 'UI', transferSyntax), true),
    encodeElement(element(0x00020012, 'UI', '2.25.42'), true),
  ]);
  const meta = Buffer.concat([encodeElement(element(0x00020000, 'UL', ul(metaBody.length)), true), metaBody]);
  const explicit = transferSyntax !== TS.implicitLittle;
  const preamble = Buffer.alloc(128);
  if (options.preamble) preamble.set(options.preamble.subarray(0, 128));
  return Buffer.concat([preamble, Buffer.from('DICM', 'latin1'), meta, ...options.elements.map((e) => encodeElement(e, explicit))]);
}

export interface ImagePixelModule {
  rows: number;
  columns: number;
  samplesPerPixel?: number;
  photometric?: string;
  bitsAllocated?: number;
  bitsStored?: number;
  pixelRepresentation?: number;
  planarConfiguration?: number;
  frames?: number;
  windowCenter?: string;
  windowWidth?: string;
  rescaleIntercept?: string;
  rescaleSlope?: string;
}

/** The usual top-level elements of a small image object, in ascending tag order, without Pixel Data. */
export function imageElements(m: ImagePixelModule): DicomElement[] {
  const bits = m.bitsAllocated ?? 8;
  const out: DicomElement[] = [
    element(0x00080016, 'UI', SECONDARY_CAPTURE),
    element(0x00080018, 'UI', '2.25.1234567890'),
    element(0x00080060, 'CS', 'OT'),
    element(0x00100010, 'PN', 'Synthetic^Test'),
    element(0x00280002, 'US', us(m.samplesPerPixel ?? 1)),
    element(0x00280004, 'CS', m.photometric ?? 'MONOCHROME2'),
  ];
  if (m.planarConfiguration !== undefined) out.push(element(0x00280006, 'US', us(m.planarConfiguration)));
  if (m.frames !== undefined) out.push(element(0x00280008, 'IS', String(m.frames)));
  out.push(
    element(0x00280010, 'US', us(m.rows)),
    element(0x00280011, 'US', us(m.columns)),
    element(0x00280100, 'US', us(bits)),
    element(0x00280101, 'US', us(m.bitsStored ?? bits)),
    element(0x00280102, 'US', us((m.bitsStored ?? bits) - 1)),
    element(0x00280103, 'US', us(m.pixelRepresentation ?? 0)),
  );
  if (m.windowCenter !== undefined) out.push(element(0x00281050, 'DS', m.windowCenter));
  if (m.windowWidth !== undefined) out.push(element(0x00281051, 'DS', m.windowWidth));
  if (m.rescaleIntercept !== undefined) out.push(element(0x00281052, 'DS', m.rescaleIntercept));
  if (m.rescaleSlope !== undefined) out.push(element(0x00281053, 'DS', m.rescaleSlope));
  return out;
}

/** Pixel Data, padded to even length as PS3.5 §7.1.1 requires. */
export function pixelData(bytes: Uint8Array, vr: 'OB' | 'OW' = 'OW'): DicomElement {
  const value = bytes.length % 2 === 0 ? bytes : Buffer.concat([bytes, Buffer.alloc(1)]);
  return { tag: 0x7fe00010, vr, value };
}
