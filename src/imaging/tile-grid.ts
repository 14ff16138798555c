import { AppError } from '../core/errors.ts';

// The tile grid of a whole slide (DESIGN.md §1.1): square level-0 tiles whose side, at the slide's
// resolution, images the physical field the tile model was trained on (manifest: target µm per pixel ×
// tile size in pixels). The grid starts at the level-0 origin, so tile (col, row) covers
// [col·T, (col + 1)·T) × [row·T, (row + 1)·T) with T = tileSizeLevel0, and a heatmap with one cell per
// tile lines up with the slide by scaling alone.
//
// Partial tiles at the right and bottom edges are dropped, not padded: padding is a border the model
// never saw in training, and the strip lost is narrower than one tile (under 0.12 mm at 448 px and
// 0.25 µm/px), on the slide's edge where tissue is rare.

export interface TileGridRequest {
  level0Width: number;
  level0Height: number;
  /** µm per level-0 pixel as the slide records it; undefined when the file does not say. */
  slideMpp: number | undefined;
  /** Used when the slide records no resolution; without it a missing slideMpp is an error. */
  fallbackMpp?: number;
  /** µm per pixel the tile model expects (its manifest). */
  targetMpp: number;
  /** Tile side in model pixels (its manifest). */
  tileSize: number;
  /** Tissue mask (non-zero = tissue) of the whole slide at a lower level, row-major. */
  mask: Uint8Array;
  maskWidth: number;
  maskHeight: number;
  /** Tiles covering less tissue than this fraction are rejected. Default 0.25. */
  minTissueFraction?: number;
}

export interface Tile {
  col: number;
  row: number;
  /** Level-0 top-left corner. */
  x: number;
  y: number;
  /** Fraction of the tile's area that the mask marks as tissue, 0–1. */
  tissue: number;
}

export interface TileGrid {
  /** Tile side in level-0 pixels: round(tileSize × targetMpp / mpp). */
  tileSizeLevel0: number;
  /** Whole tiles that fit across and down the slide; tiles holds only the kept ones. */
  cols: number;
  rows: number;
  /** Kept tiles in row-major order. */
  tiles: Tile[];
  /** Whole tiles rejected for too little tissue. */
  rejected: number;
  /** The µm per level-0 pixel used, and whether the slide recorded it or the fallback was used. */
  mpp: number;
  mppSource: 'slide' | 'fallback';
}

export const DEFAULT_MIN_TISSUE_FRACTION = 0.25;

/**
 * Fractions are area sums in floating point: a tile that is exactly 25 % tissue may add up to
 * 0.2499999999; this tolerance keeps such a tile on the side of the threshold its geometry puts it.
 */
const FRACTION_TOLERANCE = 1e-9;

function isPositiveNumber(value: unknown): value is number {
  return typeof value === 'number' && Number.isFinite(value) && value > 0;
}

function checkPositiveInteger(name: string, value: number): void {
  if (!Number.isInteger(value) || value <= 0) throw new AppError('INVALID_REQUEST', `Tile grid: ${name} must be a positive integer, got ${value}.`);
}

function resolveMpp(request: TileGridRequest): { mpp: number; mppSource: 'slide' | 'fallback' } {
  if (isPositiveNumber(request.slideMpp)) return { mpp: request.slideMpp, mppSource: 'slide' };
  if (request.fallbackMpp !== undefined) {
    if (!isPositiveNumber(request.fallbackMpp)) {
      throw new AppError('INVALID_REQUEST', `Tile grid: fallbackMpp must be a positive number of µm per pixel, got ${request.fallbackMpp}.`);
    }
    return { mpp: request.fallbackMpp, mppSource: 'fallback' };
  }
  throw new AppError(
    'INVALID_REQUEST',
    `The slide does not record its resolution (µm per pixel${request.slideMpp === undefined ? '' : `; it says ${String(request.slideMpp)}`}), so tiles of the model's ${request.targetMpp} µm/px cannot be sized; rescan with resolution metadata or give the slide's µm per pixel explicitly.`,
    { details: { slideMpp: request.slideMpp ?? null } },
  );
}

/**
 * Overlap of the level-0 interval [start, end) with each mask pixel along one axis, as weights in mask
 * pixels: the interval maps to [start·scale, end·scale) and each mask pixel i is the cell [i, i + 1).
 * Weighting by area rather than rounding the bounds to whole mask pixels means a non-integer level
 * ratio neither loses nor double-counts the border row between two tiles.
 */
function axisWeights(start: number, end: number, scale: number, size: number): { first: number; weights: number[] } {
  const from = start * scale;
  const to = Math.min(end * scale, size);
  const first = Math.floor(from);
  const weights: number[] = [];
  for (let i = first; i < to; i++) weights.push(Math.min(i + 1, to) - Math.max(i, from));
  return { first, weights };
}

/** The tiles of a slide that hold enough tissue, with their level-0 positions. */
export function tileGrid(request: TileGridRequest): TileGrid {
  const { level0Width, level0Height, targetMpp, tileSize, mask, maskWidth, maskHeight } = request;
  const minTissueFraction = request.minTissueFraction ?? DEFAULT_MIN_TISSUE_FRACTION;
  checkPositiveInteger('level0Width', level0Width);
  checkPositiveInteger('level0Height', level0Height);
  checkPositiveInteger('tileSize', tileSize);
  checkPositiveInteger('maskWidth', maskWidth);
  checkPositiveInteger('maskHeight', maskHeight);
  if (!isPositiveNumber(targetMpp)) throw new AppError('INVALID_REQUEST', `Tile grid: targetMpp must be a positive number of µm per pixel, got ${targetMpp}.`);
  if (!(minTissueFraction >= 0 && minTissueFraction <= 1)) {
    throw new AppError('INVALID_REQUEST', `Tile grid: minTissueFraction must be between 0 and 1, got ${minTissueFraction}.`);
  }
  if (mask.length !== maskWidth * maskHeight) {
    throw new AppError('INVALID_REQUEST', `Tile grid: the tissue mask holds ${mask.length} pixels, not ${maskWidth} × ${maskHeight}.`);
  }
  const { mpp, mppSource } = resolveMpp(request);

  const tileSizeLevel0 = Math.round((tileSize * targetMpp) / mpp);
  if (tileSizeLevel0 < 1) {
    throw new AppError('INVALID_REQUEST', `Tile grid: a ${tileSize}-px tile at ${targetMpp} µm/px is smaller than one pixel of this ${mpp} µm/px slide.`);
  }
  const cols = Math.floor(level0Width / tileSizeLevel0);
  const rows = Math.floor(level0Height / tileSizeLevel0);

  // The mask images the whole level-0 area; its own size (not a nominal downsample) gives the scale,
  // because pyramid levels round their sizes and the true ratio is rarely the nominal one.
  const scaleX = maskWidth / level0Width;
  const scaleY = maskHeight / level0Height;
  const columnWeights = Array.from({ length: cols }, (_, col) => axisWeights(col * tileSizeLevel0, (col + 1) * tileSizeLevel0, scaleX, maskWidth));
  const rowWeights = Array.from({ length: rows }, (_, row) => axisWeights(row * tileSizeLevel0, (row + 1) * tileSizeLevel0, scaleY, maskHeight));
  const tileArea = tileSizeLevel0 * scaleX * tileSizeLevel0 * scaleY;

  const tiles: Tile[] = [];
  let rejected = 0;
  for (let row = 0; row < rows; row++) {
    const ys = rowWeights[row] as { first: number; weights: number[] };
    for (let col = 0; col < cols; col++) {
      const xs = columnWeights[col] as { first: number; weights: number[] };
      let covered = 0;
      for (let j = 0; j < ys.weights.length; j++) {
        const offset = (ys.first + j) * maskWidth + xs.first;
        let rowSum = 0;
        for (let i = 0; i < xs.weights.length; i++) if (mask[offset + i]) rowSum += xs.weights[i] as number;
        covered += rowSum * (ys.weights[j] as number);
      }
      const tissue = Math.min(1, covered / tileArea);
      if (tissue + FRACTION_TOLERANCE >= minTissueFraction) tiles.push({ col, row, x: col * tileSizeLevel0, y: row * tileSizeLevel0, tissue });
      else rejected++;
    }
  }
  return { tileSizeLevel0, cols, rows, tiles, rejected, mpp, mppSource };
}

export interface PyramidLevel {
  width: number;
  height: number;
  /** Level-0 pixels per pixel of this level. */
  downsample: number;
}

/**
 * A level's recorded downsample is often a ratio of rounded sizes (4.0002 for a nominal 4); within this
 * relative tolerance it still counts as at most the target, so a wanted 4× reads the 4× level rather
 * than decoding 16 times the pixels at the level below.
 */
const DOWNSAMPLE_TOLERANCE = 1e-3;

/**
 * Index of the level to read for a wanted downsample: the one with the largest downsample not above the
 * target (reading it and reducing further never loses detail), as OpenSlide's
 * get_best_level_for_downsample does. A target below every level gives the finest level. Levels may be
 * in any order.
 */
export function chooseLevel(levels: readonly PyramidLevel[], targetDownsample: number): number {
  if (levels.length === 0) throw new AppError('INVALID_REQUEST', 'The slide has no pyramid levels to read.');
  if (!isPositiveNumber(targetDownsample)) throw new AppError('INVALID_REQUEST', `The wanted downsample must be a positive number, got ${targetDownsample}.`);
  let best = -1;
  let finest = 0;
  levels.forEach((level, index) => {
    if (!isPositiveNumber(level.downsample)) throw new AppError('INVALID_REQUEST', `Pyramid level ${index} has an invalid downsample ${level.downsample}.`);
    if (level.downsample < (levels[finest] as PyramidLevel).downsample) finest = index;
    if (level.downsample <= targetDownsample * (1 + DOWNSAMPLE_TOLERANCE) && (best < 0 || level.downsample > (levels[best] as PyramidLevel).downsample)) best = index;
  });
  return best < 0 ? finest : best;
}
