import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import sharp from 'sharp';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { AppError } from '../../src/core/errors.ts';
import { fromBuffer } from '../../src/imaging/wsi/byte-source.ts';
import { decodeJpeg2000 } from '../../src/imaging/wsi/jpeg2000.ts';
import { openSlide } from '../../src/imaging/wsi/slide.ts';
import {
  aperioDescription, crop, encodeJ2k, encodeSubsampledYcbcr, encodeTiles, type EncodeOptions, opjCompressMissing, rgbToYcbcr, wrapJp2,
} from './j2k-fixtures.ts';
import { compareWithOpenSlide, openSlideMissing, openSlideRegion } from './openslide.ts';
import { testPattern, writeTestTiff } from './tiff-writer.ts';

// JPEG 2000 tiles (TIFF compressions 33003, 33005, 34712). The Aperio variants are checked pixel for
// pixel against OpenSlide's aperio driver, which decodes them with the system OpenJPEG and converts
// 33003 from YCbCr itself; the other cases against the pictures encoded.

const WIDTH = 700;
const HEIGHT = 500;
const TILE = 128;

let dir = '';

function vipsMissing(): string | false {
  return spawnSync('vips', ['--version']).status === 0 ? false : 'the vips command (libvips-tools) is not installed';
}

function isAppError(code: string, pattern?: RegExp) {
  return (e: unknown): boolean => {
    assert.ok(e instanceof AppError, `expected an AppError, got ${String(e)}`);
    assert.equal(e.code, code, e.message);
    if (pattern !== undefined) assert.match(e.message, pattern);
    return true;
  };
}

/** RGB as OpenSlide's RGBA (opaque), for compareWithOpenSlide against an expected picture. */
function opaque(rgb: Buffer): Buffer {
  const rgba = Buffer.alloc((rgb.length / 3) * 4, 255);
  for (let p = 0; p * 3 < rgb.length; p++) rgb.copy(rgba, p * 4, p * 3, p * 3 + 3);
  return rgba;
}

/** Level 1 of the pyramid: every other pixel of level 0 (the content does not matter, only agreement). */
function halve(rgb: Buffer, width: number, height: number): Buffer {
  const w = Math.floor(width / 2);
  const h = Math.floor(height / 2);
  const out = Buffer.alloc(w * h * 3);
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) rgb.copy(out, (y * w + x) * 3, (2 * y * width + 2 * x) * 3, (2 * y * width + 2 * x) * 3 + 3);
  return out;
}

/**
 * An Aperio SVS as Aperio lays it out: level 0, the stripped thumbnail, then level 1; the levels are
 * J2K-tiled with `compression`, and for 33003 the tiles hold YCbCr.
 */
async function aperioJ2k(compression: 33003 | 33005, options: EncodeOptions): Promise<Buffer> {
  const transform = compression === 33003 ? { transform: rgbToYcbcr } : {};
  const level0 = testPattern(WIDTH, HEIGHT);
  const level1 = halve(level0, WIDTH, HEIGHT);
  const summary = compression === 33003 ? 'J2K/YUV16 Q=70' : 'J2K/KDU Q=70';
  return writeTestTiff([
    { width: WIDTH, height: HEIGHT, pixels: level0, tile: TILE, compression, encodedTiles: await encodeTiles(level0, WIDTH, HEIGHT, TILE, { ...options, ...transform }), description: aperioDescription(WIDTH, HEIGHT, TILE, summary) },
    { width: 140, height: 100, pixels: testPattern(140, 100), description: `Aperio Image Library v12.0.15 \r\n${WIDTH}x${HEIGHT} -> 140x100 - |AppMag = 20` },
    { width: WIDTH / 2, height: HEIGHT / 2, pixels: level1, tile: TILE, compression, encodedTiles: await encodeTiles(level1, WIDTH / 2, HEIGHT / 2, TILE, { ...options, ...transform }), description: `Aperio Image Library v12.0.15 \r\n${WIDTH}x${HEIGHT} -> ${WIDTH / 2}x${HEIGHT / 2} - |AppMag = 20` },
  ], { littleEndian: true, bigTiff: false });
}

before(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'dxflow-j2k-'));
});

after(async () => {
  if (dir !== '') await rm(dir, { recursive: true, force: true });
});

describe('Aperio JPEG 2000 slides agree with OpenSlide', () => {
  const missing = openSlideMissing();
  // [level, x0, y0, w, h]: across tile boundaries, over the right and bottom edges (OpenSlide is
  // transparent there, so only the image is compared), and at level 1.
  const regions: [number, number, number, number, number][] = [[0, 100, 90, 400, 300], [0, 560, 380, 200, 150], [1, 200, 100, 250, 150], [1, 0, 0, 350, 250]];
  const variants: { name: string; compression: 33003 | 33005; options: EncodeOptions; maxDifference: number }[] = [
    { name: '33005 RGB, lossless', compression: 33005, options: { lossless: true }, maxDifference: 0 },
    { name: '33005 RGB, lossy 9/7 at 8:1', compression: 33005, options: { lossless: false, ratio: 8 }, maxDifference: 1 },
    { name: '33003 YCbCr, lossless', compression: 33003, options: { lossless: true }, maxDifference: 0 },
    { name: '33003 YCbCr, lossy 9/7 at 8:1', compression: 33003, options: { lossless: false, ratio: 8 }, maxDifference: 1 },
  ];
  for (const v of variants) {
    test(v.name, { skip: missing }, async (t) => {
      const bytes = await aperioJ2k(v.compression, v.options);
      const file = path.join(dir, `aperio-${v.compression}-${v.options.lossless === false ? 'lossy' : 'lossless'}.svs`);
      await writeFile(file, bytes);
      const slide = await openSlide(fromBuffer(bytes));
      assert.equal(slide.vendor, 'aperio');
      assert.deepEqual(slide.levels.map((l) => [l.width, l.height, l.tileWidth]), [[WIDTH, HEIGHT, TILE], [WIDTH / 2, HEIGHT / 2, TILE]]);
      assert.match(slide.levels[0]?.compression ?? '', new RegExp(`JPEG 2000 .*${v.compression}`));
      let worst = 0;
      for (const [level, x, y, w, h] of regions) {
        const ours = await slide.readRegion(x, y, level, w, h);
        const { mean, max, opaque: count } = compareWithOpenSlide(ours.data, openSlideRegion(file, level, x, y, w, h));
        assert.ok(count > 0);
        assert.ok(max <= v.maxDifference, `level ${level} (${x}, ${y}) ${w}×${h}: mean ${mean.toFixed(4)}, max ${max}`);
        worst = Math.max(worst, max);
      }
      t.diagnostic(`largest difference from OpenSlide: ${worst}`);
      if (v.options.lossless !== false && v.compression === 33005) {
        // Lossless RGB is the picture itself.
        const all = await slide.readRegion(0, 0, 0, WIDTH, HEIGHT);
        assert.ok(all.data.equals(testPattern(WIDTH, HEIGHT)));
      }
    });
  }

  test('33003 YCbCr with subsampled chroma (4:2:2, 4:2:0)', { skip: missing || opjCompressMissing() }, async (t) => {
    // The codec converts subsampled YCbCr to RGB itself, with its own rounding (truncation), while
    // OpenSlide rounds: they may differ by one level.
    const size = 256;
    const pattern = testPattern(size, size);
    for (const mode of ['4:2:2', '4:2:0'] as const) {
      const tiles = [0, 1, 2, 3].map((i) => encodeSubsampledYcbcr(crop(pattern, size, 3, (i % 2) * TILE, Math.floor(i / 2) * TILE, TILE, TILE), TILE, mode));
      const bytes = writeTestTiff([{ width: size, height: size, pixels: pattern, tile: TILE, compression: 33003, encodedTiles: tiles, description: aperioDescription(size, size, TILE, 'J2K/YUV16') }], { littleEndian: true, bigTiff: false });
      const file = path.join(dir, `subsampled-${mode.replaceAll(':', '')}.svs`);
      await writeFile(file, bytes);
      const ours = await (await openSlide(fromBuffer(bytes))).readRegion(0, 0, 0, size, size);
      const { mean, max } = compareWithOpenSlide(ours.data, openSlideRegion(file, 0, 0, 0, size, size));
      t.diagnostic(`${mode}: mean ${mean.toFixed(4)}, max ${max} from OpenSlide`);
      assert.ok(max <= 1 && mean < 0.6, `${mode}: mean ${mean}, max ${max}`);
    }
  });
});

describe('JPEG 2000 tile layouts', () => {
  test('edge tiles whose codestreams are smaller than the tile', async () => {
    // 300×200 in 128-pixel tiles: the last column and row are encoded at 44 and 72 pixels.
    const [w, h] = [300, 200];
    const pattern = testPattern(w, h);
    const tiles = await encodeTiles(pattern, w, h, TILE, { lossless: true, clipEdges: true });
    const slide = await openSlide(fromBuffer(writeTestTiff([{ width: w, height: h, pixels: pattern, tile: TILE, compression: 33005, encodedTiles: tiles }], { littleEndian: false, bigTiff: true })));
    assert.ok((await slide.readRegion(0, 0, 0, w, h)).data.equals(pattern));
    const corner = await slide.readTile(0, 2, 1);
    assert.deepEqual([corner.width, corner.height], [44, 72]);
    assert.ok(corner.data.equals(crop(pattern, w, 3, 256, 128, 44, 72)));
    // Decoded at the tile size, the part the codestream does not cover is white.
    const block = await decodeJpeg2000(tiles[5] ?? Buffer.alloc(0), TILE, TILE, { ycbcr: false, where: 'a test' });
    assert.equal(block.length, TILE * TILE * 3);
    assert.ok(crop(block, TILE, 3, 0, 0, 44, 72).equals(crop(pattern, w, 3, 256, 128, 44, 72)));
    assert.ok(crop(block, TILE, 3, 44, 0, TILE - 44, TILE).every((b) => b === 255));
    assert.ok(crop(block, TILE, 3, 0, 72, TILE, TILE - 72).every((b) => b === 255));
  });

  test('one-component (grey) codestreams become grey RGB', async () => {
    const [w, h] = [256, 256];
    const grey = Buffer.alloc(w * h);
    for (let i = 0; i < grey.length; i++) grey[i] = (i * 13 + (i >> 8) * 7) & 0xff;
    const tiles: Buffer[] = [];
    for (let r = 0; r < 2; r++) for (let c = 0; c < 2; c++) tiles.push(await encodeJ2k(crop(grey, w, 1, c * TILE, r * TILE, TILE, TILE), TILE, TILE, 1));
    const slide = await openSlide(fromBuffer(writeTestTiff([{ width: w, height: h, pixels: Buffer.alloc(w * h * 3), tile: TILE, compression: 34712, encodedTiles: tiles, photometric: 1 }], { littleEndian: true, bigTiff: false })));
    const region = await slide.readRegion(0, 0, 0, w, h);
    const expected = Buffer.alloc(w * h * 3);
    for (let i = 0; i < grey.length; i++) expected.fill(grey[i] ?? 0, i * 3, i * 3 + 3);
    assert.ok(region.data.equals(expected));
  });

  test('JP2-boxed tiles decode like raw codestreams', async () => {
    const pattern = crop(testPattern(300, 300), 300, 3, 0, 0, TILE, TILE);
    const raw = await encodeJ2k(pattern, TILE, TILE, 3);
    const where = { where: 'a test' };
    // sRGB declared: the components are R, G, B.
    assert.ok((await decodeJpeg2000(wrapJp2(raw, TILE, TILE, 3, 16), TILE, TILE, { ycbcr: false, ...where })).equals(pattern));
    // 33003 in a JP2 declaring sRGB: the file header wins, no YCbCr conversion.
    assert.ok((await decodeJpeg2000(wrapJp2(raw, TILE, TILE, 3, 16), TILE, TILE, { ycbcr: true, ...where })).equals(pattern));
    // sYCC declared: the codec converts to RGB, and the reader must not convert a second time.
    const ycc = await encodeJ2k(rgbToYcbcr(pattern), TILE, TILE, 3);
    const fromRaw = await decodeJpeg2000(ycc, TILE, TILE, { ycbcr: true, ...where });
    const fromJp2 = await decodeJpeg2000(wrapJp2(ycc, TILE, TILE, 3, 18), TILE, TILE, { ycbcr: true, ...where });
    assert.ok(compareWithOpenSlide(fromRaw, opaque(pattern)).max <= 1);
    const { max, mean } = compareWithOpenSlide(fromJp2, opaque(fromRaw));
    assert.ok(max <= 2 && mean < 0.5, `JP2 sYCC against raw YCbCr: mean ${mean}, max ${max}`);
  });

  test('the Photometric tag says YCbCr for the generic JPEG 2000 code (34712)', async () => {
    const pattern = testPattern(TILE, TILE);
    const tiles = [await encodeJ2k(rgbToYcbcr(pattern), TILE, TILE, 3)];
    const read = async (compression: number, photometric: number): Promise<Buffer> => {
      const slide = await openSlide(fromBuffer(writeTestTiff([{ width: TILE, height: TILE, pixels: pattern, tile: TILE, compression, encodedTiles: tiles, photometric }], { littleEndian: true, bigTiff: false })));
      return (await slide.readTile(0, 0, 0)).data;
    };
    const aperio = await read(33003, 2);
    assert.ok(compareWithOpenSlide(aperio, opaque(pattern)).max <= 1);
    assert.ok((await read(34712, 6)).equals(aperio));
    assert.ok((await read(34712, 2)).equals(rgbToYcbcr(pattern)));
    assert.ok((await read(33005, 2)).equals(rgbToYcbcr(pattern)));
  });
});

describe('damaged JPEG 2000 tiles', () => {
  const pattern = testPattern(TILE, TILE);
  const inverted = Buffer.from(pattern.map((v) => 255 - v));
  let good: Buffer = Buffer.alloc(0);
  let other: Buffer = Buffer.alloc(0);
  before(async () => {
    good = await encodeJ2k(pattern, TILE, TILE, 3, { lossless: false, ratio: 6 });
    other = await encodeJ2k(inverted, TILE, TILE, 3);
  });

  /** A one-tile Aperio 33005 slide with `tile` as its tile. */
  const slideWith = (tile: Buffer) => openSlide(fromBuffer(writeTestTiff([{ width: TILE, height: TILE, pixels: pattern, tile: TILE, compression: 33005, encodedTiles: [tile], description: aperioDescription(TILE, TILE, TILE, 'J2K/KDU') }], { littleEndian: true, bigTiff: false })));

  test('pyramidal TIFFs that libvips writes with JPEG 2000 tiles (33004, YCbCr codestreams) read back', { skip: vipsMissing() }, async () => {
    const source = path.join(dir, 'vips-source.png');
    const out = path.join(dir, 'vips-jp2k.tif');
    const picture = testPattern(600, 400);
    await sharp(picture, { raw: { width: 600, height: 400, channels: 3 } }).png().toFile(source);
    const run = spawnSync('vips', ['tiffsave', source, out, '--tile', '--tile-width', '128', '--tile-height', '128', '--pyramid', '--compression', 'jp2k', '--lossless']);
    assert.equal(run.status, 0, run.stderr.toString());
    const slide = await openSlide(fromBuffer(await readFile(out)));
    assert.match(slide.levels[0]?.compression ?? '', /JPEG 2000/);
    const region = await slide.readRegion(0, 0, 0, 600, 400);
    // Lossless in YCbCr, but libvips rounds its RGB→YCbCr in 8 bits, so the way back is off by a few steps.
    let sum = 0;
    let max = 0;
    for (let i = 0; i < picture.length; i++) {
      const d = Math.abs((region.data[i] as number) - (picture[i] as number));
      sum += d;
      max = Math.max(max, d);
    }
    assert.ok(max <= 4 && sum / picture.length < 1, `max ${max}, mean ${sum / picture.length}`);
  });

  test('damaged, truncated and foreign tiles are CORRUPT_IMAGE naming JPEG 2000, and the next tile still decodes', async () => {
    const damagedHeader = Buffer.from(good);
    damagedHeader.fill(0x13, 50, 120);
    const cases: [string, Buffer][] = [
      ['damaged header', damagedHeader],
      ['truncated to 90%', good.subarray(0, Math.floor(good.length * 0.9))],
      ['truncated to 300 bytes', good.subarray(0, 300)],
      ['truncated inside SIZ', good.subarray(0, 30)],
      ['not JPEG 2000', Buffer.from('this is not a codestream at all, just text')],
      ['JP2 signature without a codestream box', wrapJp2(Buffer.alloc(0), TILE, TILE, 3, 16).subarray(0, 40)],
    ];
    for (const [name, tile] of cases) {
      const slide = await slideWith(tile);
      await assert.rejects(slide.readTile(0, 0, 0), isAppError('CORRUPT_IMAGE', /JPEG 2000 .*33005.*re-export/), name);
      // The codec keeps working after a failure, and a good tile decodes to its own picture.
      const next = await (await slideWith(other)).readTile(0, 0, 0);
      assert.ok(next.data.equals(inverted), `after ${name}`);
    }
    // (A tile with byte count 0 is a missing tile, read as white, so an empty codestream is tried directly.)
    await assert.rejects(decodeJpeg2000(Buffer.alloc(0), TILE, TILE, { ycbcr: false, where: 'a test' }), isAppError('CORRUPT_IMAGE', /JPEG 2000 .*neither a J2K codestream/));
  });

  test('codestreams the tile cannot hold, or the reader cannot turn into 8-bit RGB, are named', async () => {
    const bigger = await encodeJ2k(testPattern(TILE * 2, TILE), TILE * 2, TILE, 3);
    await assert.rejects((await slideWith(bigger)).readTile(0, 0, 0), isAppError('CORRUPT_IMAGE', /256×128 pixels but the tile is 128×128/));
    const offset = Buffer.from(good);
    offset.writeUInt32BE(4, 16); // XOsiz
    await assert.rejects((await slideWith(offset)).readTile(0, 0, 0), isAppError('CORRUPT_IMAGE', /starts at \(4, 0\)/));
    const deep = Buffer.from(good);
    for (let c = 0; c < 3; c++) deep[42 + 3 * c] = 15; // Ssiz: unsigned 16-bit
    await assert.rejects((await slideWith(deep)).readTile(0, 0, 0), isAppError('CORRUPT_IMAGE', /16-bit components/));
  });
});

describe('decoding many tiles', () => {
  test('2000 tiles of 256×256: memory stays flat; speed is reported', async (t) => {
    const size = 256;
    const big = testPattern(size * 4, size);
    const tiles = await Promise.all([0, 1, 2, 3].map((i) => encodeJ2k(crop(big, size * 4, 3, i * size, 0, size, size), size, size, 3, { lossless: false, ratio: 10 })));
    const options = { ycbcr: true, where: 'a test' };
    for (let i = 0; i < 100; i++) await decodeJpeg2000(tiles[i % 4] ?? Buffer.alloc(0), size, size, options);
    const rssBefore = process.memoryUsage().rss;
    const started = performance.now();
    const count = 2000;
    let peak = rssBefore;
    for (let i = 0; i < count; i++) {
      const rgb = await decodeJpeg2000(tiles[i % 4] ?? Buffer.alloc(0), size, size, options);
      assert.equal(rgb.length, size * size * 3);
      if (i % 100 === 0) peak = Math.max(peak, process.memoryUsage().rss);
    }
    const seconds = (performance.now() - started) / 1000;
    const growth = (Math.max(peak, process.memoryUsage().rss) - rssBefore) / (1 << 20);
    t.diagnostic(`${(count / seconds).toFixed(0)} tiles/s (256×256, lossy 10:1, YCbCr → RGB); RSS growth ${growth.toFixed(1)} MB`);
    // Leaking one tile's buffers per decode would be 2000 × ~200 kB = 400 MB.
    assert.ok(growth < 100, `RSS grew by ${growth.toFixed(1)} MB over ${count} tiles`);
  });
});
