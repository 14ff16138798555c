import { decodeDicomRgb as decodeFrame } from '../dicom/pixels.ts';
import type { RgbImage } from './raster.ts';

// DICOM pixels for the upload path (raster.ts): the first frame of any supported transfer syntax to
// 8-bit RGB, through the guarded decoder in src/dicom. Greyscale goes through the Modality LUT and the
// VOI LUT (window) of PS3.3 C.11; colour and palette images are converted to RGB.

/** Decodes the first frame of a DICOM Part 10 file to interleaved 8-bit RGB. */
export async function decodeDicomRgb(bytes: Uint8Array, limits: { maxPixels: number; maxBytes?: number }): Promise<RgbImage> {
  const { data, width, height } = await decodeFrame(bytes, { limits });
  return { data, width, height };
}
