import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { deflateSync } from 'node:zlib';
import sharp from 'sharp';
import { slideCommand } from '../../src/cli/slide.ts';
import { AppError } from '../../src/core/errors.ts';
import { fromBuffer } from '../../src/imaging/wsi/byte-source.ts';
import { deidentifySlide, scrubAperioDescription } from '../../src/imaging/wsi/deidentify.ts';
import { openSlide, type Slide } from '../../src/imaging/wsi/slide.ts';
import { synthesiseSlide } from '../../src/imaging/wsi/synth.ts';
import { readTiff } from '../../src/imaging/wsi/tiff-directory.ts';
import { openSlideMissing } from './openslide.ts';
import { splitJpeg, testPattern, writeTestTiff } from './tiff-writer.ts';

let dir = '';
before(async () => { dir = await mkdtemp(path.join(tmpdir(), 'dxflow-deid-')); });
after(async () => { if (dir !== '') await rm(dir, { recursive: true, force: true }); });

/** Strings planted in the metadata; none may survive de-identification in any encoding. */
const PLANTED = ['Doe^Jane', 'JANE DOE', 'DOE^JANE', 'BC-778899', '03/14/24', '09:26:53', '2024:03:14', 'SS1234', 'Ward 7 Rack', 'Müller'];

const APERIO_LEVEL0 = 'Aperio Image Library v12.0.0 \r\n600x400 [0,100 600x400] (64x64) RAW/RGB|AppMag = 20|MPP = 0.4990|ScanScope ID = SS1234'
  + '|Filename = DOE^JANE 2024|Date = 03/14/24|Time = 09:26:53|Time Zone = GMT+01:00|User = JANE DOE|Barcode = BC-778899'
  + '|Patient = Doe^Jane|Slide Name = Müller|Rack = Ward 7 Rack|Left = 25.1|Top = 18.2|Exposure Time = JANE DOE';

/** Pseudo-random bytes, so that the label's raw strip cannot occur by chance in the other images. */
function noise(length: number, seed: number): Buffer {
  const out = Buffer.alloc(length);
  let state = seed >>> 0;
  for (let i = 0; i < length; i++) {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    out[i] = state >>> 24;
  }
  return out;
}

/** BYTE, ASCII or UNDEFINED bytes as stored, or LONG numbers (encoded in the file's byte order). */
type ExtraTag = { tag: number; type: 1 | 2 | 7; value: Buffer } | { tag: number; type: 4; numbers: number[] };

/**
 * Rewrites directory 0 of a classic or BigTIFF file with extra tags appended (the writer in
 * tiff-writer.ts writes only the image tags): the new IFD goes at the end of the file, the header
 * points at it and it chains to the old next directory.
 */
function withExtraTags(file: Buffer, extra: ExtraTag[]): Buffer {
  const le = file.toString('latin1', 0, 2) === 'II';
  const big = (le ? file.readUInt16LE(2) : file.readUInt16BE(2)) === 43;
  const read = (at: number, size: number): number => size === 2 ? (le ? file.readUInt16LE(at) : file.readUInt16BE(at))
    : size === 4 ? (le ? file.readUInt32LE(at) : file.readUInt32BE(at)) : Number(le ? file.readBigUInt64LE(at) : file.readBigUInt64BE(at));
  const uint = (value: number, size: number): Buffer => {
    const b = Buffer.alloc(size);
    if (size === 2) { if (le) b.writeUInt16LE(value); else b.writeUInt16BE(value); }
    else if (size === 4) { if (le) b.writeUInt32LE(value); else b.writeUInt32BE(value); }
    else if (le) b.writeBigUInt64LE(BigInt(value)); else b.writeBigUInt64BE(BigInt(value));
    return b;
  };
  const offsetSize = big ? 8 : 4;
  const entrySize = big ? 20 : 12;
  const countSize = big ? 8 : 2;
  const first = read(big ? 8 : 4, offsetSize);
  const count = read(first, countSize);
  const entries: Buffer[] = [];
  for (let i = 0; i < count; i++) entries.push(file.subarray(first + countSize + i * entrySize, first + countSize + (i + 1) * entrySize));
  const next = read(first + countSize + count * entrySize, offsetSize);
  const parts: Buffer[] = [file];
  let size = file.length;
  const append = (b: Buffer): number => {
    if (size % 2 === 1) { parts.push(Buffer.alloc(1)); size++; }
    parts.push(b);
    size += b.length;
    return size - b.length;
  };
  for (const e of extra) {
    const value = e.type === 4 ? Buffer.concat(e.numbers.map((n) => uint(n, 4))) : e.value;
    const field = Buffer.alloc(offsetSize);
    if (value.length <= offsetSize) value.copy(field);
    else uint(append(value), offsetSize).copy(field);
    entries.push(Buffer.concat([uint(e.tag, 2), uint(e.type, 2), uint(e.type === 4 ? e.numbers.length : value.length, big ? 8 : 4), field]));
  }
  const tagOf = (entry: Buffer): number => le ? entry.readUInt16LE(0) : entry.readUInt16BE(0);
  entries.sort((a, b) => tagOf(a) - tagOf(b));
  const ifdAt = append(Buffer.concat([uint(entries.length, countSize), ...entries, uint(next, offsetSize)]));
  const out = Buffer.concat(parts);
  uint(ifdAt, offsetSize).copy(out, big ? 8 : 4);
  return out;
}

const ascii = (text: string): Buffer => Buffer.from(text + '\0', 'latin1');

/** Text tags, XMP, IPTC, a private vendor tag and ImageDepth, all carrying planted identifiers. */
const EXTRA_TAGS: ExtraTag[] = [
  { tag: 269, type: 2, value: ascii('DOE^JANE scan') },
  { tag: 306, type: 2, value: ascii('2024:03:14 09:26:53') },
  { tag: 315, type: 2, value: ascii('JANE DOE') },
  { tag: 316, type: 2, value: ascii('Ward 7 Rack host') },
  { tag: 700, type: 1, value: Buffer.from('<x:xmpmeta><dc:creator>Doe^Jane</dc:creator></x:xmpmeta>', 'utf8') },
  { tag: 32997, type: 4, numbers: [1] },
  { tag: 33723, type: 7, value: Buffer.from('IPTC BC-778899 Müller', 'utf8') },
  { tag: 40000, type: 7, value: Buffer.from('vendor blob JANE DOE', 'latin1') },
];

const LABEL = { width: 90, height: 70, pixels: noise(90 * 70 * 3, 7) };
const MACRO = { width: 120, height: 40, pixels: noise(120 * 40 * 3, 11) };

/** 300×200 level of 64×64 JPEG tiles sharing a JPEGTables stream, as Aperio writes them. */
async function jpegLevel(): Promise<{ tiles: Buffer[]; tables: Buffer }> {
  const pattern = testPattern(300, 200);
  const tiles: Buffer[] = [];
  let tables: Buffer = Buffer.alloc(0);
  for (let row = 0; row < 4; row++) {
    for (let col = 0; col < 5; col++) {
      const block = Buffer.alloc(64 * 64 * 3, 255);
      for (let y = 0; y < 64 && row * 64 + y < 200; y++) {
        const n = Math.min(64, 300 - col * 64);
        pattern.copy(block, y * 64 * 3, ((row * 64 + y) * 300 + col * 64) * 3, ((row * 64 + y) * 300 + col * 64 + n) * 3);
      }
      const jpeg = await sharp(block, { raw: { width: 64, height: 64, channels: 3 } }).jpeg({ quality: 90, chromaSubsampling: '4:4:4' }).toBuffer();
      const split = splitJpeg(jpeg);
      tables = split.tables;
      tiles.push(split.tile);
    }
  }
  return { tiles, tables };
}

async function aperioSlide(littleEndian: boolean, bigTiff: boolean): Promise<Buffer> {
  const { tiles, tables } = await jpegLevel();
  return withExtraTags(writeTestTiff([
    { width: 600, height: 400, pixels: testPattern(600, 400), tile: 64, deflate: true, description: APERIO_LEVEL0 },
    { width: 150, height: 100, pixels: testPattern(150, 100), description: 'Aperio Image Library v12.0.0 \r\n600x400 -> 150x100 - |AppMag = 20|Date = 03/14/24' },
    { width: 300, height: 200, pixels: testPattern(300, 200), tile: 64, compression: 7, photometric: 6, encodedTiles: tiles, jpegTables: tables, description: 'Aperio Image Library v12.0.0 \r\n600x400 -> 300x200 JPEG/RGB Q=90|AppMag = 20|User = JANE DOE' },
    { ...LABEL, newSubfileType: 1, description: 'Aperio Image Library v12.0.0\r\nlabel 90x70|Barcode = BC-778899' },
    { ...MACRO, newSubfileType: 9, deflate: true, description: 'Aperio Image Library v12.0.0\r\nmacro 120x40' },
  ], { littleEndian, bigTiff }), EXTRA_TAGS);
}

function findPlanted(bytes: Buffer): string[] {
  return PLANTED.filter((s) => bytes.includes(Buffer.from(s, 'utf8')) || bytes.includes(Buffer.from(s, 'latin1')));
}

/** Raw pixels of every kept level and the thumbnail must read the same before and after. */
async function assertSamePixels(before: Slide, after: Slide): Promise<void> {
  assert.deepEqual(after.levels, before.levels);
  for (const [level, info] of before.levels.entries()) {
    const regions: [number, number, number, number][] = [
      [0, 0, Math.min(info.width, 97), Math.min(info.height, 61)],
      [Math.floor(info.width / 3), Math.floor(info.height / 2), Math.min(130, info.width), Math.min(90, info.height)],
      [0, 0, info.width, info.height],
    ];
    for (const [x, y, w, h] of regions) {
      const ds = info.downsample;
      const [a, b] = await Promise.all([before.readRegion(Math.round(x * ds), Math.round(y * ds), level, w, h), after.readRegion(Math.round(x * ds), Math.round(y * ds), level, w, h)]);
      assert.ok(a.data.equals(b.data), `level ${level} region ${x},${y} ${w}×${h}`);
    }
  }
  if ('thumbnail' in before.associated) assert.ok((await before.readAssociated('thumbnail')).data.equals((await after.readAssociated('thumbnail')).data), 'thumbnail');
}

/** The stored bytes of every tile of the tiled levels are identical (no re-encoding). */
async function assertSameTiles(input: Buffer, output: Buffer): Promise<void> {
  const tiled = async (bytes: Buffer) => (await readTiff(fromBuffer(bytes))).directories.filter((d) => d.tileWidth !== undefined);
  const [a, b] = await Promise.all([tiled(input), tiled(output)]);
  assert.equal(b.length, a.length);
  for (const [k, da] of a.entries()) {
    const db = b[k];
    assert.ok(db !== undefined);
    assert.equal(db.offsets.length, da.offsets.length);
    for (let i = 0; i < da.offsets.length; i++) {
      const ta = input.subarray(await da.offsets.get(i), (await da.offsets.get(i)) + (await da.byteCounts.get(i)));
      const tb = output.subarray(await db.offsets.get(i), (await db.offsets.get(i)) + (await db.byteCounts.get(i)));
      assert.ok(ta.equals(tb), `directory ${k} tile ${i}`);
    }
  }
}

describe('Aperio slide with label, macro and identifiers in its metadata', () => {
  for (const [littleEndian, bigTiff] of [[true, false], [false, false], [false, true], [true, true]] as const) {
    const kind = `${littleEndian ? 'little' : 'big'}-endian ${bigTiff ? 'BigTIFF' : 'TIFF'}`;
    test(`${kind}: no label, macro or planted identifier in the output; pyramid and tiles unchanged`, async () => {
      const input = await aperioSlide(littleEndian, bigTiff);
      // The test only means something if the input does carry everything that must be removed.
      assert.deepEqual(findPlanted(input), PLANTED);
      const labelStrip = LABEL.pixels.subarray(0, 90 * 16 * 3);
      const macroStrip = deflateSync(MACRO.pixels.subarray(0, 120 * 16 * 3));
      assert.ok(input.includes(labelStrip) && input.includes(macroStrip));
      const original = await openSlide(fromBuffer(input));
      assert.deepEqual(Object.keys(original.associated).sort(), ['label', 'macro', 'thumbnail']);

      const out = path.join(dir, `aperio-${littleEndian ? 'le' : 'be'}-${bigTiff ? 'big' : 'classic'}.svs`);
      const result = await deidentifySlide(fromBuffer(input), out);
      const output = await readFile(out);
      assert.equal(result.bytes, output.length);
      assert.deepEqual(result.removed.sort(), ['label', 'macro']);
      for (const name of ['ImageDescription: Filename', 'ImageDescription: Date', 'ImageDescription: Time', 'ImageDescription: Time Zone', 'ImageDescription: User',
        'ImageDescription: Barcode', 'ImageDescription: Patient', 'ImageDescription: Slide Name', 'ImageDescription: Rack', 'ImageDescription: ScanScope ID',
        'ImageDescription: Exposure Time (not a number)', 'tag 269 DocumentName', 'tag 306 DateTime', 'tag 315 Artist', 'tag 316 HostComputer', 'tag 700 XMP',
        'tag 32997 ImageDepth', 'tag 33723 IPTC', 'tag 40000']) {
        assert.ok(result.scrubbed.includes(name), `scrubbed lists ${name}: ${result.scrubbed.join(', ')}`);
      }
      // No reported name carries a value.
      assert.deepEqual(findPlanted(Buffer.from(result.scrubbed.join('\n'))), []);

      assert.deepEqual(findPlanted(output), []);
      assert.ok(!output.includes(labelStrip), 'the label pixels are not in the output');
      assert.ok(!output.includes(macroStrip), 'the macro strip is not in the output');

      const tiff = await readTiff(fromBuffer(output));
      assert.equal(tiff.littleEndian, littleEndian);
      assert.equal(tiff.bigTiff, bigTiff);
      assert.equal(tiff.directories.length, 3);
      // TIFF 6.0 §2: directories start on a word boundary (8 bytes chosen for BigTIFF).
      assert.ok(tiff.directories.every((d) => d.offset % (bigTiff ? 8 : 2) === 0), 'aligned directories');
      assert.equal(tiff.directories[0]?.description, 'Aperio Image Library v12.0.0\r\n600x400 [0,100 600x400] (64x64) RAW/RGB|AppMag = 20|MPP = 0.4990|Left = 25.1|Top = 18.2');
      const inputTables = (await readTiff(fromBuffer(input))).directories[2]?.jpegTables;
      assert.ok(inputTables !== undefined && tiff.directories[2]?.jpegTables?.equals(inputTables), 'JPEGTables copied unchanged');

      const slide = await openSlide(fromBuffer(output));
      assert.equal(slide.vendor, 'aperio');
      assert.deepEqual(slide.associated, { thumbnail: { width: 150, height: 100 } });
      assert.deepEqual(slide.properties, { AppMag: '20', MPP: '0.4990', Left: '25.1', Top: '18.2' });
      assert.deepEqual(slide.mpp, original.mpp);
      await assertSamePixels(original, slide);
      await assertSameTiles(input, output);
    });
  }

  test('keepThumbnail: false leaves the thumbnail out as well', async () => {
    const out = path.join(dir, 'no-thumbnail.svs');
    const result = await deidentifySlide(fromBuffer(await aperioSlide(true, false)), out, { keepThumbnail: false });
    assert.deepEqual(result.removed.sort(), ['label', 'macro', 'thumbnail']);
    const slide = await openSlide(fromBuffer(await readFile(out)));
    assert.deepEqual(slide.associated, {});
    assert.equal(slide.levels.length, 2);
  });

  test('OpenSlide opens the output and finds no label, macro or identifying property', { skip: openSlideMissing() }, async () => {
    const out = path.join(dir, 'openslide-check.svs');
    await deidentifySlide(fromBuffer(await aperioSlide(true, false)), out);
    const script = 'import sys, json, openslide\ns = openslide.OpenSlide(sys.argv[1])\n'
      + 'print(json.dumps({"vendor": s.properties.get("openslide.vendor"), "associated": sorted(s.associated_images.keys()), "levels": s.level_dimensions, "properties": dict(s.properties)}))';
    const run = spawnSync('/usr/bin/python3', ['-c', script, out], { encoding: 'utf8' });
    assert.equal(run.status, 0, run.stderr);
    const report = JSON.parse(run.stdout) as { vendor: string; associated: string[]; levels: number[][]; properties: Record<string, string> };
    assert.equal(report.vendor, 'aperio');
    assert.deepEqual(report.associated, ['thumbnail']);
    assert.deepEqual(report.levels, [[600, 400], [300, 200]]);
    assert.equal(report.properties['aperio.AppMag'], '20');
    for (const key of ['aperio.Filename', 'aperio.Date', 'aperio.User', 'aperio.Barcode', 'aperio.ScanScope ID']) assert.ok(!(key in report.properties), key);
    assert.deepEqual(findPlanted(Buffer.from(run.stdout)), []);
  });
});

describe('generic tiled TIFF', () => {
  test('JPEG pyramid (classic and BigTIFF): free-text description dropped, pixels identical', async () => {
    for (const bigtiff of [false, true]) {
      const file = path.join(dir, `synth-${bigtiff ? 'big' : 'classic'}.tif`);
      await synthesiseSlide({ width: 1500, height: 1000, out: file, compression: 'jpeg', bigtiff, quality: 85 });
      const input = withExtraTags(await readFile(file), [{ tag: 270, type: 2, value: ascii('Biopsy of JANE DOE, 03/14/24') }, ...EXTRA_TAGS]);
      // Everything but the scanner serial, which only the Aperio description carries.
      assert.deepEqual(findPlanted(input), PLANTED.filter((s) => s !== 'SS1234'));
      const out = path.join(dir, `synth-${bigtiff ? 'big' : 'classic'}-deid.tif`);
      const result = await deidentifySlide(fromBuffer(input), out);
      const output = await readFile(out);
      assert.deepEqual(findPlanted(output), []);
      assert.deepEqual(result.removed, []);
      assert.ok(result.scrubbed.includes('tag 270 ImageDescription'));
      const tiff = await readTiff(fromBuffer(output));
      assert.equal(tiff.bigTiff, bigtiff);
      assert.ok(tiff.directories.every((d) => d.description === undefined));
      const [before, after] = await Promise.all([openSlide(fromBuffer(input)), openSlide(fromBuffer(output))]);
      assert.equal(after.vendor, 'generic-tiff');
      assert.deepEqual(after.mpp, before.mpp);
      await assertSamePixels(before, after);
      await assertSameTiles(input, output);
    }
  });

  test('reduced-resolution images: a named thumbnail is kept, a label and an unnamed image are not', async () => {
    const input = writeTestTiff([
      { width: 256, height: 192, pixels: testPattern(256, 192), tile: 64, description: 'Slide of JANE DOE' },
      { width: 64, height: 48, pixels: testPattern(64, 48), newSubfileType: 1, description: 'thumbnail' },
      { ...LABEL, newSubfileType: 1, description: 'label BC-778899' },
      { ...MACRO, newSubfileType: 1 },
    ], { littleEndian: false, bigTiff: false });
    const out = path.join(dir, 'generic-associated.tif');
    const result = await deidentifySlide(fromBuffer(input), out);
    assert.deepEqual(result.removed, ['label', 'image-3']);
    const output = await readFile(out);
    assert.deepEqual(findPlanted(output), []);
    assert.ok(!output.includes(LABEL.pixels.subarray(0, 90 * 16 * 3)));
    assert.ok(!output.includes(MACRO.pixels.subarray(0, 120 * 16 * 3)));
    const [before, after] = await Promise.all([openSlide(fromBuffer(input)), openSlide(fromBuffer(output))]);
    assert.deepEqual(after.associated, { thumbnail: { width: 64, height: 48 } });
    await assertSamePixels(before, after);
  });
});

describe('Aperio description scrubbing', () => {
  test('header words outside the allowlist and extra header lines are dropped', () => {
    const scrubbed = new Set<string>();
    const text = scrubAperioDescription('Aperio Image Library v11.2.1 JANE\r\n46000x32914 [0,100 46000x32914] (256x256) JPEG/RGB Q=70 DOE\r\nBC-778899|AppMag = 40|MPP = 0.2520|Title = Doe^Jane', scrubbed);
    assert.equal(text, 'Aperio Image Library v11.2.1\r\n46000x32914 [0,100 46000x32914] (256x256) JPEG/RGB Q=70|AppMag = 40|MPP = 0.2520');
    assert.deepEqual([...scrubbed].sort(), ['ImageDescription: Title', 'ImageDescription: header text']);
  });

  test('a reduced level keeps its geometry line', () => {
    const scrubbed = new Set<string>();
    assert.equal(scrubAperioDescription('Aperio Image Library v12.0.0 \r\n600x400 -> 150x100 - |AppMag = 20', scrubbed), 'Aperio Image Library v12.0.0\r\n600x400 -> 150x100 -|AppMag = 20');
    assert.equal(scrubbed.size, 0);
  });
});

describe('errors', () => {
  const isAppError = (code: string) => (e: unknown): boolean => {
    assert.ok(e instanceof AppError, String(e));
    assert.equal(e.code, code, e.message);
    return true;
  };

  test('a damaged input is CORRUPT_IMAGE and leaves no file behind', async () => {
    const out = path.join(dir, 'broken', 'out.svs');
    await rm(path.dirname(out), { recursive: true, force: true });
    const { mkdir } = await import('node:fs/promises');
    await mkdir(path.dirname(out));
    await assert.rejects(deidentifySlide(fromBuffer(Buffer.from('II*\0\x08\0\0\0\0\0', 'latin1')), out), isAppError('CORRUPT_IMAGE'));
    await assert.rejects(deidentifySlide(fromBuffer(Buffer.from('not a tiff at all', 'latin1')), out), isAppError('CORRUPT_IMAGE'));
    // A TIFF without any tiled image is not a slide.
    const stripped = writeTestTiff([{ width: 32, height: 32, pixels: testPattern(32, 32) }], { littleEndian: true, bigTiff: false });
    await assert.rejects(deidentifySlide(fromBuffer(stripped), out), isAppError('CORRUPT_IMAGE'));
    assert.deepEqual(await readdir(path.dirname(out)), []);
  });

  test('an output path that cannot be written is INVALID_REQUEST', async () => {
    const input = fromBuffer(await aperioSlide(true, false));
    await assert.rejects(deidentifySlide(input, path.join(dir, 'no-such-folder', 'out.svs')), isAppError('INVALID_REQUEST'));
    await assert.rejects(deidentifySlide(input, ''), isAppError('INVALID_REQUEST'));
    await assert.rejects(deidentifySlide(input, dir), isAppError('INVALID_REQUEST'));
  });
});

describe('dxflow slide deidentify', () => {
  test('writes the copy and reports what it removed', async () => {
    const file = path.join(dir, 'cli-in.svs');
    const out = path.join(dir, 'cli-out.svs');
    await writeFile(file, await aperioSlide(true, true));
    let text = '';
    const status = await slideCommand(['deidentify', file, '--out', out], { out: { write: (t: string) => { text += t; } } });
    assert.equal(status, 0);
    assert.match(text, /wrote .*cli-out\.svs/);
    assert.match(text, /removed: label, macro/);
    assert.deepEqual(findPlanted(text === '' ? Buffer.alloc(0) : Buffer.from(text)), []);
    assert.deepEqual(Object.keys((await openSlide(fromBuffer(await readFile(out)))).associated), ['thumbnail']);

    let err = '';
    assert.equal(await slideCommand(['deidentify', file], { err: { write: (t: string) => { err += t; } } }), 2);
    assert.match(err, /--out is required/);
  });
});
