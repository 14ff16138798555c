// The DICOM upper layer protocol (PS3.8 §9): the PDUs a storage SCP reads and writes, encoded and decoded
// without any state. Every length read from the wire is checked against the bytes present; a PDU that
// does not parse raises PduError, which the association answers with an A-ABORT.

export const PDU_ASSOCIATE_RQ = 0x01;
export const PDU_ASSOCIATE_AC = 0x02;
export const PDU_ASSOCIATE_RJ = 0x03;
export const PDU_DATA_TF = 0x04;
export const PDU_RELEASE_RQ = 0x05;
export const PDU_RELEASE_RP = 0x06;
export const PDU_ABORT = 0x07;

export const APPLICATION_CONTEXT_NAME = '1.2.840.10008.3.1.1.1';

/** A-ABORT reasons when the service provider aborts (PS3.8 Table 9-26). */
export const ABORT_REASON = {
  notSpecified: 0,
  unrecognizedPdu: 1,
  unexpectedPdu: 2,
  unrecognizedPduParameter: 4,
  unexpectedPduParameter: 5,
  invalidPduParameterValue: 6,
} as const;

export class PduError extends Error {
  readonly reason: number;

  constructor(message: string, reason: number = ABORT_REASON.invalidPduParameterValue) {
    super(message);
    this.name = 'PduError';
    this.reason = reason;
  }
}

export interface ProposedContext {
  id: number;
  abstractSyntax: string;
  transferSyntaxes: string[];
}

export interface AssociateRq {
  protocolVersion: number;
  calledAeTitle: string;
  callingAeTitle: string;
  /** Bytes 11-74 of the PDU (called, calling, reserved), echoed in the A-ASSOCIATE-AC (PS3.8 Table 9-17). */
  echoFields: Buffer;
  applicationContext: string | undefined;
  contexts: ProposedContext[];
  /** The requestor's maximum P-DATA-TF variable-field length; 0 means no limit (PS3.8 D.1). */
  maxPduLength: number;
  implementationClassUid: string | undefined;
  implementationVersionName: string | undefined;
}

function text(bytes: Buffer, start: number, end: number): string {
  // UIDs in items are not padded, but some implementations add a NUL or spaces (PS3.8 F); AE titles are
  // space padded and their leading and trailing spaces are not significant (PS3.5 Table 6.2-1).
  return bytes.toString('latin1', start, end).replace(/[\0 ]+$/, '').replace(/^ +/, '');
}

/** Reads the variable items of an A-ASSOCIATE-RQ (the PDU body after its 6-byte header). */
export function parseAssociateRq(body: Buffer): AssociateRq {
  if (body.length < 68) throw new PduError(`A-ASSOCIATE-RQ of ${body.length} bytes is shorter than its 68-byte fixed part`);
  const rq: AssociateRq = {
    protocolVersion: body.readUInt16BE(0),
    calledAeTitle: text(body, 4, 20),
    callingAeTitle: text(body, 20, 36),
    echoFields: Buffer.from(body.subarray(4, 68)),
    applicationContext: undefined,
    contexts: [],
    maxPduLength: 0,
    implementationClassUid: undefined,
    implementationVersionName: undefined,
  };
  const ids = new Set<number>();
  forEachItem(body, 68, body.length, (type, start, end) => {
    if (type === 0x10) {
      rq.applicationContext = text(body, start, end);
    } else if (type === 0x20) {
      if (end - start < 4) throw new PduError('Presentation context item shorter than 4 bytes');
      const id = body.readUInt8(start);
      if (id % 2 === 0 || ids.has(id)) throw new PduError(`Presentation context id ${id} is even or repeated (PS3.8 §9.3.2.2)`);
      ids.add(id);
      const context: ProposedContext = { id, abstractSyntax: '', transferSyntaxes: [] };
      forEachItem(body, start + 4, end, (subType, s, e) => {
        if (subType === 0x30) context.abstractSyntax = text(body, s, e);
        else if (subType === 0x40) context.transferSyntaxes.push(text(body, s, e));
      });
      rq.contexts.push(context);
    } else if (type === 0x50) {
      forEachItem(body, start, end, (subType, s, e) => {
        if (subType === 0x51) {
          if (e - s !== 4) throw new PduError('Maximum length sub-item is not 4 bytes long');
          rq.maxPduLength = body.readUInt32BE(s);
        } else if (subType === 0x52) {
          rq.implementationClassUid = text(body, s, e);
        } else if (subType === 0x55) {
          rq.implementationVersionName = text(body, s, e);
        }
        // Asynchronous operations (0x53), role selection (0x54), extended negotiation (0x56, 0x57) and
        // user identity (0x58) are not answered, which means: their defaults (PS3.7 D.3.3).
      });
    }
  });
  return rq;
}

/** Calls `visit` for each item (type, 1 reserved byte, 2-byte length) between start and end. */
function forEachItem(bytes: Buffer, start: number, end: number, visit: (type: number, start: number, end: number) => void): void {
  let offset = start;
  while (offset < end) {
    if (offset + 4 > end) throw new PduError(`Item header at byte ${offset} runs past the end of its PDU`);
    const type = bytes.readUInt8(offset);
    const length = bytes.readUInt16BE(offset + 2);
    const valueEnd = offset + 4 + length;
    if (valueEnd > end) throw new PduError(`Item 0x${type.toString(16)} at byte ${offset} declares ${length} bytes, more than its PDU holds`);
    visit(type, offset + 4, valueEnd);
    offset = valueEnd;
  }
}

function item(type: number, value: Buffer): Buffer {
  const head = Buffer.alloc(4);
  head.writeUInt8(type, 0);
  head.writeUInt16BE(value.length, 2);
  return Buffer.concat([head, value]);
}

function pdu(type: number, body: Buffer): Buffer {
  const head = Buffer.alloc(6);
  head.writeUInt8(type, 0);
  head.writeUInt32BE(body.length, 2);
  return Buffer.concat([head, body]);
}

export interface ContextResult {
  id: number;
  /** 0 acceptance, 1 user rejection, 2 no reason, 3 abstract syntax not supported, 4 transfer syntaxes not supported. */
  result: number;
  transferSyntax: string;
}

export function encodeAssociateAc(rq: AssociateRq, contexts: ContextResult[], opts: { maxPduLength: number; implementationClassUid: string; implementationVersionName: string }): Buffer {
  const fixed = Buffer.alloc(68);
  fixed.writeUInt16BE(0x0001, 0);
  rq.echoFields.copy(fixed, 4);
  const items: Buffer[] = [fixed, item(0x10, Buffer.from(APPLICATION_CONTEXT_NAME, 'latin1'))];
  for (const c of contexts) {
    const head = Buffer.from([c.id, 0, c.result, 0]);
    items.push(item(0x21, Buffer.concat([head, item(0x40, Buffer.from(c.transferSyntax, 'latin1'))])));
  }
  const maxLength = Buffer.alloc(4);
  maxLength.writeUInt32BE(opts.maxPduLength, 0);
  items.push(
    item(
      0x50,
      Buffer.concat([
        item(0x51, maxLength),
        item(0x52, Buffer.from(opts.implementationClassUid, 'latin1')),
        item(0x55, Buffer.from(opts.implementationVersionName, 'latin1')),
      ]),
    ),
  );
  return pdu(PDU_ASSOCIATE_AC, Buffer.concat(items));
}

/** A-ASSOCIATE-RJ (PS3.8 Table 9-21): result 1 permanent / 2 transient, source 1-3, reason per source. */
export function encodeAssociateRj(result: number, source: number, reason: number): Buffer {
  return pdu(PDU_ASSOCIATE_RJ, Buffer.from([0, result, source, reason]));
}

export function encodeReleaseRp(): Buffer {
  return pdu(PDU_RELEASE_RP, Buffer.alloc(4));
}

/** A-ABORT (PS3.8 Table 9-26): source 0 service user, 2 service provider. */
export function encodeAbort(source: number, reason: number): Buffer {
  return pdu(PDU_ABORT, Buffer.from([0, 0, source, reason]));
}

export interface Pdv {
  contextId: number;
  command: boolean;
  last: boolean;
  data: Buffer;
}

/** The presentation data values of a P-DATA-TF body (PS3.8 §9.3.5, Annex E.2). */
export function parsePDataTf(body: Buffer): Pdv[] {
  const pdvs: Pdv[] = [];
  let offset = 0;
  while (offset < body.length) {
    if (offset + 6 > body.length) throw new PduError(`PDV item header at byte ${offset} runs past the end of its P-DATA-TF`);
    const length = body.readUInt32BE(offset);
    if (length < 2 || offset + 4 + length > body.length) throw new PduError(`PDV item at byte ${offset} declares ${length} bytes, which its P-DATA-TF does not hold`);
    const header = body.readUInt8(offset + 5);
    if ((header & 0xfc) !== 0) throw new PduError(`PDV message control header 0x${header.toString(16)} sets reserved bits`);
    pdvs.push({ contextId: body.readUInt8(offset + 4), command: (header & 1) === 1, last: (header & 2) === 2, data: body.subarray(offset + 6, offset + 4 + length) });
    offset += 4 + length;
  }
  if (pdvs.length === 0) throw new PduError('P-DATA-TF holds no presentation data value');
  return pdvs;
}

/**
 * P-DATA-TF PDUs carrying one message part (a command or a data set) as PDVs of at most `maxPduLength`
 * bytes of PDU body each (0 = no limit), the last one flagged as such.
 */
export function encodePDataTf(contextId: number, command: boolean, data: Buffer, maxPduLength: number): Buffer[] {
  const maxFragment = maxPduLength === 0 ? Math.max(data.length, 1) : maxPduLength - 6;
  const out: Buffer[] = [];
  let offset = 0;
  do {
    const fragment = data.subarray(offset, offset + maxFragment);
    offset += fragment.length;
    const last = offset >= data.length;
    const head = Buffer.alloc(6);
    head.writeUInt32BE(fragment.length + 2, 0);
    head.writeUInt8(contextId, 4);
    head.writeUInt8((command ? 1 : 0) | (last ? 2 : 0), 5);
    out.push(pdu(PDU_DATA_TF, Buffer.concat([head, fragment])));
  } while (offset < data.length);
  return out;
}
