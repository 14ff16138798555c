import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import sharp from 'sharp';
import { AppError } from '../../src/core/errors.ts';
import { type ByteSource, fromBuffer, fromObjectStore, openFileSource } from '../../src/imaging/wsi/byte-source.ts';
import { openSlide, type Slide } from '../../src/imaging/wsi/slide.ts';
import { type SynthCompression, synthesiseSlide } from '../../src/imaging/wsi/synth.ts';
import { readTiff } from '../../src/imaging/wsi/tiff-directory.ts';
import { compareWithOpenSlide, openSlideMissing, openSlideRegion } from './openslide.ts';
import { splitJpeg, testPattern, writeTestTiff } from './tiff-writer.ts';

const WIDTH = 3000;
const HEIGHT = 2000;
const VARIANTS: { name: string; compression: SynthCompression; bigtiff: boolean }[] = [
  { name: 'jpeg', compression: 'jpeg', bigtiff: false },
  { name: 'jpeg-bigtiff', compression: 'jpeg', bigtiff: true },
  { name: 'lzw', compression: 'lzw', bigtiff: false },
  { name: 'deflate-bigtiff', compression: 'deflate', bigtiff: true },
  { name: 'none', compression: 'none', bigtiff: false },
];

let dir = '';
const files = new Map<string, string>();

async function withSlide<T>(file: string, use: (slide: Slide, source: ByteSource) => Promise<T>): Promise<T> {
  const source = await openFileSource(file);
  try {
    return await use(await openSlide(source), source);
  } finally {
    await source.close();
  }
}

function isAppError(code: string, pattern?: RegExp) {
  return (e: unknown): boolean => {
    assert.ok(e instanceof AppError, `expected an AppError, got ${String(e)}`);
    assert.equal(e.code, code, e.message);
    if (pattern !== undefined) assert.match(e.message, pattern);
    return true;
  };
}

before(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'dxflow-wsi-'));
  await Promise.all(VARIANTS.map(async (v) => {
    const out = path.join(dir, `${v.name}.tif`);
    await synthesiseSlide({ width: WIDTH, height: HEIGHT, out, compression: v.compression, bigtiff: v.bigtiff, quality: 90 });
    files.set(v.name, out);
  }));
});

after(async () => {
  if (dir !== '') await rm(dir, { recursive: true, force: true });
});

describe('pyramid structure', () => {
  for (const v of VARIANTS) {
    test(`${v.name}: levels, downsamples, tile sizes and mpp`, async () => {
      const file = files.get(v.name) ?? '';
      await withSlide(file, async (slide, source) => {
        const tiff = await readTiff(source);
        assert.equal(tiff.bigTiff, v.bigtiff);
        assert.equal(tiff.littleEndian, true);
        assert.equal(slide.vendor, 'generic-tiff');
        assert.deepEqual(slide.levels.map((l) => [l.width, l.height]), [[3000, 2000], [1500, 1000], [750, 500], [375, 250], [187, 125]]);
        assert.deepEqual(slide.levels.slice(0, 4).map((l) => l.downsample), [1, 2, 4, 8]);
        assert.ok(Math.abs((slide.levels[4]?.downsample ?? 0) - (3000 / 187 + 2000 / 125) / 2) < 1e-9);
        assert.ok(slide.levels.every((l) => l.tileWidth === 256 && l.tileHeight === 256));
        assert.ok(Math.abs((slide.mpp?.x ?? 0) - 0.25) < 1e-6, `mpp ${JSON.stringify(slide.mpp)}`);
        assert.deepEqual(slide.associated, {});
      });
    });
  }
});

describe('pixels agree with OpenSlide', () => {
  const missing = openSlideMissing();
  // [level, x0, y0, w, h]: across tile boundaries, and past the right/bottom edge at a reduced level.
  const regions: [number, number, number, number, number][] = [[0, 200, 300, 700, 500], [1, 1000, 600, 400, 300], [2, 2400, 1600, 300, 200], [3, 0, 0, 375, 250]];
  for (const v of VARIANTS) {
    test(`${v.name}`, { skip: missing }, async () => {
      const file = files.get(v.name) ?? '';
      await withSlide(file, async (slide) => {
        for (const [level, x, y, w, h] of regions) {
          const ours = await slide.readRegion(x, y, level, w, h);
          const { mean, max, opaque } = compareWithOpenSlide(ours.data, openSlideRegion(file, level, x, y, w, h));
          assert.ok(opaque > 0);
          if (process.env['WSI_DEBUG'] !== undefined) process.stderr.write(`${v.name} level ${level}: mean ${mean} max ${max} opaque ${opaque}\n`);
          const where = `level ${level} (${x}, ${y}) ${w}×${h}: mean ${mean.toFixed(3)}, max ${max}`;
          if (v.compression === 'jpeg') assert.ok(mean < 2 && max <= 20, where);
          else assert.equal(max, 0, where);
        }
      });
    });
  }
});

describe('regions', () => {
  test('outside the image is white; inside matches the tiles it spans', async () => {
    await withSlide(files.get('lzw') ?? '', async (slide) => {
      // Level 2 is 750×500; this region hangs 100 px over the right edge and 50 px under the bottom.
      const region = await slide.readRegion(4 * 550, 4 * 350, 2, 300, 200);
      assert.equal(region.data.length, 300 * 200 * 3);
      const at = (x: number, y: number): number[] => [...region.data.subarray((y * 300 + x) * 3, (y * 300 + x) * 3 + 3)];
      assert.deepEqual(at(250, 10), [255, 255, 255]);
      assert.deepEqual(at(10, 180), [255, 255, 255]);
      const tile = await slide.readTile(2, 2, 1); // pixels (512..750, 256..500)
      assert.equal(tile.width, 750 - 512);
      assert.equal(tile.height, 500 - 256);
      // Region pixel (x, y) is level pixel (550 + x, 350 + y).
      for (const [x, y] of [[0, 0], [199, 149], [50, 100]] as const) {
        const t = ((350 + y - 256) * tile.width + (550 + x - 512)) * 3;
        assert.deepEqual(at(x, y), [...tile.data.subarray(t, t + 3)]);
      }
      const outside = await slide.readRegion(10_000, 10_000, 0, 8, 8);
      assert.ok(outside.data.every((b) => b === 255));
    });
  });

  test('invalid requests say what is wrong', async () => {
    await withSlide(files.get('none') ?? '', async (slide) => {
      await assert.rejects(slide.readRegion(0, 0, 9, 10, 10), isAppError('INVALID_REQUEST', /levels 0–4/));
      await assert.rejects(slide.readRegion(0, 0, 0, 0, 10), isAppError('INVALID_REQUEST'));
      await assert.rejects(slide.readTile(0, 12, 0), isAppError('INVALID_REQUEST', /outside level 0/));
      await assert.rejects(slide.readAssociated('label'), isAppError('INVALID_REQUEST', /no associated image "label"/));
    });
  });
});

describe('reads in place', () => {
  test('a small region reads a small part of the file, offset arrays included', async () => {
    // 16-pixel tiles: level 0 has 188×125 = 23 500 tiles, so its offset arrays (94 kB each) are read lazily.
    const file = path.join(dir, 'fine.tif');
    await synthesiseSlide({ width: WIDTH, height: HEIGHT, out: file, compression: 'deflate', tileSize: 16 });
    const source = await openFileSource(file);
    let bytesRead = 0;
    const counting: ByteSource = { size: source.size, read: (offset, length) => { bytesRead += length; return source.read(offset, length); } };
    try {
      const slide = await openSlide(counting);
      const afterOpen = bytesRead;
      const region = await slide.readRegion(1500, 1000, 0, 40, 40);
      assert.equal(region.width, 40);
      assert.ok(afterOpen < 64 * 1024, `opening read ${afterOpen} bytes`);
      assert.ok(bytesRead < 128 * 1024, `open + region read ${bytesRead} of ${source.size} bytes`);
      assert.ok(source.size > 20 * bytesRead);
    } finally {
      await source.close();
    }
  });
});

describe('damaged and unsupported files', () => {
  test('a truncated file is TRUNCATED_IMAGE', async () => {
    const bytes = await readFile(files.get('none') ?? '');
    const truncated = path.join(dir, 'truncated.tif');
    await writeFile(truncated, bytes.subarray(0, Math.floor(bytes.length * 0.6)));
    // libvips writes each directory after its tiles, so which read fails first depends on the layout:
    // either a directory or the tiles of level 0 lie past the end.
    await assert.rejects(withSlide(truncated, async (slide) => {
      for (let row = 0; row < 8; row++) for (let col = 0; col < 12; col++) await slide.readTile(0, col, row);
    }), isAppError('TRUNCATED_IMAGE', /past the end|file has only/));
  });

  test('not a TIFF, and a directory chain that loops, are CORRUPT_IMAGE', async () => {
    await assert.rejects(openSlide(fromBuffer(Buffer.from('GIF89a........'))), isAppError('CORRUPT_IMAGE', /byte-order mark/));
    const looping = writeTestTiff([{ width: 64, height: 64, pixels: testPattern(64, 64), tile: 16 }], { littleEndian: true, bigTiff: false });
    looping.writeUInt32LE(looping.readUInt32LE(4), looping.readUInt32LE(4) + 2 + looping.readUInt16LE(looping.readUInt32LE(4)) * 12);
    await assert.rejects(openSlide(fromBuffer(looping)), isAppError('CORRUPT_IMAGE', /loops/));
  });

  test('a tile offset past the end of the file is TRUNCATED_IMAGE', async () => {
    const bytes = writeTestTiff([{ width: 64, height: 64, pixels: testPattern(64, 64), tile: 32, firstOffset: 1_000_000 }], { littleEndian: false, bigTiff: false });
    const slide = await openSlide(fromBuffer(bytes));
    await slide.readTile(0, 1, 1);
    await assert.rejects(slide.readTile(0, 0, 0), isAppError('TRUNCATED_IMAGE', /tile 0 .* file has only/));
  });

  test('an unsupported compression is named', async () => {
    const bytes = writeTestTiff([{ width: 64, height: 64, pixels: testPattern(64, 64), tile: 32, compression: 52546 }], { littleEndian: true, bigTiff: true });
    const slide = await openSlide(fromBuffer(bytes));
    assert.equal(slide.levels[0]?.compression, 'JPEG XL (TIFF Compression 52546)');
    await assert.rejects(slide.readRegion(0, 0, 0, 10, 10), isAppError('CORRUPT_IMAGE', /JPEG XL .*52546.* no codec/));
  });
});

describe('hand-written TIFFs: byte orders, Aperio metadata, associated images', () => {
  const APERIO = 'Aperio Image Library v12.0.0 \r\n600x400 [0,100 600x400] (64x64) RAW/RGB|AppMag = 20|MPP = 0.4990|ScanScope ID = SS1234';
  const pyramid = (littleEndian: boolean, bigTiff: boolean): Buffer => writeTestTiff([
    { width: 600, height: 400, pixels: testPattern(600, 400), tile: 64, deflate: true, description: APERIO },
    { width: 150, height: 100, pixels: testPattern(150, 100), description: 'Aperio Image Library v12.0.0 \r\n600x400 -> 150x100 - |AppMag = 20' },
    { width: 300, height: 200, pixels: testPattern(300, 200), tile: 64, description: 'Aperio Image Library v12.0.0 \r\n600x400 -> 300x200 - |AppMag = 20' },
    { width: 90, height: 70, pixels: testPattern(90, 70), newSubfileType: 1, description: 'Aperio Image Library v12.0.0\r\nlabel 90x70' },
    { width: 120, height: 40, pixels: testPattern(120, 40), newSubfileType: 9, deflate: true, description: 'Aperio Image Library v12.0.0\r\nmacro 120x40' },
  ], { littleEndian, bigTiff });

  for (const [littleEndian, bigTiff] of [[false, false], [false, true], [true, false], [true, true]] as const) {
    test(`${littleEndian ? 'little' : 'big'}-endian ${bigTiff ? 'BigTIFF' : 'TIFF'}: exact pixels, levels and metadata`, async () => {
      const slide = await openSlide(fromBuffer(pyramid(littleEndian, bigTiff)));
      assert.equal(slide.vendor, 'aperio');
      assert.deepEqual(slide.levels.map((l) => [l.width, l.height, l.downsample, l.tileWidth]), [[600, 400, 1, 64], [300, 200, 2, 64]]);
      assert.deepEqual(slide.mpp, { x: 0.499, y: 0.499 });
      assert.equal(slide.properties['AppMag'], '20');
      assert.equal(slide.properties['ScanScope ID'], 'SS1234');
      assert.deepEqual(slide.associated, { thumbnail: { width: 150, height: 100 }, label: { width: 90, height: 70 }, macro: { width: 120, height: 40 } });
      const expected = testPattern(600, 400);
      const region = await slide.readRegion(50, 60, 0, 200, 150);
      for (let y = 0; y < 150; y++) {
        assert.ok(region.data.subarray(y * 600, (y + 1) * 600).equals(expected.subarray(((60 + y) * 600 + 50) * 3, ((60 + y) * 600 + 250) * 3)), `row ${y}`);
      }
      const reduced = await slide.readRegion(200, 100, 1, 50, 20);
      assert.ok(reduced.data.subarray(0, 150).equals(testPattern(300, 200).subarray((50 * 300 + 100) * 3, (50 * 300 + 150) * 3)));
      for (const [name, w, h] of [['label', 90, 70], ['macro', 120, 40], ['thumbnail', 150, 100]] as const) {
        const image = await slide.readAssociated(name);
        assert.ok(image.data.equals(testPattern(w, h)), name);
      }
    });
  }

  test('big-endian BigTIFF pixels agree with OpenSlide', { skip: openSlideMissing() }, async () => {
    const file = path.join(dir, 'be.svs');
    await writeFile(file, pyramid(false, true));
    const slide = await openSlide(fromBuffer(await readFile(file)));
    for (const [level, x, y, w, h] of [[0, 10, 20, 300, 200], [1, 400, 200, 120, 90]] as const) {
      const { max, opaque } = compareWithOpenSlide((await slide.readRegion(x, y, level, w, h)).data, openSlideRegion(file, level, x, y, w, h));
      assert.ok(opaque > 0);
      assert.equal(max, 0);
    }
  });
});

describe('object store source', () => {
  test('a slide in the folder object store reads the same pixels as the local file', async () => {
    const { createFolderStore } = await import('../../src/adapters/objects/folder.ts');
    const store = createFolderStore(path.join(dir, 'objects'));
    const bytes = await readFile(files.get('jpeg') ?? '');
    await store.put('slides/a.tif', bytes);
    const head = await store.head('slides/a.tif');
    const remote = await openSlide(fromObjectStore(store, 'slides/a.tif', head?.bytes ?? 0));
    const local = await openSlide(fromBuffer(bytes));
    assert.deepEqual(remote.levels, local.levels);
    const [a, b] = await Promise.all([remote.readRegion(900, 700, 1, 300, 300), local.readRegion(900, 700, 1, 300, 300)]);
    assert.ok(a.data.equals(b.data));
  });
});

describe('JPEG tiles with shared tables', () => {
  // One 64×64 tile, its tables moved to JPEGTables and its APPn markers removed, as in Aperio files.
  const pattern = testPattern(64, 64);
  const tiffWith = async (photometric: number): Promise<Buffer> => {
    const jpeg = await sharp(pattern, { raw: { width: 64, height: 64, channels: 3 } }).jpeg({ quality: 100, chromaSubsampling: '4:4:4' }).toBuffer();
    const { tables, tile } = splitJpeg(jpeg);
    return writeTestTiff([{ width: 64, height: 64, pixels: pattern, tile: 64, compression: 7, encodedTiles: [tile], jpegTables: tables, photometric }], { littleEndian: true, bigTiff: false });
  };
  const meanDifference = (a: Buffer, b: Buffer): number => a.reduce((sum, v, i) => sum + Math.abs(v - (b[i] ?? 0)), 0) / a.length;

  test('Photometric YCbCr: the tile decodes to the picture', async () => {
    const slide = await openSlide(fromBuffer(await tiffWith(6)));
    assert.ok(meanDifference((await slide.readTile(0, 0, 0)).data, pattern) < 1.5);
  });

  test('Photometric RGB: the components are taken as R, G, B without colour conversion', async () => {
    // The JPEG holds JFIF YCbCr (ITU-T T.871) of the pattern; read as RGB, those values come out as is.
    const ycbcr = Buffer.alloc(pattern.length);
    for (let i = 0; i < pattern.length; i += 3) {
      const [r = 0, g = 0, b = 0] = pattern.subarray(i, i + 3);
      ycbcr[i] = Math.round(0.299 * r + 0.587 * g + 0.114 * b);
      ycbcr[i + 1] = Math.round(128 - 0.168736 * r - 0.331264 * g + 0.5 * b);
      ycbcr[i + 2] = Math.round(128 + 0.5 * r - 0.418688 * g - 0.081312 * b);
    }
    const slide = await openSlide(fromBuffer(await tiffWith(2)));
    assert.ok(meanDifference((await slide.readTile(0, 0, 0)).data, ycbcr) < 1.5);
  });

  test('both photometric interpretations agree with OpenSlide', { skip: openSlideMissing() }, async () => {
    for (const photometric of [2, 6]) {
      const file = path.join(dir, `jpeg-tables-${photometric}.tif`);
      await writeFile(file, await tiffWith(photometric));
      const slide = await openSlide(fromBuffer(await readFile(file)));
      const { max } = compareWithOpenSlide((await slide.readTile(0, 0, 0)).data, openSlideRegion(file, 0, 0, 0, 64, 64));
      assert.equal(max, 0, `photometric ${photometric}`);
    }
  });
});
