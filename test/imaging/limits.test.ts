import assert from 'node:assert/strict';
import { test } from 'node:test';
import sharp from 'sharp';
import { AppError } from '../../src/core/errors.ts';
import { readImageHeader } from '../../src/imaging/header.ts';
import { inspectImage } from '../../src/imaging/inspect.ts';
import { checkLimits } from '../../src/imaging/limits.ts';
import { decodeRgb } from '../../src/imaging/raster.ts';
import { dicomFile, imageElements, pixelData } from './support/dicom-writer.ts';
import { completePngBomb, pngBomb } from './support/png-writer.ts';

// The configured defaults (src/core/config.ts): 50 megapixels, 64 MiB.
const LIMITS = { maxPixels: 50_000_000, maxBytes: 64 * 1024 * 1024 };
const MB = 1024 * 1024;

function thrown(run: () => unknown): AppError {
  try {
    run();
  } catch (error) {
    assert.ok(error instanceof AppError, `expected an AppError, got ${String(error)}`);
    return error;
  }
  assert.fail('no error was thrown');
}

test('a 30000 × 30000 PNG of about 1 KB is refused from its header, without allocating its pixels', () => {
  const bomb = pngBomb(30_000, 30_000);
  assert.ok(bomb.length < 4096, `the bomb is ${bomb.length} bytes`);

  const before = process.memoryUsage().rss;
  const error = thrown(() => inspectImage(bomb, LIMITS));
  const grown = process.memoryUsage().rss - before;

  assert.equal(error.code, 'IMAGE_TOO_LARGE');
  assert.equal(error.status, 422);
  assert.match(error.message, /30000 × 30000 \(900,000,000 pixels\)/);
  assert.match(error.message, /limit of 50,000,000 pixels \(DXFLOW_LIMITS_MAX_PIXELS\)/);
  // Decoded as 8-bit grey it would need 900 MB (2.7 GB as RGB).
  assert.ok(grown < 50 * MB, `rss grew by ${(grown / MB).toFixed(1)} MB`);

  const direct = thrown(() => checkLimits(readImageHeader(bomb, 'png'), bomb, LIMITS));
  assert.equal(direct.code, 'IMAGE_TOO_LARGE');
});

test('decodeRgb refuses the bomb too, and sharp refuses it even when told a false, small size', async () => {
  // Load libvips and its thread pool first, so their one-time cost is not counted as the bomb's.
  await sharp(Buffer.alloc(3), { raw: { width: 1, height: 1, channels: 3 } }).png().toBuffer();
  const bomb = pngBomb(30_000, 30_000);
  const before = process.memoryUsage().rss;

  await assert.rejects(decodeRgb(bomb, 'png', readImageHeader(bomb, 'png'), LIMITS), (error: unknown) => error instanceof AppError && error.code === 'IMAGE_TOO_LARGE');
  // A header that under-reports its size passes our own check; libvips' limitInputPixels must catch it.
  await assert.rejects(decodeRgb(bomb, 'png', { width: 1, height: 1 }, LIMITS), (error: unknown) => {
    assert.ok(error instanceof AppError);
    assert.equal(error.code, 'IMAGE_TOO_LARGE', error.message);
    assert.match(error.message, /DXFLOW_LIMITS_MAX_PIXELS/);
    return true;
  });

  const grown = process.memoryUsage().rss - before;
  assert.ok(grown < 50 * MB, `rss grew by ${(grown / MB).toFixed(1)} MB`);
});

test('a complete, valid 10000 × 10000 PNG bomb (about 100 KB) is refused by the decoder without inflating it', async () => {
  // Unlike the 1 KB bomb, this one decodes successfully when no limit applies: 300 MB of RGB.
  const bomb = await completePngBomb(10_000, 10_000);
  assert.ok(bomb.length < 200 * 1024, `the bomb is ${bomb.length} bytes`);
  await sharp(Buffer.alloc(3), { raw: { width: 1, height: 1, channels: 3 } }).png().toBuffer();
  const before = process.memoryUsage().rss;
  // The false header bypasses our own check, so only sharp's limitInputPixels stands in the way.
  await assert.rejects(decodeRgb(bomb, 'png', { width: 1, height: 1 }, LIMITS), (error: unknown) => error instanceof AppError && error.code === 'IMAGE_TOO_LARGE');
  const grown = process.memoryUsage().rss - before;
  assert.ok(grown < 50 * MB, `rss grew by ${(grown / MB).toFixed(1)} MB`);
});

test('frames count against the pixel limit (width × height × frames), and the message says so', () => {
  const file = dicomFile({ elements: [...imageElements({ rows: 100, columns: 100, frames: 3 }), pixelData(Buffer.alloc(30_000), 'OB')] });
  assert.equal(inspectImage(file, { maxPixels: 30_000, maxBytes: MB }).frames, 3);
  const error = thrown(() => inspectImage(file, { maxPixels: 29_999, maxBytes: MB }));
  assert.equal(error.code, 'IMAGE_TOO_LARGE');
  assert.match(error.message, /100 × 100 × 3 frames \(30,000 pixels\)/);
  assert.deepEqual(error.details, { width: 100, height: 100, frames: 3, pixels: 30_000, maxPixels: 29_999 });
});

test('an image exactly at the pixel limit is accepted', () => {
  const header = { width: 1000, height: 50 };
  assert.doesNotThrow(() => checkLimits(header, new Uint8Array(10), { maxPixels: 50_000, maxBytes: 10 }));
  assert.equal(thrown(() => checkLimits(header, new Uint8Array(10), { maxPixels: 49_999, maxBytes: 10 })).code, 'IMAGE_TOO_LARGE');
});

test('a file over the byte limit is FILE_TOO_LARGE (413) naming DXFLOW_LIMITS_MAX_BYTES', async () => {
  const png = await sharp(Buffer.alloc(30 * 30 * 3, 7), { raw: { width: 30, height: 30, channels: 3 } }).png().toBuffer();
  const error = thrown(() => inspectImage(png, { maxPixels: LIMITS.maxPixels, maxBytes: png.length - 1 }));
  assert.equal(error.code, 'FILE_TOO_LARGE');
  assert.equal(error.status, 413);
  assert.match(error.message, /DXFLOW_LIMITS_MAX_BYTES/);
  assert.deepEqual(inspectImage(png, { maxPixels: LIMITS.maxPixels, maxBytes: png.length }), { mediaType: 'png', mimeType: 'image/png', width: 30, height: 30, frames: 1 });
});

test('inspectImage reports type, MIME type and size for each accepted format', async () => {
  const source = sharp(Buffer.alloc(12 * 5 * 3, 100), { raw: { width: 12, height: 5, channels: 3 } });
  const expected = { width: 12, height: 5, frames: 1 };
  assert.deepEqual(inspectImage(await source.clone().png().toBuffer(), LIMITS), { mediaType: 'png', mimeType: 'image/png', ...expected });
  assert.deepEqual(inspectImage(await source.clone().jpeg().toBuffer(), LIMITS), { mediaType: 'jpeg', mimeType: 'image/jpeg', ...expected });
  assert.deepEqual(inspectImage(await source.clone().tiff().toBuffer(), LIMITS), { mediaType: 'tiff', mimeType: 'image/tiff', ...expected });
});

test('inspectImage reads only the header: a JPEG header followed by 32 MB is inspected as fast as a small one', async () => {
  const small = await sharp(Buffer.alloc(8 * 8 * 3), { raw: { width: 8, height: 8, channels: 3 } }).jpeg().toBuffer();
  const large = Buffer.concat([small, Buffer.alloc(32 * MB)]);
  const time = (bytes: Uint8Array) => {
    const start = performance.now();
    for (let i = 0; i < 200; i++) inspectImage(bytes, LIMITS);
    return performance.now() - start;
  };
  time(small);
  const smallMs = time(small);
  const largeMs = time(large);
  // Reading 32 MB 200 times would take seconds; reading a header 200 times takes well under 100 ms.
  assert.ok(largeMs < Math.max(100, smallMs * 20), `small ${smallMs.toFixed(1)} ms, large ${largeMs.toFixed(1)} ms`);
});
