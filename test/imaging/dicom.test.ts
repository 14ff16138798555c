import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type TestContext, after, test } from 'node:test';
import sharp from 'sharp';
import { AppError } from '../../src/core/errors.ts';
import { readImageHeader } from '../../src/imaging/header.ts';
import { inspectImage } from '../../src/imaging/inspect.ts';
import { decodeRgb } from '../../src/imaging/raster.ts';
import { type DicomElement, TS, dicomFile, element, imageElements, pixelData, us } from './support/dicom-writer.ts';

// DICOM files are built by hand (support/dicom-writer.ts) and, where dcmtk is installed, checked with
// dcmdump so the fixtures are known to be valid (or invalid) DICOM independently of our reader.

const LIMITS = { maxPixels: 1_000_000, maxBytes: 1_000_000 };

const dcmdumpPath = spawnSync('which', ['dcmdump'], { encoding: 'utf8' }).stdout.trim();
const workDir = mkdtempSync(join(tmpdir(), 'dxflow-dicom-'));
after(() => rmSync(workDir, { recursive: true, force: true }));

/** dcmdump's view of a file: exit status and output, or undefined when dcmtk is not installed. */
function dcmdump(bytes: Uint8Array, name: string): { ok: boolean; output: string } | undefined {
  if (!dcmdumpPath) return undefined;
  const path = join(workDir, `${name}.dcm`);
  writeFileSync(path, bytes);
  const result = spawnSync(dcmdumpPath, ['--search', '0028,0010', '--search', '0028,0011', '--search', '0002,0010', path], { encoding: 'utf8' });
  return { ok: result.status === 0 && !/^E:/m.test(result.stderr), output: result.stdout + result.stderr };
}

/** Asserts dcmtk reads the file and agrees on Rows and Columns; says so clearly when dcmtk is absent. */
function assertDcmtkReads(t: TestContext, bytes: Uint8Array, name: string, rows: number, columns: number): void {
  const dump = dcmdump(bytes, name);
  if (!dump) {
    t.diagnostic(`SKIPPED dcmtk cross-check of "${name}": dcmdump is not installed (apt-get install dcmtk)`);
    return;
  }
  assert.ok(dump.ok, `dcmdump failed on ${name}:\n${dump.output}`);
  assert.match(dump.output, new RegExp(`\\(0028,0010\\) US ${rows}\\b`), dump.output);
  assert.match(dump.output, new RegExp(`\\(0028,0011\\) US ${columns}\\b`), dump.output);
}

async function decodeError(bytes: Uint8Array): Promise<AppError> {
  try {
    await decodeRgb(bytes, 'dicom', readImageHeader(bytes, 'dicom'), LIMITS);
  } catch (error) {
    assert.ok(error instanceof AppError, `expected an AppError, got ${String(error)}`);
    return error;
  }
  assert.fail('decodeRgb accepted the file');
}

function headerError(bytes: Uint8Array): AppError {
  try {
    readImageHeader(bytes, 'dicom');
  } catch (error) {
    assert.ok(error instanceof AppError, `expected an AppError, got ${String(error)}`);
    return error;
  }
  assert.fail('readImageHeader accepted the file');
}

/** Each grey value repeated as R, G, B. */
function greyRgb(values: number[]): Buffer {
  return Buffer.from(values.flatMap((v) => [v, v, v]));
}

function u16le(values: number[]): Buffer {
  const out = Buffer.alloc(values.length * 2);
  values.forEach((v, i) => out.writeUInt16LE(v & 0xffff, i * 2));
  return out;
}

test('8-bit MONOCHROME2 without a window: header, dcmtk cross-check, min–max rendering', async (t) => {
  const file = dicomFile({ elements: [...imageElements({ rows: 2, columns: 3 }), pixelData(Buffer.from([0, 50, 100, 150, 200, 250]), 'OB')] });
  assertDcmtkReads(t, file, 'mono8', 2, 3);
  assert.deepEqual(readImageHeader(file, 'dicom'), { width: 3, height: 2, frames: 1, channels: 1, bitDepth: 8 });
  assert.deepEqual(inspectImage(file, LIMITS), { mediaType: 'dicom', mimeType: 'application/dicom', width: 3, height: 2, frames: 1 });
  const rgb = await decodeRgb(file, 'dicom', readImageHeader(file, 'dicom'), LIMITS);
  assert.equal(rgb.width, 3);
  assert.equal(rgb.height, 2);
  assert.deepEqual(rgb.data, greyRgb([0, 51, 102, 153, 204, 255]));
});

test('16-bit MONOCHROME2 with rescale and window (PS3.3 C.11.2.1.2.1); bits above BitsStored are ignored', async (t) => {
  // Modality value = 2 × stored − 1024; window centre 1024.5, width 2049 → [0, 2048] maps to 0..255.
  // 0xF000 | 1024 has garbage above bit 11 (BitsStored 12): it must read as 1024 → 1024 → mid grey.
  const stored = [0, 512, 1024, 1536, 0xf000 | 1024, 4095];
  const file = dicomFile({
    elements: [
      ...imageElements({ rows: 2, columns: 3, bitsAllocated: 16, bitsStored: 12, rescaleSlope: '2', rescaleIntercept: '-1024', windowCenter: '1024.5\\40', windowWidth: '2049\\400' }),
      pixelData(u16le(stored)),
    ],
  });
  assertDcmtkReads(t, file, 'mono16-window', 2, 3);
  assert.deepEqual(readImageHeader(file, 'dicom'), { width: 3, height: 2, frames: 1, channels: 1, bitDepth: 16 });
  const rgb = await decodeRgb(file, 'dicom', readImageHeader(file, 'dicom'), LIMITS);
  // −1024 → 0; 0 → 0 (at the lower edge); 1024 → 127.5 → 128; 2048 → 255; 1024 → 128; 7166 → 255.
  assert.deepEqual(rgb.data, greyRgb([0, 0, 128, 255, 128, 255]));
});

test('signed 16-bit MONOCHROME1 without a window: sign extension, min–max, inverted', async (t) => {
  const file = dicomFile({
    elements: [...imageElements({ rows: 1, columns: 3, bitsAllocated: 16, pixelRepresentation: 1, photometric: 'MONOCHROME1' }), pixelData(u16le([-100, 0, 100]))],
  });
  assertDcmtkReads(t, file, 'mono1-signed', 1, 3);
  const rgb = await decodeRgb(file, 'dicom', readImageHeader(file, 'dicom'), LIMITS);
  // −100 → 0 → white; 0 → 128 → 127; 100 → 255 → black (MONOCHROME1: the minimum is white).
  assert.deepEqual(rgb.data, greyRgb([255, 127, 0]));
});

test('RGB 8-bit, planar configuration 1 (colour-by-plane) and 0 (colour-by-pixel) decode alike', async (t) => {
  const r = [255, 0, 0, 10];
  const g = [0, 255, 0, 20];
  const b = [0, 0, 255, 30];
  const interleaved = Buffer.from([0, 1, 2, 3].flatMap((i) => [r[i] ?? 0, g[i] ?? 0, b[i] ?? 0]));
  const planar = dicomFile({
    elements: [...imageElements({ rows: 2, columns: 2, samplesPerPixel: 3, photometric: 'RGB', planarConfiguration: 1 }), pixelData(Buffer.from([...r, ...g, ...b]), 'OB')],
  });
  const chunky = dicomFile({
    elements: [...imageElements({ rows: 2, columns: 2, samplesPerPixel: 3, photometric: 'RGB', planarConfiguration: 0 }), pixelData(interleaved, 'OB')],
  });
  assertDcmtkReads(t, planar, 'rgb-planar1', 2, 2);
  assert.deepEqual(readImageHeader(planar, 'dicom'), { width: 2, height: 2, frames: 1, channels: 3, bitDepth: 8 });
  assert.deepEqual((await decodeRgb(planar, 'dicom', readImageHeader(planar, 'dicom'), LIMITS)).data, interleaved);
  assert.deepEqual((await decodeRgb(chunky, 'dicom', readImageHeader(chunky, 'dicom'), LIMITS)).data, interleaved);
});

test('Implicit VR Little Endian reads and decodes like explicit VR', async (t) => {
  const file = dicomFile({ transferSyntax: TS.implicitLittle, elements: [...imageElements({ rows: 2, columns: 3 }), pixelData(Buffer.from([0, 50, 100, 150, 200, 250]), 'OB')] });
  // Implicit VR: no "US"/"CS" letters after the tags.
  assert.equal(file.includes(Buffer.from([0x28, 0x00, 0x10, 0x00, 0x02, 0x00, 0x00, 0x00, 0x02, 0x00])), true);
  assertDcmtkReads(t, file, 'implicit', 2, 3);
  assert.deepEqual(readImageHeader(file, 'dicom'), { width: 3, height: 2, frames: 1, channels: 1, bitDepth: 8 });
  assert.deepEqual((await decodeRgb(file, 'dicom', readImageHeader(file, 'dicom'), LIMITS)).data, greyRgb([0, 51, 102, 153, 204, 255]));
});

test('multi-frame: NumberOfFrames is reported; the first frame is decoded', async (t) => {
  const frames = Buffer.from([10, 20, 30, 40, /* frame 2 */ 99, 99, 99, 99, /* frame 3 */ 0, 0, 0, 0]);
  const file = dicomFile({ elements: [...imageElements({ rows: 2, columns: 2, frames: 3 }), pixelData(frames, 'OB')] });
  assertDcmtkReads(t, file, 'multiframe', 2, 2);
  assert.equal(readImageHeader(file, 'dicom').frames, 3);
  const rgb = await decodeRgb(file, 'dicom', readImageHeader(file, 'dicom'), LIMITS);
  assert.deepEqual(rgb.data, greyRgb([0, 85, 170, 255]));
});

test('sequences of defined and undefined length (nested, and UN holding implicit VR) are skipped', (t) => {
  const inner: DicomElement = { tag: 0x00081150, vr: 'UI', value: Buffer.from('1.2.3\0', 'latin1') };
  const nested: DicomElement = { tag: 0x00081199, vr: 'SQ', undefinedLength: true, itemsUndefinedLength: true, items: [[inner], [inner]] };
  const elements: DicomElement[] = [
    ...imageElements({ rows: 7, columns: 9 }).slice(0, 3),
    // (0008,1115) ReferencedSeriesSequence, undefined length, items of undefined length, a nested sequence.
    { tag: 0x00081115, vr: 'SQ', undefinedLength: true, itemsUndefinedLength: true, items: [[nested, element(0x0020000e, 'UI', '1.2.3.4')]] },
    // (0008,1140) ReferencedImageSequence, defined length items inside an undefined-length sequence.
    { tag: 0x00081140, vr: 'SQ', undefinedLength: true, items: [[inner]] },
    // A private sequence sent as UN with undefined length: its content is implicit VR (PS3.5 §6.2.2).
    { tag: 0x00091010, vr: 'UN', undefinedLength: true, itemsUndefinedLength: true, items: [[inner]] },
    // A defined-length sequence that itself contains Rows: must not be taken for the image's Rows.
    { tag: 0x00191010, vr: 'SQ', undefinedLength: false, items: [[element(0x00280010, 'US', us(4000))]] },
    ...imageElements({ rows: 7, columns: 9 }).slice(3),
    pixelData(Buffer.alloc(63), 'OB'),
  ];
  elements.sort((a, b) => a.tag - b.tag);
  const file = dicomFile({ elements });
  assertDcmtkReads(t, file, 'sequences', 7, 9);
  assert.deepEqual(readImageHeader(file, 'dicom'), { width: 9, height: 7, frames: 1, channels: 1, bitDepth: 8 });
});

test('sequences nested deeper than any real data set are CORRUPT_IMAGE, not a stack overflow', () => {
  let deepest: DicomElement = element(0x00081150, 'UI', '1.2.3');
  for (let depth = 0; depth < 200; depth++) deepest = { tag: 0x00081115, vr: 'SQ', undefinedLength: true, itemsUndefinedLength: true, items: [[deepest]] };
  const file = dicomFile({ elements: [deepest, ...imageElements({ rows: 1, columns: 1 }).slice(4), pixelData(Buffer.alloc(2), 'OB')] });
  const error = headerError(file);
  assert.equal(error.code, 'CORRUPT_IMAGE');
  assert.match(error.message, /nested more than 32 deep/);
});

test('JPEG Baseline transfer syntax: the header is read and the pixels are decoded', async (t) => {
  const jpeg = await sharp(Buffer.alloc(16 * 8, 128), { raw: { width: 16, height: 8, channels: 1 } }).toColourspace('b-w').jpeg().toBuffer();
  const file = dicomFile({
    transferSyntax: TS.jpegBaseline,
    elements: [...imageElements({ rows: 8, columns: 16 }), { tag: 0x7fe00010, vr: 'OB', fragments: [jpeg.length % 2 ? Buffer.concat([jpeg, Buffer.alloc(1)]) : jpeg] }],
  });
  assertDcmtkReads(t, file, 'jpeg-baseline', 8, 16);
  assert.deepEqual(inspectImage(file, LIMITS), { mediaType: 'dicom', mimeType: 'application/dicom', width: 16, height: 8, frames: 1 });
  const rgb = await decodeRgb(file, 'dicom', readImageHeader(file, 'dicom'), LIMITS);
  assert.equal(rgb.width, 16);
  assert.equal(rgb.height, 8);
  // A flat image has no range: the min–max window maps every pixel to black.
  assert.ok(rgb.data.every((v) => v === 0));
});

test('an MPEG2 transfer syntax: the header is read, pixel decoding is DICOM_PIXELS_UNSUPPORTED naming the syntax', async () => {
  const file = dicomFile({
    transferSyntax: '1.2.840.10008.1.2.4.100',
    elements: [...imageElements({ rows: 8, columns: 16 }), { tag: 0x7fe00010, vr: 'OB', fragments: [Buffer.from([0, 0, 1, 0xb3])] }],
  });
  assert.deepEqual(inspectImage(file, LIMITS), { mediaType: 'dicom', mimeType: 'application/dicom', width: 16, height: 8, frames: 1 });
  const error = await decodeError(file);
  assert.equal(error.code, 'DICOM_PIXELS_UNSUPPORTED');
  assert.match(error.message, /1\.2\.840\.10008\.1\.2\.4\.100 \(MPEG2 Main Profile \/ Main Level\)/);
  assert.equal(error.status, 422);
});

test('an unsupported photometric interpretation (CMYK, retired) is DICOM_PIXELS_UNSUPPORTED', async () => {
  const file = dicomFile({
    elements: [...imageElements({ rows: 1, columns: 2, samplesPerPixel: 4, photometric: 'CMYK', planarConfiguration: 0 }), pixelData(Buffer.alloc(8), 'OB')],
  });
  const error = await decodeError(file);
  assert.equal(error.code, 'DICOM_PIXELS_UNSUPPORTED');
  assert.match(error.message, /CMYK/);
});

test('a JPIP Referenced Deflate data set (pixels on a JPIP server, not in the file) is refused with DICOM_PIXELS_UNSUPPORTED', () => {
  const file = dicomFile({ transferSyntax: '1.2.840.10008.1.2.4.95', elements: [] });
  const error = headerError(file);
  assert.equal(error.code, 'DICOM_PIXELS_UNSUPPORTED');
  assert.match(error.message, /JPIP Referenced Deflate/);
});

test('an element whose length runs past the end of the file is CORRUPT_IMAGE (dcmtk refuses it too)', (t) => {
  const elements = [...imageElements({ rows: 2, columns: 2 })];
  // (0008,103E) SeriesDescription claims 60000 bytes in a file of a few hundred.
  elements.splice(3, 0, { tag: 0x0008103e, vr: 'LO', value: Buffer.from('Short'), declaredLength: 60000 });
  const file = dicomFile({ elements });
  const error = headerError(file);
  assert.equal(error.code, 'CORRUPT_IMAGE');
  assert.match(error.message, /\(0008,103E\).*declares 60000 bytes/);
  const dump = dcmdump(file, 'overlong');
  if (dump) assert.equal(dump.ok, false, `dcmdump accepted the overlong element:\n${dump.output}`);
  else t.diagnostic('SKIPPED dcmtk cross-check of "overlong": dcmdump is not installed (apt-get install dcmtk)');
});

test('a file cut inside an element header is TRUNCATED_IMAGE', () => {
  const file = dicomFile({ elements: [...imageElements({ rows: 2, columns: 2 }), pixelData(Buffer.alloc(4), 'OB')] });
  const rows = file.indexOf(Buffer.from([0x28, 0x00, 0x10, 0x00]));
  assert.equal(headerError(file.subarray(0, rows + 5)).code, 'TRUNCATED_IMAGE');
  assert.equal(headerError(file.subarray(0, 100)).code, 'TRUNCATED_IMAGE');
});

test('Pixel Data shorter than rows × columns × samples × bytes, or cut by the end of the file, is TRUNCATED_IMAGE', async () => {
  const short = dicomFile({ elements: [...imageElements({ rows: 4, columns: 4, bitsAllocated: 16 }), pixelData(Buffer.alloc(30))] });
  const error = await decodeError(short);
  assert.equal(error.code, 'TRUNCATED_IMAGE');
  assert.match(error.message, /holds 30 bytes.*need 32/);

  const full = dicomFile({ elements: [...imageElements({ rows: 4, columns: 4, bitsAllocated: 16 }), pixelData(Buffer.alloc(32))] });
  const cut = full.subarray(0, full.length - 10);
  // The header is intact, so inspection (which stops at Pixel Data) still succeeds; decoding does not.
  assert.equal(inspectImage(cut, LIMITS).width, 4);
  assert.equal((await decodeError(cut)).code, 'TRUNCATED_IMAGE');

  const missingFrames = dicomFile({ elements: [...imageElements({ rows: 2, columns: 2, frames: 2 }), pixelData(Buffer.alloc(4), 'OB')] });
  assert.equal((await decodeError(missingFrames)).code, 'TRUNCATED_IMAGE');
});

test('a DICOM object without Rows/Columns is CORRUPT_IMAGE', () => {
  const file = dicomFile({ elements: imageElements({ rows: 1, columns: 1 }).filter((e) => e.tag !== 0x00280010) });
  const error = headerError(file);
  assert.equal(error.code, 'CORRUPT_IMAGE');
  assert.match(error.message, /Rows/);
});

test('file meta without a TransferSyntaxUID is CORRUPT_IMAGE', () => {
  const file = dicomFile({ elements: [...imageElements({ rows: 1, columns: 1 }), pixelData(Buffer.alloc(2), 'OB')] });
  const tsTag = file.indexOf(Buffer.from([0x02, 0x00, 0x10, 0x00, 0x55, 0x49]));
  file.writeUInt16LE(0x0011, tsTag + 2); // (0002,0010) → (0002,0011)
  assert.equal(headerError(file).code, 'CORRUPT_IMAGE');
});

test('the dcmtk oracle itself rejects a file that is not DICOM', (t) => {
  if (!dcmdumpPath) {
    t.skip('dcmdump is not installed (apt-get install dcmtk)');
    return;
  }
  const version = execFileSync(dcmdumpPath, ['--version'], { encoding: 'utf8' });
  assert.match(version, /dcmdump/);
  const notDicom = dcmdump(Buffer.from('not a dicom file at all'), 'not-dicom');
  assert.equal(notDicom?.ok, false);
});
