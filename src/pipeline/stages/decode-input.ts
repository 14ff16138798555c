import type { MediaType } from '../../core/result.ts';
import { decodeDicomRgb } from '../../dicom/pixels.ts';
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
      // DICOM goes through the guarded decoder with both limits: the byte limit also caps what a
      // deflated data set may inflate to.
      if (info.mediaType === 'dicom') {
        const { data, width, height } = await decodeDicomRgb(bytes, { limits: { maxPixels: limits.maxPixels, maxBytes: limits.maxBytes } });
        return { data, width, height, mediaType: info.mediaType };
      }
      const rgb = await decodeRgb(bytes, info.mediaType, info, { maxPixels: limits.maxPixels });
      return { ...rgb, mediaType: info.mediaType };
    })();
    decoded.set(bytes, pending);
  }
  return pending;
}
