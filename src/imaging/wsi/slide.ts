import { AppError } from '../../core/errors.ts';
import type { RgbImage } from '../raster.ts';
import { type ByteSource, readRange } from './byte-source.ts';
import { checkDecodable, compressionName, decodeBlock } from './codecs.ts';
import { aperioMpp, isAperioDescription, parseAperioDescription } from './svs.ts';
import { readTiff, type TiffDirectory } from './tiff-directory.ts';

// A whole-slide image opened in place: a pyramid of tiled TIFF directories read through a ByteSource,
// with OpenSlide's coordinate conventions so that results can be checked against OpenSlide.
//   - level 0 is the largest tiled image; the other levels are the smaller tiled images of the file;
//   - downsample = mean of (level-0 width / level width, level-0 height / level height) (OpenSlide);
//   - readRegion takes x0, y0 in level-0 pixels and w, h in pixels of the level read.
// OpenSlide returns transparent pixels outside the image (and for missing tiles); this reader returns
// RGB, and uses white there — the colour of glass under a bright-field scanner.

export interface SlideLevel {
  width: number;
  height: number;
  downsample: number;
  tileWidth: number;
  tileHeight: number;
  /** The TIFF compression of the level's tiles, e.g. "JPEG (TIFF Compression 7)". */
  compression: string;
}

export interface Slide {
  vendor: 'aperio' | 'generic-tiff';
  levels: SlideLevel[];
  /** Microns per pixel at level 0, when the file records it. */
  mpp: { x: number; y: number } | undefined;
  /** Aperio: the "Key = Value" pairs of the ImageDescription; generic TIFF: empty. */
  properties: Record<string, string>;
  associated: Record<string, { width: number; height: number }>;
  /** One tile of `level`, cropped to the image where the tile overhangs the edge. */
  readTile(level: number, col: number, row: number): Promise<RgbImage>;
  readRegion(x0: number, y0: number, level: number, width: number, height: number): Promise<RgbImage>;
  readAssociated(name: string): Promise<RgbImage>;
}

/** Largest region or associated image decoded in one call (pixels): 64 Mpx is 192 MB of RGB. */
export const MAX_REGION_PIXELS = 64 * 1024 * 1024;
/**
 * Decoded tiles kept per level, least recently used out: at least two full rows of tiles, because a
 * row of model-sized regions crossing a tile boundary needs two tile rows, and a smaller cache would
 * decode every tile twice when reading a grid row by row; bounded by a byte budget (like OpenSlide's
 * 32 MB cache) so very wide levels do not hold unbounded memory.
 */
const TILE_CACHE_MIN = 64;
const TILE_CACHE_BYTES = 64 * 1024 * 1024;
const WHITE = 255;

function flatten(directories: TiffDirectory[]): TiffDirectory[] {
  return directories.flatMap((d) => [d, ...flatten(d.subDirectories)]);
}

function mppFromResolution(dir: TiffDirectory): { x: number; y: number } | undefined {
  // TIFF 6.0 ResolutionUnit: 2 = inch, 3 = centimetre; 1 (no unit) says nothing about physical size.
  const micronsPerUnit = dir.resolutionUnit === 3 ? 10_000 : dir.resolutionUnit === 2 ? 25_400 : undefined;
  if (micronsPerUnit === undefined || !dir.xResolution || !dir.yResolution) return undefined;
  return { x: micronsPerUnit / dir.xResolution, y: micronsPerUnit / dir.yResolution };
}

function associatedName(dir: TiffDirectory, taken: Record<string, unknown>): string {
  const text = (dir.description ?? '').toLowerCase();
  for (const word of ['label', 'macro', 'thumbnail']) if (text.includes(word) && !(word in taken)) return word;
  return 'thumbnail' in taken ? `image-${dir.index}` : 'thumbnail';
}

/** Reads rectangles of one TIFF directory (tiled, or stripped: a strip is a tile the image's width wide). */
class DirectoryReader {
  readonly dir: TiffDirectory;
  readonly blockWidth: number;
  readonly blockHeight: number;
  readonly columns: number;
  private readonly source: ByteSource;
  private readonly cache = new Map<number, Promise<Buffer | undefined>>();
  private readonly cacheSize: number;

  constructor(source: ByteSource, dir: TiffDirectory) {
    this.source = source;
    this.dir = dir;
    this.blockWidth = dir.tileWidth ?? dir.width;
    this.blockHeight = dir.tileHeight ?? Math.max(1, dir.rowsPerStrip);
    this.columns = Math.ceil(dir.width / this.blockWidth);
    const byBytes = Math.floor(TILE_CACHE_BYTES / Math.max(1, this.blockWidth * this.blockHeight * 3));
    this.cacheSize = Math.max(TILE_CACHE_MIN, Math.min(2 * this.columns + 2, byBytes));
  }

  /** Stored height of block row `row`: tiles are always full size, the last strip may be shorter. */
  private storedHeight(row: number): number {
    return this.dir.tileHeight ?? Math.min(this.blockHeight, this.dir.height - row * this.blockHeight);
  }

  /** The decoded block, or undefined for a tile the file leaves out (byte count 0). */
  block(col: number, row: number): Promise<Buffer | undefined> {
    const index = row * this.columns + col;
    const cached = this.cache.get(index);
    if (cached !== undefined) {
      // Refresh its place in the least-recently-used order.
      this.cache.delete(index);
      this.cache.set(index, cached);
      return cached;
    }
    const pending = this.load(index, row);
    pending.catch(() => this.cache.delete(index));
    this.cache.set(index, pending);
    if (this.cache.size > this.cacheSize) {
      const oldest = this.cache.keys().next();
      if (oldest.done !== true) this.cache.delete(oldest.value);
    }
    return pending;
  }

  private async load(index: number, row: number): Promise<Buffer | undefined> {
    checkDecodable(this.dir);
    const [offset, length] = await Promise.all([this.dir.offsets.get(index), this.dir.byteCounts.get(index)]);
    if (length === 0) return undefined;
    const bytes = await readRange(this.source, offset, length, `tile ${index} of the directory at byte ${this.dir.offset}`);
    return decodeBlock(bytes, this.blockWidth, this.storedHeight(row), this.dir);
  }

  /** Pixels [x, x+width) × [y, y+height) of this directory; outside the image is white. */
  async read(x: number, y: number, width: number, height: number): Promise<RgbImage> {
    const out = Buffer.alloc(width * height * 3, WHITE);
    const x1 = Math.min(x + width, this.dir.width);
    const y1 = Math.min(y + height, this.dir.height);
    const xs = Math.max(x, 0);
    const ys = Math.max(y, 0);
    if (xs >= x1 || ys >= y1) return { data: out, width, height };
    const jobs: Promise<void>[] = [];
    for (let row = Math.floor(ys / this.blockHeight); row * this.blockHeight < y1; row++) {
      for (let col = Math.floor(xs / this.blockWidth); col * this.blockWidth < x1; col++) {
        jobs.push(this.block(col, row).then((pixels) => {
          if (pixels === undefined) return;
          const bx = col * this.blockWidth;
          const by = row * this.blockHeight;
          const left = Math.max(bx, xs);
          const right = Math.min(bx + this.blockWidth, x1);
          const top = Math.max(by, ys);
          const bottom = Math.min(by + this.storedHeight(row), y1);
          for (let py = top; py < bottom; py++) {
            const from = ((py - by) * this.blockWidth + (left - bx)) * 3;
            pixels.copy(out, ((py - y) * width + (left - x)) * 3, from, from + (right - left) * 3);
          }
        }));
      }
    }
    await Promise.all(jobs);
    return { data: out, width, height };
  }
}

function checkInteger(value: number, what: string, min: number): void {
  if (!Number.isSafeInteger(value) || value < min) throw new AppError('INVALID_REQUEST', `${what} must be an integer ≥ ${min}, not ${value}.`);
}

function checkRegionSize(width: number, height: number): void {
  checkInteger(width, 'The region width', 1);
  checkInteger(height, 'The region height', 1);
  if (width * height > MAX_REGION_PIXELS) {
    throw new AppError('IMAGE_TOO_LARGE', `A ${width}×${height} region is more than ${MAX_REGION_PIXELS} pixels; read it in smaller pieces.`);
  }
}

/** Opens a tiled TIFF / BigTIFF / Aperio SVS slide. Reads only the directories, not the tiles. */
export async function openSlide(source: ByteSource): Promise<Slide> {
  const tiff = await readTiff(source);
  const all = flatten(tiff.directories);
  const firstDescription = tiff.directories[0]?.description;
  const vendor = isAperioDescription(firstDescription) ? 'aperio' : 'generic-tiff';
  const levelDirs: TiffDirectory[] = [];
  const associatedDirs: Record<string, TiffDirectory> = {};
  let properties: Record<string, string> = {};

  if (vendor === 'aperio') {
    properties = parseAperioDescription(firstDescription ?? '').properties;
    for (const dir of all) {
      const kind = isAperioDescription(dir.description) ? parseAperioDescription(dir.description).associated : undefined;
      if (kind !== undefined) associatedDirs[kind] = dir;
      else if (dir.tileWidth !== undefined) levelDirs.push(dir);
      // Aperio writes the thumbnail as the stripped directory straight after level 0.
      else if (dir.index === 1) associatedDirs['thumbnail'] = dir;
    }
  } else {
    // Generic TIFF: every tiled image is a level; reduced-resolution stripped images (NewSubfileType
    // bit 0) are associated images.
    for (const dir of all) {
      if (dir.tileWidth !== undefined) levelDirs.push(dir);
      else if ((dir.newSubfileType & 1) === 1) associatedDirs[associatedName(dir, associatedDirs)] = dir;
    }
  }
  if (levelDirs.length === 0) {
    throw new AppError('CORRUPT_IMAGE', 'The TIFF file has no tiled image, so it is not a whole-slide pyramid; re-export it as a tiled pyramidal TIFF.');
  }
  levelDirs.sort((a, b) => b.width * b.height - a.width * a.height);
  const base = levelDirs[0] as TiffDirectory;
  const readers = levelDirs.map((d) => new DirectoryReader(source, d));
  const associatedReaders = new Map(Object.entries(associatedDirs).map(([name, d]) => [name, new DirectoryReader(source, d)]));
  const levels: SlideLevel[] = levelDirs.map((d) => ({
    width: d.width,
    height: d.height,
    downsample: (base.width / d.width + base.height / d.height) / 2,
    tileWidth: d.tileWidth ?? d.width,
    tileHeight: d.tileHeight ?? d.height,
    compression: compressionName(d.compression),
  }));
  const mppText = vendor === 'aperio' ? aperioMpp(properties) : undefined;
  const mpp = mppText !== undefined ? { x: mppText, y: mppText } : mppFromResolution(base);

  const levelReader = (level: number): { reader: DirectoryReader; info: SlideLevel } => {
    const reader = readers[level];
    const info = levels[level];
    if (!Number.isInteger(level) || reader === undefined || info === undefined) {
      throw new AppError('INVALID_REQUEST', `The slide has levels 0–${levels.length - 1}; level ${level} does not exist.`);
    }
    return { reader, info };
  };

  return {
    vendor,
    levels,
    mpp,
    properties,
    associated: Object.fromEntries(Object.entries(associatedDirs).map(([name, d]) => [name, { width: d.width, height: d.height }])),
    async readTile(level, col, row) {
      const { reader, info } = levelReader(level);
      checkInteger(col, 'The tile column', 0);
      checkInteger(row, 'The tile row', 0);
      const x = col * info.tileWidth;
      const y = row * info.tileHeight;
      if (x >= info.width || y >= info.height) {
        throw new AppError('INVALID_REQUEST', `Tile (${col}, ${row}) is outside level ${level}, which has ${Math.ceil(info.width / info.tileWidth)}×${Math.ceil(info.height / info.tileHeight)} tiles.`);
      }
      return reader.read(x, y, Math.min(info.tileWidth, info.width - x), Math.min(info.tileHeight, info.height - y));
    },
    async readRegion(x0, y0, level, width, height) {
      const { reader, info } = levelReader(level);
      if (!Number.isSafeInteger(x0) || !Number.isSafeInteger(y0)) throw new AppError('INVALID_REQUEST', `The region origin must be integers, not (${x0}, ${y0}).`);
      checkRegionSize(width, height);
      // Level-0 coordinates to the level's pixel grid; for a non-integer downsample the origin is
      // rounded down to a whole pixel rather than resampled.
      return reader.read(Math.floor(x0 / info.downsample), Math.floor(y0 / info.downsample), width, height);
    },
    async readAssociated(name) {
      const reader = associatedReaders.get(name);
      if (reader === undefined) {
        const names = [...associatedReaders.keys()];
        throw new AppError('INVALID_REQUEST', `The slide has no associated image "${name}"; it has ${names.length === 0 ? 'none' : names.join(', ')}.`);
      }
      checkRegionSize(reader.dir.width, reader.dir.height);
      return reader.read(0, 0, reader.dir.width, reader.dir.height);
    },
  };
}
