import { writeFile } from 'node:fs/promises';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { AppError } from '../core/errors.ts';
import { toPng } from '../imaging/raster.ts';
import { openFileSource } from '../imaging/wsi/byte-source.ts';
import { type DeidentifyResult, deidentifySlide } from '../imaging/wsi/deidentify.ts';
import { openSlide, type Slide, type SlideLevel } from '../imaging/wsi/slide.ts';
import { type SynthCompression, synthesiseSlide, type SynthOptions } from '../imaging/wsi/synth.ts';

// `dxflow slide …`: inspect whole-slide images, cut regions out of them as PNG, and write synthetic
// slides. Reading errors (damaged file, unsupported compression) are thrown as AppErrors for the
// command's error handler; usage mistakes return 2.

const OPTIONS = {
  level: { type: 'string' },
  x: { type: 'string' },
  y: { type: 'string' },
  width: { type: 'string' },
  height: { type: 'string' },
  out: { type: 'string' },
  'tile-size': { type: 'string' },
  quality: { type: 'string' },
  compression: { type: 'string' },
  bigtiff: { type: 'boolean' },
  mpp: { type: 'string' },
  seed: { type: 'string' },
  json: { type: 'boolean' },
  format: { type: 'string' },
} as const satisfies NonNullable<ParseArgsConfig['options']>;

/** For the command table in help.ts. */
export const SLIDE_COMMAND = {
  summary: 'Inspect whole-slide images (tiled TIFF, BigTIFF, Aperio SVS), export regions, write synthetic slides.',
  usage: 'dxflow slide info FILE [--format json] | region FILE --x X --y Y --width W --height H [--level N] --out OUT.png | synth --width W --height H --out OUT.tif [options] | deidentify FILE --out OUT',
  options: OPTIONS,
  details: [
    'info FILE              levels (size, downsample, tile size, compression), mpp, vendor, associated images',
    'region FILE            writes a PNG of W×H pixels of level N (default 0); X, Y are level-0 pixels',
    '                       (OpenSlide convention); pixels outside the slide are white',
    'synth OUT.tif          a pyramidal tiled TIFF with tissue-like content; options: --tile-size 256,',
    '                       --quality 85, --compression jpeg|lzw|deflate|none, --bigtiff, --mpp 0.25, --seed 1',
    'deidentify FILE        writes a copy without the label and macro images and without identifying',
    '                       metadata (allowlisted tags and Aperio keys only); tiles are copied unchanged',
  ],
};

export interface SlideInfo {
  file: string;
  bytes: number;
  vendor: Slide['vendor'];
  mpp: Slide['mpp'];
  levels: SlideLevel[];
  associated: Slide['associated'];
  properties: Slide['properties'];
}

export async function slideInfo(file: string): Promise<SlideInfo> {
  const source = await openFileSource(file);
  try {
    const slide = await openSlide(source);
    return { file, bytes: source.size, vendor: slide.vendor, mpp: slide.mpp, levels: slide.levels, associated: slide.associated, properties: slide.properties };
  } finally {
    await source.close();
  }
}

export interface RegionRequest {
  file: string;
  level: number;
  x: number;
  y: number;
  width: number;
  height: number;
  /** Path of the PNG to write. */
  out: string;
}

export async function slideRegion(request: RegionRequest): Promise<{ out: string; width: number; height: number }> {
  const source = await openFileSource(request.file);
  try {
    const slide = await openSlide(source);
    const region = await slide.readRegion(request.x, request.y, request.level, request.width, request.height);
    await writeFile(request.out, await toPng(region));
    return { out: request.out, width: region.width, height: region.height };
  } finally {
    await source.close();
  }
}

export async function slideDeidentify(file: string, out: string): Promise<DeidentifyResult> {
  const source = await openFileSource(file);
  try {
    return await deidentifySlide(source, out);
  } finally {
    await source.close();
  }
}

export function slideSynth(options: SynthOptions): Promise<{ width: number; height: number; out: string }> {
  return synthesiseSlide(options);
}

class UsageError extends Error {}

function integer(text: string | undefined, flag: string, fallback?: number): number {
  if (text === undefined) {
    if (fallback === undefined) throw new UsageError(`${flag} is required`);
    return fallback;
  }
  if (!/^-?[0-9]+$/.test(text)) throw new UsageError(`${flag} must be an integer, not "${text}"`);
  return Number(text);
}

function formatInfo(info: SlideInfo): string {
  const lines = [
    `${info.file}: ${info.vendor}, ${info.bytes} bytes, mpp ${info.mpp === undefined ? 'unknown' : `${info.mpp.x.toFixed(4)} × ${info.mpp.y.toFixed(4)} µm`}`,
    'LEVEL  WIDTH    HEIGHT   DOWNSAMPLE  TILE       COMPRESSION',
    ...info.levels.map((l, i) => `${String(i).padEnd(5)}  ${String(l.width).padEnd(7)}  ${String(l.height).padEnd(7)}  ${l.downsample.toFixed(3).padEnd(10)}  ${`${l.tileWidth}×${l.tileHeight}`.padEnd(9)}  ${l.compression}`),
    `associated: ${Object.entries(info.associated).map(([name, a]) => `${name} ${a.width}×${a.height}`).join(', ') || 'none'}`,
  ];
  return lines.join('\n') + '\n';
}

const COMPRESSIONS: readonly SynthCompression[] = ['jpeg', 'lzw', 'deflate', 'none'];

/** Runs `dxflow slide <args>`; args are everything after "slide". Returns the exit status. */
export async function slideCommand(
  args: readonly string[],
  deps: { out?: { write(text: string): unknown }; err?: { write(text: string): unknown } } = {},
): Promise<number> {
  const out = deps.out ?? process.stdout;
  const err = deps.err ?? process.stderr;
  let file: string | undefined;
  try {
    const { values, positionals } = parseArgs({ args: [...args], options: OPTIONS, allowPositionals: true, strict: true });
    const [action, ...rest] = positionals;
    const extra = rest.slice(1);
    file = rest[0];
    // synth names its output with --out (as region does) or as the argument.
    if (action === 'synth' && file === undefined) file = values.out;
    if (action !== undefined && file === undefined) throw new UsageError(`name the ${action === 'synth' ? 'output' : 'slide'} file`);
    if (values.format !== undefined && values.format !== 'json' && values.format !== 'text') throw new UsageError('--format must be json or text');
    if (extra.length > 0) throw new UsageError(`unexpected argument "${extra[0]}"`);
    switch (action) {
      case 'info': {
        const info = await slideInfo(file ?? '');
        out.write(values.json === true || values.format === 'json' ? JSON.stringify(info, null, 2) + '\n' : formatInfo(info));
        return 0;
      }
      case 'region': {
        if (values.out === undefined) throw new UsageError('--out is required (the PNG to write)');
        const written = await slideRegion({
          file: file ?? '',
          level: integer(values.level, '--level', 0),
          x: integer(values.x, '--x'),
          y: integer(values.y, '--y'),
          width: integer(values.width, '--width'),
          height: integer(values.height, '--height'),
          out: values.out,
        });
        out.write(`wrote ${written.out} (${written.width}×${written.height})\n`);
        return 0;
      }
      case 'synth': {
        const compression = values.compression ?? 'jpeg';
        if (!(COMPRESSIONS as readonly string[]).includes(compression)) throw new UsageError(`--compression must be one of ${COMPRESSIONS.join(', ')}`);
        const mpp = values.mpp === undefined ? undefined : Number(values.mpp);
        if (mpp !== undefined && !(mpp > 0)) throw new UsageError(`--mpp must be a positive number, not "${values.mpp}"`);
        const written = await slideSynth({
          out: file ?? '',
          width: integer(values.width, '--width'),
          height: integer(values.height, '--height'),
          tileSize: integer(values['tile-size'], '--tile-size', 256),
          quality: integer(values.quality, '--quality', 85),
          compression: compression as SynthCompression,
          bigtiff: values.bigtiff === true,
          ...(mpp === undefined ? {} : { mpp }),
          seed: integer(values.seed, '--seed', 1),
        });
        out.write(`wrote ${written.out} (${written.width}×${written.height}, ${compression})\n`);
        return 0;
      }
      case 'deidentify': {
        if (values.out === undefined) throw new UsageError('--out is required (the de-identified slide to write)');
        const result = await slideDeidentify(file ?? '', values.out);
        out.write(`wrote ${values.out} (${result.bytes} bytes)\nremoved: ${result.removed.join(', ') || 'none'}\nscrubbed: ${result.scrubbed.join(', ') || 'none'}\n`);
        return 0;
      }
      default:
        throw new UsageError(action === undefined ? 'name an action: info, region, synth or deidentify' : `unknown action "${action}": use info, region, synth or deidentify`);
    }
  } catch (e) {
    // parseArgs reports unknown options and missing option values as TypeErrors with a code.
    const isParseError = e instanceof TypeError && 'code' in e && String(e.code).startsWith('ERR_PARSE_ARGS');
    if (!(e instanceof UsageError) && !isParseError) {
      // A missing or unreadable slide file is the user's input, not an internal failure.
      if (e instanceof Error && 'code' in e && (e.code === 'ENOENT' || e.code === 'EACCES' || e.code === 'EISDIR')) {
        throw new AppError('INVALID_REQUEST', `Cannot open ${file ?? 'the file'}: ${e.message}`, { cause: e });
      }
      throw e;
    }
    err.write(`dxflow slide: ${(e as Error).message}\n\nUsage: ${SLIDE_COMMAND.usage}\n`);
    return 2;
  }
}
