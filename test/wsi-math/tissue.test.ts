import assert from 'node:assert/strict';
import { test } from 'node:test';
import { AppError } from '../../src/core/errors.ts';
import type { RgbImage } from '../../src/imaging/raster.ts';
import { otsuThreshold, tissueMask } from '../../src/imaging/wsi-tissue.ts';

// Synthetic low-resolution slides: near-white noisy glass with stained blobs drawn here.

type Rgb = readonly [number, number, number];

/** Deterministic noise in [−amplitude, amplitude] (a 32-bit LCG), so every run draws the same slide. */
function noise(seed: number): (amplitude: number) => number {
  let state = seed >>> 0;
  return (amplitude) => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    return Math.round((state / 2 ** 32) * 2 * amplitude - amplitude);
  };
}

function canvas(width: number, height: number, background: Rgb, jitter = 0, seed = 1): RgbImage {
  const next = noise(seed);
  const data = Buffer.alloc(width * height * 3);
  for (let p = 0; p < width * height; p++) {
    // Grey noise: the glass stays unsaturated, as it is on a scanner.
    const v = next(jitter);
    for (let c = 0; c < 3; c++) data[p * 3 + c] = Math.max(0, Math.min(255, background[c]! + v));
  }
  return { data, width, height };
}

function paint(image: RgbImage, inside: (x: number, y: number) => boolean, colour: Rgb, jitter = 0, seed = 2): void {
  const next = noise(seed);
  for (let y = 0; y < image.height; y++) {
    for (let x = 0; x < image.width; x++) {
      if (!inside(x, y)) continue;
      const p = (y * image.width + x) * 3;
      for (let c = 0; c < 3; c++) image.data[p + c] = Math.max(0, Math.min(255, colour[c]! + next(jitter)));
    }
  }
}

const disc = (cx: number, cy: number, r: number) => (x: number, y: number) => (x - cx) ** 2 + (y - cy) ** 2 <= r * r;
const rect = (x0: number, y0: number, x1: number, y1: number) => (x: number, y: number) => x >= x0 && x < x1 && y >= y0 && y < y1;

const PINK: Rgb = [220, 130, 180];
const PURPLE: Rgb = [120, 70, 150];
const GLASS: Rgb = [242, 242, 242];

function fractionOf(mask: Uint8Array, width: number, height: number, region: (x: number, y: number) => boolean, value: number): number {
  let inRegion = 0;
  let matching = 0;
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      if (!region(x, y)) continue;
      inRegion++;
      if (mask[y * width + x] === value) matching++;
    }
  }
  return matching / inRegion;
}

test('Otsu threshold of a small histogram equals the hand-computed maximum of the between-class variance', () => {
  // Histogram [4, 2, 3, 1] over grey levels 0..3; ω₀ω₁(μ₀ − μ₁)² with counts:
  //   t = 0: 4 · 6 · (0 − 11/6)²   = 80.67
  //   t = 1: 6 · 4 · (1/3 − 9/4)²  = 88.17   ← maximum
  //   t = 2: 9 · 1 · (8/9 − 3)²    = 40.11
  assert.equal(otsuThreshold([4, 2, 3, 1]), 1);
});

test('Otsu threshold of a bimodal histogram with a gap sits in the middle of the gap', () => {
  const histogram = new Uint32Array(256);
  histogram[50] = 10;
  histogram[200] = 10;
  // Every t in 50..199 gives the same split; the middle, floor((50 + 199) / 2), is returned.
  assert.equal(otsuThreshold(histogram), 124);
  // A single occupied bin has no split: its own value, so nothing lies above the threshold.
  const flat = new Uint32Array(256);
  flat[30] = 5;
  assert.equal(otsuThreshold(flat), 30);
});

test('the saturation threshold of a two-colour image is the hand-computed Otsu value', () => {
  const image = canvas(40, 40, [255, 255, 255]);
  paint(image, rect(0, 0, 20, 40), PURPLE);
  // Saturation of white 0; of purple 255 · (150 − 70) / 150 = 136. Threshold floor((0 + 135) / 2) = 67.
  const result = tissueMask(image, { minComponentPixels: 0 });
  assert.equal(result.threshold, 67);
  assert.equal(result.tissueFraction, 0.5);
  assert.equal(result.mask[0], 1);
  assert.equal(result.mask[39], 0);
});

test('the mask covers stained blobs, excludes the glass and removes specks', () => {
  const width = 200;
  const height = 150;
  const image = canvas(width, height, GLASS, 8);
  const pinkBlob = disc(60, 60, 30);
  const purpleBlob = (x: number, y: number) => ((x - 140) / 40) ** 2 + ((y - 95) / 25) ** 2 <= 1;
  paint(image, pinkBlob, PINK, 12, 3);
  paint(image, purpleBlob, PURPLE, 12, 4);
  // Specks: a 2 × 2 fleck and a single pixel of stain on the glass, well away from the blobs.
  paint(image, rect(15, 135, 17, 137), PURPLE);
  paint(image, rect(190, 10, 191, 11), PURPLE);
  const tissue = (x: number, y: number) => pinkBlob(x, y) || purpleBlob(x, y);

  const result = tissueMask(image, { minComponentPixels: 16 });
  assert.ok(fractionOf(result.mask, width, height, pinkBlob, 1) > 0.99, 'pink blob in the mask');
  assert.ok(fractionOf(result.mask, width, height, purpleBlob, 1) > 0.99, 'purple blob in the mask');
  assert.ok(fractionOf(result.mask, width, height, (x, y) => !tissue(x, y), 0) > 0.999, 'glass outside the mask');
  assert.equal(result.mask[135 * width + 15], 0, '2 × 2 speck removed');
  assert.equal(result.mask[10 * width + 190], 0, 'single-pixel speck removed');
  const blobPixels = countWhere(width, height, tissue);
  assert.ok(Math.abs(result.tissueFraction - blobPixels / (width * height)) < 0.005);

  // Without clean-up the specks stay: the removal above is what took them out.
  const raw = tissueMask(image, { minComponentPixels: 0 });
  assert.equal(raw.mask[135 * width + 15], 1);
  assert.equal(raw.mask[10 * width + 190], 1);

  // Deterministic: the same image gives the same bytes.
  assert.deepEqual(tissueMask(image, { minComponentPixels: 16 }).mask, result.mask);
});

function countWhere(width: number, height: number, region: (x: number, y: number) => boolean): number {
  let n = 0;
  for (let y = 0; y < height; y++) for (let x = 0; x < width; x++) if (region(x, y)) n++;
  return n;
}

test('component removal is iterative: a slide-sized component does not overflow the stack', () => {
  // A 2000 × 1000 serpentine, one 4-connected component of about a million pixels, is the worst case
  // for a recursive flood fill.
  const width = 2000;
  const height = 1000;
  const image = canvas(width, height, [255, 255, 255]);
  paint(image, (x, y) => y % 2 === 0 || (y % 4 === 1 ? x === width - 1 : x === 0), PURPLE);
  const result = tissueMask(image, { minComponentPixels: 16 });
  assert.equal(result.mask[0], 1);
  assert.equal(result.mask[(height - 1) * width + 5], 0);
  assert.ok(result.tissueFraction > 0.5);
});

test('tissue components are 4-connected: pixels touching only at corners are separate specks', () => {
  const image = canvas(30, 30, [255, 255, 255]);
  paint(image, rect(0, 0, 10, 30), PURPLE);
  // A diagonal staircase of 15 single pixels: one component under 8-connectivity, 15 under 4.
  paint(image, (x, y) => x >= 13 && x === y, PURPLE);
  const result = tissueMask(image, { minComponentPixels: 2 });
  assert.equal(result.mask[0], 1);
  for (let k = 13; k < 28; k++) assert.equal(result.mask[k * 30 + k], 0, `diagonal pixel ${k}`);
});

test('small holes inside tissue are filled on request; large holes and border-touching glass are not', () => {
  const width = 60;
  const height = 40;
  const image = canvas(width, height, [255, 255, 255]);
  paint(image, rect(5, 5, 55, 35), PURPLE);
  paint(image, rect(10, 10, 13, 13), [255, 255, 255]); // 9-pixel hole
  paint(image, rect(30, 12, 40, 22), [255, 255, 255]); // 100-pixel hole
  const at = (x: number, y: number) => y * width + x;

  const unfilled = tissueMask(image, { minComponentPixels: 0 });
  assert.equal(unfilled.mask[at(11, 11)], 0);

  const filled = tissueMask(image, { minComponentPixels: 0, maxHolePixels: 20 });
  assert.equal(filled.mask[at(11, 11)], 1, 'small hole filled');
  assert.equal(filled.mask[at(35, 17)], 0, 'large hole kept');
  assert.equal(filled.mask[at(0, 0)], 0, 'glass around the tissue kept');

  // Glass in a corner touches the border: it is background, not a hole, however small.
  const corner = canvas(10, 10, [255, 255, 255]);
  paint(corner, (x, y) => !(x < 2 && y < 2), PURPLE);
  paint(corner, rect(5, 5, 6, 6), [255, 255, 255]);
  const cornerMask = tissueMask(corner, { minComponentPixels: 0, maxHolePixels: 20 });
  assert.equal(cornerMask.mask[0], 0);
  assert.equal(cornerMask.mask[55], 1, 'interior one-pixel hole filled');
});

test('a ring of tissue closed only at a corner does not enclose a hole', () => {
  // Ring [5, 15)² two pixels thick around glass [7, 13)².
  const image = canvas(20, 20, [255, 255, 255]);
  paint(image, (x, y) => rect(5, 5, 15, 15)(x, y) && !rect(7, 7, 13, 13)(x, y), PURPLE);
  const closed = tissueMask(image, { minComponentPixels: 0, maxHolePixels: 100 });
  assert.equal(closed.mask[10 * 20 + 10], 1, 'closed ring: inside filled');
  // Glass at (5, 5) and (6, 6): the inside (7, 7) now reaches the outside (4, 4) through corners only.
  // Tissue is 4-connected, so the ring is open there, and its background is 8-connected to match.
  paint(image, (x, y) => x === y && (x === 5 || x === 6), [255, 255, 255]);
  const open = tissueMask(image, { minComponentPixels: 0, maxHolePixels: 100 });
  assert.equal(open.mask[10 * 20 + 10], 0, 'open ring: inside left as glass');
});

test('near-white pixels are background even when their saturation passes the threshold', () => {
  const image = canvas(40, 40, [255, 255, 255]);
  paint(image, rect(0, 0, 20, 40), PURPLE);
  // A bright yellow tint (lamp glare at the glass edge): luma 0.299 · 255 + 0.587 · 255 + 0.114 · 120 =
  // 239.6 > 220, but saturation 255 · 135 / 255 = 135, as high as the stain's 136.
  paint(image, rect(20, 0, 40, 10), [255, 255, 120]);
  const result = tissueMask(image, { minComponentPixels: 0 });
  assert.ok(result.threshold < 135);
  assert.equal(result.mask[5 * 40 + 30], 0);
  assert.equal(result.mask[5 * 40 + 5], 1);
  const lax = tissueMask(image, { minComponentPixels: 0, maxBrightness: 255 });
  assert.equal(lax.mask[5 * 40 + 30], 1);
});

test('optical density rejects tinted but barely absorbing regions that saturation lets through', () => {
  const width = 100;
  const height = 100;
  const image = canvas(width, height, GLASS, 4);
  paint(image, rect(0, 0, 100, 20), PURPLE, 6, 5);
  // A pink haze: saturated (85 of 255) and under the brightness cut (luma 201), but it absorbs little
  // (mean optical density 0.08, against 0.37 for the stained tissue).
  const haze = rect(0, 80, 100, 90);
  paint(image, haze, [255, 170, 220], 3, 6);
  const bySaturation = tissueMask(image, { minComponentPixels: 0 });
  assert.ok(fractionOf(bySaturation.mask, width, height, haze, 1) > 0.99);
  const withDensity = tissueMask(image, { minComponentPixels: 0, opticalDensity: true });
  assert.ok(fractionOf(withDensity.mask, width, height, haze, 0) > 0.99);
  assert.ok(fractionOf(withDensity.mask, width, height, rect(0, 0, 100, 20), 1) > 0.99);
  assert.ok(withDensity.opticalDensityThreshold !== undefined && withDensity.opticalDensityThreshold > 0.08 && withDensity.opticalDensityThreshold < 0.37);
  assert.equal(bySaturation.opticalDensityThreshold, undefined);
});

test('tissueMask rejects malformed images and options', () => {
  assert.throws(() => tissueMask({ data: Buffer.alloc(10), width: 2, height: 2 }), (e) => e instanceof AppError && e.code === 'INTERNAL');
  const image = canvas(4, 4, GLASS);
  assert.throws(() => tissueMask(image, { minComponentPixels: -1 }), (e) => e instanceof AppError && e.code === 'INVALID_REQUEST');
  assert.throws(() => tissueMask(image, { maxBrightness: 300 }), (e) => e instanceof AppError && e.code === 'INVALID_REQUEST');
});
