import { closeSync, fstatSync, openSync, rmSync, statfsSync, statSync, writeSync } from 'node:fs';
import path from 'node:path';
import sharp from 'sharp';

// Test helpers for TIFFs larger than 4 GiB that cost almost no disk: a TIFF writer that places every
// block at a chosen file position (positional writes, so the gaps stay holes in a sparse file), plus
// synthetic tissue-like pixels whose tiles are all different (each carries its column and row).

export const GIB = 2 ** 30;
export const TWO_32 = 2 ** 32;

export interface TiffImageSpec {
  width: number;
  height: number;
  tile: number;
  /** Absolute file offsets and byte counts of the tiles, row-major. */
  offsets: number[];
  byteCounts: number[];
  /** TIFF Photometric: 6 (YCbCr) for JPEG tiles encoded by libjpeg. */
  photometric: number;
  jpegTables?: Buffer;
  newSubfileType?: number;
  /** Written with ResolutionUnit 3 (centimetre). */
  pixelsPerCm?: number;
}

interface Entry {
  tag: number;
  type: number;
  /** Numbers (RATIONAL: numerator, denominator pairs) or raw bytes (ASCII, UNDEFINED). */
  values: number[] | Buffer;
}

const TYPE_SIZE: Record<number, number> = { 2: 1, 3: 2, 4: 4, 5: 4, 7: 1, 16: 8 };

/**
 * Writes a little-endian TIFF or BigTIFF block by block at explicit positions. jump() moves the write
 * position (jumping forward leaves a hole); put() writes at it. Directories are chained in the order finish() is given,
 * which need not be file order, so that next-IFD pointers in both directions across 4 GiB are exercised.
 */
export class PositionedTiffWriter {
  readonly path: string;
  readonly bigTiff: boolean;
  private readonly fd: number;
  private cursor: number;
  private end = 0;
  private readonly nextPointerAt = new Map<number, number>();

  constructor(file: string, bigTiff: boolean) {
    this.path = file;
    this.bigTiff = bigTiff;
    this.fd = openSync(file, 'w');
    this.cursor = bigTiff ? 16 : 8;
  }

  get position(): number {
    return this.cursor;
  }

  /** Moves the write position; the caller keeps blocks from overlapping. */
  jump(to: number): void {
    this.cursor = to;
  }

  private writeAt(bytes: Buffer, at: number): void {
    let done = 0;
    while (done < bytes.length) done += writeSync(this.fd, bytes, done, bytes.length - done, at + done);
    this.end = Math.max(this.end, at + bytes.length);
  }

  /** Writes `bytes` at the write position, word-aligned (TIFF 6.0 §2), and returns its offset. */
  put(bytes: Buffer): number {
    if (this.cursor % 2 === 1) this.cursor++;
    const at = this.cursor;
    this.writeAt(bytes, at);
    this.cursor += bytes.length;
    return at;
  }

  private uint(value: number, bytes: number): Buffer {
    if (!Number.isSafeInteger(value) || value < 0) throw new Error(`cannot store ${value}`);
    if (bytes < 8 && value >= 2 ** (8 * bytes)) throw new Error(`${value} does not fit in ${bytes} bytes`);
    const b = Buffer.alloc(bytes);
    if (bytes === 1) b.writeUInt8(value);
    else if (bytes === 2) b.writeUInt16LE(value);
    else if (bytes === 4) b.writeUInt32LE(value);
    else b.writeBigUInt64LE(BigInt(value));
    return b;
  }

  /** Writes a tiled image directory (its out-of-line values first) at the write position; returns its offset. */
  putImage(image: TiffImageSpec): number {
    // Classic TIFF has only 32-bit LONG arrays; BigTIFF stores the offsets as LONG8 (type 16).
    const arrayType = this.bigTiff ? 16 : 4;
    const entries: Entry[] = [
      { tag: 254, type: 4, values: [image.newSubfileType ?? 0] },
      { tag: 256, type: 4, values: [image.width] },
      { tag: 257, type: 4, values: [image.height] },
      { tag: 258, type: 3, values: [8, 8, 8] },
      { tag: 259, type: 3, values: [7] },
      { tag: 262, type: 3, values: [image.photometric] },
      { tag: 277, type: 3, values: [3] },
      ...(image.pixelsPerCm === undefined ? [] : [
        { tag: 282, type: 5, values: [image.pixelsPerCm, 1] },
        { tag: 283, type: 5, values: [image.pixelsPerCm, 1] },
      ]),
      { tag: 284, type: 3, values: [1] },
      ...(image.pixelsPerCm === undefined ? [] : [{ tag: 296, type: 3, values: [3] }]),
      { tag: 322, type: 3, values: [image.tile] },
      { tag: 323, type: 3, values: [image.tile] },
      { tag: 324, type: arrayType, values: image.offsets },
      { tag: 325, type: arrayType, values: image.byteCounts },
      ...(image.jpegTables === undefined ? [] : [{ tag: 347, type: 7, values: image.jpegTables }]),
      ...(image.photometric === 6 ? [{ tag: 530, type: 3, values: [2, 2] }] : []),
    ];
    const offsetSize = this.bigTiff ? 8 : 4;
    const fields = entries.map((e) => {
      const size = TYPE_SIZE[e.type] ?? 1;
      const data = Buffer.isBuffer(e.values) ? e.values : Buffer.concat(e.values.map((v) => this.uint(v, size)));
      const count = Buffer.isBuffer(e.values) ? e.values.length : e.type === 5 ? e.values.length / 2 : e.values.length;
      const field = data.length <= offsetSize ? Buffer.concat([data, Buffer.alloc(offsetSize - data.length)]) : this.uint(this.put(data), offsetSize);
      return Buffer.concat([this.uint(e.tag, 2), this.uint(e.type, 2), this.uint(count, this.bigTiff ? 8 : 4), field]);
    });
    const ifd = Buffer.concat([this.uint(fields.length, this.bigTiff ? 8 : 2), ...fields, Buffer.alloc(offsetSize)]);
    const at = this.put(ifd);
    this.nextPointerAt.set(at, at + ifd.length - offsetSize);
    return at;
  }

  /** Writes the header and links the directories in `chain` order; closes the file and returns its size. */
  finish(chain: number[]): number {
    const offsetSize = this.bigTiff ? 8 : 4;
    chain.forEach((ifd, i) => {
      const next = chain[i + 1];
      const at = this.nextPointerAt.get(ifd);
      if (at === undefined) throw new Error(`no directory was written at ${ifd}`);
      if (next !== undefined) this.writeAt(this.uint(next, offsetSize), at);
    });
    const first = chain[0] ?? 0;
    const header = this.bigTiff
      ? Buffer.concat([Buffer.from('II', 'latin1'), this.uint(43, 2), this.uint(8, 2), this.uint(0, 2), this.uint(first, 8)])
      : Buffer.concat([Buffer.from('II', 'latin1'), this.uint(42, 2), this.uint(first, 4)]);
    this.writeAt(header, 0);
    const size = fstatSync(this.fd).size;
    closeSync(this.fd);
    if (size !== this.end) throw new Error(`wrote up to byte ${this.end} but the file has ${size} bytes`);
    return size;
  }
}

/** Bytes the file occupies on disk (allocated blocks), as `du` reports. */
export function allocatedBytes(file: string): number {
  return statSync(file).blocks * 512;
}

/**
 * Whether files in `dir` can have holes: a 64 MiB file with one written byte must use far less than
 * 64 MiB. Filesystems without holes (FAT, some network mounts) store every byte.
 */
export function sparseFilesSupported(dir: string): boolean {
  const probe = path.join(dir, 'sparse-probe');
  const fd = openSync(probe, 'w');
  try {
    writeSync(fd, Buffer.from([1]), 0, 1, 64 * 1024 * 1024);
  } finally {
    closeSync(fd);
  }
  const used = allocatedBytes(probe);
  rmSync(probe, { force: true });
  return used < 1024 * 1024;
}

export function freeBytes(dir: string): number {
  const s = statfsSync(dir);
  return s.bavail * s.bsize;
}

// 3×5 bitmap digits, for drawing each tile's column and row into its pixels.
const DIGITS = ['111101101101111', '010110010010111', '111001111100111', '111001111001111', '101101111001001', '111100111001111', '111100111101111', '111001001001001', '111101111101111', '111101111001111'];

function drawNumber(pixels: Buffer, width: number, height: number, x0: number, y0: number, value: number, scale: number): void {
  const text = String(value);
  for (let k = 0; k < text.length; k++) {
    const glyph = DIGITS[Number(text[k])] ?? '';
    for (let gy = 0; gy < 5; gy++) {
      for (let gx = 0; gx < 3; gx++) {
        if (glyph[gy * 3 + gx] !== '1') continue;
        for (let dy = 0; dy < scale; dy++) {
          for (let dx = 0; dx < scale; dx++) {
            const x = x0 + (k * 4 + gx) * scale + dx;
            const y = y0 + gy * scale + dy;
            if (x >= width || y >= height) continue;
            const i = (y * width + x) * 3;
            pixels[i] = 20;
            pixels[i + 1] = 30;
            pixels[i + 2] = 90;
          }
        }
      }
    }
  }
}

/**
 * Deterministic H&E-like RGB pixels: pink stroma in smooth blobs on near-white glass, purple nuclei,
 * a little noise; every `tile`-sized tile has its column and row drawn at its top-left corner.
 */
export function tissuePixels(width: number, height: number, tile: number, downsample = 1): Buffer {
  const pixels = Buffer.alloc(width * height * 3);
  // Lookup tables keep this fast: every term depends on x, y, x + y or x − 2y only. `downsample`
  // shrinks the pattern, so that the levels of a pyramid show the same tissue.
  const table = (n: number, period: number, shift = 0): Float64Array => Float64Array.from({ length: n }, (_, i) => Math.sin(((i - shift) * downsample) / period));
  const sx = table(width, 97);
  const sy = table(height, 131);
  const sxy = table(width + height, 173);
  const sdiff = table(width + 2 * height, 61, 2 * height);
  const nx = table(width, 2.3);
  const ny = table(height, 2.9);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const field = (sx[x] ?? 0) + (sy[y] ?? 0) + (sxy[x + y] ?? 0) + 0.5 * (sdiff[x - 2 * y + 2 * height] ?? 0);
      const noise = ((x * 73856093) ^ (y * 19349663)) & 7;
      const i = (y * width + x) * 3;
      if (field > 0.4) {
        const nucleus = (nx[x] ?? 0) * (ny[y] ?? 0) > 0.8;
        const shade = Math.min(40, Math.round((field - 0.4) * 25));
        pixels[i] = (nucleus ? 95 : 235 - shade) - noise;
        pixels[i + 1] = (nucleus ? 60 : 160 - shade) - noise;
        pixels[i + 2] = (nucleus ? 150 : 200 - shade / 2) - noise;
      } else {
        pixels[i] = 243 - noise;
        pixels[i + 1] = 241 - noise;
        pixels[i + 2] = 246 - noise;
      }
    }
  }
  for (let row = 0; row * tile < height; row++) {
    for (let col = 0; col * tile < width; col++) {
      drawNumber(pixels, width, height, col * tile + 6, row * tile + 6, col, 4);
      drawNumber(pixels, width, height, col * tile + 6, row * tile + 30, row, 4);
    }
  }
  return pixels;
}

export interface EncodedTile {
  /** A complete JPEG stream (JFIF), as a TIFF writer without JPEGTables stores it. */
  jpeg: Buffer;
  /** Its pixels as sharp decodes them: tile × tile RGB. */
  decoded: Buffer;
}

/**
 * Cuts `pixels` into tile × tile JPEG tiles (row-major; edge tiles padded with white to the full tile
 * size, as TIFF 6.0 §15 requires). Fixed Huffman tables (no optimisation) make every tile of a level
 * share its tables, so the level can also be stored as abbreviated streams plus JPEGTables.
 */
export async function encodeJpegTiles(pixels: Buffer, width: number, height: number, tile: number, quality: number): Promise<EncodedTile[]> {
  const cols = Math.ceil(width / tile);
  const rows = Math.ceil(height / tile);
  const jobs: Promise<EncodedTile>[] = [];
  for (let row = 0; row < rows; row++) {
    for (let col = 0; col < cols; col++) {
      const block = Buffer.alloc(tile * tile * 3, 255);
      const n = Math.min(tile, width - col * tile);
      for (let y = 0; y < tile && row * tile + y < height; y++) {
        const from = ((row * tile + y) * width + col * tile) * 3;
        pixels.copy(block, y * tile * 3, from, from + n * 3);
      }
      jobs.push((async () => {
        const jpeg = await sharp(block, { raw: { width: tile, height: tile, channels: 3 } })
          .jpeg({ quality, optimiseCoding: false, chromaSubsampling: '4:2:0' }).toBuffer();
        const decoded = await sharp(jpeg).raw().toBuffer();
        return { jpeg, decoded };
      })());
    }
  }
  return Promise.all(jobs);
}
