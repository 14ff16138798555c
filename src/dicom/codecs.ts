import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { AppError } from '../core/errors.ts';
import type { Deadline } from './guard.ts';

// Decoders for the compressed DICOM transfer syntaxes: JPEG baseline/extended (libjpeg-turbo),
// JPEG-LS (CharLS) and JPEG 2000 (OpenJPEG), all WebAssembly builds from @cornerstonejs, JPEG lossless
// (jpeg-lossless-decoder-js, plain JavaScript), and RLE Lossless (PS3.5 Annex G, here).
//
// Every codestream's own header is read and checked against the DICOM header before a codec sees it:
// its size, component count and precision must be the ones the DICOM attributes declare, and those were
// checked against the pixel limit. A codec therefore never allocates more than the frame it was meant
// to decode, whatever the file says. The WebAssembly modules are instantiated once, from the files in
// the packages, with one decoder object each, reused (src/imaging/wsi/jpeg2000.ts does the same); a
// module that traps is discarded and instantiated afresh for the next frame.

/** What the DICOM header says a frame is, for checking a codestream against it. */
export interface FrameExpectation {
  rows: number;
  columns: number;
  samples: number;
  bitsAllocated: number;
  bitsStored: number;
  /** "frame 3" — named in messages. */
  what: string;
}

/** Decoded samples, interleaved by pixel, as unsigned bit patterns of 8 or 16 bits. */
export interface DecodedSamples {
  data: Uint8Array | Uint16Array;
  /** The colour space the codec produced, when it converted (libjpeg-turbo's YCbCr → RGB, OpenJPEG's inverse MCT). */
  convertedTo?: 'RGB';
}

function corrupt(expect: FrameExpectation, codec: string, problem: string, cause?: unknown): AppError {
  return new AppError(
    'CORRUPT_IMAGE',
    `The ${codec} data of DICOM ${expect.what} cannot be decoded: ${problem}; the file is damaged or was written by a faulty encoder. Re-export it from the source system.`,
    cause === undefined ? {} : { cause },
  );
}

function unsupported(problem: string, details?: Record<string, unknown>): AppError {
  return new AppError('DICOM_PIXELS_UNSUPPORTED', `${problem}; decompress the file first (e.g. dcmdjpeg, dcmdjpls or dcmdrle from dcmtk) or send a PNG export.`, details ? { details } : {});
}

// --- WebAssembly codecs ----------------------------------------------------------------------------

interface WasmFrameInfo {
  width: number;
  height: number;
  bitsPerSample: number;
  componentCount: number;
  isSigned: boolean;
}

interface WasmDecoder {
  getEncodedBuffer(length: number): Uint8Array;
  getDecodedBuffer(): Uint8Array;
  decode(): void;
  getFrameInfo(): WasmFrameInfo;
  delete(): void;
}

interface CharlsDecoder extends WasmDecoder {
  /** 0: planes one after the other (none), 1: by line, 2: by sample. */
  getInterleaveMode(): number;
}

interface OpenJpegDecoder extends WasmDecoder {
  getColorSpace(): number;
}

interface WasmModule {
  [className: string]: unknown;
  /** CharLS only: the message of a C++ exception thrown across the boundary (its pointer). */
  getExceptionMessage?: (pointer: unknown) => string;
}

type ModuleFactory = (options: { wasmBinary: Uint8Array; print: (text: string) => void; printErr: (text: string) => void }) => Promise<WasmModule>;

interface LoadedCodec<D> {
  module: WasmModule;
  decoder: D;
  /** Lines the codec printed since the last decode (OpenJPEG reports errors only this way). */
  messages: string[];
}

class WasmCodec<D extends WasmDecoder> {
  private readonly pkg: string;
  private readonly className: string;
  private loading: Promise<LoadedCodec<D>> | undefined;

  constructor(pkg: string, className: string) {
    this.pkg = pkg;
    this.className = className;
  }

  get(): Promise<LoadedCodec<D>> {
    if (this.loading === undefined) {
      const loading = (async () => {
        const require = createRequire(import.meta.url);
        const factory = require(`${this.pkg}/decodewasmjs`) as ModuleFactory;
        // The wasm bytes are handed over directly so the module never tries to locate or fetch them.
        const wasmBinary = readFileSync(require.resolve(`${this.pkg}/decodewasm`));
        const messages: string[] = [];
        const record = (text: string): void => {
          if (messages.length < 100) messages.push(text);
        };
        const module = await factory({ wasmBinary, print: record, printErr: record });
        const Decoder = module[this.className] as new () => D;
        return { module, decoder: new Decoder(), messages };
      })();
      // A failed load (a missing package file) is retried on the next frame rather than cached.
      loading.catch(() => {
        if (this.loading === loading) this.loading = undefined;
      });
      this.loading = loading;
    }
    return this.loading;
  }

  /** After a trap the module's memory is in an unknown state; the next frame gets a fresh instance. */
  discard(): void {
    const current = this.loading;
    this.loading = undefined;
    void current?.then(({ decoder }) => {
      try {
        decoder.delete();
      } catch {
        /* the module is already dead */
      }
    }, () => {});
  }

  /** Runs one decode; returns the frame info and a copy of the output (the original lives in wasm memory). */
  async decode(input: Uint8Array, expect: FrameExpectation, name: string): Promise<{ info: WasmFrameInfo; output: Uint8Array; decoder: D; messages: string[] }> {
    const loaded = await this.get();
    const { decoder, messages, module } = loaded;
    messages.length = 0;
    try {
      decoder.getEncodedBuffer(input.length).set(input);
      decoder.decode();
      const info = decoder.getFrameInfo();
      // A copy: the decoded buffer lives in wasm memory (and may be a Uint8ClampedArray).
      const decoded = decoder.getDecodedBuffer();
      const output = new Uint8Array(decoded.length);
      output.set(decoded);
      return { info, output, decoder, messages: messages.splice(0) };
    } catch (error) {
      // A wasm trap (RuntimeError: out of bounds, unreachable) or exhausted memory (RangeError).
      if (error instanceof Error && (error.name === 'RuntimeError' || error instanceof RangeError)) {
        this.discard();
        throw corrupt(expect, name, `the decoder stopped (${error.message})`, error);
      }
      // C++ exceptions arrive as a number (a pointer); CharLS can turn it into its message.
      const reason = typeof error === 'number' && module.getExceptionMessage ? module.getExceptionMessage(error) : error instanceof Error ? error.message : 'the decoder rejected the data';
      throw corrupt(expect, name, reason, error);
    }
  }
}

const libjpegTurbo = new WasmCodec<WasmDecoder>('@cornerstonejs/codec-libjpeg-turbo-8bit', 'JPEGDecoder');
const charls = new WasmCodec<CharlsDecoder>('@cornerstonejs/codec-charls', 'JpegLSDecoder');
const openjpeg = new WasmCodec<OpenJpegDecoder>('@cornerstonejs/codec-openjpeg', 'J2KDecoder');

/** Checks a codec's output size and returns it as 8- or 16-bit samples (little-endian bytes from wasm). */
function samplesOf(output: Uint8Array, info: WasmFrameInfo, expect: FrameExpectation, name: string): Uint8Array | Uint16Array {
  const bytesPerSample = info.bitsPerSample > 8 ? 2 : 1;
  const expected = expect.rows * expect.columns * expect.samples * bytesPerSample;
  if (info.width !== expect.columns || info.height !== expect.rows || info.componentCount !== expect.samples || output.length !== expected) {
    throw corrupt(expect, name, `it decoded to ${info.width}×${info.height}×${info.componentCount} (${output.length} bytes), not the ${expect.columns}×${expect.rows}×${expect.samples} the header declares`);
  }
  if (bytesPerSample === 1) return output;
  // The copy is aligned (slice() starts a new buffer); wasm memory is little-endian like every host Node runs on.
  return new Uint16Array(output.buffer, output.byteOffset, output.length / 2);
}

// --- JPEG marker segments (ITU-T T.81 Annex B, T.87 for JPEG-LS) ------------------------------------

interface JpegHeader {
  /** The start-of-frame marker's second byte: C0–CF (T.81) or F7 (JPEG-LS SOF55). */
  sof: number;
  precision: number;
  width: number;
  height: number;
  components: number;
  /** Offset of the 0xFF of a JFIF APP0 segment, if any. */
  jfifAt?: number;
  /** Offset of the transform byte of an Adobe APP14 segment, if any (0 RGB, 1 YCbCr, 2 YCCK). */
  adobeTransformAt?: number;
}

function isStartOfFrame(marker: number): boolean {
  return (marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 && marker !== 0xcc) || marker === 0xf7;
}

/** Reads the marker segments from SOI to the first SOS, checking every length against the data. */
export function readJpegHeader(bytes: Uint8Array, expect: FrameExpectation, name: string): JpegHeader {
  if (bytes[0] !== 0xff || bytes[1] !== 0xd8) throw corrupt(expect, name, 'it does not start with a start-of-image (SOI) marker');
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const found: Partial<JpegHeader> = {};
  let at = 2;
  for (;;) {
    if (at >= bytes.length) throw corrupt(expect, name, 'it ends before its first scan');
    if (bytes[at] !== 0xff) throw corrupt(expect, name, `byte ${at} is 0x${(bytes[at] ?? 0).toString(16)} where a marker should start`);
    while (bytes[at] === 0xff) at++; // B.1.1.2: fill bytes
    const marker = bytes[at] ?? 0;
    at++;
    if (marker === 0x01 || (marker >= 0xd0 && marker <= 0xd7)) continue; // TEM, RSTn: no length
    if (marker === 0xda) {
      if (found.sof === undefined) throw corrupt(expect, name, 'a scan starts before any frame header (SOF)');
      return found as JpegHeader;
    }
    if (marker === 0x00 || marker === 0xd8 || marker === 0xd9) throw corrupt(expect, name, `marker 0xFF${marker.toString(16).toUpperCase()} at byte ${at - 1} comes before the first scan`);
    if (at + 2 > bytes.length) throw corrupt(expect, name, 'it ends inside a marker segment');
    const length = view.getUint16(at);
    if (length < 2 || at + length > bytes.length) throw corrupt(expect, name, `the marker segment at byte ${at - 2} declares ${length} bytes, which the data does not hold`);
    if (isStartOfFrame(marker)) {
      const components = length >= 8 ? (bytes[at + 7] ?? 0) : 0;
      if (length < 8 || components === 0 || length < 8 + 3 * components) throw corrupt(expect, name, `its frame header at byte ${at - 2} is malformed`);
      Object.assign(found, { sof: marker, precision: bytes[at + 2] ?? 0, height: view.getUint16(at + 3), width: view.getUint16(at + 5), components });
    } else if (marker === 0xe0 && length >= 7 && String.fromCharCode(...bytes.subarray(at + 2, at + 7)) === 'JFIF\0') {
      found.jfifAt = at - 2;
    } else if (marker === 0xee && length >= 14 && String.fromCharCode(...bytes.subarray(at + 2, at + 7)) === 'Adobe') {
      found.adobeTransformAt = at + 13;
    }
    at += length;
  }
}

/** Checks the frame header against the DICOM header: the codec will allocate what the stream declares. */
function checkJpegFrame(header: JpegHeader, expect: FrameExpectation, name: string): void {
  if (header.height === 0) throw unsupported(`The ${name} data of DICOM ${expect.what} defines its height in a later DNL marker, which is not supported`);
  if (header.width !== expect.columns || header.height !== expect.rows || header.components !== expect.samples) {
    throw corrupt(expect, name, `its frame header says ${header.width}×${header.height} with ${header.components} component(s), but the DICOM header declares ${expect.columns}×${expect.rows} with ${expect.samples}`);
  }
  if (header.precision > expect.bitsAllocated || header.precision < 2) {
    throw corrupt(expect, name, `its sample precision is ${header.precision} bits, which does not fit BitsAllocated ${expect.bitsAllocated}`);
  }
}

const ADOBE_SEGMENT_LENGTH = 16;

/**
 * How libjpeg-turbo should treat three components, as DICOM says (PS3.5 §8.2.1): colour-transformed
 * (YBR_FULL, YBR_FULL_422: convert to RGB) or not (RGB). libjpeg-turbo decides from a JFIF marker
 * (YCbCr), else an Adobe marker's transform flag, else the component ids; the stream is rewritten so
 * its markers say what the Photometric Interpretation says. An RGB stream that carries its own Adobe
 * marker keeps it, as pydicom and GDCM do: the encoder's statement about its own data wins there.
 */
function withColourTransform(bytes: Uint8Array, header: JpegHeader, transform: 0 | 1): Uint8Array {
  if (header.adobeTransformAt !== undefined) {
    if (transform === 0) return bytes;
    const copy = Uint8Array.from(bytes);
    copy[header.adobeTransformAt] = transform;
    return copy;
  }
  // Insert an Adobe APP14 segment after SOI: length 14, "Adobe", version 100, flags 0, 0, transform.
  const adobe = Uint8Array.of(0xff, 0xee, 0x00, 0x0e, 0x41, 0x64, 0x6f, 0x62, 0x65, 0x00, 0x64, 0x00, 0x00, 0x00, 0x00, transform);
  const out = new Uint8Array(bytes.length + ADOBE_SEGMENT_LENGTH);
  out.set(bytes.subarray(0, 2));
  out.set(adobe, 2);
  out.set(bytes.subarray(2), 2 + ADOBE_SEGMENT_LENGTH);
  // A JFIF marker would override the Adobe one (it implies YCbCr); renamed to APP15 it is skipped.
  if (header.jfifAt !== undefined && transform === 0) out[header.jfifAt + ADOBE_SEGMENT_LENGTH + 1] = 0xef;
  return out;
}

/** JPEG Baseline and Extended with 8-bit samples, through libjpeg-turbo. */
async function decodeJpegDct(bytes: Uint8Array, header: JpegHeader, expect: FrameExpectation, photometric: string): Promise<DecodedSamples> {
  const name = 'JPEG';
  if (header.precision !== 8) {
    throw unsupported(`DICOM ${expect.what} is ${header.precision}-bit JPEG Extended (Process 4), which is not decoded (only 8-bit JPEG Baseline/Extended is)`, { precision: header.precision });
  }
  let input = bytes;
  if (expect.samples === 3) {
    if (photometric === 'RGB') {
      if (header.adobeTransformAt === undefined) input = withColourTransform(bytes, header, 0);
    } else if (photometric.startsWith('YBR_')) {
      input = withColourTransform(bytes, header, 1);
    }
  }
  const { info, output } = await libjpegTurbo.decode(input, expect, name);
  const samples = samplesOf(output, info, expect, name);
  return expect.samples === 3 ? { data: samples, convertedTo: 'RGB' } : { data: samples };
}

// --- JPEG Lossless (Process 14) ---------------------------------------------------------------------

interface LosslessDecoder {
  decode(buffer: ArrayBuffer, offset: number, length: number, numBytes?: number): Uint8Array | Uint16Array;
}

let LosslessDecoderClass: (new () => LosslessDecoder) | undefined;

function decodeJpegLossless(bytes: Uint8Array, header: JpegHeader, expect: FrameExpectation): DecodedSamples {
  const name = 'JPEG Lossless';
  if (expect.samples !== 1 && header.precision > 8) {
    throw unsupported(`DICOM ${expect.what} is ${header.precision}-bit colour JPEG Lossless, which is not decoded (colour is decoded at 8 bits)`);
  }
  if (LosslessDecoderClass === undefined) {
    const require = createRequire(import.meta.url);
    LosslessDecoderClass = (require('jpeg-lossless-decoder-js') as { Decoder: new () => LosslessDecoder }).Decoder;
  }
  const copy = Uint8Array.from(bytes); // the decoder reads from an ArrayBuffer of its own
  let decoded: Uint8Array | Uint16Array;
  try {
    decoded = new LosslessDecoderClass().decode(copy.buffer, 0, copy.length, header.precision > 8 ? 2 : 1);
  } catch (error) {
    throw corrupt(expect, name, error instanceof Error ? error.message : String(error), error);
  }
  const expected = expect.rows * expect.columns * expect.samples;
  if (decoded.length !== expected) throw corrupt(expect, name, `it decoded to ${decoded.length} samples, not ${expected}`);
  return { data: decoded };
}

// --- JPEG-LS ----------------------------------------------------------------------------------------

async function decodeJpegLs(bytes: Uint8Array, expect: FrameExpectation): Promise<DecodedSamples> {
  const name = 'JPEG-LS';
  const { info, output, decoder } = await charls.decode(bytes, expect, name);
  const samples = samplesOf(output, info, expect, name);
  // Interleave mode "none" leaves the three components as planes; the rest of the pipeline wants pixels.
  if (expect.samples === 3 && decoder.getInterleaveMode() === 0) return { data: planarToInterleaved(samples) };
  return { data: samples };
}

export function planarToInterleaved<T extends Uint8Array | Uint16Array | Uint32Array>(planar: T): T {
  const pixels = planar.length / 3;
  const n = planar.length;
  const out = (planar instanceof Uint16Array ? new Uint16Array(n) : planar instanceof Uint32Array ? new Uint32Array(n) : new Uint8Array(n)) as T;
  for (let i = 0; i < pixels; i++) {
    out[3 * i] = planar[i] ?? 0;
    out[3 * i + 1] = planar[pixels + i] ?? 0;
    out[3 * i + 2] = planar[2 * pixels + i] ?? 0;
  }
  return out;
}

// --- JPEG 2000 (ISO/IEC 15444-1) ---------------------------------------------------------------------

/** More codestream tiles than this in one frame can only be hostile: each costs decoder set-up. */
const MAX_J2K_TILES = 4096;

/** Where the codestream starts: at 0 for a raw codestream (PS3.5 A.4.4), inside jp2c for a JP2 file. */
function codestreamStart(bytes: Uint8Array, expect: FrameExpectation): number {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (bytes.length >= 4 && view.getUint32(0) === 0xff4fff51) return 0;
  const jp2 = bytes.length >= 12 && view.getUint32(0) === 12 && String.fromCharCode(...bytes.subarray(4, 8)) === 'jP  ';
  if (!jp2) throw corrupt(expect, 'JPEG 2000', 'it is neither a J2K codestream (SOC, SIZ markers) nor a JP2 file');
  let at = 0;
  while (at + 8 <= bytes.length) {
    let length = view.getUint32(at);
    let headerLength = 8;
    if (length === 1) {
      if (at + 16 > bytes.length) break;
      length = Number(view.getBigUint64(at + 8));
      headerLength = 16;
    } else if (length === 0) {
      length = bytes.length - at;
    }
    if (String.fromCharCode(...bytes.subarray(at + 4, at + 8)) === 'jp2c') return at + headerLength;
    if (length < headerLength) break;
    at += length;
  }
  throw corrupt(expect, 'JPEG 2000', 'the JP2 file has no contiguous codestream box');
}

/** The SIZ marker segment (A.5.1), checked against the DICOM header before OpenJPEG allocates anything. */
function checkJ2kHeader(bytes: Uint8Array, expect: FrameExpectation): { precision: number; signed: boolean } {
  const name = 'JPEG 2000';
  const at = codestreamStart(bytes, expect);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (at + 42 > bytes.length || view.getUint32(at) !== 0xff4fff51) throw corrupt(expect, name, 'the codestream does not start with SOC and SIZ markers');
  const width = view.getUint32(at + 8) - view.getUint32(at + 16);
  const height = view.getUint32(at + 12) - view.getUint32(at + 20);
  const tileWidth = view.getUint32(at + 24);
  const tileHeight = view.getUint32(at + 28);
  const count = view.getUint16(at + 40);
  if (at + 42 + 3 * count > bytes.length) throw corrupt(expect, name, 'the SIZ marker segment is cut short');
  if (width !== expect.columns || height !== expect.rows || count !== expect.samples) {
    throw corrupt(expect, name, `its SIZ marker says ${width}×${height} with ${count} component(s), but the DICOM header declares ${expect.columns}×${expect.rows} with ${expect.samples}`);
  }
  const tiles = tileWidth === 0 || tileHeight === 0 ? Infinity : Math.ceil(view.getUint32(at + 8) / tileWidth) * Math.ceil(view.getUint32(at + 12) / tileHeight);
  if (tiles > MAX_J2K_TILES) throw corrupt(expect, name, `the codestream is split into ${tiles} tiles of ${tileWidth}×${tileHeight}`);
  const components = Array.from({ length: count }, (_, c) => ({ ssiz: bytes[at + 42 + 3 * c] ?? 0, dx: bytes[at + 43 + 3 * c] ?? 0, dy: bytes[at + 44 + 3 * c] ?? 0 }));
  const precision = (components[0]?.ssiz ?? 0) % 128 + 1;
  for (const c of components) {
    if (c.ssiz !== components[0]?.ssiz || c.dx !== 1 || c.dy !== 1) throw unsupported(`DICOM ${expect.what} is JPEG 2000 with components of different precision or sampling, which is not decoded`);
  }
  if (precision > 16 || precision > expect.bitsAllocated) throw corrupt(expect, name, `its samples have ${precision} bits, which does not fit BitsAllocated ${expect.bitsAllocated}`);
  return { precision, signed: (components[0]?.ssiz ?? 0) >= 128 };
}

async function decodeJ2k(bytes: Uint8Array, expect: FrameExpectation): Promise<DecodedSamples & { precision: number; signed: boolean }> {
  const name = 'JPEG 2000';
  const header = checkJ2kHeader(bytes, expect);
  const { info, output, messages } = await openjpeg.decode(bytes, expect, name);
  // OpenJPEG reports failures only by printing "[ERROR] …" and returning.
  const errors = messages.filter((m) => m.startsWith('[ERROR]')).map((m) => m.slice('[ERROR]'.length).trim());
  if (errors.length > 0) throw corrupt(expect, name, `OpenJPEG: ${errors.join('; ')}`);
  const samples = samplesOf(output, info, expect, name);
  // With a multiple-component transform in the codestream OpenJPEG has already returned RGB.
  return { data: samples, precision: header.precision, signed: header.signed };
}

// --- dispatch for the JPEG family --------------------------------------------------------------------

export type CompressedEncoding = 'jpeg' | 'jpeg-lossless' | 'jpeg-ls' | 'jpeg2000';

/**
 * Decodes one compressed frame. The JPEG process is taken from the stream's own frame header (a file
 * labelled JPEG Baseline whose stream is lossless is decoded as what it is).
 */
export async function decodeCompressedFrame(encoding: CompressedEncoding, bytes: Uint8Array, expect: FrameExpectation, photometric: string): Promise<DecodedSamples & { precision?: number; signed?: boolean }> {
  if (encoding === 'jpeg2000') return decodeJ2k(bytes, expect);
  const name = encoding === 'jpeg-ls' ? 'JPEG-LS' : 'JPEG';
  const header = readJpegHeader(bytes, expect, name);
  checkJpegFrame(header, expect, name);
  if (header.sof === 0xf7) return decodeJpegLs(bytes, expect);
  if (header.sof === 0xc3) return decodeJpegLossless(bytes, header, expect);
  if (header.sof === 0xc0 || header.sof === 0xc1 || header.sof === 0xc2) return decodeJpegDct(bytes, header, expect, photometric);
  throw unsupported(`DICOM ${expect.what} uses JPEG process SOF${header.sof - 0xc0} (hierarchical or arithmetic coding), which is not decoded`, { sof: header.sof });
}

// --- RLE Lossless (PS3.5 Annex G) ---------------------------------------------------------------------

/**
 * Decodes one RLE frame to interleaved samples. The header (G.5) holds the segment count and 15
 * offsets; segment k holds byte k of each sample, most significant byte first, sample by sample.
 */
export function decodeRle(fragment: Uint8Array, expect: FrameExpectation, deadline: Deadline): Uint8Array | Uint16Array | Uint32Array {
  const name = 'RLE';
  const bytesPerSample = expect.bitsAllocated / 8;
  if (![1, 2, 4].includes(bytesPerSample)) throw unsupported(`DICOM ${expect.what} is RLE with BitsAllocated ${expect.bitsAllocated}, which is not decoded (8, 16 or 32 are)`);
  if (fragment.length < 64) throw corrupt(expect, name, `the frame is ${fragment.length} bytes, shorter than the 64-byte RLE header`);
  const view = new DataView(fragment.buffer, fragment.byteOffset, fragment.byteLength);
  const segments = view.getUint32(0, true);
  const expected = expect.samples * bytesPerSample;
  if (segments !== expected) throw corrupt(expect, name, `the RLE header lists ${segments} segments; ${expect.samples} sample(s) of ${bytesPerSample} byte(s) need ${expected}`);
  const offsets: number[] = [];
  for (let s = 0; s < segments; s++) offsets.push(view.getUint32(4 + 4 * s, true));
  offsets.push(fragment.length);
  for (let s = 0; s < segments; s++) {
    const start = offsets[s] ?? 0;
    const end = offsets[s + 1] ?? 0;
    if (start < 64 || end < start || end > fragment.length) throw corrupt(expect, name, `segment ${s + 1} is at bytes ${start}–${end} of a ${fragment.length}-byte frame`);
  }

  const pixels = expect.rows * expect.columns;
  const out = bytesPerSample === 1 ? new Uint8Array(pixels * expect.samples) : bytesPerSample === 2 ? new Uint16Array(pixels * expect.samples) : new Uint32Array(pixels * expect.samples);
  const plane = new Uint8Array(pixels);
  for (let s = 0; s < segments; s++) {
    deadline.check(`decoding RLE segment ${s + 1} of ${expect.what}`);
    unpackBits(fragment, offsets[s] ?? 0, offsets[s + 1] ?? 0, plane, expect, s + 1);
    const sample = Math.floor(s / bytesPerSample);
    const shift = 8 * (bytesPerSample - 1 - (s % bytesPerSample));
    for (let p = 0; p < pixels; p++) {
      const i = p * expect.samples + sample;
      // Unsigned arithmetic: shifting into bit 31 must not make the value negative.
      out[i] = (out[i] ?? 0) + (plane[p] ?? 0) * 2 ** shift;
    }
  }
  return out;
}

/**
 * PackBits (G.3.1): n in 0..127 copies the next n + 1 bytes; n in −127..−1 repeats the next byte
 * 1 − n times; −128 does nothing. Output beyond one plane is ignored (encoders pad segments to even
 * length); output short of it is damage.
 */
function unpackBits(source: Uint8Array, start: number, end: number, plane: Uint8Array, expect: FrameExpectation, segment: number): void {
  let at = start;
  let out = 0;
  const size = plane.length;
  while (at < end && out < size) {
    const n = source[at++] ?? 0;
    if (n < 128) {
      const count = Math.min(n + 1, end - at, size - out);
      plane.set(source.subarray(at, at + count), out);
      out += count;
      at += n + 1;
    } else if (n > 128) {
      const count = Math.min(257 - n, size - out);
      if (at >= end) break;
      plane.fill(source[at] ?? 0, out, out + count);
      out += count;
      at += 1;
    }
  }
  if (out < size) throw corrupt(expect, 'RLE', `segment ${segment} decodes to ${out} bytes; the frame needs ${size}`);
}
