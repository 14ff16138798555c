import { AppError } from '../../core/errors.ts';

// DICOMweb STOW-RS (PS3.18 §10.5): the request is multipart/related; type="application/dicom", one DICOM
// Part 10 file per part. The body is read as a stream and cut at the boundary delimiters of RFC 2046
// §5.1.1: a delimiter is CRLF "--" boundary at the start of a line (or at the very start of the body),
// followed by optional transport padding and CRLF, or by "--" for the closing one; anything else,
// including the boundary text inside a part's bytes, is data. Each part is held in memory only up to
// maxPartBytes and is yielded as soon as its closing delimiter is read.

export interface StowPart {
  /** Position of the part in the request, from 0. */
  index: number;
  bytes: Buffer;
  /** The part's Content-Type header as sent (or the request's type parameter when the part has none). */
  contentType: string;
  /** The transfer-syntax parameter of the part's media type, when given. */
  transferSyntaxUid: string | undefined;
}

export interface StowLimits {
  /** Largest part; a larger one fails the request with FILE_TOO_LARGE. */
  maxPartBytes: number;
  /** Most parts in one request; one more fails it with INVALID_REQUEST. */
  maxParts: number;
  /** Largest header block of a part (default 16 KiB). */
  maxHeaderBytes?: number;
  /** Largest preamble before the first boundary (default 64 KiB). */
  maxPreambleBytes?: number;
}

export const DICOM_MEDIA_TYPE = 'application/dicom';

export interface MediaType {
  /** type/subtype, lower case. */
  type: string;
  /** Parameter names lower case, values unquoted. */
  params: Map<string, string>;
}

const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

/** Parses a Content-Type value (RFC 9110 §8.3.1): type/subtype and parameters, quoted strings included. */
export function parseMediaType(value: string): MediaType {
  const invalid = (why: string): AppError => new AppError('UNSUPPORTED_MEDIA_TYPE', `Content-Type ${JSON.stringify(value.slice(0, 200))} is not a valid media type: ${why}.`);
  const semi = value.indexOf(';');
  const type = (semi < 0 ? value : value.slice(0, semi)).trim().toLowerCase();
  const [top, sub, ...more] = type.split('/');
  if (!top || !sub || more.length > 0 || !TOKEN.test(top) || !TOKEN.test(sub)) throw invalid('expected type/subtype');
  const params = new Map<string, string>();
  let i = semi < 0 ? value.length : semi + 1;
  while (i < value.length) {
    while (i < value.length && (value[i] === ' ' || value[i] === '\t' || value[i] === ';')) i++;
    if (i >= value.length) break;
    const eq = value.indexOf('=', i);
    if (eq < 0) throw invalid(`parameter ${JSON.stringify(value.slice(i))} has no value`);
    const name = value.slice(i, eq).trim().toLowerCase();
    if (!TOKEN.test(name)) throw invalid(`parameter name ${JSON.stringify(name)}`);
    i = eq + 1;
    let v = '';
    if (value[i] === '"') {
      i++;
      let closed = false;
      while (i < value.length) {
        const c = value[i] as string;
        if (c === '\\' && i + 1 < value.length) {
          v += value[i + 1];
          i += 2;
        } else if (c === '"') {
          closed = true;
          i++;
          break;
        } else {
          v += c;
          i++;
        }
      }
      if (!closed) throw invalid(`parameter ${name} has an unterminated quoted string`);
      while (i < value.length && (value[i] === ' ' || value[i] === '\t')) i++;
      if (i < value.length && value[i] !== ';') throw invalid(`unexpected text after the quoted value of ${name}`);
    } else {
      const end = value.indexOf(';', i);
      v = (end < 0 ? value.slice(i) : value.slice(i, end)).trim();
      i = end < 0 ? value.length : end;
    }
    if (params.has(name)) throw invalid(`parameter ${name} is repeated`);
    params.set(name, v);
  }
  return { type, params };
}

/** RFC 2046 §5.1.1: 1-70 characters of bchars, not ending in a space. */
const BOUNDARY = /^[0-9A-Za-z'()+_,\-./:=? ]{0,69}[0-9A-Za-z'()+_,\-./:=?]$/;

/**
 * Checks the request's Content-Type and returns its boundary. Refused with UNSUPPORTED_MEDIA_TYPE: not
 * multipart/related, or a type parameter other than application/dicom (metadata-and-bulk-data requests,
 * application/dicom+json or +xml, are not accepted). A missing type parameter is allowed; each part's
 * own Content-Type is then required.
 */
export function stowBoundary(contentType: string | undefined): { boundary: string; rootType: string | undefined } {
  if (!contentType) throw new AppError('UNSUPPORTED_MEDIA_TYPE', 'A STOW-RS request needs Content-Type: multipart/related; type="application/dicom"; boundary=...');
  const media = parseMediaType(contentType);
  if (media.type !== 'multipart/related') {
    throw new AppError('UNSUPPORTED_MEDIA_TYPE', `STOW-RS takes multipart/related; type="application/dicom", not ${media.type}; send each instance as an application/dicom part.`);
  }
  const rootType = media.params.get('type')?.trim().toLowerCase();
  if (rootType !== undefined && parseMediaType(rootType).type !== DICOM_MEDIA_TYPE) {
    throw new AppError('UNSUPPORTED_MEDIA_TYPE', `STOW-RS accepts type="application/dicom" only, not type="${rootType}"; metadata with bulk data (application/dicom+json or +xml) is not supported, send DICOM Part 10 files.`);
  }
  const boundary = media.params.get('boundary');
  if (boundary === undefined) throw new AppError('INVALID_REQUEST', 'The multipart/related Content-Type has no boundary parameter.');
  if (!BOUNDARY.test(boundary)) throw new AppError('INVALID_REQUEST', `The multipart boundary ${JSON.stringify(boundary.slice(0, 100))} is not valid (RFC 2046: 1-70 letters, digits or '()+_,-./:=? and spaces, not ending in a space).`);
  return { boundary, rootType: rootType === undefined ? undefined : DICOM_MEDIA_TYPE };
}

const CRLF = Buffer.from('\r\n', 'latin1');
const HEADER_END = Buffer.from('\r\n\r\n', 'latin1');
/** Transport padding allowed after a boundary (RFC 2046 LWSP); more is taken as not a delimiter. */
const MAX_PADDING = 256;

type Delimiter = { kind: 'close' | 'part'; end: number } | { kind: 'none' } | { kind: 'incomplete' };

/**
 * Parses a STOW-RS request body into its parts. The Content-Type is checked at once (this function
 * throws before reading any of the body); the body's errors are thrown by the returned iterator:
 * FILE_TOO_LARGE for a part over maxPartBytes, UNSUPPORTED_MEDIA_TYPE for a part that is not
 * application/dicom, INVALID_REQUEST for too many parts or a malformed or unterminated multipart body.
 */
export function parseStowRequest(contentType: string | undefined, body: AsyncIterable<Uint8Array> | Uint8Array, limits: StowLimits): AsyncGenerator<StowPart> {
  const { boundary, rootType } = stowBoundary(contentType);
  if (!Number.isInteger(limits.maxPartBytes) || limits.maxPartBytes < 1) throw new AppError('CONFIG_INVALID', `STOW-RS maxPartBytes ${limits.maxPartBytes} must be a positive integer.`);
  if (!Number.isInteger(limits.maxParts) || limits.maxParts < 1) throw new AppError('CONFIG_INVALID', `STOW-RS maxParts ${limits.maxParts} must be a positive integer.`);
  return readParts(boundary, rootType, body, limits);
}

async function* readParts(boundary: string, rootType: string | undefined, body: AsyncIterable<Uint8Array> | Uint8Array, limits: StowLimits): AsyncGenerator<StowPart> {
  const maxHeaderBytes = limits.maxHeaderBytes ?? 16 * 1024;
  const maxPreambleBytes = limits.maxPreambleBytes ?? 64 * 1024;
  const dashBoundary = Buffer.from(`--${boundary}`, 'latin1');
  const delimiter = Buffer.concat([CRLF, dashBoundary]);

  type State = 'preamble' | 'headers' | 'body' | 'epilogue';
  // Widened so that the closure that advances it does not leave it narrowed to the initial value here.
  let state = 'preamble' as State;
  let buf: Buffer = Buffer.alloc(0);
  /** No byte of the body has been dropped yet, so a dash-boundary at offset 0 is the first delimiter. */
  let atStart = true;
  let preambleBytes = 0;
  let index = 0;
  let part: { chunks: Buffer[]; bytes: number; contentType: string; transferSyntaxUid: string | undefined } | undefined;

  /** Classifies what follows a boundary ending at `at`: closing "--", or padding then CRLF. */
  const afterBoundary = (at: number): Delimiter => {
    if (buf.length < at + 2) return { kind: 'incomplete' };
    if (buf[at] === 0x2d && buf[at + 1] === 0x2d) return { kind: 'close', end: at + 2 };
    let i = at;
    while (i < buf.length && (buf[i] === 0x20 || buf[i] === 0x09)) {
      i++;
      if (i - at > MAX_PADDING) return { kind: 'none' };
    }
    if (buf.length < i + 2) return { kind: 'incomplete' };
    return buf[i] === 0x0d && buf[i + 1] === 0x0a ? { kind: 'part', end: i + 2 } : { kind: 'none' };
  };

  const appendToPart = (data: Buffer): void => {
    if (!part || data.length === 0) return;
    part.bytes += data.length;
    if (part.bytes > limits.maxPartBytes) {
      throw new AppError('FILE_TOO_LARGE', `Part ${index} of the STOW-RS request is larger than ${limits.maxPartBytes} bytes; send that instance on its own or raise the limit.`, { details: { part: index, maxPartBytes: limits.maxPartBytes } });
    }
    part.chunks.push(data);
  };

  const finishPart = (): StowPart => {
    const done = part as NonNullable<typeof part>;
    part = undefined;
    const result = { index, bytes: Buffer.concat(done.chunks, done.bytes), contentType: done.contentType, transferSyntaxUid: done.transferSyntaxUid };
    index++;
    return result;
  };

  /** Consumes what the buffer allows, adding the parts completed to `out`. */
  const step = (out: StowPart[]): void => {
    for (;;) {
      if (state === 'epilogue') {
        buf = Buffer.alloc(0);
        return;
      }
      if (state === 'preamble') {
        let searchFrom = 0;
        let found: { kind: 'close' | 'part'; end: number } | undefined;
        let incomplete = false;
        if (atStart && buf.length > 0) {
          if (buf.length < dashBoundary.length + 2 && dashBoundary.subarray(0, Math.min(buf.length, dashBoundary.length)).equals(buf.subarray(0, Math.min(buf.length, dashBoundary.length)))) return;
          if (buf.subarray(0, dashBoundary.length).equals(dashBoundary)) {
            const after = afterBoundary(dashBoundary.length);
            if (after.kind === 'incomplete') return;
            if (after.kind !== 'none') found = after;
          }
        }
        while (!found) {
          const at = buf.indexOf(delimiter, searchFrom);
          if (at < 0) break;
          const after = afterBoundary(at + delimiter.length);
          if (after.kind === 'incomplete') {
            incomplete = true;
            searchFrom = at;
            break;
          }
          if (after.kind !== 'none') found = after;
          else searchFrom = at + 1;
        }
        if (!found) {
          // Keep the bytes that may start a delimiter; the rest is preamble, which is ignored.
          const keep = incomplete ? buf.length - searchFrom : Math.min(buf.length, delimiter.length - 1);
          preambleBytes += buf.length - keep;
          if (buf.length - keep > 0) atStart = false;
          buf = buf.subarray(buf.length - keep);
          if (preambleBytes > maxPreambleBytes) throw new AppError('INVALID_REQUEST', `No multipart boundary "--${boundary}" within the first ${maxPreambleBytes} bytes of the body; check the boundary parameter of the Content-Type.`);
          return;
        }
        atStart = false;
        buf = buf.subarray(found.end);
        if (found.kind === 'close') {
          state = 'epilogue';
          continue;
        }
        state = 'headers';
        continue;
      }
      if (state === 'headers') {
        let headerBlock: string;
        if (buf.length >= 2 && buf[0] === 0x0d && buf[1] === 0x0a) {
          headerBlock = '';
          buf = buf.subarray(2);
        } else {
          const end = buf.indexOf(HEADER_END);
          if (end < 0) {
            if (buf.length > maxHeaderBytes) throw new AppError('INVALID_REQUEST', `The headers of part ${index} of the STOW-RS request exceed ${maxHeaderBytes} bytes or never end with an empty line.`);
            return;
          }
          if (end > maxHeaderBytes) throw new AppError('INVALID_REQUEST', `The headers of part ${index} of the STOW-RS request exceed ${maxHeaderBytes} bytes.`);
          headerBlock = buf.toString('latin1', 0, end);
          buf = buf.subarray(end + HEADER_END.length);
        }
        if (index >= limits.maxParts) throw new AppError('INVALID_REQUEST', `The STOW-RS request has more than ${limits.maxParts} parts; send at most ${limits.maxParts} instances per request.`, { details: { maxParts: limits.maxParts } });
        part = { chunks: [], bytes: 0, ...partType(parseHeaders(headerBlock, index), index, rootType) };
        state = 'body';
        continue;
      }
      // state === 'body'
      let searchFrom = 0;
      for (;;) {
        const at = buf.indexOf(delimiter, searchFrom);
        if (at < 0) {
          // No delimiter: all but a possible delimiter start is the part's data.
          const keep = Math.min(buf.length, delimiter.length - 1);
          appendToPart(buf.subarray(0, buf.length - keep));
          buf = buf.subarray(buf.length - keep);
          return;
        }
        const after = afterBoundary(at + delimiter.length);
        if (after.kind === 'none') {
          searchFrom = at + 1;
          continue;
        }
        appendToPart(buf.subarray(0, at));
        buf = buf.subarray(at);
        if (after.kind === 'incomplete') return;
        buf = buf.subarray(after.end - at);
        out.push(finishPart());
        state = after.kind === 'close' ? 'epilogue' : 'headers';
        break;
      }
    }
  };

  const chunks: AsyncIterable<Uint8Array> | Iterable<Uint8Array> = body instanceof Uint8Array ? [body] : body;
  for await (const chunk of chunks) {
    if (state === 'epilogue') continue; // the epilogue is read and ignored (RFC 2046)
    buf = buf.length === 0 ? Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength) : Buffer.concat([buf, chunk]);
    // Parts completed before an error in the same chunk are still handed out, then the error is thrown:
    // every part is yielded once its closing delimiter is read, whatever follows it.
    const completed: StowPart[] = [];
    let failure: unknown;
    try {
      step(completed);
    } catch (e) {
      failure = e;
    }
    for (const p of completed) yield p;
    if (failure !== undefined) throw failure;
  }
  if (state !== 'epilogue') {
    const where = state === 'preamble' ? 'before its first boundary' : state === 'headers' ? `in the headers of part ${index}` : `inside part ${index}`;
    throw new AppError('INVALID_REQUEST', `The STOW-RS body ends ${where}, without the closing boundary "--${boundary}--"; the upload was cut short or is not a complete multipart body.`);
  }
  if (index === 0) throw new AppError('INVALID_REQUEST', 'The STOW-RS request has no parts; send at least one application/dicom part.');
}

function parseHeaders(block: string, index: number): Map<string, string> {
  const headers = new Map<string, string>();
  if (block === '') return headers;
  const lines: string[] = [];
  for (const line of block.split('\r\n')) {
    // Obsolete line folding (RFC 5322 §3.2.2): a line starting with white space continues the previous one.
    if ((line.startsWith(' ') || line.startsWith('\t')) && lines.length > 0) lines[lines.length - 1] += ` ${line.trim()}`;
    else lines.push(line);
  }
  for (const line of lines) {
    const colon = line.indexOf(':');
    if (colon <= 0) throw new AppError('INVALID_REQUEST', `Part ${index} of the STOW-RS request has a malformed header line ${JSON.stringify(line.slice(0, 100))}.`);
    const name = line.slice(0, colon).trim().toLowerCase();
    const value = line.slice(colon + 1).trim();
    headers.set(name, headers.has(name) ? `${headers.get(name)}, ${value}` : value);
  }
  return headers;
}

function partType(headers: Map<string, string>, index: number, rootType: string | undefined): { contentType: string; transferSyntaxUid: string | undefined } {
  const encoding = headers.get('content-transfer-encoding')?.toLowerCase();
  if (encoding !== undefined && encoding !== 'binary' && encoding !== '8bit' && encoding !== '7bit') {
    throw new AppError('INVALID_REQUEST', `Part ${index} of the STOW-RS request uses Content-Transfer-Encoding ${encoding}; send the DICOM bytes as binary.`);
  }
  const contentType = headers.get('content-type') ?? rootType;
  if (contentType === undefined) {
    throw new AppError('UNSUPPORTED_MEDIA_TYPE', `Part ${index} of the STOW-RS request has no Content-Type; label each part application/dicom (or give type="application/dicom" on the request).`);
  }
  let media: MediaType;
  try {
    media = parseMediaType(contentType);
  } catch {
    throw new AppError('UNSUPPORTED_MEDIA_TYPE', `Part ${index} of the STOW-RS request has an invalid Content-Type ${JSON.stringify(contentType.slice(0, 100))}; label it application/dicom.`);
  }
  if (media.type !== DICOM_MEDIA_TYPE) {
    throw new AppError('UNSUPPORTED_MEDIA_TYPE', `Part ${index} of the STOW-RS request is ${media.type}; only DICOM Part 10 files (application/dicom) are stored, so send metadata and bulk data as DICOM files instead.`, { details: { part: index, contentType: media.type } });
  }
  return { contentType, transferSyntaxUid: media.params.get('transfer-syntax') };
}

/** Failure Reason (0008,1197) values of the Store Instances Response (PS3.18 §10.5.3, PS3.4 B.2.3). */
export const STOW_FAILURE = {
  processingFailure: 0x0110,
  sopClassNotSupported: 0x0122,
  outOfResources: 0xa700,
  datasetDoesNotMatchSopClass: 0xa900,
  cannotUnderstand: 0xc000,
  transferSyntaxNotSupported: 0xc122,
} as const;

export interface StowStored {
  sopClassUid: string;
  sopInstanceUid: string;
  /** RetrieveURL (0008,1190) of the instance. */
  retrieveUrl?: string | undefined;
  /** Warning Reason (0008,1196), e.g. 0xB000 when elements were coerced. */
  warningReason?: number | undefined;
}

export interface StowFailed {
  /** Unknown when the part could not be read as DICOM. */
  sopClassUid?: string | undefined;
  sopInstanceUid?: string | undefined;
  failureReason: number;
}

type DicomJsonElement = { vr: string; Value?: unknown[] };
export type DicomJsonDataset = Record<string, DicomJsonElement>;

function element(vr: string, value: unknown): DicomJsonElement {
  return value === undefined || value === '' ? { vr } : { vr, Value: [value] };
}

/**
 * The Store Instances Response (PS3.18 Table 10.5.3-2 module, DICOM JSON per PS3.18 F.2) and its HTTP
 * status: 200 when every instance was stored without warning, 202 when some failed or carry a warning,
 * 409 when none was stored (§10.5.3.1). Send it as application/dicom+json.
 */
export function buildStowResponse(result: { retrieveUrl?: string | undefined; stored: readonly StowStored[]; failed: readonly StowFailed[] }): { status: 200 | 202 | 409; body: DicomJsonDataset } {
  const body: DicomJsonDataset = {};
  if (result.retrieveUrl !== undefined && result.stored.length > 0) body['00081190'] = element('UR', result.retrieveUrl);
  if (result.failed.length > 0) {
    body['00081198'] = {
      vr: 'SQ',
      Value: result.failed.map((f) => ({
        '00081150': element('UI', f.sopClassUid),
        '00081155': element('UI', f.sopInstanceUid),
        '00081197': element('US', f.failureReason),
      })),
    };
  }
  if (result.stored.length > 0) {
    body['00081199'] = {
      vr: 'SQ',
      Value: result.stored.map((s) => {
        const item: DicomJsonDataset = {
          '00081150': element('UI', s.sopClassUid),
          '00081155': element('UI', s.sopInstanceUid),
        };
        if (s.retrieveUrl !== undefined) item['00081190'] = element('UR', s.retrieveUrl);
        if (s.warningReason !== undefined) item['00081196'] = element('US', s.warningReason);
        return item;
      }),
    };
  }
  const warned = result.stored.some((s) => s.warningReason !== undefined);
  const status = result.stored.length === 0 ? 409 : result.failed.length > 0 || warned ? 202 : 200;
  return { status, body };
}
