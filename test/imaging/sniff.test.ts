import assert from 'node:assert/strict';
import { test } from 'node:test';
import sharp from 'sharp';
import { AppError } from '../../src/core/errors.ts';
import { readImageHeader } from '../../src/imaging/header.ts';
import { sniffMediaType } from '../../src/imaging/sniff.ts';
import { dicomFile, imageElements, pixelData } from './support/dicom-writer.ts';
import { tiffFile, rgbPixels } from './support/tiff-writer.ts';

function rejects(bytes: Uint8Array, code: string, pattern?: RegExp): AppError {
  let caught: unknown;
  try {
    sniffMediaType(bytes);
  } catch (error) {
    caught = error;
  }
  assert.ok(caught instanceof AppError, `expected an AppError ${code}, got ${String(caught)}`);
  assert.equal(caught.code, code, caught.message);
  if (pattern) assert.match(caught.message, pattern);
  return caught;
}

const raw = { raw: { width: 8, height: 6, channels: 3 as const } };
const pixels = Buffer.from(rgbPixels(8, 6));

test('recognises PNG, JPEG and TIFF written by a real encoder', async () => {
  assert.equal(sniffMediaType(await sharp(pixels, raw).png().toBuffer()), 'png');
  assert.equal(sniffMediaType(await sharp(pixels, raw).jpeg().toBuffer()), 'jpeg');
  assert.equal(sniffMediaType(await sharp(pixels, raw).tiff().toBuffer()), 'tiff');
});

test('recognises big-endian TIFF and BigTIFF in both byte orders', () => {
  const page = { width: 2, height: 2, rgb: rgbPixels(2, 2) };
  assert.equal(sniffMediaType(tiffFile([page], { byteOrder: 'MM' })), 'tiff');
  assert.equal(sniffMediaType(tiffFile([page], { byteOrder: 'II', bigTiff: true })), 'tiff');
  assert.equal(sniffMediaType(tiffFile([page], { byteOrder: 'MM', bigTiff: true })), 'tiff');
});

test('recognises DICOM Part 10 by "DICM" after the preamble, even when the preamble holds a TIFF header', () => {
  const elements = [...imageElements({ rows: 1, columns: 2 }), pixelData(new Uint8Array(2))];
  assert.equal(sniffMediaType(dicomFile({ elements })), 'dicom');
  // PS3.10 §7.5 dual-personality file: it must be treated as DICOM (its PHI needs DICOM de-identification).
  const tiffPreamble = tiffFile([{ width: 1, height: 1, rgb: rgbPixels(1, 1) }], { byteOrder: 'II' }).subarray(0, 128);
  assert.equal(sniffMediaType(dicomFile({ elements, preamble: tiffPreamble })), 'dicom');
});

test('a text file is refused whatever its name would have said, and the message lists what is accepted', () => {
  // The API never passes the name: "notes.png" holding text is just these bytes.
  const error = rejects(Buffer.from('Patient presented with a rash on the left forearm.\n'), 'UNSUPPORTED_MEDIA_TYPE', /looks like text/);
  assert.match(error.message, /PNG, JPEG, TIFF .*DICOM/);
  assert.equal(error.status, 415);
  assert.deepEqual(error.details, { detected: 'text' });
});

test('PDF, GIF, ZIP and other common look-alikes are named', async () => {
  const pdf = rejects(Buffer.from('%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n', 'latin1'), 'UNSUPPORTED_MEDIA_TYPE', /looks like a PDF document/);
  assert.deepEqual(pdf.details, { detected: 'pdf' });
  const gif = await sharp(pixels, raw).gif().toBuffer();
  rejects(gif, 'UNSUPPORTED_MEDIA_TYPE', /GIF/);
  const zip = Buffer.concat([Buffer.from('PK\x03\x04', 'latin1'), Buffer.alloc(26)]);
  rejects(zip, 'UNSUPPORTED_MEDIA_TYPE', /ZIP/);
  const webp = await sharp(pixels, raw).webp().toBuffer();
  rejects(webp, 'UNSUPPORTED_MEDIA_TYPE', /WebP/);
  rejects(Buffer.from('<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"/>'), 'UNSUPPORTED_MEDIA_TYPE', /SVG/);
  // A DICOM data set saved without the Part 10 header: (0008,0005) CS "ISO_IR 100".
  const rawDataset = Buffer.from([0x08, 0x00, 0x05, 0x00, 0x43, 0x53, 0x0a, 0x00, ...Buffer.from('ISO_IR 100')]);
  rejects(rawDataset, 'UNSUPPORTED_MEDIA_TYPE', /DICOM data set without the Part 10 header/);
});

test('unrecognised binary content is refused with its first bytes in the message', () => {
  rejects(Buffer.from([0x00, 0x01, 0x02, 0x03, 0xfe, 0x00, 0x00, 0x00, 0x99]), 'UNSUPPORTED_MEDIA_TYPE', /unrecognised content \(first bytes: 00 01 02 03 fe 00 00 00\)/);
});

test('an empty file is EMPTY_FILE, not an unsupported type', () => {
  const error = rejects(new Uint8Array(0), 'EMPTY_FILE');
  assert.equal(error.status, 422);
});

test('a file that stops inside an image signature is TRUNCATED_IMAGE', () => {
  rejects(Buffer.from([0x89, 0x50, 0x4e, 0x47]), 'TRUNCATED_IMAGE', /PNG/);
  rejects(Buffer.from([0xff, 0xd8]), 'TRUNCATED_IMAGE', /JPEG/);
});

test('a complete signature is enough to sniff; what follows is the header reader\'s business', () => {
  const start = Buffer.from([0xff, 0xd8, 0xff, 0xe0]);
  assert.equal(sniffMediaType(start), 'jpeg');
  assert.throws(() => readImageHeader(start, 'jpeg'), (error: unknown) => error instanceof AppError && error.code === 'TRUNCATED_IMAGE');
});
