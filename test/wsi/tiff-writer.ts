import { deflateSync } from 'node:zlib';

// A minimal TIFF writer for tests: what libvips cannot produce (big-endian files, Aperio descriptions,
// stripped associated images, chosen compression codes, damaged offsets). Pixels are 8-bit RGB,
// stored uncompressed (1) or Deflate (8); `compression` overrides the code written in the tag only.

export interface TestImage {
  width: number;
  height: number;
  /** RGB, width × height × 3. */
  pixels: Buffer;
  /** Tile size; undefined writes one strip per 16 rows. */
  tile?: number;
  deflate?: boolean;
  compression?: number;
  description?: string;
  newSubfileType?: number;
  /** Replaces the stored offset of block 0 (to simulate damage). */
  firstOffset?: number;
  /** Stored tiles as given (row-major), instead of encoding `pixels`; `compression` must say what they are. */
  encodedTiles?: Buffer[];
  jpegTables?: Buffer;
  photometric?: number;
}

export function writeTestTiff(images: TestImage[], options: { littleEndian: boolean; bigTiff: boolean }): Buffer {
  const { littleEndian: le, bigTiff } = options;
  const chunks: Buffer[] = [];
  let size = bigTiff ? 16 : 8;
  const append = (b: Buffer): number => {
    // Word-align every block, as TIFF 6.0 §2 asks for offsets.
    if (size % 2 === 1) { chunks.push(Buffer.alloc(1)); size++; }
    const at = size;
    chunks.push(b);
    size += b.length;
    return at;
  };
  const uint = (value: number, bytes: number): Buffer => {
    const b = Buffer.alloc(bytes);
    if (bytes === 2) { if (le) b.writeUInt16LE(value); else b.writeUInt16BE(value); }
    else if (bytes === 4) { if (le) b.writeUInt32LE(value); else b.writeUInt32BE(value); }
    else if (le) b.writeBigUInt64LE(BigInt(value)); else b.writeBigUInt64BE(BigInt(value));
    return b;
  };
  const offsetSize = bigTiff ? 8 : 4;
  const ifdOffsets: number[] = [];
  const ifdPatches: number[] = [];
  for (const image of images) {
    const blockW = image.tile ?? image.width;
    const blockH = image.tile ?? 16;
    const cols = Math.ceil(image.width / blockW);
    const rows = Math.ceil(image.height / blockH);
    const offsets: number[] = [];
    const counts: number[] = [];
    for (let r = 0; r < rows; r++) {
      for (let c = 0; c < cols; c++) {
        const h = image.tile === undefined ? Math.min(blockH, image.height - r * blockH) : blockH;
        const block = Buffer.alloc(blockW * h * 3);
        for (let y = 0; y < h; y++) {
          const sy = r * blockH + y;
          if (sy >= image.height) break;
          const x0 = c * blockW;
          const n = Math.min(blockW, image.width - x0);
          image.pixels.copy(block, y * blockW * 3, (sy * image.width + x0) * 3, (sy * image.width + x0 + n) * 3);
        }
        const given = image.encodedTiles?.[r * cols + c];
        const stored = given ?? (image.deflate === true ? deflateSync(block) : block);
        offsets.push(append(stored));
        counts.push(stored.length);
      }
    }
    if (image.firstOffset !== undefined) offsets[0] = image.firstOffset;
    const arrayType = bigTiff ? 16 : 4;
    const entries: { tag: number; type: number; values: number[] | Buffer }[] = [
      { tag: 254, type: 4, values: [image.newSubfileType ?? 0] },
      { tag: 256, type: 4, values: [image.width] },
      { tag: 257, type: 4, values: [image.height] },
      { tag: 258, type: 3, values: [8, 8, 8] },
      { tag: 259, type: 3, values: [image.compression ?? (image.deflate === true ? 8 : 1)] },
      { tag: 262, type: 3, values: [image.photometric ?? 2] },
      ...(image.description === undefined ? [] : [{ tag: 270, type: 2, values: Buffer.from(image.description + '\0', 'latin1') }]),
      ...(image.tile === undefined ? [{ tag: 273, type: arrayType, values: offsets }] : []),
      { tag: 277, type: 3, values: [3] },
      ...(image.tile === undefined ? [{ tag: 278, type: 4, values: [blockH] }, { tag: 279, type: arrayType, values: counts }] : []),
      { tag: 284, type: 3, values: [1] },
      ...(image.tile === undefined ? [] : [
        { tag: 322, type: 3, values: [blockW] },
        { tag: 323, type: 3, values: [blockH] },
        { tag: 324, type: arrayType, values: offsets },
        { tag: 325, type: arrayType, values: counts },
      ]),
      ...(image.jpegTables === undefined ? [] : [{ tag: 347, type: 7, values: image.jpegTables }]),
    ];
    const typeSize: Record<number, number> = { 2: 1, 3: 2, 4: 4, 7: 1, 16: 8 };
    const encoded = entries.map((e) => {
      const data = Buffer.isBuffer(e.values) ? e.values : Buffer.concat(e.values.map((v) => uint(v, typeSize[e.type] ?? 4)));
      const count = Buffer.isBuffer(e.values) ? e.values.length : e.values.length;
      return { ...e, count, data, at: data.length > offsetSize ? append(data) : -1 };
    });
    const ifd = Buffer.concat([
      uint(encoded.length, bigTiff ? 8 : 2),
      ...encoded.map((e) => {
        const field = Buffer.alloc(offsetSize);
        if (e.at >= 0) uint(e.at, offsetSize).copy(field);
        else e.data.copy(field);
        return Buffer.concat([uint(e.tag, 2), uint(e.type, 2), uint(e.count, bigTiff ? 8 : 4), field]);
      }),
      Buffer.alloc(offsetSize),
    ]);
    const at = append(ifd);
    ifdOffsets.push(at);
    ifdPatches.push(at + ifd.length - offsetSize);
  }
  const file = Buffer.concat(chunks.length === 0 ? [] : [Buffer.alloc(bigTiff ? 16 : 8), ...chunks]);
  file.write(le ? 'II' : 'MM', 0, 'latin1');
  const put = (at: number, value: number, bytes: number): void => { uint(value, bytes).copy(file, at); };
  put(2, bigTiff ? 43 : 42, 2);
  if (bigTiff) { put(4, 8, 2); put(6, 0, 2); put(8, ifdOffsets[0] ?? 0, 8); } else put(4, ifdOffsets[0] ?? 0, 4);
  for (let i = 0; i + 1 < ifdOffsets.length; i++) put(ifdPatches[i] ?? 0, ifdOffsets[i + 1] ?? 0, offsetSize);
  return file;
}

/** A deterministic RGB test pattern (gradients plus a checkerboard), so misplaced tiles show up. */
export function testPattern(width: number, height: number): Buffer {
  const pixels = Buffer.alloc(width * height * 3);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const i = (y * width + x) * 3;
      pixels[i] = (x * 7) & 0xff;
      pixels[i + 1] = (y * 5) & 0xff;
      pixels[i + 2] = ((x >> 3) + (y >> 3)) % 2 === 0 ? 40 : 220;
    }
  }
  return pixels;
}

/**
 * Splits a JPEG into a TIFF JPEGTables stream (SOI, DQT and DHT segments, EOI) and an abbreviated tile
 * stream (SOI, the frame and scan without tables), dropping APPn markers (JFIF, Adobe) as Aperio's
 * writer does, so that the decoder must take the colour space from the TIFF tags.
 */
export function splitJpeg(jpeg: Buffer): { tables: Buffer; tile: Buffer } {
  const tables: Buffer[] = [Buffer.from([0xff, 0xd8])];
  const tile: Buffer[] = [Buffer.from([0xff, 0xd8])];
  let at = 2;
  while (at < jpeg.length) {
    const marker = jpeg[at + 1] ?? 0;
    if (marker === 0xda) {
      tile.push(jpeg.subarray(at));
      break;
    }
    const end = at + 2 + jpeg.readUInt16BE(at + 2);
    const segment = jpeg.subarray(at, end);
    if (marker === 0xdb || marker === 0xc4) tables.push(segment);
    else if (marker < 0xe0 || marker > 0xef) tile.push(segment);
    at = end;
  }
  tables.push(Buffer.from([0xff, 0xd9]));
  return { tables: Buffer.concat(tables), tile: Buffer.concat(tile) };
}
