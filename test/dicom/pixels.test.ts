import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { deflateRawSync } from 'node:zlib';
import sharp from 'sharp';
import { AppError } from '../../src/core/errors.ts';
import { decodeDicomMonochrome, decodeDicomRgb, decodeDicomSamples } from '../../src/dicom/index.ts';
import { readImageHeader } from '../../src/imaging/header.ts';
import { decodeRgb } from '../../src/imaging/raster.ts';
import { type DicomElement, dicomFile, element, imageElements, pixelData, us } from '../imaging/support/dicom-writer.ts';
import { deflatedFile, encapsulated, offsetsOf, UID } from './build.ts';
import { build } from '../../src/api/app.ts';
import { multipart } from '../support/images.ts';
import { platformTargets, TEST_API_KEY } from '../support/platform.ts';
import { dcmtkMissing, PYDICOM_TEST_FILES } from './oracles.ts';

// Pixel decoding, one feature at a time, on files built here (expected values worked out from the
// formulas of PS3.3 C.7.6.3 and C.11) and on the pydicom test files recompressed with dcmtk's encoders
// (the decoded values must equal those of the uncompressed original).

const LIMITS = { maxPixels: 10_000_000 };
const work = mkdtempSync(path.join(tmpdir(), 'dxflow-dicom-pixels-'));
after(() => rmSync(work, { recursive: true, force: true }));

function u16le(values: number[]): Buffer {
  const out = Buffer.alloc(values.length * 2);
  values.forEach((v, i) => out.writeUInt16LE(v & 0xffff, i * 2));
  return out;
}

const grey = (rgb: Buffer): number[] => [...rgb].filter((_, i) => i % 3 === 0);

async function refusal(run: () => Promise<unknown>): Promise<AppError> {
  try {
    await run();
  } catch (error) {
    assert.ok(error instanceof AppError, `expected an AppError, got ${String(error)}`);
    return error;
  }
  assert.fail('the file was decoded');
}

describe('greyscale', () => {
  test('native values: BitsStored masking, sign, and the Modality LUT as Int32 stored and Float32 rescaled values', async () => {
    // 12 bits stored in 16: 0xF000 above bit 11 is noise; 0x0FFF is −1 and 0x0800 is −2048 in 12-bit two's complement.
    const stored = [0, 1, 0x07ff, 0x0800, 0x0fff, 0xf000 | 0x0005];
    const file = dicomFile({
      elements: [...imageElements({ rows: 2, columns: 3, bitsAllocated: 16, bitsStored: 12, pixelRepresentation: 1, rescaleSlope: '0.5', rescaleIntercept: '-10' }), pixelData(u16le(stored))],
    });
    const frame = await decodeDicomMonochrome(file, { limits: LIMITS });
    assert.ok(frame.stored instanceof Int32Array);
    assert.deepEqual([...frame.stored], [0, 1, 2047, -2048, -1, 5]);
    assert.ok(frame.values instanceof Float32Array);
    assert.deepEqual([...frame.values], [-10, -9.5, 1013.5, -1034, -10.5, -7.5]);
    assert.deepEqual(frame.transforms, { rescaleSlope: 0.5, rescaleIntercept: -10 });
    assert.equal(frame.photometric, 'MONOCHROME2');
    // Unsigned 32-bit values above 2^31 stay positive.
    const wide = dicomFile({ elements: [...imageElements({ rows: 1, columns: 2, bitsAllocated: 32 }), pixelData(Buffer.from([0xff, 0xff, 0xff, 0xff, 7, 0, 0, 0]))] });
    assert.deepEqual([...(await decodeDicomMonochrome(wide, { limits: LIMITS })).stored], [4294967295, 7]);
  });

  test('VOI LUT functions LINEAR_EXACT and SIGMOID (PS3.3 C.11.2.1.3) and the first of several windows', async () => {
    const values = [0, 50, 100, 150, 200];
    const file = (fn: string, center = '100\\7', width = '100\\9'): Buffer => dicomFile({
      elements: [...imageElements({ rows: 1, columns: 5, windowCenter: center, windowWidth: width }), element(0x00281056, 'CS', fn), pixelData(Buffer.from(values), 'OB')].sort((a, b) => a.tag - b.tag),
    });
    const exact = (x: number): number => (x <= 50 ? 0 : x > 150 ? 255 : Math.round(((x - 100) / 100 + 0.5) * 255));
    assert.deepEqual(grey((await decodeDicomRgb(file('LINEAR_EXACT'), { limits: LIMITS })).data), values.map(exact));
    const sigmoid = (x: number): number => Math.round(255 / (1 + Math.exp((-4 * (x - 100)) / 100)));
    assert.deepEqual(grey((await decodeDicomRgb(file('SIGMOID'), { limits: LIMITS })).data), values.map(sigmoid));
    const linear = (x: number): number => (x <= 50 ? 0 : x > 149 ? 255 : Math.round(((x - 99.5) / 99 + 0.5) * 255));
    assert.deepEqual(grey((await decodeDicomRgb(file('LINEAR'), { limits: LIMITS })).data), values.map(linear));
    assert.equal((await refusal(() => decodeDicomRgb(file('CUBIC'), { limits: LIMITS }))).code, 'CORRUPT_IMAGE');
  });

  test('MONOCHROME1 is inverted; 1-bit pixels are unpacked least significant bit first', async () => {
    const m1 = dicomFile({ elements: [...imageElements({ rows: 1, columns: 3, photometric: 'MONOCHROME1' }), pixelData(Buffer.from([0, 100, 200]), 'OB')] });
    // Min–max: 0 → 0, 100 → 127.5 → 128, 200 → 255; then inverted (C.7.6.3.1.2: the minimum is white).
    assert.deepEqual(grey((await decodeDicomRgb(m1, { limits: LIMITS })).data), [255, 127, 0]);
    // 10 pixels of 1 bit: 0b1000_0101, 0b0000_0010 → 1,0,1,0,0,0,0,1, 0,1.
    const bits = dicomFile({ elements: [...imageElements({ rows: 2, columns: 5, bitsAllocated: 1, bitsStored: 1 }), pixelData(Buffer.from([0b1000_0101, 0b0000_0010]), 'OB')] });
    assert.deepEqual([...(await decodeDicomMonochrome(bits, { limits: LIMITS })).stored], [1, 0, 1, 0, 0, 0, 0, 1, 0, 1]);
  });

  test('multi-frame: frame N is decoded, with its own functional-group window; a frame out of range is INVALID_REQUEST', async () => {
    const frames = Buffer.from([10, 20, 30, 40, /* frame 1 */ 0, 100, 200, 255, /* frame 2 */ 7, 7, 7, 7]);
    const file = dicomFile({ elements: [...imageElements({ rows: 2, columns: 2, frames: 3 }), pixelData(frames, 'OB')] });
    const second = await decodeDicomRgb(file, { limits: LIMITS, frame: 1 });
    assert.equal(second.frame, 1);
    assert.equal(second.frames, 3);
    assert.deepEqual(grey(second.data), [0, 100, 200, 255]);
    assert.deepEqual([...(await decodeDicomMonochrome(file, { limits: LIMITS, frame: 2 })).stored], [7, 7, 7, 7]);
    const out = await refusal(() => decodeDicomRgb(file, { limits: LIMITS, frame: 3 }));
    assert.equal(out.code, 'INVALID_REQUEST');
    assert.match(out.message, /3 frame\(s\), numbered 0 to 2/);

    // Enhanced multi-frame: (5200,9230) per-frame groups with a Frame VOI LUT item per frame.
    const voi = (center: string, width: string): DicomElement => ({ tag: 0x00289132, vr: 'SQ', undefinedLength: false, items: [[element(0x00281050, 'DS', center), element(0x00281051, 'DS', width)]] });
    const perFrame: DicomElement = { tag: 0x52009230, vr: 'SQ', undefinedLength: true, itemsUndefinedLength: true, items: [[voi('1000', '1')], [voi('-1000', '1')], [voi('100', '1')]] };
    const enhanced = dicomFile({ elements: [...imageElements({ rows: 2, columns: 2, frames: 3 }), perFrame, pixelData(frames, 'OB')] });
    // Frame 0 is all below 1000 (black), frame 1 all above −1000 (white), frame 2 (7s) below 100.
    assert.deepEqual(grey((await decodeDicomRgb(enhanced, { limits: LIMITS, frame: 0 })).data), [0, 0, 0, 0]);
    assert.deepEqual(grey((await decodeDicomRgb(enhanced, { limits: LIMITS, frame: 1 })).data), [255, 255, 255, 255]);
    assert.deepEqual(grey((await decodeDicomRgb(enhanced, { limits: LIMITS, frame: 2 })).data), [0, 0, 0, 0]);
  });
});

describe('colour', () => {
  // Y, Cb, Cr of pure red, green, blue, mid grey (JFIF / PS3.3 C.7.6.3.1.2 YBR_FULL equations).
  const ybr = [[76, 85, 255], [150, 44, 21], [29, 255, 107], [128, 128, 128]];
  const toRgb = ([y, cb, cr]: number[]): number[] => {
    const [Y, B, R] = [y ?? 0, (cb ?? 0) - 128, (cr ?? 0) - 128];
    return [Y + 1.402 * R, Y - 0.344136 * B - 0.714136 * R, Y + 1.772 * B].map((v) => Math.min(255, Math.max(0, Math.round(v))));
  };

  test('YBR_FULL and YBR_FULL_422 uncompressed are converted to RGB by the YBR_FULL equations', async () => {
    const full = dicomFile({ elements: [...imageElements({ rows: 2, columns: 2, samplesPerPixel: 3, photometric: 'YBR_FULL', planarConfiguration: 0 }), pixelData(Buffer.from(ybr.flat()), 'OB')] });
    const rgb = await decodeDicomRgb(full, { limits: LIMITS });
    assert.deepEqual([...rgb.data], ybr.flatMap(toRgb));
    assert.deepEqual([...rgb.data.subarray(0, 3)], [254, 0, 0]);
    // 4:2:2: Y1 Y2 Cb Cr for each pair of pixels; both pixels of a pair share the chroma.
    const packed = Buffer.from([76, 100, 85, 255, 29, 200, 255, 107]);
    const half = dicomFile({ elements: [...imageElements({ rows: 1, columns: 4, samplesPerPixel: 3, photometric: 'YBR_FULL_422', planarConfiguration: 0 }), pixelData(packed, 'OB')] });
    const decoded = await decodeDicomRgb(half, { limits: LIMITS });
    assert.deepEqual([...decoded.data], [[76, 85, 255], [100, 85, 255], [29, 255, 107], [200, 255, 107]].flatMap(toRgb));
    const samples = await decodeDicomSamples(half, { limits: LIMITS });
    assert.equal(samples.colour, 'YBR_FULL');
    assert.deepEqual([...samples.data], [76, 85, 255, 100, 85, 255, 29, 255, 107, 200, 255, 107]);
  });

  test('16-bit RGB keeps its top 8 stored bits; planar configuration 1 is interleaved', async () => {
    const planes = [[0xffff, 0x8000], [0x0000, 0x00ff], [0x1234, 0xfedc]];
    const file = dicomFile({ elements: [...imageElements({ rows: 1, columns: 2, samplesPerPixel: 3, photometric: 'RGB', planarConfiguration: 1, bitsAllocated: 16 }), pixelData(u16le(planes.flat()))] });
    assert.deepEqual([...(await decodeDicomRgb(file, { limits: LIMITS })).data], [0xff, 0x00, 0x12, 0x80, 0x00, 0xfe]);
  });

  test('PALETTE COLOR: indices through the red, green and blue LUTs from the first mapped value, 16-bit entries to 8', async () => {
    const descriptor = (tag: number): DicomElement => element(tag, 'US', us(4, 10, 16));
    const lut = (tag: number, values: number[]): DicomElement => element(tag, 'OW', u16le(values));
    const elements = [
      ...imageElements({ rows: 1, columns: 6, photometric: 'PALETTE COLOR' }),
      descriptor(0x00281101), descriptor(0x00281102), descriptor(0x00281103),
      lut(0x00281201, [0x0000, 0xff00, 0x0000, 0x8000]),
      lut(0x00281202, [0x0000, 0x0000, 0xffff, 0x8000]),
      lut(0x00281203, [0x0000, 0x0000, 0x0000, 0x80ff]),
      pixelData(Buffer.from([0, 10, 11, 12, 13, 200]), 'OB'),
    ].sort((a, b) => a.tag - b.tag);
    const rgb = await decodeDicomRgb(dicomFile({ elements }), { limits: LIMITS });
    // 0 is below the first mapped value (10): first entry; 200 is above the last: last entry.
    assert.deepEqual([...rgb.data], [0, 0, 0, 0, 0, 0, 255, 0, 0, 0, 255, 0, 128, 128, 128, 128, 128, 128]);
  });
});

describe('encapsulated', () => {
  /** RLE (PS3.5 G.3) with literal runs only: enough to exercise the decoder's segment handling. */
  function rleFrame(samples: number[], bytesPerSample: number): Buffer {
    const segments: Buffer[] = [];
    for (let b = 0; b < bytesPerSample; b++) {
      const plane = Buffer.from(samples.map((v) => (v >>> (8 * (bytesPerSample - 1 - b))) & 0xff));
      const runs: Buffer[] = [];
      for (let at = 0; at < plane.length; at += 128) {
        const chunk = plane.subarray(at, at + 128);
        runs.push(Buffer.from([chunk.length - 1]), chunk);
      }
      const segment = Buffer.concat(runs);
      segments.push(segment.length % 2 ? Buffer.concat([segment, Buffer.from([0x80])]) : segment);
    }
    const header = Buffer.alloc(64);
    header.writeUInt32LE(segments.length, 0);
    let offset = 64;
    segments.forEach((s, i) => {
      header.writeUInt32LE(offset, 4 + 4 * i);
      offset += s.length;
    });
    return Buffer.concat([header, ...segments]);
  }

  test('RLE: signed 16-bit frames with a Basic Offset Table; a short segment is CORRUPT_IMAGE', async () => {
    const frame0 = [0, 1, -1, -32768, 32767, 300].map((v) => v & 0xffff);
    const frame1 = [5, 4, 3, 2, 1, 0];
    const fragments = [rleFrame(frame0, 2), rleFrame(frame1, 2)];
    const file = dicomFile({
      transferSyntax: UID.rle,
      elements: [...imageElements({ rows: 2, columns: 3, frames: 2, bitsAllocated: 16, pixelRepresentation: 1 }), encapsulated(fragments, offsetsOf(fragments))],
    });
    assert.deepEqual([...(await decodeDicomMonochrome(file, { limits: LIMITS })).stored], [0, 1, -1, -32768, 32767, 300]);
    assert.deepEqual([...(await decodeDicomMonochrome(file, { limits: LIMITS, frame: 1 })).stored], frame1);
    const short = rleFrame(frame1.slice(0, 4), 2);
    const broken = dicomFile({ transferSyntax: UID.rle, elements: [...imageElements({ rows: 2, columns: 3, bitsAllocated: 16 }), encapsulated([short])] });
    const error = await refusal(() => decodeDicomRgb(broken, { limits: LIMITS }));
    assert.equal(error.code, 'CORRUPT_IMAGE');
    assert.match(error.message, /segment 1 decodes to 4 bytes; the frame needs 6/);
  });

  test('Encapsulated Uncompressed and Deflated Image Frame Compression: one fragment per frame', async () => {
    const frames = [Buffer.from([1, 2, 3, 4]), Buffer.from([9, 8, 7, 6])];
    const raw = dicomFile({ transferSyntax: UID.encapsulatedUncompressed, elements: [...imageElements({ rows: 2, columns: 2, frames: 2 }), encapsulated(frames)] });
    assert.deepEqual([...(await decodeDicomMonochrome(raw, { limits: LIMITS, frame: 1 })).stored], [9, 8, 7, 6]);
    const deflated = frames.map((f) => deflateRawSync(f));
    const inflate = dicomFile({ transferSyntax: UID.deflatedFrames, elements: [...imageElements({ rows: 2, columns: 2, frames: 2 }), encapsulated(deflated)] });
    assert.deepEqual([...(await decodeDicomMonochrome(inflate, { limits: LIMITS, frame: 1 })).stored], [9, 8, 7, 6]);
    // A frame that inflates to more than its size is refused at the frame size.
    const bomb = dicomFile({ transferSyntax: UID.deflatedFrames, elements: [...imageElements({ rows: 2, columns: 2 }), encapsulated([deflateRawSync(Buffer.alloc(1 << 20))])] });
    assert.equal((await refusal(() => decodeDicomRgb(bomb, { limits: LIMITS }))).code, 'CORRUPT_IMAGE');
  });

  test('JPEG Baseline: greyscale and colour decode like sharp; the Photometric Interpretation decides the colour transform', async () => {
    const width = 16;
    const height = 8;
    const pattern = Buffer.alloc(width * height * 3);
    for (let i = 0; i < width * height; i++) pattern.set([255, (i * 7) % 256, 0], i * 3);
    const colourJpeg = await sharp(pattern, { raw: { width, height, channels: 3 } }).jpeg({ quality: 95 }).toBuffer();
    const reference = await sharp(colourJpeg).raw().toBuffer();
    const asDicom = (jpeg: Buffer, samplesPerPixel: number, photometric: string): Buffer => dicomFile({
      transferSyntax: UID.jpegBaseline,
      elements: [...imageElements({ rows: height, columns: width, samplesPerPixel, photometric, ...(samplesPerPixel === 3 ? { planarConfiguration: 0 } : {}) }), encapsulated([jpeg])],
    });
    const ybrFile = asDicom(colourJpeg, 3, 'YBR_FULL_422');
    const decoded = await decodeDicomRgb(ybrFile, { limits: LIMITS });
    const maxDifference = Math.max(...[...decoded.data].map((v, i) => Math.abs(v - (reference[i] ?? 0))));
    assert.ok(maxDifference <= 1, `differs from sharp by up to ${maxDifference}`);
    // A stream labelled RGB is taken as not colour-transformed (no Adobe marker says otherwise): for a
    // solid red JFIF JPEG what comes out are its stored Y, Cb, Cr (about 76, 85, 255), not red.
    const red = await sharp({ create: { width, height, channels: 3, background: { r: 255, g: 0, b: 0 } } }).jpeg({ quality: 95 }).toBuffer();
    const asRgb = await decodeDicomRgb(asDicom(red, 3, 'RGB'), { limits: LIMITS });
    assert.deepEqual([...(await decodeDicomRgb(asDicom(red, 3, 'YBR_FULL_422'), { limits: LIMITS })).data.subarray(0, 3)], [254, 0, 0]);
    assert.ok(Math.abs((asRgb.data[0] ?? 0) - 76) <= 3 && Math.abs((asRgb.data[1] ?? 0) - 85) <= 3 && (asRgb.data[2] ?? 0) >= 250, `got ${[...asRgb.data.subarray(0, 3)]}`);

    const greyJpeg = await sharp(Buffer.from(Array.from({ length: width * height }, (_, i) => i * 2)), { raw: { width, height, channels: 1 } }).toColourspace('b-w').jpeg({ quality: 95 }).toBuffer();
    const greyFile = asDicom(greyJpeg, 1, 'MONOCHROME2');
    const greyReference = await sharp(greyJpeg).extractChannel(0).raw().toBuffer();
    const stored = (await decodeDicomMonochrome(greyFile, { limits: LIMITS })).stored;
    assert.deepEqual([...stored], [...greyReference]);
    // The upload path decodes it too (it used to refuse JPEG Baseline).
    const upload = await decodeRgb(greyFile, 'dicom', readImageHeader(greyFile, 'dicom'), LIMITS);
    assert.equal(upload.width, width);
  });

  test('12-bit JPEG Extended is DICOM_PIXELS_UNSUPPORTED, saying so', async () => {
    const error = await refusal(() => decodeDicomRgb(readFileSync(path.join(PYDICOM_TEST_FILES, 'JPGExtended.dcm')), { limits: LIMITS }));
    assert.equal(error.code, 'DICOM_PIXELS_UNSUPPORTED');
    assert.match(error.message, /12-bit JPEG Extended \(Process 4\)/);
  });

  test('frames of a multi-frame JPEG: by Basic Offset Table, by Extended Offset Table, and by start-of-image markers', async () => {
    const jpegs = await Promise.all([10, 120, 240].map((v) => sharp(Buffer.alloc(64, v), { raw: { width: 8, height: 8, channels: 1 } }).toColourspace('b-w').jpeg({ quality: 100 }).toBuffer()));
    const even = jpegs.map((j) => (j.length % 2 ? Buffer.concat([j, Buffer.alloc(1)]) : j));
    const module = imageElements({ rows: 8, columns: 8, frames: 3 });
    const mean = async (file: Buffer, frame: number): Promise<number> => {
      const { stored } = await decodeDicomMonochrome(file, { limits: LIMITS, frame });
      return Math.round([...stored].reduce((a, b) => a + b, 0) / stored.length);
    };
    const withTable = dicomFile({ transferSyntax: UID.jpegBaseline, elements: [...module, encapsulated(even, offsetsOf(even))] });
    assert.deepEqual([await mean(withTable, 0), await mean(withTable, 1), await mean(withTable, 2)], [10, 120, 240]);
    // Each frame in two fragments, no table: frames start where a fragment starts with SOI.
    const split = even.flatMap((j) => [j.subarray(0, 100), j.subarray(100)]);
    const bySoi = dicomFile({ transferSyntax: UID.jpegBaseline, elements: [...module, encapsulated(split)] });
    assert.deepEqual([await mean(bySoi, 0), await mean(bySoi, 1), await mean(bySoi, 2)], [10, 120, 240]);
    // Extended Offset Table (PS3.3 C.7.6.3.1.8): 64-bit offsets, empty Basic Offset Table.
    const eot = Buffer.alloc(24);
    // The table points at the items of `split`: frame f starts at item 2f.
    const itemOffsets = offsetsOf(split);
    [0, 2, 4].forEach((item, i) => eot.writeBigUInt64LE(BigInt(itemOffsets[item] ?? 0), 8 * i));
    const extended = dicomFile({ transferSyntax: UID.jpegBaseline, elements: [...module, { tag: 0x7fe00001, vr: 'OV', value: eot }, encapsulated(split)] });
    assert.deepEqual([await mean(extended, 2), await mean(extended, 1)], [240, 120]);
    // A table that points between fragments is refused.
    const wrong = dicomFile({ transferSyntax: UID.jpegBaseline, elements: [...module, encapsulated(even, [0, 4, 8])] });
    assert.equal((await refusal(() => decodeDicomRgb(wrong, { limits: LIMITS, frame: 1 }))).code, 'CORRUPT_IMAGE');
  });
});

describe('recompressed with dcmtk: decoded values equal the uncompressed original', () => {
  const missing = dcmtkMissing();
  const run = (tool: string, args: string[]): void => {
    const result = spawnSync(tool, args, { encoding: 'utf8' });
    assert.equal(result.status, 0, `${tool} ${args.join(' ')}: ${result.stderr}`);
  };

  const cases: { name: string; source: string; tool: string; options: string[]; frames?: number[] }[] = [
    { name: 'JPEG Lossless SV1, signed 16-bit MR', source: 'MR_small.dcm', tool: 'dcmcjpeg', options: ['+e1'] },
    { name: 'JPEG Lossless (Process 14, predictor 6), CT', source: 'CT_small.dcm', tool: 'dcmcjpeg', options: ['+el'] },
    { name: 'JPEG-LS lossless, signed 16-bit MR', source: 'MR_small.dcm', tool: 'dcmcjpls', options: ['+el'] },
    { name: 'JPEG-LS lossless, RGB, interleave none, 2 frames in 1 kB fragments', source: 'SC_rgb_rle_2frame.dcm', tool: 'dcmcjpls', options: ['+el', '+in', '+fs', '1'], frames: [0, 1] },
    { name: 'JPEG-LS lossless, RGB, sample interleaved, no offset table', source: 'SC_rgb_rle_2frame.dcm', tool: 'dcmcjpls', options: ['+el', '+is', '-ot'], frames: [0, 1] },
    { name: 'JPEG Lossless SV1, RGB, 2 frames', source: 'SC_rgb_rle_2frame.dcm', tool: 'dcmcjpeg', options: ['+e1'], frames: [0, 1] },
    { name: 'RLE, CT', source: 'CT_small.dcm', tool: 'dcmcrle', options: [] },
  ];

  for (const c of cases) {
    test(c.name, { skip: missing }, async () => {
      let source = path.join(PYDICOM_TEST_FILES, c.source);
      if (c.source.includes('rle')) {
        // dcmtk's encoders take uncompressed input.
        const plain = path.join(work, `plain-${c.source}`);
        run('dcmdrle', [source, plain]);
        source = plain;
      }
      const out = path.join(work, `${c.name.replace(/\W+/g, '-')}.dcm`);
      run(c.tool, [...c.options, source, out]);
      const original = readFileSync(source);
      const compressed = readFileSync(out);
      for (const frame of c.frames ?? [0]) {
        const expected = await decodeDicomSamples(original, { limits: LIMITS, frame });
        const actual = await decodeDicomSamples(compressed, { limits: LIMITS, frame });
        assert.deepEqual([...(actual.stored ?? actual.data)], [...(expected.stored ?? expected.data)], `frame ${frame}`);
      }
    });
  }

  test('JPEG-LS near-lossless (NEAR 2) stays within 2 of the original', { skip: missing }, async () => {
    // Near-lossless JPEG-LS needs unsigned samples: a 12-bit computed radiograph.
    const source = path.join(PYDICOM_TEST_FILES, 'dicomdirtests/77654033/CR1/6154');
    const out = path.join(work, 'near.dcm');
    run('dcmcjpls', ['+en', source, out]);
    const expected = (await decodeDicomSamples(readFileSync(source), { limits: LIMITS })).stored ?? [];
    const actual = (await decodeDicomSamples(readFileSync(out), { limits: LIMITS })).stored ?? [];
    const worst = Math.max(...[...actual].map((v, i) => Math.abs(v - (expected[i] ?? 0))));
    assert.ok(worst <= 2 && worst > 0, `largest difference ${worst}`);
  });

  test('JPEG Baseline of a colour image (dcmtk, YBR_FULL_422) matches dcmtk\'s own decompression within 2', { skip: missing }, async () => {
    const plain = path.join(work, 'rgb-plain.dcm');
    run('dcmdrle', [path.join(PYDICOM_TEST_FILES, 'SC_rgb_rle.dcm'), plain]);
    const lossy = path.join(work, 'rgb-baseline.dcm');
    run('dcmcjpeg', ['+eb', plain, lossy]);
    const back = path.join(work, 'rgb-baseline-dcmtk.dcm');
    run('dcmdjpeg', [lossy, back]);
    const ours = await decodeDicomRgb(readFileSync(lossy), { limits: LIMITS });
    const theirs = await decodeDicomSamples(readFileSync(back), { limits: LIMITS });
    assert.equal(theirs.colour, 'RGB');
    const worst = Math.max(...[...ours.data].map((v, i) => Math.abs(v - (theirs.data[i] ?? 0))));
    assert.ok(worst <= 2, `largest difference ${worst}`);
  });
});

describe('uploads', () => {
  const [target] = platformTargets();
  test('POST /v1/predict decodes DICOM through the guarded decoder: JPEG Baseline and deflated uploads are classified, hostile ones refused', async (t) => {
    assert.ok(target);
    const { platform } = await target.open(t);
    const app = await build(platform);
    t.after(() => app.close());
    const post = async (bytes: Buffer) => {
      const { payload, headers } = await multipart({ image: { bytes, filename: 'image.dcm' } });
      return app.inject({ method: 'POST', url: '/v1/predict', payload, headers: { ...headers, authorization: `Bearer ${TEST_API_KEY}` } });
    };
    const sample = sharp(readFileSync('samples/tissue-tumour-like.png')).removeAlpha();
    const { data, info } = await sample.clone().raw().toBuffer({ resolveWithObject: true });
    const module = imageElements({ rows: info.height, columns: info.width, samplesPerPixel: 3, photometric: 'YBR_FULL_422', planarConfiguration: 0 });
    const jpeg = await sample.clone().jpeg({ quality: 95 }).toBuffer();
    const jpegDicom = dicomFile({ transferSyntax: UID.jpegBaseline, elements: [...module, encapsulated([jpeg])] });
    const rgbModule = imageElements({ rows: info.height, columns: info.width, samplesPerPixel: 3, photometric: 'RGB', planarConfiguration: 0 });
    const deflated = deflatedFile([...rgbModule, pixelData(data, 'OB')]);
    for (const [name, file] of [['JPEG Baseline', jpegDicom], ['Deflated Explicit VR Little Endian', deflated]] as const) {
      const res = await post(file);
      assert.equal(res.statusCode, 200, `${name}: ${res.body}`);
      const body = res.json();
      assert.equal(body.input.mediaType, 'dicom', name);
      assert.equal(body.input.width, info.width, name);
      assert.equal(body.findings[0].code, 'tumour-pattern', name);
    }
    const mpeg = dicomFile({ transferSyntax: UID.mpeg2, elements: [...imageElements({ rows: 8, columns: 8 }), encapsulated([Buffer.from([0, 0, 1, 0xb3])])] });
    const bomb = deflatedFile([{ tag: 0x00091010, vr: 'OB', value: Buffer.alloc(80 * 1024 * 1024) }, ...imageElements({ rows: 2, columns: 2 }), pixelData(Buffer.alloc(4), 'OB')]);
    for (const [file, code] of [[mpeg, 'DICOM_PIXELS_UNSUPPORTED'], [bomb, 'DICOM_DEFLATE_BOMB']] as const) {
      const res = await post(file);
      assert.equal(res.statusCode, 422, res.body);
      assert.equal(res.json().error.code, code);
    }
  });
});
