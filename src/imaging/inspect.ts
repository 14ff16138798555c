import { MEDIA_MIME, type MediaType } from '../core/result.ts';
import { readImageHeader } from './header.ts';
import { type ImageLimits, checkLimits } from './limits.ts';
import { sniffMediaType } from './sniff.ts';

// What the ingest stage asks of every upload: what it is, how big it is, and whether it may be decoded.
// It reads signatures and headers only and never allocates pixels, so it is safe on hostile input and
// cheap on every request (a DICOM file is walked up to its Pixel Data, no further).

export interface ImageInspection {
  mediaType: MediaType;
  mimeType: string;
  width: number;
  height: number;
  frames: number;
}

/**
 * Sniffs the type, reads the header and applies the limits. Throws EMPTY_FILE, UNSUPPORTED_MEDIA_TYPE,
 * TRUNCATED_IMAGE, CORRUPT_IMAGE, DICOM_PIXELS_UNSUPPORTED (a DICOM data set encoding that cannot be
 * read), FILE_TOO_LARGE or IMAGE_TOO_LARGE.
 */
export function inspectImage(bytes: Uint8Array, limits: ImageLimits): ImageInspection {
  const mediaType = sniffMediaType(bytes);
  const header = readImageHeader(bytes, mediaType);
  checkLimits(header, bytes, limits);
  return { mediaType, mimeType: MEDIA_MIME[mediaType], width: header.width, height: header.height, frames: header.frames ?? 1 };
}
