import assert from 'node:assert/strict';
import { test } from 'node:test';
import sharp from 'sharp';
import { AppError } from '../../src/core/errors.ts';
import type { MediaType } from '../../src/core/result.ts';
import { readImageHeader } from '../../src/imaging/header.ts';
import { PNG_SIGNATURE, chunk, ihdr } from './support/png-writer.ts';
import { rgbPixels, tiffFile } from './support/tiff-writer.ts';

function headerError(bytes: Uint8Array, mediaType: MediaType): AppError {
  try {
    readImageHeader(bytes, mediaType);
  } catch (error) {
    assert.ok(error instanceof AppError, `expected an AppError, got ${String(error)}`);
    return error;
  }
  assert.fail('readImageHeader accepted the bytes');
}

function encoderInput(width: number, height: number, channels: 1 | 2 | 3 | 4) {
  const data = Buffer.alloc(width * height * channels);
  for (let i = 0; i < data.length; i++) data[i] = (i * 31) & 0xff;
  return sharp(data, { raw: { width, height, channels } });
}

/** Deterministic noise (xorshift), so a "random bytes" fixture is the same on every run. */
function noise(length: number, seed = 0x9e3779b9): Buffer {
  const out = Buffer.alloc(length);
  let x = seed >>> 0;
  for (let i = 0; i < length; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    out[i] = x & 0xff;
  }
  return out;
}

// --- PNG -------------------------------------------------------------------------------------------

test('PNG: dimensions, samples and bit depth come from IHDR', async () => {
  assert.deepEqual(readImageHeader(await encoderInput(123, 45, 3).png().toBuffer(), 'png'), { width: 123, height: 45, channels: 3, bitDepth: 8 });
  assert.deepEqual(readImageHeader(await encoderInput(7, 300, 4).png().toBuffer(), 'png'), { width: 7, height: 300, channels: 4, bitDepth: 8 });
  const grey16 = await encoderInput(9, 10, 1).toColourspace('grey16').png().toBuffer();
  assert.deepEqual(readImageHeader(grey16, 'png'), { width: 9, height: 10, channels: 1, bitDepth: 16 });
});

test('PNG: a damaged IHDR CRC is CORRUPT_IMAGE', () => {
  const bytes = Buffer.concat([PNG_SIGNATURE, chunk('IHDR', ihdr(10, 10), 0x12345678), chunk('IEND', new Uint8Array(0))]);
  const error = headerError(bytes, 'png');
  assert.equal(error.code, 'CORRUPT_IMAGE');
  assert.match(error.message, /CRC/);
});

test('PNG: random bytes after the signature are CORRUPT_IMAGE', () => {
  const error = headerError(Buffer.concat([PNG_SIGNATURE, noise(4096)]), 'png');
  assert.equal(error.code, 'CORRUPT_IMAGE');
});

test('PNG: a zero width (with a valid CRC) is CORRUPT_IMAGE', () => {
  const error = headerError(Buffer.concat([PNG_SIGNATURE, chunk('IHDR', ihdr(0, 10))]), 'png');
  assert.equal(error.code, 'CORRUPT_IMAGE');
  assert.match(error.message, /0 × 10/);
});

test('PNG: an undefined colour type/bit depth pair is CORRUPT_IMAGE', () => {
  const error = headerError(Buffer.concat([PNG_SIGNATURE, chunk('IHDR', ihdr(4, 4, 16, 3))]), 'png');
  assert.equal(error.code, 'CORRUPT_IMAGE');
  assert.match(error.message, /colour type 3 with bit depth 16/);
});

test('PNG: a file cut inside IHDR is TRUNCATED_IMAGE', async () => {
  const png = await encoderInput(20, 20, 3).png().toBuffer();
  assert.equal(headerError(png.subarray(0, 20), 'png').code, 'TRUNCATED_IMAGE');
});

// --- JPEG ------------------------------------------------------------------------------------------

test('JPEG: dimensions and components from the frame header, past APPn segments (EXIF, ICC)', async () => {
  const jpeg = await encoderInput(321, 123, 3).withExif({ IFD0: { Copyright: 'synthetic' } }).withIccProfile('srgb').jpeg().toBuffer();
  // The frame header comes after APP segments: the walk must skip them.
  assert.ok(jpeg.includes(Buffer.from('Exif\0', 'latin1')) && jpeg.includes(Buffer.from('ICC_PROFILE', 'latin1')), 'fixture carries EXIF and ICC segments');
  assert.ok(jpeg.indexOf(Buffer.from('ICC_PROFILE', 'latin1')) < jpeg.indexOf(Buffer.from([0xff, 0xc0])), 'ICC segment precedes SOF');
  assert.deepEqual(readImageHeader(jpeg, 'jpeg'), { width: 321, height: 123, channels: 3, bitDepth: 8 });
  const grey = await encoderInput(64, 65, 1).toColourspace('b-w').jpeg().toBuffer();
  assert.deepEqual(readImageHeader(grey, 'jpeg'), { width: 64, height: 65, channels: 1, bitDepth: 8 });
});

test('JPEG: progressive (SOF2) frame headers are read too', async () => {
  const jpeg = await encoderInput(50, 40, 3).jpeg({ progressive: true }).toBuffer();
  assert.ok(jpeg.includes(Buffer.from([0xff, 0xc2])), 'fixture is progressive');
  assert.equal(readImageHeader(jpeg, 'jpeg').width, 50);
});

test('JPEG: fill bytes (0xFF) before a marker are skipped (T.81 B.1.1.2)', async () => {
  const jpeg = await encoderInput(33, 17, 3).jpeg().toBuffer();
  const sof = jpeg.indexOf(Buffer.from([0xff, 0xc0]));
  assert.ok(sof > 0);
  const padded = Buffer.concat([jpeg.subarray(0, sof), Buffer.from([0xff, 0xff, 0xff]), jpeg.subarray(sof)]);
  assert.deepEqual(readImageHeader(padded, 'jpeg'), { width: 33, height: 17, channels: 3, bitDepth: 8 });
});

test('JPEG: a file cut inside its header is TRUNCATED_IMAGE, wherever the cut falls', async () => {
  const jpeg = await encoderInput(40, 30, 3).withExif({ IFD0: { Copyright: 'synthetic' } }).jpeg().toBuffer();
  const sof = jpeg.indexOf(Buffer.from([0xff, 0xc0]));
  // Cut before SOF: inside APP1, on a marker boundary, inside the SOF segment itself.
  for (const cut of [4, 5, 12, Math.floor(sof / 2), sof, sof + 1, sof + 3, sof + 8]) {
    const error = headerError(jpeg.subarray(0, cut), 'jpeg');
    assert.equal(error.code, 'TRUNCATED_IMAGE', `cut at ${cut}: ${error.message}`);
  }
});

test('JPEG: a scan before any frame header, or a stray byte where a marker belongs, is CORRUPT_IMAGE', () => {
  const sosFirst = Buffer.from([0xff, 0xd8, 0xff, 0xda, 0x00, 0x02]);
  assert.equal(headerError(sosFirst, 'jpeg').code, 'CORRUPT_IMAGE');
  const stray = Buffer.from([0xff, 0xd8, 0xff, 0xe0, 0x00, 0x04, 0x00, 0x00, 0x12, 0x34]);
  const error = headerError(stray, 'jpeg');
  assert.equal(error.code, 'CORRUPT_IMAGE');
  assert.match(error.message, /offset 8/);
});

test('JPEG: height 0 (deferred to a DNL marker) is CORRUPT_IMAGE', () => {
  const sof = [0xff, 0xc0, 0x00, 0x0b, 0x08, 0x00, 0x00, 0x00, 0x10, 0x01, 0x01, 0x11, 0x00];
  assert.equal(headerError(Buffer.from([0xff, 0xd8, ...sof]), 'jpeg').code, 'CORRUPT_IMAGE');
});

// --- TIFF ------------------------------------------------------------------------------------------

test('TIFF: dimensions from the first directory of a libtiff file (little endian, directory at the end)', async () => {
  const tiff = await encoderInput(77, 55, 3).tiff().toBuffer();
  assert.equal(tiff.toString('latin1', 0, 2), 'II');
  assert.deepEqual(readImageHeader(tiff, 'tiff'), { width: 77, height: 55, channels: 3, bitDepth: 8 });
});

test('TIFF: both byte orders, SHORT and LONG dimensions', () => {
  for (const byteOrder of ['II', 'MM'] as const) {
    for (const dimensionType of [3, 4] as const) {
      const tiff = tiffFile([{ width: 300, height: 2, rgb: rgbPixels(300, 2) }], { byteOrder, dimensionType });
      assert.deepEqual(readImageHeader(tiff, 'tiff'), { width: 300, height: 2, channels: 3, bitDepth: 8 }, `${byteOrder} type ${dimensionType}`);
    }
  }
});

test('BigTIFF: both byte orders, LONG8 and SHORT dimensions', () => {
  for (const byteOrder of ['II', 'MM'] as const) {
    for (const dimensionType of [16, 3] as const) {
      const tiff = tiffFile([{ width: 5, height: 300, rgb: rgbPixels(5, 300) }], { byteOrder, bigTiff: true, dimensionType });
      assert.equal(tiff.readUInt16LE(2) === 43 || tiff.readUInt16BE(2) === 43, true);
      assert.deepEqual(readImageHeader(tiff, 'tiff'), { width: 5, height: 300, channels: 3, bitDepth: 8 }, `${byteOrder} type ${dimensionType}`);
    }
  }
});

test('BigTIFF: a 64-bit width beyond 2^32 is read, not wrapped', () => {
  const tiff = tiffFile([{ width: 1, height: 1, rgb: rgbPixels(1, 1) }], { byteOrder: 'II', bigTiff: true, dimensionType: 16 });
  // ImageWidth is the first entry: count (8) + tag (2) + type (2) + count (8) → value at 16 + 20.
  tiff.writeBigUInt64LE(5_000_000_000n, 16 + 8 + 12);
  assert.equal(readImageHeader(tiff, 'tiff').width, 5_000_000_000);
});

test('TIFF: a directory offset past the end of the file is TRUNCATED_IMAGE', async () => {
  // libtiff writes the directory after the pixels, so cutting the file loses it.
  const tiff = await encoderInput(64, 64, 3).tiff().toBuffer();
  assert.equal(headerError(tiff.subarray(0, Math.floor(tiff.length * 0.6)), 'tiff').code, 'TRUNCATED_IMAGE');
  assert.equal(headerError(tiff.subarray(0, 6), 'tiff').code, 'TRUNCATED_IMAGE');
});

test('TIFF: a directory without ImageWidth is CORRUPT_IMAGE', () => {
  const tiff = tiffFile([{ width: 4, height: 4, rgb: rgbPixels(4, 4) }], { byteOrder: 'MM' });
  tiff.writeUInt16BE(999, 8 + 2); // rename tag 256 of the first entry
  const error = headerError(tiff, 'tiff');
  assert.equal(error.code, 'CORRUPT_IMAGE');
  assert.match(error.message, /ImageWidth/);
});

test('TIFF: a zero height is CORRUPT_IMAGE', () => {
  const tiff = tiffFile([{ width: 4, height: 0, rgb: new Uint8Array(0) }], { byteOrder: 'II' });
  assert.equal(headerError(tiff, 'tiff').code, 'CORRUPT_IMAGE');
});
