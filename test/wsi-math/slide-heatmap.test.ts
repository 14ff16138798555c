import assert from 'node:assert/strict';
import { test } from 'node:test';
import sharp from 'sharp';
import { AppError } from '../../src/core/errors.ts';
import { heatmapColour } from '../../src/models/cam-render.ts';
import { heatmapSize, slideHeatmap } from '../../src/imaging/slide-heatmap.ts';

async function decode(png: Buffer): Promise<{ data: Buffer; width: number; height: number; channels: number }> {
  const { data, info } = await sharp(png).raw().toBuffer({ resolveWithObject: true });
  return { data, width: info.width, height: info.height, channels: info.channels };
}

function pixel(image: { data: Buffer; width: number }, x: number, y: number): number[] {
  const i = (y * image.width + x) * 4;
  return [...image.data.subarray(i, i + 4)];
}

// A 3 × 2 grid with tiles at (0, 0) scoring 0 and (2, 1) scoring 1; the other four cells have no tile.
const GRID = { cols: 3, rows: 2, tiles: [{ col: 0, row: 0 }, { col: 2, row: 1 }] };

test('the heatmap is an RGBA PNG of the asked size, coloured per tile and transparent elsewhere', async () => {
  const png = await slideHeatmap({ grid: GRID, scores: [0, 1], width: 30, height: 20 });
  assert.deepEqual([...png.subarray(1, 4)].map((c) => String.fromCharCode(c)).join(''), 'PNG');
  const image = await decode(png);
  assert.deepEqual([image.width, image.height, image.channels], [30, 20, 4]);
  // Each cell is 10 × 10 pixels.
  assert.deepEqual(pixel(image, 5, 5), [...heatmapColour(0), 255]);
  assert.deepEqual(pixel(image, 25, 15), [...heatmapColour(1), 255]);
  assert.deepEqual(pixel(image, 25, 15), [253, 231, 37, 255], 'viridis yellow at the top of the scale');
  assert.equal(pixel(image, 15, 5)[3], 0, 'no tile: transparent');
  assert.equal(pixel(image, 5, 15)[3], 0, 'no tile: transparent');
  // Crisp cell edges: the last pixel of cell (0, 0) is its colour, the next one is already empty.
  assert.deepEqual(pixel(image, 9, 9), [...heatmapColour(0), 255]);
  assert.equal(pixel(image, 10, 9)[3], 0);
  assert.equal(pixel(image, 9, 10)[3], 0);
});

test('a mid-scale score gets the colour map\'s mid colour, and every pixel of its cell the same', async () => {
  const image = await decode(await slideHeatmap({ grid: { cols: 1, rows: 1, tiles: [{ col: 0, row: 0 }] }, scores: [0.5], width: 7, height: 5 }));
  const expected = [...heatmapColour(0.5), 255];
  for (let y = 0; y < 5; y++) for (let x = 0; x < 7; x++) assert.deepEqual(pixel(image, x, y), expected);
});

test('nearest-neighbour at a non-integer scale assigns each pixel the cell under its centre', async () => {
  // 3 columns over 7 pixels: pixel x takes cell floor((x + 0.5) · 3 / 7) = 0, 0, 1, 1, 1, 2, 2.
  const grid = { cols: 3, rows: 1, tiles: [{ col: 1, row: 0 }] };
  const image = await decode(await slideHeatmap({ grid, scores: [0.3], width: 7, height: 1 }));
  const alpha = Array.from({ length: 7 }, (_, x) => pixel(image, x, 0)[3]);
  assert.deepEqual(alpha, [0, 0, 255, 255, 255, 0, 0]);
});

test('heatmapSize keeps square cells of a whole number of pixels', () => {
  // 22 × 17 grid in 1000 px: floor(1000 / 22) = 45 px per cell.
  assert.deepEqual(heatmapSize({ cols: 22, rows: 17 }, 1000), { width: 990, height: 765 });
  // A grid larger than the limit shrinks, keeping the ratio.
  assert.deepEqual(heatmapSize({ cols: 400, rows: 200 }, 100), { width: 100, height: 50 });
});

test('slideHeatmap rejects mismatched scores, stray or duplicate tiles and oversized pictures', async () => {
  const invalid = (pattern: RegExp) => (e: unknown) => e instanceof AppError && e.code === 'INVALID_REQUEST' && pattern.test(e.message);
  await assert.rejects(slideHeatmap({ grid: GRID, scores: [0.1], width: 30, height: 20 }), invalid(/2 tiles but 1 scores/));
  await assert.rejects(slideHeatmap({ grid: { ...GRID, tiles: [{ col: 3, row: 0 }] }, scores: [0.1], width: 30, height: 20 }), invalid(/outside the 3 × 2 grid/));
  await assert.rejects(slideHeatmap({ grid: { ...GRID, tiles: [{ col: 1, row: 1 }, { col: 1, row: 1 }] }, scores: [0.1, 0.2], width: 30, height: 20 }), invalid(/share column 1, row 1/));
  await assert.rejects(slideHeatmap({ grid: GRID, scores: [0.1, Number.NaN], width: 30, height: 20 }), invalid(/not a finite number/));
  await assert.rejects(slideHeatmap({ grid: GRID, scores: [0, 1], width: 100_000, height: 100_000 }), invalid(/exceeds/));
  await assert.rejects(slideHeatmap({ grid: { cols: 0, rows: 0, tiles: [] }, scores: [], width: 10, height: 10 }), invalid(/at least one column/));
});
