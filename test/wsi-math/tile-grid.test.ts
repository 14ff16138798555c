import assert from 'node:assert/strict';
import { test } from 'node:test';
import { AppError } from '../../src/core/errors.ts';
import { chooseLevel, tileGrid, type TileGridRequest } from '../../src/imaging/tile-grid.ts';

function invalidRequest(pattern: RegExp) {
  return (e: unknown) => e instanceof AppError && e.code === 'INVALID_REQUEST' && pattern.test(e.message);
}

/** A mask with tissue in the half-open rectangle [x0, x1) × [y0, y1) of mask pixels. */
function maskWith(width: number, height: number, x0: number, y0: number, x1: number, y1: number): Uint8Array {
  const mask = new Uint8Array(width * height);
  for (let y = y0; y < y1; y++) for (let x = x0; x < x1; x++) mask[y * width + x] = 1;
  return mask;
}

// 10000 × 8000 px at 0.25 µm/px for a model of 224-px tiles at 0.5 µm/px: tiles of 448 level-0 px,
// floor(10000 / 448) = 22 columns and floor(8000 / 448) = 17 rows. The mask is the 1/100 level, 100 × 80.
const SLIDE: Omit<TileGridRequest, 'mask'> = {
  level0Width: 10000, level0Height: 8000, slideMpp: 0.25, targetMpp: 0.5, tileSize: 224, maskWidth: 100, maskHeight: 80,
};

test('a slide fully covered by tissue gives the hand-computed grid', () => {
  const grid = tileGrid({ ...SLIDE, mask: new Uint8Array(100 * 80).fill(1) });
  assert.equal(grid.tileSizeLevel0, 448);
  assert.equal(grid.cols, 22);
  assert.equal(grid.rows, 17);
  assert.equal(grid.tiles.length, 22 * 17);
  assert.equal(grid.rejected, 0);
  assert.equal(grid.mpp, 0.25);
  assert.equal(grid.mppSource, 'slide');
  // Row-major order, level-0 corners at multiples of 448.
  assert.deepEqual(grid.tiles[0], { col: 0, row: 0, x: 0, y: 0, tissue: 1 });
  assert.deepEqual(grid.tiles[2 * 22 + 3], { col: 3, row: 2, x: 1344, y: 896, tissue: 1 });
  const last = grid.tiles.at(-1)!;
  assert.deepEqual([last.col, last.row, last.x, last.y], [21, 16, 9408, 7168]);
  // Partial edge tiles are dropped: the last whole tile ends inside the slide.
  assert.ok(last.x + grid.tileSizeLevel0 <= 10000 && last.y + grid.tileSizeLevel0 <= 8000);
  assert.ok(last.x + 2 * grid.tileSizeLevel0 > 10000);
});

test('background tiles are rejected by their measured tissue fraction', () => {
  // Tissue on mask pixels [0, 9)², level-0 [0, 900)². A tile spans 4.48 mask pixels:
  // tile columns 0 and 1 cover mask [0, 4.48) and [4.48, 8.96) — all tissue; column 2 covers
  // [8.96, 13.44), of which only 0.04 is tissue.
  const mask = maskWith(100, 80, 0, 0, 9, 9);
  const grid = tileGrid({ ...SLIDE, mask });
  assert.deepEqual(grid.tiles.map((t) => [t.col, t.row]), [[0, 0], [1, 0], [0, 1], [1, 1]]);
  assert.equal(grid.rejected, 22 * 17 - 4);
  for (const t of grid.tiles) assert.ok(Math.abs(t.tissue - 1) < 1e-12);

  const all = tileGrid({ ...SLIDE, mask, minTissueFraction: 0 });
  assert.equal(all.tiles.length, 22 * 17);
  const at = (col: number, row: number) => all.tiles[row * 22 + col]!.tissue;
  assert.ok(Math.abs(at(2, 0) - 0.04 / 4.48) < 1e-12);
  assert.ok(Math.abs(at(2, 2) - (0.04 * 0.04) / (4.48 * 4.48)) < 1e-12);
  assert.equal(at(3, 0), 0);
});

test('a tile exactly at the minimum tissue fraction is kept', () => {
  // 400 × 400 level-0, 4 × 4 mask, 200-px tiles: tile (0, 0) covers mask pixels [0, 2)², one of which is tissue.
  const grid = tileGrid({
    level0Width: 400, level0Height: 400, slideMpp: 1, targetMpp: 1, tileSize: 200,
    mask: maskWith(4, 4, 0, 0, 1, 1), maskWidth: 4, maskHeight: 4, minTissueFraction: 0.25,
  });
  assert.deepEqual(grid.tiles, [{ col: 0, row: 0, x: 0, y: 0, tissue: 0.25 }]);
  assert.equal(grid.rejected, 3);
});

test('a non-integer mask-to-slide ratio splits border mask pixels by area', () => {
  // 1000 × 1000 level-0 imaged by a 3 × 3 mask: each mask pixel covers 333.3 level-0 px. Only the centre
  // pixel is tissue. Tile (0, 0) = [0, 500)² maps to mask [0, 1.5)² and holds half a mask pixel in each
  // direction of the centre one: 0.5 · 0.5 / 1.5² = 1/9, and so does every other tile.
  const grid = tileGrid({
    level0Width: 1000, level0Height: 1000, slideMpp: 1, targetMpp: 1, tileSize: 500,
    mask: maskWith(3, 3, 1, 1, 2, 2), maskWidth: 3, maskHeight: 3, minTissueFraction: 0,
  });
  assert.equal(grid.tiles.length, 4);
  for (const t of grid.tiles) assert.ok(Math.abs(t.tissue - 1 / 9) < 1e-12, `tile ${t.col},${t.row}: ${t.tissue}`);
});

test('tissue area is conserved between the mask and the tiles at an irregular level ratio', () => {
  // 1000 × 700 level-0 tiled exactly by 100-px tiles, imaged by a 37 × 26 mask (ratios 27.03 and 26.92).
  // Summed over all tiles, tissue fraction × tile area in mask pixels must equal the mask's tissue count.
  const maskWidth = 37;
  const maskHeight = 26;
  const mask = new Uint8Array(maskWidth * maskHeight);
  let state = 7;
  let tissuePixels = 0;
  for (let i = 0; i < mask.length; i++) {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    mask[i] = state < 2 ** 31 ? 1 : 0;
    tissuePixels += mask[i]!;
  }
  const grid = tileGrid({ level0Width: 1000, level0Height: 700, slideMpp: 0.5, targetMpp: 0.5, tileSize: 100, mask, maskWidth, maskHeight, minTissueFraction: 0 });
  assert.equal(grid.tiles.length, 70);
  const tileAreaInMask = (100 * maskWidth / 1000) * (100 * maskHeight / 700);
  const total = grid.tiles.reduce((sum, t) => sum + t.tissue * tileAreaInMask, 0);
  assert.ok(Math.abs(total - tissuePixels) < 1e-9, `${total} vs ${tissuePixels}`);
});

test('the level-0 tile side is rounded from the physical size', () => {
  // 224 px · 0.5 µm/px / 0.2527 µm/px = 443.2 level-0 px.
  const grid = tileGrid({ ...SLIDE, slideMpp: 0.2527, mask: new Uint8Array(100 * 80) });
  assert.equal(grid.tileSizeLevel0, 443);
  assert.equal(grid.cols, 22);
  assert.equal(grid.rows, 18);
  assert.equal(grid.tiles.length, 0);
  assert.equal(grid.rejected, 22 * 18);
});

test('a slide without a recorded resolution needs a fallback', () => {
  const request = { ...SLIDE, slideMpp: undefined, mask: new Uint8Array(100 * 80).fill(1) };
  assert.throws(() => tileGrid(request), invalidRequest(/does not record its resolution/));
  assert.throws(() => tileGrid({ ...request, slideMpp: 0 }), invalidRequest(/does not record its resolution/));
  const grid = tileGrid({ ...request, fallbackMpp: 0.25 });
  assert.equal(grid.mppSource, 'fallback');
  assert.equal(grid.tileSizeLevel0, 448);
  assert.throws(() => tileGrid({ ...request, fallbackMpp: -1 }), invalidRequest(/fallbackMpp/));
});

test('tileGrid rejects malformed requests', () => {
  const mask = new Uint8Array(100 * 80);
  assert.throws(() => tileGrid({ ...SLIDE, mask: new Uint8Array(10) }), invalidRequest(/holds 10 pixels/));
  assert.throws(() => tileGrid({ ...SLIDE, mask, tileSize: 0 }), invalidRequest(/tileSize/));
  assert.throws(() => tileGrid({ ...SLIDE, mask, targetMpp: Number.NaN }), invalidRequest(/targetMpp/));
  assert.throws(() => tileGrid({ ...SLIDE, mask, minTissueFraction: 1.5 }), invalidRequest(/minTissueFraction/));
  assert.throws(() => tileGrid({ ...SLIDE, mask, tileSize: 1, targetMpp: 0.1 }), invalidRequest(/smaller than one pixel/));
});

test('chooseLevel picks the largest downsample not above the target', () => {
  // Recorded downsamples are ratios of rounded sizes; the order is deliberately shuffled.
  const levels = [
    { width: 2500, height: 2000, downsample: 4.0002 },
    { width: 10000, height: 8000, downsample: 1 },
    { width: 156, height: 125, downsample: 64.02 },
    { width: 625, height: 500, downsample: 16.001 },
  ];
  assert.equal(chooseLevel(levels, 4), 0, 'within rounding of 4 counts as 4');
  assert.equal(chooseLevel(levels, 10), 0);
  assert.equal(chooseLevel(levels, 16), 3);
  assert.equal(chooseLevel(levels, 63), 3);
  assert.equal(chooseLevel(levels, 1000), 2);
  assert.equal(chooseLevel(levels, 1), 1);
  assert.equal(chooseLevel(levels, 0.5), 1, 'below every level: the finest');
  assert.throws(() => chooseLevel([], 4), invalidRequest(/no pyramid levels/));
  assert.throws(() => chooseLevel(levels, 0), invalidRequest(/positive number/));
});
