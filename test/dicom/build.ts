import { deflateRawSync } from 'node:zlib';
import { type DicomElement, dicomFile, element, imageElements, pixelData } from '../imaging/support/dicom-writer.ts';

// Hostile and unusual DICOM files for the guard and decoder tests, built on the hand encoder of
// test/imaging/support/dicom-writer.ts (which writes exactly what it is told).

export const UID = {
  implicitLittle: '1.2.840.10008.1.2',
  explicitLittle: '1.2.840.10008.1.2.1',
  encapsulatedUncompressed: '1.2.840.10008.1.2.1.98',
  deflated: '1.2.840.10008.1.2.1.99',
  jpegBaseline: '1.2.840.10008.1.2.4.50',
  jpegLossless: '1.2.840.10008.1.2.4.70',
  jpegLs: '1.2.840.10008.1.2.4.80',
  mpeg2: '1.2.840.10008.1.2.4.100',
  rle: '1.2.840.10008.1.2.5',
  deflatedFrames: '1.2.840.10008.1.2.8.1',
} as const;

/** Where the file meta information group ends: after (0002,0000) and the length it gives. */
export function metaEnd(file: Buffer): number {
  return 132 + 12 + file.readUInt32LE(140);
}

/** A Deflated Explicit VR Little Endian file (PS3.5 A.5): the data set after the meta, raw-deflated. */
export function deflatedFile(elements: DicomElement[]): Buffer {
  const plain = dicomFile({ transferSyntax: UID.deflated, elements });
  const end = metaEnd(plain);
  return Buffer.concat([plain.subarray(0, end), deflateRawSync(plain.subarray(end), { level: 9 })]);
}

/** Sequences nested `depth` deep, through the encoder (which recurses: a few hundred levels at most). */
export function nestedSequence(depth: number, undefinedLength: boolean): DicomElement {
  let deepest: DicomElement = element(0x00081150, 'UI', '1.2.3');
  for (let level = 0; level < depth; level++) {
    deepest = { tag: 0x00081115, vr: 'SQ', undefinedLength, itemsUndefinedLength: undefinedLength, items: [[deepest]] };
  }
  return deepest;
}

/**
 * (0008,1115) sequences nested `depth` deep as raw bytes, built iteratively so the depth can be far
 * beyond what a recursive parser survives: of undefined length (items and sequences closed by
 * delimiters), or of defined length (each length covering everything inside it).
 */
export function deepNesting(depth: number, explicit: boolean, undefinedLength: boolean): Buffer {
  const sequenceHeader = (length: number): Buffer => {
    const header = Buffer.alloc(explicit ? 12 : 8);
    header.writeUInt16LE(0x0008, 0);
    header.writeUInt16LE(0x1115, 2);
    if (explicit) {
      header.write('SQ', 4, 'latin1');
      header.writeUInt32LE(length, 8);
    } else {
      header.writeUInt32LE(length, 4);
    }
    return header;
  };
  const tag = (element: number, length: number): Buffer => {
    const out = Buffer.alloc(8);
    out.writeUInt16LE(0xfffe, 0);
    out.writeUInt16LE(element, 2);
    out.writeUInt32LE(length, 4);
    return out;
  };
  const UNDEFINED = 0xffffffff;
  if (undefinedLength) {
    const open = Buffer.concat([sequenceHeader(UNDEFINED), tag(0xe000, UNDEFINED)]);
    const close = Buffer.concat([tag(0xe00d, 0), tag(0xe0dd, 0)]);
    return Buffer.concat([...Array<Buffer>(depth).fill(open), ...Array<Buffer>(depth).fill(close)]);
  }
  // Lengths from the inside out: an empty innermost item, then each level adds its two headers.
  const headers: Buffer[] = [];
  let inner = 0;
  for (let level = 0; level < depth; level++) {
    const item = tag(0xe000, inner);
    const sequence = sequenceHeader(inner + 8);
    headers.push(Buffer.concat([sequence, item]));
    inner += 8 + sequence.length;
  }
  return Buffer.concat(headers.reverse());
}

/** `count` small private elements (0009,xxxx) LO "ab", explicit VR little endian, as raw bytes. */
export function manyElements(count: number): Buffer {
  const body = Buffer.alloc(count * 10);
  for (let i = 0; i < count; i++) {
    const at = i * 10;
    body.writeUInt16LE(0x0009, at);
    body.writeUInt16LE(0x1000 + (i % 0xefff), at + 2);
    body.write('LO', at + 4, 'latin1');
    body.writeUInt16LE(2, at + 6);
    body.write('ab', at + 8, 'latin1');
  }
  return body;
}

/** A small valid image file with `extra` raw bytes inserted at the start of its data set. */
export function withRawElements(extra: Buffer): Buffer {
  const base = dicomFile({ elements: [...imageElements({ rows: 2, columns: 2 }), pixelData(Buffer.alloc(4), 'OB')] });
  const end = metaEnd(base);
  return Buffer.concat([base.subarray(0, end), extra, base.subarray(end)]);
}

/** Encapsulated Pixel Data (PS3.5 A.4) with a given Basic Offset Table, fragments padded to even length. */
export function encapsulated(fragments: Uint8Array[], basicOffsetTable: number[] = []): DicomElement & { value: Buffer } {
  const even = fragments.map((f) => (f.length % 2 === 0 ? f : Buffer.concat([f, Buffer.alloc(1)])));
  const table = Buffer.alloc(basicOffsetTable.length * 4);
  basicOffsetTable.forEach((offset, i) => table.writeUInt32LE(offset, i * 4));
  const items = [table, ...even].map((value) => {
    const header = Buffer.alloc(8);
    header.writeUInt16LE(0xfffe, 0);
    header.writeUInt16LE(0xe000, 2);
    header.writeUInt32LE(value.length, 4);
    return Buffer.concat([header, value]);
  });
  const delimiter = Buffer.from([0xfe, 0xff, 0xdd, 0xe0, 0, 0, 0, 0]);
  // Written as an OB element of undefined length whose "value" is the items and the delimiter.
  return { tag: 0x7fe00010, vr: 'OB', value: Buffer.concat([...items, delimiter]), declaredLength: 0xffffffff };
}

/** Offsets of each fragment item from the first one, for a Basic Offset Table of one frame per fragment. */
export function offsetsOf(fragments: Uint8Array[]): number[] {
  const offsets: number[] = [];
  let at = 0;
  for (const f of fragments) {
    offsets.push(at);
    at += 8 + f.length + (f.length % 2);
  }
  return offsets;
}
