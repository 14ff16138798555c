import { AppError } from '../core/errors.ts';
import type { MediaType } from '../core/result.ts';

// The media type of an upload is decided by its first bytes only. A file name or a Content-Type header is
// whatever the sender typed; trusting either would let a PDF or an SVG reach a decoder that was never
// meant to see it.

const ACCEPTED = 'Accepted types: PNG, JPEG, TIFF (including BigTIFF), DICOM Part 10.';

/** Signatures that identify an accepted type from offset 0, longest first within a type. */
const SIGNATURES: ReadonlyArray<{ mediaType: MediaType; bytes: readonly number[] }> = [
  // PNG 1.2 §12.12 / ISO 15948 §5.2
  { mediaType: 'png', bytes: [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a] },
  // ITU T.81 B.1.1.2: SOI followed by the 0xFF that starts the next marker segment
  { mediaType: 'jpeg', bytes: [0xff, 0xd8, 0xff] },
  // TIFF 6.0 §2 "Image File Header": byte order, then 42
  { mediaType: 'tiff', bytes: [0x49, 0x49, 0x2a, 0x00] },
  { mediaType: 'tiff', bytes: [0x4d, 0x4d, 0x00, 0x2a] },
  // BigTIFF: the same header with version 43
  { mediaType: 'tiff', bytes: [0x49, 0x49, 0x2b, 0x00] },
  { mediaType: 'tiff', bytes: [0x4d, 0x4d, 0x00, 0x2b] },
];

/** PS3.10 §7.1: a 128-byte preamble, then the four bytes "DICM". */
const DICOM_PREFIX_OFFSET = 128;
const DICM = [0x44, 0x49, 0x43, 0x4d];

function startsWith(bytes: Uint8Array, signature: readonly number[], offset = 0): boolean {
  if (bytes.length < offset + signature.length) return false;
  return signature.every((b, i) => bytes[offset + i] === b);
}

/**
 * Identifies PNG, JPEG, TIFF/BigTIFF or DICOM Part 10 from the leading bytes.
 * Throws EMPTY_FILE for no bytes, TRUNCATED_IMAGE when the file stops inside a signature, and
 * UNSUPPORTED_MEDIA_TYPE for anything else, naming what the bytes look like when that is recognisable.
 */
export function sniffMediaType(bytes: Uint8Array): MediaType {
  if (bytes.length === 0) throw new AppError('EMPTY_FILE', 'The file is empty (0 bytes).');

  // DICOM is checked first on purpose: PS3.10 §7.5 lets the preamble hold a TIFF header ("dual
  // personality" files, common for whole-slide DICOM). Such a file must be handled as DICOM so that
  // its patient data goes through DICOM de-identification rather than being read as a plain TIFF.
  if (startsWith(bytes, DICM, DICOM_PREFIX_OFFSET)) return 'dicom';

  for (const { mediaType, bytes: signature } of SIGNATURES) {
    if (startsWith(bytes, signature)) return mediaType;
  }
  for (const { mediaType, bytes: signature } of SIGNATURES) {
    if (bytes.length >= 2 && bytes.length < signature.length && bytes.every((b, i) => signature[i] === b)) {
      throw new AppError('TRUNCATED_IMAGE', `The file starts like a ${mediaType.toUpperCase()} image but ends after ${bytes.length} bytes.`);
    }
  }

  const lookalike = recogniseOther(bytes);
  const what = lookalike ? `looks like ${lookalike.phrase}` : `unrecognised content (first bytes: ${hexPrefix(bytes)})`;
  throw new AppError('UNSUPPORTED_MEDIA_TYPE', `Unsupported file type: ${what}. ${ACCEPTED}`, { details: { detected: lookalike?.kind ?? 'unknown' } });
}

function ascii(bytes: Uint8Array, start: number, length: number): string {
  if (bytes.length < start + length) return '';
  return String.fromCharCode(...bytes.subarray(start, start + length));
}

function hexPrefix(bytes: Uint8Array): string {
  return Array.from(bytes.subarray(0, 8), (b) => b.toString(16).padStart(2, '0')).join(' ');
}

interface Lookalike {
  /** A stable token for API clients (details.detected). */
  kind: string;
  /** Completes "looks like …" in the message. */
  phrase: string;
}

/** Formats people upload by mistake, recognised so the message can say what was sent. */
function recogniseOther(bytes: Uint8Array): Lookalike | undefined {
  if (ascii(bytes, 0, 5) === '%PDF-') return { kind: 'pdf', phrase: 'a PDF document' };
  if (ascii(bytes, 0, 6) === 'GIF87a' || ascii(bytes, 0, 6) === 'GIF89a') return { kind: 'gif', phrase: 'a GIF image' };
  if (ascii(bytes, 0, 4) === 'PK\x03\x04' || ascii(bytes, 0, 4) === 'PK\x05\x06') return { kind: 'zip', phrase: 'a ZIP archive (or an Office document)' };
  if (ascii(bytes, 0, 4) === 'RIFF' && ascii(bytes, 8, 4) === 'WEBP') return { kind: 'webp', phrase: 'a WebP image' };
  if (bytes[0] === 0x1f && bytes[1] === 0x8b) return { kind: 'gzip', phrase: 'a gzip archive' };
  if (ascii(bytes, 4, 4) === 'ftyp') {
    const brand = ascii(bytes, 8, 4);
    if (brand === 'avif' || brand === 'avis') return { kind: 'avif', phrase: 'an AVIF image' };
    if (['heic', 'heix', 'mif1', 'msf1', 'heim', 'heis'].includes(brand)) return { kind: 'heif', phrase: 'a HEIC/HEIF image (export it as JPEG)' };
    return { kind: 'mp4', phrase: 'an MP4/QuickTime video' };
  }
  if (startsWith(bytes, [0xff, 0x4f, 0xff, 0x51]) || startsWith(bytes, [0x00, 0x00, 0x00, 0x0c, 0x6a, 0x50, 0x20, 0x20])) return { kind: 'jpeg2000', phrase: 'a JPEG 2000 image' };
  if (startsWith(bytes, [0xff, 0x0a]) || startsWith(bytes, [0x00, 0x00, 0x00, 0x0c, 0x4a, 0x58, 0x4c, 0x20])) return { kind: 'jpegxl', phrase: 'a JPEG XL image' };
  // BMP's "BM" is too short to trust alone; its header also records the file size.
  if (ascii(bytes, 0, 2) === 'BM' && bytes.length >= 14 && new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getUint32(2, true) === bytes.length) {
    return { kind: 'bmp', phrase: 'a BMP image' };
  }
  if (looksLikeDicomWithoutPreamble(bytes)) {
    return { kind: 'dicom-without-part10-header', phrase: 'a DICOM data set without the Part 10 header (no 128-byte preamble and "DICM"); re-export it as a DICOM Part 10 file' };
  }
  return recogniseText(bytes);
}

function looksLikeDicomWithoutPreamble(bytes: Uint8Array): boolean {
  if (bytes.length < 8 || bytes[1] !== 0x00 || (bytes[0] !== 0x08 && bytes[0] !== 0x02)) return false;
  const vr = ascii(bytes, 4, 2);
  const explicitVr = /^[A-Z]{2}$/.test(vr);
  // Implicit VR: a 32-bit length that fits in the file.
  const implicitLength = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getUint32(4, true);
  return explicitVr || implicitLength <= bytes.length - 8;
}

const TEXT_SAMPLE = 512;

function recogniseText(bytes: Uint8Array): Lookalike | undefined {
  if (startsWith(bytes, [0xff, 0xfe]) || startsWith(bytes, [0xfe, 0xff])) return { kind: 'text', phrase: 'text (UTF-16)' };
  const sample = bytes.subarray(0, TEXT_SAMPLE);
  for (const b of sample) {
    const control = b < 0x20 && b !== 0x09 && b !== 0x0a && b !== 0x0c && b !== 0x0d;
    if (control || b === 0x7f) return undefined;
  }
  // When the sample cuts the file, it may cut a multi-byte character too: allow up to 3 bytes to be dropped.
  const maxCut = bytes.length > TEXT_SAMPLE ? 3 : 0;
  let decoded: string | undefined;
  for (let cut = 0; cut <= maxCut && decoded === undefined; cut++) {
    try {
      decoded = new TextDecoder('utf-8', { fatal: true }).decode(sample.subarray(0, sample.length - cut));
    } catch {
      decoded = undefined;
    }
  }
  if (decoded === undefined) return undefined;
  const head = decoded.replace(/^\uFEFF/, '').trimStart().slice(0, 256).toLowerCase();
  if (head.startsWith('<svg') || (head.startsWith('<?xml') && head.includes('<svg'))) return { kind: 'svg', phrase: 'an SVG drawing (text)' };
  if (head.startsWith('<!doctype html') || head.startsWith('<html')) return { kind: 'html', phrase: 'an HTML page (text)' };
  return { kind: 'text', phrase: 'text' };
}
