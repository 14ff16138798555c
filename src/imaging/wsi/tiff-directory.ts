import { AppError } from '../../core/errors.ts';
import { type ByteSource, readRange } from './byte-source.ts';

// TIFF image file directories read from a ByteSource: classic TIFF (TIFF 6.0 §2, 32-bit offsets) and
// BigTIFF (64-bit offsets, header version 43), little- and big-endian. Small tag values are read when
// the directory is parsed; the tile and strip offset/byte-count arrays are read lazily, a chunk at a
// time, because the full-resolution level of a large slide has hundreds of thousands of tiles.

export const TAG = {
  NewSubfileType: 254,
  ImageWidth: 256,
  ImageLength: 257,
  BitsPerSample: 258,
  Compression: 259,
  Photometric: 262,
  ImageDescription: 270,
  StripOffsets: 273,
  SamplesPerPixel: 277,
  RowsPerStrip: 278,
  StripByteCounts: 279,
  XResolution: 282,
  YResolution: 283,
  PlanarConfiguration: 284,
  ResolutionUnit: 296,
  Predictor: 317,
  TileWidth: 322,
  TileLength: 323,
  TileOffsets: 324,
  TileByteCounts: 325,
  SubIFDs: 330,
  JPEGTables: 347,
} as const;

/** Byte size of one value of each TIFF field type (TIFF 6.0 §2 plus the BigTIFF 8-byte types). */
const TYPE_SIZE: Record<number, number> = { 1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8, 13: 4, 16: 8, 17: 8, 18: 8 };

/** Offset arrays up to this size are read with the directory; larger ones a chunk at a time. */
const EAGER_ARRAY_BYTES = 4096;
/** Other values larger than this are not read (a description or JPEGTables is far smaller). */
const EAGER_LIMIT = 1 << 20;
const LAZY_TAGS = new Set<number>([TAG.TileOffsets, TAG.TileByteCounts, TAG.StripOffsets, TAG.StripByteCounts]);
/** Only the tags this reader uses are read; others (ICC profiles, XMP, vendor blobs) stay on disk. */
const USED_TAGS = new Set<number>(Object.values(TAG));
/** Largest tile decoded (pixels): 4096 × 4096; real slides use 240–1024. Guards against hostile tags. */
const MAX_TILE_PIXELS = 4096 * 4096;
const MAX_DIRECTORIES = 4096;
/** Entries fetched per range read of an offset array: one read serves a whole row of tiles or more. */
const CHUNK_ENTRIES = 2048;

export interface Layout {
  littleEndian: boolean;
  bigTiff: boolean;
}

/** An unsigned integer array stored in the file, read by chunk on demand and cached. */
export interface LazyNumbers {
  readonly length: number;
  get(index: number): Promise<number>;
}

export interface TiffDirectory {
  /** File offset of the directory (identifies it in messages). */
  offset: number;
  /** Position in the main IFD chain, or -1 for a SubIFD. */
  index: number;
  width: number;
  height: number;
  newSubfileType: number;
  compression: number;
  photometric: number | undefined;
  samplesPerPixel: number;
  bitsPerSample: number[];
  planarConfiguration: number;
  predictor: number;
  description: string | undefined;
  jpegTables: Buffer | undefined;
  xResolution: number | undefined;
  yResolution: number | undefined;
  /** 1 none, 2 inch, 3 centimetre (TIFF 6.0 default is inch). */
  resolutionUnit: number;
  /** Tile size when the image is tiled; undefined for a stripped image. */
  tileWidth: number | undefined;
  tileHeight: number | undefined;
  rowsPerStrip: number;
  /** Tile offsets/byte counts when tiled, strip offsets/byte counts otherwise. */
  offsets: LazyNumbers;
  byteCounts: LazyNumbers;
  subDirectories: TiffDirectory[];
}

export interface TiffFile {
  littleEndian: boolean;
  bigTiff: boolean;
  /** The main IFD chain in file order; SubIFDs hang off their parent. */
  directories: TiffDirectory[];
}

function corrupt(message: string): AppError {
  return new AppError('CORRUPT_IMAGE', message);
}

function readUnsigned(bytes: Buffer, at: number, size: number, le: boolean): number {
  switch (size) {
    case 1: return bytes.readUInt8(at);
    case 2: return le ? bytes.readUInt16LE(at) : bytes.readUInt16BE(at);
    case 4: return le ? bytes.readUInt32LE(at) : bytes.readUInt32BE(at);
    case 8: {
      const value = le ? bytes.readBigUInt64LE(at) : bytes.readBigUInt64BE(at);
      if (value > BigInt(Number.MAX_SAFE_INTEGER)) throw corrupt(`A 64-bit TIFF value (${value}) is larger than any file this reader can address.`);
      return Number(value);
    }
    default: throw corrupt(`Unsupported integer size ${size}.`);
  }
}

export interface RawEntry {
  tag: number;
  type: number;
  count: number;
  /** Absolute file offset of the values (for inline values: of the value field inside the entry). */
  valueOffset: number;
  byteLength: number;
  /** The value bytes when read eagerly. */
  bytes: Buffer | undefined;
}

function entryNumbers(entry: RawEntry, layout: Layout): number[] {
  const bytes = entry.bytes;
  if (bytes === undefined) throw corrupt(`Tag ${entry.tag} is too large to read eagerly (${entry.byteLength} bytes).`);
  const size = TYPE_SIZE[entry.type] ?? 0;
  const out: number[] = [];
  for (let i = 0; i < entry.count; i++) {
    if (entry.type === 5) {
      const num = readUnsigned(bytes, i * 8, 4, layout.littleEndian);
      const den = readUnsigned(bytes, i * 8 + 4, 4, layout.littleEndian);
      out.push(den === 0 ? 0 : num / den);
    } else if (entry.type === 11) {
      out.push(layout.littleEndian ? bytes.readFloatLE(i * 4) : bytes.readFloatBE(i * 4));
    } else if (entry.type === 12) {
      out.push(layout.littleEndian ? bytes.readDoubleLE(i * 8) : bytes.readDoubleBE(i * 8));
    } else if (entry.type === 1 || entry.type === 3 || entry.type === 4 || entry.type === 7 || entry.type === 13 || entry.type === 16 || entry.type === 18) {
      out.push(readUnsigned(bytes, i * size, size, layout.littleEndian));
    } else {
      throw corrupt(`Tag ${entry.tag} has field type ${entry.type}, which is not a number type here.`);
    }
  }
  return out;
}

function lazyNumbers(source: ByteSource, entry: RawEntry | undefined, layout: Layout, what: string): LazyNumbers {
  if (entry === undefined) return { length: 0, get: () => Promise.reject(corrupt(`The image has no ${what}.`)) };
  if (entry.type !== 3 && entry.type !== 4 && entry.type !== 16 && entry.type !== 13 && entry.type !== 18) {
    throw corrupt(`The ${what} have field type ${entry.type}; SHORT, LONG or LONG8 is required.`);
  }
  const size = TYPE_SIZE[entry.type] ?? 0;
  if (entry.bytes !== undefined) {
    const values = entryNumbers(entry, layout);
    return { length: values.length, get: async (i) => values[i] ?? Promise.reject(corrupt(`Index ${i} is outside the ${what} (${values.length}).`)) };
  }
  const chunks = new Map<number, Promise<number[]>>();
  const loadChunk = (chunk: number): Promise<number[]> => {
    let pending = chunks.get(chunk);
    if (pending === undefined) {
      const first = chunk * CHUNK_ENTRIES;
      const n = Math.min(CHUNK_ENTRIES, entry.count - first);
      pending = readRange(source, entry.valueOffset + first * size, n * size, what).then((bytes) =>
        Array.from({ length: n }, (_, i) => readUnsigned(bytes, i * size, size, layout.littleEndian)));
      // A failed read is not cached, so a transient store error can be retried by the caller.
      pending.catch(() => chunks.delete(chunk));
      chunks.set(chunk, pending);
    }
    return pending;
  };
  return {
    length: entry.count,
    async get(index) {
      if (!Number.isInteger(index) || index < 0 || index >= entry.count) throw corrupt(`Index ${index} is outside the ${what} (${entry.count}).`);
      const values = await loadChunk(Math.floor(index / CHUNK_ENTRIES));
      return values[index % CHUNK_ENTRIES] ?? 0;
    },
  };
}

async function readHeader(source: ByteSource): Promise<{ layout: Layout; first: number }> {
  if (source.size < 8) throw new AppError('TRUNCATED_IMAGE', `The file has ${source.size} bytes, fewer than a TIFF header.`);
  const head = await readRange(source, 0, Math.min(16, source.size), 'TIFF header');
  const order = head.toString('latin1', 0, 2);
  if (order !== 'II' && order !== 'MM') throw corrupt('The file does not start with a TIFF byte-order mark (II or MM).');
  const littleEndian = order === 'II';
  const version = readUnsigned(head, 2, 2, littleEndian);
  if (version === 42) return { layout: { littleEndian, bigTiff: false }, first: readUnsigned(head, 4, 4, littleEndian) };
  if (version === 43) {
    if (head.length < 16) throw new AppError('TRUNCATED_IMAGE', 'The file ends inside the BigTIFF header.');
    if (readUnsigned(head, 4, 2, littleEndian) !== 8 || readUnsigned(head, 6, 2, littleEndian) !== 0) throw corrupt('The BigTIFF header does not declare 8-byte offsets.');
    return { layout: { littleEndian, bigTiff: true }, first: readUnsigned(head, 8, 8, littleEndian) };
  }
  throw corrupt(`The TIFF header has version ${version}; 42 (TIFF) or 43 (BigTIFF) is required.`);
}

export async function readEntries(source: ByteSource, layout: Layout, offset: number): Promise<{ entries: Map<number, RawEntry>; next: number }> {
  const countSize = layout.bigTiff ? 8 : 2;
  const entrySize = layout.bigTiff ? 20 : 12;
  const offsetSize = layout.bigTiff ? 8 : 4;
  const count = readUnsigned(await readRange(source, offset, countSize, `directory at byte ${offset}`), 0, countSize, layout.littleEndian);
  if (count === 0 || count > 10_000) throw corrupt(`The directory at byte ${offset} declares ${count} entries.`);
  const block = await readRange(source, offset + countSize, count * entrySize + offsetSize, `directory at byte ${offset}`);
  const entries = new Map<number, RawEntry>();
  const pendingReads: Promise<void>[] = [];
  for (let i = 0; i < count; i++) {
    const at = i * entrySize;
    const tag = readUnsigned(block, at, 2, layout.littleEndian);
    const type = readUnsigned(block, at + 2, 2, layout.littleEndian);
    const size = TYPE_SIZE[type];
    // TIFF 6.0 §2: readers skip fields of unknown type.
    if (size === undefined) continue;
    const valueCount = readUnsigned(block, at + 4, layout.bigTiff ? 8 : 4, layout.littleEndian);
    const byteLength = valueCount * size;
    const fieldAt = at + (layout.bigTiff ? 12 : 8);
    const inline = byteLength <= offsetSize;
    const valueOffset = inline ? offset + countSize + fieldAt : readUnsigned(block, fieldAt, offsetSize, layout.littleEndian);
    if (!inline && valueOffset + byteLength > source.size) {
      throw new AppError('TRUNCATED_IMAGE', `Tag ${tag} of the directory at byte ${offset} points at bytes ${valueOffset}–${valueOffset + byteLength}, past the end of the ${source.size}-byte file.`);
    }
    const entry: RawEntry = { tag, type, count: valueCount, valueOffset, byteLength, bytes: inline ? block.subarray(fieldAt, fieldAt + byteLength) : undefined };
    const eager = LAZY_TAGS.has(tag) ? byteLength <= EAGER_ARRAY_BYTES : USED_TAGS.has(tag) && byteLength <= EAGER_LIMIT;
    if (!inline && eager) {
      pendingReads.push(readRange(source, valueOffset, byteLength, `tag ${tag} values`).then((bytes) => { entry.bytes = bytes; }));
    }
    entries.set(tag, entry);
  }
  await Promise.all(pendingReads);
  return { entries, next: readUnsigned(block, count * entrySize, offsetSize, layout.littleEndian) };
}

function first(entries: Map<number, RawEntry>, tag: number, layout: Layout, fallback: number): number;
function first(entries: Map<number, RawEntry>, tag: number, layout: Layout): number | undefined;
function first(entries: Map<number, RawEntry>, tag: number, layout: Layout, fallback?: number): number | undefined {
  const entry = entries.get(tag);
  if (entry === undefined || entry.count === 0) return fallback;
  return entryNumbers(entry, layout)[0] ?? fallback;
}

async function readDirectory(source: ByteSource, layout: Layout, offset: number, index: number, seen: Set<number>): Promise<{ directory: TiffDirectory; next: number }> {
  const { entries, next } = await readEntries(source, layout, offset);
  const width = first(entries, TAG.ImageWidth, layout);
  const height = first(entries, TAG.ImageLength, layout);
  if (width === undefined || height === undefined || width < 1 || height < 1) throw corrupt(`The directory at byte ${offset} has no valid ImageWidth/ImageLength.`);
  const tileWidth = first(entries, TAG.TileWidth, layout);
  const tileHeight = first(entries, TAG.TileLength, layout);
  const tiled = tileWidth !== undefined && tileHeight !== undefined;
  if (tiled && (tileWidth < 1 || tileHeight < 1 || tileWidth * tileHeight > MAX_TILE_PIXELS)) {
    throw corrupt(`The directory at byte ${offset} has a ${tileWidth}×${tileHeight} tile size; at most ${MAX_TILE_PIXELS} pixels per tile are supported.`);
  }
  const samplesPerPixel = first(entries, TAG.SamplesPerPixel, layout, 1);
  const bitsEntry = entries.get(TAG.BitsPerSample);
  const descriptionEntry = entries.get(TAG.ImageDescription);
  const tablesEntry = entries.get(TAG.JPEGTables);
  const offsets = lazyNumbers(source, entries.get(tiled ? TAG.TileOffsets : TAG.StripOffsets), layout, tiled ? 'tile offsets' : 'strip offsets');
  const byteCounts = lazyNumbers(source, entries.get(tiled ? TAG.TileByteCounts : TAG.StripByteCounts), layout, tiled ? 'tile byte counts' : 'strip byte counts');
  const rowsPerStrip = Math.min(first(entries, TAG.RowsPerStrip, layout, height), height);
  const expected = tiled ? Math.ceil(width / tileWidth) * Math.ceil(height / tileHeight) : Math.ceil(height / Math.max(1, rowsPerStrip));
  if (offsets.length < expected || byteCounts.length < expected) {
    throw corrupt(`The directory at byte ${offset} lists ${offsets.length} ${tiled ? 'tile' : 'strip'} offsets and ${byteCounts.length} byte counts; a ${width}×${height} image needs ${expected}.`);
  }
  const directory: TiffDirectory = {
    offset,
    index,
    width,
    height,
    newSubfileType: first(entries, TAG.NewSubfileType, layout, 0),
    compression: first(entries, TAG.Compression, layout, 1),
    photometric: first(entries, TAG.Photometric, layout),
    samplesPerPixel,
    bitsPerSample: bitsEntry === undefined ? [1] : entryNumbers(bitsEntry, layout),
    planarConfiguration: first(entries, TAG.PlanarConfiguration, layout, 1),
    predictor: first(entries, TAG.Predictor, layout, 1),
    description: descriptionEntry?.bytes?.toString('latin1').replace(/\0+$/, ''),
    jpegTables: tablesEntry?.bytes,
    xResolution: first(entries, TAG.XResolution, layout),
    yResolution: first(entries, TAG.YResolution, layout),
    resolutionUnit: first(entries, TAG.ResolutionUnit, layout, 2),
    tileWidth: tiled ? tileWidth : undefined,
    tileHeight: tiled ? tileHeight : undefined,
    rowsPerStrip,
    offsets,
    byteCounts,
    subDirectories: [],
  };
  const subEntry = entries.get(TAG.SubIFDs);
  if (subEntry !== undefined && subEntry.bytes !== undefined) {
    for (const subOffset of entryNumbers(subEntry, layout)) {
      if (seen.has(subOffset) || seen.size >= MAX_DIRECTORIES) continue;
      seen.add(subOffset);
      directory.subDirectories.push((await readDirectory(source, layout, subOffset, -1, seen)).directory);
    }
  }
  return { directory, next };
}

/** Parses the TIFF header and every directory (the main chain and SubIFDs). */
export async function readTiff(source: ByteSource): Promise<TiffFile> {
  const { layout, first: firstOffset } = await readHeader(source);
  const directories: TiffDirectory[] = [];
  const seen = new Set<number>();
  let offset = firstOffset;
  while (offset !== 0) {
    // A chain that points back at an earlier directory would otherwise loop forever.
    if (seen.has(offset)) throw corrupt(`The directory chain loops back to byte ${offset}.`);
    if (seen.size >= MAX_DIRECTORIES) throw corrupt(`The file has more than ${MAX_DIRECTORIES} directories.`);
    seen.add(offset);
    const { directory, next } = await readDirectory(source, layout, offset, directories.length, seen);
    directories.push(directory);
    offset = next;
  }
  if (directories.length === 0) throw corrupt('The TIFF file has no image directory.');
  return { littleEndian: layout.littleEndian, bigTiff: layout.bigTiff, directories };
}
