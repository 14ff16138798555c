import sharp from 'sharp';
import { AppError } from '../core/errors.ts';
import type { RgbImage } from './raster.ts';

// Deep Zoom (DZI) tiles for OpenSeadragon, cut from a slide's own pyramid with the geometry of
// openslide-python's DeepZoomGenerator (openslide/deepzoom.py), so a viewer sees the same levels, tile
// grid, overlaps and pixels as when OpenSlide serves the slide:
//   - Deep Zoom level dimensions halve with ceil from level 0 down to 1×1 (level 0 of Deep Zoom is 1×1);
//   - each Deep Zoom level reads the pyramid level OpenSlide's get_best_level_for_downsample picks (the
//     largest downsample not above the Deep Zoom one) and resizes what it reads when the two differ;
//   - tiles are tileSize square plus `overlap` pixels on every side that has a neighbour;
//   - the final resize follows PIL's thumbnail(): it keeps the aspect ratio of the region read, and it
//     never enlarges, so a tile can be a pixel off the nominal size exactly where OpenSlide's is. The
//     filter is libvips' lanczos3 rather than PIL's LANCZOS, which differ by rounding only.
//
// Errors: a level, column or row outside the pyramid is INVALID_REQUEST (HTTP 400), like
// Slide.readTile; OpenSeadragon asks only for tiles inside the grid the .dzi describes, so such a
// request is a client error rather than a missing stored object.
//
// Transparency: OpenSlide's get_tile always composites onto the background colour. JPEG tiles do that
// here too; PNG tiles keep an alpha channel when the source has one, because a heatmap overlay must
// stay transparent outside the area it covers (Slide.readRegion is RGB, so slide PNG tiles are opaque).

/** Interleaved 8-bit RGBA, row-major, not premultiplied: data.length === width × height × 4. */
export interface RgbaImage {
  data: Buffer;
  width: number;
  height: number;
  channels: 4;
}

/** What Deep Zoom needs of a slide; a Slide (wsi/slide.ts) is one as it is. */
export interface DeepZoomSource {
  /** Largest first, as Slide.levels: downsample is level-0 pixels per pixel of the level. */
  levels: readonly { width: number; height: number; downsample: number }[];
  /** x0, y0 in level-0 pixels; width, height in pixels of `level` (OpenSlide's read_region). */
  readRegion(x0: number, y0: number, level: number, width: number, height: number): Promise<RgbImage | RgbaImage>;
  /** The non-empty level-0 rectangle (OpenSlide's openslide.bounds-* properties), used with limitBounds. */
  bounds?: { x: number; y: number; width: number; height: number };
}

export type DeepZoomFormat = 'jpeg' | 'png';

export interface DeepZoomOptions {
  /** Tile side without overlap. 254 + 2 × 1 makes 256-pixel tiles, OpenSeadragon's fastest. */
  tileSize?: number;
  /** Pixels each tile shares with its neighbours, on every side that has one. */
  overlap?: number;
  format: DeepZoomFormat;
  /** Serve only source.bounds instead of the whole level 0 (DeepZoomGenerator's limit_bounds). */
  limitBounds?: boolean;
  /** JPEG quality 1–100; 75, as PIL and OpenSlide's deepzoom_server. */
  quality?: number;
  /** Colour under transparent pixels of JPEG tiles, "#rrggbb"; OpenSlide's default is white. */
  background?: string;
}

/** Where a tile comes from and its size: DeepZoomGenerator's get_tile_coordinates / get_tile_dimensions. */
export interface DeepZoomTileInfo {
  /** read_region arguments: level-0 origin, pyramid level, size at that level. */
  x0: number;
  y0: number;
  sourceLevel: number;
  regionWidth: number;
  regionHeight: number;
  /** Nominal tile size including overlap (get_tile_dimensions). */
  tileWidth: number;
  tileHeight: number;
  /** Size of the encoded tile: the nominal size unless PIL's thumbnail() rule gives another. */
  outputWidth: number;
  outputHeight: number;
}

export interface DeepZoom {
  format: DeepZoomFormat;
  levelCount: number;
  /** Pixel size of each Deep Zoom level, 1×1 first. */
  levelDimensions: readonly { width: number; height: number }[];
  /** Columns and rows of tiles of a level. */
  tileCount(level: number): { cols: number; rows: number };
  /** Tiles over all levels. */
  totalTiles: number;
  tileInfo(level: number, col: number, row: number): DeepZoomTileInfo;
  /** The .dzi descriptor, byte for byte what openslide-python's get_dzi(format) writes. */
  dzi(): string;
  /** The encoded tile (JPEG or PNG). Reads only the region of the pyramid level the tile needs. */
  tile(level: number, col: number, row: number): Promise<Buffer>;
}

function checkWhole(value: number, what: string, min: number, max = Number.MAX_SAFE_INTEGER): void {
  if (!Number.isSafeInteger(value) || value < min || value > max) {
    throw new AppError('INVALID_REQUEST', `${what} must be an integer from ${min} to ${max}, not ${value}.`);
  }
}

/** OpenSlide's openslide_get_best_level_for_downsample: the last level whose downsample is ≤ d. */
function bestLevelForDownsample(downsamples: readonly number[], d: number): number {
  if (d < (downsamples[0] ?? 1)) return 0;
  for (let i = 1; i < downsamples.length; i++) if (d < (downsamples[i] as number)) return i - 1;
  return downsamples.length - 1;
}

/**
 * PIL's Image.thumbnail() target size (Pillow 9.4, the version compared against): nothing when the
 * image already fits, otherwise the box shrunk on one axis to keep the image's aspect ratio, rounded
 * to whichever neighbour integer keeps it best (floor on ties), at least 1.
 */
export function thumbnailSize(width: number, height: number, boxWidth: number, boxHeight: number): { width: number; height: number } {
  if (boxWidth >= width && boxHeight >= height) return { width, height };
  const aspect = width / height;
  const roundAspect = (n: number, key: (k: number) => number): number => {
    const lo = Math.floor(n);
    const hi = Math.ceil(n);
    return Math.max(key(hi) < key(lo) ? hi : lo, 1);
  };
  if (boxWidth / boxHeight >= aspect) {
    return { width: roundAspect(boxHeight * aspect, (k) => Math.abs(aspect - k / boxHeight)), height: boxHeight };
  }
  return { width: boxWidth, height: roundAspect(boxWidth / aspect, (k) => (k === 0 ? 0 : Math.abs(aspect - boxWidth / k))) };
}

function parseColour(hex: string): { r: number; g: number; b: number } {
  const m = /^#?([0-9a-f]{2})([0-9a-f]{2})([0-9a-f]{2})$/i.exec(hex);
  if (m === null) throw new AppError('INVALID_REQUEST', `The background colour must be "#rrggbb", not "${hex}".`);
  return { r: parseInt(m[1] as string, 16), g: parseInt(m[2] as string, 16), b: parseInt(m[3] as string, 16) };
}

function channelsOf(image: RgbImage | RgbaImage): 3 | 4 {
  return 'channels' in image && image.channels === 4 ? 4 : 3;
}

export function createDeepZoom(source: DeepZoomSource, options: DeepZoomOptions): DeepZoom {
  const { tileSize = 254, overlap = 1, format, limitBounds = false, quality = 75, background = '#ffffff' } = options;
  checkWhole(tileSize, 'The Deep Zoom tile size', 1, 65_536);
  checkWhole(overlap, 'The Deep Zoom overlap', 0, 65_536);
  checkWhole(quality, 'The JPEG quality', 1, 100);
  if (format !== 'jpeg' && format !== 'png') throw new AppError('INVALID_REQUEST', `The Deep Zoom tile format must be "jpeg" or "png", not "${String(format)}".`);
  const bg = parseColour(background);
  const levels = source.levels;
  const base = levels[0];
  if (base === undefined) throw new AppError('INVALID_REQUEST', 'The image has no levels, so there is nothing to tile.');
  for (const [i, l] of levels.entries()) {
    checkWhole(l.width, `The width of level ${i}`, 1);
    checkWhole(l.height, `The height of level ${i}`, 1);
    if (!(l.downsample > 0) || !Number.isFinite(l.downsample)) throw new AppError('INVALID_REQUEST', `The downsample of level ${i} must be a positive number, not ${l.downsample}.`);
  }

  // Slide level dimensions and the level-0 offset; with limitBounds, every level is scaled to the
  // bounds as DeepZoomGenerator does (ceil of the level size times the bounds' share of level 0).
  let lDims: { width: number; height: number }[] = levels.map((l) => ({ width: l.width, height: l.height }));
  let offset = { x: 0, y: 0 };
  if (limitBounds && source.bounds !== undefined) {
    const b = source.bounds;
    for (const [name, v] of Object.entries(b)) checkWhole(v, `The bounds ${name}`, 0);
    offset = { x: b.x, y: b.y };
    const sx = b.width / base.width;
    const sy = b.height / base.height;
    lDims = levels.map((l) => ({ width: Math.ceil(l.width * sx), height: Math.ceil(l.height * sy) }));
  }
  const l0 = lDims[0] as { width: number; height: number };

  const zDims: { width: number; height: number }[] = [{ ...l0 }];
  for (let z = l0; z.width > 1 || z.height > 1;) {
    z = { width: Math.max(1, Math.ceil(z.width / 2)), height: Math.max(1, Math.ceil(z.height / 2)) };
    zDims.push(z);
  }
  zDims.reverse();
  const tDims = zDims.map((z) => ({ cols: Math.ceil(z.width / tileSize), rows: Math.ceil(z.height / tileSize) }));
  const levelCount = zDims.length;
  const downsamples = levels.map((l) => l.downsample);
  const l0zDownsample = zDims.map((_, i) => 2 ** (levelCount - i - 1));
  const sourceLevelOf = l0zDownsample.map((d) => bestLevelForDownsample(downsamples, d));
  const lzDownsample = l0zDownsample.map((d, i) => d / (downsamples[sourceLevelOf[i] as number] as number));

  const tileCount = (level: number): { cols: number; rows: number } => {
    const t = tDims[level];
    if (!Number.isInteger(level) || t === undefined) {
      throw new AppError('INVALID_REQUEST', `The Deep Zoom image has levels 0–${levelCount - 1}; level ${level} does not exist.`);
    }
    return { ...t };
  };

  const tileInfo = (level: number, col: number, row: number): DeepZoomTileInfo => {
    const { cols, rows } = tileCount(level);
    if (!Number.isInteger(col) || !Number.isInteger(row) || col < 0 || row < 0 || col >= cols || row >= rows) {
      throw new AppError('INVALID_REQUEST', `Tile (${col}, ${row}) is outside Deep Zoom level ${level}, which has ${cols}×${rows} tiles (columns 0–${cols - 1}, rows 0–${rows - 1}).`);
    }
    const sourceLevel = sourceLevelOf[level] as number;
    const lz = lzDownsample[level] as number;
    const l0l = downsamples[sourceLevel] as number;
    const z = zDims[level] as { width: number; height: number };
    const lLim = lDims[sourceLevel] as { width: number; height: number };
    // One axis of DeepZoomGenerator._get_tile_info; the arithmetic is in the same order so that the
    // floating-point results, and the truncations after them, are the same.
    const axis = (t: number, tLim: number, zLim: number, lAxisLim: number, off: number): { l0: number; lSize: number; zSize: number } => {
      const tl = t !== 0 ? overlap : 0;
      const br = t !== tLim - 1 ? overlap : 0;
      const zSize = Math.min(tileSize, zLim - tileSize * t) + tl + br;
      const l = lz * (tileSize * t - tl);
      const l0Pos = Math.trunc(l0l * l + off);
      // At least one pixel: a degenerate pyramid could otherwise ask for an empty region.
      const lSize = Math.max(1, Math.trunc(Math.min(Math.ceil(lz * zSize), lAxisLim - Math.ceil(l))));
      return { l0: l0Pos, lSize, zSize };
    };
    const x = axis(col, cols, z.width, lLim.width, offset.x);
    const y = axis(row, rows, z.height, lLim.height, offset.y);
    const out = x.lSize === x.zSize && y.lSize === y.zSize ? { width: x.zSize, height: y.zSize } : thumbnailSize(x.lSize, y.lSize, x.zSize, y.zSize);
    return {
      x0: x.l0, y0: y.l0, sourceLevel, regionWidth: x.lSize, regionHeight: y.lSize,
      tileWidth: x.zSize, tileHeight: y.zSize, outputWidth: out.width, outputHeight: out.height,
    };
  };

  return {
    format,
    levelCount,
    levelDimensions: zDims.map((d) => ({ ...d })),
    tileCount,
    totalTiles: tDims.reduce((sum, t) => sum + t.cols * t.rows, 0),
    tileInfo,
    dzi() {
      // xml.etree.ElementTree.write(encoding='UTF-8') of Python ≥ 3.8: no XML declaration (UTF-8 is
      // the default), attributes in insertion order, a space before "/>", no trailing newline.
      return `<Image TileSize="${tileSize}" Overlap="${overlap}" Format="${format}" xmlns="http://schemas.microsoft.com/deepzoom/2008"><Size Width="${l0.width}" Height="${l0.height}" /></Image>`;
    },
    async tile(level, col, row) {
      const info = tileInfo(level, col, row);
      const region = await source.readRegion(info.x0, info.y0, info.sourceLevel, info.regionWidth, info.regionHeight);
      const channels = channelsOf(region);
      if (region.width !== info.regionWidth || region.height !== info.regionHeight || region.data.length !== region.width * region.height * channels) {
        throw new AppError('INTERNAL', `The reader returned a ${region.width}×${region.height} region (${region.data.length} bytes) for a ${info.regionWidth}×${info.regionHeight} request at level ${info.sourceLevel}.`);
      }
      let image = sharp(region.data, { raw: { width: region.width, height: region.height, channels } });
      if (channels === 4 && format === 'jpeg') image = image.flatten({ background: bg });
      if (info.outputWidth !== region.width || info.outputHeight !== region.height) {
        image = image.resize(info.outputWidth, info.outputHeight, { fit: 'fill', kernel: 'lanczos3' });
      }
      return format === 'jpeg' ? image.jpeg({ quality }).toBuffer() : image.png().toBuffer();
    },
  };
}

export interface ImageSourceOptions {
  /** Level-0 size of the space the picture is placed in (for an overlay: the slide's level-0 size). Default: the picture's size. */
  size?: { width: number; height: number };
  /** Level-0 rectangle the picture covers, stretched to fill it. Default: all of `size`. */
  rect?: { x: number; y: number; width: number; height: number };
}

/**
 * A decoded in-memory picture as a Deep Zoom source, e.g. the slide heatmap PNG placed over the slide:
 *
 *   imageSource(heatmapRgba, { size: { width: W0, height: H0 }, rect: { x: 0, y: 0, width: cols·T, height: rows·T } })
 *
 * gives a DZI of exactly the slide's size, so OpenSeadragon stacks it on the slide DZI with no offset;
 * everything outside `rect` is transparent (serve it as PNG). The picture is offered as a pyramid with
 * exact power-of-two downsamples whose sizes are the Deep Zoom level sizes, so every Deep Zoom level
 * reads its own level with no further resize and a tile costs its own pixels only, whatever the slide
 * size. Each output pixel is the picture's pixel under its centre while the picture is at least as fine
 * as the output (cell edges stay crisp), and the alpha-weighted mean of the picture pixels it covers
 * once it is coarser (no aliasing at the low levels).
 */
export function imageSource(image: RgbImage | RgbaImage, options: ImageSourceOptions = {}): DeepZoomSource {
  const channels = channelsOf(image);
  checkWhole(image.width, 'The picture width', 1);
  checkWhole(image.height, 'The picture height', 1);
  if (image.data.length !== image.width * image.height * channels) {
    throw new AppError('INVALID_REQUEST', `The picture holds ${image.data.length} bytes, not ${image.width} × ${image.height} × ${channels}.`);
  }
  const size = options.size ?? { width: image.width, height: image.height };
  checkWhole(size.width, 'The level-0 width', 1);
  checkWhole(size.height, 'The level-0 height', 1);
  const rect = options.rect ?? { x: 0, y: 0, width: size.width, height: size.height };
  if (!Number.isFinite(rect.x) || !Number.isFinite(rect.y) || !(rect.width > 0) || !(rect.height > 0) || !Number.isFinite(rect.width) || !Number.isFinite(rect.height)) {
    throw new AppError('INVALID_REQUEST', `The picture's level-0 rectangle must have a finite origin and a positive size, not ${JSON.stringify(rect)}.`);
  }
  const levels: { width: number; height: number; downsample: number }[] = [];
  for (let k = 0; ; k++) {
    const d = 2 ** k;
    const level = { width: Math.ceil(size.width / d), height: Math.ceil(size.height / d), downsample: d };
    levels.push(level);
    if (level.width === 1 && level.height === 1) break;
  }
  const sx = image.width / rect.width;
  const sy = image.height / rect.height;

  // The picture pixels output pixel i covers on one axis: [lo, hi), possibly outside [0, n), which
  // counts as transparent. start is the level-0 coordinate of output pixel 0; the last pixel of a level
  // reaches past level 0's edge (level sizes round up) and covers only the part inside it.
  const spans = (count: number, start: number, d: number, limit: number, origin: number, scale: number): Int32Array => {
    const out = new Int32Array(count * 2);
    for (let i = 0; i < count; i++) {
      const a = start + i * d;
      const b = Math.min(start + (i + 1) * d, limit);
      if (b <= a) continue; // past the edge: lo = hi = 0, nothing
      let lo: number;
      let hi: number;
      if ((b - a) * scale <= 1) {
        lo = Math.floor(((a + b) / 2 - origin) * scale);
        hi = lo + 1;
      } else {
        lo = Math.round((a - origin) * scale);
        hi = Math.max(lo + 1, Math.round((b - origin) * scale));
      }
      out[2 * i] = lo;
      out[2 * i + 1] = hi;
    }
    return out;
  };

  return {
    levels,
    async readRegion(x0, y0, level, width, height) {
      const info = levels[level];
      if (!Number.isInteger(level) || info === undefined) throw new AppError('INVALID_REQUEST', `The picture has levels 0–${levels.length - 1}; level ${level} does not exist.`);
      checkWhole(width, 'The region width', 1);
      checkWhole(height, 'The region height', 1);
      if (width * height > 64 * 1024 * 1024) throw new AppError('IMAGE_TOO_LARGE', `A ${width}×${height} region is more than 64 Mpx; read it in smaller pieces.`);
      const d = info.downsample;
      const xs = spans(width, x0, d, size.width, rect.x, sx);
      const ys = spans(height, y0, d, size.height, rect.y, sy);
      const src = image.data;
      const out = Buffer.alloc(width * height * 4);
      for (let j = 0; j < height; j++) {
        const ylo = ys[2 * j] as number;
        const yhi = ys[2 * j + 1] as number;
        const y0c = Math.max(0, ylo);
        const y1c = Math.min(image.height, yhi);
        if (y0c >= y1c) continue;
        for (let i = 0; i < width; i++) {
          const xlo = xs[2 * i] as number;
          const xhi = xs[2 * i + 1] as number;
          const x0c = Math.max(0, xlo);
          const x1c = Math.min(image.width, xhi);
          if (x0c >= x1c) continue;
          const to = (j * width + i) * 4;
          if (xhi - xlo === 1 && yhi - ylo === 1) {
            const from = (ylo * image.width + xlo) * channels;
            out[to] = src[from] as number;
            out[to + 1] = src[from + 1] as number;
            out[to + 2] = src[from + 2] as number;
            out[to + 3] = channels === 4 ? (src[from + 3] as number) : 255;
            continue;
          }
          // Alpha-weighted mean, so transparent pixels lend no colour to their neighbours.
          let r = 0;
          let g = 0;
          let b = 0;
          let a = 0;
          for (let y = y0c; y < y1c; y++) {
            let from = (y * image.width + x0c) * channels;
            for (let x = x0c; x < x1c; x++, from += channels) {
              const alpha = channels === 4 ? (src[from + 3] as number) : 255;
              r += (src[from] as number) * alpha;
              g += (src[from + 1] as number) * alpha;
              b += (src[from + 2] as number) * alpha;
              a += alpha;
            }
          }
          if (a === 0) continue;
          out[to] = Math.round(r / a);
          out[to + 1] = Math.round(g / a);
          out[to + 2] = Math.round(b / a);
          out[to + 3] = Math.round(a / ((xhi - xlo) * (yhi - ylo)));
        }
      }
      return { data: out, width, height, channels: 4 };
    },
  };
}
