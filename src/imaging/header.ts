import { crc32 } from 'node:zlib';
import { AppError } from '../core/errors.ts';
import type { MediaType } from '../core/result.ts';
import { readDicomImageAttributes } from './dicom-part10.ts';

// Image dimensions read from the file header alone. Nothing here decodes or allocates pixels: these
// numbers decide whether decoding is allowed at all (limits.ts), so they must be cheap to obtain and
// must not trust any length the file declares without checking it against the bytes present.

export interface ImageHeader {
  width: number;
  height: number;
  /** Samples per pixel as stored (a palette PNG has 1). */
  channels?: number;
  /** Bits per sample as stored (DICOM: BitsAllocated). */
  bitDepth?: number;
  /** Frames in the file when the format has them (DICOM NumberOfFrames); absent means one. */
  frames?: number;
}

export function readImageHeader(bytes: Uint8Array, mediaType: MediaType): ImageHeader {
  switch (mediaType) {
    case 'png':
      return readPngHeader(bytes);
    case 'jpeg':
      return readJpegHeader(bytes);
    case 'tiff':
    case 'slide':
      return readTiffHeader(bytes);
    case 'dicom':
      return readDicomHeader(bytes);
  }
}

function truncated(format: string, length: number, where: string): AppError {
  return new AppError('TRUNCATED_IMAGE', `The ${format} file ends at byte ${length}, ${where}.`);
}

function requirePositive(format: string, width: number, height: number): void {
  if (!(width > 0) || !(height > 0)) {
    throw new AppError('CORRUPT_IMAGE', `The ${format} header gives the image size ${width} × ${height}; both must be at least 1.`);
  }
}

function viewOf(bytes: Uint8Array): DataView {
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

// --- PNG (ISO/IEC 15948, "PNG 2nd edition") -------------------------------------------------------

const PNG_SIGNATURE_LENGTH = 8;
/** §11.2.2: bit depths allowed for each colour type, and the samples per pixel it stores. */
const PNG_COLOUR_TYPES: ReadonlyMap<number, { depths: readonly number[]; channels: number }> = new Map([
  [0, { depths: [1, 2, 4, 8, 16], channels: 1 }],
  [2, { depths: [8, 16], channels: 3 }],
  [3, { depths: [1, 2, 4, 8], channels: 1 }],
  [4, { depths: [8, 16], channels: 2 }],
  [6, { depths: [8, 16], channels: 4 }],
]);
/** §12.2: width and height are at most 2^31 − 1. */
const PNG_MAX_DIMENSION = 0x7fffffff;

function readPngHeader(bytes: Uint8Array): ImageHeader {
  // §5.6: IHDR is the first chunk: length (4) "IHDR" (4) data (13) CRC (4).
  const ihdrEnd = PNG_SIGNATURE_LENGTH + 8 + 13 + 4;
  if (bytes.length < ihdrEnd) throw truncated('PNG', bytes.length, 'before the end of its IHDR header chunk');
  const view = viewOf(bytes);
  const type = String.fromCharCode(...bytes.subarray(12, 16));
  const length = view.getUint32(8);
  if (type !== 'IHDR' || length !== 13) {
    throw new AppError('CORRUPT_IMAGE', 'The PNG file does not start with a valid IHDR chunk; the header is damaged.');
  }
  // §5.3: the CRC covers the chunk type and data.
  const expectedCrc = view.getUint32(8 + 4 + 4 + 13);
  if (crc32(bytes.subarray(12, 12 + 4 + 13)) !== expectedCrc) {
    throw new AppError('CORRUPT_IMAGE', 'The PNG IHDR chunk fails its CRC check; the header is damaged.');
  }
  const width = view.getUint32(16);
  const height = view.getUint32(20);
  const bitDepth = bytes[24] ?? 0;
  const colourType = bytes[25] ?? 0;
  requirePositive('PNG', width, height);
  if (width > PNG_MAX_DIMENSION || height > PNG_MAX_DIMENSION) {
    throw new AppError('CORRUPT_IMAGE', `The PNG header gives the image size ${width} × ${height}; PNG allows at most 2^31 − 1 per side.`);
  }
  const colour = PNG_COLOUR_TYPES.get(colourType);
  if (!colour || !colour.depths.includes(bitDepth)) {
    throw new AppError('CORRUPT_IMAGE', `The PNG header has colour type ${colourType} with bit depth ${bitDepth}, a combination PNG does not define.`);
  }
  if (bytes[26] !== 0 || bytes[27] !== 0 || (bytes[28] !== 0 && bytes[28] !== 1)) {
    throw new AppError('CORRUPT_IMAGE', 'The PNG header names a compression, filter or interlace method that PNG does not define.');
  }
  return { width, height, channels: colour.channels, bitDepth };
}

/**
 * Whether a PNG's chunk sequence stops before IEND: a chunk runs past the end of the file, or the file
 * ends between chunks. Reads only the 8-byte chunk headers.
 */
export function pngEndsEarly(bytes: Uint8Array): boolean {
  const view = viewOf(bytes);
  let offset = PNG_SIGNATURE_LENGTH;
  while (offset + 8 <= bytes.length) {
    const length = view.getUint32(offset);
    const end = offset + 12 + length;
    if (end > bytes.length) return true;
    if (String.fromCharCode(...bytes.subarray(offset + 4, offset + 8)) === 'IEND') return false;
    offset = end;
  }
  return true;
}

// --- JPEG (ITU-T T.81 Annex B) --------------------------------------------------------------------

/** SOF0–SOF15 except DHT (C4), JPG (C8) and DAC (CC), which share the range (Table B.1). */
function isStartOfFrame(marker: number): boolean {
  return marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 && marker !== 0xcc;
}

/** Markers without a length field (B.1.1.3): TEM and RST0–RST7. */
function isStandalone(marker: number): boolean {
  return marker === 0x01 || (marker >= 0xd0 && marker <= 0xd7);
}

function readJpegHeader(bytes: Uint8Array): ImageHeader {
  if (bytes[0] !== 0xff || bytes[1] !== 0xd8) throw new AppError('CORRUPT_IMAGE', 'The JPEG file does not start with a start-of-image (SOI) marker.');
  const view = viewOf(bytes);
  let offset = 2; // after SOI
  for (;;) {
    if (offset >= bytes.length) throw truncated('JPEG', bytes.length, 'before its frame header (SOF)');
    if (bytes[offset] !== 0xff) {
      throw new AppError('CORRUPT_IMAGE', `The JPEG file has byte 0x${(bytes[offset] ?? 0).toString(16)} at offset ${offset} where a marker should start.`);
    }
    // B.1.1.2: any marker may be preceded by any number of 0xFF fill bytes.
    while (bytes[offset] === 0xff) offset++;
    if (offset >= bytes.length) throw truncated('JPEG', bytes.length, 'inside a marker, before its frame header (SOF)');
    const marker = bytes[offset] ?? 0;
    offset++;
    if (isStandalone(marker)) continue;
    if (marker === 0x00 || marker === 0xd8 || marker === 0xd9 || marker === 0xda) {
      const what = marker === 0xda ? 'a scan (SOS)' : marker === 0xd9 ? 'the end of image (EOI)' : `marker 0xFF${marker.toString(16).padStart(2, '0').toUpperCase()}`;
      throw new AppError('CORRUPT_IMAGE', `The JPEG file has ${what} at offset ${offset - 1}, before any frame header (SOF).`);
    }
    if (offset + 2 > bytes.length) throw truncated('JPEG', bytes.length, 'inside a marker segment length');
    const length = view.getUint16(offset);
    if (length < 2) throw new AppError('CORRUPT_IMAGE', `The JPEG marker segment at offset ${offset - 2} declares length ${length}; the minimum is 2.`);
    if (offset + length > bytes.length) throw truncated('JPEG', bytes.length, 'inside a marker segment, before its frame header (SOF)');
    if (isStartOfFrame(marker)) {
      // B.2.2: Lf (2) P (1) Y (2) X (2) Nf (1), then 3 bytes per component.
      const components = length >= 8 ? (bytes[offset + 7] ?? 0) : 0;
      if (length < 8 || components === 0 || length !== 8 + 3 * components) {
        throw new AppError('CORRUPT_IMAGE', `The JPEG frame header at offset ${offset - 2} is malformed (length ${length}, ${components} components).`);
      }
      const height = view.getUint16(offset + 3);
      const width = view.getUint16(offset + 5);
      if (height === 0) {
        // B.2.2 allows Y = 0 with the height given later by a DNL marker; no common encoder writes that.
        throw new AppError('CORRUPT_IMAGE', 'The JPEG frame header gives height 0 (defined by a later DNL marker), which is not supported.');
      }
      requirePositive('JPEG', width, height);
      return { width, height, channels: components, bitDepth: bytes[offset + 2] ?? 0 };
    }
    offset += length;
  }
}

/** Whether a JPEG lacks the end-of-image (EOI) marker at its end; trailing 0x00/0xFF padding is ignored. */
export function jpegEndsEarly(bytes: Uint8Array): boolean {
  let end = bytes.length;
  while (end > 0 && (bytes[end - 1] === 0x00 || bytes[end - 1] === 0xff)) end--;
  return !(end >= 2 && bytes[end - 2] === 0xff && bytes[end - 1] === 0xd9);
}

// --- TIFF 6.0 and BigTIFF ----------------------------------------------------------------------------

const TIFF_TAG_IMAGE_WIDTH = 256;
const TIFF_TAG_IMAGE_LENGTH = 257;
const TIFF_TAG_BITS_PER_SAMPLE = 258;
const TIFF_TAG_SAMPLES_PER_PIXEL = 277;
/** TIFF 6.0 §2 field types (and BigTIFF's LONG8) this reader takes numbers from, with their sizes. */
const TIFF_INTEGER_TYPES: ReadonlyMap<number, number> = new Map([
  [3, 2], // SHORT
  [4, 4], // LONG
  [16, 8], // LONG8
]);

function readTiffHeader(bytes: Uint8Array): ImageHeader {
  if (bytes.length < 8) throw truncated('TIFF', bytes.length, 'inside its 8-byte header');
  const view = viewOf(bytes);
  const order = String.fromCharCode(bytes[0] ?? 0, bytes[1] ?? 0);
  const little = order === 'II';
  const version = view.getUint16(2, little);
  if ((order !== 'II' && order !== 'MM') || (version !== 42 && version !== 43)) {
    throw new AppError('CORRUPT_IMAGE', 'The TIFF file does not start with a TIFF or BigTIFF header.');
  }
  const big = version === 43;
  if (big) {
    if (bytes.length < 16) throw truncated('BigTIFF', bytes.length, 'inside its 16-byte header');
    if (view.getUint16(4, little) !== 8 || view.getUint16(6, little) !== 0) {
      throw new AppError('CORRUPT_IMAGE', 'The BigTIFF header gives an offset size other than 8; the header is damaged.');
    }
  }
  const format = big ? 'BigTIFF' : 'TIFF';
  const ifdOffset = big ? safeNumber(view.getBigUint64(8, little)) : view.getUint32(4, little);
  const headerLength = big ? 16 : 8;
  if (ifdOffset < headerLength) {
    throw new AppError('CORRUPT_IMAGE', `The ${format} header points its first image directory at byte ${ifdOffset}, inside the header.`);
  }

  // TIFF 6.0 §2 "Image File Directory": a count, then 12-byte entries (BigTIFF: 8-byte count, 20-byte entries).
  const countSize = big ? 8 : 2;
  const entrySize = big ? 20 : 12;
  const valueFieldSize = big ? 8 : 4;
  if (ifdOffset + countSize > bytes.length) throw truncated(format, bytes.length, `before its first image directory at byte ${ifdOffset}`);
  const count = big ? safeNumber(view.getBigUint64(ifdOffset, little)) : view.getUint16(ifdOffset, little);
  if (count === 0) throw new AppError('CORRUPT_IMAGE', `The first ${format} image directory has no entries.`);
  const entriesStart = ifdOffset + countSize;
  if (entriesStart + count * entrySize > bytes.length) throw truncated(format, bytes.length, 'inside its first image directory');

  const values = new Map<number, number>();
  for (let i = 0; i < count; i++) {
    const entry = entriesStart + i * entrySize;
    const tag = view.getUint16(entry, little);
    if (tag !== TIFF_TAG_IMAGE_WIDTH && tag !== TIFF_TAG_IMAGE_LENGTH && tag !== TIFF_TAG_BITS_PER_SAMPLE && tag !== TIFF_TAG_SAMPLES_PER_PIXEL) continue;
    const type = view.getUint16(entry + 2, little);
    const size = TIFF_INTEGER_TYPES.get(type);
    const valueCount = big ? safeNumber(view.getBigUint64(entry + 4, little)) : view.getUint32(entry + 4, little);
    if (size === undefined || (size === 8 && !big) || valueCount === 0) {
      throw new AppError('CORRUPT_IMAGE', `The ${format} tag ${tag} has field type ${type} with ${valueCount} values; an unsigned integer is required.`);
    }
    const field = entry + 4 + (big ? 8 : 4);
    // A value that does not fit in the entry's value field is stored elsewhere, at the offset the field holds.
    let at = field;
    if (size * valueCount > valueFieldSize) {
      at = big ? safeNumber(view.getBigUint64(field, little)) : view.getUint32(field, little);
      if (at + size > bytes.length) throw truncated(format, bytes.length, `before the value of tag ${tag} at byte ${at}`);
    }
    values.set(tag, size === 2 ? view.getUint16(at, little) : size === 4 ? view.getUint32(at, little) : safeNumber(view.getBigUint64(at, little)));
  }

  const width = values.get(TIFF_TAG_IMAGE_WIDTH);
  const height = values.get(TIFF_TAG_IMAGE_LENGTH);
  if (width === undefined || height === undefined) {
    throw new AppError('CORRUPT_IMAGE', `The first ${format} image directory has no ImageWidth (256) or ImageLength (257).`);
  }
  requirePositive(format, width, height);
  const header: ImageHeader = { width, height, channels: values.get(TIFF_TAG_SAMPLES_PER_PIXEL) ?? 1 };
  const bitDepth = values.get(TIFF_TAG_BITS_PER_SAMPLE);
  if (bitDepth !== undefined) header.bitDepth = bitDepth;
  return header;
}

/** A 64-bit offset or count as a number; anything beyond 2^53 cannot be a real position in a file. */
function safeNumber(value: bigint): number {
  return value > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER : Number(value);
}

// --- DICOM -----------------------------------------------------------------------------------------

function readDicomHeader(bytes: Uint8Array): ImageHeader {
  const attributes = readDicomImageAttributes(bytes);
  const { rows, columns } = attributes;
  if (rows === undefined || columns === undefined) {
    throw new AppError('CORRUPT_IMAGE', 'The DICOM file has no Rows (0028,0010) or Columns (0028,0011); it does not hold an image.');
  }
  requirePositive('DICOM', columns, rows);
  const frames = attributes.numberOfFrames ?? 1;
  if (frames < 1) throw new AppError('CORRUPT_IMAGE', `The DICOM NumberOfFrames (0028,0008) is ${frames}; it must be at least 1.`);
  const header: ImageHeader = { width: columns, height: rows, frames };
  if (attributes.samplesPerPixel !== undefined) header.channels = attributes.samplesPerPixel;
  if (attributes.bitsAllocated !== undefined) header.bitDepth = attributes.bitsAllocated;
  return header;
}
