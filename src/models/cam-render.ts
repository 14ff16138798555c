import sharp from 'sharp';
import { AppError } from '../core/errors.ts';
import type { RgbImage } from './preprocess.ts';

// Class activation maps as pictures: the map (values in [0, 1], from normaliseCam) is upsampled to the
// image, coloured with viridis and written as PNG, either blended onto the image or as a transparent
// layer for viewers that composite it themselves. The map must cover exactly the image passed in:
// with the manifest's resize fit "fill" that is the whole image the model was given.

/**
 * Viridis (van der Walt & Smith, the matplotlib default colour map) at the values k/16, k = 0..16.
 * Its lightness rises monotonically and evenly, so brighter always means more evidence, also in greyscale
 * print and for the common colour-vision deficiencies; rainbow maps such as jet show false bands.
 * Linear interpolation between these points stays within 6 (mean 0.4) of 255 levels of the full
 * 256-entry table.
 */
const VIRIDIS_ANCHORS: readonly (readonly [number, number, number])[] = [
  [68, 1, 84], [72, 24, 106], [71, 45, 123], [66, 64, 134], [59, 82, 139], [51, 99, 141],
  [44, 114, 142], [38, 130, 142], [33, 145, 140], [31, 159, 136], [39, 173, 129], [61, 188, 116],
  [92, 200, 99], [129, 211, 77], [170, 220, 50], [213, 226, 26], [253, 231, 37],
];

/** 256 RGB triples, interleaved: entry i is the colour of the value i / 255. */
const VIRIDIS_LUT: Uint8Array = (() => {
  const lut = new Uint8Array(256 * 3);
  const segments = VIRIDIS_ANCHORS.length - 1;
  for (let i = 0; i < 256; i++) {
    const position = (i / 255) * segments;
    const lower = Math.min(Math.floor(position), segments - 1);
    const t = position - lower;
    const a = VIRIDIS_ANCHORS[lower] as readonly [number, number, number];
    const b = VIRIDIS_ANCHORS[lower + 1] as readonly [number, number, number];
    a.forEach((from, c) => {
      const to = b[c] as number;
      lut[i * 3 + c] = Math.round(from + (to - from) * t);
    });
  }
  return lut;
})();

/** Index into the colour table for a map value; values outside [0, 1] are clamped to its ends. */
function lutIndex(value: number): number {
  return Math.round(Math.min(1, Math.max(0, value)) * 255);
}

/** The colour (8-bit sRGB) the overlay gives a map value in [0, 1]. */
export function heatmapColour(value: number): [number, number, number] {
  const i = lutIndex(value) * 3;
  return [VIRIDIS_LUT[i] as number, VIRIDIS_LUT[i + 1] as number, VIRIDIS_LUT[i + 2] as number];
}

function checkMap(map: Float32Array, dims: readonly [number, number]): void {
  const [height, width] = dims;
  if (!Number.isInteger(height) || !Number.isInteger(width) || height <= 0 || width <= 0) {
    throw new AppError('INTERNAL', `Map dims must be two positive integers (height, width), got [${dims.join(', ')}].`);
  }
  if (map.length !== height * width) {
    throw new AppError('INTERNAL', `The map holds ${map.length} values, not ${height} × ${width}.`);
  }
  for (const v of map) {
    if (!Number.isFinite(v)) throw new AppError('INTERNAL', 'The map holds NaN or infinite values; normalise it with normaliseCam before rendering.');
  }
}

/** Source coordinate and weight for each output pixel along one axis (pixel centres aligned, edges clamped). */
function bilinearAxis(source: number, target: number): { lower: Int32Array; upper: Int32Array; t: Float64Array } {
  const lower = new Int32Array(target);
  const upper = new Int32Array(target);
  const t = new Float64Array(target);
  const ratio = source / target;
  for (let x = 0; x < target; x++) {
    // Pixel centres: output pixel x covers [x, x + 1) and its centre maps to (x + 0.5) · ratio − 0.5.
    const position = Math.min(source - 1, Math.max(0, (x + 0.5) * ratio - 0.5));
    const l = Math.floor(position);
    lower[x] = l;
    upper[x] = Math.min(l + 1, source - 1);
    t[x] = position - l;
  }
  return { lower, upper, t };
}

/**
 * Bilinear upsampling of a row-major map to width × height. Bilinear, not Lanczos or bicubic: their
 * negative lobes overshoot next to strong evidence and would draw halos of evidence that the map does
 * not hold; a bilinear value always lies between its four neighbours.
 */
export function upsampleBilinear(map: Float32Array, dims: readonly [number, number], width: number, height: number): Float32Array {
  checkMap(map, dims);
  if (!Number.isInteger(width) || !Number.isInteger(height) || width <= 0 || height <= 0) {
    throw new AppError('INTERNAL', `Target size must be positive integers, got ${width} × ${height}.`);
  }
  const [mapHeight, mapWidth] = dims;
  const xs = bilinearAxis(mapWidth, width);
  const ys = bilinearAxis(mapHeight, height);
  const out = new Float32Array(width * height);
  for (let y = 0; y < height; y++) {
    const top = (ys.lower[y] as number) * mapWidth;
    const bottom = (ys.upper[y] as number) * mapWidth;
    const ty = ys.t[y] as number;
    for (let x = 0; x < width; x++) {
      const l = xs.lower[x] as number;
      const u = xs.upper[x] as number;
      const tx = xs.t[x] as number;
      const upperRow = (map[top + l] as number) * (1 - tx) + (map[top + u] as number) * tx;
      const lowerRow = (map[bottom + l] as number) * (1 - tx) + (map[bottom + u] as number) * tx;
      out[y * width + x] = upperRow * (1 - ty) + lowerRow * ty;
    }
  }
  return out;
}

const blendTables = new Map<number, Uint8Array>();

/**
 * round((1 − opacity) · image + opacity · colour) for every LUT entry, channel and image byte:
 * 256 × 3 × 256 bytes per opacity, built once, so the per-pixel blend is three table reads.
 */
function blendTable(opacity: number): Uint8Array {
  let table = blendTables.get(opacity);
  if (!table) {
    table = new Uint8Array(256 * 3 * 256);
    for (let index = 0; index < 256; index++) {
      for (let c = 0; c < 3; c++) {
        const tint = opacity * (VIRIDIS_LUT[index * 3 + c] as number);
        const base = index * 768 + c * 256;
        for (let v = 0; v < 256; v++) table[base + v] = Math.round((1 - opacity) * v + tint);
      }
    }
    if (blendTables.size > 16) blendTables.clear();
    blendTables.set(opacity, table);
  }
  return table;
}

export interface OverlayOptions {
  /** Weight of the heatmap colour in the blend, 0 (image only) to 1 (heatmap only); default 0.45. */
  opacity?: number;
}

export const DEFAULT_OVERLAY_OPACITY = 0.45;

/**
 * The map blended onto the image as a PNG of the image's size: every pixel is
 * (1 − opacity) · image + opacity · viridis(map), so the whole colour scale stays readable against a
 * legend. The default opacity, 0.45, leaves the tissue recognisable under the strongest colour.
 */
export async function renderOverlay(image: RgbImage, map: Float32Array, mapDims: readonly [number, number], options: OverlayOptions = {}): Promise<Buffer> {
  const { width, height } = image;
  if (image.data.length !== width * height * 3) {
    throw new AppError('INTERNAL', `RGB buffer holds ${image.data.length} bytes, not ${width} × ${height} × 3.`);
  }
  const opacity = options.opacity ?? DEFAULT_OVERLAY_OPACITY;
  if (!(opacity >= 0 && opacity <= 1)) throw new AppError('INTERNAL', `Overlay opacity must be between 0 and 1, got ${opacity}.`);
  const values = upsampleBilinear(map, mapDims, width, height);
  const out = Buffer.alloc(width * height * 3);
  const table = blendTable(opacity);
  const src = image.data;
  for (let p = 0, i = 0; p < values.length; p++, i += 3) {
    // Row of the table for this pixel's colour, per channel; the column is the image's byte.
    const row = lutIndex(values[p] as number) * 768;
    out[i] = table[row + (src[i] as number)] as number;
    out[i + 1] = table[row + 256 + (src[i + 1] as number)] as number;
    out[i + 2] = table[row + 512 + (src[i + 2] as number)] as number;
  }
  // The fastest zlib level: the overlay is written on the request path, and level 1 encodes a 512×512
  // tissue overlay about twice as fast as the default for some more bytes.
  return sharp(out, { raw: { width, height, channels: 3 } }).png({ compressionLevel: 1 }).toBuffer();
}

/**
 * The coloured map alone as an RGBA PNG of width × height, for viewers that composite it themselves
 * (a slide viewer's overlay layer). Alpha follows the map: transparent where there is no evidence,
 * opaque at the strongest, so the tissue shows through weak regions; the viewer sets overall opacity.
 */
export async function renderHeatmapOnly(map: Float32Array, dims: readonly [number, number], width: number, height: number): Promise<Buffer> {
  const values = upsampleBilinear(map, dims, width, height);
  const out = Buffer.alloc(width * height * 4);
  for (let p = 0; p < values.length; p++) {
    const index = lutIndex(values[p] as number);
    out[p * 4] = VIRIDIS_LUT[index * 3] as number;
    out[p * 4 + 1] = VIRIDIS_LUT[index * 3 + 1] as number;
    out[p * 4 + 2] = VIRIDIS_LUT[index * 3 + 2] as number;
    out[p * 4 + 3] = index;
  }
  return sharp(out, { raw: { width, height, channels: 4 } }).png().toBuffer();
}
