// Benchmark: tile extraction from a whole slide — read + decode + tissue check + tensor packing — in
// tiles per second on one core, against OpenSlide (python3-openslide) and libvips (the vips CLI) on the
// same slide and the same tile grid.
//
//   npx node bench/wsi-tiles.ts          prints the Markdown section; exits non-zero without the peers
//
// Each side runs in its own process pinned to CPU 0 with `taskset -c 0`, so every thread it starts (the
// libuv pool that runs sharp's JPEG decodes here, libvips' workers, OpenSlide's) shares one core. This
// side also sets UV_THREADPOOL_SIZE=1 and sharp.concurrency(1). Timing is in-process on both per-tile
// sides (process.hrtime / time.perf_counter), after a warm-up pass, over a freshly opened slide whose
// tile cache is empty; the file itself is in the page cache for everyone.
import { spawnSync } from 'node:child_process';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { cpus, tmpdir } from 'node:os';
import path from 'node:path';
import { openFileSource } from '../src/imaging/wsi/byte-source.ts';
import { openSlide, type Slide } from '../src/imaging/wsi/slide.ts';
import { synthesiseSlide } from '../src/imaging/wsi/synth.ts';
import { tissueMask } from '../src/imaging/wsi-tissue.ts';
import { chooseLevel, tileGrid } from '../src/imaging/tile-grid.ts';

const PYTHON = '/usr/bin/python3';
const PEER = path.join(import.meta.dirname, 'wsi_tiles_peer.py');
const SELF = import.meta.filename;
const SLIDE_WIDTH = Number(process.env['BENCH_WSI_WIDTH'] ?? 40_000);
const SLIDE_HEIGHT = Number(process.env['BENCH_WSI_HEIGHT'] ?? 32_000);
const SLIDE_MPP = 0.25;
const SLIDE_TILE = 256;
const SLIDE_QUALITY = 85;
/** The tile model's input (a manifest's tileSize and targetMpp). */
const MODEL_TILE = 224;
const MODEL_MPP = 0.5;
/** Downsample at which the mask is computed: a 40 000-px slide gives a mask about 1 250 px wide. */
const MASK_DOWNSAMPLE = 32;
const BATCH = 32;
const CHECK_TILES = 4;
const WARMUP_TILES = 200;
// ImageNet normalisation, as torchvision's transforms.Normalize is configured for ImageNet models.
const MEAN = [0.485, 0.456, 0.406] as const;
const STD = [0.229, 0.224, 0.225] as const;

/** What both per-tile sides read: one region list at one level. Also the peer's input file. */
interface RegionSpec {
  slide: string;
  level: number;
  size: number;
  regions: Array<[number, number]>;
  mean: readonly number[];
  std: readonly number[];
  batch: number;
  /** Every tile of the grid, tissue or not: the whole-level decode compared with libvips. */
  allRegions: Array<[number, number]>;
  /** A tile passes the quick tissue check when its mean HSV saturation (0–255) is above this. */
  saturationThreshold: number;
  checkTiles: number;
  warmupTiles: number;
}

interface SideResult {
  tiles: number;
  seconds: number;
  /** Tiles that passed the quick tissue check. */
  kept: number;
  /** RGB bytes of the first checkTiles tiles, base64. */
  check: string[];
}

interface OurResult extends SideResult {
  /** Reading every tile of the grid, tissue or not (decode and region copy only): compared with libvips. */
  levelTiles: number;
  levelSeconds: number;
}

interface PeerResult extends SideResult {
  openslide: string;
  python: string;
  numpy: string;
}

export interface WsiTileBenchResult {
  node: string;
  cpu: string;
  cores: number;
  slide: { width: number; height: number; mpp: number; tileSize: number; quality: number; levels: string[]; bytes: number };
  grid: { tileSizeLevel0: number; cols: number; rows: number; kept: number; maskLevel: string; level: number; levelDownsample: number; levelPixels: number };
  ours: OurResult;
  openslide: PeerResult;
  vips: { version: string; tiles: number; pixels: number; seconds: number; startupSeconds: number };
  /** Largest |difference| of an RGB sample between our and OpenSlide's first CHECK_TILES tiles. */
  maxPixelDifference: number;
}

/**
 * One tile's quick tissue check and tensor packing in a single pass over its pixels: channel-first
 * float32 (v / 255 − mean) / std into `out` at `offset`; returns the mean HSV saturation (0–255).
 */
function packTile(rgb: Buffer, out: Float32Array, offset: number, pixels: number): number {
  const s0 = 1 / (255 * STD[0]);
  const s1 = 1 / (255 * STD[1]);
  const s2 = 1 / (255 * STD[2]);
  const o0 = -MEAN[0] / STD[0];
  const o1 = -MEAN[1] / STD[1];
  const o2 = -MEAN[2] / STD[2];
  const g = offset + pixels;
  const b = offset + 2 * pixels;
  let saturation = 0;
  for (let p = 0, i = 0; p < pixels; p++, i += 3) {
    const r = rgb[i] as number;
    const gr = rgb[i + 1] as number;
    const bl = rgb[i + 2] as number;
    out[offset + p] = r * s0 + o0;
    out[g + p] = gr * s1 + o1;
    out[b + p] = bl * s2 + o2;
    const max = r > gr ? (r > bl ? r : bl) : gr > bl ? gr : bl;
    const min = r < gr ? (r < bl ? r : bl) : gr < bl ? gr : bl;
    if (max > 0) saturation += (255 * (max - min)) / max;
  }
  return saturation / pixels;
}

async function extract(slide: Slide, spec: RegionSpec, regions: ReadonlyArray<[number, number]>, batch: Float32Array): Promise<number> {
  const pixels = spec.size * spec.size;
  let kept = 0;
  for (let i = 0; i < regions.length; i++) {
    const [x, y] = regions[i] as [number, number];
    const tile = await slide.readRegion(x, y, spec.level, spec.size, spec.size);
    if (packTile(tile.data, batch, (i % spec.batch) * 3 * pixels, pixels) > spec.saturationThreshold) kept++;
  }
  return kept;
}

/** The measured side of this platform, run in a child process pinned to one core (see the top). */
async function runWorker(specFile: string): Promise<OurResult> {
  const { default: sharp } = await import('sharp');
  sharp.concurrency(1);
  const spec = JSON.parse(await readFile(specFile, 'utf8')) as RegionSpec;
  const batch = new Float32Array(spec.batch * 3 * spec.size * spec.size);

  const warmSource = await openFileSource(spec.slide);
  await extract(await openSlide(warmSource), spec, spec.regions.slice(0, spec.warmupTiles), batch);
  await warmSource.close();

  const source = await openFileSource(spec.slide);
  try {
    const slide = await openSlide(source);
    const start = process.hrtime.bigint();
    const kept = await extract(slide, spec, spec.regions, batch);
    const seconds = Number(process.hrtime.bigint() - start) / 1e9;
    const check: string[] = [];
    for (const [x, y] of spec.regions.slice(0, spec.checkTiles)) {
      check.push((await slide.readRegion(x, y, spec.level, spec.size, spec.size)).data.toString('base64'));
    }
    const levelSeconds = await decodeAll(spec);
    return { tiles: spec.regions.length, seconds, kept, check, levelTiles: spec.allRegions.length, levelSeconds };
  } finally {
    await source.close();
  }
}

/** Seconds to read every tile of the grid (decode and region copy only), on a freshly opened slide. */
async function decodeAll(spec: RegionSpec): Promise<number> {
  const source = await openFileSource(spec.slide);
  try {
    const slide = await openSlide(source);
    let sink = 0;
    const start = process.hrtime.bigint();
    for (const [x, y] of spec.allRegions) sink += (await slide.readRegion(x, y, spec.level, spec.size, spec.size)).data[0] as number;
    const seconds = Number(process.hrtime.bigint() - start) / 1e9;
    if (sink < 0) throw new Error('unreachable: keeps the reads from being optimised away');
    return seconds;
  } finally {
    await source.close();
  }
}

function pinned(command: string, args: string[], env: NodeJS.ProcessEnv = {}): { stdout: string; seconds: number } {
  const start = process.hrtime.bigint();
  const run = spawnSync('taskset', ['-c', '0', command, ...args], {
    encoding: 'utf8', maxBuffer: 256 * 1024 * 1024, env: { ...process.env, ...env },
  });
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  if (run.error || run.status !== 0) throw new Error(`${command} ${args.join(' ')} failed: ${run.error?.message ?? run.stderr}`);
  return { stdout: run.stdout, seconds };
}

function checkPeersAvailable(): string {
  const probe = spawnSync(PYTHON, ['-c', 'import openslide, numpy'], { encoding: 'utf8' });
  if (probe.status !== 0) throw new Error(`${PYTHON} cannot import openslide and numpy, so there is no peer to compare with; install Debian's python3-openslide and python3-numpy`);
  const vips = spawnSync('vips', ['--version'], { encoding: 'utf8' });
  if (vips.status !== 0) throw new Error('the vips command is missing, so there is no libvips peer; install Debian\'s libvips-tools');
  if (spawnSync('taskset', ['-c', '0', 'true']).status !== 0) throw new Error('taskset -c 0 does not work here, so no side can be pinned to one core');
  return vips.stdout.trim();
}

/** Median wall time of `runs` runs of a vips command, pinned, with one libvips worker thread. */
function vipsSeconds(args: string[], runs: number): number {
  const times = Array.from({ length: runs }, () => pinned('vips', args, { VIPS_CONCURRENCY: '1' }).seconds).sort((a, b) => a - b);
  return times[Math.floor(times.length / 2)] as number;
}

/** Runs the benchmark and returns its data; throws when OpenSlide or the vips CLI is not installed. */
export async function measureWsiTiles(): Promise<WsiTileBenchResult> {
  const vipsVersion = checkPeersAvailable();
  const dir = await mkdtemp(path.join(tmpdir(), 'dxflow-bench-wsi-'));
  try {
    const slidePath = path.join(dir, 'slide.tif');
    process.stderr.write(`wsi tiles: synthesising a ${SLIDE_WIDTH}×${SLIDE_HEIGHT} slide…\n`);
    await synthesiseSlide({ width: SLIDE_WIDTH, height: SLIDE_HEIGHT, out: slidePath, tileSize: SLIDE_TILE, quality: SLIDE_QUALITY, compression: 'jpeg', bigtiff: true, mpp: SLIDE_MPP });

    const source = await openFileSource(slidePath);
    let spec: RegionSpec;
    let grid: WsiTileBenchResult['grid'];
    let levels: string[];
    try {
      const slide = await openSlide(source);
      levels = slide.levels.map((l) => `${l.width}×${l.height}`);
      const maskLevel = chooseLevel(slide.levels, MASK_DOWNSAMPLE);
      const low = slide.levels[maskLevel];
      if (low === undefined) throw new Error('unreachable: chooseLevel returns an existing level');
      const mask = tissueMask(await slide.readRegion(0, 0, maskLevel, low.width, low.height));
      const tiles = tileGrid({
        level0Width: SLIDE_WIDTH, level0Height: SLIDE_HEIGHT, slideMpp: slide.mpp?.x, targetMpp: MODEL_MPP, tileSize: MODEL_TILE,
        mask: mask.mask, maskWidth: mask.width, maskHeight: mask.height,
      });
      const downsample = tiles.tileSizeLevel0 / MODEL_TILE;
      const level = chooseLevel(slide.levels, downsample);
      const read = slide.levels[level];
      if (read === undefined) throw new Error('unreachable: chooseLevel returns an existing level');
      const levelDownsample = read.downsample;
      // Reading a 224-px region of the ×2 level is then exactly the model tile; any other level would
      // need a resize, which OpenSlide's read_region does not do and would make the sides differ.
      if (Math.abs(levelDownsample - downsample) > 1e-9) {
        throw new Error(`the slide has no level at downsample ${downsample} (the nearest below is ${levelDownsample}); choose a slide size divisible by the pyramid's factors`);
      }
      spec = {
        slide: slidePath, level, size: MODEL_TILE, regions: tiles.tiles.map((t) => [t.x, t.y]),
        allRegions: Array.from({ length: tiles.cols * tiles.rows }, (_, i) => [(i % tiles.cols) * tiles.tileSizeLevel0, Math.floor(i / tiles.cols) * tiles.tileSizeLevel0]),
        mean: MEAN, std: STD, batch: BATCH,
        saturationThreshold: mask.threshold, checkTiles: CHECK_TILES, warmupTiles: WARMUP_TILES,
      };
      grid = {
        tileSizeLevel0: tiles.tileSizeLevel0, cols: tiles.cols, rows: tiles.rows, kept: tiles.tiles.length,
        maskLevel: `${low.width}×${low.height}`, level, levelDownsample, levelPixels: read.width * read.height,
      };
    } finally {
      await source.close();
    }
    const specFile = path.join(dir, 'regions.json');
    await writeFile(specFile, JSON.stringify(spec));

    process.stderr.write(`wsi tiles: ${spec.regions.length} tiles, this reader…\n`);
    const ours = JSON.parse(pinned(process.execPath, [SELF, '--worker', specFile], { UV_THREADPOOL_SIZE: '1' }).stdout) as OurResult;
    process.stderr.write('wsi tiles: OpenSlide…\n');
    const openslide = JSON.parse(pinned(PYTHON, [PEER, specFile]).stdout) as PeerResult;

    process.stderr.write('wsi tiles: libvips…\n');
    // The vips CLI opens and decodes a whole page per call; the smallest page measures what a call
    // costs besides decoding (start-up, opening the file), which is taken off the full-level time.
    const startupSeconds = vipsSeconds(['avg', `${slidePath}[page=${levels.length - 1}]`], 3);
    const levelSeconds = vipsSeconds(['avg', `${slidePath}[page=${spec.level}]`], 3);
    const pixels = grid.levelPixels;

    let maxPixelDifference = 0;
    ours.check.forEach((tile, t) => {
      const a = Buffer.from(tile, 'base64');
      const b = Buffer.from(openslide.check[t] ?? '', 'base64');
      if (a.length !== b.length) throw new Error(`tile ${t}: this reader returned ${a.length} bytes, OpenSlide ${b.length}`);
      for (let i = 0; i < a.length; i++) maxPixelDifference = Math.max(maxPixelDifference, Math.abs((a[i] as number) - (b[i] as number)));
    });

    const { size } = await stat(slidePath);
    return {
      node: process.version,
      cpu: cpus()[0]?.model.trim() ?? 'CPU',
      cores: cpus().length,
      slide: { width: SLIDE_WIDTH, height: SLIDE_HEIGHT, mpp: SLIDE_MPP, tileSize: SLIDE_TILE, quality: SLIDE_QUALITY, levels, bytes: size },
      grid,
      ours,
      openslide,
      vips: { version: vipsVersion, tiles: pixels / (MODEL_TILE * MODEL_TILE), pixels, seconds: levelSeconds - startupSeconds, startupSeconds },
      maxPixelDifference,
    };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

const rate = (tiles: number, seconds: number) => tiles / seconds;
const fmt = (v: number) => (v >= 100 ? v.toFixed(0) : v.toFixed(1));

/** The Markdown section for BENCHMARKS.md. */
export function formatWsiTileBenchmark(r: WsiTileBenchResult): string {
  const oursRate = rate(r.ours.tiles, r.ours.seconds);
  const openslideRate = rate(r.openslide.tiles, r.openslide.seconds);
  const oursLevelRate = rate(r.ours.levelTiles, r.ours.levelSeconds);
  const vipsRate = rate(r.vips.tiles, r.vips.seconds);
  const levelSize = r.slide.levels[r.grid.level] ?? '';
  return [
    '## Tile extraction against OpenSlide and libvips',
    '',
    `A synthetic ${r.slide.width}×${r.slide.height} slide (\`synthesiseSlide\`: BigTIFF, JPEG q${r.slide.quality}, ${r.slide.tileSize}-px tiles,`,
    `${r.slide.mpp} µm/px, ${(r.slide.bytes / 1e6).toFixed(0)} MB; levels ${r.slide.levels.join(', ')}). The tissue mask is computed on the`,
    `${r.grid.maskLevel} level; the grid for a ${MODEL_TILE}-px, ${MODEL_MPP} µm/px tile model has ${r.grid.cols}×${r.grid.rows} tiles of ${r.grid.tileSizeLevel0}`,
    `level-0 px, of which ${r.grid.kept} hold tissue. A tile is the ${MODEL_TILE}×${MODEL_TILE} region of level ${r.grid.level} (${levelSize},`,
    `downsample ${r.grid.levelDownsample}) at the tile's level-0 corner, read in row-major order. Every side runs pinned to one core`,
    `(\`taskset -c 0\`). Node ${r.node}, ${r.cores} × ${r.cpu}.`,
    '',
    '### Read + decode + tissue check + tensor packing, the tissue tiles',
    '',
    '| side | tiles | seconds | tiles/s on one core | dxflow / side |',
    '|---|---|---|---|---|',
    `| dxflow | ${r.ours.tiles} | ${r.ours.seconds.toFixed(2)} | ${fmt(oursRate)} | 1.00× |`,
    `| OpenSlide ${r.openslide.openslide} (python3-openslide) | ${r.openslide.tiles} | ${r.openslide.seconds.toFixed(2)} | ${fmt(openslideRate)} | ${(oursRate / openslideRate).toFixed(2)}× |`,
    '',
    `- **dxflow**: \`slide.readRegion(x, y, ${r.grid.level}, ${MODEL_TILE}, ${MODEL_TILE})\` (TIFF tile lookup, positional file reads, JPEG decode`,
    '  by sharp, a 64-tile cache per level, copy into an RGB buffer), then one pass over the pixels that computes the mean HSV',
    '  saturation (the quick tissue check, against the mask\'s Otsu threshold) and writes the channel-first float32 tensor',
    `  (v / 255 − mean) / std, ImageNet mean and std, into one slot of a ${BATCH}-tile batch. A child process under`,
    '  `taskset -c 0` with `UV_THREADPOOL_SIZE=1` and `sharp.concurrency(1)`; each tile is awaited before the next is read.',
    `- **OpenSlide** (\`bench/wsi_tiles_peer.py\`, Python ${r.openslide.python}, numpy ${r.openslide.numpy}):`,
    `  \`slide.read_region((x, y), ${r.grid.level}, (${MODEL_TILE}, ${MODEL_TILE}))\` → RGBA PIL image → numpy RGB, the mean saturation in numpy, then the`,
    '  same normalisation written channel-first into a batch slot.',
    '',
    `Both time themselves in-process (\`process.hrtime\`, \`time.perf_counter\`) after a ${WARMUP_TILES}-tile warm-up, on a freshly`,
    'opened slide (empty tile cache); the file is in the page cache. Agreement: the quick tissue check passes',
    `${r.ours.kept} tiles here and ${r.openslide.kept} with OpenSlide; the largest |difference| of an RGB sample between the two over`,
    `the first ${CHECK_TILES} tiles is ${r.maxPixelDifference}${r.maxPixelDifference === 0 ? ' (the pixels are identical)' : ''}.`,
    '',
    '### Decode only, the whole level',
    '',
    `The \`vips\` CLI has no cheap per-region call: one process per tile would measure start-up and opening the file,`,
    'not extraction. So libvips is measured on what it does well in bulk — decoding a whole level — against this reader',
    'decoding the same level tile by tile, with no tissue check and no packing on either side.',
    '',
    '| side | tiles (224×224 equivalent) | seconds | tiles/s on one core | dxflow / side |',
    '|---|---|---|---|---|',
    `| dxflow, \`readRegion\` over all ${r.grid.cols}×${r.grid.rows} grid tiles | ${r.ours.levelTiles} | ${r.ours.levelSeconds.toFixed(2)} | ${fmt(oursLevelRate)} | 1.00× |`,
    `| libvips ${r.vips.version.replace(/^vips-/, '')}, \`vips avg slide.tif[page=${r.grid.level}]\` | ${fmt(r.vips.tiles)} | ${r.vips.seconds.toFixed(2)} | ${fmt(vipsRate)} | ${(oursLevelRate / vipsRate).toFixed(2)}× |`,
    '',
    `\`vips avg\` decodes every JPEG tile of level ${r.grid.level} once and sums the pixels; it runs under \`taskset -c 0\` with`,
    `\`VIPS_CONCURRENCY=1\`, median of 3 runs, minus the same command on the smallest page (${(r.vips.startupSeconds * 1000).toFixed(0)} ms of start-up and`,
    'file opening). Its tile count is the level\'s area over 224²; the grid leaves out the partial strip at the right and bottom',
    'edges (under one tile), so the dxflow count is slightly smaller. This compares decoders and tile handling, not the',
    'per-tile pipeline of the first table: libvips never assembles a 224-px region from the 256-px JPEG tiles.',
    '',
    'Reproduce: `npx node bench/wsi-tiles.ts` (slide size: `BENCH_WSI_WIDTH`, `BENCH_WSI_HEIGHT`; about a minute).',
    '',
  ].join('\n');
}

/** Runs the benchmark and returns its Markdown section (also printed when run directly). */
export async function runWsiTileBenchmark(): Promise<string> {
  return formatWsiTileBenchmark(await measureWsiTiles());
}

if (import.meta.main) {
  try {
    if (process.argv[2] === '--worker') {
      process.stdout.write(JSON.stringify(await runWorker(process.argv[3] ?? '')));
    } else {
      process.stdout.write(await runWsiTileBenchmark());
    }
  } catch (e) {
    process.stderr.write(`wsi tiles benchmark: ${(e as Error).message}\n`);
    process.exitCode = 1;
  }
}
