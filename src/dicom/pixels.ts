import { inflateRawSync } from 'node:zlib';
import { AppError } from '../core/errors.ts';
import type { RgbImage } from '../imaging/raster.ts';
import { checkPixelLimit } from '../imaging/limits.ts';
import { type CompressedEncoding, decodeCompressedFrame, decodeRle, type FrameExpectation, planarToInterleaved } from './codecs.ts';
import { Deadline, DICOM_LIMIT_DEFAULTS, type DicomLimits, type Fragment, type PixelDataLocation } from './guard.ts';
import { type FrameTransforms, frameTransforms, type ParsedDicom, parseDicom, readPalette, readText } from './parse.ts';
import { describeTransferSyntax, TRANSFER_SYNTAXES } from './uids.ts';

// DICOM pixels: one frame of any supported transfer syntax to its stored values, then to the values a
// model or a viewer wants. Greyscale goes stored value → Modality LUT (rescale, PS3.3 C.11.1) → VOI LUT
// (window, C.11.2; the frame's own range when there is none) → 8 bits, inverted for MONOCHROME1; colour
// (RGB, YBR_FULL, YBR_FULL_422, PALETTE COLOR) goes to 8-bit RGB. Every size is checked against the
// limits before anything is allocated, and loops over pixels look at the deadline.

export interface DecodeOptions {
  limits: DicomLimits;
  /** Frame to decode, from 0 (default 0). */
  frame?: number;
}

/** The validated Image Pixel module of a file. */
export interface PixelLayout {
  rows: number;
  columns: number;
  samplesPerPixel: 1 | 3;
  bitsAllocated: 1 | 8 | 16 | 32;
  bitsStored: number;
  signed: boolean;
  photometric: string;
  planarConfiguration: 0 | 1;
  frames: number;
}

/** One frame's samples before any rendering: unsigned bit patterns, interleaved by pixel. */
export interface FrameSamples {
  layout: PixelLayout;
  frame: number;
  /** Width 8, 16 or 32 bits; for BitsAllocated 1, one 0/1 value per byte. */
  data: Uint8Array | Uint16Array | Uint32Array;
  /** The colour space of `data`: the Photometric Interpretation, or RGB where the codec converted it. */
  colour: string;
  /** Bits holding the value: BitsStored, or the JPEG 2000 precision where the codestream says otherwise. */
  bitsStored: number;
}

/** Native values of one greyscale frame. */
export interface MonochromeFrame {
  width: number;
  height: number;
  frame: number;
  frames: number;
  photometric: 'MONOCHROME1' | 'MONOCHROME2';
  /** Stored values with bits above BitsStored removed and the sign applied (PixelRepresentation). */
  stored: Int32Array | Uint32Array;
  /** Modality values: stored × RescaleSlope + RescaleIntercept (e.g. Hounsfield units for CT). */
  values: Float32Array;
  transforms: FrameTransforms;
}

function unsupported(message: string, details?: Record<string, unknown>): AppError {
  return new AppError('DICOM_PIXELS_UNSUPPORTED', message, details ? { details } : {});
}

function required<T>(value: T | undefined, name: string): T {
  if (value === undefined) throw new AppError('CORRUPT_IMAGE', `The DICOM image has no ${name}, which PS3.3 C.7.6.3 requires.`);
  return value;
}

const GREYSCALE = new Set(['MONOCHROME1', 'MONOCHROME2']);
const COLOUR = new Set(['RGB', 'YBR_FULL', 'YBR_FULL_422', 'YBR_ICT', 'YBR_RCT']);

/** Checks the Image Pixel module and the pixel budget; nothing is allocated before this passes. */
export function pixelLayout(parsed: ParsedDicom, limits: DicomLimits): PixelLayout {
  const a = parsed.attributes;
  if (!parsed.guarded.pixelData) {
    if (parsed.guarded.floatPixelData) throw unsupported('The DICOM object holds Float or Double Float Pixel Data (7FE0,0008/0009), which is not decoded; send it with integer Pixel Data.');
    if (a.rows === undefined && a.columns === undefined) {
      const sopClass = readText(parsed.dataSet, 0x00080016, 'SOPClassUID', 'UI') ?? readText(parsed.dataSet, 0x00020002, 'MediaStorageSOPClassUID', 'UI');
      throw new AppError('DICOM_NO_IMAGE', `The DICOM object${sopClass ? ` (SOP Class ${sopClass})` : ''} holds no image (no Pixel Data, Rows or Columns); it is a report, plan, directory or other non-image object.`, { details: sopClass ? { sopClassUid: sopClass } : {} });
    }
    throw new AppError('CORRUPT_IMAGE', 'The DICOM file has no Pixel Data (7FE0,0010).');
  }
  const rows = required(a.rows, 'Rows (0028,0010)');
  const columns = required(a.columns, 'Columns (0028,0011)');
  const samplesPerPixel = required(a.samplesPerPixel, 'SamplesPerPixel (0028,0002)');
  const photometric = required(a.photometricInterpretation, 'PhotometricInterpretation (0028,0004)');
  const bitsAllocated = required(a.bitsAllocated, 'BitsAllocated (0028,0100)');
  const bitsStored = a.bitsStored ?? bitsAllocated;
  const frames = a.numberOfFrames ?? 1;
  if (rows === 0 || columns === 0 || frames < 1) {
    throw new AppError('CORRUPT_IMAGE', `The DICOM image is ${columns} × ${rows} with ${frames} frames; all must be at least 1.`);
  }
  // Limits before allocation: the whole pixel data, as declared, and the frame about to be decoded.
  checkPixelLimit({ width: columns, height: rows, frames }, limits.maxPixels);
  if (bitsStored < 1 || bitsStored > bitsAllocated) {
    throw new AppError('CORRUPT_IMAGE', `The DICOM BitsStored (${bitsStored}) must be between 1 and BitsAllocated (${bitsAllocated}).`);
  }
  const describe = `${photometric}, ${samplesPerPixel} sample(s) per pixel, ${bitsAllocated} bits allocated, ${bitsStored} stored`;
  const details = { photometricInterpretation: photometric, samplesPerPixel, bitsAllocated, bitsStored };
  const greyscale = GREYSCALE.has(photometric) && samplesPerPixel === 1 && [1, 8, 16, 32].includes(bitsAllocated);
  const palette = photometric === 'PALETTE COLOR' && samplesPerPixel === 1 && (bitsAllocated === 8 || bitsAllocated === 16);
  const colour = COLOUR.has(photometric) && samplesPerPixel === 3 && [8, 16, 32].includes(bitsAllocated) && a.pixelRepresentation !== 1;
  if (!greyscale && !palette && !colour) {
    throw unsupported(
      `DICOM pixels of type ${describe} are not decoded; supported are MONOCHROME1/MONOCHROME2 (1, 8, 16 or 32 bits allocated), PALETTE COLOR (8 or 16), and unsigned RGB, YBR_FULL, YBR_FULL_422, YBR_ICT, YBR_RCT (8, 16 or 32).`,
      details,
    );
  }
  // PS3.5 §8.1.1: native pixel data is stored from bit 0; a HighBit other than BitsStored − 1 was only
  // allowed by retired encodings.
  if (a.highBit !== undefined && a.highBit !== bitsStored - 1) {
    throw unsupported(`DICOM HighBit ${a.highBit} with BitsStored ${bitsStored} is not decoded; only HighBit = BitsStored − 1 is.`, details);
  }
  const native = parsed.guarded.pixelData.length !== undefined;
  const planar = a.planarConfiguration ?? 0;
  if (samplesPerPixel === 3 && native && a.planarConfiguration === undefined) {
    throw new AppError('CORRUPT_IMAGE', `The DICOM ${photometric} image has no PlanarConfiguration (0028,0006), which PS3.3 C.7.6.3 requires when SamplesPerPixel is above 1.`);
  }
  if (planar !== 0 && planar !== 1) throw new AppError('CORRUPT_IMAGE', `The DICOM PlanarConfiguration is ${planar}; it must be 0 or 1.`);
  if (photometric === 'YBR_FULL_422' && native && (columns % 2 !== 0 || planar !== 0 || bitsAllocated !== 8)) {
    throw unsupported(`Uncompressed DICOM YBR_FULL_422 is decoded with 8 bits, an even number of columns and PlanarConfiguration 0; this image is ${describe}, ${columns} columns, PlanarConfiguration ${planar}.`, details);
  }
  return {
    rows,
    columns,
    samplesPerPixel: samplesPerPixel as 1 | 3,
    bitsAllocated: bitsAllocated as PixelLayout['bitsAllocated'],
    bitsStored,
    signed: a.pixelRepresentation === 1,
    photometric,
    planarConfiguration: planar,
    frames,
  };
}

function frameIndex(layout: PixelLayout, frame: number | undefined): number {
  const index = frame ?? 0;
  if (!Number.isInteger(index) || index < 0 || index >= layout.frames) {
    throw new AppError('INVALID_REQUEST', `Frame ${index} was asked for; the DICOM image has ${layout.frames} frame(s), numbered 0 to ${layout.frames - 1}.`, { details: { frames: layout.frames } });
  }
  return index;
}

/** Bytes of one native frame (PS3.5 §8.1.1); YBR_FULL_422 stores two samples per pixel on average. */
function nativeFrameBits(layout: PixelLayout): number {
  const samples = layout.photometric === 'YBR_FULL_422' ? 2 : layout.samplesPerPixel;
  return layout.rows * layout.columns * samples * layout.bitsAllocated;
}

// --- frame extraction ----------------------------------------------------------------------------------

/**
 * Reads native (uncompressed) samples of one frame starting `bitOffset` bits into `source`. In a big
 * endian data set, OW values are 16-bit words in big endian order (PS3.5 §8.1.1, A.3): 8- and 1-bit
 * samples are then found in swapped byte pairs, wider ones are read big endian.
 */
function readNative(source: Uint8Array, bitOffset: number, layout: PixelLayout, littleEndian: boolean, wordSwapped: boolean, deadline: Deadline): Uint8Array | Uint16Array | Uint32Array {
  const count = nativeFrameBits(layout) / layout.bitsAllocated;
  const view = new DataView(source.buffer, source.byteOffset, source.byteLength);
  const swap = wordSwapped ? 1 : 0;
  const check = (i: number): void => {
    if ((i & 0xfffff) === 0) deadline.check('reading native pixel data');
  };
  switch (layout.bitsAllocated) {
    case 1: {
      const out = new Uint8Array(count);
      for (let i = 0; i < count; i++) {
        check(i);
        const bit = bitOffset + i;
        out[i] = ((source[(bit >>> 3) ^ swap] ?? 0) >> (bit & 7)) & 1;
      }
      return out;
    }
    case 8: {
      const start = bitOffset / 8;
      // A copy, never a view of the file (Buffer#slice would be one).
      if (!swap) return new Uint8Array(source.subarray(start, start + count));
      const out = new Uint8Array(count);
      for (let i = 0; i < count; i++) {
        check(i);
        out[i] = source[(start + i) ^ 1] ?? 0;
      }
      return out;
    }
    case 16: {
      const start = bitOffset / 8;
      const out = new Uint16Array(count);
      for (let i = 0; i < count; i++) {
        check(i);
        out[i] = view.getUint16(start + 2 * i, littleEndian);
      }
      return out;
    }
    case 32: {
      const start = bitOffset / 8;
      const out = new Uint32Array(count);
      for (let i = 0; i < count; i++) {
        check(i);
        out[i] = view.getUint32(start + 4 * i, littleEndian);
      }
      return out;
    }
  }
}

/** Uncompressed YBR_FULL_422 (PS3.3 C.7.6.3.1.2): Y1 Y2 Cb Cr for each pair of pixels → Y Cb Cr per pixel. */
function expand422(packed: Uint8Array, layout: PixelLayout): Uint8Array {
  const pixels = layout.rows * layout.columns;
  const out = new Uint8Array(pixels * 3);
  for (let pair = 0; pair < pixels / 2; pair++) {
    const y1 = packed[4 * pair] ?? 0;
    const y2 = packed[4 * pair + 1] ?? 0;
    const cb = packed[4 * pair + 2] ?? 0;
    const cr = packed[4 * pair + 3] ?? 0;
    out.set([y1, cb, cr, y2, cb, cr], 6 * pair);
  }
  return out;
}

function nativeSamples(parsed: ParsedDicom, pixelData: PixelDataLocation, layout: PixelLayout, frame: number): FrameSamples {
  const { guarded, deadline } = parsed;
  const length = pixelData.length ?? 0;
  const frameBits = nativeFrameBits(layout);
  const neededBytes = Math.ceil((frameBits * layout.frames) / 8);
  if (length < neededBytes) {
    const samples = layout.photometric === 'YBR_FULL_422' ? '2 (YBR_FULL_422)' : String(layout.samplesPerPixel);
    throw new AppError(
      'TRUNCATED_IMAGE',
      `The DICOM Pixel Data holds ${length} bytes, but ${layout.rows} rows × ${layout.columns} columns × ${samples} samples × ${layout.bitsAllocated} bits × ${layout.frames} frames need ${neededBytes}.`,
    );
  }
  const source = guarded.bytes.subarray(pixelData.valueOffset, pixelData.valueOffset + length);
  const wordSwapped = !guarded.littleEndian && pixelData.vr === 'OW' && layout.bitsAllocated <= 8;
  let data = readNative(source, frame * frameBits, layout, guarded.littleEndian, wordSwapped, deadline);
  let colour = layout.photometric;
  if (layout.photometric === 'YBR_FULL_422') {
    data = expand422(data as Uint8Array, layout);
    colour = 'YBR_FULL';
  } else if (layout.samplesPerPixel === 3 && layout.planarConfiguration === 1) {
    // PlanarConfiguration 1: all first samples, then all second, then all third (C.7.6.3.1.3).
    data = planarToInterleaved(data);
  }
  return { layout, frame, data, colour, bitsStored: layout.bitsStored };
}

/**
 * The fragments holding frame `frame` (PS3.5 A.4): from the Basic Offset Table, else the Extended Offset
 * Table, else one fragment per frame, else (one frame) all of them, else by where codestreams start.
 */
function frameFragments(parsed: ParsedDicom, pixelData: PixelDataLocation, layout: PixelLayout, frame: number, encoding: string): Fragment[] {
  const fragments = pixelData.fragments ?? [];
  const table = pixelData.basicOffsetTable ?? [];
  if (fragments.length === 0) throw new AppError('CORRUPT_IMAGE', 'The DICOM encapsulated Pixel Data has no fragments.');
  if (layout.frames === 1) return fragments;
  const itemStart = (f: Fragment): number => f.offset - 8;
  const firstItem = itemStart(fragments[0] as Fragment);
  const byOffsets = (offsets: number[]): Fragment[] => {
    const start = offsets[frame] ?? -1;
    const end = frame + 1 < offsets.length ? (offsets[frame + 1] ?? -1) : Infinity;
    const selected = fragments.filter((f) => itemStart(f) - firstItem >= start && itemStart(f) - firstItem < end);
    if (selected.length === 0 || itemStart(selected[0] as Fragment) - firstItem !== start) {
      throw new AppError('CORRUPT_IMAGE', `The DICOM offset table points frame ${frame} at byte ${start} of the pixel data, where no fragment starts.`);
    }
    return selected;
  };
  if (table.length > 0) {
    if (table.length !== layout.frames) throw new AppError('CORRUPT_IMAGE', `The DICOM Basic Offset Table has ${table.length} entries for ${layout.frames} frames.`);
    return byOffsets(table);
  }
  const extended = parsed.guarded.extendedOffsetTable;
  if (extended && extended.offsets.length === 8 * layout.frames) {
    const view = new DataView(parsed.guarded.bytes.buffer, parsed.guarded.bytes.byteOffset, parsed.guarded.bytes.byteLength);
    const offsets = Array.from({ length: layout.frames }, (_, i) => Number(view.getBigUint64(extended.offsets.valueOffset + 8 * i, true)));
    return byOffsets(offsets);
  }
  if (fragments.length === layout.frames) return [fragments[frame] as Fragment];
  // Without a table, a frame starts at each fragment that starts a codestream (SOI for JPEG and
  // JPEG-LS, SOC for JPEG 2000); RLE and uncompressed frames are one fragment each.
  const bytes = parsed.guarded.bytes;
  const startsFrame = (f: Fragment): boolean =>
    encoding === 'jpeg2000' ? bytes[f.offset] === 0xff && bytes[f.offset + 1] === 0x4f : (encoding === 'jpeg' || encoding === 'jpeg-lossless' || encoding === 'jpeg-ls') && bytes[f.offset] === 0xff && bytes[f.offset + 1] === 0xd8;
  const starts = fragments.map((f, i) => (startsFrame(f) ? i : -1)).filter((i) => i >= 0);
  if (starts.length === layout.frames && starts[0] === 0) {
    const from = starts[frame] ?? 0;
    const to = starts[frame + 1] ?? fragments.length;
    return fragments.slice(from, to);
  }
  throw new AppError('CORRUPT_IMAGE', `The DICOM encapsulated Pixel Data has ${fragments.length} fragments for ${layout.frames} frames and no offset table that says which belong to which frame.`);
}

function concatenate(bytes: Uint8Array, fragments: Fragment[]): Uint8Array {
  if (fragments.length === 1) {
    const only = fragments[0] as Fragment;
    return bytes.subarray(only.offset, only.offset + only.length);
  }
  const out = new Uint8Array(fragments.reduce((sum, f) => sum + f.length, 0));
  let at = 0;
  for (const f of fragments) {
    out.set(bytes.subarray(f.offset, f.offset + f.length), at);
    at += f.length;
  }
  return out;
}

/** Decodes one frame to its samples, whatever the transfer syntax. */
export async function decodeFrameSamples(parsed: ParsedDicom, limits: DicomLimits, frame?: number): Promise<FrameSamples> {
  const uid = parsed.guarded.transferSyntaxUid;
  const syntax = TRANSFER_SYNTAXES[uid];
  if (!syntax || syntax.pixels === 'not-decoded') {
    throw unsupported(
      `DICOM pixel data in transfer syntax ${describeTransferSyntax(uid)} is not decoded; supported are uncompressed (implicit/explicit VR little endian, explicit VR big endian, deflated), RLE Lossless, JPEG Baseline/Extended (8-bit), JPEG Lossless, JPEG-LS and JPEG 2000. Convert it (e.g. with dcmconv or gdcmconv) or send a PNG export.`,
      { transferSyntaxUid: uid },
    );
  }
  const layout = pixelLayout(parsed, limits);
  const index = frameIndex(layout, frame);
  const pixelData = parsed.guarded.pixelData as PixelDataLocation;
  const native = pixelData.length !== undefined;
  if (syntax.pixels === 'native') {
    if (!native) throw new AppError('CORRUPT_IMAGE', 'The DICOM Pixel Data has an undefined (encapsulated) length, but the transfer syntax is uncompressed.');
    return nativeSamples(parsed, pixelData, layout, index);
  }
  if (native) throw new AppError('CORRUPT_IMAGE', `The DICOM Pixel Data has a defined length, but transfer syntax ${describeTransferSyntax(uid)} requires encapsulated (fragmented) pixel data.`);

  const bytes = concatenate(parsed.guarded.bytes, frameFragments(parsed, pixelData, layout, index, syntax.pixels));
  const expect: FrameExpectation = { rows: layout.rows, columns: layout.columns, samples: layout.samplesPerPixel, bitsAllocated: layout.bitsAllocated, bitsStored: layout.bitsStored, what: `frame ${index}` };
  const frameBytes = Math.ceil(nativeFrameBits(layout) / 8);
  const asNative = (frameData: Uint8Array): FrameSamples => {
    if (frameData.length < frameBytes) throw new AppError('TRUNCATED_IMAGE', `DICOM frame ${index} holds ${frameData.length} bytes; ${frameBytes} are needed.`);
    const single: PixelDataLocation = { vr: 'OB', valueOffset: 0, length: frameData.length };
    return nativeSamples({ ...parsed, guarded: { ...parsed.guarded, bytes: frameData, littleEndian: true } }, single, { ...layout, frames: 1 }, 0);
  };
  switch (syntax.pixels) {
    case 'encapsulated-uncompressed':
      return { ...asNative(bytes), frame: index };
    case 'deflate-frame': {
      let inflated: Buffer;
      try {
        inflated = inflateRawSync(bytes, { maxOutputLength: frameBytes });
      } catch (error) {
        throw new AppError('CORRUPT_IMAGE', `DICOM frame ${index} cannot be inflated to its ${frameBytes} bytes (${error instanceof Error ? error.message : String(error)}).`, { cause: error });
      }
      return { ...asNative(inflated), frame: index };
    }
    case 'rle': {
      if (layout.bitsAllocated === 1) throw unsupported('DICOM RLE with BitsAllocated 1 is not decoded.');
      const data = decodeRle(bytes, expect, parsed.deadline);
      return { layout, frame: index, data, colour: layout.photometric, bitsStored: layout.bitsStored };
    }
    default: {
      if (layout.bitsAllocated === 1 || layout.bitsAllocated === 32) throw unsupported(`DICOM ${syntax.name} with BitsAllocated ${layout.bitsAllocated} is not decoded.`);
      const decoded = await decodeCompressedFrame(syntax.pixels as CompressedEncoding, bytes, expect, layout.photometric);
      let bitsStored = layout.bitsStored;
      // pydicom's JPEG 2000 correction: when the codestream's precision differs from BitsStored, the
      // codestream (what the encoder actually wrote) decides where the sign bit is.
      if (decoded.precision !== undefined && decoded.precision !== bitsStored && layout.samplesPerPixel === 1) bitsStored = decoded.precision;
      const colour = decoded.convertedTo ?? (layout.photometric === 'YBR_ICT' || layout.photometric === 'YBR_RCT' ? 'RGB' : layout.photometric);
      return { layout, frame: index, data: decoded.data, colour, bitsStored };
    }
  }
}

// --- greyscale -----------------------------------------------------------------------------------------

/** Stored values: bits above BitsStored removed (PS3.5 §8.1.1), two's complement sign applied. */
function storedValues(samples: FrameSamples, deadline: Deadline): Int32Array | Uint32Array {
  const { data, bitsStored } = samples;
  const signed = samples.layout.signed;
  const n = data.length;
  if (bitsStored === 32) {
    const out = signed ? new Int32Array(n) : new Uint32Array(n);
    out.set(signed ? new Int32Array(data.buffer, data.byteOffset, n) : data);
    return out;
  }
  const out = new Int32Array(n);
  const mask = 2 ** bitsStored - 1;
  const signBit = 2 ** (bitsStored - 1);
  const range = 2 ** bitsStored;
  for (let i = 0; i < n; i++) {
    if ((i & 0xfffff) === 0) deadline.check('masking stored values');
    const code = (data[i] ?? 0) & mask;
    out[i] = signed && code >= signBit ? code - range : code;
  }
  return out;
}

/** The VOI LUT of PS3.3 C.11.2.1.2 (LINEAR, LINEAR_EXACT, SIGMOID) to 0..255, or min–max when there is no window. */
function voiFunction(transforms: FrameTransforms, values: ArrayLike<number>, toModality: (stored: number) => number): (x: number) => number {
  const window = transforms.window;
  if (window) {
    const { center: c, width: w } = window;
    if (window.function === 'SIGMOID') return (x) => 255 / (1 + Math.exp((-4 * (x - c)) / w));
    if (window.function === 'LINEAR_EXACT') return (x) => (x <= c - w / 2 ? 0 : x > c + w / 2 ? 255 : ((x - c) / w + 0.5) * 255);
    const lower = c - 0.5 - (w - 1) / 2;
    const upper = c - 0.5 + (w - 1) / 2;
    return (x) => (x <= lower ? 0 : x > upper ? 255 : ((x - (c - 0.5)) / (w - 1) + 0.5) * 255);
  }
  let min = Infinity;
  let max = -Infinity;
  for (let i = 0; i < values.length; i++) {
    const value = toModality(values[i] ?? 0);
    if (value < min) min = value;
    if (value > max) max = value;
  }
  const range = max - min;
  return (x) => (range === 0 ? 0 : ((x - min) / range) * 255);
}

function monochromeFromSamples(parsed: ParsedDicom, samples: FrameSamples): MonochromeFrame {
  const { layout } = samples;
  if (!GREYSCALE.has(layout.photometric)) {
    throw new AppError('INVALID_REQUEST', `The DICOM image is ${layout.photometric}; native greyscale values exist only for MONOCHROME1 and MONOCHROME2.`);
  }
  const stored = storedValues(samples, parsed.deadline);
  const transforms = frameTransforms(parsed.dataSet, samples.frame);
  const values = new Float32Array(stored.length);
  for (let i = 0; i < stored.length; i++) values[i] = (stored[i] ?? 0) * transforms.rescaleSlope + transforms.rescaleIntercept;
  return { width: layout.columns, height: layout.rows, frame: samples.frame, frames: layout.frames, photometric: layout.photometric as MonochromeFrame['photometric'], stored, values, transforms };
}

function greyscaleToRgb(parsed: ParsedDicom, samples: FrameSamples): Buffer {
  const { layout } = samples;
  const stored = storedValues(samples, parsed.deadline);
  const transforms = frameTransforms(parsed.dataSet, samples.frame);
  const toModality = (s: number): number => s * transforms.rescaleSlope + transforms.rescaleIntercept;
  const voi = voiFunction(transforms, stored, toModality);
  const invert = layout.photometric === 'MONOCHROME1'; // C.7.6.3.1.2: the minimum is white
  const grey = (s: number): number => {
    const value = Math.min(255, Math.max(0, Math.round(voi(toModality(s)))));
    return invert ? 255 - value : value;
  };
  const out = Buffer.allocUnsafe(stored.length * 3);
  // A table over every possible stored value when that is smaller than the frame, else pixel by pixel.
  const lutSize = 2 ** samples.bitsStored;
  if (lutSize <= Math.max(65536, stored.length) && samples.bitsStored <= 16) {
    const offset = layout.signed ? lutSize / 2 : 0;
    const lut = new Uint8Array(lutSize);
    for (let code = 0; code < lutSize; code++) lut[code] = grey(code - offset);
    for (let i = 0; i < stored.length; i++) {
      if ((i & 0xfffff) === 0) parsed.deadline.check('windowing');
      out.fill(lut[(stored[i] ?? 0) + offset] ?? 0, 3 * i, 3 * i + 3);
    }
    return out;
  }
  for (let i = 0; i < stored.length; i++) {
    if ((i & 0xfffff) === 0) parsed.deadline.check('windowing');
    out.fill(grey(stored[i] ?? 0), 3 * i, 3 * i + 3);
  }
  return out;
}

// --- colour --------------------------------------------------------------------------------------------

/** YCbCr (ITU-R BT.601, full range, as JFIF and PS3.3 C.7.6.3.1.2 YBR_FULL) to RGB, in place on 8-bit samples. */
function ybrFullToRgb(data: Uint8Array): void {
  for (let i = 0; i + 2 < data.length; i += 3) {
    const y = data[i] ?? 0;
    const cb = (data[i + 1] ?? 0) - 128;
    const cr = (data[i + 2] ?? 0) - 128;
    data[i] = Math.min(255, Math.max(0, Math.round(y + 1.402 * cr)));
    data[i + 1] = Math.min(255, Math.max(0, Math.round(y - 0.344136 * cb - 0.714136 * cr)));
    data[i + 2] = Math.min(255, Math.max(0, Math.round(y + 1.772 * cb)));
  }
}

/** Samples of more than 8 bits to 8: the top 8 of BitsStored. */
function to8Bits(data: Uint8Array | Uint16Array | Uint32Array, bitsStored: number): Uint8Array {
  if (data instanceof Uint8Array && bitsStored >= 8) return new Uint8Array(data);
  const out = new Uint8Array(data.length);
  const mask = 2 ** bitsStored - 1;
  const scale = bitsStored >= 8 ? 2 ** (bitsStored - 8) : 1 / 2 ** (8 - bitsStored);
  for (let i = 0; i < data.length; i++) out[i] = Math.min(255, Math.floor(((data[i] ?? 0) & mask) / scale));
  return out;
}

function colourToRgb(samples: FrameSamples): Buffer {
  const rgb = to8Bits(samples.data, samples.bitsStored);
  if (samples.colour === 'YBR_FULL' || samples.colour === 'YBR_FULL_422') ybrFullToRgb(rgb);
  else if (samples.colour !== 'RGB') throw unsupported(`DICOM colour pixels in ${samples.colour} after decoding are not converted to RGB.`);
  return Buffer.from(rgb.buffer, rgb.byteOffset, rgb.byteLength);
}

function paletteToRgb(parsed: ParsedDicom, samples: FrameSamples): Buffer {
  const channels = readPalette(parsed);
  const n = samples.data.length;
  const out = Buffer.allocUnsafe(n * 3);
  const mask = 2 ** samples.bitsStored - 1;
  for (let c = 0; c < 3; c++) {
    const { entries, firstMapped, bits, data } = channels[c] as (typeof channels)[number];
    // Values below the first mapped one take the first entry, above the last take the last (C.7.6.3.1.5).
    const shift = bits === 16 ? 8 : 0;
    for (let i = 0; i < n; i++) {
      const index = Math.min(entries - 1, Math.max(0, ((samples.data[i] ?? 0) & mask) - firstMapped));
      out[3 * i + c] = ((data[index] ?? 0) >> shift) & 0xff;
    }
  }
  return out;
}

// --- entry points ---------------------------------------------------------------------------------------

function start(bytes: Uint8Array, limits: DicomLimits): ParsedDicom {
  return parseDicom(bytes, limits, 'full', new Deadline(limits.timeoutMs ?? DICOM_LIMIT_DEFAULTS.timeoutMs));
}

/** One frame (default 0) as interleaved 8-bit RGB, as the classifier and previews take it. */
export async function decodeDicomRgb(bytes: Uint8Array, options: DecodeOptions): Promise<RgbImage & { frame: number; frames: number }> {
  const parsed = start(bytes, options.limits);
  const samples = await decodeFrameSamples(parsed, options.limits, options.frame);
  const { layout } = samples;
  let data: Buffer;
  if (GREYSCALE.has(layout.photometric)) data = greyscaleToRgb(parsed, samples);
  else if (layout.photometric === 'PALETTE COLOR') data = paletteToRgb(parsed, samples);
  else data = colourToRgb(samples);
  parsed.deadline.check('finishing the frame');
  return { data, width: layout.columns, height: layout.rows, frame: samples.frame, frames: layout.frames };
}

/** One greyscale frame's native values: stored, and rescaled to modality units. */
export async function decodeDicomMonochrome(bytes: Uint8Array, options: DecodeOptions): Promise<MonochromeFrame> {
  const parsed = start(bytes, options.limits);
  return monochromeFromSamples(parsed, await decodeFrameSamples(parsed, options.limits, options.frame));
}

/** One frame's samples as decoded, before any rendering (for comparisons with other decoders). */
export async function decodeDicomSamples(bytes: Uint8Array, options: DecodeOptions): Promise<FrameSamples & { stored?: Int32Array | Uint32Array }> {
  const parsed = start(bytes, options.limits);
  const samples = await decodeFrameSamples(parsed, options.limits, options.frame);
  return GREYSCALE.has(samples.layout.photometric) ? { ...samples, stored: storedValues(samples, parsed.deadline) } : samples;
}
