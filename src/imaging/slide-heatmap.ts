import sharp from 'sharp';
import { AppError } from '../core/errors.ts';
import { heatmapColour } from '../models/cam-render.ts';
import type { TileGrid } from './tile-grid.ts';

// The slide heatmap: one cell per grid tile, coloured by the tile's score with the same viridis map as
// the image overlays (models/cam-render.ts), transparent where no tile was scored (background, rejected
// or edge), drawn as an RGBA PNG.
//
// Alignment: the PNG covers exactly the level-0 rectangle [0, cols·T) × [0, rows·T), T =
// tileSizeLevel0, anchored at the slide's top-left corner (the grid's origin). It does not cover the
// whole slide, whose right and bottom strips narrower than one tile are outside the grid. The API serves
// it as a Deep Zoom image of exactly the slide's size (imaging/deepzoom.ts imageSource with that
// rectangle, transparent outside it), so a viewer stacks it on the slide's own Deep Zoom image with no
// offset: GET /v1/cases/:id/heatmap.dzi over /v1/cases/:id/slide.dzi.

export interface SlideHeatmapRequest {
  grid: Pick<TileGrid, 'cols' | 'rows'> & { tiles: readonly { col: number; row: number }[] };
  /** One score per tile of grid.tiles, in the same order; coloured over [0, 1], clamped outside it. */
  scores: ArrayLike<number>;
  /** PNG size in pixels. */
  width: number;
  height: number;
}

/** Largest PNG drawn (64 megapixels, 256 MiB of RGBA before encoding); a viewer needs far fewer. */
export const MAX_HEATMAP_PIXELS = 64 * 1024 * 1024;

/**
 * PNG size that keeps square cells: the longer grid side gets maxSide pixels, rounded down to a whole
 * number of pixels per cell when the grid is smaller than maxSide, so every cell has the same size.
 */
export function heatmapSize(grid: Pick<TileGrid, 'cols' | 'rows'>, maxSide: number): { width: number; height: number } {
  if (!Number.isInteger(maxSide) || maxSide <= 0) throw new AppError('INVALID_REQUEST', `Heatmap size must be a positive integer, got ${maxSide}.`);
  const longer = Math.max(grid.cols, grid.rows);
  if (longer === 0) throw new AppError('INVALID_REQUEST', 'The slide is smaller than one tile, so there is no grid to draw.');
  const cell = longer <= maxSide ? Math.floor(maxSide / longer) : maxSide / longer;
  return { width: Math.max(1, Math.round(grid.cols * cell)), height: Math.max(1, Math.round(grid.rows * cell)) };
}

/** The tile scores as an RGBA PNG of width × height, nearest-neighbour so cell edges stay crisp. */
export async function slideHeatmap(request: SlideHeatmapRequest): Promise<Buffer> {
  const { grid, scores, width, height } = request;
  const { cols, rows, tiles } = grid;
  if (!Number.isInteger(cols) || !Number.isInteger(rows) || cols <= 0 || rows <= 0) {
    throw new AppError('INVALID_REQUEST', `The tile grid must have at least one column and row, got ${cols} × ${rows}.`);
  }
  if (!Number.isInteger(width) || !Number.isInteger(height) || width <= 0 || height <= 0) {
    throw new AppError('INVALID_REQUEST', `Heatmap size must be positive integers, got ${width} × ${height}.`);
  }
  if (width * height > MAX_HEATMAP_PIXELS) {
    throw new AppError('INVALID_REQUEST', `A ${width} × ${height} heatmap exceeds ${MAX_HEATMAP_PIXELS} pixels; ask for a smaller one.`);
  }
  if (scores.length !== tiles.length) {
    throw new AppError('INVALID_REQUEST', `The heatmap needs one score per tile: ${tiles.length} tiles but ${scores.length} scores.`);
  }

  // One RGBA pixel per cell; alpha 0 marks "no tile".
  const cells = new Uint8Array(cols * rows * 4);
  tiles.forEach((tile, i) => {
    const { col, row } = tile;
    if (!Number.isInteger(col) || !Number.isInteger(row) || col < 0 || row < 0 || col >= cols || row >= rows) {
      throw new AppError('INVALID_REQUEST', `Tile ${i} at column ${col}, row ${row} lies outside the ${cols} × ${rows} grid.`);
    }
    const score = scores[i] as number;
    if (!Number.isFinite(score)) throw new AppError('INVALID_REQUEST', `The score of tile ${i} is ${String(score)}, not a finite number.`);
    const at = (row * cols + col) * 4;
    if (cells[at + 3] !== 0) throw new AppError('INVALID_REQUEST', `Two tiles share column ${col}, row ${row}.`);
    const [r, g, b] = heatmapColour(score);
    cells[at] = r;
    cells[at + 1] = g;
    cells[at + 2] = b;
    cells[at + 3] = 255;
  });

  // Nearest neighbour by hand rather than sharp's resize: output pixel x takes cell
  // floor((x + 0.5) · cols / width), the cell under its centre, so which pixel falls in which cell is
  // exact and does not depend on the resampler's conventions.
  const cellOfX = new Int32Array(width);
  for (let x = 0; x < width; x++) cellOfX[x] = Math.min(cols - 1, Math.floor(((x + 0.5) * cols) / width));
  const out = Buffer.alloc(width * height * 4);
  for (let y = 0; y < height; y++) {
    const cellRow = Math.min(rows - 1, Math.floor(((y + 0.5) * rows) / height)) * cols;
    const line = y * width * 4;
    for (let x = 0; x < width; x++) {
      const from = (cellRow + (cellOfX[x] as number)) * 4;
      const to = line + x * 4;
      out[to] = cells[from] as number;
      out[to + 1] = cells[from + 1] as number;
      out[to + 2] = cells[from + 2] as number;
      out[to + 3] = cells[from + 3] as number;
    }
  }
  return sharp(out, { raw: { width, height, channels: 4 } }).png().toBuffer();
}
