// Wraps a received data set into a DICOM Part 10 file (PS3.10 §7.1): a 128-byte preamble, "DICM" and a
// File Meta Information group in explicit VR little endian, then the data set bytes exactly as they were
// received in the negotiated transfer syntax — never re-encoded, so nothing in it can change.

/** This implementation's identity in the File Meta Information and the association (PS3.7 D.3.3.2). */
export const IMPLEMENTATION_CLASS_UID = '2.25.170535686990820511936789891011854600396';
export const IMPLEMENTATION_VERSION_NAME = 'DXFLOW_010';

function metaElement(group: number, element: number, vr: string, value: Buffer): Buffer {
  const long = vr === 'OB' || vr === 'UN' || vr === 'SQ';
  const head = Buffer.alloc(long ? 12 : 8);
  head.writeUInt16LE(group, 0);
  head.writeUInt16LE(element, 2);
  head.write(vr, 4, 'latin1');
  if (long) head.writeUInt32LE(value.length, 8);
  else head.writeUInt16LE(value.length, 6);
  return Buffer.concat([head, value]);
}

function uid(value: string): Buffer {
  return Buffer.from(value.length % 2 === 0 ? value : `${value}\0`, 'latin1');
}

function text(value: string): Buffer {
  return Buffer.from(value.length % 2 === 0 ? value : `${value} `, 'latin1');
}

export interface Part10Meta {
  sopClassUid: string;
  sopInstanceUid: string;
  transferSyntaxUid: string;
  /** AE title that sent the instance over the network: Sending Application Entity Title (0002,0017). */
  sendingAeTitle?: string | undefined;
  /** AE title that received it: Receiving Application Entity Title (0002,0018). */
  receivingAeTitle?: string | undefined;
}

export function buildPart10(dataset: Uint8Array, meta: Part10Meta): Buffer {
  const elements = [
    metaElement(0x0002, 0x0001, 'OB', Buffer.from([0x00, 0x01])),
    metaElement(0x0002, 0x0002, 'UI', uid(meta.sopClassUid)),
    metaElement(0x0002, 0x0003, 'UI', uid(meta.sopInstanceUid)),
    metaElement(0x0002, 0x0010, 'UI', uid(meta.transferSyntaxUid)),
    metaElement(0x0002, 0x0012, 'UI', uid(IMPLEMENTATION_CLASS_UID)),
    metaElement(0x0002, 0x0013, 'SH', text(IMPLEMENTATION_VERSION_NAME)),
  ];
  if (meta.sendingAeTitle) elements.push(metaElement(0x0002, 0x0017, 'AE', text(meta.sendingAeTitle)));
  if (meta.receivingAeTitle) elements.push(metaElement(0x0002, 0x0018, 'AE', text(meta.receivingAeTitle)));
  const group = Buffer.concat(elements);
  const groupLength = Buffer.alloc(4);
  groupLength.writeUInt32LE(group.length, 0);
  const preamble = Buffer.alloc(132);
  preamble.write('DICM', 128, 'latin1');
  return Buffer.concat([preamble, metaElement(0x0002, 0x0000, 'UL', groupLength), group, dataset]);
}
