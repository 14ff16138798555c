// DIMSE command sets (PS3.7 §9.3, Annex E): group 0000 elements, always implicit VR little endian. Only
// the fields C-ECHO and C-STORE use are decoded; responses are built from their PS3.7 tables.

export const COMMAND = {
  cStoreRq: 0x0001,
  cStoreRsp: 0x8001,
  cEchoRq: 0x0030,
  cEchoRsp: 0x8030,
  cCancelRq: 0x0fff,
} as const;

/** CommandDataSetType (0000,0800) value meaning "no data set follows". */
export const NO_DATA_SET = 0x0101;

/** Status codes sent in C-STORE and C-ECHO responses (PS3.4 Table B.2-1, PS3.7 Annex C). */
export const STATUS = {
  success: 0x0000,
  /** Refused: out of resources — the instance is larger than this SCP accepts. */
  outOfResources: 0xa700,
  /** Refused: out of resources — storing failed for a reason that may pass on a later attempt. */
  storeFailed: 0xa701,
  /** Error: data set does not match SOP class — its SOPClassUID is not the one of the request. */
  datasetDoesNotMatchSopClass: 0xa900,
  /** Error: cannot understand — the data set does not parse or lacks an identifying UID. */
  cannotUnderstand: 0xc000,
  /** Error: cannot understand — its SOPInstanceUID is not the one of the request. */
  instanceUidMismatch: 0xc001,
  /** Error: cannot understand — the receiver refused the content itself (not worth sending again). */
  refused: 0xc002,
  /** SOP class not supported: a C-STORE on a context of another SOP class, or a C-ECHO off Verification. */
  sopClassNotSupported: 0x0122,
  /** Unrecognized operation: a DIMSE service this SCP does not provide. */
  unrecognizedOperation: 0x0211,
} as const;

const TAG = {
  groupLength: 0x00000000,
  affectedSopClassUid: 0x00000002,
  commandField: 0x00000100,
  messageId: 0x00000110,
  messageIdBeingRespondedTo: 0x00000120,
  commandDataSetType: 0x00000800,
  status: 0x00000900,
  errorComment: 0x00000902,
  affectedSopInstanceUid: 0x00001000,
} as const;

export interface Command {
  commandField: number;
  messageId: number;
  affectedSopClassUid: string | undefined;
  affectedSopInstanceUid: string | undefined;
  hasDataSet: boolean;
}

export class CommandError extends Error {}

function stripText(bytes: Buffer, start: number, end: number): string {
  return bytes.toString('latin1', start, end).replace(/[\0 ]+$/, '').replace(/^ +/, '');
}

export function parseCommand(bytes: Buffer): Command {
  let offset = 0;
  const cmd: Partial<Command> & { hasDataSet: boolean } = { hasDataSet: false, affectedSopClassUid: undefined, affectedSopInstanceUid: undefined };
  let dataSetType: number | undefined;
  while (offset < bytes.length) {
    if (offset + 8 > bytes.length) throw new CommandError(`command element header at byte ${offset} runs past the end of the command`);
    const group = bytes.readUInt16LE(offset);
    const element = bytes.readUInt16LE(offset + 2);
    const length = bytes.readUInt32LE(offset + 4);
    const start = offset + 8;
    const end = start + length;
    if (group !== 0x0000) throw new CommandError(`command element (${group.toString(16).padStart(4, '0')},${element.toString(16).padStart(4, '0')}) is outside group 0000`);
    if (length === 0xffffffff || end > bytes.length) throw new CommandError(`command element (0000,${element.toString(16).padStart(4, '0')}) declares ${length} bytes, more than the command holds`);
    const tag = element;
    const u16 = (): number => {
      if (length !== 2) throw new CommandError(`command element (0000,${element.toString(16).padStart(4, '0')}) should be 2 bytes, is ${length}`);
      return bytes.readUInt16LE(start);
    };
    if (tag === TAG.commandField) cmd.commandField = u16();
    else if (tag === TAG.messageId) cmd.messageId = u16();
    else if (tag === TAG.commandDataSetType) dataSetType = u16();
    else if (tag === TAG.affectedSopClassUid) cmd.affectedSopClassUid = stripText(bytes, start, end);
    else if (tag === TAG.affectedSopInstanceUid) cmd.affectedSopInstanceUid = stripText(bytes, start, end);
    offset = end;
  }
  if (cmd.commandField === undefined) throw new CommandError('command has no CommandField (0000,0100)');
  if (dataSetType === undefined) throw new CommandError('command has no CommandDataSetType (0000,0800)');
  return {
    commandField: cmd.commandField,
    messageId: cmd.messageId ?? 0,
    affectedSopClassUid: cmd.affectedSopClassUid,
    affectedSopInstanceUid: cmd.affectedSopInstanceUid,
    hasDataSet: dataSetType !== NO_DATA_SET,
  };
}

function element(tag: number, value: Buffer): Buffer {
  const head = Buffer.alloc(8);
  head.writeUInt16LE(tag >>> 16, 0);
  head.writeUInt16LE(tag & 0xffff, 2);
  head.writeUInt32LE(value.length, 4);
  return Buffer.concat([head, value]);
}

function us(value: number): Buffer {
  const b = Buffer.alloc(2);
  b.writeUInt16LE(value, 0);
  return b;
}

/** UI values are padded to even length with NUL, text values with a space (PS3.5 §6.2). */
function padded(value: string, pad: '\0' | ' '): Buffer {
  return Buffer.from(value.length % 2 === 0 ? value : value + pad, 'latin1');
}

/** A response command: C-ECHO-RSP or C-STORE-RSP (PS3.7 Tables 9.3-2 and 9.3-13 layouts). */
export function encodeResponse(opts: { commandField: number; messageIdBeingRespondedTo: number; affectedSopClassUid?: string | undefined; affectedSopInstanceUid?: string | undefined; status: number; errorComment?: string | undefined }): Buffer {
  // Elements in ascending tag order, as a data set requires.
  const elements: Buffer[] = [];
  if (opts.affectedSopClassUid !== undefined) elements.push(element(TAG.affectedSopClassUid, padded(opts.affectedSopClassUid, '\0')));
  elements.push(element(TAG.commandField, us(opts.commandField)));
  elements.push(element(TAG.messageIdBeingRespondedTo, us(opts.messageIdBeingRespondedTo)));
  elements.push(element(TAG.commandDataSetType, us(NO_DATA_SET)));
  elements.push(element(TAG.status, us(opts.status)));
  if (opts.errorComment !== undefined && opts.errorComment !== '') {
    // Error Comment is LO: at most 64 characters, no backslash or control characters.
    const comment = [...opts.errorComment.slice(0, 64)].map((c) => (c >= ' ' && c <= '~' && c !== '\\' ? c : ' ')).join('');
    elements.push(element(TAG.errorComment, padded(comment, ' ')));
  }
  if (opts.affectedSopInstanceUid !== undefined) elements.push(element(TAG.affectedSopInstanceUid, padded(opts.affectedSopInstanceUid, '\0')));
  const body = Buffer.concat(elements);
  const length = Buffer.alloc(4);
  length.writeUInt32LE(body.length, 0);
  return Buffer.concat([element(TAG.groupLength, length), body]);
}
