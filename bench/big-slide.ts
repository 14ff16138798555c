// A multi-gigabyte pyramidal JPEG BigTIFF for the whole-slide benchmark, written in seconds rather than
// the tens of minutes libvips would take to encode billions of pixels: level-0 tiles are drawn from a
// pool of tissue tiles (crops, flips and rotations of the bundled H&E-like samples, JPEG quality 92) and
// one glass tile, placed by a tissue map; the smallest level is the tissue map itself, so tissue
// detection sees the same islands the tiles form. Every tile is a complete JPEG stream (no JPEGTables).
import { open, rm } from 'node:fs/promises';
import path from 'node:path';
import sharp from 'sharp';
import { tissueMask } from '../src/imaging/wsi-tissue.ts';
import { synthesiseSlide } from '../src/imaging/wsi/synth.ts';

const TILE = 512;
/** Downsample of each pyramid level, as Aperio writes them. */
const LEVELS = [1, 4, 16, 64] as const;

async function tilePool(): Promise<Buffer[]> {
  const sources = ['samples/tissue-tumour-like.png', 'samples/tissue-benign-like.png'];
  const pool: Buffer[] = [];
  for (const file of sources) {
    const base = sharp(file).resize(TILE, TILE, { fit: 'cover' }).removeAlpha();
    for (const angle of [0, 90, 180, 270]) {
      for (const flip of [false, true]) {
        let p = base.clone().rotate(angle);
        if (flip) p = p.flop();
        pool.push(await p.jpeg({ quality: 92, chromaSubsampling: '4:4:4' }).toBuffer());
      }
    }
  }
  return pool;
}

interface Entry { tag: number; type: number; count: number; value: Buffer }

const SHORT = 3, LONG = 4, RATIONAL = 5, LONG8 = 16;

function entry(tag: number, type: number, values: number[]): Entry {
  const size = { [SHORT]: 2, [LONG]: 4, [RATIONAL]: 8, [LONG8]: 8 }[type] as number;
  const value = Buffer.alloc(values.length * size);
  values.forEach((v, i) => {
    if (type === SHORT) value.writeUInt16LE(v, i * 2);
    else if (type === LONG) value.writeUInt32LE(v, i * 4);
    else if (type === RATIONAL) { value.writeUInt32LE(Math.round(v * 1000), i * 8); value.writeUInt32LE(1000, i * 8 + 4); }
    else value.writeBigUInt64LE(BigInt(v), i * 8);
  });
  return { tag, type, count: type === RATIONAL ? values.length : values.length, value };
}

export interface BigSlide { path: string; width: number; height: number; bytes: number; tiles: number; seconds: number }

/** Writes the slide; width and height are level-0 pixels at `mpp` µm per pixel. */
export async function writeBigSlide(out: string, width: number, height: number, mpp = 0.25): Promise<BigSlide> {
  const t0 = performance.now();
  const pool = await tilePool();
  const glass = await sharp({ create: { width: TILE, height: TILE, channels: 3, background: { r: 243, g: 240, b: 242 } } }).jpeg({ quality: 92, chromaSubsampling: '4:4:4' }).toBuffer();
  // The tissue map at the smallest level, from the same drawing as `dxflow slide synth`.
  const mapWidth = Math.ceil(width / 64);
  const mapHeight = Math.ceil(height / 64);
  const mapFile = `${out}.map.tif`;
  await synthesiseSlide({ width: mapWidth, height: mapHeight, out: mapFile, compression: 'none', tileSize: 256, seed: 5 });
  const map = await sharp(mapFile, { page: 0 }).removeAlpha().raw().toBuffer({ resolveWithObject: true });
  await rm(mapFile);
  const mask = tissueMask({ data: map.data, width: map.info.width, height: map.info.height });
  const tissueAt = (x0: number, y0: number, side: number): boolean => {
    // Any tissue in the map pixels this tile covers.
    const mx0 = Math.floor(x0 / 64), my0 = Math.floor(y0 / 64);
    const mx1 = Math.min(mask.width, Math.ceil((x0 + side) / 64)), my1 = Math.min(mask.height, Math.ceil((y0 + side) / 64));
    for (let y = my0; y < my1; y++) for (let x = mx0; x < mx1; x++) if (mask.mask[y * mask.width + x]) return true;
    return false;
  };

  const file = await open(out, 'w');
  let position = 16;
  let tiles = 0;
  const write = async (b: Buffer): Promise<number> => {
    const at = position;
    await file.write(b, 0, b.length, at);
    position += b.length;
    return at;
  };
  try {
    const ifds: Array<{ entries: Entry[] }> = [];
    for (const [index, downsample] of LEVELS.entries()) {
      const lw = Math.ceil(width / downsample);
      const lh = Math.ceil(height / downsample);
      const across = Math.ceil(lw / TILE);
      const down = Math.ceil(lh / TILE);
      const offsets: number[] = [];
      const counts: number[] = [];
      for (let r = 0; r < down; r++) {
        for (let c = 0; c < across; c++) {
          let jpeg: Buffer;
          if (downsample === 64) {
            // The smallest level holds the map's own pixels.
            const w = Math.min(TILE, lw - c * TILE), h = Math.min(TILE, lh - r * TILE);
            jpeg = await sharp(map.data, { raw: { width: map.info.width, height: map.info.height, channels: 3 } })
              .extract({ left: c * TILE, top: r * TILE, width: w, height: h })
              .extend({ right: TILE - w, bottom: TILE - h, background: { r: 243, g: 240, b: 242 } })
              .jpeg({ quality: 92, chromaSubsampling: '4:4:4' }).toBuffer();
          } else {
            const side = TILE * downsample;
            jpeg = tissueAt(c * side, r * side, side) ? pool[(r * 7 + c * 13) % pool.length] as Buffer : glass;
          }
          offsets.push(await write(jpeg));
          counts.push(jpeg.length);
          tiles++;
        }
      }
      const pixelsPerCm = 10_000 / (mpp * downsample);
      ifds.push({
        entries: [
          entry(254, LONG, [index === 0 ? 0 : 1]),
          entry(256, LONG, [lw]),
          entry(257, LONG, [lh]),
          entry(258, SHORT, [8, 8, 8]),
          entry(259, SHORT, [7]),
          entry(262, SHORT, [6]),
          entry(277, SHORT, [3]),
          entry(282, RATIONAL, [pixelsPerCm]),
          entry(283, RATIONAL, [pixelsPerCm]),
          entry(284, SHORT, [1]),
          entry(296, SHORT, [3]),
          // Every tile is encoded with full-resolution chroma.
          entry(530, SHORT, [1, 1]),
          entry(322, SHORT, [TILE]),
          entry(323, SHORT, [TILE]),
          entry(324, LONG8, offsets),
          entry(325, LONG8, counts),
        ],
      });
    }
    // IFDs after the tiles, each entry's out-of-line values just before it; then the header's pointer.
    let previousNextPointer = 8;
    for (const ifd of ifds) {
      const external = new Map<Entry, number>();
      for (const e of ifd.entries) if (e.value.length > 8) external.set(e, await write(e.value));
      if (position % 2) await write(Buffer.alloc(1));
      const block = Buffer.alloc(8 + ifd.entries.length * 20 + 8);
      block.writeBigUInt64LE(BigInt(ifd.entries.length), 0);
      ifd.entries.forEach((e, i) => {
        const at = 8 + i * 20;
        block.writeUInt16LE(e.tag, at);
        block.writeUInt16LE(e.type, at + 2);
        block.writeBigUInt64LE(BigInt(e.count), at + 4);
        const ext = external.get(e);
        if (ext === undefined) e.value.copy(block, at + 12);
        else block.writeBigUInt64LE(BigInt(ext), at + 12);
      });
      const at = await write(block);
      const pointer = Buffer.alloc(8);
      pointer.writeBigUInt64LE(BigInt(at));
      await file.write(pointer, 0, 8, previousNextPointer);
      previousNextPointer = at + block.length - 8;
    }
    const header = Buffer.from([0x49, 0x49, 43, 0, 8, 0, 0, 0]);
    await file.write(header, 0, 8, 0);
  } finally {
    await file.close();
  }
  return { path: path.resolve(out), width, height, bytes: position, tiles, seconds: (performance.now() - t0) / 1000 };
}

if (import.meta.main) {
  const [out = '/tmp/big-slide.tif', w = '160000', h = '120000'] = process.argv.slice(2);
  const slide = await writeBigSlide(out, Number(w), Number(h));
  process.stdout.write(`${JSON.stringify(slide)}\n`);
}
