import sharp from 'sharp';
import type { OnnxManifest } from '../core/manifest.ts';

export interface RgbImage {
  /** Interleaved 8-bit RGB, width × height × 3 bytes. */
  data: Buffer;
  width: number;
  height: number;
}

type Preprocess = OnnxManifest['inputs']['preprocess'];

/**
 * Turns decoded RGB pixels into the model's input tensor as the manifest declares: resize, colour order,
 * scale, per-channel mean/std, NCHW or NHWC. Returns the float data and its dims (batch of one).
 */
export async function toInputTensor(image: RgbImage, p: Preprocess): Promise<{ data: Float32Array; dims: number[] }> {
  const { width, height, fit } = p.resize;
  let pipeline = sharp(image.data, { raw: { width: image.width, height: image.height, channels: 3 } })
    .resize(width, height, { fit, background: { r: 255, g: 255, b: 255 } });
  if (p.colour === 'grey') pipeline = pipeline.greyscale();
  const { data, info } = await pipeline.raw().toBuffer({ resolveWithObject: true });
  const channels = p.colour === 'grey' ? 1 : 3;
  // sharp keeps 3 channels after greyscale() unless told otherwise; read the first of each pixel then.
  const stride = info.channels;
  const plane = width * height;
  const out = new Float32Array(plane * channels);
  const mean = (c: number) => p.mean[c] ?? p.mean[0] ?? 0;
  const std = (c: number) => p.std[c] ?? p.std[0] ?? 1;
  for (let c = 0; c < channels; c++) {
    const source = p.colour === 'bgr' ? 2 - c : c;
    const m = mean(c);
    const s = std(c);
    for (let i = 0; i < plane; i++) {
      const v = ((data[i * stride + source] as number) / p.scale - m) / s;
      if (p.layout === 'nchw') out[c * plane + i] = v;
      else out[i * channels + c] = v;
    }
  }
  const dims = p.layout === 'nchw' ? [1, channels, height, width] : [1, height, width, channels];
  return { data: out, dims };
}

/**
 * Packs a batch of tiles into one input tensor, as toInputTensor would one by one. A tile that already
 * has the model's size skips the resize (the common case: the slide level is chosen so that tiles are
 * read at the model's resolution), which makes packing a single pass over its bytes.
 */
export async function packBatch(images: readonly RgbImage[], p: Preprocess): Promise<{ data: Float32Array; dims: number[] }> {
  const { width, height } = p.resize;
  const channels = p.colour === 'grey' ? 1 : 3;
  const perImage = width * height * channels;
  const out = new Float32Array(perImage * images.length);
  for (const [n, image] of images.entries()) {
    const factor = image.width / width;
    const direct = p.colour !== 'grey' && p.layout === 'nchw' && Number.isInteger(factor) && factor >= 1 && image.height === height * factor;
    if (direct && factor === 1) {
      packRgbNchw(image.data, out, n * perImage, width * height, p);
    } else if (direct && factor <= 4) {
      // A whole-number multiple of the model's size (a slide level coarser levels are missing for):
      // the mean of each factor × factor block, the exact area reduction, in the same single pass.
      packRgbNchw(blockMean(image, factor), out, n * perImage, width * height, p);
    } else {
      out.set((await toInputTensor(image, p)).data, n * perImage);
    }
  }
  const dims = p.layout === 'nchw' ? [images.length, channels, height, width] : [images.length, height, width, channels];
  return { data: out, dims };
}

function blockMean(image: RgbImage, factor: number): Buffer {
  const width = image.width / factor;
  const height = image.height / factor;
  const out = Buffer.alloc(width * height * 3);
  const area = factor * factor;
  const stride = image.width * 3;
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      let r = 0;
      let g = 0;
      let b = 0;
      for (let dy = 0; dy < factor; dy++) {
        let i = (y * factor + dy) * stride + x * factor * 3;
        for (let dx = 0; dx < factor; dx++, i += 3) {
          r += image.data[i] as number;
          g += image.data[i + 1] as number;
          b += image.data[i + 2] as number;
        }
      }
      const o = (y * width + x) * 3;
      out[o] = Math.round(r / area);
      out[o + 1] = Math.round(g / area);
      out[o + 2] = Math.round(b / area);
    }
  }
  return out;
}

function packRgbNchw(rgb: Buffer, out: Float32Array, offset: number, plane: number, p: Preprocess): void {
  const bgr = p.colour === 'bgr';
  for (let c = 0; c < 3; c++) {
    const source = bgr ? 2 - c : c;
    const mean = p.mean[c] ?? p.mean[0] ?? 0;
    const std = p.std[c] ?? p.std[0] ?? 1;
    // (v / scale − mean) / std as one multiply-add per value.
    const gain = 1 / (p.scale * std);
    const bias = -mean / std;
    const base = offset + c * plane;
    for (let i = 0, j = source; i < plane; i++, j += 3) out[base + i] = (rgb[j] as number) * gain + bias;
  }
}
