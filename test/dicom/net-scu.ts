import net from 'node:net';

// A deliberately small DICOM SCU for the SCP tests. It encodes PDUs on its own (not with the SCP's
// encoder) and can send what a well-behaved SCU never sends: tiny PDV fragments, data sets that do not
// match their command, malformed PDUs. dcmtk's storescu and echoscu are the real clients in the tests.

export interface Pdu {
  type: number;
  body: Buffer;
}

export interface ContextProposal {
  id: number;
  abstractSyntax: string;
  transferSyntaxes: string[];
}

function item(type: number, value: Buffer): Buffer {
  const head = Buffer.alloc(4);
  head[0] = type;
  head.writeUInt16BE(value.length, 2);
  return Buffer.concat([head, value]);
}

function pdu(type: number, body: Buffer): Buffer {
  const head = Buffer.alloc(6);
  head[0] = type;
  head.writeUInt32BE(body.length, 2);
  return Buffer.concat([head, body]);
}

function ae(title: string): Buffer {
  return Buffer.from(title.padEnd(16, ' ').slice(0, 16), 'latin1');
}

export function associateRq(opts: { called: string; calling: string; contexts: ContextProposal[]; maxPdu?: number; applicationContext?: string }): Buffer {
  const fixed = Buffer.concat([Buffer.from([0, 1, 0, 0]), ae(opts.called), ae(opts.calling), Buffer.alloc(32)]);
  const items = [fixed, item(0x10, Buffer.from(opts.applicationContext ?? '1.2.840.10008.3.1.1.1', 'latin1'))];
  for (const c of opts.contexts) {
    const subs = [item(0x30, Buffer.from(c.abstractSyntax, 'latin1')), ...c.transferSyntaxes.map((ts) => item(0x40, Buffer.from(ts, 'latin1')))];
    items.push(item(0x20, Buffer.concat([Buffer.from([c.id, 0, 0, 0]), ...subs])));
  }
  const max = Buffer.alloc(4);
  max.writeUInt32BE(opts.maxPdu ?? 16384);
  items.push(item(0x50, Buffer.concat([item(0x51, max), item(0x52, Buffer.from('2.25.99', 'latin1')), item(0x55, Buffer.from('TESTSCU', 'latin1'))])));
  return pdu(0x01, Buffer.concat(items));
}

/** P-DATA-TF PDUs of one PDV each, splitting `data` into fragments of `fragment` bytes. */
export function pData(contextId: number, command: boolean, data: Buffer, fragment: number): Buffer[] {
  const out: Buffer[] = [];
  let offset = 0;
  do {
    const part = data.subarray(offset, offset + fragment);
    offset += part.length;
    const head = Buffer.alloc(6);
    head.writeUInt32BE(part.length + 2, 0);
    head[4] = contextId;
    head[5] = (command ? 1 : 0) | (offset >= data.length ? 2 : 0);
    out.push(pdu(0x04, Buffer.concat([head, part])));
  } while (offset < data.length);
  return out;
}

function element(group: number, el: number, value: Buffer): Buffer {
  const head = Buffer.alloc(8);
  head.writeUInt16LE(group, 0);
  head.writeUInt16LE(el, 2);
  head.writeUInt32LE(value.length, 4);
  return Buffer.concat([head, value]);
}

function uid(v: string): Buffer {
  return Buffer.from(v.length % 2 ? `${v}\0` : v, 'latin1');
}

function us(v: number): Buffer {
  const b = Buffer.alloc(2);
  b.writeUInt16LE(v);
  return b;
}

export function cStoreRq(messageId: number, sopClassUid: string, sopInstanceUid: string): Buffer {
  const body = Buffer.concat([
    element(0, 0x0002, uid(sopClassUid)),
    element(0, 0x0100, us(0x0001)),
    element(0, 0x0110, us(messageId)),
    element(0, 0x0700, us(0)),
    element(0, 0x0800, us(0x0000)),
    element(0, 0x1000, uid(sopInstanceUid)),
  ]);
  const len = Buffer.alloc(4);
  len.writeUInt32LE(body.length);
  return Buffer.concat([element(0, 0x0000, len), body]);
}

export function cEchoRq(messageId: number): Buffer {
  const body = Buffer.concat([element(0, 0x0002, uid('1.2.840.10008.1.1')), element(0, 0x0100, us(0x0030)), element(0, 0x0110, us(messageId)), element(0, 0x0800, us(0x0101))]);
  const len = Buffer.alloc(4);
  len.writeUInt32LE(body.length);
  return Buffer.concat([element(0, 0x0000, len), body]);
}

/** Reads the group 0000 elements of a response command into tag → raw value. */
export function commandFields(command: Buffer): Map<number, Buffer> {
  const fields = new Map<number, Buffer>();
  let offset = 0;
  while (offset + 8 <= command.length) {
    const el = command.readUInt16LE(offset + 2);
    const len = command.readUInt32LE(offset + 4);
    fields.set(el, command.subarray(offset + 8, offset + 8 + len));
    offset += 8 + len;
  }
  return fields;
}

export interface AssociateResult {
  accepted: boolean;
  pdu: Pdu;
  /** Per context id: result code and the transfer syntax the SCP chose. */
  contexts: Map<number, { result: number; transferSyntax: string }>;
  maxPdu: number;
}

export class RawScu {
  private readonly socket: net.Socket;
  private buffer = Buffer.alloc(0);
  private readonly waiting: ((p: Pdu | undefined) => void)[] = [];
  private readonly queued: (Pdu | undefined)[] = [];
  closed = false;

  private constructor(socket: net.Socket) {
    this.socket = socket;
    socket.on('data', (chunk: Buffer) => {
      this.buffer = Buffer.concat([this.buffer, chunk]);
      while (this.buffer.length >= 6) {
        const length = this.buffer.readUInt32BE(2);
        if (this.buffer.length < 6 + length) break;
        this.deliver({ type: this.buffer[0] as number, body: this.buffer.subarray(6, 6 + length) });
        this.buffer = this.buffer.subarray(6 + length);
      }
    });
    socket.on('close', () => {
      this.closed = true;
      this.deliver(undefined);
    });
    socket.on('error', () => undefined);
  }

  static connect(port: number): Promise<RawScu> {
    return new Promise((resolve, reject) => {
      const socket = net.connect({ port, host: '127.0.0.1' }, () => resolve(new RawScu(socket)));
      socket.once('error', reject);
    });
  }

  private deliver(p: Pdu | undefined): void {
    const w = this.waiting.shift();
    if (w) w(p);
    else this.queued.push(p);
  }

  send(...buffers: Buffer[]): void {
    for (const b of buffers) this.socket.write(b);
  }

  /** The next PDU from the SCP, or undefined when the connection closed. */
  next(timeoutMs = 5000): Promise<Pdu | undefined> {
    if (this.queued.length > 0) return Promise.resolve(this.queued.shift());
    if (this.closed) return Promise.resolve(undefined);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no PDU from the SCP within ${timeoutMs} ms`)), timeoutMs);
      this.waiting.push((p) => {
        clearTimeout(timer);
        resolve(p);
      });
    });
  }

  async associate(opts: Parameters<typeof associateRq>[0]): Promise<AssociateResult> {
    this.send(associateRq(opts));
    const answer = await this.next();
    if (!answer) throw new Error('connection closed instead of an A-ASSOCIATE answer');
    const contexts = new Map<number, { result: number; transferSyntax: string }>();
    let maxPdu = 0;
    if (answer.type === 0x02) {
      let offset = 68;
      const b = answer.body;
      while (offset < b.length) {
        const type = b[offset] as number;
        const len = b.readUInt16BE(offset + 2);
        const start = offset + 4;
        if (type === 0x21) {
          const tsLen = b.readUInt16BE(start + 6);
          contexts.set(b[start] as number, { result: b[start + 2] as number, transferSyntax: b.toString('latin1', start + 8, start + 8 + tsLen) });
        } else if (type === 0x50) {
          let s = start;
          while (s < start + len) {
            const subLen = b.readUInt16BE(s + 2);
            if (b[s] === 0x51) maxPdu = b.readUInt32BE(s + 4);
            s += 4 + subLen;
          }
        }
        offset = start + len;
      }
    }
    return { accepted: answer.type === 0x02, pdu: answer, contexts, maxPdu };
  }

  /** Sends a command (and data set) and returns the response command's fields. */
  async request(contextId: number, command: Buffer, dataset: Buffer | undefined, fragment = 16000): Promise<Map<number, Buffer>> {
    this.send(...pData(contextId, true, command, fragment));
    if (dataset) this.send(...pData(contextId, false, dataset, fragment));
    const chunks: Buffer[] = [];
    for (;;) {
      const p = await this.next();
      if (!p) throw new Error('connection closed before the response');
      if (p.type !== 0x04) throw new Error(`expected P-DATA-TF, got PDU type 0x${p.type.toString(16)}`);
      let offset = 0;
      let last = false;
      while (offset < p.body.length) {
        const len = p.body.readUInt32BE(offset);
        const header = p.body[offset + 5] as number;
        chunks.push(p.body.subarray(offset + 6, offset + 4 + len));
        if ((header & 3) === 3) last = true;
        offset += 4 + len;
      }
      if (last) return commandFields(Buffer.concat(chunks));
    }
  }

  async store(contextId: number, messageId: number, sopClassUid: string, sopInstanceUid: string, dataset: Buffer, fragment = 16000): Promise<number> {
    const fields = await this.request(contextId, cStoreRq(messageId, sopClassUid, sopInstanceUid), dataset, fragment);
    const status = fields.get(0x0900);
    if (!status) throw new Error('response without Status');
    return status.readUInt16LE(0);
  }

  async release(): Promise<Pdu | undefined> {
    this.send(pdu(0x05, Buffer.alloc(4)));
    return this.next();
  }

  destroy(): void {
    this.socket.destroy();
  }
}

export function rawPdu(type: number, body: Buffer): Buffer {
  return pdu(type, body);
}
