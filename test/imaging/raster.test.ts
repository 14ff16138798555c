import assert from 'node:assert/strict';
import { test } from 'node:test';
import { deflateSync } from 'node:zlib';
import sharp from 'sharp';
import { AppError } from '../../src/core/errors.ts';
import type { MediaType } from '../../src/core/result.ts';
import { readImageHeader } from '../../src/imaging/header.ts';
import { decodeRgb, toPng } from '../../src/imaging/raster.ts';
import { PNG_SIGNATURE, chunk, ihdr } from './support/png-writer.ts';
import { rgbPixels, tiffFile } from './support/tiff-writer.ts';

const LIMITS = { maxPixels: 10_000_000 };

function decode(bytes: Uint8Array, mediaType: MediaType) {
  return decodeRgb(bytes, mediaType, readImageHeader(bytes, mediaType), LIMITS);
}

async function decodeError(bytes: Uint8Array, mediaType: MediaType): Promise<AppError> {
  try {
    await decode(bytes, mediaType);
  } catch (error) {
    assert.ok(error instanceof AppError, `expected an AppError, got ${String(error)}`);
    return error;
  }
  assert.fail('decodeRgb accepted the bytes');
}

/** A photograph-like 8-bit RGB image: smooth gradients plus texture, so JPEG has real entropy data. */
function photo(width: number, height: number): Buffer {
  const data = Buffer.alloc(width * height * 3);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const i = 3 * (y * width + x);
      data[i] = (x * 255) / width;
      data[i + 1] = (y * 255) / height;
      data[i + 2] = ((x * y) ^ (x + y)) & 0xff;
    }
  }
  return data;
}

const raw = (width: number, height: number, channels: 1 | 2 | 3 | 4 = 3) => ({ raw: { width, height, channels } });

test('PNG RGB decodes to the exact pixels', async () => {
  const pixels = photo(40, 30);
  const rgb = await decode(await sharp(pixels, raw(40, 30)).png().toBuffer(), 'png');
  assert.deepEqual({ width: rgb.width, height: rgb.height }, { width: 40, height: 30 });
  assert.deepEqual(rgb.data, pixels);
});

test('alpha is flattened onto white and greyscale becomes three equal channels', async () => {
  // 2 × 1 RGBA: opaque red, fully transparent black.
  const rgba = Buffer.from([255, 0, 0, 255, 0, 0, 0, 0]);
  const fromAlpha = await decode(await sharp(rgba, raw(2, 1, 4)).png().toBuffer(), 'png');
  assert.deepEqual([...fromAlpha.data], [255, 0, 0, 255, 255, 255]);

  const grey = await sharp(Buffer.from([0, 128, 255]), raw(3, 1, 1)).toColourspace('b-w').png().toBuffer();
  assert.equal(readImageHeader(grey, 'png').channels, 1);
  assert.deepEqual([...(await decode(grey, 'png')).data], [0, 0, 0, 128, 128, 128, 255, 255, 255]);
});

test('16-bit greyscale is scaled to 8 bits, not clipped', async () => {
  // One row, filter type 0, samples big-endian (PNG §7.1): 0, 0x8080, 0xFFFF.
  const row = Buffer.from([0, 0x00, 0x00, 0x80, 0x80, 0xff, 0xff]);
  const png = Buffer.concat([PNG_SIGNATURE, chunk('IHDR', ihdr(3, 1, 16, 0)), chunk('IDAT', deflateSync(row)), chunk('IEND', new Uint8Array(0))]);
  assert.equal(readImageHeader(png, 'png').bitDepth, 16);
  assert.deepEqual([...(await decode(png, 'png')).data], [0, 0, 0, 128, 128, 128, 255, 255, 255]);
});

test('JPEG decodes to RGB of the declared size, with EXIF orientation applied', async () => {
  const jpeg = await sharp(photo(64, 32), raw(64, 32)).jpeg().toBuffer();
  const rgb = await decode(jpeg, 'jpeg');
  assert.deepEqual({ width: rgb.width, height: rgb.height, bytes: rgb.data.length }, { width: 64, height: 32, bytes: 64 * 32 * 3 });
  // Orientation 6 (rotate 90° clockwise to display): the stored 64 × 32 image is shown 32 × 64.
  const rotated = await sharp(photo(64, 32), raw(64, 32)).withMetadata({ orientation: 6 }).jpeg().toBuffer();
  const upright = await decode(rotated, 'jpeg');
  assert.deepEqual({ width: upright.width, height: upright.height }, { width: 32, height: 64 });
});

test('TIFF: big-endian and little-endian hand-built files decode to their exact pixels', async () => {
  const pixels = rgbPixels(7, 5);
  for (const byteOrder of ['II', 'MM'] as const) {
    const rgb = await decode(tiffFile([{ width: 7, height: 5, rgb: pixels }], { byteOrder }), 'tiff');
    assert.deepEqual({ width: rgb.width, height: rgb.height }, { width: 7, height: 5 });
    assert.deepEqual(new Uint8Array(rgb.data), pixels, byteOrder);
  }
});

test('multi-page TIFF: the first page is decoded', async () => {
  const tiff = tiffFile(
    [
      { width: 3, height: 2, rgb: rgbPixels(3, 2, [10, 200, 30]) },
      { width: 5, height: 4, rgb: rgbPixels(5, 4, [250, 0, 0]) },
    ],
    { byteOrder: 'MM' },
  );
  const rgb = await decode(tiff, 'tiff');
  assert.deepEqual({ width: rgb.width, height: rgb.height }, { width: 3, height: 2 });
  assert.deepEqual([...rgb.data.subarray(0, 3)], [10, 200, 30]);
});

test('a real JPEG cut at 60% is TRUNCATED_IMAGE (libjpeg: premature end)', async () => {
  const jpeg = await sharp(photo(256, 256), raw(256, 256)).jpeg({ quality: 90 }).toBuffer();
  const cut = jpeg.subarray(0, Math.floor(jpeg.length * 0.6));
  // The header is intact, so this is a decoding-time discovery.
  assert.equal(readImageHeader(cut, 'jpeg').width, 256);
  const error = await decodeError(cut, 'jpeg');
  assert.equal(error.code, 'TRUNCATED_IMAGE', error.message);
  assert.match(error.message, /premature end/i);
});

test('a JPEG with damaged entropy-coded data but a proper end is CORRUPT_IMAGE, not decoded as a plausible image', async () => {
  const jpeg = Buffer.from(await sharp(photo(256, 256), raw(256, 256)).jpeg({ quality: 90 }).toBuffer());
  const sos = jpeg.indexOf(Buffer.from([0xff, 0xda]));
  // Overwrite a stretch of scan data with bytes that cannot be valid Huffman codes; EOI stays in place.
  for (let i = sos + 400; i < sos + 900; i++) jpeg[i] = 0x00;
  assert.deepEqual([...jpeg.subarray(-2)], [0xff, 0xd9]);
  const error = await decodeError(jpeg, 'jpeg');
  assert.equal(error.code, 'CORRUPT_IMAGE', error.message);
});

test('a PNG cut in its image data is TRUNCATED_IMAGE although libpng only says "read error"', async () => {
  const png = await sharp(photo(128, 128), raw(128, 128)).png({ compressionLevel: 0 }).toBuffer();
  const error = await decodeError(png.subarray(0, Math.floor(png.length * 0.8)), 'png');
  assert.equal(error.code, 'TRUNCATED_IMAGE', error.message);
});

test('a complete PNG whose image data fails its CRC is CORRUPT_IMAGE', async () => {
  const png = Buffer.from(await sharp(photo(32, 32), raw(32, 32)).png({ compressionLevel: 0 }).toBuffer());
  const idat = png.indexOf('IDAT');
  const length = png.readUInt32BE(idat - 4);
  png[idat + 4 + length] = (png[idat + 4 + length] ?? 0) ^ 0xff; // first CRC byte
  const error = await decodeError(png, 'png');
  assert.equal(error.code, 'CORRUPT_IMAGE', error.message);
});

test('a TIFF cut inside its strip data is TRUNCATED_IMAGE (libtiff short read)', async () => {
  const tiff = tiffFile([{ width: 64, height: 64, rgb: rgbPixels(64, 64) }], { byteOrder: 'II' });
  const cut = tiff.subarray(0, Math.floor(tiff.length * 0.6));
  assert.equal(readImageHeader(cut, 'tiff').width, 64);
  const error = await decodeError(cut, 'tiff');
  assert.equal(error.code, 'TRUNCATED_IMAGE', error.message);
});

test('bytes that are not the recorded media type are refused before any decoder sees them', async () => {
  const png = await sharp(photo(4, 4), raw(4, 4)).png().toBuffer();
  const header = readImageHeader(png, 'png');
  await assert.rejects(decodeRgb(png, 'jpeg', header, LIMITS), (error: unknown) => error instanceof AppError && error.code === 'CORRUPT_IMAGE' && /recorded as JPEG/.test(error.message));
  // An SVG sent with a PNG label never reaches librsvg.
  const svg = Buffer.from('<svg xmlns="http://www.w3.org/2000/svg" width="4" height="4"/>');
  await assert.rejects(decodeRgb(svg, 'png', header, LIMITS), (error: unknown) => error instanceof AppError && error.code === 'UNSUPPORTED_MEDIA_TYPE');
});

test('toPng encodes RGB losslessly', async () => {
  const pixels = photo(9, 7);
  const png = await toPng({ data: pixels, width: 9, height: 7 });
  assert.equal(readImageHeader(png, 'png').width, 9);
  assert.deepEqual((await decode(png, 'png')).data, pixels);
  await assert.rejects(toPng({ data: pixels, width: 10, height: 7 }), (error: unknown) => error instanceof AppError && error.code === 'INTERNAL');
});
