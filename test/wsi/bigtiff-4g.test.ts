import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { AppError } from '../../src/core/errors.ts';
import { openFileSource } from '../../src/imaging/wsi/byte-source.ts';
import { openSlide, type Slide } from '../../src/imaging/wsi/slide.ts';
import { readTiff } from '../../src/imaging/wsi/tiff-directory.ts';
import { compareWithOpenSlide, openSlideMissing, openSlideRegion } from './openslide.ts';
import { allocatedBytes, encodeJpegTiles, type EncodedTile, freeBytes, GIB, PositionedTiffWriter, sparseFilesSupported, tissuePixels, TWO_32 } from './sparse-bigtiff.ts';
import { splitJpeg, writeTestTiff } from './tiff-writer.ts';

// A pyramidal JPEG BigTIFF of more than 8 GiB, built at test time as a sparse file: the holes cost no
// disk, the tiles and directories (a few MB) are real. Level 0 has tiles below 4 GiB, a row of tiles
// straddling byte 2^32, rows past 4 GiB + 256 MiB and rows past 8 GiB; its directory and its LONG8 offset
// arrays (large enough to be read lazily) lie past 8 GiB too, and the directory chain jumps
// 8 GiB → low → 4 GiB, so 64-bit offsets are needed in the header, in next-IFD pointers, in tag value
// offsets and in the tile offsets.

const TILE = 128;
const HI1 = TWO_32 + 256 * 2 ** 20;
const HI2 = 2 * TWO_32 + 16 * 2 ** 20;
/** 4 GiB plus a margin: tiles past this cannot be reached by any 32-bit offset, wrapped or not. */
const BEYOND = TWO_32 + 64 * 2 ** 20;

interface Level {
  width: number;
  height: number;
  cols: number;
  rows: number;
  tiles: EncodedTile[];
  offsets: number[];
  /** The pixels the level's tiles decode to, cropped to the image: the expected result of any read. */
  mosaic: Buffer;
}

const LEVEL_SPECS = [
  // Level 0: abbreviated tile streams with shared JPEGTables (as Aperio and libtiff write them).
  { width: 4000, height: 2200, quality: 85, abbreviated: true },
  // Level 1: complete JPEG streams, no JPEGTables.
  { width: 2000, height: 1100, quality: 80, abbreviated: false },
  // Level 2: abbreviated again, with tables of another quality (JPEGTables are per directory).
  { width: 1000, height: 550, quality: 70, abbreviated: true },
];

const root = mkdtempSync(path.join(tmpdir(), 'dxflow-bigtiff-4g-'));
const sparse = sparseFilesSupported(root);
const skip = sparse || freeBytes(root) > 10 * GIB
  ? false
  : `${root} does not support sparse files and has less than 10 GiB free, so a file of more than 8 GiB cannot be written for this test`;
if (skip !== false) rmSync(root, { recursive: true, force: true });

function isAppError(code: string, pattern: RegExp) {
  return (e: unknown): boolean => {
    assert.ok(e instanceof AppError, `expected an AppError, got ${String(e)}`);
    assert.equal(e.code, code, e.message);
    assert.match(e.message, pattern);
    return true;
  };
}

function crop(mosaic: Buffer, mosaicWidth: number, mosaicHeight: number, x: number, y: number, width: number, height: number): Buffer {
  const out = Buffer.alloc(width * height * 3, 255);
  for (let row = 0; row < height; row++) {
    const sy = y + row;
    if (sy < 0 || sy >= mosaicHeight) continue;
    const left = Math.max(x, 0);
    const right = Math.min(x + width, mosaicWidth);
    if (left >= right) continue;
    mosaic.copy(out, (row * width + (left - x)) * 3, (sy * mosaicWidth + left) * 3, (sy * mosaicWidth + right) * 3);
  }
  return out;
}

/** First pixel where two RGB buffers differ, for a readable failure. */
function firstDifference(a: Buffer, b: Buffer, width: number): string {
  for (let i = 0; i < Math.min(a.length, b.length); i++) {
    if (a[i] !== b[i]) return `pixel (${Math.floor(i / 3) % width}, ${Math.floor(i / 3 / width)}) channel ${i % 3}: ${a[i]} vs ${b[i]}`;
  }
  return a.length === b.length ? 'none' : `lengths ${a.length} vs ${b.length}`;
}

describe('BigTIFF larger than 4 GiB (sparse file)', { skip }, () => {
  const file = path.join(root, 'beyond-4g.tif');
  const levels: Level[] = [];
  const directoryOffsets: number[] = [];
  let fileSize = 0;
  let buildMs = 0;
  let slide: Slide;
  let close: () => Promise<void> = async () => {};

  before(async () => {
    const started = performance.now();
    for (const [i, spec] of LEVEL_SPECS.entries()) {
      const pixels = tissuePixels(spec.width, spec.height, TILE, 2 ** i);
      const tiles = await encodeJpegTiles(pixels, spec.width, spec.height, TILE, spec.quality);
      const cols = Math.ceil(spec.width / TILE);
      const rows = Math.ceil(spec.height / TILE);
      const mosaic = Buffer.alloc(spec.width * spec.height * 3);
      tiles.forEach((t, index) => {
        const x = (index % cols) * TILE;
        const y = Math.floor(index / cols) * TILE;
        const n = Math.min(TILE, spec.width - x);
        for (let r = 0; r < TILE && y + r < spec.height; r++) t.decoded.copy(mosaic, ((y + r) * spec.width + x) * 3, r * TILE * 3, (r * TILE + n) * 3);
      });
      levels.push({ width: spec.width, height: spec.height, cols, rows, tiles, offsets: [], mosaic });
    }
    const stored = LEVEL_SPECS.map((spec, i) => {
      const tiles = levels[i]?.tiles ?? [];
      if (!spec.abbreviated) return { tables: undefined, streams: tiles.map((t) => t.jpeg) };
      const parts = tiles.map((t) => splitJpeg(t.jpeg));
      const tables = parts[0]?.tables;
      assert.ok(tables !== undefined && parts.every((p) => p.tables.equals(tables)), 'every tile of a level must share its JPEG tables');
      return { tables, streams: parts.map((p) => p.tile) };
    });
    const [l0, l1, l2] = levels as [Level, Level, Level];
    const [s0, s1, s2] = stored as [typeof stored[0], typeof stored[0], typeof stored[0]];

    const w = new PositionedTiffWriter(file, true);
    const imageSpec = (level: Level, tables: Buffer | undefined, streams: Buffer[], newSubfileType: number, ppcm?: number) => ({
      width: level.width, height: level.height, tile: TILE, offsets: level.offsets, byteCounts: streams.map((s) => s.length),
      photometric: 6, jpegTables: tables, newSubfileType, pixelsPerCm: ppcm,
    });
    // Below 4 GiB: level 1 (tiles and directory) and level-0 rows 0–3.
    l1.offsets.push(...s1.streams.map((s) => w.put(s)));
    const ifd1 = w.putImage(imageSpec(l1, undefined, s1.streams, 1));
    const putRows = (from: number, to: number): void => {
      for (let i = from * l0.cols; i < Math.min(to, l0.rows) * l0.cols; i++) l0.offsets.push(w.put(s0.streams[i] ?? Buffer.alloc(0)));
    };
    putRows(0, 4);
    // Row 4 starts 100 bytes before 2^32, so its first tile straddles the 32-bit boundary.
    w.jump(TWO_32 - 100);
    putRows(4, 5);
    // Past 4 GiB + 256 MiB: rows 5–13, then level 2 (tiles and directory).
    w.jump(HI1);
    putRows(5, 14);
    l2.offsets.push(...s2.streams.map((s) => w.put(s)));
    const ifd2 = w.putImage(imageSpec(l2, s2.tables, s2.streams, 1));
    // Past 8 GiB: rows 14–17, then level 0's offset arrays and directory.
    w.jump(HI2);
    putRows(14, l0.rows);
    const ifd0 = w.putImage(imageSpec(l0, s0.tables, s0.streams, 0, 40_000));
    fileSize = w.finish([ifd0, ifd1, ifd2]);
    directoryOffsets.push(ifd0, ifd1, ifd2);
    buildMs = performance.now() - started;
    const source = await openFileSource(file);
    close = () => source.close();
    slide = await openSlide(source);
  });

  after(async () => {
    await close();
    rmSync(root, { recursive: true, force: true });
  });

  test('the file is larger than 8 GiB yet occupies only a few MB of disk', (t) => {
    const used = allocatedBytes(file);
    t.diagnostic(`built in ${buildMs.toFixed(0)} ms: ${fileSize} bytes (${(fileSize / GIB).toFixed(2)} GiB), ${used} bytes on disk (${sparse ? 'sparse' : 'not sparse'})`);
    assert.ok(fileSize > 2 * TWO_32, `file size ${fileSize}`);
    if (sparse) assert.ok(used < 64 * 2 ** 20, `${used} bytes allocated`);
  });

  test('levels, dimensions and directories past 4 GiB', async () => {
    assert.equal(slide.vendor, 'generic-tiff');
    assert.deepEqual(slide.levels.map((l) => [l.width, l.height, l.downsample, l.tileWidth, l.tileHeight]), [
      [4000, 2200, 1, TILE, TILE], [2000, 1100, 2, TILE, TILE], [1000, 550, 4, TILE, TILE],
    ]);
    assert.ok(slide.levels.every((l) => l.compression === 'JPEG (TIFF Compression 7)'));
    assert.ok(Math.abs((slide.mpp?.x ?? 0) - 0.25) < 1e-9, `mpp ${JSON.stringify(slide.mpp)}`);

    const source = await openFileSource(file);
    try {
      const tiff = await readTiff(source);
      assert.equal(tiff.bigTiff, true);
      // The chain as written: level 0 past 8 GiB, level 1 low, level 2 past 4 GiB.
      assert.deepEqual(tiff.directories.map((d) => d.offset), directoryOffsets);
      assert.ok((directoryOffsets[0] ?? 0) > 2 * TWO_32 && (directoryOffsets[2] ?? 0) > BEYOND && (directoryOffsets[1] ?? 0) < TWO_32);
      const base = tiff.directories[0];
      assert.ok(base !== undefined);
      const l0 = levels[0] as Level;
      // 576 LONG8 offsets (4608 bytes) are read lazily, from past 8 GiB.
      assert.equal(base.offsets.length, l0.cols * l0.rows);
      const offsets = await Promise.all(l0.offsets.map((_, i) => base.offsets.get(i)));
      assert.deepEqual(offsets, l0.offsets);
      const beyond = offsets.filter((o) => o > BEYOND).length;
      assert.ok(beyond > offsets.length / 2, `${beyond} of ${offsets.length} level-0 tiles lie past 4 GiB + 64 MiB`);
      assert.ok(offsets.some((o) => o > 2 * TWO_32));
      const counts = await Promise.all(l0.offsets.map((_, i) => base.byteCounts.get(i)));
      assert.equal(offsets.filter((o, i) => o < TWO_32 && o + (counts[i] ?? 0) > TWO_32).length, 1, 'one tile straddles byte 2^32');
      assert.ok(base.jpegTables !== undefined && tiff.directories[1]?.jpegTables === undefined);
    } finally {
      await source.close();
    }
  });

  test('readTile returns exactly the encoded pixels of every tile, below, across and beyond 4 GiB', async () => {
    // Every tile differs (it carries its column and row), so a tile read from a wrong offset shows.
    const l0 = levels[0] as Level;
    assert.equal(new Set(l0.tiles.map((t) => t.jpeg.toString('base64'))).size, l0.tiles.length);
    for (const [index, level] of levels.entries()) {
      for (let row = 0; row < level.rows; row++) {
        for (let col = 0; col < level.cols; col++) {
          const tile = await slide.readTile(index, col, row);
          const width = Math.min(TILE, level.width - col * TILE);
          const height = Math.min(TILE, level.height - row * TILE);
          assert.equal(tile.width, width);
          assert.equal(tile.height, height);
          const expected = crop(level.mosaic, level.width, level.height, col * TILE, row * TILE, width, height);
          const where = `level ${index} tile (${col}, ${row}) at byte ${level.offsets[row * level.cols + col]}`;
          assert.ok(tile.data.equals(expected), `${where}: ${firstDifference(tile.data, expected, width)}`);
        }
      }
    }
  });

  test('readRegion across the 4 GiB boundary and past 8 GiB returns exactly the encoded pixels', async () => {
    // [level, x0, y0, w, h] in OpenSlide's convention (x0, y0 in level-0 pixels).
    const regions: [number, number, number, number, number][] = [
      [0, 50, 400, 300, 400], // rows 3–6: low, straddling 2^32, past 4 GiB
      [0, 1000, 1500, 700, 500], // rows 11–15: past 4 GiB and past 8 GiB
      [0, 3900, 2100, 200, 200], // the last (edge) tile past 8 GiB, and white outside the image
      [1, 0, 0, 2000, 1100], // level 1 whole
      [2, 400, 800, 1000, 550], // level 2 (directory past 4 GiB), past its right and bottom edges
    ];
    for (const [level, x, y, w, h] of regions) {
      const info = levels[level] as Level;
      const region = await slide.readRegion(x, y, level, w, h);
      const ds = 2 ** level;
      const expected = crop(info.mosaic, info.width, info.height, Math.floor(x / ds), Math.floor(y / ds), w, h);
      assert.ok(region.data.equals(expected), `level ${level} (${x}, ${y}) ${w}×${h}: ${firstDifference(region.data, expected, w)}`);
    }
  });

  test('OpenSlide reads the same pixels beyond 4 GiB', { skip: openSlideMissing() }, async (t) => {
    for (const [level, x, y, w, h] of [[0, 1000, 1500, 700, 500], [0, 50, 400, 300, 400], [2, 0, 0, 1000, 550]] as const) {
      const ours = await slide.readRegion(x, y, level, w, h);
      const { mean, max, opaque } = compareWithOpenSlide(ours.data, openSlideRegion(file, level, x, y, w, h));
      t.diagnostic(`OpenSlide level ${level} (${x}, ${y}) ${w}×${h}: mean ${mean.toFixed(4)}, max ${max}, opaque ${opaque}`);
      assert.equal(opaque, w * h);
      assert.ok(mean < 0.5 && max <= 4, `level ${level} (${x}, ${y}): mean ${mean}, max ${max}`);
    }
  });

  test('a classic TIFF cannot point past 4 GiB: a tile offset past its end is TRUNCATED_IMAGE', async () => {
    // The largest offsets a 32-bit field holds, in a small classic TIFF.
    const tiles = (levels[1] as Level).tiles.slice(0, 4).map((t) => t.jpeg);
    const bytes = writeTestTiff([{
      width: 2 * TILE, height: 2 * TILE, pixels: Buffer.alloc(4 * TILE * TILE * 3), tile: TILE,
      compression: 7, photometric: 6, encodedTiles: tiles, firstOffset: 0xffff_ff00,
    }], { littleEndian: true, bigTiff: false });
    const classic = path.join(root, 'classic.tif');
    writeFileSync(classic, bytes);
    const source = await openFileSource(classic);
    try {
      const small = await openSlide(source);
      const tile = await small.readTile(0, 1, 0);
      assert.ok(tile.data.equals((levels[1] as Level).tiles[1]?.decoded ?? Buffer.alloc(0)));
      await assert.rejects(small.readTile(0, 0, 0), isAppError('TRUNCATED_IMAGE', new RegExp(`tile 0 of the directory at byte \\d+ lies at bytes ${0xffff_ff00}–\\d+ but the file has only ${bytes.length} bytes`)));
    } finally {
      await source.close();
    }
  });

  test('a classic TIFF whose offsets a 32-bit writer wrapped past 4 GiB fails clearly, not with wrong pixels', async () => {
    // Tiles really at 4 GiB + 256 MiB, stored as (offset mod 2^32): the stored offsets point into a hole.
    const wrapped = path.join(root, 'wrapped.tif');
    const w = new PositionedTiffWriter(wrapped, false);
    const tiles = (levels[1] as Level).tiles.slice(0, 4).map((t) => t.jpeg);
    w.jump(HI1);
    const real = tiles.map((t) => w.put(t));
    w.jump(4096);
    const ifd = w.putImage({ width: 2 * TILE, height: 2 * TILE, tile: TILE, offsets: real.map((o) => o - TWO_32), byteCounts: tiles.map((t) => t.length), photometric: 6 });
    const size = w.finish([ifd]);
    assert.ok(size > TWO_32);
    const source = await openFileSource(wrapped);
    try {
      const small = await openSlide(source);
      await assert.rejects(small.readTile(0, 0, 0), isAppError('CORRUPT_IMAGE', /JPEG tile does not start with an SOI marker/));
    } finally {
      await source.close();
    }
  });
});
