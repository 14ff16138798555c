import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import sharp from 'sharp';
import { AppError } from '../../src/core/errors.ts';
import { createDeepZoom, type DeepZoomOptions, type DeepZoomSource, imageSource, thumbnailSize } from '../../src/imaging/deepzoom.ts';
import { heatmapColour } from '../../src/models/cam-render.ts';
import { heatmapSize, slideHeatmap } from '../../src/imaging/slide-heatmap.ts';
import { openFileSource } from '../../src/imaging/wsi/byte-source.ts';
import { openSlide, type Slide } from '../../src/imaging/wsi/slide.ts';
import { synthesiseSlide } from '../../src/imaging/wsi/synth.ts';
import { openSlideDeepZoom, type ReferenceRequest } from './deepzoom-reference.ts';
import { openSlideMissing } from './openslide.ts';

// A 6000×4000 slide has exact power-of-two levels (Deep Zoom levels read their pyramid level 1:1, the
// smallest level has downsample 32.04); a 4999×3001 one has downsamples slightly above 2, 4, ... so
// every Deep Zoom level but the largest reads the level above and halves it with the resampler.
const SLIDES = {
  even: { width: 6000, height: 4000 },
  odd: { width: 4999, height: 3001 },
} as const;
type SlideName = keyof typeof SLIDES;

let dir = '';
const files = new Map<SlideName, string>();
const slides = new Map<SlideName, Slide>();
const closers: (() => Promise<void>)[] = [];

function slideOf(name: SlideName): Slide {
  const slide = slides.get(name);
  assert.ok(slide !== undefined);
  return slide;
}

function isAppError(code: string, pattern?: RegExp) {
  return (e: unknown): boolean => {
    assert.ok(e instanceof AppError, `expected an AppError, got ${String(e)}`);
    assert.equal(e.code, code, e.message);
    if (pattern !== undefined) assert.match(e.message, pattern);
    return true;
  };
}

async function decode(bytes: Buffer): Promise<{ data: Buffer; width: number; height: number; channels: number }> {
  const { data, info } = await sharp(bytes).raw().toBuffer({ resolveWithObject: true });
  return { data, width: info.width, height: info.height, channels: info.channels };
}

function difference(a: Buffer, b: Buffer): { mean: number; max: number } {
  assert.equal(a.length, b.length);
  let sum = 0;
  let max = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs((a[i] as number) - (b[i] as number));
    sum += d;
    if (d > max) max = d;
  }
  return { mean: sum / a.length, max };
}

before(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'dxflow-deepzoom-'));
  for (const [name, size] of Object.entries(SLIDES) as [SlideName, { width: number; height: number }][]) {
    const out = path.join(dir, `${name}.tif`);
    await synthesiseSlide({ ...size, out, tileSize: 256, compression: 'jpeg', quality: 90, seed: name === 'even' ? 1 : 7 });
    const source = await openFileSource(out);
    closers.push(() => source.close());
    files.set(name, out);
    slides.set(name, await openSlide(source));
  }
});

after(async () => {
  for (const close of closers) await close();
  if (dir !== '') await rm(dir, { recursive: true, force: true });
});

describe('agrees with openslide-python DeepZoomGenerator', () => {
  const missing = openSlideMissing();
  type Bounds = { x: number; y: number; width: number; height: number };
  const cases: { name: string; slide: SlideName; options: Omit<DeepZoomOptions, 'format'>; bounds?: Bounds; tiles: [number, number, number][] }[] = [
    {
      name: '6000×4000, 254 + 1 overlap',
      slide: 'even',
      options: {},
      // Top-left, bottom-right corner, interior, right edge at full resolution; corner at level 12;
      // the 2×1 level 9; levels 8 and 7 (resized from pyramid levels 4 and 5); 6×4 and 1×1 levels.
      tiles: [[13, 0, 0], [13, 23, 15], [13, 5, 7], [13, 23, 4], [12, 11, 7], [12, 3, 2], [10, 2, 1], [9, 1, 0], [8, 0, 0], [7, 0, 0], [3, 0, 0], [0, 0, 0]],
    },
    { name: '6000×4000, 256 without overlap', slide: 'even', options: { tileSize: 256, overlap: 0 }, tiles: [[13, 23, 15], [11, 2, 1]] },
    {
      name: '4999×3001, 240 + 8 overlap',
      slide: 'odd',
      options: { tileSize: 240, overlap: 8 },
      tiles: [[13, 0, 0], [13, 20, 12], [12, 4, 3], [12, 10, 6], [11, 5, 3], [9, 1, 0], [6, 0, 0], [1, 0, 0]],
    },
    {
      name: '6000×4000, limit bounds',
      slide: 'even',
      options: { limitBounds: true },
      // Multiples of 256, so the region origins fall on whole pixels of the power-of-two levels: OpenSlide
      // reads a fractional origin with sub-pixel interpolation where Slide.readRegion rounds it down.
      bounds: { x: 512, y: 256, width: 4500, height: 3000 },
      tiles: [[13, 0, 0], [13, 17, 11], [12, 8, 5], [9, 1, 0], [8, 0, 0], [0, 0, 0]],
    },
    // Geometry only: with fractional downsamples every origin is off the pixel grid (see above).
    { name: '4999×3001, limit bounds (geometry)', slide: 'odd', options: { limitBounds: true }, bounds: { x: 100, y: 50, width: 4000, height: 2500 }, tiles: [] },
  ];

  for (const c of cases) {
    test(c.name, { skip: missing }, async (t) => {
      const file = files.get(c.slide) ?? '';
      const slide = slideOf(c.slide);
      const request: ReferenceRequest = { path: file, tileSize: c.options.tileSize ?? 254, overlap: c.options.overlap ?? 1, limitBounds: c.options.limitBounds ?? false, tiles: c.tiles };
      if (c.bounds !== undefined) {
        request.properties = Object.fromEntries(Object.entries(c.bounds).map(([k, v]) => [`openslide.bounds-${k}`, String(v)]));
      }
      const ref = openSlideDeepZoom(request);
      const source: DeepZoomSource = c.bounds === undefined ? slide : { levels: slide.levels, readRegion: slide.readRegion, bounds: c.bounds };
      const jpeg = createDeepZoom(source, { ...c.options, format: 'jpeg' });
      const png = createDeepZoom(source, { ...c.options, format: 'png' });

      // Descriptor and geometry: exact.
      assert.equal(jpeg.dzi(), ref.dzi.jpeg);
      assert.equal(png.dzi(), ref.dzi.png);
      assert.equal(jpeg.levelCount, ref.levelCount);
      assert.deepEqual(jpeg.levelDimensions.map((d) => [d.width, d.height]), ref.levelDimensions);
      assert.deepEqual(ref.levelTiles.map((_, level) => { const n = jpeg.tileCount(level); return [n.cols, n.rows]; }), ref.levelTiles);
      assert.equal(jpeg.totalTiles, ref.tileCount);
      assert.equal(ref.coordinates.length, ref.tileCount);
      let resized = 0;
      for (const row of ref.coordinates) {
        const [level, col, r] = row as [number, number, number];
        const i = jpeg.tileInfo(level, col, r);
        assert.deepEqual([level, col, r, i.x0, i.y0, i.sourceLevel, i.regionWidth, i.regionHeight, i.tileWidth, i.tileHeight, i.outputWidth, i.outputHeight], row, `tile ${level}/${col}_${r}`);
        if (i.regionWidth !== i.tileWidth || i.regionHeight !== i.tileHeight) resized++;
      }

      // Pixels: both JPEGs decoded, and our PNG against get_tile()'s pixels before encoding.
      let msTotal = 0;
      const lines: string[] = [];
      for (const reference of ref.tiles) {
        const [level, col, r] = reference.address;
        const started = performance.now();
        const ours = await decode(await jpeg.tile(level, col, r));
        msTotal += performance.now() - started;
        const theirs = await decode(reference.jpeg);
        const lossless = await decode(await png.tile(level, col, r));
        const where = `tile ${level}/${col}_${r}`;
        const info = jpeg.tileInfo(level, col, r);
        assert.deepEqual([ours.width, ours.height, ours.channels], [reference.width, reference.height, 3], where);
        assert.deepEqual([lossless.width, lossless.height, lossless.channels], [reference.width, reference.height, 3], where);
        const encoded = difference(ours.data, theirs.data);
        const raw = difference(lossless.data, reference.raw);
        lines.push(`${where} ${reference.width}×${reference.height}: JPEG mean ${encoded.mean.toFixed(3)} max ${encoded.max}; pixels mean ${raw.mean.toFixed(3)} max ${raw.max}; OpenSlide ${reference.ms.toFixed(1)} ms`);
        // A tile copied 1:1 from its pyramid level is the same decoded pixels as OpenSlide's (here bit
        // for bit; the bound leaves room for another libjpeg build). Resized tiles differ by the
        // resamplers' rounding (lanczos3 in libvips, reduce + LANCZOS in PIL), most in the tiny top tiles
        // where each pixel is the mean of a whole level. A region shifted by one pixel, or a bilinear
        // resampler, breaks these bounds.
        const small = reference.width * reference.height < 1000;
        const copied = info.regionWidth === reference.width && info.regionHeight === reference.height;
        const [meanLimit, maxLimit] = small ? [4, 8] : copied ? [0.25, 12] : [1, 12];
        assert.ok(raw.mean <= meanLimit && raw.max <= maxLimit, `${where} pixels: mean ${raw.mean}, max ${raw.max}`);
        assert.ok(encoded.mean <= (small ? 4 : 2), `${where} JPEG: mean ${encoded.mean}, max ${encoded.max}`);
      }
      t.diagnostic(`${ref.tileCount} tiles, ${resized} resized from their pyramid level${ref.tiles.length > 0 ? `; ours ${(msTotal / ref.tiles.length).toFixed(1)} ms per JPEG tile` : ''}`);
      for (const line of lines) t.diagnostic(line);
    });
  }
});

describe('tile requests', () => {
  test('out-of-range and malformed addresses are INVALID_REQUEST', async () => {
    const dz = createDeepZoom(slideOf('even'), { format: 'jpeg' });
    assert.equal(dz.levelCount, 14);
    assert.deepEqual(dz.tileCount(13), { cols: 24, rows: 16 });
    assert.deepEqual(dz.tileCount(0), { cols: 1, rows: 1 });
    for (const [level, col, row] of [[14, 0, 0], [-1, 0, 0], [1.5, 0, 0], [13, 24, 0], [13, 0, 16], [13, -1, 0], [0, 1, 0], [12, 0.5, 0], [Number.NaN, 0, 0]] as const) {
      await assert.rejects(dz.tile(level, col, row), isAppError('INVALID_REQUEST'), `${level}/${col}_${row}`);
    }
    await assert.rejects(dz.tile(13, 24, 0), isAppError('INVALID_REQUEST', /outside Deep Zoom level 13, which has 24×16 tiles/));
    await assert.rejects(dz.tile(14, 0, 0), isAppError('INVALID_REQUEST', /levels 0–13; level 14 does not exist/));
    assert.throws(() => dz.tileCount(14), isAppError('INVALID_REQUEST'));
    assert.throws(() => createDeepZoom(slideOf('even'), { format: 'gif' as 'png' }), isAppError('INVALID_REQUEST'));
    assert.throws(() => createDeepZoom(slideOf('even'), { format: 'jpeg', tileSize: 0 }), isAppError('INVALID_REQUEST'));
    assert.throws(() => createDeepZoom(slideOf('even'), { format: 'jpeg', quality: 101 }), isAppError('INVALID_REQUEST'));
  });

  test('each tile reads one region of its pyramid level, no larger than the tile needs', async () => {
    const slide = slideOf('even');
    const calls: [number, number, number, number, number][] = [];
    const spy: DeepZoomSource = {
      levels: slide.levels,
      readRegion: (x0, y0, level, w, h) => {
        calls.push([x0, y0, level, w, h]);
        return slide.readRegion(x0, y0, level, w, h);
      },
    };
    const dz = createDeepZoom(spy, { format: 'jpeg' });
    for (const [level, col, row, sourceLevel] of [[13, 7, 5, 0], [11, 2, 3, 2], [8, 0, 0, 4], [0, 0, 0, 5]] as const) {
      calls.length = 0;
      const tile = await decode(await dz.tile(level, col, row));
      const info = dz.tileInfo(level, col, row);
      assert.deepEqual(calls, [[info.x0, info.y0, sourceLevel, info.regionWidth, info.regionHeight]]);
      assert.deepEqual([tile.width, tile.height], [info.outputWidth, info.outputHeight]);
      // Below the pyramid's last level the region is the tile times the remaining downsample.
      const scale = Math.ceil(2 ** (13 - level) / (slide.levels[sourceLevel]?.downsample ?? 1));
      assert.ok(info.regionWidth <= 256 * scale && info.regionHeight <= 256 * scale, JSON.stringify(info));
    }
    // An interior full-resolution tile: 254 + 2 × 1 pixels, starting one pixel before its column.
    assert.deepEqual(dz.tileInfo(13, 7, 5), { x0: 7 * 254 - 1, y0: 5 * 254 - 1, sourceLevel: 0, regionWidth: 256, regionHeight: 256, tileWidth: 256, tileHeight: 256, outputWidth: 256, outputHeight: 256 });
  });

  test('thumbnailSize follows PIL: keeps the aspect ratio, never enlarges', () => {
    assert.deepEqual(thumbnailSize(375, 250, 188, 125), { width: 187, height: 125 });
    assert.deepEqual(thumbnailSize(187, 125, 94, 63), { width: 94, height: 63 });
    assert.deepEqual(thumbnailSize(187, 125, 1, 1), { width: 1, height: 1 });
    assert.deepEqual(thumbnailSize(100, 50, 200, 200), { width: 100, height: 50 });
    assert.deepEqual(thumbnailSize(300, 100, 200, 200), { width: 200, height: 67 });
  });
});

describe('in-memory pictures', () => {
  test('the slide heatmap as a transparent PNG overlay with the slide\'s geometry', async (t) => {
    const slide = slideOf('even');
    const [W0, H0] = [SLIDES.even.width, SLIDES.even.height];
    const T = 512;
    const grid = { cols: Math.floor(W0 / T), rows: Math.floor(H0 / T) }; // 11 × 7, covering 5632 × 3584
    const empty = { col: 3, row: 2 };
    const tiles: { col: number; row: number }[] = [];
    for (let row = 0; row < grid.rows; row++) for (let col = 0; col < grid.cols; col++) if (col !== empty.col || row !== empty.row) tiles.push({ col, row });
    const scores = tiles.map((c) => ((c.col * 7 + c.row * 3) % 10) / 9);
    const size = heatmapSize(grid, 1024);
    const png = await slideHeatmap({ grid: { ...grid, tiles }, scores, ...size });
    const { data, info } = await sharp(png).ensureAlpha().raw().toBuffer({ resolveWithObject: true });
    assert.equal(info.channels, 4);
    const heatmap = imageSource({ data, width: info.width, height: info.height, channels: 4 }, {
      size: { width: W0, height: H0 },
      rect: { x: 0, y: 0, width: grid.cols * T, height: grid.rows * T },
    });
    const overlay = createDeepZoom(heatmap, { format: 'png' });
    const base = createDeepZoom(slide, { format: 'png' });
    assert.equal(overlay.dzi(), base.dzi());
    assert.deepEqual(overlay.levelDimensions, base.levelDimensions);
    assert.equal(overlay.totalTiles, base.totalTiles);
    for (let level = 0; level < base.levelCount; level++) assert.deepEqual(overlay.tileCount(level), base.tileCount(level));

    // RGBA at level-0 pixel (x, y), read from the full-resolution level's tile holding it.
    const top = overlay.levelCount - 1;
    const at = async (x: number, y: number): Promise<number[]> => {
      const col = Math.min(overlay.tileCount(top).cols - 1, Math.floor(x / 254));
      const row = Math.min(overlay.tileCount(top).rows - 1, Math.floor(y / 254));
      const bytes = await overlay.tile(top, col, row);
      assert.deepEqual([...bytes.subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
      const tile = await decode(bytes);
      assert.equal(tile.channels, 4);
      const info = overlay.tileInfo(top, col, row);
      const i = ((y - info.y0) * tile.width + (x - info.x0)) * 4;
      return [...tile.data.subarray(i, i + 4)];
    };
    // Inside scored cells: the cell's colour, opaque.
    for (const [col, row] of [[0, 0], [5, 4], [10, 6], [4, 2]] as const) {
      const score = scores[tiles.findIndex((c) => c.col === col && c.row === row)] ?? Number.NaN;
      assert.deepEqual(await at(col * T + T / 2, row * T + T / 2), [...heatmapColour(score), 255], `cell ${col}, ${row}`);
    }
    // The last covered pixel and the first one past the heatmap, inside one tile (x from 5587).
    assert.equal((await at(grid.cols * T - 1, 100))[3], 255);
    assert.equal((await at(grid.cols * T, 100))[3], 0);
    assert.equal((await at(100, grid.rows * T))[3], 0);
    // The unscored cell and the slide's bottom-right corner: transparent.
    assert.equal((await at(empty.col * T + T / 2, empty.row * T + T / 2))[3], 0);
    const corner = await decode(await overlay.tile(top, 23, 15));
    for (let i = 3; i < corner.data.length; i += 4) assert.equal(corner.data[i], 0);

    // The 1×1 level: the whole slide in one pixel, as opaque as the share of it the scored cells cover.
    const single = await decode(await overlay.tile(0, 0, 0));
    assert.deepEqual([single.width, single.height, single.channels], [1, 1, 4]);
    const covered = (tiles.length * T * T) / (W0 * H0);
    assert.ok(Math.abs((single.data[3] ?? 0) - 255 * covered) <= 3, `alpha ${single.data[3]}, expected ${(255 * covered).toFixed(1)}`);

    let started = performance.now();
    let count = 0;
    for (let row = 0; row < overlay.tileCount(top).rows; row += 3) for (let col = 0; col < overlay.tileCount(top).cols; col += 3, count++) await overlay.tile(top, col, row);
    t.diagnostic(`overlay: ${((performance.now() - started) / count).toFixed(1)} ms per full-resolution PNG tile (${count} tiles)`);
    started = performance.now();
    for (let level = 0; level < top; level++) await overlay.tile(level, 0, 0);
    t.diagnostic(`overlay: ${((performance.now() - started) / top).toFixed(1)} ms per tile (0, 0) of levels 0–${top - 1}`);
  });

  test('a plain RGB picture is served 1:1 at full resolution and averaged below it', async () => {
    const width = 300;
    const height = 200;
    const data = Buffer.alloc(width * height * 3);
    for (let i = 0; i < data.length; i++) data[i] = (i * 37 + Math.floor(i / 900) * 11) % 256;
    const dz = createDeepZoom(imageSource({ data, width, height }), { format: 'png', tileSize: 254, overlap: 1 });
    assert.deepEqual(dz.levelDimensions.at(-1), { width, height });
    assert.deepEqual(dz.levelDimensions.at(-2), { width: 150, height: 100 });
    const full = await decode(await dz.tile(dz.levelCount - 1, 0, 0));
    assert.deepEqual([full.width, full.height, full.channels], [255, 200, 4]);
    for (const [x, y] of [[0, 0], [254, 199], [123, 45]] as const) {
      const p = (y * full.width + x) * 4;
      const q = (y * width + x) * 3;
      assert.deepEqual([...full.data.subarray(p, p + 4)], [...data.subarray(q, q + 3), 255]);
    }
    const half = await decode(await dz.tile(dz.levelCount - 2, 0, 0));
    assert.deepEqual([half.width, half.height], [150, 100]);
    for (const [x, y] of [[0, 0], [149, 99], [70, 30]] as const) {
      const p = (y * half.width + x) * 4;
      for (let c = 0; c < 3; c++) {
        let sum = 0;
        for (const [dx, dy] of [[0, 0], [1, 0], [0, 1], [1, 1]]) sum += data[((2 * y + (dy ?? 0)) * width + 2 * x + (dx ?? 0)) * 3 + c] ?? 0;
        assert.equal(half.data[p + c], Math.round(sum / 4), `(${x}, ${y}) channel ${c}`);
      }
      assert.equal(half.data[p + 3], 255);
    }
    assert.throws(() => imageSource({ data: Buffer.alloc(10), width, height }), isAppError('INVALID_REQUEST'));
  });
});

