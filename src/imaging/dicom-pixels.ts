import { AppError } from '../core/errors.ts';
import {
  type DicomImageAttributes,
  EXPLICIT_VR_LITTLE_ENDIAN,
  IMPLICIT_VR_LITTLE_ENDIAN,
  describeTransferSyntax,
  readDicomImageAttributes,
} from './dicom-part10.ts';
import { checkPixelLimit } from './limits.ts';
import type { RgbImage } from './raster.ts';

// Minimal DICOM pixel decoding: the first frame of uncompressed (native) little-endian pixel data,
// greyscale (MONOCHROME1/2, 8 or 16 bits allocated) or 8-bit RGB. Greyscale goes through the Modality
// LUT (rescale) and the VOI LUT (window) of PS3.3 C.11 to 8 bits, then to equal R, G and B. Everything
// else is refused with DICOM_PIXELS_UNSUPPORTED rather than rendered wrongly.

interface PixelLayout {
  rows: number;
  columns: number;
  samplesPerPixel: number;
  bitsAllocated: number;
  bitsStored: number;
  signed: boolean;
  photometric: string;
  planarConfiguration: number;
  frames: number;
}

/** Decodes the first frame of a DICOM Part 10 file to interleaved 8-bit RGB. */
export function decodeDicomRgb(bytes: Uint8Array, limits: { maxPixels: number }): RgbImage {
  const attributes = readDicomImageAttributes(bytes);
  const { transferSyntaxUid } = attributes;
  if (transferSyntaxUid !== EXPLICIT_VR_LITTLE_ENDIAN && transferSyntaxUid !== IMPLICIT_VR_LITTLE_ENDIAN) {
    throw new AppError(
      'DICOM_PIXELS_UNSUPPORTED',
      `DICOM pixel data in transfer syntax ${describeTransferSyntax(transferSyntaxUid)} is not decoded; only uncompressed Explicit VR Little Endian and Implicit VR Little Endian are.`,
      { details: { transferSyntaxUid } },
    );
  }
  const layout = pixelLayout(attributes);
  checkPixelLimit({ width: layout.columns, height: layout.rows }, limits.maxPixels);
  const frame = firstFrame(bytes, attributes, layout);
  const data = layout.photometric === 'RGB' ? interleaveRgb(frame, layout) : greyscaleToRgb(frame, layout, attributes);
  return { data, width: layout.columns, height: layout.rows };
}

function required<T>(value: T | undefined, name: string): T {
  if (value === undefined) throw new AppError('CORRUPT_IMAGE', `The DICOM image has no ${name}, which PS3.3 C.7.6.3 requires.`);
  return value;
}

function pixelLayout(attributes: DicomImageAttributes): PixelLayout {
  const rows = required(attributes.rows, 'Rows (0028,0010)');
  const columns = required(attributes.columns, 'Columns (0028,0011)');
  const samplesPerPixel = required(attributes.samplesPerPixel, 'SamplesPerPixel (0028,0002)');
  const photometric = required(attributes.photometricInterpretation, 'PhotometricInterpretation (0028,0004)');
  const bitsAllocated = required(attributes.bitsAllocated, 'BitsAllocated (0028,0100)');
  const bitsStored = attributes.bitsStored ?? bitsAllocated;
  const frames = attributes.numberOfFrames ?? 1;
  if (rows === 0 || columns === 0 || frames < 1) {
    throw new AppError('CORRUPT_IMAGE', `The DICOM image is ${columns} × ${rows} with ${frames} frames; all must be at least 1.`);
  }
  if (bitsStored < 1 || bitsStored > bitsAllocated) {
    throw new AppError('CORRUPT_IMAGE', `The DICOM BitsStored (${bitsStored}) must be between 1 and BitsAllocated (${bitsAllocated}).`);
  }
  const layout: PixelLayout = {
    rows,
    columns,
    samplesPerPixel,
    bitsAllocated,
    bitsStored,
    signed: attributes.pixelRepresentation === 1,
    photometric,
    planarConfiguration: attributes.planarConfiguration ?? 0,
    frames,
  };
  const describe = `${photometric}, ${samplesPerPixel} sample(s) per pixel, ${bitsAllocated} bits allocated, ${bitsStored} stored`;
  const monochrome = (photometric === 'MONOCHROME1' || photometric === 'MONOCHROME2') && samplesPerPixel === 1 && (bitsAllocated === 8 || bitsAllocated === 16);
  const rgb = photometric === 'RGB' && samplesPerPixel === 3 && bitsAllocated === 8 && bitsStored === 8 && !layout.signed;
  if (!monochrome && !rgb) {
    throw new AppError(
      'DICOM_PIXELS_UNSUPPORTED',
      `DICOM pixels of type ${describe} are not decoded; supported are MONOCHROME1/MONOCHROME2 with 8 or 16 bits allocated, and RGB with 8 bits.`,
      { details: { photometricInterpretation: photometric, samplesPerPixel, bitsAllocated, bitsStored } },
    );
  }
  // PS3.5 §8.1.1: native pixel data is stored from bit 0; a HighBit other than BitsStored − 1 was only
  // allowed by retired encodings.
  if (attributes.highBit !== undefined && attributes.highBit !== bitsStored - 1) {
    throw new AppError('DICOM_PIXELS_UNSUPPORTED', `DICOM HighBit ${attributes.highBit} with BitsStored ${bitsStored} is not decoded; only HighBit = BitsStored − 1 is.`);
  }
  if (rgb) {
    if (attributes.planarConfiguration === undefined) {
      throw new AppError('CORRUPT_IMAGE', 'The DICOM RGB image has no PlanarConfiguration (0028,0006), which PS3.3 C.7.6.3 requires when SamplesPerPixel is above 1.');
    }
    if (layout.planarConfiguration !== 0 && layout.planarConfiguration !== 1) {
      throw new AppError('CORRUPT_IMAGE', `The DICOM PlanarConfiguration is ${layout.planarConfiguration}; it must be 0 or 1.`);
    }
  }
  return layout;
}

/** The bytes of frame 1, after checking the Pixel Data holds every frame the header declares. */
function firstFrame(bytes: Uint8Array, attributes: DicomImageAttributes, layout: PixelLayout): Uint8Array {
  const pixelData = attributes.pixelData;
  if (!pixelData) throw new AppError('CORRUPT_IMAGE', 'The DICOM file has no Pixel Data (7FE0,0010).');
  if (pixelData.length === undefined) {
    throw new AppError('CORRUPT_IMAGE', 'The DICOM Pixel Data has an undefined (encapsulated) length, but the transfer syntax is uncompressed.');
  }
  const frameBytes = layout.rows * layout.columns * layout.samplesPerPixel * (layout.bitsAllocated / 8);
  const needed = frameBytes * layout.frames;
  if (pixelData.length < needed) {
    throw new AppError(
      'TRUNCATED_IMAGE',
      `The DICOM Pixel Data holds ${pixelData.length} bytes, but ${layout.rows} rows × ${layout.columns} columns × ${layout.samplesPerPixel} samples × ${layout.bitsAllocated / 8} bytes × ${layout.frames} frames need ${needed}.`,
    );
  }
  // A Pixel Data value that runs past the end of the file is a cut-short upload: the header was complete.
  if (pixelData.offset + pixelData.length > bytes.length) {
    throw new AppError('TRUNCATED_IMAGE', `The DICOM file ends at byte ${bytes.length}, inside its Pixel Data (${pixelData.length} bytes from byte ${pixelData.offset}).`);
  }
  return bytes.subarray(pixelData.offset, pixelData.offset + frameBytes);
}

function interleaveRgb(frame: Uint8Array, layout: PixelLayout): Buffer {
  const pixels = layout.rows * layout.columns;
  const out = Buffer.allocUnsafe(pixels * 3);
  if (layout.planarConfiguration === 0) {
    out.set(frame);
    return out;
  }
  // PlanarConfiguration 1: all red samples, then all green, then all blue (PS3.3 C.7.6.3.1.3).
  for (let i = 0; i < pixels; i++) {
    out[3 * i] = frame[i] ?? 0;
    out[3 * i + 1] = frame[pixels + i] ?? 0;
    out[3 * i + 2] = frame[2 * pixels + i] ?? 0;
  }
  return out;
}

/**
 * Greyscale to RGB through a lookup table over every possible stored value: stored value → Modality LUT
 * (RescaleSlope/Intercept, PS3.3 C.11.1) → VOI LUT (linear window, C.11.2.1.2.1, or the frame's own
 * range when no window is given) → 8 bits, inverted for MONOCHROME1 (C.7.6.3.1.2: minimum is white).
 */
function greyscaleToRgb(frame: Uint8Array, layout: PixelLayout, attributes: DicomImageAttributes): Buffer {
  const pixels = layout.rows * layout.columns;
  const wide = layout.bitsAllocated === 16;
  // PS3.5 §8.1.1: bits above BitsStored are not part of the value (they may hold overlays or noise).
  const mask = (1 << layout.bitsStored) - 1;
  const storedAt = (i: number): number => (wide ? ((frame[2 * i] ?? 0) | ((frame[2 * i + 1] ?? 0) << 8)) : (frame[i] ?? 0)) & mask;
  const signBit = 1 << (layout.bitsStored - 1);
  const valueOf = (code: number): number => (layout.signed && code & signBit ? code - (mask + 1) : code);

  const slope = attributes.rescaleSlope ?? 1;
  const intercept = attributes.rescaleIntercept ?? 0;
  const modality = (code: number): number => valueOf(code) * slope + intercept;

  const { windowCenter, windowWidth } = attributes;
  if ((windowCenter === undefined) !== (windowWidth === undefined)) {
    throw new AppError('CORRUPT_IMAGE', 'The DICOM image has only one of WindowCenter (0028,1050) and WindowWidth (0028,1051); PS3.3 C.11.2 requires both.');
  }
  let voi: (x: number) => number;
  if (windowCenter !== undefined && windowWidth !== undefined) {
    if (windowWidth < 1) throw new AppError('CORRUPT_IMAGE', `The DICOM WindowWidth is ${windowWidth}; PS3.3 C.11.2.1.2 requires at least 1.`);
    const lower = windowCenter - 0.5 - (windowWidth - 1) / 2;
    const upper = windowCenter - 0.5 + (windowWidth - 1) / 2;
    voi = (x) => (x <= lower ? 0 : x > upper ? 255 : ((x - (windowCenter - 0.5)) / (windowWidth - 1) + 0.5) * 255);
  } else {
    let min = Infinity;
    let max = -Infinity;
    for (let i = 0; i < pixels; i++) {
      const value = modality(storedAt(i));
      if (value < min) min = value;
      if (value > max) max = value;
    }
    const range = max - min;
    voi = (x) => (range === 0 ? 0 : ((x - min) / range) * 255);
  }

  const invert = layout.photometric === 'MONOCHROME1';
  const lut = new Uint8Array(mask + 1);
  for (let code = 0; code <= mask; code++) {
    const grey = Math.min(255, Math.max(0, Math.round(voi(modality(code)))));
    lut[code] = invert ? 255 - grey : grey;
  }

  const out = Buffer.allocUnsafe(pixels * 3);
  for (let i = 0; i < pixels; i++) {
    const grey = lut[storedAt(i)] ?? 0;
    out[3 * i] = grey;
    out[3 * i + 1] = grey;
    out[3 * i + 2] = grey;
  }
  return out;
}
