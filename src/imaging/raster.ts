import sharp from 'sharp';
import { AppError } from '../core/errors.ts';
import type { MediaType } from '../core/result.ts';
import { decodeDicomRgb } from './dicom-pixels.ts';
import { type ImageHeader, jpegEndsEarly, pngEndsEarly } from './header.ts';
import { checkPixelLimit } from './limits.ts';
import { sniffMediaType } from './sniff.ts';

// Pixels for models and previews: any accepted image to interleaved 8-bit RGB, and RGB back to PNG.

/** Interleaved 8-bit RGB, row-major, no padding: data.length === width × height × 3. */
export interface RgbImage {
  data: Buffer;
  width: number;
  height: number;
}

/**
 * Decodes the first frame/page of an image to RGB: alpha is flattened onto white, greyscale is
 * replicated to three channels, EXIF/TIFF orientation is applied. The pixel limit is enforced twice:
 * from `header` before anything is decoded, and by sharp's own header check (`limitInputPixels`), so a
 * header that under-reports its size still cannot make the decoder allocate a huge image.
 */
export async function decodeRgb(bytes: Uint8Array, mediaType: MediaType, header: ImageHeader, limits: { maxPixels: number }): Promise<RgbImage> {
  // sharp decodes far more formats than the four accepted (SVG, PDF, GIF, HEIF...). Re-checking the
  // signature here means a mislabelled object can never reach one of those loaders.
  const actual = sniffMediaType(bytes);
  if (actual !== mediaType) {
    throw new AppError('CORRUPT_IMAGE', `The file was recorded as ${mediaType.toUpperCase()} but its bytes are ${actual.toUpperCase()}.`);
  }
  // Only the first frame is decoded, so only its size counts here.
  checkPixelLimit({ width: header.width, height: header.height }, limits.maxPixels);
  if (mediaType === 'dicom') return decodeDicomRgb(bytes, limits);

  try {
    const { data, info } = await sharp(bytes, {
      // 'warning' is the strictest level: besides truncated data, it refuses entropy-coded data that the
      // decoder would otherwise patch over (a corrupt JPEG scan decodes to a plausible but wrong image).
      // An image a model is asked to read must be the image that was taken, so nothing is patched.
      failOn: 'warning',
      limitInputPixels: limits.maxPixels,
      page: 0,
      pages: 1,
      autoOrient: true,
      sequentialRead: true,
    })
      .flatten({ background: '#ffffff' })
      .toColourspace('srgb')
      .raw({ depth: 'uchar' })
      .toBuffer({ resolveWithObject: true });
    if (info.channels !== 3) {
      throw new AppError('INTERNAL', `Decoding produced ${info.channels} channels where 3 (RGB) were expected.`);
    }
    return { data, width: info.width, height: info.height };
  } catch (error) {
    throw decodeError(error, bytes, mediaType, limits.maxPixels);
  }
}

/** Encodes RGB pixels as PNG, for previews and heatmap overlays. */
export async function toPng(rgb: RgbImage): Promise<Buffer> {
  if (rgb.data.length !== rgb.width * rgb.height * 3) {
    throw new AppError('INTERNAL', `RGB buffer holds ${rgb.data.length} bytes, not ${rgb.width} × ${rgb.height} × 3.`);
  }
  return sharp(rgb.data, { raw: { width: rgb.width, height: rgb.height, channels: 3 } }).png().toBuffer();
}

/**
 * libvips messages that mean the data stopped early: libjpeg's "premature end of JPEG file", libvips'
 * own "premature end of JPEG image", libtiff's short strip/tile reads ("got N bytes, expected M").
 * libjpeg's "premature end of data segment" is not one of them: it means a marker appeared inside
 * entropy-coded data, which is damage, not truncation.
 */
const TRUNCATION_MESSAGES = /premature end of JPEG (file|image)|unexpected end|truncated|got \d+ bytes, expected \d+|short read|end of file/i;

/** Maps a libvips/sharp failure to our codes. Only called on the error path. */
function decodeError(error: unknown, bytes: Uint8Array, mediaType: MediaType, maxPixels: number): AppError {
  if (error instanceof AppError) return error;
  const message = error instanceof Error ? error.message : String(error);
  const format = mediaType.toUpperCase();
  if (/exceeds pixel limit/i.test(message)) {
    return new AppError('IMAGE_TOO_LARGE', `The ${format} image is larger than the limit of ${maxPixels} pixels (DXFLOW_LIMITS_MAX_PIXELS).`, { cause: error, details: { maxPixels } });
  }
  // Some decoders report every failure the same way (libpng: "libpng read error"); the file structure
  // then tells truncation from damage: a PNG whose chunks stop before IEND, a JPEG without its EOI.
  const endsEarly = mediaType === 'png' ? pngEndsEarly(bytes) : mediaType === 'jpeg' ? jpegEndsEarly(bytes) : false;
  const reason = message.split('\n')[0]?.trim() ?? message;
  if (TRUNCATION_MESSAGES.test(message) || endsEarly) {
    return new AppError('TRUNCATED_IMAGE', `The ${format} image ends before all its pixel data (${reason}).`, { cause: error });
  }
  return new AppError('CORRUPT_IMAGE', `The ${format} image cannot be decoded (${reason}).`, { cause: error });
}
