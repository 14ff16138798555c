import { open, rename, rm, type FileHandle } from 'node:fs/promises';
import { AppError } from '../../core/errors.ts';
import { type ByteSource, readRange } from './byte-source.ts';
import { isAperioDescription, parseAperioDescription } from './svs.ts';
import { type Layout, type RawEntry, readEntries, readTiff, TAG, type TiffDirectory } from './tiff-directory.ts';

// Whole-slide de-identification: a derivative TIFF that keeps the pyramid (and the thumbnail) and
// leaves out everything that can carry patient identity. It follows the DICOM PS3.15 Annex E Basic
// Application Level Confidentiality Profile in spirit: the slide label (which shows the patient name
// and accession barcode) and the macro image (which shows the label too) are not copied; dates, times,
// operator, file names, barcodes and device serials are removed (the Basic Profile removes Device
// Serial Number too, unless the Retain Device Identity Option is chosen). Metadata is kept by
// ALLOWLIST: a tag or an Aperio key that is not listed here is not copied, so an unexpected vendor
// field cannot leak.
//
// Tiles are copied byte for byte (no re-encoding, so no loss) and streamed range by range; only the
// bytes the kept directories point at are copied, so free space in the input (where an editor may have
// left an old label) never reaches the output. What this cannot see: text inside the compressed tile
// streams themselves (a JPEG COM segment), and identity burned into the pixels of the scanned tissue.

export interface DeidentifyOptions {
  /** Keep the slide thumbnail (a downscaled view of the scanned area, not of the label). Default true. */
  keepThumbnail?: boolean;
}

export interface DeidentifyResult {
  /** Images not copied: 'label', 'macro', 'thumbnail' (when dropped) or 'image-N' (N = directory index). */
  removed: string[];
  /** Metadata not copied, by name only (never the value): e.g. 'ImageDescription: Filename', 'tag 306 DateTime'. */
  scrubbed: string[];
  /** Size of the written file. */
  bytes: number;
}

/**
 * Tags copied unchanged: what a reader needs to lay out and decode the pixels and to know their
 * physical size and colour. Everything else is dropped. The offset/byte-count tags are rewritten and
 * the ImageDescription is rebuilt (Aperio) or dropped (other TIFFs) separately.
 */
const COPIED_TAGS = new Set<number>([
  254, // NewSubfileType
  256, 257, // ImageWidth, ImageLength
  258, 259, 262, // BitsPerSample, Compression, PhotometricInterpretation
  266, 274, // FillOrder, Orientation
  277, 278, // SamplesPerPixel, RowsPerStrip
  282, 283, 284, 296, // XResolution, YResolution, PlanarConfiguration, ResolutionUnit
  301, 317, 318, 319, 320, // TransferFunction, Predictor, WhitePoint, PrimaryChromaticities, ColorMap
  322, 323, // TileWidth, TileLength
  338, 339, 340, 341, // ExtraSamples, SampleFormat, SMinSampleValue, SMaxSampleValue
  347, // JPEGTables
  529, 530, 531, 532, // YCbCrCoefficients, YCbCrSubSampling, YCbCrPositioning, ReferenceBlackWhite
  34675, // InterColorProfile (ICC): colour rendering of the pixels
]);

/** Tile and strip offsets and byte counts: rewritten for the new file. */
const BLOCK_TAGS = new Set<number>([TAG.StripOffsets, TAG.StripByteCounts, TAG.TileOffsets, TAG.TileByteCounts]);

/** Names of dropped tags worth naming in the report; other dropped tags are reported by number. */
const TAG_NAMES: Record<number, string> = {
  269: 'DocumentName', 270: 'ImageDescription', 285: 'PageName', 305: 'Software', 306: 'DateTime', 315: 'Artist',
  316: 'HostComputer', 330: 'SubIFDs', 513: 'JPEGInterchangeFormat', 514: 'JPEGInterchangeFormatLength', 700: 'XMP',
  32997: 'ImageDepth', 33432: 'Copyright', 33723: 'IPTC', 34377: 'Photoshop', 34665: 'ExifIFD', 34853: 'GPSIFD',
  37724: 'ImageSourceData', 42016: 'ImageUniqueID',
};

const NUMBER = /^[-+]?\d+(\.\d+)?([eE][-+]?\d+)?$/;

/**
 * Aperio "Key = Value" pairs kept: optical and geometric scan parameters, each a number. Not kept:
 * Filename, Date, Time, Time Zone, User, Title, Barcode, Slide, Rack, ImageID, ScanScope ID and DSR ID
 * (device serials), Parmset and anything else a scanner version adds.
 */
const APERIO_KEYS = new Set([
  'AppMag', 'MPP', 'StripeWidth', 'OriginalWidth', 'OriginalHeight', 'Left', 'Top', 'LineCameraSkew',
  'LineAreaXOffset', 'LineAreaYOffset', 'Focus Offset', 'Exposure Time', 'Exposure Scale', 'Display Color', 'Filtered',
]);

/** Words of the Aperio header's first line (the writer's name and version). */
const APERIO_LIBRARY_WORDS = new Set(['Aperio', 'Image', 'Library', 'Leica', 'Biosystems', 'ScanScope']);
const VERSION = /^v?\d+(\.\d+)*$/;
const MODEL = /^[A-Z]{1,4}\d{1,4}$/;
/** Tokens of the header's second line: "46000x32914 [0,100 46000x32914] (256x256) JPEG/RGB Q=70", "-> 1150x822 -". */
const GEOMETRY = /^[0-9x[\](),\->]+$/;
const CODEC = /^(JPEG|J2K|JP2K|RAW|LZW|DEFLATE)\/(RGB|YUV\d*|YCC|YCBCR)$/i;
const QUALITY = /^Q=\d+$/;

/** Largest run of consecutive tiles read in one range request. */
const RUN_BYTES = 8 * 1024 * 1024;
/** Small writes are gathered into blocks of this size. */
const WRITE_BLOCK = 1024 * 1024;

function flatten(directories: TiffDirectory[]): TiffDirectory[] {
  return directories.flatMap((d) => [d, ...flatten(d.subDirectories)]);
}

/** Rebuilds an Aperio description from its allowlisted parts; `scrubbed` collects what was left out. */
export function scrubAperioDescription(description: string, scrubbed: Set<string>): string {
  const [headerText = '', ...pairs] = description.split('|');
  const [libraryLine = '', geometryLine = '', ...moreLines] = headerText.split(/\r?\n/);
  const keepTokens = (line: string, allowed: (token: string) => boolean): string => {
    const tokens = line.trim().split(/\s+/).filter((t) => t !== '');
    const kept = tokens.filter(allowed);
    if (kept.length < tokens.length) scrubbed.add('ImageDescription: header text');
    return kept.join(' ');
  };
  const library = keepTokens(libraryLine, (t) => APERIO_LIBRARY_WORDS.has(t) || VERSION.test(t) || MODEL.test(t));
  const geometry = keepTokens(geometryLine, (t) => GEOMETRY.test(t) || CODEC.test(t) || QUALITY.test(t));
  if (moreLines.some((l) => l.trim() !== '')) scrubbed.add('ImageDescription: header text');
  const kept: string[] = [];
  for (const pair of pairs) {
    const eq = pair.indexOf('=');
    const key = (eq < 0 ? pair : pair.slice(0, eq)).trim();
    const value = eq < 0 ? '' : pair.slice(eq + 1).trim();
    if (APERIO_KEYS.has(key) && NUMBER.test(value)) kept.push(`${key} = ${value}`);
    else if (key !== '') scrubbed.add(`ImageDescription: ${APERIO_KEYS.has(key) ? `${key} (not a number)` : key}`);
  }
  // The header must still start with "Aperio" so that readers recognise the vendor (svs.ts, OpenSlide).
  const header = `${library.startsWith('Aperio') ? library : `Aperio ${library}`.trim()}\r\n${geometry}`;
  return [header, ...kept].join('|');
}

interface Plan {
  kept: TiffDirectory[];
  removed: string[];
}

/** Chooses the directories to copy, with the same classification as openSlide (slide.ts). */
function plan(all: TiffDirectory[], aperio: boolean, keepThumbnail: boolean): Plan {
  const kept: TiffDirectory[] = [];
  const removed: string[] = [];
  for (const dir of all) {
    const words = (dir.description ?? '').toLowerCase();
    const aperioKind = aperio && isAperioDescription(dir.description) ? parseAperioDescription(dir.description).associated : undefined;
    if (aperioKind !== undefined) {
      removed.push(aperioKind);
    } else if (dir.tileWidth !== undefined) {
      kept.push(dir);
    } else if (aperio ? dir.index === 1 : (dir.newSubfileType & 1) === 1 && words.includes('thumbnail') && !/label|macro/.test(words)) {
      // A generic TIFF's reduced image is kept only when it says it is the thumbnail: an unnamed one
      // may be a label, and a label must never be copied by mistake.
      if (keepThumbnail) kept.push(dir);
      else removed.push('thumbnail');
    } else {
      removed.push(/label/.test(words) ? 'label' : /macro/.test(words) ? 'macro' : `image-${dir.index < 0 ? `at-${dir.offset}` : dir.index}`);
    }
  }
  return { kept, removed };
}

/** Sequential writer with positional patches, gathering small writes into larger ones. */
class OutputFile {
  position = 0;
  private readonly handle: FileHandle;
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private pendingStart = 0;

  constructor(handle: FileHandle) {
    this.handle = handle;
  }

  async append(bytes: Buffer): Promise<number> {
    const at = this.position;
    if (this.pendingBytes === 0) this.pendingStart = at;
    this.pending.push(bytes);
    this.pendingBytes += bytes.length;
    this.position += bytes.length;
    if (this.pendingBytes >= WRITE_BLOCK) await this.flush();
    return at;
  }

  /** Pads with zeros to a multiple of `alignment` (TIFF 6.0 §2: values and IFDs start on a word boundary). */
  async align(alignment: number): Promise<void> {
    const gap = (alignment - (this.position % alignment)) % alignment;
    if (gap > 0) await this.append(Buffer.alloc(gap));
  }

  async flush(): Promise<void> {
    if (this.pendingBytes === 0) return;
    const block = Buffer.concat(this.pending, this.pendingBytes);
    this.pending = [];
    this.pendingBytes = 0;
    await this.handle.write(block, 0, block.length, this.pendingStart);
  }

  async patch(at: number, bytes: Buffer): Promise<void> {
    await this.flush();
    await this.handle.write(bytes, 0, bytes.length, at);
  }
}

interface OutEntry {
  tag: number;
  type: number;
  count: number;
  value: Buffer;
}

function encoder(layout: Layout): { uint(value: number, size: number): Buffer; offsetSize: number } {
  const le = layout.littleEndian;
  const limit = layout.bigTiff ? Number.MAX_SAFE_INTEGER : 0xffff_ffff;
  return {
    offsetSize: layout.bigTiff ? 8 : 4,
    uint(value, size) {
      if (size >= 4 && value > limit) {
        throw new AppError('IMAGE_TOO_LARGE', `The de-identified file would pass byte ${value}, beyond the 4 GiB a classic TIFF can address; convert the slide to BigTIFF first.`);
      }
      const b = Buffer.alloc(size);
      if (size === 2) { if (le) b.writeUInt16LE(value); else b.writeUInt16BE(value); }
      else if (size === 4) { if (le) b.writeUInt32LE(value); else b.writeUInt32BE(value); }
      else if (le) b.writeBigUInt64LE(BigInt(value)); else b.writeBigUInt64BE(BigInt(value));
      return b;
    },
  };
}

/** Copies the tiles (or strips) of `dir` to `out`, coalescing adjacent ones into single range reads. */
async function copyBlocks(source: ByteSource, dir: TiffDirectory, out: OutputFile): Promise<{ offsets: number[]; counts: number[] }> {
  const n = Math.min(dir.offsets.length, dir.byteCounts.length);
  const offsets: number[] = new Array<number>(n).fill(0);
  const counts: number[] = new Array<number>(n).fill(0);
  let runStart = -1;
  let runEnd = -1;
  /** [block index, source offset] of the blocks in the current run. */
  let runBlocks: [number, number][] = [];
  const flushRun = async (): Promise<void> => {
    if (runBlocks.length === 0) return;
    const bytes = await readRange(source, runStart, runEnd - runStart, `tiles of the directory at byte ${dir.offset}`);
    await out.align(2);
    const at = await out.append(bytes);
    for (const [i, offset] of runBlocks) offsets[i] = at + (offset - runStart);
    runBlocks = [];
  };
  for (let i = 0; i < n; i++) {
    const [offset, count] = await Promise.all([dir.offsets.get(i), dir.byteCounts.get(i)]);
    counts[i] = count;
    // A tile the file leaves out (byte count 0) stays out: offset 0, count 0.
    if (count === 0) continue;
    if (runBlocks.length > 0 && offset === runEnd && runEnd + count - runStart <= RUN_BYTES) {
      runEnd += count;
    } else {
      await flushRun();
      runStart = offset;
      runEnd = offset + count;
    }
    runBlocks.push([i, offset]);
  }
  await flushRun();
  return { offsets, counts };
}

async function copiedValue(source: ByteSource, entry: RawEntry): Promise<Buffer> {
  return entry.bytes ?? readRange(source, entry.valueOffset, entry.byteLength, `tag ${entry.tag} values`);
}

function tagLabel(tag: number): string {
  const name = TAG_NAMES[tag];
  return name === undefined ? `tag ${tag}` : `tag ${tag} ${name}`;
}

/**
 * Writes a de-identified copy of the slide in `source` to `outPath` (classic TIFF or BigTIFF and the
 * byte order of the input). The file is written beside `outPath` under a temporary name and renamed
 * into place when complete, so a failure never leaves a half-written slide under the requested name.
 */
export async function deidentifySlide(source: ByteSource, outPath: string, options: DeidentifyOptions = {}): Promise<DeidentifyResult> {
  if (outPath.trim() === '') throw new AppError('INVALID_REQUEST', 'Name the file to write the de-identified slide to.');
  const tiff = await readTiff(source);
  const layout: Layout = { littleEndian: tiff.littleEndian, bigTiff: tiff.bigTiff };
  const aperio = isAperioDescription(tiff.directories[0]?.description);
  const { kept, removed } = plan(flatten(tiff.directories), aperio, options.keepThumbnail ?? true);
  if (!kept.some((d) => d.tileWidth !== undefined)) {
    throw new AppError('CORRUPT_IMAGE', 'The TIFF file has no tiled image, so it is not a whole-slide pyramid; there is nothing to de-identify.');
  }
  const rawEntries = await Promise.all(kept.map(async (d) => (await readEntries(source, layout, d.offset)).entries));

  const temporary = `${outPath}.${process.pid}.partial`;
  let handle: FileHandle;
  try {
    handle = await open(temporary, 'wx');
  } catch (e) {
    throw new AppError('INVALID_REQUEST', `Cannot write the de-identified slide to ${outPath}: ${(e as Error).message}`, { cause: e });
  }
  const scrubbed = new Set<string>();
  const { uint, offsetSize } = encoder(layout);
  try {
    const out = new OutputFile(handle);
    // Header: byte order, version, then the first IFD offset (patched once known).
    const header = Buffer.concat(layout.bigTiff
      ? [Buffer.from(layout.littleEndian ? 'II' : 'MM', 'latin1'), uint(43, 2), uint(8, 2), uint(0, 2), Buffer.alloc(8)]
      : [Buffer.from(layout.littleEndian ? 'II' : 'MM', 'latin1'), uint(42, 2), Buffer.alloc(4)]);
    await out.append(header);
    let nextPointerAt = layout.bigTiff ? 8 : 4;
    const arrayType = layout.bigTiff ? 16 : 4;
    const arraySize = layout.bigTiff ? 8 : 4;

    for (const [k, dir] of kept.entries()) {
      const entries = rawEntries[k] ?? new Map<number, RawEntry>();
      const tiled = dir.tileWidth !== undefined;
      const { offsets, counts } = await copyBlocks(source, dir, out);
      const outEntries: OutEntry[] = [];
      for (const entry of entries.values()) {
        if (COPIED_TAGS.has(entry.tag) && !(entry.tag === TAG.RowsPerStrip && tiled) && !((entry.tag === TAG.TileWidth || entry.tag === TAG.TileLength) && !tiled)) {
          outEntries.push({ tag: entry.tag, type: entry.type, count: entry.count, value: await copiedValue(source, entry) });
        } else if (entry.tag === TAG.ImageDescription && aperio && isAperioDescription(dir.description)) {
          const text = Buffer.from(scrubAperioDescription(dir.description, scrubbed) + '\0', 'latin1');
          outEntries.push({ tag: entry.tag, type: 2, count: text.length, value: text });
        } else if (!BLOCK_TAGS.has(entry.tag)) {
          scrubbed.add(tagLabel(entry.tag));
        }
      }
      const array = (values: number[]): Buffer => Buffer.concat(values.map((v) => uint(v, arraySize)));
      outEntries.push(
        { tag: tiled ? TAG.TileOffsets : TAG.StripOffsets, type: arrayType, count: offsets.length, value: array(offsets) },
        { tag: tiled ? TAG.TileByteCounts : TAG.StripByteCounts, type: arrayType, count: counts.length, value: array(counts) },
      );
      // TIFF 6.0 §2: the entries of an IFD are sorted by tag in ascending order.
      outEntries.sort((a, b) => a.tag - b.tag);
      const fields: Buffer[] = [];
      for (const entry of outEntries) {
        const field = Buffer.alloc(offsetSize);
        if (entry.value.length <= offsetSize) {
          entry.value.copy(field);
        } else {
          await out.align(layout.bigTiff ? 8 : 2);
          uint(await out.append(entry.value), offsetSize).copy(field);
        }
        fields.push(uint(entry.tag, 2), uint(entry.type, 2), uint(entry.count, layout.bigTiff ? 8 : 4), field);
      }
      await out.align(layout.bigTiff ? 8 : 2);
      const ifd = Buffer.concat([uint(outEntries.length, layout.bigTiff ? 8 : 2), ...fields, Buffer.alloc(offsetSize)]);
      const ifdAt = await out.append(ifd);
      await out.patch(nextPointerAt, uint(ifdAt, offsetSize));
      nextPointerAt = ifdAt + ifd.length - offsetSize;
    }
    await out.flush();
    await handle.sync();
    const bytes = out.position;
    await handle.close();
    await rename(temporary, outPath).catch((e: unknown) => {
      throw new AppError('INVALID_REQUEST', `Cannot write the de-identified slide to ${outPath}: ${(e as Error).message}`, { cause: e });
    });
    return { removed, scrubbed: [...scrubbed], bytes };
  } catch (e) {
    await handle.close().catch(() => undefined);
    await rm(temporary, { force: true });
    throw e;
  }
}
