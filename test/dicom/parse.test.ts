import assert from 'node:assert/strict';
import { test } from 'node:test';
import { deflateRawSync } from 'node:zlib';
import { dicomInfo } from '../../src/cli/dicom-info.ts';
import { AppError } from '../../src/core/errors.ts';
import { decodeDicomRgb, guardDicom, inspectDicom, parseDicom } from '../../src/dicom/index.ts';
import { readImageHeader } from '../../src/imaging/header.ts';
import { inspectImage } from '../../src/imaging/inspect.ts';
import { type DicomElement, dicomFile, element, imageElements, pixelData, us } from '../imaging/support/dicom-writer.ts';
import { deepNesting, deflatedFile, encapsulated, manyElements, metaEnd, nestedSequence, UID, withRawElements } from './build.ts';

// The structural guard in front of dicom-parser: hostile files get their specific code, quickly and
// without large allocations; valid files of every data set encoding are read.

const LIMITS = { maxPixels: 1_000_000, maxBytes: 64 * 1024 * 1024 };

/** The AppError `run` throws (sync or async), with how long it took and how much memory it added. */
async function refusal(run: () => unknown): Promise<{ error: AppError; ms: number; arrayBuffers: number }> {
  const before = process.memoryUsage().arrayBuffers;
  const started = performance.now();
  try {
    await run();
  } catch (error) {
    assert.ok(error instanceof AppError, `expected an AppError, got ${error instanceof Error ? error.stack : String(error)}`);
    return { error, ms: performance.now() - started, arrayBuffers: process.memoryUsage().arrayBuffers - before };
  }
  assert.fail('the file was accepted');
}

const image = (rows = 2, columns = 2): DicomElement[] => [...imageElements({ rows, columns }), pixelData(Buffer.alloc(rows * columns), 'OB')];

test('an element whose length runs past the end of the file: CORRUPT_IMAGE naming it, at once', async () => {
  const elements = [...imageElements({ rows: 2, columns: 2 })];
  elements.splice(3, 0, { tag: 0x0008103e, vr: 'LO', value: Buffer.from('Short'), declaredLength: 60_000 });
  const file = dicomFile({ elements });
  const { error, ms } = await refusal(() => decodeDicomRgb(file, { limits: LIMITS }));
  assert.equal(error.code, 'CORRUPT_IMAGE');
  assert.match(error.message, /\(0008,103E\) at byte \d+ declares 60000 bytes but only \d+ remain in the file/);
  assert.ok(ms < 1000, `took ${ms} ms`);
  // A 4 GB length (0xFFFFFFF0) on a long-form VR is refused the same way, without reading further.
  const huge = dicomFile({ elements: [{ tag: 0x00091010, vr: 'OB', value: Buffer.alloc(8), declaredLength: 0xfffffff0 }, ...image()] });
  assert.equal((await refusal(() => parseDicom(huge, LIMITS, 'full'))).error.code, 'CORRUPT_IMAGE');
  // Inside an item, a value may not run past the item either, even where the file goes on.
  const inItem: DicomElement = { tag: 0x00081115, vr: 'SQ', undefinedLength: false, items: [[{ tag: 0x00081150, vr: 'UI', value: Buffer.from('1.2.3\0'), declaredLength: 200 }]] };
  const nested = await refusal(() => parseDicom(dicomFile({ elements: [inItem, ...image()] }), LIMITS, 'full'));
  assert.equal(nested.error.code, 'CORRUPT_IMAGE');
  assert.match(nested.error.message, /\(0008,1150\).*declares 200 bytes.*in the item that holds it/);
});

test('a deflate bomb (a small file that inflates past the cap) is DICOM_DEFLATE_BOMB, stopped at the cap', async () => {
  // 96 MiB of zeros in one private OB element deflates to about 100 kB.
  const bomb = deflatedFile([{ tag: 0x00091010, vr: 'OB', value: Buffer.alloc(96 * 1024 * 1024) }, ...image()]);
  assert.ok(bomb.length < 200_000, `the bomb is ${bomb.length} bytes`);
  const { error, ms } = await refusal(() => decodeDicomRgb(bomb, { limits: LIMITS }));
  assert.equal(error.code, 'DICOM_DEFLATE_BOMB');
  assert.match(error.message, /inflates to more than 67,108,864 bytes/);
  assert.ok(ms < 3000, `took ${ms} ms`);
  // The cap is the byte limit: 1 MiB stops a 4 MiB data set from a 4 kB file.
  const small = deflatedFile([{ tag: 0x00091010, vr: 'OB', value: Buffer.alloc(4 * 1024 * 1024) }, ...image()]);
  const capped = await refusal(() => decodeDicomRgb(small, { limits: { maxPixels: 1e6, maxBytes: 1024 * 1024 } }));
  assert.equal(capped.error.code, 'DICOM_DEFLATE_BOMB');
  assert.ok(capped.arrayBuffers < 16 * 1024 * 1024, `kept ${capped.arrayBuffers} bytes`);
  // The upload path (inspection) applies the same guard.
  assert.equal((await refusal(() => inspectImage(bomb, LIMITS))).error.code, 'DICOM_DEFLATE_BOMB');
});

test('a deflated data set is inflated and decoded; a cut deflate stream is TRUNCATED_IMAGE', async () => {
  const file = deflatedFile([...imageElements({ rows: 2, columns: 3 }), pixelData(Buffer.from([0, 50, 100, 150, 200, 250]), 'OB')]);
  const rgb = await decodeDicomRgb(file, { limits: LIMITS });
  assert.deepEqual([...rgb.data].filter((_, i) => i % 3 === 0), [0, 51, 102, 153, 204, 255]);
  assert.deepEqual(readImageHeader(file, 'dicom'), { width: 3, height: 2, frames: 1, channels: 1, bitDepth: 8 });
  const cut = file.subarray(0, metaEnd(file) + 20);
  assert.equal((await refusal(() => decodeDicomRgb(cut, { limits: LIMITS }))).error.code, 'TRUNCATED_IMAGE');
  const garbage = Buffer.concat([file.subarray(0, metaEnd(file)), Buffer.from([0xff, 0xff, 0xff, 0xff, 0xff, 0xff])]);
  assert.equal((await refusal(() => decodeDicomRgb(garbage, { limits: LIMITS }))).error.code, 'CORRUPT_IMAGE');
});

test('huge Rows × Columns (or frames) is IMAGE_TOO_LARGE before any pixel buffer is allocated', async () => {
  const wide = dicomFile({ elements: [...imageElements({ rows: 65535, columns: 65535, bitsAllocated: 16 }), pixelData(Buffer.alloc(16))] });
  const { error, ms, arrayBuffers } = await refusal(() => decodeDicomRgb(wide, { limits: { maxPixels: 50_000_000 } }));
  assert.equal(error.code, 'IMAGE_TOO_LARGE');
  assert.match(error.message, /65535 × 65535/);
  assert.ok(ms < 1000, `took ${ms} ms`);
  assert.ok(arrayBuffers < 1024 * 1024, `allocated ${arrayBuffers} bytes`);
  const frames = dicomFile({ elements: [...imageElements({ rows: 512, columns: 512, frames: 1_000_000 }), pixelData(Buffer.alloc(16), 'OB')] });
  const tooMany = await refusal(() => decodeDicomRgb(frames, { limits: { maxPixels: 50_000_000 } }));
  assert.equal(tooMany.error.code, 'IMAGE_TOO_LARGE');
  assert.match(tooMany.error.message, /1000000 frames/);
  // An encapsulated frame whose codestream declares a larger image than the header does is refused
  // from the codestream header, before the codec allocates its output.
  const sof = Buffer.from([0xff, 0xd8, 0xff, 0xc0, 0x00, 0x0b, 0x08, 0xff, 0xff, 0xff, 0xff, 0x01, 0x01, 0x11, 0x00, 0xff, 0xda, 0x00, 0x08, 0x01, 0x01, 0x00, 0x00, 0x3f, 0x00, 0xff, 0xd9]);
  const lying = dicomFile({ transferSyntax: UID.jpegBaseline, elements: [...imageElements({ rows: 8, columns: 8 }), encapsulated([sof])] });
  const codestream = await refusal(() => decodeDicomRgb(lying, { limits: LIMITS }));
  assert.equal(codestream.error.code, 'CORRUPT_IMAGE');
  assert.match(codestream.error.message, /65535×65535 with 1 component\(s\), but the DICOM header declares 8×8/);
});

test('sequences nested deeper than the limit are CORRUPT_IMAGE, for every encoding, before dicom-parser recurses', async () => {
  for (const [name, transferSyntax, undefinedLength] of [
    ['explicit, undefined length', UID.explicitLittle, true],
    ['explicit, defined length', UID.explicitLittle, false],
    ['implicit, undefined length', UID.implicitLittle, true],
    ['implicit, defined length', UID.implicitLittle, false],
  ] as const) {
    // 100,000 levels: far past the call stack of any recursive parser.
    const file = Buffer.concat([dicomFile({ transferSyntax, elements: [] }), deepNesting(100_000, transferSyntax === UID.explicitLittle, undefinedLength)]);
    const { error, ms } = await refusal(() => parseDicom(file, LIMITS, 'full'));
    assert.equal(error.code, 'CORRUPT_IMAGE', name);
    assert.match(error.message, /nested more than 32 deep/, name);
    assert.ok(ms < 1000, `${name}: took ${ms} ms`);
  }
  // 32 levels are accepted; maxDepth lowers the limit.
  const deep = dicomFile({ elements: [nestedSequence(32, true), ...image()] });
  assert.equal(parseDicom(deep, LIMITS, 'full').guarded.depth, 32);
  assert.match((await refusal(() => parseDicom(deep, { ...LIMITS, maxDepth: 8 }, 'full'))).error.message, /nested more than 8 deep/);
});

test('a file that is just "DICM", or a preamble and "DICM" with nothing after, gets its code at once', async () => {
  const bare = await refusal(() => decodeDicomRgb(Buffer.from('DICM'), { limits: LIMITS }));
  assert.equal(bare.error.code, 'TRUNCATED_IMAGE');
  assert.match(bare.error.message, /before its 128-byte preamble and "DICM" prefix/);
  const prefixOnly = Buffer.concat([Buffer.alloc(128), Buffer.from('DICM')]);
  const empty = await refusal(() => decodeDicomRgb(prefixOnly, { limits: LIMITS }));
  assert.equal(empty.error.code, 'CORRUPT_IMAGE');
  assert.match(empty.error.message, /no TransferSyntaxUID/);
  const notDicom = await refusal(() => decodeDicomRgb(Buffer.alloc(4096, 0x41), { limits: LIMITS }));
  assert.equal(notDicom.error.code, 'CORRUPT_IMAGE');
  assert.match(notDicom.error.message, /not a DICOM Part 10 file/);
  for (const r of [bare, empty, notDicom]) assert.ok(r.ms < 200, `took ${r.ms} ms`);
});

test('an item or sequence of undefined length that never closes: TRUNCATED_IMAGE at the end of the file, CORRUPT_IMAGE inside a value', async () => {
  const open: DicomElement = { tag: 0x00081115, vr: 'SQ', undefinedLength: true, itemsUndefinedLength: true, items: [[element(0x00081150, 'UI', '1.2.3')]] };
  const closed = dicomFile({ elements: [open] });
  // Cut off both delimiters (item, then sequence: 16 bytes).
  const neverClosed = closed.subarray(0, closed.length - 16);
  const { error, ms } = await refusal(() => parseDicom(neverClosed, LIMITS, 'full'));
  assert.equal(error.code, 'TRUNCATED_IMAGE');
  assert.match(error.message, /item of undefined length that starts at byte \d+ and has no Item Delimitation Item/);
  assert.ok(ms < 200);
  // The same open item inside an item of defined length: its end is the container's, not the file's.
  const inner: DicomElement = { tag: 0x00081115, vr: 'SQ', undefinedLength: true, itemsUndefinedLength: true, items: [[element(0x00081150, 'UI', '1.2.3')]] };
  const encodedInner = dicomFile({ elements: [inner] }).subarray(metaEnd(dicomFile({ elements: [] })));
  const unclosedInner = encodedInner.subarray(0, encodedInner.length - 16);
  const outer: DicomElement = { tag: 0x00400275, vr: 'SQ', undefinedLength: false, items: [[]] };
  const file = dicomFile({ elements: [outer, ...image()] });
  // Splice the unclosed sequence into the (empty) defined-length item and fix both lengths.
  const itemAt = file.indexOf(Buffer.from([0xfe, 0xff, 0x00, 0xe0, 0, 0, 0, 0]));
  const patched = Buffer.concat([file.subarray(0, itemAt + 8), unclosedInner, file.subarray(itemAt + 8)]);
  patched.writeUInt32LE(unclosedInner.length, itemAt + 4);
  patched.writeUInt32LE(8 + unclosedInner.length, itemAt - 4);
  const corrupt = await refusal(() => parseDicom(patched, LIMITS, 'full'));
  assert.equal(corrupt.error.code, 'CORRUPT_IMAGE');
});

test('more elements than the limit is DICOM_TOO_COMPLEX; a walk past its deadline is too', async () => {
  const many = withRawElements(manyElements(500_001));
  const { error, ms } = await refusal(() => decodeDicomRgb(many, { limits: LIMITS }));
  assert.equal(error.code, 'DICOM_TOO_COMPLEX');
  assert.match(error.message, /more than 500,000 elements/);
  assert.ok(ms < 2000, `took ${ms} ms`);
  assert.equal((await refusal(() => parseDicom(withRawElements(manyElements(2000)), { ...LIMITS, maxElements: 1000 }, 'header'))).error.code, 'DICOM_TOO_COMPLEX');
  // 300,000 elements are allowed, but not in 1 ms.
  const slow = await refusal(() => parseDicom(withRawElements(manyElements(300_000)), { ...LIMITS, timeoutMs: 1 }, 'full'));
  assert.equal(slow.error.code, 'DICOM_TOO_COMPLEX');
  assert.match(slow.error.message, /took longer than 1 ms/);
  const fine = parseDicom(withRawElements(manyElements(300_000)), LIMITS, 'full');
  assert.ok(fine.guarded.elements > 300_000);
});

test('an unsupported transfer syntax (MPEG2, a private UID) is DICOM_PIXELS_UNSUPPORTED naming it; the header is still read', async () => {
  const mpeg = dicomFile({ transferSyntax: UID.mpeg2, elements: [...imageElements({ rows: 8, columns: 8 }), encapsulated([Buffer.from([0, 0, 1, 0xb3])])] });
  assert.deepEqual(inspectImage(mpeg, LIMITS), { mediaType: 'dicom', mimeType: 'application/dicom', width: 8, height: 8, frames: 1 });
  const { error } = await refusal(() => decodeDicomRgb(mpeg, { limits: LIMITS }));
  assert.equal(error.code, 'DICOM_PIXELS_UNSUPPORTED');
  assert.match(error.message, /1\.2\.840\.10008\.1\.2\.4\.100 \(MPEG2 Main Profile \/ Main Level\)/);
  assert.deepEqual(error.details, { transferSyntaxUid: UID.mpeg2 });
  const info = await inspectDicom(mpeg, LIMITS);
  assert.equal(info.decodable, false);
  assert.equal(info.notDecodable?.code, 'DICOM_PIXELS_UNSUPPORTED');
  const privateUid = dicomFile({ transferSyntax: '1.2.3.4.5.6', elements: [...imageElements({ rows: 8, columns: 8 }), encapsulated([Buffer.alloc(8)])] });
  const unknown = await refusal(() => decodeDicomRgb(privateUid, { limits: LIMITS }));
  assert.equal(unknown.error.code, 'DICOM_PIXELS_UNSUPPORTED');
  assert.match(unknown.error.message, /1\.2\.3\.4\.5\.6 \(not a standard transfer syntax\)/);
});

test('encapsulated pixel data must be items: a missing offset table, an undefined-length fragment or a stray tag is CORRUPT_IMAGE', async () => {
  const withoutTable: DicomElement = { tag: 0x7fe00010, vr: 'OB', value: Buffer.from([0x08, 0x00, 0x10, 0x00, 0, 0, 0, 0]), declaredLength: 0xffffffff };
  const strayTag = dicomFile({ transferSyntax: UID.jpegBaseline, elements: [...imageElements({ rows: 8, columns: 8 }), withoutTable] });
  assert.match((await refusal(() => parseDicom(strayTag, LIMITS, 'full'))).error.message, /does not start with a Basic Offset Table/);
  const undefinedFragment = encapsulated([Buffer.alloc(4)]);
  const bytes = undefinedFragment.value;
  bytes.writeUInt32LE(0xffffffff, 12); // the fragment item's length
  const file = dicomFile({ transferSyntax: UID.jpegBaseline, elements: [...imageElements({ rows: 8, columns: 8 }), undefinedFragment] });
  assert.match((await refusal(() => parseDicom(file, LIMITS, 'full'))).error.message, /fragment of undefined length/);
  // Encapsulated pixel data in an implicit VR data set is not allowed (PS3.5 A.4).
  const implicit = dicomFile({ transferSyntax: UID.implicitLittle, elements: [...imageElements({ rows: 8, columns: 8 }), encapsulated([Buffer.alloc(4)])] });
  assert.match((await refusal(() => parseDicom(implicit, LIMITS, 'full'))).error.message, /implicit VR data set/);
});

test('elements of groups 0000/0001, and an implicit data set under an explicit transfer syntax, are refused with a reason', async () => {
  const group1 = dicomFile({ elements: [element(0x00010001, 'LO', 'x'), ...image()] });
  assert.match((await refusal(() => parseDicom(group1, LIMITS, 'full'))).error.message, /group 0001, which a data set may not use/);
  const implicitBody = dicomFile({ transferSyntax: UID.implicitLittle, elements: image() });
  const mislabelled = Buffer.concat([dicomFile({ elements: [] }), implicitBody.subarray(metaEnd(implicitBody))]);
  const { error } = await refusal(() => parseDicom(mislabelled, LIMITS, 'full'));
  assert.equal(error.code, 'CORRUPT_IMAGE');
  assert.match(error.message, /probably implicit VR under the wrong transfer syntax/);
});

test('the 64-bit Extended Offset Table (OV) is read at the top level; a 64-bit VR inside a sequence is refused', async () => {
  const offsets = Buffer.alloc(8);
  const file = dicomFile({
    transferSyntax: UID.jpegBaseline,
    elements: [...imageElements({ rows: 8, columns: 8 }), { tag: 0x7fe00001, vr: 'OV', value: offsets }, { tag: 0x7fe00002, vr: 'OV', value: Buffer.from([4, 0, 0, 0, 0, 0, 0, 0]) }, encapsulated([Buffer.alloc(4)])],
  });
  const parsed = parseDicom(file, LIMITS, 'full');
  assert.equal(parsed.attributes.rows, 8);
  assert.equal(parsed.guarded.extendedOffsetTable?.offsets.length, 8);
  const nested: DicomElement = { tag: 0x00081115, vr: 'SQ', undefinedLength: true, items: [[{ tag: 0x00091001, vr: 'UV', value: Buffer.alloc(8) }]] };
  const refused = await refusal(() => parseDicom(dicomFile({ elements: [nested, ...image()] }), LIMITS, 'full'));
  assert.equal(refused.error.code, 'DICOM_PIXELS_UNSUPPORTED');
  assert.match(refused.error.message, /value representation UV/);
});

test('header mode stops at Pixel Data; full mode checks every fragment to the end of the file', () => {
  const fragments = [Buffer.alloc(10, 1), Buffer.alloc(6, 2)];
  const file = dicomFile({ transferSyntax: UID.jpegBaseline, elements: [...imageElements({ rows: 8, columns: 8 }), encapsulated(fragments), element(0xfffcfffc, 'OB', new Uint8Array(4))] });
  const header = guardDicom(file, LIMITS, 'header');
  assert.equal(header.pixelData?.length, undefined);
  assert.equal(header.pixelData?.fragments, undefined);
  const full = guardDicom(file, LIMITS, 'full');
  assert.deepEqual(full.pixelData?.fragments?.map((f) => f.length), [10, 6]);
  assert.deepEqual(full.pixelData?.fragments?.map((f) => file[f.offset]), [1, 2]);
  // Cut inside the second fragment: the header is intact, the full walk is not.
  const cut = file.subarray(0, full.pixelData?.fragments?.[1]?.offset ?? 0);
  assert.equal(guardDicom(cut, LIMITS, 'header').pixelData?.valueOffset, header.pixelData?.valueOffset);
  assert.throws(() => guardDicom(cut, LIMITS, 'full'), (e: unknown) => e instanceof AppError && e.code === 'TRUNCATED_IMAGE');
});

test('a report, plan or directory (no Pixel Data, Rows or Columns) is DICOM_NO_IMAGE on the upload path and in the decoder', async () => {
  const report = dicomFile({ elements: [element(0x00080016, 'UI', '1.2.840.10008.5.1.4.1.1.88.11'), element(0x00080060, 'CS', 'SR')] });
  assert.equal((await refusal(() => inspectImage(report, LIMITS))).error.code, 'DICOM_NO_IMAGE');
  const decoded = await refusal(() => decodeDicomRgb(report, { limits: LIMITS }));
  assert.equal(decoded.error.code, 'DICOM_NO_IMAGE');
  assert.match(decoded.error.message, /SOP Class 1\.2\.840\.10008\.5\.1\.4\.1\.1\.88\.11/);
});

test('dxflow dicom info: JSON and text describe the file with no patient attributes; usage errors exit 2', async (t) => {
  const patientName = 'Zzyzx^Quentin';
  const elements = [
    ...imageElements({ rows: 2, columns: 3, windowCenter: '100', windowWidth: '200' }),
    element(0x00100020, 'LO', 'PID-998877'),
    element(0x00100030, 'DA', '19450102'),
    element(0x00080080, 'LO', 'Hospital of Nowhere'),
    element(0x00080020, 'DA', '20240305'),
    pixelData(Buffer.from([0, 50, 100, 150, 200, 250]), 'OB'),
  ].sort((a, b) => a.tag - b.tag);
  // imageElements carries PatientName "Synthetic^Test"; replace it with a distinctive one.
  const file = dicomFile({ elements: elements.map((e) => (e.tag === 0x00100010 ? element(0x00100010, 'PN', patientName) : e)) });
  const { mkdtemp, writeFile, rm } = await import('node:fs/promises');
  const dir = await mkdtemp('/tmp/dxflow-dicom-info-');
  t.after(() => rm(dir, { recursive: true, force: true }));
  const path = `${dir}/${patientName}.dcm`;
  await writeFile(path, file);

  let out = '';
  let err = '';
  const deps = { out: { write: (s: string) => (out += s) }, err: { write: (s: string) => (err += s) }, limits: LIMITS };
  assert.equal(await dicomInfo(['info', path, '--format', 'json'], deps), 0, err);
  const info = JSON.parse(out);
  assert.deepEqual(info.transferSyntax, { uid: UID.explicitLittle, name: 'Explicit VR Little Endian' });
  assert.deepEqual(info.sopClass, { uid: '1.2.840.10008.5.1.4.1.1.7', name: 'Secondary Capture Image Storage' });
  assert.equal(info.modality, 'OT');
  assert.equal(info.rows, 2);
  assert.equal(info.columns, 3);
  assert.equal(info.frames, 1);
  assert.equal(info.bitsAllocated, 8);
  assert.equal(info.photometricInterpretation, 'MONOCHROME2');
  assert.equal(info.decodable, true);
  out = '';
  assert.equal(await dicomInfo(['info', path, '--format', 'text'], deps), 0, err);
  assert.match(out, /transfer syntax: +1\.2\.840\.10008\.1\.2\.1 \(Explicit VR Little Endian\)/);
  assert.match(out, /decodable: +yes/);
  const both = JSON.stringify(info) + out;
  for (const secret of ['Zzyzx', 'Quentin', 'PID-998877', '19450102', 'Nowhere', '20240305', '2.25.1234567890', dir]) {
    assert.ok(!both.includes(secret), `the output contains ${secret}`);
  }

  err = '';
  assert.equal(await dicomInfo(['info'], deps), 2);
  assert.match(err, /name the DICOM file/);
  assert.equal(await dicomInfo(['info', path, '--format', 'xml'], deps), 2);
  assert.equal(await dicomInfo(['frobnicate', path], deps), 2);
  await assert.rejects(dicomInfo(['info', `${dir}/missing.dcm`], deps), (e: unknown) => e instanceof AppError && e.code === 'INVALID_REQUEST' && !e.message.includes(dir));
  await writeFile(`${dir}/bomb.dcm`, deflatedFile([{ tag: 0x00091010, vr: 'OB', value: Buffer.alloc(4 * 1024 * 1024) }, ...image()]));
  await assert.rejects(dicomInfo(['info', `${dir}/bomb.dcm`], { ...deps, limits: { maxPixels: 1e6, maxBytes: 1024 * 1024 } }), (e: unknown) => e instanceof AppError && e.code === 'DICOM_DEFLATE_BOMB');
});

test('dxflow dicom info reports a file whose pixels do not decode, with the reason', async () => {
  const short = dicomFile({ elements: [...imageElements({ rows: 4, columns: 4, bitsAllocated: 16 }), pixelData(Buffer.alloc(30))] });
  const info = await inspectDicom(short, LIMITS);
  assert.equal(info.decodable, false);
  assert.equal(info.notDecodable?.code, 'TRUNCATED_IMAGE');
  assert.equal(info.rows, 4);
  const unsupported = dicomFile({ elements: [...imageElements({ rows: 2, columns: 2, samplesPerPixel: 4, photometric: 'CMYK', planarConfiguration: 0 }), pixelData(Buffer.alloc(16), 'OB')] });
  const cmyk = await inspectDicom(unsupported, LIMITS);
  assert.equal(cmyk.notDecodable?.code, 'DICOM_PIXELS_UNSUPPORTED');
  assert.match(cmyk.notDecodable?.message ?? '', /CMYK/);
});

test('raw deflate of a data set is what the reader inflates (self-check of the test builder)', () => {
  const elements = image(3, 3);
  const plain = dicomFile({ transferSyntax: UID.deflated, elements });
  const deflated = deflatedFile(elements);
  assert.deepEqual(deflated.subarray(metaEnd(deflated)), deflateRawSync(plain.subarray(metaEnd(plain)), { level: 9 }));
  assert.deepEqual(parseDicom(deflated, LIMITS, 'full').attributes.rows, 3);
  assert.deepEqual(us(3), Buffer.from([3, 0]));
});
