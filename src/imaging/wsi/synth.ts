import sharp from 'sharp';
import { AppError } from '../../core/errors.ts';

// Synthetic whole-slide images for tests, demos and benchmarks: a pyramidal tiled TIFF with tissue-like
// content (pale pink glass, irregular pink tissue islands, purple nuclei). The picture is drawn at a low
// resolution and enlarged by libvips while it writes the file, so memory stays bounded by the drawing
// (at most DRAWING_PIXELS), not by the output: a 100 000 × 80 000 slide needs no more than a small one.

export type SynthCompression = 'jpeg' | 'lzw' | 'deflate' | 'none';

export interface SynthOptions {
  width: number;
  height: number;
  /** Output path of the .tif file. */
  out: string;
  tileSize?: number;
  /** JPEG quality (1–100). */
  quality?: number;
  compression?: SynthCompression;
  /** Write BigTIFF (64-bit offsets). libvips ignores it for uncompressed output. */
  bigtiff?: boolean;
  /** Microns per pixel at full resolution, written as the TIFF resolution in pixels per centimetre. */
  mpp?: number;
  /** Seed of the drawing, so that a slide can be reproduced. */
  seed?: number;
}

const DRAWING_PIXELS = 4_000_000;
const GLASS = [242, 228, 236] as const;
const STROMA = [232, 160, 196] as const;
const NUCLEUS = [96, 52, 140] as const;

/** Mulberry32: a small, fast, seedable PRNG (the drawing must be reproducible, not secure). */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Draws the low-resolution picture: tissue islands are thresholded sums of blobs plus coarse noise. */
function drawTissue(width: number, height: number, random: () => number): Buffer {
  const pixels = Buffer.alloc(width * height * 3);
  const blobs = Array.from({ length: 6 + Math.floor(random() * 6) }, () => ({
    x: (0.15 + 0.7 * random()) * width,
    y: (0.15 + 0.7 * random()) * height,
    r: (0.08 + 0.12 * random()) * Math.min(width, height),
  }));
  // Coarse value noise on a 16×16 grid, bilinearly interpolated, makes the island edges irregular.
  const grid = 16;
  const noise = Array.from({ length: (grid + 1) * (grid + 1) }, () => random() - 0.5);
  const inTissue = new Uint8Array(width * height);
  for (let y = 0; y < height; y++) {
    const gy = (y / height) * grid;
    const iy = Math.min(grid - 1, Math.floor(gy));
    const fy = gy - iy;
    for (let x = 0; x < width; x++) {
      const gx = (x / width) * grid;
      const ix = Math.min(grid - 1, Math.floor(gx));
      const fx = gx - ix;
      const n00 = noise[iy * (grid + 1) + ix] ?? 0;
      const n10 = noise[iy * (grid + 1) + ix + 1] ?? 0;
      const n01 = noise[(iy + 1) * (grid + 1) + ix] ?? 0;
      const n11 = noise[(iy + 1) * (grid + 1) + ix + 1] ?? 0;
      let field = (n00 * (1 - fx) + n10 * fx) * (1 - fy) + (n01 * (1 - fx) + n11 * fx) * fy;
      for (const b of blobs) field += Math.exp(-((x - b.x) ** 2 + (y - b.y) ** 2) / (b.r * b.r));
      const tissue = field > 0.55;
      inTissue[y * width + x] = tissue ? 1 : 0;
      const colour = tissue ? STROMA : GLASS;
      const grain = tissue ? (random() - 0.5) * 24 : (random() - 0.5) * 6;
      for (let c = 0; c < 3; c++) pixels[(y * width + x) * 3 + c] = Math.max(0, Math.min(255, (colour[c] ?? 0) + grain));
    }
  }
  // Nuclei: small dark discs scattered over the tissue only.
  const nuclei = Math.floor(width * height * 0.004);
  const radius = Math.max(1, Math.round(Math.min(width, height) / 400));
  for (let i = 0; i < nuclei; i++) {
    const cx = Math.floor(random() * width);
    const cy = Math.floor(random() * height);
    if (inTissue[cy * width + cx] !== 1) continue;
    for (let dy = -radius; dy <= radius; dy++) {
      for (let dx = -radius; dx <= radius; dx++) {
        const x = cx + dx;
        const y = cy + dy;
        if (x < 0 || y < 0 || x >= width || y >= height || dx * dx + dy * dy > radius * radius) continue;
        for (let c = 0; c < 3; c++) pixels[(y * width + x) * 3 + c] = (NUCLEUS[c] ?? 0) + Math.floor(random() * 20);
      }
    }
  }
  return pixels;
}

/** Writes a synthetic pyramidal tiled TIFF and returns the size of the full-resolution level. */
export async function synthesiseSlide(options: SynthOptions): Promise<{ width: number; height: number; out: string }> {
  const { width, height, out, tileSize = 256, quality = 85, compression = 'jpeg', bigtiff = false, mpp = 0.25, seed = 1 } = options;
  for (const [name, value] of [['width', width], ['height', height]] as const) {
    if (!Number.isSafeInteger(value) || value < 1 || value > 10_000_000) throw new AppError('INVALID_REQUEST', `The slide ${name} must be an integer from 1 to 10000000, not ${value}.`);
  }
  if (!Number.isInteger(tileSize) || tileSize < 16 || tileSize % 16 !== 0) throw new AppError('INVALID_REQUEST', `The tile size must be a multiple of 16 (TIFF 6.0 §15), not ${tileSize}.`);
  if (!(mpp > 0)) throw new AppError('INVALID_REQUEST', `mpp must be a positive number, not ${mpp}.`);
  const scale = Math.max(1, Math.sqrt((width * height) / DRAWING_PIXELS));
  const drawWidth = Math.max(1, Math.round(width / scale));
  const drawHeight = Math.max(1, Math.round(height / scale));
  const drawing = drawTissue(drawWidth, drawHeight, prng(seed));
  const pixelsPerMm = 1000 / mpp;
  await sharp(drawing, { raw: { width: drawWidth, height: drawHeight, channels: 3 }, limitInputPixels: false })
    .resize(width, height, { fit: 'fill', kernel: 'cubic' })
    .tiff({
      tile: true,
      tileWidth: tileSize,
      tileHeight: tileSize,
      pyramid: true,
      compression,
      quality,
      bigtiff,
      predictor: compression === 'lzw' || compression === 'deflate' ? 'horizontal' : 'none',
      xres: pixelsPerMm,
      yres: pixelsPerMm,
      resolutionUnit: 'cm',
    })
    .toFile(out);
  return { width, height, out };
}
