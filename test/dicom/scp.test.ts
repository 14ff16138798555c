import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { AppError } from '../../src/core/errors.ts';
import { readDatasetIdentity, readPart10Identity } from '../../src/dicom/net/identity.ts';
import { type ReceivedInstance, startStoreScp, type StoreScp, type StoreScpOptions } from '../../src/dicom/net/scp.ts';
import { dcmtkMissing, metaHeader, normalizedDataset, PYDICOM_TEST_FILES, runTool, writeStorescuConfig } from './net-dcmtk.ts';
import { CT_IMAGE_STORAGE, deflated, encodeDataset, EXPLICIT_BE, EXPLICIT_LE, IMPLICIT_LE, sampleDataset, sampleElements, SC_IMAGE_STORAGE, testUid, WSI_STORAGE } from './net-dataset.ts';
import { cEchoRq, rawPdu, RawScu } from './net-scu.ts';

const AE = 'DXFLOW_TEST';
const TS_IMPLICIT = '1.2.840.10008.1.2';
const TS_EXPLICIT = '1.2.840.10008.1.2.1';
const TS_BIG = '1.2.840.10008.1.2.2';
const TS_DEFLATE = '1.2.840.10008.1.2.1.99';
const TS_J2K = '1.2.840.10008.1.2.4.91';

interface LogEntry {
  level: 'info' | 'warn';
  msg: string;
  obj: Record<string, unknown>;
}

function collectingLog(): { log: StoreScpOptions['log']; entries: LogEntry[] } {
  const entries: LogEntry[] = [];
  return {
    entries,
    log: {
      info: (obj, msg) => entries.push({ level: 'info', msg, obj }),
      warn: (obj, msg) => entries.push({ level: 'warn', msg, obj }),
    },
  };
}

async function withScp(
  options: Partial<StoreScpOptions>,
  use: (scp: StoreScp, received: ReceivedInstance[], entries: LogEntry[]) => Promise<void>,
): Promise<void> {
  const received: ReceivedInstance[] = [];
  const { log, entries } = collectingLog();
  const scp = await startStoreScp({
    port: 0,
    host: '127.0.0.1',
    aeTitle: AE,
    maxInstanceBytes: 10 * 1024 * 1024,
    log,
    onInstance: async (i) => {
      received.push(i);
    },
    ...options,
  });
  try {
    await use(scp, received, entries);
  } finally {
    await scp.close();
  }
}

function uids(sopClassUid = CT_IMAGE_STORAGE) {
  return { sopClassUid, sopInstanceUid: testUid(), studyInstanceUid: testUid(), seriesInstanceUid: testUid() };
}

/** The data set of a received Part 10 file: everything after its File Meta Information. */
function datasetOf(bytes: Buffer): Buffer {
  return bytes.subarray(readPart10Identity(bytes).datasetOffset);
}

function isAppError(code: string, pattern?: RegExp) {
  return (e: unknown): boolean => {
    assert.ok(e instanceof AppError, `expected an AppError, got ${String(e)}`);
    assert.equal(e.code, code, e.message);
    if (pattern) assert.match(e.message, pattern);
    return true;
  };
}

describe('data set identity', () => {
  const u = uids();
  for (const [name, enc, undefinedLength] of [
    ['explicit VR LE, undefined-length sequences', EXPLICIT_LE, true],
    ['explicit VR LE, defined-length sequences', EXPLICIT_LE, false],
    ['implicit VR LE', IMPLICIT_LE, true],
    ['explicit VR BE', EXPLICIT_BE, true],
  ] as const) {
    test(`reads the four UIDs past a nested sequence: ${name}`, () => {
      const ts = enc === IMPLICIT_LE ? TS_IMPLICIT : enc === EXPLICIT_BE ? TS_BIG : TS_EXPLICIT;
      const dataset = encodeDataset(sampleElements(u), { ...enc, undefinedLength });
      assert.deepEqual(readDatasetIdentity(dataset, ts), u);
    });
  }

  test('reads a deflated data set, also when the UIDs lie beyond the first inflated prefix', () => {
    assert.deepEqual(readDatasetIdentity(deflated(sampleDataset(u)), TS_DEFLATE), u);
    // A 3 MB private value before the study UID: the reader has to inflate more than its first prefix.
    const big = [...sampleElements(u), { tag: 0x00090010, vr: 'LO', value: 'TEST' }, { tag: 0x00091001, vr: 'OB', value: Buffer.alloc(3_000_000, 7) }];
    assert.deepEqual(readDatasetIdentity(deflated(encodeDataset(big, EXPLICIT_LE)), TS_DEFLATE), u);
  });

  test('refuses truncated, garbled and incomplete data sets with the project error codes', () => {
    const dataset = sampleDataset(u);
    assert.throws(() => readDatasetIdentity(dataset.subarray(0, dataset.length - 3), TS_EXPLICIT), isAppError('TRUNCATED_IMAGE'));
    // Read with the wrong transfer syntax: explicit VR bytes read as implicit give nonsense lengths.
    assert.throws(() => readDatasetIdentity(dataset, TS_IMPLICIT), (e: unknown) => e instanceof AppError && ['CORRUPT_IMAGE', 'TRUNCATED_IMAGE'].includes(e.code));
    const noStudy = encodeDataset(sampleElements(u).filter((e) => e.tag !== 0x0020000d), EXPLICIT_LE);
    assert.throws(() => readDatasetIdentity(noStudy, TS_EXPLICIT), isAppError('CORRUPT_IMAGE', /StudyInstanceUID/));
    const badUid = encodeDataset(sampleElements({ ...u, sopInstanceUid: '1.2.abc' }), EXPLICIT_LE);
    assert.throws(() => readDatasetIdentity(badUid, TS_EXPLICIT), isAppError('CORRUPT_IMAGE', /not a valid UID/));
    assert.throws(() => readDatasetIdentity(dataset, '1.2.3.4.private'), isAppError('DICOM_PIXELS_UNSUPPORTED'));
  });

  test('agrees with dcmdump on pydicom test files in every transfer syntax', { skip: dcmtkMissing() }, async () => {
    const files = ['CT_small.dcm', 'MR_small.dcm', 'JPEG2000.dcm', 'MR_small_RLE.dcm', 'SC_rgb_jpeg_dcmtk.dcm', 'image_dfl.dcm', 'MR_small_bigendian.dcm', 'MR_small_implicit.dcm', 'MR_small_jpeg_ls_lossless.dcm', 'rtplan.dcm', 'test-SR.dcm'];
    for (const name of files) {
      const file = path.join(PYDICOM_TEST_FILES, name);
      const run = await runTool('dcmdump', ['-q', '+P', '0008,0016', '+P', '0008,0018', '+P', '0020,000d', '+P', '0020,000e', '+P', '0002,0010', '-Un', file]);
      const values = [...run.stdout.matchAll(/^\(([0-9a-f]{4},[0-9a-f]{4})\) UI \[([^\]]*)\]/gm)].map((m) => [m[1], m[2]]);
      const byTag = new Map(values as [string, string][]);
      const identity = readPart10Identity(await readFile(file));
      assert.equal(identity.transferSyntaxUid, byTag.get('0002,0010'), name);
      assert.equal(identity.sopClassUid, byTag.get('0008,0016'), name);
      assert.equal(identity.sopInstanceUid, byTag.get('0008,0018'), name);
      assert.equal(identity.studyInstanceUid, byTag.get('0020,000d'), name);
      assert.equal(identity.seriesInstanceUid, byTag.get('0020,000e'), name);
    }
    // Fragments with an undefined-length UN sequence and nested private sequences, but no UIDs: the
    // walk gets through their structure to the end, and only then misses the SOP Class UID.
    for (const name of ['UN_sequence.dcm', 'nested_priv_SQ.dcm']) {
      assert.throws(() => readPart10Identity(readFileSync(path.join(PYDICOM_TEST_FILES, name))), isAppError('CORRUPT_IMAGE', /no SOPClassUID/), name);
    }
  });
});

describe('C-STORE SCP with a raw SCU', () => {
  test('stores a data set split into 7-byte PDVs, byte for byte, with a proper File Meta Information', async () => {
    await withScp({}, async (scp, received) => {
      const scu = await RawScu.connect(scp.port);
      const assoc = await scu.associate({ called: AE, calling: 'RAWSCU', contexts: [{ id: 1, abstractSyntax: WSI_STORAGE, transferSyntaxes: [TS_EXPLICIT] }] });
      assert.ok(assoc.accepted);
      assert.equal(assoc.maxPdu, 65536);
      const u = uids(WSI_STORAGE);
      const dataset = sampleDataset(u, EXPLICIT_LE, 1000);
      assert.equal(await scu.store(1, 1, u.sopClassUid, u.sopInstanceUid, dataset, 7), 0x0000);
      assert.equal((await scu.release())?.type, 0x06);
      assert.equal(received.length, 1);
      const got = received[0] as ReceivedInstance;
      assert.deepEqual(datasetOf(got.bytes), dataset);
      assert.deepEqual(
        { ...readPart10Identity(got.bytes), datasetOffset: 0 },
        { ...u, transferSyntaxUid: TS_EXPLICIT, datasetOffset: 0 },
      );
      assert.equal(got.callingAeTitle, 'RAWSCU');
      assert.equal(got.transferSyntaxUid, TS_EXPLICIT);
      assert.equal(got.studyInstanceUid, u.studyInstanceUid);
      assert.equal(got.seriesInstanceUid, u.seriesInstanceUid);
      assert.equal(got.bytes.toString('latin1', 128, 132), 'DICM');
    });
  });

  test('negotiates: unknown SOP class refused (3), no common transfer syntax (4), compressed preferred to uncompressed', async () => {
    await withScp({ sopClasses: [CT_IMAGE_STORAGE] }, async (scp) => {
      const scu = await RawScu.connect(scp.port);
      const assoc = await scu.associate({
        called: AE,
        calling: 'RAWSCU',
        contexts: [
          { id: 1, abstractSyntax: '1.2.840.10008.1.1', transferSyntaxes: [TS_IMPLICIT] },
          { id: 3, abstractSyntax: SC_IMAGE_STORAGE, transferSyntaxes: [TS_EXPLICIT] },
          { id: 5, abstractSyntax: CT_IMAGE_STORAGE, transferSyntaxes: ['1.2.840.10008.1.2.4.100'] },
          { id: 7, abstractSyntax: CT_IMAGE_STORAGE, transferSyntaxes: [TS_IMPLICIT, TS_EXPLICIT, TS_J2K] },
          { id: 9, abstractSyntax: '1.2.840.10008.5.1.4.1.2.2.1', transferSyntaxes: [TS_IMPLICIT] },
        ],
      });
      assert.ok(assoc.accepted);
      assert.deepEqual(Object.fromEntries([...assoc.contexts].map(([id, c]) => [id, c.result])), { 1: 0, 3: 3, 5: 4, 7: 0, 9: 3 });
      assert.equal(assoc.contexts.get(7)?.transferSyntax, TS_J2K);
      const echo = await scu.request(1, cEchoRq(9), undefined);
      assert.equal(echo.get(0x0900)?.readUInt16LE(0), 0x0000);
      assert.equal(echo.get(0x0120)?.readUInt16LE(0), 9);
      // A C-STORE on the Verification context is not a storage operation.
      const u = uids();
      assert.equal(await scu.store(1, 2, u.sopClassUid, u.sopInstanceUid, sampleDataset(u)), 0x0122);
      await scu.release();
    });
  });

  test('"any storage" accepts every storage SOP class and nothing else', async () => {
    await withScp({}, async (scp) => {
      const scu = await RawScu.connect(scp.port);
      const assoc = await scu.associate({
        called: AE,
        calling: 'RAWSCU',
        contexts: [
          { id: 1, abstractSyntax: '1.2.840.10008.5.1.4.1.1.88.11', transferSyntaxes: [TS_EXPLICIT] }, // Basic Text SR
          { id: 3, abstractSyntax: '1.2.840.10008.5.1.4.1.1.77.1.4', transferSyntaxes: [TS_EXPLICIT] }, // VL Photographic
          { id: 5, abstractSyntax: '1.2.840.10008.5.1.4.1.2.2.1', transferSyntaxes: [TS_EXPLICIT] }, // Study Root Q/R Find
        ],
      });
      assert.deepEqual(Object.fromEntries([...assoc.contexts].map(([id, c]) => [id, c.result])), { 1: 0, 3: 0, 5: 3 });
      scu.destroy();
    });
  });

  test('rejects a wrong called AE title, an unknown calling AE title and a wrong application context', async () => {
    await withScp({ acceptCallingAeTitles: ['MODALITY1'] }, async (scp, received) => {
      const contexts = [{ id: 1, abstractSyntax: CT_IMAGE_STORAGE, transferSyntaxes: [TS_EXPLICIT] }];
      for (const [called, calling, appContext, reason] of [
        ['OTHER_AE', 'MODALITY1', undefined, 7],
        [AE, 'INTRUDER', undefined, 3],
        [AE, 'MODALITY1', '1.2.3.4', 2],
      ] as const) {
        const scu = await RawScu.connect(scp.port);
        const answer = await scu.associate({ called, calling, contexts, applicationContext: appContext });
        assert.equal(answer.pdu.type, 0x03, `${called}/${calling}`);
        assert.deepEqual([...answer.pdu.body], [0, 1, 1, reason]);
        assert.equal(await scu.next(), undefined, 'the SCP closes the connection after rejecting');
      }
      const ok = await RawScu.connect(scp.port);
      assert.ok((await ok.associate({ called: `  ${AE}`, calling: 'MODALITY1', contexts })).accepted, 'leading spaces of an AE title are not significant');
      ok.destroy();
      assert.equal(received.length, 0);
    });
  });

  test('answers each failure with its status and keeps the association usable', async () => {
    const calls: string[] = [];
    await withScp(
      {
        maxInstanceBytes: 4096,
        onInstance: async (i) => {
          calls.push(i.sopInstanceUid);
          if (i.sopInstanceUid.endsWith('.1')) throw new AppError('CORRUPT_IMAGE', 'refused by the test');
          if (i.sopInstanceUid.endsWith('.2')) throw new Error('disk full');
        },
      },
      async (scp, _received, entries) => {
        const scu = await RawScu.connect(scp.port);
        await scu.associate({ called: AE, calling: 'RAWSCU', contexts: [{ id: 1, abstractSyntax: CT_IMAGE_STORAGE, transferSyntaxes: [TS_EXPLICIT] }] });
        const u = uids();
        // Over maxInstanceBytes: read to its end, dropped, refused out of resources; onInstance never sees it.
        assert.equal(await scu.store(1, 1, u.sopClassUid, u.sopInstanceUid, sampleDataset(u, EXPLICIT_LE, 8000), 1000), 0xa700);
        // Not a data set at all.
        assert.equal(await scu.store(1, 2, u.sopClassUid, u.sopInstanceUid, Buffer.from('this is not DICOM at all!!')), 0xc000);
        // Data set that says it is another instance, or another SOP class, than the command does.
        assert.equal(await scu.store(1, 3, u.sopClassUid, testUid(), sampleDataset(u)), 0xc001);
        const sc = { ...u, sopClassUid: SC_IMAGE_STORAGE };
        assert.equal(await scu.store(1, 4, CT_IMAGE_STORAGE, u.sopInstanceUid, sampleDataset(sc)), 0xa900);
        // onInstance rejects: a non-retryable AppError is a refusal, anything else is "try again later".
        const refused = { ...uids(), sopInstanceUid: `${testUid()}.1` };
        assert.equal(await scu.store(1, 5, refused.sopClassUid, refused.sopInstanceUid, sampleDataset(refused)), 0xc002);
        const failing = { ...uids(), sopInstanceUid: `${testUid()}.2` };
        assert.equal(await scu.store(1, 6, failing.sopClassUid, failing.sopInstanceUid, sampleDataset(failing)), 0xa701);
        // And a good one still goes through on the same association.
        assert.equal(await scu.store(1, 7, u.sopClassUid, u.sopInstanceUid, sampleDataset(u)), 0x0000);
        await scu.release();
        assert.deepEqual(calls, [refused.sopInstanceUid, failing.sopInstanceUid, u.sopInstanceUid]);
        assert.equal(entries.filter((e) => e.msg === 'DICOM C-STORE failed').length, 6);
        assert.ok(!JSON.stringify(entries).includes(u.sopInstanceUid), 'UIDs are not logged');
      },
    );
  });

  test('reads deflated, big endian and implicit data sets in their negotiated syntax', async () => {
    await withScp({}, async (scp, received) => {
      const scu = await RawScu.connect(scp.port);
      await scu.associate({
        called: AE,
        calling: 'RAWSCU',
        contexts: [
          { id: 1, abstractSyntax: CT_IMAGE_STORAGE, transferSyntaxes: [TS_DEFLATE] },
          { id: 3, abstractSyntax: CT_IMAGE_STORAGE, transferSyntaxes: [TS_BIG] },
          { id: 5, abstractSyntax: CT_IMAGE_STORAGE, transferSyntaxes: [TS_IMPLICIT] },
        ],
      });
      const sent: Buffer[] = [];
      for (const [id, dataset] of [
        [1, (u: ReturnType<typeof uids>) => deflated(sampleDataset(u))],
        [3, (u: ReturnType<typeof uids>) => sampleDataset(u, EXPLICIT_BE)],
        [5, (u: ReturnType<typeof uids>) => sampleDataset(u, IMPLICIT_LE)],
      ] as const) {
        const u = uids();
        const bytes = dataset(u);
        sent.push(bytes);
        assert.equal(await scu.store(id, id, u.sopClassUid, u.sopInstanceUid, bytes), 0);
      }
      await scu.release();
      assert.deepEqual(received.map((r) => r.transferSyntaxUid), [TS_DEFLATE, TS_BIG, TS_IMPLICIT]);
      received.forEach((r, i) => assert.deepEqual(datasetOf(r.bytes), sent[i]));
    });
  });

  test('aborts on protocol violations', async () => {
    await withScp({ maxPduLength: 8192 }, async (scp) => {
      const contexts = [{ id: 1, abstractSyntax: CT_IMAGE_STORAGE, transferSyntaxes: [TS_EXPLICIT] }];
      // A P-DATA-TF larger than the maximum length this SCP announced.
      let scu = await RawScu.connect(scp.port);
      await scu.associate({ called: AE, calling: 'RAWSCU', contexts });
      scu.send(rawPdu(0x04, Buffer.alloc(9000)));
      assert.equal((await scu.next())?.type, 0x07);
      assert.equal(await scu.next(), undefined);
      // A PDV on a presentation context that was never accepted.
      scu = await RawScu.connect(scp.port);
      await scu.associate({ called: AE, calling: 'RAWSCU', contexts });
      scu.send(rawPdu(0x04, Buffer.from([0, 0, 0, 4, 3, 3, 0, 0])));
      assert.equal((await scu.next())?.type, 0x07);
      // Data before any association.
      scu = await RawScu.connect(scp.port);
      scu.send(rawPdu(0x04, Buffer.from([0, 0, 0, 4, 1, 3, 0, 0])));
      assert.equal((await scu.next())?.type, 0x07);
      // An unknown PDU type.
      scu = await RawScu.connect(scp.port);
      await scu.associate({ called: AE, calling: 'RAWSCU', contexts });
      scu.send(rawPdu(0x42, Buffer.alloc(4)));
      const abort = await scu.next();
      assert.equal(abort?.type, 0x07);
      assert.deepEqual([...(abort?.body ?? [])], [0, 0, 2, 1]);
    });
  });

  test('rejects associations over maxAssociations as transient, and aborts idle ones', async () => {
    await withScp({ maxAssociations: 1, idleTimeoutMs: 300 }, async (scp) => {
      const contexts = [{ id: 1, abstractSyntax: CT_IMAGE_STORAGE, transferSyntaxes: [TS_EXPLICIT] }];
      const first = await RawScu.connect(scp.port);
      assert.ok((await first.associate({ called: AE, calling: 'A', contexts })).accepted);
      const second = await RawScu.connect(scp.port);
      const rejected = await second.associate({ called: AE, calling: 'B', contexts });
      assert.deepEqual([rejected.pdu.type, ...rejected.pdu.body], [0x03, 0, 2, 3, 2]);
      // The first one, left idle, is aborted after idleTimeoutMs; then a new one is accepted.
      assert.equal((await first.next(3000))?.type, 0x07);
      await new Promise((r) => setTimeout(r, 50));
      const third = await RawScu.connect(scp.port);
      assert.ok((await third.associate({ called: AE, calling: 'C', contexts })).accepted);
      third.destroy();
    });
  });

  test('close() lets an instance being stored finish and be answered, then aborts the association', async () => {
    let release: () => void = () => undefined;
    const gate = new Promise<void>((r) => {
      release = r;
    });
    let entered: () => void = () => undefined;
    const storing = new Promise<void>((r) => {
      entered = r;
    });
    const { log } = collectingLog();
    const scp = await startStoreScp({
      port: 0,
      host: '127.0.0.1',
      aeTitle: AE,
      maxInstanceBytes: 1 << 20,
      log,
      onInstance: async () => {
        entered();
        await gate;
      },
    });
    const scu = await RawScu.connect(scp.port);
    await scu.associate({ called: AE, calling: 'RAWSCU', contexts: [{ id: 1, abstractSyntax: CT_IMAGE_STORAGE, transferSyntaxes: [TS_EXPLICIT] }] });
    const u = uids();
    const status = scu.store(1, 1, u.sopClassUid, u.sopInstanceUid, sampleDataset(u));
    await storing;
    const closed = scp.close();
    setTimeout(release, 100);
    assert.equal(await status, 0x0000);
    assert.equal((await scu.next())?.type, 0x07);
    await closed;
  });

  test('refuses invalid configuration', async () => {
    const { log } = collectingLog();
    const base = { port: 0, host: '127.0.0.1', aeTitle: AE, maxInstanceBytes: 1000, log, onInstance: async () => undefined };
    await assert.rejects(startStoreScp({ ...base, aeTitle: 'WAY_TOO_LONG_AE_TITLE' }), isAppError('CONFIG_INVALID', /AE title/));
    await assert.rejects(startStoreScp({ ...base, maxPduLength: 100 }), isAppError('CONFIG_INVALID', /maxPduLength/));
    await assert.rejects(startStoreScp({ ...base, transferSyntaxes: ['1.2.3'] }), isAppError('CONFIG_INVALID', /transfer syntax/));
  });
});

describe('C-STORE SCP with dcmtk storescu and echoscu', { skip: dcmtkMissing() }, () => {
  const FILES = [
    'CT_small.dcm', // explicit VR LE, CT
    'MR_small.dcm', // explicit VR LE, MR
    'JPEG2000.dcm', // JPEG 2000, SC
    'MR_small_jp2klossless.dcm', // JPEG 2000 lossless
    'MR_small_RLE.dcm', // RLE lossless
    'SC_rgb_rle.dcm',
    'SC_rgb_jpeg_dcmtk.dcm', // JPEG baseline
    'JPGExtended.dcm', // JPEG extended
    'MR_small_jpeg_ls_lossless.dcm', // JPEG-LS lossless
    'image_dfl.dcm', // deflated explicit VR LE
    'MR_small_bigendian.dcm', // explicit VR BE
    'MR_small_implicit.dcm', // implicit VR LE
  ];
  let dir = '';
  let config = '';

  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'dxflow-scp-'));
    config = path.join(dir, 'storescu.cfg');
    await writeStorescuConfig(config);
  });

  after(async () => {
    if (dir !== '') await rm(dir, { recursive: true, force: true });
  });

  test('echoscu gets a C-ECHO success', async () => {
    await withScp({}, async (scp) => {
      const run = await runTool('echoscu', ['-aec', AE, '127.0.0.1', String(scp.port)]);
      assert.equal(run.code, 0, run.stderr);
    });
  });

  test('storescu sends 12 files in every transfer syntax in one association; each data set arrives unchanged', async () => {
    await withScp({}, async (scp, received, entries) => {
      const run = await runTool('storescu', ['-v', '-xf', config, 'Default', '-aet', 'MODALITY', '-aec', AE, '127.0.0.1', String(scp.port), ...FILES.map((f) => path.join(PYDICOM_TEST_FILES, f))]);
      assert.equal(run.code, 0, run.stderr);
      assert.equal(received.length, FILES.length);
      assert.equal(entries.filter((e) => e.msg === 'DICOM association accepted').length, 1, 'one association');
      for (const [i, name] of FILES.entries()) {
        const original = path.join(PYDICOM_TEST_FILES, name);
        const got = received[i] as ReceivedInstance;
        const identity = readPart10Identity(await readFile(original));
        assert.equal(got.transferSyntaxUid, identity.transferSyntaxUid, `${name} is stored in its own transfer syntax`);
        assert.equal(got.sopInstanceUid, identity.sopInstanceUid);
        assert.equal(got.sopClassUid, identity.sopClassUid);
        assert.equal(got.callingAeTitle, 'MODALITY');
        const out = path.join(dir, `received-${i}.dcm`);
        await writeFile(out, got.bytes);
        const meta = await metaHeader(out);
        assert.equal(meta.get('MediaStorageSOPClassUID'), (await metaHeader(original)).get('MediaStorageSOPClassUID'), name);
        assert.equal(meta.get('MediaStorageSOPInstanceUID'), identity.sopInstanceUid, name);
        assert.equal(meta.get('TransferSyntaxUID'), (await metaHeader(original)).get('TransferSyntaxUID'), name);
        assert.equal(meta.get('ImplementationClassUID'), '2.25.170535686990820511936789891011854600396');
        assert.equal(meta.get('SendingApplicationEntityTitle'), 'MODALITY');
        assert.deepEqual(await normalizedDataset(out), await normalizedDataset(original), `${name}: data set differs from the original`);
      }
    });
  });

  test('storescu fails when the called AE title is wrong, and nothing is stored', async () => {
    await withScp({}, async (scp, received) => {
      const run = await runTool('storescu', ['-xf', config, 'Default', '-aec', 'NOT_OUR_AE', '127.0.0.1', String(scp.port), path.join(PYDICOM_TEST_FILES, 'CT_small.dcm')]);
      assert.notEqual(run.code, 0);
      assert.match(run.stderr, /Association Rejected/i);
      assert.match(run.stderr, /Called AE Title Not Recognized/i);
      assert.equal(received.length, 0);
    });
  });

  test('storescu reports a failure status when onInstance rejects, or the instance is too large', async () => {
    const cases: [Partial<StoreScpOptions>, RegExp][] = [
      [{ onInstance: () => Promise.reject(new Error('object store down')) }, /Refused: OutOfResources/],
      [{ onInstance: () => Promise.reject(new AppError('CORRUPT_IMAGE', 'rejected content')) }, /Error: CannotUnderstand/],
      [{ maxInstanceBytes: 10_000 }, /Refused: OutOfResources/],
    ];
    for (const [options, status] of cases) {
      await withScp(options, async (scp, received) => {
        const run = await runTool('storescu', ['-v', '-xf', config, 'Default', '-aec', AE, '127.0.0.1', String(scp.port), path.join(PYDICOM_TEST_FILES, 'CT_small.dcm')]);
        assert.notEqual(run.code, 0, 'storescu exits with an error status');
        assert.match(run.stderr, status);
        assert.doesNotMatch(run.stderr, /Received Store Response \(Success\)/);
        assert.equal(received.length, 0);
      });
    }
  });
});
