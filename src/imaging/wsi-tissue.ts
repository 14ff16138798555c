import { AppError } from '../core/errors.ts';
import type { RgbImage } from './raster.ts';

// Tissue detection on a low-resolution level of a whole slide (DESIGN.md §1.1), so that background tiles
// are rejected before any level-0 pixels are decoded.
//
// Method:
// 1. Saturation. Stained tissue (haematoxylin purple, eosin pink) is coloured; the glass is grey-white.
//    Saturation S = (max − min) / max of HSV, scaled to 0–255, separates the two independently of the
//    scanner's overall brightness.
// 2. Otsu's threshold (N. Otsu, "A threshold selection method from gray-level histograms", IEEE Trans.
//    Systems, Man, and Cybernetics 9(1):62–66, 1979) on the saturation histogram: the threshold that
//    maximises the between-class variance ω₀ω₁(μ₀ − μ₁)². It adapts to stain intensity per slide.
// 3. Optionally optical density, OD = −log₁₀(I / 255) averaged over R, G, B (Beer–Lambert: OD is
//    proportional to the amount of stain), also thresholded by Otsu, and required *as well as*
//    saturation: it rejects tinted but barely absorbing regions (stain haze on the glass, coloured
//    illumination fall-off) that saturation alone lets through.
// 4. A brightness cut: pixels whose luma (ITU-R BT.601: 0.299 R + 0.587 G + 0.114 B) exceeds
//    maxBrightness are background whatever their saturation, because near-white pixels have a tiny max
//    − min that quantisation and JPEG noise turn into large, meaningless saturation.
// 5. Clean-up: connected tissue components (4-connected) smaller than minComponentPixels are removed
//    (dust, specks, debris); optionally background holes (8-connected, the topologically consistent
//    complement of 4-connected foreground; Rosenfeld, "Digital topology", 1979) that do not touch the
//    image border and are at most maxHolePixels are filled (lumens, tears inside tissue).
// Everything is integer arithmetic or table-driven, so the result is deterministic across platforms.
//
// Limitation: Otsu assumes two classes. When tissue fills the whole thumbnail there is no background
// mode, and the threshold splits the tissue itself; the brightness cut and the clean-up do not fix that.

export interface TissueMaskOptions {
  /** Luma above which a pixel is background regardless of colour, 0–255. Default 220. */
  maxBrightness?: number;
  /** Also require optical density above its own Otsu threshold. Default false. */
  opticalDensity?: boolean;
  /** Tissue components with fewer pixels are removed. Default 16; scale it with the level's µm/px. */
  minComponentPixels?: number;
  /** Background holes inside tissue with at most this many pixels are filled. Default 0 (no filling). */
  maxHolePixels?: number;
}

export interface TissueMask {
  /** One byte per pixel, row-major, 1 = tissue, 0 = background. */
  mask: Uint8Array;
  width: number;
  height: number;
  /** Otsu threshold on saturation (0–255): tissue has saturation above it. */
  threshold: number;
  /** Otsu threshold on mean optical density, when opticalDensity was asked for. */
  opticalDensityThreshold?: number;
  /** Fraction of pixels that are tissue after clean-up, 0–1. */
  tissueFraction: number;
}

export const TISSUE_MASK_DEFAULTS = { maxBrightness: 220, opticalDensity: false, minComponentPixels: 16, maxHolePixels: 0 } as const;

/**
 * Otsu's threshold of a histogram: the bin t for which splitting into {≤ t} and {> t} maximises the
 * between-class variance. Bins with no pixels between the two classes all give the same split; the
 * middle of that gap (rounded down) is returned, so the cut sits between the modes rather than against
 * one of them. A histogram with a single occupied bin returns that bin (everything in the lower class).
 */
export function otsuThreshold(histogram: ArrayLike<number>): number {
  let total = 0;
  let totalMoment = 0;
  for (let t = 0; t < histogram.length; t++) {
    const count = histogram[t] as number;
    total += count;
    totalMoment += t * count;
  }
  if (total === 0) throw new AppError('INTERNAL', 'Otsu threshold of an empty histogram.');
  let lowerCount = 0;
  let lowerMoment = 0;
  let best = -1;
  let bestT = 0;
  for (let t = 0; t < histogram.length - 1; t++) {
    lowerCount += histogram[t] as number;
    lowerMoment += t * (histogram[t] as number);
    const upperCount = total - lowerCount;
    if (lowerCount === 0 || upperCount === 0) continue;
    const meanDifference = lowerMoment / lowerCount - (totalMoment - lowerMoment) / upperCount;
    // ω₀ω₁(μ₀ − μ₁)² scaled by total², which does not move the maximum.
    const between = lowerCount * upperCount * meanDifference * meanDifference;
    if (between > best) {
      best = between;
      bestT = t;
    }
  }
  if (best < 0) {
    // One occupied bin: no split exists. Return that bin so "above the threshold" selects nothing.
    for (let t = histogram.length - 1; t >= 0; t--) if ((histogram[t] as number) > 0) return t;
  }
  // Extend across the empty bins that follow: every threshold in that run gives the identical split.
  let gapEnd = bestT;
  while (gapEnd + 1 < histogram.length && (histogram[gapEnd + 1] as number) === 0) gapEnd++;
  return Math.floor((bestT + gapEnd) / 2);
}

/** Optical density of a fully dark channel (transmission 1/255); densities are binned over [0, OD_MAX]. */
const OD_MAX = Math.log10(255);
/** Optical density of each 8-bit channel value. */
const OD_OF_BYTE: Float64Array = (() => {
  const table = new Float64Array(256);
  // 0 would be infinite density; a fully dark pixel is treated as 1/255 transmission.
  for (let v = 0; v < 256; v++) table[v] = -Math.log10(Math.max(v, 1) / 255);
  return table;
})();

function checkImage(image: RgbImage): void {
  const { width, height, data } = image;
  if (!Number.isInteger(width) || !Number.isInteger(height) || width <= 0 || height <= 0) {
    throw new AppError('INTERNAL', `Image size must be positive integers, got ${width} × ${height}.`);
  }
  if (data.length !== width * height * 3) {
    throw new AppError('INTERNAL', `RGB buffer holds ${data.length} bytes, not ${width} × ${height} × 3.`);
  }
}

function checkCount(name: string, value: number): void {
  if (!Number.isInteger(value) || value < 0) throw new AppError('INVALID_REQUEST', `Tissue mask option ${name} must be a non-negative integer, got ${value}.`);
}

/**
 * Labels the connected components of pixels equal to `value` and clears (sets to `replacement`) every
 * component for which `remove(size, touchesBorder)` is true. Breadth-first with an explicit queue:
 * linear in the pixel count, and no recursion, so a slide-sized component cannot overflow the stack.
 */
function removeComponents(
  mask: Uint8Array,
  width: number,
  height: number,
  value: 0 | 1,
  eightConnected: boolean,
  remove: (size: number, touchesBorder: boolean) => boolean,
): void {
  const n = width * height;
  const visited = new Uint8Array(n);
  const queue = new Int32Array(n);
  const replacement = value === 1 ? 0 : 1;
  for (let start = 0; start < n; start++) {
    if (visited[start] || mask[start] !== value) continue;
    // The queue doubles as the component's pixel list: entries [0, tail) are its pixels.
    let head = 0;
    let tail = 0;
    queue[tail++] = start;
    visited[start] = 1;
    let touchesBorder = false;
    while (head < tail) {
      const p = queue[head++] as number;
      const x = p % width;
      const y = (p - x) / width;
      if (x === 0 || y === 0 || x === width - 1 || y === height - 1) touchesBorder = true;
      for (let dy = -1; dy <= 1; dy++) {
        const ny = y + dy;
        if (ny < 0 || ny >= height) continue;
        for (let dx = -1; dx <= 1; dx++) {
          if (dx === 0 && dy === 0) continue;
          if (!eightConnected && dx !== 0 && dy !== 0) continue;
          const nx = x + dx;
          if (nx < 0 || nx >= width) continue;
          const q = ny * width + nx;
          if (visited[q] || mask[q] !== value) continue;
          visited[q] = 1;
          queue[tail++] = q;
        }
      }
    }
    if (remove(tail, touchesBorder)) {
      for (let i = 0; i < tail; i++) mask[queue[i] as number] = replacement;
    }
  }
}

/** The tissue mask of a low-resolution slide image; see the method at the top of this file. */
export function tissueMask(image: RgbImage, options: TissueMaskOptions = {}): TissueMask {
  checkImage(image);
  const maxBrightness = options.maxBrightness ?? TISSUE_MASK_DEFAULTS.maxBrightness;
  const useOpticalDensity = options.opticalDensity ?? TISSUE_MASK_DEFAULTS.opticalDensity;
  const minComponentPixels = options.minComponentPixels ?? TISSUE_MASK_DEFAULTS.minComponentPixels;
  const maxHolePixels = options.maxHolePixels ?? TISSUE_MASK_DEFAULTS.maxHolePixels;
  if (!(maxBrightness >= 0 && maxBrightness <= 255)) {
    throw new AppError('INVALID_REQUEST', `Tissue mask option maxBrightness must be between 0 and 255, got ${maxBrightness}.`);
  }
  checkCount('minComponentPixels', minComponentPixels);
  checkCount('maxHolePixels', maxHolePixels);

  const { data, width, height } = image;
  const n = width * height;
  const saturation = new Uint8Array(n);
  const density = useOpticalDensity ? new Uint8Array(n) : undefined;
  const bright = new Uint8Array(n);
  const saturationHistogram = new Uint32Array(256);
  const densityHistogram = new Uint32Array(256);
  // Luma in fixed point (weights × 1000) so the cut is exact integer arithmetic.
  const brightnessLimit = maxBrightness * 1000;
  for (let p = 0, i = 0; p < n; p++, i += 3) {
    const r = data[i] as number;
    const g = data[i + 1] as number;
    const b = data[i + 2] as number;
    const max = Math.max(r, g, b);
    const min = Math.min(r, g, b);
    const s = max === 0 ? 0 : Math.round((255 * (max - min)) / max);
    saturation[p] = s;
    saturationHistogram[s] = (saturationHistogram[s] as number) + 1;
    if (299 * r + 587 * g + 114 * b > brightnessLimit) bright[p] = 1;
    if (density) {
      const od = ((OD_OF_BYTE[r] as number) + (OD_OF_BYTE[g] as number) + (OD_OF_BYTE[b] as number)) / 3;
      const bin = Math.min(255, Math.round((od / OD_MAX) * 255));
      density[p] = bin;
      densityHistogram[bin] = (densityHistogram[bin] as number) + 1;
    }
  }

  const threshold = otsuThreshold(saturationHistogram);
  const densityThreshold = density ? otsuThreshold(densityHistogram) : 0;
  const mask = new Uint8Array(n);
  for (let p = 0; p < n; p++) {
    if (bright[p] || (saturation[p] as number) <= threshold) continue;
    if (density && (density[p] as number) <= densityThreshold) continue;
    mask[p] = 1;
  }

  if (minComponentPixels > 1) removeComponents(mask, width, height, 1, false, (size) => size < minComponentPixels);
  if (maxHolePixels > 0) removeComponents(mask, width, height, 0, true, (size, touchesBorder) => !touchesBorder && size <= maxHolePixels);

  let tissue = 0;
  for (let p = 0; p < n; p++) tissue += mask[p] as number;
  return {
    mask,
    width,
    height,
    threshold,
    ...(density ? { opticalDensityThreshold: (densityThreshold / 255) * OD_MAX } : {}),
    tissueFraction: tissue / n,
  };
}
