import { AppError } from '../core/errors.ts';
import type { ImageHeader } from './header.ts';

// Size limits applied to the numbers in an image header before any pixel is decoded. A 30000 × 30000
// PNG can be a few kilobytes on disk and 2.7 GB once decoded; refusing it here, from the header, is what
// keeps such a file from ever being inflated (DESIGN.md §5: limits before allocation).

export interface ImageLimits {
  /** Largest width × height × frames accepted (DXFLOW_LIMITS_MAX_PIXELS). */
  maxPixels: number;
  /** Largest file accepted, in bytes (DXFLOW_LIMITS_MAX_BYTES). */
  maxBytes: number;
}

const count = new Intl.NumberFormat('en-US');

/** Throws FILE_TOO_LARGE or IMAGE_TOO_LARGE when the file or the image it declares is over the limits. */
export function checkLimits(header: ImageHeader, bytes: { readonly byteLength: number }, limits: ImageLimits): void {
  if (bytes.byteLength > limits.maxBytes) {
    throw new AppError(
      'FILE_TOO_LARGE',
      `The file is ${count.format(bytes.byteLength)} bytes, above the limit of ${count.format(limits.maxBytes)} bytes (DXFLOW_LIMITS_MAX_BYTES).`,
      { details: { bytes: bytes.byteLength, maxBytes: limits.maxBytes } },
    );
  }
  checkPixelLimit(header, limits.maxPixels);
}

/** Throws IMAGE_TOO_LARGE when width × height × frames is above `maxPixels`. */
export function checkPixelLimit(header: ImageHeader, maxPixels: number): void {
  const frames = header.frames ?? 1;
  // A product of header fields can pass 2^53 and lose precision, but only far above any limit, so the
  // comparison stays right.
  const pixels = header.width * header.height * frames;
  if (pixels > maxPixels) {
    const size = `${header.width} × ${header.height}${frames > 1 ? ` × ${frames} frames` : ''}`;
    throw new AppError(
      'IMAGE_TOO_LARGE',
      `The image is ${size} (${count.format(pixels)} pixels), above the limit of ${count.format(maxPixels)} pixels (DXFLOW_LIMITS_MAX_PIXELS).`,
      { details: { width: header.width, height: header.height, frames, pixels, maxPixels } },
    );
  }
}
