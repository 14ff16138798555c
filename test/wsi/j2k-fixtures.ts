import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import path from 'node:path';

// JPEG 2000 test data made here rather than shipped: tiles encoded with the encoder of the same
// OpenJPEG WebAssembly package the reader decodes with (its full build has one), YCbCr the way Aperio
// stores compression 33003, JP2 boxing around a raw codestream, and (through Debian's opj_compress,
// when installed) codestreams with subsampled chroma, which that encoder cannot write.

interface EncoderFrameInfo {
  width: number;
  height: number;
  bitsPerSample: number;
  componentCount: number;
  isSigned: boolean;
  isUsingColorTransform: boolean;
}

interface J2KEncoder {
  getDecodedBuffer(frameInfo: EncoderFrameInfo): Uint8Array;
  getEncodedBuffer(): Uint8Array;
  setQuality(lossless: boolean, layers: number): void;
  setCompressionRatio(layer: number, ratio: number): void;
  encode(): void;
  delete(): void;
}

interface EncoderModule {
  J2KEncoder: new () => J2KEncoder;
}

type EncoderFactory = (options: { wasmBinary: Uint8Array; print: (text: string) => void; printErr: (text: string) => void }) => Promise<EncoderModule>;

let encoderModule: Promise<EncoderModule> | undefined;

function loadEncoder(): Promise<EncoderModule> {
  if (encoderModule === undefined) {
    const require = createRequire(import.meta.url);
    const factory = require('@cornerstonejs/codec-openjpeg/wasmjs') as EncoderFactory;
    const wasmBinary = readFileSync(require.resolve('@cornerstonejs/codec-openjpeg/wasm'));
    encoderModule = factory({ wasmBinary, print: () => {}, printErr: () => {} });
  }
  return encoderModule;
}

export interface EncodeOptions {
  /** Reversible 5/3 wavelet (exact), or the 9/7 wavelet at `ratio`:1. */
  lossless?: boolean;
  ratio?: number;
}

/**
 * A raw J2K codestream (SOC, SIZ, …, EOC) of 8-bit interleaved samples. With three components the
 * encoder applies its component transform, which the decoder undoes, so the decoded components are
 * the ones given (exactly when lossless).
 */
export async function encodeJ2k(samples: Buffer, width: number, height: number, components: 1 | 3, options: EncodeOptions = {}): Promise<Buffer> {
  const module = await loadEncoder();
  const encoder = new module.J2KEncoder();
  try {
    const input = encoder.getDecodedBuffer({ width, height, bitsPerSample: 8, componentCount: components, isSigned: false, isUsingColorTransform: components === 3 });
    input.set(samples.subarray(0, width * height * components));
    if (options.lossless === false) {
      encoder.setQuality(false, 1);
      encoder.setCompressionRatio(0, options.ratio ?? 10);
    }
    encoder.encode();
    return Buffer.from(encoder.getEncodedBuffer());
  } finally {
    encoder.delete();
  }
}

/** RGB to YCbCr with the JFIF (ITU-T T.871) equations, the inverse of OpenSlide's YCbCr tables. */
export function rgbToYcbcr(rgb: Buffer): Buffer {
  const out = Buffer.alloc(rgb.length);
  const clamp = (v: number): number => Math.max(0, Math.min(255, Math.round(v)));
  for (let i = 0; i + 2 < rgb.length; i += 3) {
    const r = rgb[i] ?? 0;
    const g = rgb[i + 1] ?? 0;
    const b = rgb[i + 2] ?? 0;
    out[i] = clamp(0.299 * r + 0.587 * g + 0.114 * b);
    out[i + 1] = clamp(128 - 0.168736 * r - 0.331264 * g + 0.5 * b);
    out[i + 2] = clamp(128 + 0.5 * r - 0.418688 * g - 0.081312 * b);
  }
  return out;
}

/** Rows and columns [x, x+w) × [y, y+h) of an interleaved image, as a new buffer. */
export function crop(pixels: Buffer, width: number, channels: number, x: number, y: number, w: number, h: number): Buffer {
  const out = Buffer.alloc(w * h * channels);
  for (let row = 0; row < h; row++) pixels.copy(out, row * w * channels, ((y + row) * width + x) * channels, ((y + row) * width + x + w) * channels);
  return out;
}

/**
 * Encodes `pixels` (RGB, width × height) as row-major J2K tiles of `tile` pixels. Tiles are full size,
 * padded with white past the image as TIFF asks, unless `clipEdges`, which encodes edge tiles at the
 * size of the image part they hold (a codestream smaller than the tile). `transform` maps each tile's
 * RGB to the samples stored (e.g. rgbToYcbcr for Aperio 33003).
 */
export async function encodeTiles(
  pixels: Buffer, width: number, height: number, tile: number,
  options: EncodeOptions & { clipEdges?: boolean; transform?: (rgb: Buffer) => Buffer } = {},
): Promise<Buffer[]> {
  const tiles: Buffer[] = [];
  for (let y = 0; y < height; y += tile) {
    for (let x = 0; x < width; x += tile) {
      const w = Math.min(tile, width - x);
      const h = Math.min(tile, height - y);
      let block: Buffer;
      let bw = w;
      let bh = h;
      if (options.clipEdges === true) {
        block = crop(pixels, width, 3, x, y, w, h);
      } else {
        block = Buffer.alloc(tile * tile * 3, 255);
        for (let row = 0; row < h; row++) pixels.copy(block, row * tile * 3, ((y + row) * width + x) * 3, ((y + row) * width + x + w) * 3);
        bw = tile;
        bh = tile;
      }
      tiles.push(await encodeJ2k(options.transform === undefined ? block : options.transform(block), bw, bh, 3, options));
    }
  }
  return tiles;
}

function box(type: string, ...content: Buffer[]): Buffer {
  const body = Buffer.concat(content);
  const header = Buffer.alloc(8);
  header.writeUInt32BE(8 + body.length, 0);
  header.write(type, 4, 'latin1');
  return Buffer.concat([header, body]);
}

/**
 * Wraps a codestream in the JP2 file format (ISO/IEC 15444-1 Annex I): signature, file type, header
 * (image header and an enumerated colour space: 16 sRGB, 17 greyscale, 18 sYCC) and codestream boxes.
 */
export function wrapJp2(codestream: Buffer, width: number, height: number, components: number, enumeratedColourSpace: number): Buffer {
  const ihdr = Buffer.alloc(14);
  ihdr.writeUInt32BE(height, 0);
  ihdr.writeUInt32BE(width, 4);
  ihdr.writeUInt16BE(components, 8);
  ihdr[10] = 7; // 8 bits, unsigned
  ihdr[11] = 7; // compression type: JPEG 2000
  ihdr[12] = 0; // colour space known
  ihdr[13] = 0; // no intellectual property box
  const colr = Buffer.alloc(7);
  colr[0] = 1; // enumerated colour space
  colr.writeUInt32BE(enumeratedColourSpace, 3);
  return Buffer.concat([
    box('jP  ', Buffer.from([0x0d, 0x0a, 0x87, 0x0a])),
    box('ftyp', Buffer.from('jp2 ', 'latin1'), Buffer.alloc(4), Buffer.from('jp2 ', 'latin1')),
    box('jp2h', box('ihdr', ihdr), box('colr', colr)),
    box('jp2c', codestream),
  ]);
}

/** An Aperio ImageDescription for a level-0 image, so that OpenSlide picks its aperio driver. */
export function aperioDescription(width: number, height: number, tile: number, compression: string): string {
  return `Aperio Image Library v12.0.15 \r\n${width}x${height} [0,0 ${width}x${height}] (${tile}x${tile}) ${compression}|AppMag = 20|MPP = 0.5000`;
}

export function opjCompressMissing(): string | false {
  const probe = spawnSync('opj_compress', ['-h'], { encoding: 'utf8' });
  return probe.error === undefined ? false : 'opj_compress is not installed (apt-get install libopenjp2-tools); it writes the codestreams with subsampled chroma';
}

/**
 * YCbCr codestream of an RGB tile (size × size) with Cb and Cr at half width (4:2:2) or half width and
 * height (4:2:0), chroma taken from the top-left pixel of each block, lossy at 10:1.
 */
export function encodeSubsampledYcbcr(rgb: Buffer, size: number, mode: '4:2:2' | '4:2:0'): Buffer {
  const ycc = rgbToYcbcr(rgb);
  const dy = mode === '4:2:0' ? 2 : 1;
  const cw = size / 2;
  const ch = size / dy;
  const luma = Buffer.alloc(size * size);
  const cb = Buffer.alloc(cw * ch);
  const cr = Buffer.alloc(cw * ch);
  for (let i = 0; i < size * size; i++) luma[i] = ycc[i * 3] ?? 0;
  for (let y = 0; y < ch; y++) {
    for (let x = 0; x < cw; x++) {
      const at = (y * dy * size + x * 2) * 3;
      cb[y * cw + x] = ycc[at + 1] ?? 0;
      cr[y * cw + x] = ycc[at + 2] ?? 0;
    }
  }
  const dir = mkdtempSync(path.join(tmpdir(), 'dxflow-opj-'));
  try {
    const input = path.join(dir, 'tile.raw');
    const output = path.join(dir, 'tile.j2k');
    // Raw input is planar, each component at its own sampled size.
    writeFileSync(input, Buffer.concat([luma, cb, cr]));
    const run = spawnSync('opj_compress', ['-i', input, '-o', output, '-F', `${size},${size},3,8,u@1x1:2x${dy}:2x${dy}`, '-r', '10'], { encoding: 'utf8' });
    if (run.status !== 0) throw new Error(`opj_compress failed: ${run.stdout}${run.stderr}`);
    return readFileSync(output);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
