import { inflateSync } from 'node:zlib';
import sharp, { type OutputInfo } from 'sharp';
import { AppError } from '../../core/errors.ts';
import { decodeJpeg2000 } from './jpeg2000.ts';
import type { TiffDirectory } from './tiff-directory.ts';

// Tile (and strip) decoding for the compressions whole-slide TIFFs use. Every decoder returns
// interleaved 8-bit RGB of exactly width × height pixels: the tile size as stored, edge tiles included
// (TIFF 6.0 §15: edge tiles are padded to the full tile size; the caller crops them).

const COMPRESSION_NAMES: Record<number, string> = {
  1: 'none', 2: 'CCITT RLE', 3: 'CCITT Group 3', 4: 'CCITT Group 4', 5: 'LZW', 6: 'old-style JPEG', 7: 'JPEG',
  8: 'Deflate', 32773: 'PackBits', 32946: 'Deflate', 33003: 'JPEG 2000 (Aperio YCbCr)', 33004: 'JPEG 2000 (libvips)', 33005: 'JPEG 2000 (Aperio RGB)',
  34712: 'JPEG 2000', 34892: 'lossy JPEG', 50000: 'Zstandard', 50001: 'WebP', 52546: 'JPEG XL',
};

export function compressionName(code: number): string {
  return `${COMPRESSION_NAMES[code] ?? 'unknown'} (TIFF Compression ${code})`;
}

const SUPPORTED = new Set([1, 5, 7, 8, 32946, 33003, 33004, 33005, 34712]);
/** JPEG 2000: Aperio YCbCr, Aperio RGB, and the generic code (libtiff's COMPRESSION_JP2000). */
const JPEG2000 = new Set([33003, 33004, 33005, 34712]);

/** Throws when tiles of this directory cannot be decoded, naming the compression or layout. */
export function checkDecodable(dir: TiffDirectory): void {
  if (!SUPPORTED.has(dir.compression)) {
    throw new AppError('CORRUPT_IMAGE', `The image uses ${compressionName(dir.compression)} compression, which this reader has no codec for; supported: none, LZW, JPEG, Deflate, JPEG 2000.`);
  }
  // JPEG and JPEG 2000 streams describe their own components; the decoders check them per tile.
  if (dir.compression === 7 || JPEG2000.has(dir.compression)) return;
  if (dir.bitsPerSample.some((b) => b !== 8)) throw new AppError('CORRUPT_IMAGE', `The image has ${dir.bitsPerSample.join('/')} bits per sample; only 8 is supported.`);
  if (dir.planarConfiguration !== 1 && dir.samplesPerPixel > 1) throw new AppError('CORRUPT_IMAGE', 'The image stores colour planes separately (PlanarConfiguration 2), which is not supported.');
  if (![1, 3, 4].includes(dir.samplesPerPixel)) throw new AppError('CORRUPT_IMAGE', `The image has ${dir.samplesPerPixel} samples per pixel; 1, 3 or 4 is supported.`);
  const photometric = dir.photometric ?? (dir.samplesPerPixel >= 3 ? 2 : 1);
  if (![0, 1, 2].includes(photometric)) throw new AppError('CORRUPT_IMAGE', `Photometric interpretation ${photometric} is supported only with JPEG compression.`);
  if (dir.predictor !== 1 && dir.predictor !== 2) throw new AppError('CORRUPT_IMAGE', `Predictor ${dir.predictor} is not supported (1 none, 2 horizontal differencing).`);
}

/**
 * TIFF LZW (TIFF 6.0 §13): 9- to 12-bit codes packed most-significant bit first, Clear 256, EOI 257, and
 * the code width grows one code early (at 511, 1023, 2047) as every TIFF writer does. Each table entry
 * is a substring of the output already written, so the table stores (start, length) into `out` instead
 * of strings. Decoding stops at `expected` bytes.
 */
export function lzwDecode(input: Uint8Array, expected: number): Buffer {
  const out = Buffer.alloc(expected);
  const start = new Int32Array(4096);
  const length = new Int32Array(4096);
  let outPos = 0;
  let bitBuffer = 0;
  let bitCount = 0;
  let inPos = 0;
  let width = 9;
  let next = 258;
  let prevStart = -1;
  let prevLength = 0;
  while (outPos < expected) {
    while (bitCount < width && inPos < input.length) {
      bitBuffer = ((bitBuffer << 8) | (input[inPos++] ?? 0)) & 0xffffff;
      bitCount += 8;
    }
    if (bitCount < width) break;
    const code = (bitBuffer >>> (bitCount - width)) & ((1 << width) - 1);
    bitCount -= width;
    if (code === 257) break;
    if (code === 256) {
      width = 9;
      next = 258;
      prevStart = -1;
      continue;
    }
    const here = outPos;
    let written: number;
    if (prevStart < 0) {
      if (code > 255) throw new AppError('CORRUPT_IMAGE', `LZW data starts with code ${code} after a Clear code.`);
      out[outPos++] = code;
      written = 1;
    } else {
      if (code < 256) {
        out[outPos++] = code;
        written = 1;
      } else if (code < next) {
        const n = Math.min(length[code] ?? 0, expected - outPos);
        out.copyWithin(outPos, start[code] ?? 0, (start[code] ?? 0) + n);
        outPos += n;
        written = length[code] ?? 0;
      } else if (code === next) {
        // The KwKwK case: the code being defined is used at once; its string is prev + prev[0].
        const n = Math.min(prevLength, expected - outPos);
        out.copyWithin(outPos, prevStart, prevStart + n);
        outPos += n;
        if (outPos < expected) out[outPos++] = out[prevStart] ?? 0;
        written = prevLength + 1;
      } else {
        throw new AppError('CORRUPT_IMAGE', `LZW code ${code} is not yet defined (next free code ${next}).`);
      }
      if (next < 4096) {
        start[next] = prevStart;
        length[next] = prevLength + 1;
        next++;
        if (next === (1 << width) - 1 && width < 12) width++;
      }
    }
    prevStart = here;
    prevLength = written;
  }
  return out;
}

/** Undoes TIFF horizontal differencing (Predictor 2, TIFF 6.0 §14) on 8-bit samples, in place. */
function undoHorizontalPredictor(data: Buffer, width: number, rows: number, samples: number): void {
  const rowBytes = width * samples;
  for (let y = 0; y < rows; y++) {
    const rowStart = y * rowBytes;
    for (let i = rowStart + samples; i < rowStart + rowBytes; i++) data[i] = ((data[i] ?? 0) + (data[i - samples] ?? 0)) & 0xff;
  }
}

function toRgb(samples: Buffer, width: number, height: number, dir: TiffDirectory): Buffer {
  const spp = dir.samplesPerPixel;
  const photometric = dir.photometric ?? (spp >= 3 ? 2 : 1);
  const pixels = width * height;
  if (spp === 3 && photometric === 2) return samples;
  const rgb = Buffer.allocUnsafe(pixels * 3);
  for (let p = 0; p < pixels; p++) {
    if (spp === 1) {
      const v = samples[p] ?? 0;
      const grey = photometric === 0 ? 255 - v : v;
      rgb[p * 3] = grey;
      rgb[p * 3 + 1] = grey;
      rgb[p * 3 + 2] = grey;
    } else {
      // RGBA: the extra sample is dropped; slides are opaque (OpenSlide does the same for RGBA TIFFs).
      rgb[p * 3] = samples[p * spp] ?? 0;
      rgb[p * 3 + 1] = samples[p * spp + 1] ?? 0;
      rgb[p * 3 + 2] = samples[p * spp + 2] ?? 0;
    }
  }
  return rgb;
}

/** Adobe APP14 marker with transform 0: tells libjpeg the three components are R, G, B (no YCbCr). */
const ADOBE_RGB_MARKER = Buffer.from([0xff, 0xee, 0x00, 0x0e, 0x41, 0x64, 0x6f, 0x62, 0x65, 0x00, 0x64, 0x00, 0x00, 0x00, 0x00, 0x00]);

/**
 * Builds a self-contained JPEG stream from a tile: TIFF Technical Note 2 puts the shared quantisation
 * and Huffman tables in JPEGTables (an abbreviated SOI…EOI stream), so the tables segment without its EOI
 * is joined to the tile without its SOI. When Photometric is RGB the components are stored without
 * colour conversion (Aperio writes such tiles); the Adobe marker makes libjpeg decode them as RGB, which
 * is what OpenSlide does by setting the JPEG colour space from the TIFF photometric tag.
 */
export function assembleJpeg(tile: Buffer, tables: Buffer | undefined, photometric: number | undefined): Buffer {
  if (tile.length < 4 || tile[0] !== 0xff || tile[1] !== 0xd8) throw new AppError('CORRUPT_IMAGE', 'A JPEG tile does not start with an SOI marker.');
  const parts: Buffer[] = [tile.subarray(0, 2)];
  if (photometric === 2) parts.push(ADOBE_RGB_MARKER);
  if (tables !== undefined && tables.length > 4) {
    const end = tables[tables.length - 2] === 0xff && tables[tables.length - 1] === 0xd9 ? tables.length - 2 : tables.length;
    parts.push(tables.subarray(2, end));
  }
  parts.push(tile.subarray(2));
  return Buffer.concat(parts);
}

async function decodeJpeg(bytes: Buffer, width: number, height: number, dir: TiffDirectory): Promise<Buffer> {
  let decoded: { data: Buffer; info: OutputInfo };
  try {
    decoded = await sharp(assembleJpeg(bytes, dir.jpegTables, dir.photometric), { failOn: 'error' })
      .removeAlpha().toColourspace('srgb').raw().toBuffer({ resolveWithObject: true });
  } catch (e) {
    if (e instanceof AppError) throw e;
    throw new AppError('CORRUPT_IMAGE', `A JPEG tile of the directory at byte ${dir.offset} cannot be decoded: ${(e as Error).message}`, { cause: e });
  }
  const { data, info } = decoded;
  if (info.width === width && info.height === height && info.channels === 3) return data;
  if (info.channels !== 3 || info.width > width || info.height > height) {
    throw new AppError('CORRUPT_IMAGE', `A JPEG tile decodes to ${info.width}×${info.height}×${info.channels}; the directory declares ${width}×${height} RGB tiles.`);
  }
  // A tile stream smaller than the tile grid: place it top-left on white.
  const out = Buffer.alloc(width * height * 3, 255);
  for (let y = 0; y < info.height; y++) data.copy(out, y * width * 3, y * info.width * 3, (y + 1) * info.width * 3);
  return out;
}

/**
 * Decodes one stored tile or strip of `dir` to RGB, `width` × `height` pixels (the stored size).
 * checkDecodable(dir) must have passed.
 */
export async function decodeBlock(bytes: Buffer, width: number, height: number, dir: TiffDirectory): Promise<Buffer> {
  if (dir.compression === 7) return decodeJpeg(bytes, width, height, dir);
  if (JPEG2000.has(dir.compression)) {
    // 33003 always holds YCbCr (OpenSlide's aperio driver converts it whatever the Photometric tag
    // says), and so does libvips's 33004 (its codestreams are YCbCr under Photometric 2); 33005 holds
    // RGB; for the generic code the Photometric tag tells.
    const ycbcr = dir.compression === 33003 || dir.compression === 33004 || (dir.compression === 34712 && dir.photometric === 6);
    return decodeJpeg2000(bytes, width, height, { ycbcr, where: `the directory at byte ${dir.offset} (${compressionName(dir.compression)})` });
  }
  const expected = width * height * dir.samplesPerPixel;
  let samples: Buffer;
  if (dir.compression === 1) {
    samples = bytes;
  } else if (dir.compression === 5) {
    samples = lzwDecode(bytes, expected);
  } else {
    try {
      samples = inflateSync(bytes);
    } catch (e) {
      throw new AppError('CORRUPT_IMAGE', `A Deflate tile of the directory at byte ${dir.offset} cannot be inflated: ${(e as Error).message}`, { cause: e });
    }
  }
  if (samples.length < expected) {
    throw new AppError('CORRUPT_IMAGE', `A tile of the directory at byte ${dir.offset} decodes to ${samples.length} bytes; ${width}×${height}×${dir.samplesPerPixel} needs ${expected}.`);
  }
  // Copy so that predictor decoding never writes into a buffer the byte source may share.
  samples = Buffer.from(samples.subarray(0, expected));
  if (dir.predictor === 2) undoHorizontalPredictor(samples, width, height, dir.samplesPerPixel);
  return toRgb(samples, width, height, dir);
}
