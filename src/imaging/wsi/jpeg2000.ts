import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { AppError } from '../../core/errors.ts';

// JPEG 2000 tiles (TIFF compressions 33003, 33005 and 34712) decoded with OpenJPEG compiled to
// WebAssembly (@cornerstonejs/codec-openjpeg). The wasm module is instantiated once, from the file
// shipped in the package, and one decoder object is reused for every tile: its input and output
// buffers live in wasm memory and are overwritten by the next tile, so memory stays flat however
// many tiles are decoded.
//
// The codec reports failures only by printing "[ERROR] …" and returning, leaving the previous tile's
// output in place; its print hook is therefore captured, and any error line fails the tile.

interface FrameInfo {
  width: number;
  height: number;
  bitsPerSample: number;
  componentCount: number;
  isSigned: boolean;
}

interface J2KDecoder {
  getEncodedBuffer(length: number): Uint8Array;
  getDecodedBuffer(): Uint8ClampedArray;
  decode(): void;
  getFrameInfo(): FrameInfo;
  /** OpenJPEG's OPJ_COLOR_SPACE after decoding: 0 unspecified, 1 sRGB, 2 grey, 3 sYCC, … */
  getColorSpace(): number;
  delete(): void;
}

interface OpenJpegModule {
  J2KDecoder: new () => J2KDecoder;
}

type ModuleFactory = (options: { wasmBinary: Uint8Array; print: (text: string) => void; printErr: (text: string) => void }) => Promise<OpenJpegModule>;

const OPJ_CLRSPC_SRGB = 1;
/** What to do, appended to every message about an undecodable tile. */
const ADVICE = 'the slide file is damaged or was written by an unsupported JPEG 2000 encoder; re-export or re-scan the slide.';

let codec: Promise<{ decoder: J2KDecoder }> | undefined;
const messages: string[] = [];

function loadCodec(): Promise<{ decoder: J2KDecoder }> {
  if (codec === undefined) {
    const loading = (async () => {
      const require = createRequire(import.meta.url);
      const factory = require('@cornerstonejs/codec-openjpeg/decodewasmjs') as ModuleFactory;
      // The wasm bytes are handed over directly so that the module never tries to locate or fetch them.
      const wasmBinary = readFileSync(require.resolve('@cornerstonejs/codec-openjpeg/decodewasm'));
      const record = (text: string): void => { messages.push(text); };
      const module = await factory({ wasmBinary, print: record, printErr: record });
      return { decoder: new module.J2KDecoder() };
    })();
    // A failed load (e.g. a missing package file) is retried on the next tile rather than cached.
    loading.catch(() => { if (codec === loading) codec = undefined; });
    codec = loading;
  }
  return codec;
}

/** The codec instance is discarded after a wasm trap; the next tile instantiates a fresh one. */
function discardCodec(): void {
  const current = codec;
  codec = undefined;
  void current?.then(({ decoder }) => { try { decoder.delete(); } catch { /* the module is already dead */ } }, () => {});
}

interface CodestreamHeader {
  width: number;
  height: number;
  components: { bits: number; signed: boolean; dx: number; dy: number }[];
  offsetX: number;
  offsetY: number;
  /** Size of the codestream's own tiles (one tile, as big as the image, in slide files). */
  gridWidth: number;
  gridHeight: number;
}

/** More codestream tiles than this in one TIFF tile can only be hostile: each costs decoder set-up. */
const MAX_CODESTREAM_TILES = 4096;

function corrupt(where: string, problem: string, cause?: unknown): AppError {
  return new AppError('CORRUPT_IMAGE', `A JPEG 2000 tile of ${where} cannot be decoded: ${problem}; ${ADVICE}`, cause === undefined ? {} : { cause });
}

/** Where the codestream starts: at 0 for a raw J2K stream, inside the jp2c box for a JP2 file. */
function codestreamStart(bytes: Buffer, where: string): number {
  if (bytes.length >= 4 && bytes.readUInt32BE(0) === 0xff4fff51) return 0;
  const jp2Signature = bytes.length >= 12 && bytes.readUInt32BE(0) === 12 && bytes.toString('latin1', 4, 8) === 'jP  ';
  if (!jp2Signature) throw corrupt(where, 'it is neither a J2K codestream (SOC, SIZ markers) nor a JP2 file');
  let at = 0;
  while (at + 8 <= bytes.length) {
    let length = bytes.readUInt32BE(at);
    let header = 8;
    if (length === 1) {
      if (at + 16 > bytes.length) break;
      length = Number(bytes.readBigUInt64BE(at + 8));
      header = 16;
    } else if (length === 0) {
      length = bytes.length - at;
    }
    if (bytes.toString('latin1', at + 4, at + 8) === 'jp2c') return at + header;
    if (length < header) break;
    at += length;
  }
  throw corrupt(where, 'the JP2 file has no contiguous codestream box');
}

/**
 * The SIZ marker segment (ISO/IEC 15444-1 A.5.1), right after SOC: Lsiz, Rsiz, then Xsiz, Ysiz, XOsiz,
 * YOsiz (bytes 8–23 of the codestream), the tiling, Csiz (byte 40), and 3 bytes per component.
 */
function readSiz(bytes: Buffer, where: string): CodestreamHeader {
  const at = codestreamStart(bytes, where);
  if (at + 42 > bytes.length || bytes.readUInt32BE(at) !== 0xff4fff51) throw corrupt(where, 'the codestream does not start with SOC and SIZ markers');
  const count = bytes.readUInt16BE(at + 40);
  if (at + 42 + 3 * count > bytes.length) throw corrupt(where, 'the SIZ marker segment is cut short');
  const components = [];
  for (let c = 0; c < count; c++) {
    const ssiz = bytes[at + 42 + 3 * c] ?? 0;
    components.push({ bits: (ssiz & 0x7f) + 1, signed: (ssiz & 0x80) !== 0, dx: bytes[at + 43 + 3 * c] ?? 0, dy: bytes[at + 44 + 3 * c] ?? 0 });
  }
  return {
    width: bytes.readUInt32BE(at + 8),
    height: bytes.readUInt32BE(at + 12),
    offsetX: bytes.readUInt32BE(at + 16),
    offsetY: bytes.readUInt32BE(at + 20),
    gridWidth: bytes.readUInt32BE(at + 24),
    gridHeight: bytes.readUInt32BE(at + 28),
    components,
  };
}

/**
 * Checks what the codec can turn into 8-bit pixels, before it allocates anything: the image must fit
 * the tile (which also bounds the memory a hostile header can ask for), start at the grid origin (the
 * codec sizes its output from the far corner), and have 1 or 3 unsigned 8-bit components with full-size
 * luma and chroma that is full size or halved (4:2:2, 4:2:0), the layouts the codec's interleaving handles.
 */
function checkHeader(header: CodestreamHeader, tileWidth: number, tileHeight: number, where: string): void {
  const { width, height, components } = header;
  if (header.offsetX !== 0 || header.offsetY !== 0) throw corrupt(where, `the image area starts at (${header.offsetX}, ${header.offsetY}) instead of the origin, which is not supported`);
  if (width === 0 || height === 0 || width > tileWidth || height > tileHeight) throw corrupt(where, `the codestream is ${width}×${height} pixels but the tile is ${tileWidth}×${tileHeight}`);
  const tiles = header.gridWidth === 0 || header.gridHeight === 0 ? Infinity : Math.ceil(width / header.gridWidth) * Math.ceil(height / header.gridHeight);
  if (tiles > MAX_CODESTREAM_TILES) throw corrupt(where, `the codestream is split into ${tiles} tiles of ${header.gridWidth}×${header.gridHeight} pixels`);
  if (components.length !== 1 && components.length !== 3) throw corrupt(where, `it has ${components.length} components; 1 (grey) or 3 (colour) are supported`);
  for (const c of components) {
    if (c.bits !== 8 || c.signed) throw corrupt(where, `it has ${c.signed ? 'signed ' : ''}${c.bits}-bit components; only unsigned 8-bit ones are supported`);
  }
  const sampling = components.map((c) => `${c.dx}×${c.dy}`).join(', ');
  const [first, second, third] = components;
  const chromaOk = second === undefined || (second.dx === third?.dx && second.dy === third.dy && (second.dx === 1 || second.dx === 2) && (second.dy === 1 || second.dy === second.dx));
  if (first?.dx !== 1 || first.dy !== 1 || !chromaOk) throw corrupt(where, `its component sampling (${sampling}) is not supported; full-size, 4:2:2 or 4:2:0 chroma is`);
}

/**
 * OpenSlide's YCbCr → RGB (openslide-decode-jp2k.c with the tables of make-tables.c): JFIF equations
 * with the red and blue chroma terms rounded to integers, and green in 16.16 fixed point with the
 * rounding folded into the Cb term. Using the same arithmetic gives the same pixels as OpenSlide.
 */
const R_CR = new Int16Array(256);
const G_CB = new Int32Array(256);
const G_CR = new Int32Array(256);
const B_CB = new Int16Array(256);
{
  // C's round(): halves away from zero.
  const round = (v: number): number => Math.sign(v) * Math.round(Math.abs(v));
  for (let i = 0; i < 256; i++) {
    R_CR[i] = round(1.402 * (i - 128));
    G_CB[i] = round(65536 * (0.5 - 0.34414 * (i - 128)));
    G_CR[i] = round(65536 * -0.71414 * (i - 128));
    B_CB[i] = round(1.772 * (i - 128));
  }
}

/** Converts interleaved YCbCr to RGB in place. */
function ycbcrToRgb(pixels: Buffer): void {
  for (let i = 0; i + 2 < pixels.length; i += 3) {
    const y = pixels[i] ?? 0;
    const cb = pixels[i + 1] ?? 0;
    const cr = pixels[i + 2] ?? 0;
    // Buffer writes wrap modulo 256, so clamp first as OpenSlide's CLAMP does.
    pixels[i] = Math.min(255, Math.max(0, y + (R_CR[cr] ?? 0)));
    pixels[i + 1] = Math.min(255, Math.max(0, y + (((G_CB[cb] ?? 0) + (G_CR[cr] ?? 0)) >> 16)));
    pixels[i + 2] = Math.min(255, Math.max(0, y + (B_CB[cb] ?? 0)));
  }
}

export interface Jpeg2000Options {
  /** The three components are Y, Cb, Cr (Aperio 33003, or Photometric YCbCr) and are converted to RGB. */
  ycbcr: boolean;
  /** Names where the tile is in error messages, e.g. "the directory at byte 1234". */
  where: string;
}

/**
 * Decodes one JPEG 2000 tile (raw J2K codestream or JP2 file) to interleaved 8-bit RGB of exactly
 * width × height pixels. Grey codestreams are expanded to RGB; a codestream smaller than the tile
 * (some writers encode edge tiles at the size of the image part) is placed top-left on white.
 */
export async function decodeJpeg2000(bytes: Buffer, width: number, height: number, options: Jpeg2000Options): Promise<Buffer> {
  const header = readSiz(bytes, options.where);
  checkHeader(header, width, height, options.where);
  const { decoder } = await loadCodec();
  let decoded: Uint8ClampedArray;
  let frame: FrameInfo;
  let colourSpace: number;
  messages.length = 0;
  try {
    decoder.getEncodedBuffer(bytes.length).set(bytes);
    decoder.decode();
    frame = decoder.getFrameInfo();
    colourSpace = decoder.getColorSpace();
    decoded = decoder.getDecodedBuffer();
  } catch (e) {
    // A wasm trap (out of bounds, out of memory) leaves the module unusable.
    discardCodec();
    throw corrupt(options.where, `the decoder stopped (${(e as Error).message})`, e);
  }
  const errors = messages.filter((m) => m.startsWith('[ERROR]')).map((m) => m.slice('[ERROR]'.length).trim());
  messages.length = 0;
  if (errors.length > 0) throw corrupt(options.where, `OpenJPEG: ${errors.join('; ')}`);
  const channels = frame.componentCount;
  if (frame.width !== header.width || frame.height !== header.height || (channels !== 1 && channels !== 3) || frame.bitsPerSample !== 8
    || decoded.length !== header.width * header.height * channels) {
    throw corrupt(options.where, `it decodes to ${frame.width}×${frame.height}×${channels} at ${frame.bitsPerSample} bits, not the ${header.width}×${header.height} 8-bit image its header declares`);
  }
  // getDecodedBuffer returns a copy outside wasm memory, so it can be used as is.
  let pixels = Buffer.from(decoded.buffer, decoded.byteOffset, decoded.byteLength);
  if (channels === 1) {
    const rgb = Buffer.allocUnsafe(pixels.length * 3);
    for (let p = 0; p < pixels.length; p++) {
      const v = pixels[p] ?? 0;
      rgb[p * 3] = v;
      rgb[p * 3 + 1] = v;
      rgb[p * 3 + 2] = v;
    }
    pixels = rgb;
  } else if (options.ycbcr && colourSpace !== OPJ_CLRSPC_SRGB) {
    // The codec itself converts subsampled chroma, and JP2 files declaring sYCC, to RGB (and then
    // reports sRGB); only components still in YCbCr are converted here.
    ycbcrToRgb(pixels);
  }
  if (header.width === width && header.height === height) return pixels;
  const out = Buffer.alloc(width * height * 3, 255);
  for (let y = 0; y < header.height; y++) pixels.copy(out, y * width * 3, y * header.width * 3, (y + 1) * header.width * 3);
  return out;
}
