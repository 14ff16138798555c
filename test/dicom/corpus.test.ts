import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { Worker } from 'node:worker_threads';
import { decodeDicomRgb, decodeDicomSamples, type DicomLimits, parseDicom } from '../../src/dicom/index.ts';
import type { CorpusOutcome, CorpusRequest } from './corpus-worker.ts';
import { dcmtkMissing, dcmtkRender, PYDICOM_TEST_FILES, pydicomFrames, pydicomMissing } from './oracles.ts';

// Every file of pydicom's test corpus — DICOM of every transfer syntax, damaged DICOM, and the README,
// JSON and gzip files that sit beside them — is either decoded (frame 0 to RGB) or refused with an
// AppError code: no crash, no hang (each file has a time limit, enforced from outside its thread),
// bounded memory. What is decoded is then checked against pydicom and dcmtk.
//
// Against pydicom the comparison is of stored values, before any windowing: that tests what the codecs
// and the bit handling (BitsStored masking, sign, byte order, planar configuration, 4:2:2) produce,
// exactly, independently of display conventions that legitimately differ between viewers. The
// rendering (Modality LUT, VOI window, MONOCHROME1, colour conversion) is compared with dcmtk's
// dcmj2pnm/dcml2pnm under the same window, which implement the same PS3.3 C.11 formulas.

const LIMITS: DicomLimits = { maxPixels: 50_000_000, maxBytes: 64 * 1024 * 1024 };
/** Per file, including the first use of each codec: far more than any file here needs (< 0.2 s). */
const FILE_TIMEOUT_MS = 20_000;

const skipCorpus = existsSync(PYDICOM_TEST_FILES) ? false : `the pydicom test files are not installed (${PYDICOM_TEST_FILES}); apt-get install python3-pydicom`;

function listFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const file = path.join(dir, name);
    return statSync(file).isDirectory() ? listFiles(file) : [file];
  }).sort();
}

const files = skipCorpus ? [] : listFiles(PYDICOM_TEST_FILES);
const outcomes = new Map<string, CorpusOutcome>();
const relative = (file: string): string => path.relative(PYDICOM_TEST_FILES, file);
const work = mkdtempSync(path.join(tmpdir(), 'dxflow-dicom-corpus-'));
after(() => rmSync(work, { recursive: true, force: true }));

/** Runs every file through a worker; a file that outlives its time limit is recorded and the worker replaced. */
async function runCorpus(): Promise<Map<string, CorpusOutcome | { file: string; outcome: 'hang'; ms: number }>> {
  const results = new Map<string, CorpusOutcome | { file: string; outcome: 'hang'; ms: number }>();
  let worker = new Worker(new URL('./corpus-worker.ts', import.meta.url));
  try {
    for (const file of files) {
      const result = await new Promise<CorpusOutcome | undefined>((resolve, reject) => {
        const timer = setTimeout(() => resolve(undefined), FILE_TIMEOUT_MS);
        worker.once('message', (message: CorpusOutcome) => {
          clearTimeout(timer);
          resolve(message);
        });
        worker.once('error', (error) => {
          clearTimeout(timer);
          reject(error);
        });
        worker.postMessage({ file, limits: LIMITS } satisfies CorpusRequest);
      });
      worker.removeAllListeners('message');
      worker.removeAllListeners('error');
      if (result === undefined) {
        results.set(file, { file, outcome: 'hang', ms: FILE_TIMEOUT_MS });
        await worker.terminate();
        worker = new Worker(new URL('./corpus-worker.ts', import.meta.url));
      } else {
        results.set(file, result);
      }
    }
  } finally {
    await worker.terminate();
  }
  return results;
}

let rss: { before: number; afterFirst: number; afterSecond: number } | undefined;

before(async () => {
  if (skipCorpus) return;
  const before = process.memoryUsage().rss;
  const first = await runCorpus();
  const afterFirst = process.memoryUsage().rss;
  // A second pass over the same files: any growth now is memory kept per file (a leak), not warm-up.
  const second = await runCorpus();
  const afterSecond = process.memoryUsage().rss;
  rss = { before, afterFirst, afterSecond };
  for (const [file, result] of first) {
    assert.equal(second.get(file)?.outcome, result.outcome, `${relative(file)} decoded differently the second time`);
    if (result.outcome === 'hang') assert.fail(`${relative(file)} did not finish within ${FILE_TIMEOUT_MS} ms`);
    outcomes.set(file, result);
  }
});

test('every corpus file is decoded or refused with an AppError code; none crashes or hangs', { skip: skipCorpus }, (t) => {
  assert.ok(files.length >= 100, `only ${files.length} files found`);
  const rows = files.map((file) => {
    const o = outcomes.get(file);
    assert.ok(o, `${relative(file)} has no outcome`);
    const what = o.outcome === 'decoded' ? `decoded ${o.width}×${o.height}${o.frames > 1 ? ` (frame 0 of ${o.frames})` : ''}` : o.outcome === 'rejected' ? `${o.code}: ${o.message.slice(0, 110)}` : `CRASHED: ${o.message}`;
    return `${relative(file).padEnd(58)} ${o.ms.toFixed(0).padStart(5)} ms  ${what}`;
  });
  t.diagnostic(`corpus of ${files.length} files:\n${rows.join('\n')}`);
  const summary = new Map<string, number>();
  for (const o of outcomes.values()) {
    const key = o.outcome === 'rejected' ? o.code : o.outcome;
    summary.set(key, (summary.get(key) ?? 0) + 1);
  }
  t.diagnostic(`summary: ${[...summary].map(([k, n]) => `${k} ${n}`).join(', ')}`);
  const crashed = [...outcomes.values()].filter((o) => o.outcome === 'crashed');
  assert.deepEqual(crashed.map((o) => relative(o.file)), [], 'files that failed without an AppError');
  for (const o of outcomes.values()) {
    if (o.outcome === 'decoded') assert.equal(o.rgbBytes, o.width * o.height * 3, relative(o.file));
  }
});

test('the common files decode: every transfer syntax, colour space and bit depth the corpus has', { skip: skipCorpus }, () => {
  const mustDecode = [
    'CT_small.dcm', 'MR_small.dcm', 'MR_small_implicit.dcm', 'MR_small_bigendian.dcm', 'MR_small_expb.dcm', 'MR_small_padded.dcm',
    'JPEG2000.dcm', 'MR_small_jp2klossless.dcm', '693_J2KI.dcm', 'J2K_pixelrep_mismatch.dcm', 'GDCMJ2K_TextGBR.dcm', 'SC_rgb_gdcm_KY.dcm',
    'MR_small_jpeg_ls_lossless.dcm',
    'MR_small_RLE.dcm', 'SC_rgb_rle.dcm', 'SC_rgb_rle_2frame.dcm', 'SC_rgb_rle_16bit.dcm', 'SC_rgb_rle_32bit.dcm', 'rtdose_rle.dcm',
    'SC_rgb_jpeg_dcmtk.dcm', 'SC_rgb_dcmtk_+eb+cy+np.dcm', 'SC_rgb_dcmtk_+eb+cr.dcm', 'SC_jpeg_no_color_transform.dcm', 'SC_rgb_jpeg_app14_dcmd.dcm', 'SC_rgb_jpeg_lossy_gdcm.dcm', 'SC_rgb_small_odd_jpeg.dcm',
    'SC_rgb_jpeg_gdcm.dcm',
    'image_dfl.dcm', 'ExplVR_BigEnd.dcm', 'SC_ybr_full_422_uncompressed.dcm', 'liver_1frame.dcm', 'liver_expb_1frame.dcm', 'rtdose.dcm', 'rtdose_expb.dcm',
    'dicomdirtests/77654033/CR1/6154',
  ];
  const notDecoded = mustDecode.filter((f) => outcomes.get(path.join(PYDICOM_TEST_FILES, f))?.outcome !== 'decoded');
  assert.deepEqual(notDecoded, []);
  // And what is refused is refused for the right reason.
  const expected: Record<string, string> = {
    'MR_truncated.dcm': 'TRUNCATED_IMAGE',
    'JPGExtended.dcm': 'DICOM_PIXELS_UNSUPPORTED', // 12-bit JPEG
    'JPEG-lossy.dcm': 'DICOM_PIXELS_UNSUPPORTED',
    'JPEG2000-embedded-sequence-delimiter.dcm': 'CORRUPT_IMAGE', // its SIZ marker was overwritten
    'README.txt': 'CORRUPT_IMAGE',
    'zipMR.gz': 'CORRUPT_IMAGE',
    'no_meta.dcm': 'CORRUPT_IMAGE',
    'meta_missing_tsyntax.dcm': 'CORRUPT_IMAGE',
    'badVR.dcm': 'CORRUPT_IMAGE',
    'rtplan_truncated.dcm': 'CORRUPT_IMAGE',
    'rtplan.dcm': 'DICOM_NO_IMAGE',
    'test-SR.dcm': 'DICOM_NO_IMAGE',
    'waveform_ecg.dcm': 'DICOM_NO_IMAGE',
    'dicomdirtests/DICOMDIR': 'DICOM_NO_IMAGE',
    'dicomdirtests/DICOMDIR-bigEnd': 'DICOM_NO_IMAGE',
  };
  for (const [file, code] of Object.entries(expected)) {
    const o = outcomes.get(path.join(PYDICOM_TEST_FILES, file));
    assert.equal(o?.outcome === 'rejected' ? o.code : o?.outcome, code, file);
  }
});

test('memory stays bounded: the corpus twice grows RSS by little, and the second pass by almost nothing', { skip: skipCorpus }, (t) => {
  assert.ok(rss);
  const mb = (bytes: number): number => Math.round(bytes / 1024 / 1024);
  t.diagnostic(`RSS: ${mb(rss.before)} MB before, ${mb(rss.afterFirst)} MB after one pass, ${mb(rss.afterSecond)} MB after two`);
  // The first pass instantiates three WebAssembly codecs and workers; the files are small.
  assert.ok(rss.afterFirst - rss.before < 512 * 1024 * 1024, `first pass grew RSS by ${mb(rss.afterFirst - rss.before)} MB`);
  assert.ok(rss.afterSecond - rss.afterFirst < 96 * 1024 * 1024, `second pass grew RSS by ${mb(rss.afterSecond - rss.afterFirst)} MB`);
});

const decodedFiles = (): string[] => files.filter((f) => outcomes.get(f)?.outcome === 'decoded');

test('stored values of frame 0 equal pydicom\'s, file by file', { skip: skipCorpus || pydicomMissing() }, async (t) => {
  const candidates = decodedFiles();
  const reference = pydicomFrames(candidates, work);
  let exact = 0;
  const skipped: string[] = [];
  for (const py of reference) {
    const name = relative(py.file);
    if (!py.ok || !py.values) {
      skipped.push(`${name} (pydicom: ${py.error})`);
      continue;
    }
    const ours = await decodeDicomSamples(readFileSync(py.file), { limits: LIMITS });
    const values: ArrayLike<number> = ours.stored ?? ours.data;
    assert.equal(values.length, py.values.length, `${name}: ${values.length} samples, pydicom ${py.values.length}`);
    if (ours.colour === 'RGB' && py.photometric?.startsWith('YBR') && py.rgb) {
      // pydicom leaves JPEG YBR data unconverted; its own conversion to RGB is the reference.
      const rgb = (await decodeDicomRgb(readFileSync(py.file), { limits: LIMITS })).data;
      const worst = Math.max(...[...rgb].map((v, i) => Math.abs(v - (py.rgb?.[i] ?? 0))));
      assert.ok(worst <= 1, `${name}: RGB differs from pydicom's by up to ${worst}`);
    } else {
      for (let i = 0; i < values.length; i++) {
        if (values[i] !== py.values[i]) assert.fail(`${name}: sample ${i} is ${values[i]}, pydicom ${py.values[i]}`);
      }
    }
    exact++;
  }
  t.diagnostic(`${exact} files agree with pydicom; not compared: ${skipped.join('; ') || 'none'}`);
  assert.ok(exact >= 60, `only ${exact} files compared`);
});

test('JPEG-LS and JPEG Lossless files that pydicom cannot decode here: dcmtk decompresses, pydicom reads, values agree', { skip: skipCorpus || pydicomMissing() || dcmtkMissing() }, async () => {
  const cases = [['MR_small_jpeg_ls_lossless.dcm', 'dcmdjpls'], ['SC_rgb_jpeg_gdcm.dcm', 'dcmdjpeg']] as const;
  const plain = cases.map(([file, tool]) => {
    const out = path.join(work, `plain-${file}`);
    const run = spawnSync(tool, [path.join(PYDICOM_TEST_FILES, file), out], { encoding: 'utf8' });
    assert.equal(run.status, 0, run.stderr);
    return out;
  });
  const reference = pydicomFrames(plain, work);
  for (const [index, [file]] of cases.entries()) {
    const py = reference[index];
    assert.ok(py?.ok && py.values, `pydicom could not read dcmtk's output for ${file}: ${py?.error}`);
    const ours = await decodeDicomSamples(readFileSync(path.join(PYDICOM_TEST_FILES, file)), { limits: LIMITS });
    assert.deepEqual([...(ours.stored ?? ours.data)], [...py.values], file);
  }
});

test('rendered 8-bit frames agree with dcmtk under the same window (within 1: dcmtk truncates where we round)', { skip: skipCorpus || dcmtkMissing() }, async (t) => {
  let compared = 0;
  const notRendered: string[] = [];
  // dcmtk reads 32-bit samples of a big endian OW value as two little-endian-ordered 16-bit words, so
  // its rendering of these files differs from that of their little endian originals; pydicom's stored
  // values and ours agree, and ours render exactly like the originals.
  const bigEndianTwins: Record<string, string> = { 'rtdose_expb.dcm': 'rtdose.dcm', 'rtdose_expb_1frame.dcm': 'rtdose_1frame.dcm' };
  for (const [bigEndian, little] of Object.entries(bigEndianTwins)) {
    const [a, b] = await Promise.all([bigEndian, little].map((f) => decodeDicomRgb(readFileSync(path.join(PYDICOM_TEST_FILES, f)), { limits: LIMITS })));
    assert.deepEqual(a?.data, b?.data, bigEndian);
  }
  for (const file of decodedFiles()) {
    if (relative(file) in bigEndianTwins) continue;
    const parsed = parseDicom(readFileSync(file), LIMITS, 'header');
    const monochrome = parsed.attributes.photometricInterpretation?.startsWith('MONOCHROME') ?? false;
    const window = !monochrome ? [] : parsed.attributes.windowCenter !== undefined ? ['+Wi', '1'] : ['+Wm'];
    const jpegLs = parsed.attributes.transferSyntaxUid.startsWith('1.2.840.10008.1.2.4.8');
    const theirs = dcmtkRender(file, window, work, jpegLs);
    if ('error' in theirs) {
      notRendered.push(`${relative(file)}: ${theirs.error.split('\n')[0]}`);
      continue;
    }
    const ours = await decodeDicomRgb(readFileSync(file), { limits: LIMITS });
    assert.equal(theirs.width, ours.width, relative(file));
    assert.equal(theirs.height, ours.height, relative(file));
    let worst = 0;
    for (let p = 0; p < ours.width * ours.height; p++) {
      for (let c = 0; c < 3; c++) {
        const reference = theirs.data[p * theirs.channels + (theirs.channels === 3 ? c : 0)] ?? 0;
        worst = Math.max(worst, Math.abs((ours.data[p * 3 + c] ?? 0) - reference));
      }
    }
    assert.ok(worst <= 1, `${relative(file)} (${window.join(' ') || 'colour'}): differs from dcmtk by up to ${worst}`);
    compared++;
  }
  t.diagnostic(`${compared} files agree with dcmtk; dcmtk could not render: ${notRendered.join('; ') || 'none'}`);
  assert.ok(compared >= 50, `only ${compared} files compared`);
});

test('the JPEG 2000 YBR_RCT file no reference decoder here reads shows red, green and blue text on grey', { skip: skipCorpus }, async () => {
  const rgb = await decodeDicomRgb(readFileSync(path.join(PYDICOM_TEST_FILES, 'GDCMJ2K_TextGBR.dcm')), { limits: LIMITS });
  const rowsOf = (test: (r: number, g: number, b: number) => boolean): number[] => {
    const rows: number[] = [];
    for (let i = 0; i < rgb.width * rgb.height; i++) {
      if (test(rgb.data[3 * i] ?? 0, rgb.data[3 * i + 1] ?? 0, rgb.data[3 * i + 2] ?? 0)) rows.push(Math.floor(i / rgb.width));
    }
    return rows;
  };
  const red = rowsOf((r, g, b) => r > 200 && g < 50 && b < 50);
  const green = rowsOf((r, g, b) => g > 200 && r < 50 && b < 50);
  const blue = rowsOf((r, g, b) => b > 200 && r < 50 && g < 50);
  const background = rowsOf((r, g, b) => r === g && g === b && Math.abs(r - 128) <= 2);
  for (const colour of [red, green, blue]) assert.ok(colour.length > 1000, `${colour.length} pixels`);
  assert.ok(background.length > 0.7 * rgb.width * rgb.height);
  // The words are stacked: "red" above "green" above "blue".
  const median = (rows: number[]): number => rows[Math.floor(rows.length / 2)] ?? 0;
  assert.ok(median(red) < median(green) && median(green) < median(blue));
});
