import sharp from 'sharp';
import type { RgbImage } from './raster.ts';

// A cheap image-quality screen before any model result is trusted: too dark or too bright, too flat
// (little contrast) or too blurred (little high-frequency energy) images make a classifier's output
// meaningless, so the treatment policy withholds its answer for them.

export interface QualityMetrics {
  /** Mean grey level, 0–255. */
  brightness: number;
  /** Standard deviation of the grey level. */
  contrast: number;
  /** Variance of the 4-neighbour Laplacian on the grey image (larger = sharper). */
  sharpness: number;
}

export interface QualityThresholds {
  minBrightness: number;
  maxBrightness: number;
  minContrast: number;
  minSharpness: number;
}

/** Measured on a grey copy no larger than 256 px on its longer side, so the cost is bounded. */
export async function measureQuality(image: RgbImage): Promise<QualityMetrics> {
  const { data, info } = await sharp(image.data, { raw: { width: image.width, height: image.height, channels: 3 } })
    .resize(256, 256, { fit: 'inside', withoutEnlargement: true })
    .greyscale()
    .raw()
    .toBuffer({ resolveWithObject: true });
  const { width: w, height: h, channels } = info;
  const grey = (x: number, y: number) => data[(y * w + x) * channels] as number;
  let sum = 0;
  let sumSq = 0;
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) { const v = grey(x, y); sum += v; sumSq += v * v; }
  const n = w * h;
  const brightness = sum / n;
  const contrast = Math.sqrt(Math.max(0, sumSq / n - brightness * brightness));
  let lapSum = 0;
  let lapSq = 0;
  let m = 0;
  for (let y = 1; y < h - 1; y++) {
    for (let x = 1; x < w - 1; x++) {
      const l = grey(x - 1, y) + grey(x + 1, y) + grey(x, y - 1) + grey(x, y + 1) - 4 * grey(x, y);
      lapSum += l; lapSq += l * l; m++;
    }
  }
  const sharpness = m > 0 ? lapSq / m - (lapSum / m) ** 2 : 0;
  return { brightness, contrast, sharpness };
}

/** Human-readable problems; empty when the image passes every threshold. */
export function qualityProblems(q: QualityMetrics, t: QualityThresholds): string[] {
  const problems: string[] = [];
  if (q.brightness < t.minBrightness) problems.push(`The image is too dark (mean grey ${q.brightness.toFixed(1)} < ${t.minBrightness})`);
  if (q.brightness > t.maxBrightness) problems.push(`The image is too bright (mean grey ${q.brightness.toFixed(1)} > ${t.maxBrightness})`);
  if (q.contrast < t.minContrast) problems.push(`The image has too little contrast (grey std ${q.contrast.toFixed(1)} < ${t.minContrast})`);
  if (q.sharpness < t.minSharpness) problems.push(`The image is too blurred (Laplacian variance ${q.sharpness.toFixed(1)} < ${t.minSharpness})`);
  return problems;
}
