import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { AppError } from '../../src/core/errors.ts';
import { readPart10Identity } from '../../src/dicom/net/identity.ts';
import { buildPart10 } from '../../src/dicom/net/part10.ts';
import { buildStowResponse, parseMediaType, parseStowRequest, STOW_FAILURE, type StowLimits, type StowPart } from '../../src/dicom/net/stow.ts';
import { CT_IMAGE_STORAGE, sampleDataset, testUid } from './net-dataset.ts';

const LIMITS: StowLimits = { maxPartBytes: 1 << 20, maxParts: 100 };
const TYPE = (boundary: string): string => `multipart/related; type="application/dicom"; boundary=${boundary}`;

function part10(pixelBytes = 256): { bytes: Buffer; sopInstanceUid: string; studyInstanceUid: string } {
  const u = { sopClassUid: CT_IMAGE_STORAGE, sopInstanceUid: testUid(), studyInstanceUid: testUid(), seriesInstanceUid: testUid() };
  const bytes = buildPart10(sampleDataset(u, undefined, pixelBytes), { sopClassUid: u.sopClassUid, sopInstanceUid: u.sopInstanceUid, transferSyntaxUid: '1.2.840.10008.1.2.1' });
  return { bytes, sopInstanceUid: u.sopInstanceUid, studyInstanceUid: u.studyInstanceUid };
}

/** A multipart/related body: preamble, parts with their headers, closing boundary, epilogue. */
function multipart(boundary: string, parts: { headers?: string[]; body: Buffer }[], opts: { preamble?: string; epilogue?: string; close?: boolean } = {}): Buffer {
  const chunks: Buffer[] = [];
  if (opts.preamble !== undefined) chunks.push(Buffer.from(`${opts.preamble}\r\n`, 'latin1'));
  parts.forEach((p, i) => {
    const headers = p.headers ?? ['Content-Type: application/dicom'];
    chunks.push(Buffer.from(`${i === 0 ? '' : '\r\n'}--${boundary}\r\n${headers.map((h) => `${h}\r\n`).join('')}\r\n`, 'latin1'), p.body);
  });
  if (opts.close ?? true) chunks.push(Buffer.from(`\r\n--${boundary}--`, 'latin1'));
  if (opts.epilogue !== undefined) chunks.push(Buffer.from(`\r\n${opts.epilogue}`, 'latin1'));
  return Buffer.concat(chunks);
}

async function* chunked(body: Buffer, sizes: number[] | number): AsyncGenerator<Uint8Array> {
  let offset = 0;
  let i = 0;
  while (offset < body.length) {
    const size = typeof sizes === 'number' ? sizes : (sizes[i++ % sizes.length] as number);
    yield body.subarray(offset, offset + size);
    offset += size;
  }
}

async function collect(iterable: AsyncIterable<StowPart>): Promise<StowPart[]> {
  const out: StowPart[] = [];
  for await (const p of iterable) out.push(p);
  return out;
}

function isAppError(code: string, pattern?: RegExp) {
  return (e: unknown): boolean => {
    assert.ok(e instanceof AppError, `expected an AppError, got ${String(e)}`);
    assert.equal(e.code, code, e.message);
    if (pattern) assert.match(e.message, pattern);
    return true;
  };
}

describe('STOW-RS request parsing', () => {
  test('two DICOM parts with preamble and epilogue, read whole and in every chunking', async () => {
    const a = part10();
    const b = part10(1000);
    const boundary = 'dxflow-boundary-42';
    const body = multipart(boundary, [{ body: a.bytes }, { headers: ['Content-Type: application/dicom; transfer-syntax=1.2.840.10008.1.2.1', 'Content-Length: 9'], body: b.bytes }], {
      preamble: 'This is a preamble, ignored.',
      epilogue: 'and an epilogue, ignored too.',
    });
    const expect = (parts: StowPart[], how: string): void => {
      assert.equal(parts.length, 2, how);
      assert.deepEqual(parts[0]?.bytes, a.bytes, how);
      assert.deepEqual(parts[1]?.bytes, b.bytes, how);
      assert.equal(parts[0]?.contentType, 'application/dicom');
      assert.equal(parts[1]?.transferSyntaxUid, '1.2.840.10008.1.2.1');
      assert.deepEqual(parts.map((p) => p.index), [0, 1]);
    };
    expect(await collect(parseStowRequest(TYPE(boundary), body, LIMITS)), 'one buffer');
    expect(await collect(parseStowRequest(TYPE(boundary), chunked(body, 1), LIMITS)), '1-byte chunks');
    for (const sizes of [[2], [3, 7], [17, 1, 5], [boundary.length + 3], [4096]]) {
      expect(await collect(parseStowRequest(TYPE(boundary), chunked(body, sizes), LIMITS)), `chunks ${sizes.join(',')}`);
    }
    // The parts are the DICOM files that were sent.
    const first = (await collect(parseStowRequest(TYPE(boundary), body, LIMITS)))[0] as StowPart;
    assert.equal(readPart10Identity(first.bytes).sopInstanceUid, a.sopInstanceUid);
  });

  test('boundary look-alikes inside a part stay data', async () => {
    const boundary = 'XyZ';
    const lookAlikes = Buffer.concat([
      Buffer.from('start--XyZ\r\n', 'latin1'), // not at the start of a line
      Buffer.from('\r\n--XyZabc\r\n', 'latin1'), // the boundary followed by more boundary characters
      Buffer.from('\r\n--XyZ x\r\n', 'latin1'), // padding then something other than CRLF
      Buffer.from('\r\n--XyZ-\r\n', 'latin1'), // one dash is not a close delimiter
      Buffer.from('\n--XyZ\r\n', 'latin1'), // LF alone does not start a delimiter line
      Buffer.from('\r\n--Xy', 'latin1'), // a delimiter cut short at the end of the data
    ]);
    const other = Buffer.from('second part', 'latin1');
    const body = multipart(boundary, [{ body: lookAlikes }, { body: other }]);
    for (const size of [1, 2, 3, 5, 1000]) {
      const parts = await collect(parseStowRequest(TYPE(boundary), chunked(body, size), LIMITS));
      assert.deepEqual(parts.map((p) => p.bytes.toString('latin1')), [lookAlikes.toString('latin1'), 'second part'], `chunk ${size}`);
    }
  });

  test('quoted boundary with spaces, transport padding after delimiters, parts without headers', async () => {
    const boundary = "my boundary:'(+_,-./=?)";
    const body = Buffer.concat([
      Buffer.from(`--${boundary} \t\r\n\r\nfirst`, 'latin1'),
      Buffer.from(`\r\n--${boundary}  \r\nContent-Type: Application/DICOM\r\n\r\nsecond`, 'latin1'),
      Buffer.from(`\r\n--${boundary}--  \r\n`, 'latin1'),
    ]);
    const contentType = `Multipart/Related; boundary="${boundary}"; type="application/dicom"`;
    const parts = await collect(parseStowRequest(contentType, chunked(body, 3), LIMITS));
    assert.deepEqual(parts.map((p) => [p.bytes.toString('latin1'), p.contentType]), [
      ['first', 'application/dicom'], // no header: the request's type parameter applies
      ['second', 'Application/DICOM'],
    ]);
  });

  test('a missing closing boundary is an error, not a silently shortened request', async () => {
    const a = part10();
    const boundary = 'b1';
    const cut = multipart(boundary, [{ body: a.bytes }], { close: false });
    await assert.rejects(collect(parseStowRequest(TYPE(boundary), cut, LIMITS)), isAppError('INVALID_REQUEST', /without the closing boundary "--b1--"/));
    await assert.rejects(collect(parseStowRequest(TYPE(boundary), Buffer.from('--b1\r\nContent-Type: appl', 'latin1'), LIMITS)), isAppError('INVALID_REQUEST', /in the headers of part 0/));
    await assert.rejects(collect(parseStowRequest(TYPE(boundary), Buffer.from('no boundary anywhere', 'latin1'), LIMITS)), isAppError('INVALID_REQUEST', /before its first boundary/));
    await assert.rejects(collect(parseStowRequest(TYPE(boundary), Buffer.from('--b1--\r\n', 'latin1'), LIMITS)), isAppError('INVALID_REQUEST', /no parts/));
    // LF-only line breaks do not make a multipart body (RFC 2046 requires CRLF).
    await assert.rejects(collect(parseStowRequest(TYPE(boundary), Buffer.from('--b1\nContent-Type: application/dicom\n\nx\n--b1--\n', 'latin1'), LIMITS)), isAppError('INVALID_REQUEST'));
  });

  test('a part over maxPartBytes fails with FILE_TOO_LARGE as soon as it is read, without reading the rest', async () => {
    const small = part10();
    const big = Buffer.alloc(50_000, 1);
    const body = multipart('lim', [{ body: small.bytes }, { body: big }, { body: small.bytes }]);
    let pulled = 0;
    async function* counting(): AsyncGenerator<Uint8Array> {
      for await (const c of chunked(body, 1000)) {
        pulled += c.length;
        yield c;
      }
    }
    const seen: StowPart[] = [];
    await assert.rejects(
      (async () => {
        for await (const p of parseStowRequest(TYPE('lim'), counting(), { maxPartBytes: 20_000, maxParts: 10 })) seen.push(p);
      })(),
      isAppError('FILE_TOO_LARGE', /Part 1 .* larger than 20000 bytes/),
    );
    assert.equal(seen.length, 1, 'the part before the large one was handed out');
    assert.ok(pulled < small.bytes.length + 25_000, `read ${pulled} of ${body.length} bytes before failing`);
  });

  test('more parts than maxParts fail with INVALID_REQUEST', async () => {
    const body = multipart('m', [1, 2, 3].map((n) => ({ body: Buffer.from(`part ${n}`) })));
    await assert.rejects(collect(parseStowRequest(TYPE('m'), body, { maxPartBytes: 100, maxParts: 2 })), isAppError('INVALID_REQUEST', /more than 2 parts/));
  });

  test('non-DICOM parts are refused with UNSUPPORTED_MEDIA_TYPE naming the part', async () => {
    const a = part10();
    const body = multipart('t', [{ body: a.bytes }, { headers: ['Content-Type: application/dicom+json'], body: Buffer.from('[]') }]);
    const seen: StowPart[] = [];
    await assert.rejects(
      (async () => {
        for await (const p of parseStowRequest(TYPE('t'), body, LIMITS)) seen.push(p);
      })(),
      isAppError('UNSUPPORTED_MEDIA_TYPE', /Part 1 .* application\/dicom\+json; only DICOM Part 10 files/),
    );
    assert.equal(seen.length, 1);
    // No Content-Type on the part and none on the request.
    const untyped = multipart('t', [{ headers: [], body: a.bytes }]);
    await assert.rejects(collect(parseStowRequest('multipart/related; boundary=t', untyped, LIMITS)), isAppError('UNSUPPORTED_MEDIA_TYPE', /no Content-Type/));
    // Base64 transfer encoding is not DICOM bytes.
    const encoded = multipart('t', [{ headers: ['Content-Type: application/dicom', 'Content-Transfer-Encoding: base64'], body: Buffer.from('AAAA') }]);
    await assert.rejects(collect(parseStowRequest(TYPE('t'), encoded, LIMITS)), isAppError('INVALID_REQUEST', /base64/));
  });

  test('the request Content-Type is checked before any of the body is read', () => {
    const body = Buffer.alloc(0);
    assert.throws(() => parseStowRequest('application/dicom', body, LIMITS), isAppError('UNSUPPORTED_MEDIA_TYPE', /multipart\/related/));
    assert.throws(() => parseStowRequest(undefined, body, LIMITS), isAppError('UNSUPPORTED_MEDIA_TYPE'));
    assert.throws(() => parseStowRequest('multipart/related; type="application/dicom+xml"; boundary=x', body, LIMITS), isAppError('UNSUPPORTED_MEDIA_TYPE', /dicom\+xml/));
    assert.throws(() => parseStowRequest('multipart/related; type="application/dicom"', body, LIMITS), isAppError('INVALID_REQUEST', /no boundary/));
    assert.throws(() => parseStowRequest(`multipart/related; boundary=${'x'.repeat(71)}`, body, LIMITS), isAppError('INVALID_REQUEST', /not valid/));
    assert.throws(() => parseStowRequest('multipart/related; boundary="ends with space "', body, LIMITS), isAppError('INVALID_REQUEST', /not valid/));
    assert.throws(() => parseStowRequest('multipart/related; boundary="unterminated', body, LIMITS), isAppError('UNSUPPORTED_MEDIA_TYPE', /unterminated/));
  });

  test('media type parameters: quoted strings with escapes, case, whitespace', () => {
    const m = parseMediaType('Multipart/Related ; Boundary="a\\"b;c" ;type=application/dicom; start="<1@x>"');
    assert.equal(m.type, 'multipart/related');
    assert.deepEqual(Object.fromEntries(m.params), { boundary: 'a"b;c', type: 'application/dicom', start: '<1@x>' });
  });
});

describe('STOW-RS response', () => {
  const stored = { sopClassUid: CT_IMAGE_STORAGE, sopInstanceUid: '2.25.11', retrieveUrl: 'https://dx.example/dicomweb/studies/2.25.1/series/2.25.2/instances/2.25.11' };

  test('all stored: 200 with the Referenced SOP Sequence and the study Retrieve URL', () => {
    const r = buildStowResponse({ retrieveUrl: 'https://dx.example/dicomweb/studies/2.25.1', stored: [stored], failed: [] });
    assert.equal(r.status, 200);
    assert.deepEqual(r.body, {
      '00081190': { vr: 'UR', Value: ['https://dx.example/dicomweb/studies/2.25.1'] },
      '00081199': {
        vr: 'SQ',
        Value: [
          {
            '00081150': { vr: 'UI', Value: [CT_IMAGE_STORAGE] },
            '00081155': { vr: 'UI', Value: ['2.25.11'] },
            '00081190': { vr: 'UR', Value: [stored.retrieveUrl] },
          },
        ],
      },
    });
    assert.deepEqual(JSON.parse(JSON.stringify(r.body)), r.body, 'plain JSON');
  });

  test('some failed: 202 with the Failed SOP Sequence and Failure Reasons; none stored: 409', () => {
    const failed = [
      { sopClassUid: CT_IMAGE_STORAGE, sopInstanceUid: '2.25.12', failureReason: STOW_FAILURE.outOfResources },
      { failureReason: STOW_FAILURE.cannotUnderstand },
    ];
    const r = buildStowResponse({ stored: [stored], failed });
    assert.equal(r.status, 202);
    assert.deepEqual(r.body['00081198'], {
      vr: 'SQ',
      Value: [
        { '00081150': { vr: 'UI', Value: [CT_IMAGE_STORAGE] }, '00081155': { vr: 'UI', Value: ['2.25.12'] }, '00081197': { vr: 'US', Value: [0xa700] } },
        { '00081150': { vr: 'UI' }, '00081155': { vr: 'UI' }, '00081197': { vr: 'US', Value: [0xc000] } },
      ],
    });
    assert.equal(r.body['00081199']?.Value?.length, 1);
    const none = buildStowResponse({ retrieveUrl: 'https://dx.example/x', stored: [], failed });
    assert.equal(none.status, 409);
    assert.equal(none.body['00081199'], undefined);
    assert.equal(none.body['00081190'], undefined, 'no Retrieve URL when nothing was stored');
    assert.equal(buildStowResponse({ stored: [{ ...stored, warningReason: 0xb000 }], failed: [] }).status, 202);
  });
});
