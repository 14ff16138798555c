import type { MediaType } from '../../core/result.ts';
import { decodeRgb } from '../../imaging/raster.ts';
import { inspectImage } from '../../imaging/inspect.ts';
import type { RgbImage } from '../../models/preprocess.ts';

export interface ImageLimits {
  maxPixels: number;
  maxBytes: number;
}

// One decode per run: stages of the same run share the decoded pixels of the same input buffer.
const decoded = new WeakMap<Buffer, Promise<RgbImage & { mediaType: MediaType }>>();

export function decodeInput(bytes: Buffer, limits: ImageLimits): Promise<RgbImage & { mediaType: MediaType }> {
  let pending = decoded.get(bytes);
  if (!pending) {
    pending = (async () => {
      const info = inspectImage(bytes, limits);
      const rgb = await decodeRgb(bytes, info.mediaType, info, { maxPixels: limits.maxPixels });
      return { ...rgb, mediaType: info.mediaType };
    })();
    decoded.set(bytes, pending);
  }
  return pending;
}
