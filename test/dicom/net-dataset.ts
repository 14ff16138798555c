import { deflateRawSync } from 'node:zlib';

// Builds small synthetic DICOM data sets for the network tests, in any of the uncompressed encodings,
// with sequences of defined or undefined length. No real patient data: every value is made up.

export type Value = string | Buffer | Item[];
export type Item = Element[];
export interface Element {
  tag: number;
  vr: string;
  value: Value;
}

export interface Encoding {
  explicitVr: boolean;
  littleEndian: boolean;
  /** Write sequences and items with undefined length and delimiters (default true). */
  undefinedLength?: boolean;
}

const LONG = new Set(['OB', 'OD', 'OF', 'OL', 'OV', 'OW', 'SQ', 'SV', 'UC', 'UN', 'UR', 'UT', 'UV']);

function u16(v: number, le: boolean): Buffer {
  const b = Buffer.alloc(2);
  if (le) b.writeUInt16LE(v);
  else b.writeUInt16BE(v);
  return b;
}

function u32(v: number, le: boolean): Buffer {
  const b = Buffer.alloc(4);
  if (le) b.writeUInt32LE(v);
  else b.writeUInt32BE(v);
  return b;
}

function tagBytes(tag: number, le: boolean): Buffer {
  return Buffer.concat([u16(tag >>> 16, le), u16(tag & 0xffff, le)]);
}

function valueBytes(vr: string, value: string | Buffer): Buffer {
  if (Buffer.isBuffer(value)) return value.length % 2 === 0 ? value : Buffer.concat([value, Buffer.from([0])]);
  const pad = vr === 'UI' ? '\0' : ' ';
  return Buffer.from(value.length % 2 === 0 ? value : value + pad, 'latin1');
}

function header(tag: number, vr: string, length: number, enc: Encoding): Buffer {
  const le = enc.littleEndian;
  if (!enc.explicitVr) return Buffer.concat([tagBytes(tag, le), u32(length, le)]);
  if (LONG.has(vr)) return Buffer.concat([tagBytes(tag, le), Buffer.from(vr, 'latin1'), Buffer.alloc(2), u32(length, le)]);
  return Buffer.concat([tagBytes(tag, le), Buffer.from(vr, 'latin1'), u16(length, le)]);
}

export function encodeDataset(elements: Item, enc: Encoding): Buffer {
  const undefinedLength = enc.undefinedLength ?? true;
  const le = enc.littleEndian;
  const parts: Buffer[] = [];
  for (const el of [...elements].sort((a, b) => a.tag - b.tag)) {
    if (Array.isArray(el.value)) {
      const items = el.value.map((item) => {
        const body = encodeDataset(item, enc);
        return undefinedLength
          ? Buffer.concat([tagBytes(0xfffee000, le), u32(0xffffffff, le), body, tagBytes(0xfffee00d, le), u32(0, le)])
          : Buffer.concat([tagBytes(0xfffee000, le), u32(body.length, le), body]);
      });
      const content = Buffer.concat(items);
      if (undefinedLength) parts.push(header(el.tag, el.vr, 0xffffffff, enc), content, tagBytes(0xfffee0dd, le), u32(0, le));
      else parts.push(header(el.tag, el.vr, content.length, enc), content);
      continue;
    }
    const v = valueBytes(el.vr, el.value);
    parts.push(header(el.tag, el.vr, v.length, enc), v);
  }
  return Buffer.concat(parts);
}

export const CT_IMAGE_STORAGE = '1.2.840.10008.5.1.4.1.1.2';
export const SC_IMAGE_STORAGE = '1.2.840.10008.5.1.4.1.1.7';
export const WSI_STORAGE = '1.2.840.10008.5.1.4.1.1.77.1.6';

export interface SampleUids {
  sopClassUid?: string;
  sopInstanceUid: string;
  studyInstanceUid: string;
  seriesInstanceUid: string;
}

/** A small image-like data set: UIDs, a nested sequence before the study UID, and 16-bit pixels. */
export function sampleElements(uids: SampleUids, pixelBytes = 64): Item {
  const elements: Item = [
    { tag: 0x00080016, vr: 'UI', value: uids.sopClassUid ?? CT_IMAGE_STORAGE },
    { tag: 0x00080018, vr: 'UI', value: uids.sopInstanceUid },
    { tag: 0x00080060, vr: 'CS', value: 'CT' },
    {
      tag: 0x00081140,
      vr: 'SQ',
      value: [
        [
          { tag: 0x00081150, vr: 'UI', value: CT_IMAGE_STORAGE },
          { tag: 0x00081155, vr: 'UI', value: '2.25.1' },
        ],
        [{ tag: 0x00081150, vr: 'UI', value: CT_IMAGE_STORAGE }],
      ],
    },
    { tag: 0x00100010, vr: 'PN', value: 'Test^Synthetic' },
    { tag: 0x0020000d, vr: 'UI', value: uids.studyInstanceUid },
    { tag: 0x0020000e, vr: 'UI', value: uids.seriesInstanceUid },
    { tag: 0x00280010, vr: 'US', value: Buffer.from([4, 0]) },
    { tag: 0x00280011, vr: 'US', value: Buffer.from([Math.max(1, pixelBytes / 8), 0]) },
  ];
  const pixels = Buffer.alloc(pixelBytes);
  for (let i = 0; i < pixels.length; i++) pixels[i] = (i * 37) & 0xff;
  elements.push({ tag: 0x7fe00010, vr: 'OW', value: pixels });
  return elements;
}

export const EXPLICIT_LE: Encoding = { explicitVr: true, littleEndian: true };
export const IMPLICIT_LE: Encoding = { explicitVr: false, littleEndian: true };
export const EXPLICIT_BE: Encoding = { explicitVr: true, littleEndian: false };

export function sampleDataset(uids: SampleUids, enc: Encoding = EXPLICIT_LE, pixelBytes = 64): Buffer {
  return encodeDataset(sampleElements(uids, pixelBytes), enc);
}

export function deflated(dataset: Buffer): Buffer {
  return deflateRawSync(dataset);
}

let counter = 0;
/** A fresh UID under the 2.25 root (PS3.5 B.2), unique within the test run. */
export function testUid(): string {
  counter++;
  return `2.25.${process.pid}${Date.now() % 1_000_000}${counter}`;
}
